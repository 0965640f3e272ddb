"""`accord simulate … --report OUT`: the consolidated report of the simulated run, in the
agreement's own years.

The simulation runs an agreement whose period has begun 28 years later (weekdays repeat);
the report's inputs are moved back before they are consolidated (`unshift_report_inputs`,
tested here without a server), then the CLI runs as a user runs it (a subprocess each, as in
test_cli_engine.py: a hung simulation must fail the test, not stop the run)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import docx
import jsonschema
import openpyxl
import pytest

from accord.cli import main
from accord.cli.errors import CommandError
from accord.cli.simulate import write_report
from accord.simulation import shift_calendar, unshift_label, unshift_report_inputs
from activities.models import AgreementFacts, ObligationFact, TaskFact, TaskState
from agreements.calendar import CalendarDay, WorkingCalendar
from agreements.models import Deliverable
from reports.model import (
    AgencyFact,
    ConsolidatedReport,
    ExtensionFact,
    ReportInputs,
    SubmissionFact,
    WaiverFact,
)
from reports.schema import SCHEMA_FILE

ROOT = Path(__file__).resolve().parents[1]
QUANG_BINH_289 = ROOT / "agreements/quang-binh-2025-289-kh-ubnd.yaml"
HCM = ZoneInfo("Asia/Ho_Chi_Minh")
YEARS = 28
AGREEMENT_YEARS = range(2024, 2027)


# --------------------------------------------------------------------------------------------
# Moving the simulated run's inputs back (no server)


def test_unshift_label_moves_back_only_a_shifted_year() -> None:
    assert unshift_label("289-kh-ubnd-2025/bao-cao/STP/2053-6t", YEARS, AGREEMENT_YEARS) == (
        "289-kh-ubnd-2025/bao-cao/STP/2025-6t"
    )
    # The agreement's own year, a number that is no year of the run, and a longer number stay.
    assert unshift_label("2025-q1", YEARS, AGREEMENT_YEARS) == "2025-q1"
    assert unshift_label("x/1999/20530", YEARS, AGREEMENT_YEARS) == "x/1999/20530"
    assert unshift_label("2054", YEARS, AGREEMENT_YEARS) == "2026"
    assert unshift_label("2053", 0, AGREEMENT_YEARS) == "2053"


def _simulated_inputs(calendar: WorkingCalendar) -> ReportInputs:
    """Inputs as the simulation gathers them for a 2025 agreement run 28 years later."""
    due = datetime(2053, 5, 15, tzinfo=HCM)
    task = TaskFact(
        task_id="a-2025/bao-cao/STP/2053-6t",
        obligation_id="bao-cao",
        agency="STP",
        period_label="2053-6t",
        state=TaskState.DONE_LATE,
        due_at=due,
        escalation_level=1,
        closed=True,
    )
    # A due instant the deadline rule moved is written in the agreement's own year.
    moved = TaskFact(
        task_id="a-2025/bao-cao/SNV/2025",
        obligation_id="bao-cao",
        agency="SNV",
        co_owners=["STP"],
        period_label="2025",
        state=None,
        due_at=datetime(2025, 11, 17, tzinfo=HCM),
    )
    undated = TaskFact(
        task_id="a-2025/ke-hoach/TTT/2025",
        obligation_id="ke-hoach",
        agency="TTT",
        period_label="2025",
        state=TaskState.NOT_DONE,
        due_at=None,
        closed=True,
    )
    facts = AgreementFacts(
        agreement_id="a-2025",
        tenant="quang-binh",
        document_number="1/KH-UBND",
        title="Kế hoạch",
        issuer=None,
        time_zone="Asia/Ho_Chi_Minh",
        period_start=date(2053, 1, 1),
        period_end=date(2053, 12, 31),
        as_of=datetime(2054, 1, 30, 10, 0, tzinfo=UTC),
        obligations={
            "bao-cao": ObligationFact(
                obligation_id="bao-cao",
                item_number="III.7",
                title="Báo cáo 6 tháng",
                deliverable=Deliverable.REPORT,
                recipient="SNV",
            )
        },
        tasks=[task, moved, undated],
        calendar=shift_calendar(calendar, YEARS),
    )
    return ReportInputs(
        facts=facts,
        province="Quảng Bình",
        agencies=[AgencyFact(code="STP", name="Sở Tư pháp")],
        submissions=[
            SubmissionFact(
                task_id=task.task_id,
                agency="STP",
                submitted_at=datetime(2053, 5, 20, 2, 0, tzinfo=UTC),
                late=True,
                summary="Báo cáo mô phỏng (accord simulate).",
                indicators={"cong-dan": 0},
            )
        ],
        waivers=[
            WaiverFact(task_id=undated.task_id, at=datetime(2053, 3, 2, tzinfo=UTC), reason="r")
        ],
        extensions=[
            ExtensionFact(
                task_id=task.task_id, at=datetime(2053, 5, 1, tzinfo=UTC), new_due=date(2053, 5, 22)
            )
        ],
    )


def test_unshift_report_inputs_puts_every_date_label_and_id_in_the_agreements_years() -> None:
    calendar = WorkingCalendar(
        first_year=2024,
        last_year=2026,
        days_off=(
            CalendarDay(
                day=date(2025, 9, 2), name_vi="Quốc khánh", name_en="National Day", source="t"
            ),
        ),
        source="test",
    )
    simulated = _simulated_inputs(calendar)

    real = unshift_report_inputs(simulated, YEARS, AGREEMENT_YEARS, calendar)

    facts = real.facts
    assert (facts.period_start, facts.period_end) == (date(2025, 1, 1), date(2025, 12, 31))
    assert facts.as_of == datetime(2026, 1, 30, 10, 0, tzinfo=UTC)
    assert facts.calendar == calendar
    assert [(t.task_id, t.period_label, t.due_at) for t in facts.tasks] == [
        ("a-2025/bao-cao/STP/2025-6t", "2025-6t", datetime(2025, 5, 15, tzinfo=HCM)),
        ("a-2025/bao-cao/SNV/2025", "2025", datetime(2025, 11, 17, tzinfo=HCM)),
        ("a-2025/ke-hoach/TTT/2025", "2025", None),
    ]
    # Everything else about a task is as the run left it.
    assert [(t.state, t.escalation_level, t.closed, t.co_owners) for t in facts.tasks] == [
        (TaskState.DONE_LATE, 1, True, []),
        (None, 0, False, ["STP"]),
        (TaskState.NOT_DONE, 0, True, []),
    ]
    assert facts.obligations == simulated.facts.obligations
    [submission] = real.submissions
    assert submission.task_id == "a-2025/bao-cao/STP/2025-6t"
    assert submission.submitted_at == datetime(2025, 5, 20, 2, 0, tzinfo=UTC)
    assert (submission.late, submission.indicators) == (True, {"cong-dan": 0})
    [waiver] = real.waivers
    assert (waiver.task_id, waiver.at, waiver.reason) == (
        "a-2025/ke-hoach/TTT/2025",
        datetime(2025, 3, 2, tzinfo=UTC),
        "r",
    )
    [extension] = real.extensions
    assert (extension.task_id, extension.at, extension.new_due) == (
        "a-2025/bao-cao/STP/2025-6t",
        datetime(2025, 5, 1, tzinfo=UTC),
        date(2025, 5, 22),
    )
    assert (real.province, real.agencies) == (simulated.province, simulated.agencies)
    # Not shifted at all: unchanged.
    assert unshift_report_inputs(simulated, 0, AGREEMENT_YEARS, calendar) == simulated


# --------------------------------------------------------------------------------------------
# The CLI's checks, before any simulation starts


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--report", "out.pdf"],
            "accord simulate: --report out.pdf: the file name must end in .json, .md, .xlsx, "
            ".docx (the report's format)\n",
        ),
        (["--report", "report"], "accord simulate: --report report: the file name must end in "),
        (["--period", "2025-6t"], "accord simulate: --period needs --report OUT\n"),
        (
            ["--report", "out.json", "--period", "2025-q3"],
            "accord simulate: --period 2025-q3: not a period of 289-kh-ubnd-2025 (its periods: "
            "2025, 2025-6t)\n",
        ),
    ],
)
def test_simulate_report_arguments_are_checked_before_the_simulation(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    argv: list[str],
    message: str,
) -> None:
    """One line and exit code 2 at once: no listing (the simulation did not run), no file."""
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code = main(["simulate", str(QUANG_BINH_289), *argv])
    out, err = capsys.readouterr()

    assert code == 2
    assert out == ""
    assert err.startswith(message)
    assert err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# accord simulate --report, as a user runs it (a few seconds each)

SIX_MONTH = "289-kh-ubnd-2025/bao-cao-6-thang"
SUBMITS = (
    # Sở Tư pháp and Sở Văn hóa, Thể thao và Du lịch on time (due before 15/05/2025)…
    "--submit",
    f"{SIX_MONTH}/S*@2025-05-10",
    # …the People's Committee of Đồng Hới late (Tuesday 20/05: 15, 16, 19 and 20 May).
    "--submit",
    f"{SIX_MONTH}/UBND_DONG_HOI/*@2025-05-20",
)
SUBMITTED = {"STP": "on_time", "SVHTTDL": "on_time", "UBND_DONG_HOI": "late"}
SIX_MONTH_OWNERS = [
    # The six-month report's owing agencies, in the directory's order.
    "VP_UBND",
    "STP",
    "SVHTTDL",
    "TTT",
    "DAI_PTTH",
    "CONG_TTDT",
    "UBND_DONG_HOI",
    "UBND_BA_DON",
    "UBND_LE_THUY",
    "UBND_QUANG_NINH",
    "UBND_BO_TRACH",
    "UBND_QUANG_TRACH",
    "UBND_TUYEN_HOA",
    "UBND_MINH_HOA",
]
SHIFTED_YEAR = re.compile(r"\b20[4-9]\d\b")
"""A year of the simulated run (28 years later) left in a report of a 2025 agreement."""


ACCORD = str(Path(sys.executable).parent / "accord")


def run_simulate(*argv: str) -> subprocess.CompletedProcess[str]:
    """`accord simulate` on plan 289 in a process group of its own, so that a timeout also
    ends the test server it started."""
    with subprocess.Popen(
        [ACCORD, "simulate", str(QUANG_BINH_289), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            out, err = process.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            pytest.fail(f"`accord simulate {' '.join(argv)}` did not finish within 180 s")
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _minute(text: str) -> datetime:
    """A scripted report is received at 09:00 and a few milliseconds of workflow time."""
    return datetime.fromisoformat(text).replace(second=0, microsecond=0)


def test_simulate_report_json_is_the_report_of_the_simulated_run_in_the_agreements_years(
    tmp_path: Path,
) -> None:
    """Slow (~10 s): plan 289 simulated with three six-month reports."""
    out = tmp_path / "preview.json"

    result = run_simulate("--json", *SUBMITS, "--report", str(out))

    assert result.returncode == 0, result.stderr[-2000:]
    assert f"report: {out}\n" in result.stderr
    # stdout is still the JSON lines of the mails and the summary.
    *_, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert summary["summary"]["task_states"]["done_on_time"] == 2
    assert [path.name for path in tmp_path.iterdir()] == ["preview.json"]
    text = out.read_text(encoding="utf-8")
    assert SHIFTED_YEAR.findall(text) == []
    report = json.loads(text)
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text("utf-8")))
    assert list(validator.iter_errors(report)) == []
    assert report["agreement_id"] == "289-kh-ubnd-2025"
    assert report["period"] is None
    assert sorted(report["periods"]) == ["2025", "2025-6t"]
    # The simulated run ends when the agreement closes (30/01/2026, its own date).
    assert report["as_of"].startswith("2026-01-30T")

    six_month = {t["agency"]: t for t in report["tasks"] if t["obligation_id"] == "bao-cao-6-thang"}
    assert list(six_month) == SIX_MONTH_OWNERS
    for agency, task in six_month.items():
        assert task["task_id"] == f"{SIX_MONTH}/{agency}/2025-6t"
        assert task["period_label"] == "2025-6t"
        assert task["due_at"] == "2025-05-15T00:00:00+07:00"
        if agency in SUBMITTED:
            assert task["status"] == SUBMITTED[agency], agency
        else:
            # Never reported: the ladder ran out (three levels) and the period ended.
            assert (task["status"], task["submitted_at"]) == ("not_done", None), agency
            assert task["escalation_level"] == 3
    assert _minute(six_month["STP"]["submitted_at"]) == datetime(2025, 5, 10, 9, 0, tzinfo=HCM)
    late = six_month["UBND_DONG_HOI"]
    assert _minute(late["submitted_at"]) == datetime(2025, 5, 20, 9, 0, tzinfo=HCM)
    assert late["late_working_days"] == 4

    missing = [m for m in report["missing"] if m["task_id"].startswith(SIX_MONTH)]
    assert [m["agency"] for m in missing] == [a for a in SIX_MONTH_OWNERS if a not in SUBMITTED]
    assert {(m["status"], m["escalation_level"]) for m in missing} == {("not_done", 3)}

    # The scripted reports' placeholder figures (zero each) are summed over the agencies that
    # reported; the others are listed as missing, not counted.
    indicators = {
        i["code"]: i for i in report["indicators"] if i["obligation_id"] == "bao-cao-6-thang"
    }
    reported = [a for a in SIX_MONTH_OWNERS if a in SUBMITTED]
    not_reported = [a for a in SIX_MONTH_OWNERS if a not in SUBMITTED]
    for indicator in indicators.values():
        assert [v["agency"] for v in indicator["per_agency"]] == reported
        assert indicator["missing"] == not_reported
    visits = indicators["cong-dan-duoc-tiep"]
    assert visits["count"] == sum(v["value"] for v in visits["per_agency"]) == 0
    dossiers = indicators["ho-so-tthc-dung-han"]
    assert (dossiers["done"], dossiers["total"], dossiers["ratio"]) == (0, 0, None)
    models = indicators["mo-hinh-dan-van-kheo"]
    assert models["breakdown"] == {
        "văn hóa - xã hội": 0,
        "kinh tế": 0,
        "quốc phòng - an ninh": 0,
        "xây dựng hệ thống chính trị": 0,
        "“04 không”": 0,
    }
    narratives = [n for n in report["narratives"] if n["task_id"].startswith(SIX_MONTH)]
    assert [n["agency"] for n in narratives] == reported
    assert {n["summary"] for n in narratives} == {"Báo cáo mô phỏng (accord simulate)."}


def test_simulate_report_xlsx_of_the_six_month_period(tmp_path: Path) -> None:
    """Slow (~10 s): the same run, the six-month period's report as a workbook."""
    out = tmp_path / "preview.xlsx"

    result = run_simulate(*SUBMITS, "--report", str(out), "--period", "2025-6t")

    assert result.returncode == 0, result.stderr[-2000:]
    # The listing, its note on the 28 years, then where the report went.
    assert result.stdout.endswith(f"dates are shown as in the agreement)\nreport: {out}\n")
    assert [path.name for path in tmp_path.iterdir()] == ["preview.xlsx"]
    workbook = openpyxl.load_workbook(out)
    summary = {row[0]: row[1] for row in workbook["Tổng hợp"].iter_rows(values_only=True)}
    assert summary["Kỳ báo cáo"] == "2025-6t"
    assert summary["Số liệu tính đến"].year == 2026
    assert summary["Tổng số nhiệm vụ"] == len(SIX_MONTH_OWNERS)
    assert (summary["Số báo cáo đã đến hạn"], summary["Số báo cáo đúng hạn"]) == (14, 2)
    sheet = workbook["Tình hình nộp báo cáo"]
    header, *rows = sheet.iter_rows(values_only=True)
    column = {name: index for index, name in enumerate(header)}
    tasks = {row[column["Mã cơ quan"]]: row for row in rows}
    assert list(tasks) == SIX_MONTH_OWNERS
    assert {row[column["Kỳ báo cáo"]] for row in rows} == {"2025-6t"}
    # Workbook times are the report's local times, without a zone.
    due = datetime(2025, 5, 15, tzinfo=HCM).replace(tzinfo=None)
    assert {row[column["Hạn nộp (trước ngày)"]] for row in rows} == {due}
    late = tasks["UBND_DONG_HOI"]
    received = datetime(2025, 5, 20, 9, 0, tzinfo=HCM).replace(tzinfo=None)
    assert late[column["Thời điểm nộp"]].replace(second=0, microsecond=0) == received
    assert late[column["Tình trạng"]] == "Trễ hạn"
    assert late[column["Số ngày trễ"]] == 4
    assert tasks["STP"][column["Tình trạng"]] == "Đúng hạn"
    assert tasks["VP_UBND"][column["Tình trạng"]] == "Không nộp"
    assert tasks["VP_UBND"][column["Thời điểm nộp"]] is None


