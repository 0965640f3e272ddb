"""`accord plan` (the planner on paper) and `accord simulate` (the real workflows on the
time-skipping server, mail over SMTP) list the same messages: instant, kind, task, agency,
recipients and subject. For every shipped agreement, with reports on time and late, and for
small agreements Hypothesis writes (deadlines around Tết and the spring holidays, offsets in
days, working days and hours)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st

from accord.deploy import build_input
from accord.plan import PlannedMail, ScriptedSubmission, plan
from accord.simulation import DeliveredMail, simulate
from agreements.loader import LoadedAgreement, LoadError, load_agreement, load_directory

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "agreements").glob("*.yaml"))
QUANG_BINH = ROOT / "agreements" / "directory" / "quang-binh.yaml"

Line = tuple[str, str, str, str, tuple[str, ...], str]


def _lines(mails: Sequence[PlannedMail | DeliveredMail]) -> list[Line]:
    return sorted(
        (m.at.isoformat(), m.kind, m.task, m.agency, tuple(m.to), m.subject) for m in mails
    )


def _scripted(loaded: LoadedAgreement) -> list[ScriptedSubmission]:
    """The four earliest dated tasks: one report on time (two days before its due instant),
    one late (four days after), in turn."""
    dated = sorted(
        (t for t in build_input(loaded).waiting if t.due_at is not None),
        key=lambda t: (t.due_at, t.task_id),
    )
    scripted = []
    for index, task in enumerate(dated[:4]):
        assert task.due_at is not None
        shift = timedelta(days=-2 if index % 2 == 0 else 4)
        scripted.append(ScriptedSubmission(task.task_id, task.due_at.date() + shift))
    return scripted


def _compare(loaded: LoadedAgreement, submissions: Sequence[ScriptedSubmission]) -> None:
    planned = plan(loaded, submissions=submissions)
    simulated = asyncio.run(simulate(loaded, submissions=submissions))
    planned_lines, simulated_lines = _lines(planned.mails), _lines(simulated.mails)
    only_planned = [line for line in planned_lines if line not in simulated_lines]
    only_simulated = [line for line in simulated_lines if line not in planned_lines]
    assert (only_planned, only_simulated) == ([], [])
    assert planned_lines == simulated_lines
    assert planned.counts == simulated.summary.counts
    assert sorted(planned.warnings) == sorted(simulated.warnings)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_plan_lists_what_simulate_delivers(path: Path) -> None:
    loaded = load_agreement(path)
    _compare(loaded, _scripted(loaded))


def test_plan_matches_simulate_without_reports() -> None:
    _compare(load_agreement(ROOT / "agreements" / "quang-binh-2025-289-kh-ubnd.yaml"), [])


def test_plan_and_simulate_warn_about_a_step_that_reaches_nobody() -> None:
    # Sở Xây dựng has no head: its step 2 (head of agency) reaches nobody; the admin is told.
    loaded = load_agreement(
        ROOT / "tests" / "agreements" / "warnings" / "head-of-agency-held-by-nobody.yaml"
    )
    _compare(loaded, [])
    simulated = asyncio.run(simulate(loaded))
    # Written due date 15/11/2026 (a Sunday; the key keeps the date as written).
    [loader_warning, *run_warnings] = simulated.warnings
    # What validate says about the file comes first, then what the run found.
    assert loader_warning.startswith(f"{loaded.path}:23:16: warning: defaults.escalation[1]")
    assert run_warnings == [
        "12-kh-ubnd-2026/bao-cao-nam/SXD/2026: escalation/2/202611150000 reached nobody: "
        "no officer holds head_of_agency; the admins were told"
    ]
    notices = [m for m in simulated.mails if m.kind == "no_recipient"]
    assert [(m.task, m.to) for m in notices] == [
        ("12-kh-ubnd-2026/bao-cao-nam/SXD/2026", ["quantri@ubnd.example"])
    ]


def test_plan_says_what_validate_warns_about() -> None:
    # A 2026 plan owed by district committees that all ceased on 30/6/2025: no task, and why.
    path = ROOT / "tests" / "agreements" / "warnings" / "owners-all-ceased.yaml"
    planned = plan(load_agreement(path))
    assert (planned.tasks, planned.mails) == (0, [])
    [warning] = planned.warnings
    assert warning.startswith(
        f"{path}:22:7: warning: reporting[0].owners: obligation 'bao-cao-6-thang' has no active "
        "owner for period 2026 (due 2026-05-15)"
    )


OFFSET_AGREEMENTS = sorted(
    p for p in (ROOT / "tests" / "agreements" / "offsets").glob("*.yaml") if p.stem != "directory"
)
"""Issue 13's agreements mixing d and wd offsets, and a task moved past its agency's end."""


@pytest.mark.parametrize("path", OFFSET_AGREEMENTS, ids=[p.stem for p in OFFSET_AGREEMENTS])
def test_plan_matches_simulate_on_mixed_offsets(path: Path) -> None:
    _compare(load_agreement(path), [])


# --------------------------------------------------------------------------------------------
# Generated agreements

HOLIDAYS_2027 = [date(2027, 2, 6), date(2027, 4, 16), date(2027, 4, 30), date(2027, 9, 2)]
"""Tết (6/2), Hùng Kings' day (10/3 lunar), 30/4 and National Day, in 2027."""

