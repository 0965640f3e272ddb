"""Issue 13, points 1-3: offsets mixing days and working days, and tasks around an art. 148 move.

The agreements are in `offsets/`; every expected date is worked out by hand below from the
weekdays and the Vietnamese holidays (Tết 2026: Monday 16/02 - Friday 20/02), never read off
Accord's own expansion. `accord plan` runs as a subprocess, as an officer would run it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agreements import planner
from agreements.expansion import cached_calendar
from agreements.loader import LoadError, load_agreement, load_directory, parse_agreement
from agreements.models import EscalationStep, Offset, RecipientRole, ReminderPolicy

ROOT = Path(__file__).resolve().parents[2]
OFFSETS = Path(__file__).parent / "offsets"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
CALENDAR = cached_calendar(range(2025, 2028))
ACCORD = Path(sys.executable).parent / "accord"


def _at(day: date, hour: int = 7, minute: int = 30) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE)


def _plan_json(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    result = subprocess.run(
        [str(ACCORD), "plan", str(path), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return lines[:-1], lines[-1]["summary"]


def _terms(reminders: list[str], ladder: list[str], closes_at: datetime) -> planner.TaskTerms:
    return planner.TaskTerms(
        reminders=ReminderPolicy(before=[Offset.model_validate(o) for o in reminders]),
        escalation=[
            EscalationStep(after=Offset.model_validate(o), notify=[RecipientRole.FOCAL_POINT])
            for o in ladder
        ],
        closes_at=closes_at,
        time_zone="Asia/Ho_Chi_Minh",
    )


# --------------------------------------------------------------------------------------------
# Point 1: a move under art. 148 keeps the task


def test_art148_move_keeps_the_task_of_an_agency_ceasing_on_the_new_last_day() -> None:
    # 29/06/2025 is a Sunday, so "before 30/06" moves to the end of Monday 30/06.
    assert date(2025, 6, 29).weekday() == 6
    loaded = load_agreement(OFFSETS / "art148-active-until.yaml")
    assert loaded.directory.agency("SNV").active_until == date(2025, 6, 30)  # type: ignore[union-attr]
    tasks = {t.task_id: t for t in loaded.occurrences}
    six_months = tasks["13-kh-ubnd-2025/bao-cao-6-thang/SNV/2025"]
    assert six_months.due_at == datetime(2025, 7, 1, tzinfo=ZONE)
    assert six_months.written_due_at == datetime(2025, 6, 30, tzinfo=ZONE)
    # "Before 02/07": last day Tuesday 01/07, after SNV ceased: only STP owes it.
    assert sorted(tasks) == [
        "13-kh-ubnd-2025/bao-cao-6-thang/SNV/2025",
        "13-kh-ubnd-2025/bao-cao-6-thang/STP/2025",
        "13-kh-ubnd-2025/bao-cao-thang-7/STP/2025",
    ]


def test_validate_counts_the_moved_task() -> None:
    result = subprocess.run(
        [str(ACCORD), "validate", str(OFFSETS / "art148-active-until.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 task occurrences (3 dated)" in result.stdout


def test_accord_plan_lists_the_mail_of_the_moved_task() -> None:
    mails, summary = _plan_json(OFFSETS / "art148-active-until.yaml")
    snv = [(m["at"], m["kind"]) for m in mails if m["agency"] == "SNV"]
    assert snv == [
        # 1wd before the due instant 01/07 00:00 is Monday 30/06, its 07:30 window.
        ("2025-06-30T07:30:00+07:00", "reminder"),
        # 1wd after it is Wednesday 02/07 (Tuesday 01/07 + 1 working day), at 07:30.
        ("2025-07-02T07:30:00+07:00", "escalation"),
    ]
    assert summary["tasks"] == 3


# --------------------------------------------------------------------------------------------
# Point 2: reminders mixing d and wd


# "Before 17/02/2026": last day Monday 16/02 is Tết (16-20/02), the next working day is Monday
# 23/02, so the due instant is Tuesday 24/02/2026 00:00. Before it:
#   7d  -> Tuesday 17/02 (Tết)           -> the last window before: Friday 13/02 07:30
#   5wd -> 23/02 (1), Fri 13/02 (2), Thu 12 (3), Wed 11 (4), Tue 10/02 (5) -> 10/02 07:30
#   3d  -> Saturday 21/02 -> back over the weekend and Tết -> Friday 13/02 07:30 (merges with 7d)
#   1wd -> Monday 23/02 07:30
# Ordered by nominal length (7, 5, 3, 1) the 5wd reminder looked "not later" than 7d and was
# dropped; ordered by instants it is the first of three distinct mornings.
TET_REMINDERS = [
    (_at(date(2026, 2, 10)), "5wd"),
    (_at(date(2026, 2, 13)), "7d"),
    (_at(date(2026, 2, 23)), "1wd"),
]


def test_mixed_reminders_before_tet_each_go_out_on_their_own_morning() -> None:
    due = datetime(2026, 2, 24, tzinfo=ZONE)
    result = planner.plan_task(
        _terms(["7d", "5wd", "3d", "1wd"], [], datetime(2026, 12, 31, tzinfo=ZONE)),
        opens_at=datetime(2026, 1, 1, tzinfo=ZONE),
        due_at=due,
        written_due=datetime(2026, 2, 17, tzinfo=ZONE),
        calendar=CALENDAR,
    )
    assert [(n.at, n.offset) for n in result.notices] == TET_REMINDERS
    # Keys keep each offset's rank by nominal length (7d 1, 5wd 2, 3d 3, 1wd 4).
    assert [n.key for n in result.notices] == [
        "reminder/2/202602170000",
        "reminder/1/202602170000",
        "reminder/4/202602170000",
    ]


def test_accord_plan_lists_the_three_tet_reminders() -> None:
    mails, _ = _plan_json(OFFSETS / "mixed-reminders-tet.yaml")
    assert [(m["at"], m["kind"]) for m in mails] == [
        (at.isoformat(), "reminder") for at, _ in TET_REMINDERS
    ]


def test_reminders_in_one_window_go_out_once_and_a_done_one_is_not_resent() -> None:
    # Due Friday 06/03/2026 00:00: 5d is Sunday 01/03, whose last window is Friday 27/02;
    # 5wd is Thu 05 (1), Wed 04 (2), Tue 03 (3), Mon 02 (4), Fri 27/02 (5): the same window.
    due = datetime(2026, 3, 6, tzinfo=ZONE)
    terms = _terms(["5d", "5wd"], [], datetime(2026, 12, 31, tzinfo=ZONE))
    result = planner.plan_task(
        terms,
        opens_at=datetime(2026, 1, 1, tzinfo=ZONE),
        due_at=due,
        written_due=due,
        calendar=CALENDAR,
    )
    assert [(n.at, n.offset) for n in result.notices] == [(_at(date(2026, 2, 27)), "5d")]


# --------------------------------------------------------------------------------------------
# Point 3: escalation ladders mixing d and wd


def test_ladder_steps_go_in_ladder_order_none_skipped() -> None:
    # Due Friday 06/03/2026 00:00. 3wd: Mon 09 (1), Tue 10 (2), Wed 11/03 (3) -> 11/03 07:30.
    # 4d: Tuesday 10/03 -> 10/03 07:30, earlier than step 1: it waits for step 1 and goes with
    # it. 10wd: 9, 10, 11, 12, 13, 16, 17, 18, 19, 20 -> Friday 20/03 07:30.
    assert date(2026, 3, 6).weekday() == 4
    due = datetime(2026, 3, 6, tzinfo=ZONE)
    result = planner.plan_task(
        _terms([], ["3wd", "4d", "10wd"], datetime(2026, 12, 31, tzinfo=ZONE)),
        opens_at=datetime(2026, 1, 1, tzinfo=ZONE),
        due_at=due,
        written_due=due,
        calendar=CALENDAR,
    )
    assert [(n.step, n.offset, n.at) for n in result.notices] == [
        (1, "3wd", _at(date(2026, 3, 11))),
        (2, "4d", _at(date(2026, 3, 11))),
        (3, "10wd", _at(date(2026, 3, 20))),
    ]
    assert result.skipped == []


def test_a_working_day_step_past_its_nominal_length_still_goes_before_the_close() -> None:
    # The agreement closes right at the due instant, so the ladder alone keeps the task open.
    # 10wd after Friday 06/03/2026 is Friday 20/03 (14 calendar days), later than the nominal
    # "10 days + 1" (17/03 00:00) the close used to stop at. The task now closes a day after.
    due = datetime(2026, 3, 6, tzinfo=ZONE)
    result = planner.plan_task(
        _terms([], ["1d", "10wd"], due),
        opens_at=datetime(2026, 1, 1, tzinfo=ZONE),
        due_at=due,
        written_due=due,
        calendar=CALENDAR,
    )
    assert [(n.offset, n.at) for n in result.notices] == [
        ("1d", _at(date(2026, 3, 9))),  # Saturday 07/03 -> Monday 09/03
        ("10wd", _at(date(2026, 3, 20))),
    ]
    assert result.closed_at == _at(date(2026, 3, 21))


def test_the_close_waits_for_a_step_the_last_one_has_to_wait_for() -> None:
    # [3wd, 4d] after Friday 06/03/2026 with the agreement closing at the due instant: the
    # nominal close is 06/03 + 4 days + 1 = Wednesday 11/03 00:00, but step 1 (3wd) falls on
    # Wednesday 11/03 07:30 and step 2 (4d, Tuesday 10/03) waits for it: both go out, and the
    # task closes a day after, Thursday 12/03 07:30.
    due = datetime(2026, 3, 6, tzinfo=ZONE)
    result = planner.plan_task(
        _terms([], ["3wd", "4d"], due),
        opens_at=datetime(2026, 1, 1, tzinfo=ZONE),
        due_at=due,
        written_due=due,
        calendar=CALENDAR,
    )
    assert [(n.step, n.at) for n in result.notices] == [
        (1, _at(date(2026, 3, 11))),
        (2, _at(date(2026, 3, 11))),
    ]
    assert result.closed_at == _at(date(2026, 3, 12))


def test_five_days_then_four_working_days_is_a_valid_ladder() -> None:
    # Due Friday 06/03/2026: 5d is Wednesday 11/03; 4wd is Mon 09, Tue 10, Wed 11, Thu 12/03.
    loaded = load_agreement(OFFSETS / "mixed-ladder.yaml")
    (task,) = loaded.occurrences
    assert [str(s.after) for s in task.escalation] == ["5d", "4wd"]
    assert [str(o) for o in task.reminders.before] == ["5d", "5wd"]
    mails, _ = _plan_json(OFFSETS / "mixed-ladder.yaml")
    assert [(m["at"], m["kind"]) for m in mails] == [
        ("2026-02-27T07:30:00+07:00", "reminder"),  # 5d and 5wd share Friday 27/02's window
        ("2026-03-11T07:30:00+07:00", "escalation"),
        ("2026-03-12T07:30:00+07:00", "escalation"),
    ]


LADDER_AGREEMENT = """\
document_number: 16/KH-UBND
kind: yearly_plan
title: Kế hoạch thử bậc đôn đốc
province: Quảng Bình
parties: [{agency: UBND_TINH}]
signed_on: 2026-01-05
period: {start: 2026-01-01, end: 2026-12-31}
directory: directory.yaml
defaults:
  escalation:
    - {after: STEP1, notify: [focal_point]}
    - {after: STEP2, notify: [head_of_agency]}
