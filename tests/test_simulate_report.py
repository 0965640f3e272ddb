"""`accord simulate … --report OUT`: the consolidated report of the simulated run, in the
agreement's own years.

The simulation runs an agreement whose period has begun 28 years later (weekdays repeat);
the report's inputs are moved back before they are consolidated (`unshift_report_inputs`,
tested here without a server), then the CLI runs as a user runs it (a subprocess each, as in
test_cli_engine.py: a hung simulation must fail the test, not stop the run)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from accord.cli import main
from accord.simulation import shift_calendar, unshift_label, unshift_report_inputs
from activities.models import AgreementFacts, ObligationFact, TaskFact, TaskState
from agreements.calendar import CalendarDay, WorkingCalendar
from agreements.models import Deliverable
from reports.model import AgencyFact, ExtensionFact, ReportInputs, SubmissionFact, WaiverFact

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
