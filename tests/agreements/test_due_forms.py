"""The due forms of issue 13 (points 9, 10, 11 and 12) on small agreements of our own
(`tests/agreements/forms/`): every expected task ID and due instant below is written by hand,
with the weekday worked out in the comment, never taken from Accord's expansion.

Conventions checked: a due instant is the first late moment (local, UTC+7); Civil Code art. 148
moves a last day that is not a working day to the next working day, and the due instant to the
end of that day, or, for a deadline with a time of day, to that time on the new day.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from accord.deploy import build_input
from accord.plan import PreviewedEvent, plan
from activities.models import NotificationKind, NotificationRequest
from activities.templates import due_date_event
from agreements.expansion import event_occurrences
from agreements.loader import LoadedAgreement, LoadError, load_agreement
from agreements.models import Agreement
from workflows.payloads import task_ref

ROOT = Path(__file__).resolve().parents[2]
FORMS = ROOT / "tests" / "agreements" / "forms"
DOCS = ROOT / "docs" / "agreement-format.md"
DIRECTORY = ROOT / "agreements" / "directory" / "quang-binh.yaml"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
ACCORD = str(Path(sys.executable).parent / "accord")


def at(day: str, hour: int = 0, minute: int = 0) -> datetime:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), ZONE).replace(
        hour=hour, minute=minute
    )


def due_by_task(path: Path) -> dict[str, datetime | None]:
    return {o.task_id: o.due_at for o in load_agreement(path).occurrences}


# --------------------------------------------------------------------------------------------
# Point 9: recurring tasks without a date


def test_every_year_and_every_quarter_close_at_the_end_of_each_period() -> None:
    """Plan period 01/07/2027 – 31/03/2029. A year's task is due before 1/1 of the next year;
    the last one, cut by the plan's end, before 01/04/2029."""
    assert due_by_task(FORMS / "dinh-ky.yaml") == {
        # Friday 31/12/2027 is a working day.
        "dinh-ky-2027/bao-cao-nam/SNV/2027": at("2028-01-01"),
        # Sunday 31/12/2028 → Monday 01/01/2029 is New Year's Day → Tuesday 02/01/2029.
        "dinh-ky-2027/bao-cao-nam/SNV/2028": at("2029-01-03"),
        # Clipped to the plan's last day, Saturday 31/03/2029 → Monday 02/04/2029.
        "dinh-ky-2027/bao-cao-nam/SNV/2029": at("2029-04-03"),
        # Thursday 30/09/2027.
        "dinh-ky-2027/bao-cao-quy/STP/2027-q3": at("2027-10-01"),
        "dinh-ky-2027/bao-cao-quy/STP/2027-q4": at("2028-01-01"),
        # Friday 31/03/2028, Friday 30/06/2028.
        "dinh-ky-2027/bao-cao-quy/STP/2028-q1": at("2028-04-01"),
        "dinh-ky-2027/bao-cao-quy/STP/2028-q2": at("2028-07-01"),
        # Saturday 30/09/2028 → Monday 02/10/2028.
        "dinh-ky-2027/bao-cao-quy/STP/2028-q3": at("2028-10-03"),
        "dinh-ky-2027/bao-cao-quy/STP/2028-q4": at("2029-01-03"),
        "dinh-ky-2027/bao-cao-quy/STP/2029-q1": at("2029-04-03"),
    }


def agreement_text(due: str, *, start: str = "2026-01-01", end: str = "2026-12-31") -> str:
    """A one-obligation agreement owed by Sở Nội vụ, with `due` as its due block."""
    indented = "\n".join("      " + line for line in due.strip().splitlines())
    return f"""\
id: thu-{start[:4]}
document_number: 19/KH-TEST
kind: implementation_plan
title: Kế hoạch thử
province: Quảng Bình
parties:
  - agency: UBND_TINH
signed_on: {start}
period:
  start: {start}
  end: {end}
directory: directory.yaml
reporting:
  - id: bao-cao
    title: Báo cáo
    deliverable: report
    owners:
      agencies: [SNV]
    due:
{indented}
"""