_directory = load_directory(QUANG_BINH)
AGENCIES = sorted(
    {o.agency for o in _directory.officers if "focal_point" in [r.value for r in o.roles]}
)
ROLES = ["focal_point", "head_of_agency", "aggregator", "provincial_leadership"]


def _offset(draw: Any) -> str:
    unit = draw(st.sampled_from(["d", "wd", "h"]))
    top = {"d": 12, "wd": 8, "h": 60}[unit]
    return f"{draw(st.integers(1, top))}{unit}"


@st.composite
def agreements(draw: Any) -> dict[str, Any]:
    before = list(dict.fromkeys(_offset(draw) for _ in range(draw(st.integers(0, 3)))))
    steps = [
        {
            "after": _offset(draw),
            "notify": draw(st.lists(st.sampled_from(ROLES), min_size=1, max_size=2, unique=True)),
        }
        for _ in range(draw(st.integers(1, 3)))
    ]
    obligations = []
    for index in range(draw(st.integers(1, 3))):
        holiday = draw(st.sampled_from(HOLIDAYS_2027))
        due = holiday + timedelta(days=draw(st.integers(-6, 8)))
        owners = draw(st.lists(st.sampled_from(AGENCIES), min_size=1, max_size=3, unique=True))
        obligation: dict[str, Any] = {
            "id": f"bao-cao-{index + 1}",
            "title": f"Báo cáo thử {index + 1}",
            "deliverable": "report",
            "owners": {"agencies": owners},
            "due": {"kind": "fixed", "before": due.isoformat()},
        }
        # Always a recipient: a ladder may notify the aggregator.
        obligation["recipient"] = draw(st.sampled_from(AGENCIES))
        obligations.append(obligation)
    return {
        "schema_version": 1,
        "id": "thu-nghiem-2027",
        "document_number": "1/KH-TN",
        "kind": "implementation_plan",
        "title": "Kế hoạch thử nghiệm",
        "province": "Quảng Bình",
        "parties": [{"agency": "UBND_TINH"}],
        "signed_on": "2026-12-01",
        "period": {"start": "2027-01-01", "end": "2027-12-31"},
        "time_zone": "Asia/Ho_Chi_Minh",
        "directory": "directory/quang-binh.yaml",
        "defaults": {
            "reminders": {
                "before": before,
                "notify": draw(
                    st.lists(st.sampled_from(ROLES), min_size=1, max_size=2, unique=True)
                ),
            },
            "escalation": steps,
        },
        "reporting": obligations,
    }


@settings(
    max_examples=5,
    deadline=None,
    # A simulation takes seconds: report the example as generated rather than shrink it.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    document=agreements(), reports=st.lists(st.sampled_from([None, -2, 3]), min_size=3, max_size=3)
)
def test_plan_matches_simulate_on_generated_agreements(
    tmp_path_factory: pytest.TempPathFactory,
    document: dict[str, Any],
    reports: list[int | None],
) -> None:
    """`reports`: per obligation, no report, one two days before the due date (on time) or
    three days after it (late), from every owner."""
    folder = tmp_path_factory.mktemp("generated")
    (folder / "directory").mkdir()
    shutil.copy(QUANG_BINH, folder / "directory" / "quang-binh.yaml")
    path = folder / "agreement.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    try:
        loaded = load_agreement(path)
    except LoadError:
        # E.g. an escalation ladder whose steps are not in order: not an agreement.
        reject()
    submissions = [
        ScriptedSubmission(
            f"{loaded.agreement.agreement_id}/{obligation['id']}/*",
            date.fromisoformat(obligation["due"]["before"]) + timedelta(days=days),
        )
        for obligation, days in zip(document["reporting"], reports, strict=False)
        if days is not None
    ]
    _compare(loaded, submissions)


# --------------------------------------------------------------------------------------------
# Issue 13's forms: a joint report copied to a third agency, leadership of one body, communes


FORMS = ROOT / "tests" / "agreements" / "forms" / "forms-2025.yaml"


@pytest.mark.parametrize("on", [None, "2025-05-14", "2025-05-19"], ids=["none", "on-time", "late"])
def test_plan_matches_simulate_for_joint_reports_copies_and_communes(on: str | None) -> None:
    loaded = load_agreement(FORMS)
    scripted = [ScriptedSubmission.parse(f"mau-2025/bao-cao-chung/*@{on}")] if on else []
    _compare(loaded, scripted)