# --------------------------------------------------------------------------------------------
# Writing the report (no server)


def _real_inputs() -> ReportInputs:
    calendar = WorkingCalendar(first_year=2024, last_year=2026, source="test")
    return unshift_report_inputs(_simulated_inputs(calendar), YEARS, AGREEMENT_YEARS, calendar)


def test_write_report_replaces_the_file_whole_or_not_at_all(tmp_path: Path) -> None:
    out = tmp_path / "bao-cao.json"
    out.write_text("the previous report", encoding="utf-8")

    with pytest.raises(CommandError) as error:
        write_report(_real_inputs(), out, ".json", period="2025-q3")
    assert error.value.code == 2
    assert "2025-q3" in str(error.value)
    assert out.read_text(encoding="utf-8") == "the previous report"

    write_report(_real_inputs(), out, ".json", period="2025-6t")

    assert [path.name for path in tmp_path.iterdir()] == ["bao-cao.json"]
    report = ConsolidatedReport.model_validate_json(out.read_text(encoding="utf-8"))
    assert (report.period, report.periods) == ("2025-6t", ["2025-6t"])
    [task] = report.tasks
    assert (task.task_id, task.due_at, task.extended_to) == (
        "a-2025/bao-cao/STP/2025-6t",
        datetime(2025, 5, 15, tzinfo=HCM),
        date(2025, 5, 22),
    )

    with pytest.raises(CommandError) as unwritable:
        write_report(_real_inputs(), tmp_path / "no-such-folder" / "r.json", ".json", period=None)
    assert str(unwritable.value).startswith(f"--report {tmp_path}/no-such-folder/r.json: cannot")