def load_text(folder: Path, text: str) -> LoadedAgreement:
    path = folder / "inline.yaml"
    path.write_text(text, encoding="utf-8")
    # Beside the agreement: a directory outside its folder is refused.
    shutil.copyfile(DIRECTORY, folder / "directory.yaml")
    return load_agreement(path)


def dues_of(loaded: LoadedAgreement) -> dict[str, datetime | None]:
    return {o.task_id: o.due_at for o in loaded.occurrences}


def test_every_month_with_its_default_label(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, agreement_text("kind: every\nperiod: month", end="2026-03-15"))
    assert dues_of(loaded) == {
        # Saturday 31/01/2026 → Monday 02/02/2026.
        "thu-2026/bao-cao/SNV/2026-01": at("2026-02-03"),
        # Saturday 28/02/2026 → Monday 02/03/2026.
        "thu-2026/bao-cao/SNV/2026-02": at("2026-03-03"),
        # Cut by the plan's end, Sunday 15/03/2026 → Monday 16/03/2026.
        "thu-2026/bao-cao/SNV/2026-03": at("2026-03-17"),
    }


# --------------------------------------------------------------------------------------------
# Point 10: how a deadline is written


def test_by_inclusive_and_time_of_day() -> None:
    assert due_by_task(FORMS / "han-chot.yaml") == {
        # "chậm nhất ngày 30/6": Tuesday 30/06/2026 is the last day.
        "han-chot-2026/bao-cao-6-thang/SNV/2026": at("2026-07-01"),
        # "chậm nhất ngày 14/11": Saturday → Monday 16/11/2026.
        "han-chot-2026/bao-cao-chuyen-de/SNV/chuyen-de": at("2026-11-17"),
        # "trước 17 giờ ngày 19/9": Saturday 19/09/2026 → 17:00 on Monday 21/09/2026.
        "han-chot-2026/so-ket-quy-3/STP/2026": at("2026-09-21", 17),
        # Inclusive 20/6 and 20/12: Saturday 20/06 → Monday 22/06; Sunday 20/12 → Monday 21/12.
        "han-chot-2026/bao-cao-6-thang-dinh-ky/STP/2026-6": at("2026-06-23"),
        "han-chot-2026/bao-cao-6-thang-dinh-ky/STP/2026-12": at("2026-12-22"),
        # "trước 17 giờ ngày 20/3" every year: Friday 20/03/2026, a working day.
        "han-chot-2026/bao-cao-nhanh/STP/2026-nhanh": at("2026-03-20", 17),
    }


def test_a_moved_deadline_with_a_time_of_day_says_so_and_its_reminder_carries_a_timed_event() -> (
    None
):
    loaded = load_agreement(FORMS / "han-chot.yaml")
    task = next(
        t for t in build_input(loaded).waiting if t.task_id.endswith("so-ket-quy-3/STP/2026")
    )
    assert task.written_due_at == at("2026-09-19", 17)
    assert task.due_note_vi == (
        "Hạn 19/09/2026 rơi vào thứ Bảy; theo Điều 148 Bộ luật Dân sự, hạn chuyển sang "
        "17:00 ngày 21/09/2026"
    )
    ref = task_ref(build_input(loaded).plan, task)
    request = NotificationRequest(
        business_key=f"{task.task_id}/reminder/1",
        kind=NotificationKind.REMINDER,
        task=ref,
        roles=["focal_point"],
        step=1,
        offset="1d",
        scheduled_at=at("2026-09-18", 7, 30),
    )
    ics = due_date_event(request, {"STP": "Sở Tư pháp"}).decode()
    assert re.search(r"DTSTART;TZID=Asia/Ho_Chi_Minh:20260921T170000", ics), ics