reporting:
  - id: bao-cao
    title: Báo cáo
    deliverable: report
    owners: {agencies: [STP]}
    due: {kind: fixed, before: BEFORE}
"""


def _parse(step1: str, step2: str, before: str) -> list[str]:
    text = (
        LADDER_AGREEMENT.replace("STEP1", step1).replace("STEP2", step2).replace("BEFORE", before)
    )
    directory = load_directory(OFFSETS / "directory.yaml")
    try:
        parse_agreement(text, "ladder.yaml", directory)
    except LoadError as exc:
        return [str(p) for p in exc.problems]
    return []


@pytest.mark.parametrize(
    ("step1", "step2", "before", "problem"),
    [
        # Due Friday 06/03: 4d (Tue 10/03) before 3wd (Wed 11/03).
        (
            "3wd",
            "4d",
            "2026-03-06",
            "escalation step 2 (4d) falls on 10/03/2026, before step 1 (3wd) on 11/03/2026 for "
            "obligation 'bao-cao', period 2026, due before 06/03/2026",
        ),
        # Due Wednesday 11/03 (last day Tuesday 10/03): 3wd is Mon 16/03, 4d Sunday 15/03 ->
        # Monday 16/03 07:30: the same window, so in order (they go out together).
        ("3wd", "4d", "2026-03-11", None),
        # Due Friday 06/03: 5d is Wed 11/03, 4wd Thu 12/03.
        ("5d", "4wd", "2026-03-06", None),
        # Due Thursday 30/04/2026 (last day Wed 29/04; 30/04 and 01/05 are holidays):
        # 5d is Tuesday 05/05 07:30; 4wd is Mon 04 (1), Tue 05 (2), Wed 06 (3), Thu 07/05 (4).
        ("5d", "4wd", "2026-04-30", None),
        # Due Tuesday 28/04/2026 (last day Monday 27/04 is the Hùng Kings' day in lieu, so it
        # moves to Tuesday 28/04 and the due instant is Wednesday 29/04): 2wd is Tuesday 05/05
        # (30/04, 01/05 off; Mon 04 (1), Tue 05 (2)); 3d is Saturday 02/05 -> Monday 04/05.
        (
            "2wd",
            "3d",
            "2026-04-28",
            "escalation step 2 (3d) falls on 04/05/2026, before step 1 (2wd) on 05/05/2026 for "
            "obligation 'bao-cao', period 2026, due before 29/04/2026",
        ),
        # Never in order, whatever the date: identical, or days no more than working days.
        ("5d", "5d", "2026-03-06", "5d does not come after 5d"),
        ("5wd", "5d", "2026-03-06", "5d does not come after 5wd"),
        ("1d", "24h", "2026-03-06", "24h does not come after 1d"),
    ],
)  # fmt: skip
def test_ladders_are_checked_by_what_their_offsets_mean(
    step1: str, step2: str, before: str, problem: str | None
) -> None:
    problems = _parse(step1, step2, before)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1
        assert problem in problems[0]
        assert problems[0].startswith("ladder.yaml:12:")  # the second step's `after`


def test_reminder_offsets_distinct_in_meaning_are_accepted_identical_ones_refused() -> None:
    assert [str(o) for o in ReminderPolicy.model_validate({"before": ["5d", "5wd"]}).before] == [
        "5d",
        "5wd",
    ]
    with pytest.raises(ValueError, match="reminder offset 5d is written twice"):
        ReminderPolicy.model_validate({"before": ["5d", "5wd", "5d"]})


def test_offset_agreements_keep_loading() -> None:
    for path in sorted(OFFSETS.glob("*.yaml")):
        if path.name != "directory.yaml":
            assert load_agreement(path).occurrences, path


# --------------------------------------------------------------------------------------------
# The example of docs/agreement-format.md


def test_the_documented_offsets_example_loads_and_sends_on_the_documented_days(
    tmp_path: Path,
) -> None:
    text = (ROOT / "docs" / "agreement-format.md").read_text(encoding="utf-8")
    section = text.split("## Offsets", 1)[1].split("\n## ", 1)[0]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "directory.yaml").write_text(
        (OFFSETS / "directory.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (tmp_path / "example.yaml").write_text(example, encoding="utf-8")
    mails, _ = _plan_json(tmp_path / "example.yaml")
    assert [(m["at"], m["kind"]) for m in mails] == [
        (_at(date(2026, 2, 27)).isoformat(), "reminder"),
        (_at(date(2026, 3, 4)).isoformat(), "reminder"),
        (_at(date(2026, 3, 11)).isoformat(), "escalation"),
        (_at(date(2026, 3, 12)).isoformat(), "escalation"),
    ]