def test_write_report_as_markdown(tmp_path: Path) -> None:
    out = tmp_path / "bao-cao.md"

    write_report(_real_inputs(), out, ".md", period=None)

    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# Báo cáo tổng hợp: 1/KH-UBND — Kế hoạch"
    assert "- Kỳ báo cáo: toàn bộ thời gian thực hiện" in lines
    assert "- Số liệu tính đến: 30/01/2026 17:00" in lines
    assert any(
        line.startswith("| Sở Tư pháp (STP) | III.7 Báo cáo 6 tháng | 2025-6t | trước 15/05/2025 |")
        for line in lines
    )
    assert SHIFTED_YEAR.findall("\n".join(lines)) == []


def test_write_report_as_a_docx_draft(tmp_path: Path) -> None:
    out = tmp_path / "bao-cao.docx"

    write_report(_real_inputs(), out, ".docx", period="2025-6t")

    document = docx.Document(str(out))
    paragraphs = [paragraph.text for paragraph in document.paragraphs]
    assert "Kết quả thực hiện kế hoạch (1/KH-UBND), kỳ báo cáo 2025-6t" in paragraphs
    rows = [[cell.text for cell in row.cells] for table in document.tables for row in table.rows]
    assert [
        "1",
        "Sở Tư pháp",
        "Báo cáo 6 tháng (2025-6t)",
        "15/05/2025",
        "Trễ hạn",
        "Nộp 20/05/2025 09:00, trễ 4 ngày làm việc",
    ] in rows
    # The three charts.
    assert len(document.inline_shapes) == 3
    assert SHIFTED_YEAR.findall("\n".join(paragraphs + [c for row in rows for c in row])) == []