@pytest.mark.parametrize(
    ("due", "message"),
    [
        ("kind: fixed\nbefore: 2026-05-15\nby: 2026-05-14", "give the day as `before:"),
        (
            "kind: fixed\nby: 2026-05-14\ntime: 17:00",
            'write it in quotes as HH:MM, e.g. time: "17:00"',
        ),
        ('kind: fixed\nby: 2026-05-14\ntime: "25:00"', "is not a time of day"),
        ("kind: fixed\nby: 2027-01-01", "outside the agreement's period"),
        (
            'kind: recurring\nmonth: 5\nday: 15\nlabel: "{year}"\ninclusive: true\ntime: "17:00"',
            "drop `inclusive`",
        ),
        ("kind: quarterly\nday: 31", "day 31 does not exist in every last month of a quarter"),
        ('kind: every\nperiod: year\nlabel: "{year}-{day}"', "may only use {year}, {quarter}"),
        ("kind: after_event\nevent: hoi-nghi\nwithin: 12h", "must count days or working days"),
    ],
)
def test_mistakes_in_the_new_forms_are_one_line_errors(
    tmp_path: Path, due: str, message: str
) -> None:
    with pytest.raises(LoadError) as caught:
        load_text(tmp_path, agreement_text(due))
    problems = [str(p) for p in caught.value.problems]
    assert len(problems) == 1, problems
    assert re.match(r".*inline\.yaml:\d+:\d+: reporting\[0\]\.due", problems[0]), problems
    assert message in problems[0], problems


# --------------------------------------------------------------------------------------------
# Point 12: quarters


def test_quarterly_preset_and_the_quarter_placeholder() -> None:
    assert due_by_task(FORMS / "hang-quy.yaml") == {
        # "trước ngày 20 của tháng cuối quý": last days 19/03 (Thursday), 19/06 (Friday).
        "hang-quy-2026/bao-cao-quy/SNV/2026-q1": at("2026-03-20"),
        "hang-quy-2026/bao-cao-quy/SNV/2026-q2": at("2026-06-20"),
        # Saturday 19/09/2026 → Monday 21/09; Saturday 19/12/2026 → Monday 21/12.
        "hang-quy-2026/bao-cao-quy/SNV/2026-q3": at("2026-09-22"),
        "hang-quy-2026/bao-cao-quy/SNV/2026-q4": at("2026-12-22"),
        # "trước ngày 5 của tháng đầu quý", labelled with {quarter}: last days Sunday 04/01
        # → Monday 05/01; Saturday 04/04 → Monday 06/04; Saturday 04/07 → Monday 06/07;
        # Sunday 04/10 → Monday 05/10.
        "hang-quy-2026/ke-hoach-quy/STP/2026-kh-q1": at("2026-01-06"),
        "hang-quy-2026/ke-hoach-quy/STP/2026-kh-q2": at("2026-04-07"),
        "hang-quy-2026/ke-hoach-quy/STP/2026-kh-q3": at("2026-07-07"),
        "hang-quy-2026/ke-hoach-quy/STP/2026-kh-q4": at("2026-10-06"),
    }


def test_middle_month_of_the_quarter_inclusive(tmp_path: Path) -> None:
    due = "kind: quarterly\nday: 15\nmonth_of_quarter: middle\ninclusive: true"
    assert dues_of(load_text(tmp_path, agreement_text(due))) == {
        # Sunday 15/02/2026 falls in Tết (16-20/02) → Monday 23/02/2026.
        "thu-2026/bao-cao/SNV/2026-q1": at("2026-02-24"),
        # Friday 15/05/2026; Saturday 15/08/2026 → Monday 17/08; Sunday 15/11 → Monday 16/11.
        "thu-2026/bao-cao/SNV/2026-q2": at("2026-05-16"),
        "thu-2026/bao-cao/SNV/2026-q3": at("2026-08-18"),
        "thu-2026/bao-cao/SNV/2026-q4": at("2026-11-17"),
    }


# --------------------------------------------------------------------------------------------
# Point 11 on paper: no task until the event; `accord plan --event` previews it


def test_event_obligations_have_no_task_until_the_event() -> None:
    loaded = load_agreement(FORMS / "su-kien.yaml")
    assert [o.task_id for o in loaded.occurrences] == ["su-kien-2026/bao-cao-nam/SNV/2026"]
    found = event_occurrences(
        loaded.agreement, loaded.directory, "hoi-nghi-so-ket", date(2026, 12, 1), "2026-12-01"
    )
    # 5 days after Tuesday 01/12/2026: last day Sunday 06/12 → Monday 07/12/2026.
    assert {o.task_id: o.due_at for o in found} == {
        "su-kien-2026/bao-cao-sau-hoi-nghi/SNV/2026-12-01": at("2026-12-08"),
        "su-kien-2026/bao-cao-sau-hoi-nghi/STP/2026-12-01": at("2026-12-08"),
    }
    found = event_occurrences(loaded.agreement, loaded.directory, "su-co", date(2026, 12, 1), "x")
    # 5 working days after Tuesday 01/12/2026: 02, 03, 04, 07, 08/12 → Tuesday 08/12.
    assert {o.task_id: o.due_at for o in found} == {
        "su-kien-2026/bao-cao-su-co/STP/x": at("2026-12-09")
    }


def test_plan_lists_what_waits_for_an_event_and_previews_it() -> None:
    loaded = load_agreement(FORMS / "su-kien.yaml")
    waiting = plan(loaded)
    assert waiting.tasks == 1
    assert [line.split(":")[0] for line in waiting.awaiting] == [
        "bao-cao-sau-hoi-nghi",
        "bao-cao-su-co",
    ]
    previewed = plan(loaded, events=[PreviewedEvent.parse("su-co=2026-12-01:lan-1")])
    assert previewed.tasks == 2
    assert [line.split(":")[0] for line in previewed.awaiting] == ["bao-cao-sau-hoi-nghi"]
    # Reminder 2d before 09/12/2026 00:00 falls on Monday 07/12: sent in that morning's
    # window, 07:30. Escalation 1wd after: Thursday 10/12, sent at 07:30 (two roles).
    assert [(m.at, m.kind) for m in previewed.mails if "bao-cao-su-co" in m.task] == [
        (at("2026-12-07", 7, 30), "reminder"),
        (at("2026-12-10", 7, 30), "escalation"),
        (at("2026-12-10", 7, 30), "escalation"),
    ]


def test_accord_plan_as_a_subprocess() -> None:
    done = subprocess.run(
        [ACCORD, "plan", str(FORMS / "su-kien.yaml"), "--json", "--event",
         "hoi-nghi-so-ket=2026-12-01"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    summary = lines[-1]["summary"]
    assert summary["tasks"] == 3
    assert summary["awaiting_events"] == [
        "bao-cao-su-co: waiting for event su-co (due 5wd after it; `accord event record`)"
    ]
    subjects = {m["task"]: m["subject"] for m in lines[:-1] if m["kind"] == "reminder"}
    assert subjects["su-kien-2026/bao-cao-sau-hoi-nghi/STP/2026-12-01"].endswith(
        "hạn trước 08/12/2026"
    )
    text = subprocess.run(
        [ACCORD, "plan", str(FORMS / "hang-quy.yaml")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert text.returncode == 0, text.stderr
    assert "bao-cao-quy 2026-q3" in text.stdout


# --------------------------------------------------------------------------------------------
# The schema and the docs


def test_every_new_field_has_a_description_with_an_example() -> None:
    schema = json.dumps(Agreement.model_json_schema(), ensure_ascii=False)
    for form in ("FixedDue", "RecurringDue", "QuarterlyDue", "EveryDue", "EventDue"):
        assert form in schema
    defs = Agreement.model_json_schema()["$defs"]
    new_fields = {
        "FixedDue": ["by", "time"],
        "RecurringDue": ["inclusive", "time", "label"],
        "QuarterlyDue": ["day", "month_of_quarter", "label", "inclusive", "time"],
        "EveryDue": ["period", "label"],
        "EventDue": ["event", "within"],
    }
    for form, fields in new_fields.items():
        for name in fields:
            description = defs[form]["properties"][name].get("description", "")
            assert re.search(r"e\.g\.|'[^']+'|`[^`]+`", description), (form, name, description)


def doc_examples() -> list[str]:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Recurring tasks without a date", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```yaml\n(.*?)```", section, flags=re.S)


def test_the_docs_examples_load(tmp_path: Path) -> None:
    examples = doc_examples()
    assert len(examples) >= 6
    head = agreement_text("kind: none", end="2027-12-31").split("reporting:")[0]
    for example in examples:
        entries = "\n".join("  " + line for line in example.strip().splitlines())
        loaded = load_text(tmp_path, f"{head}reporting:\n{entries}\n")
        assert loaded.agreement.reporting
