"""The planner on its own: pure, Temporal-free, and right about the sending windows."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from agreements import planner
from agreements.expansion import cached_calendar
from agreements.models import (
    EscalationStep,
    ExtensionApprover,
    LeadershipOf,
    OfficerRole,
    Offset,
    RecipientRole,
    ReminderPolicy,
)
from agreements.recipients import Holder, pick_recipients, role_scopes

ROOT = Path(__file__).resolve().parents[2]
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
CALENDAR = cached_calendar(range(2025, 2028))


def _terms(*, recipient: bool = True) -> planner.TaskTerms:
    return planner.TaskTerms(
        reminders=ReminderPolicy(before=[Offset.model_validate(o) for o in ("7d", "3d", "1d")]),
        escalation=[
            EscalationStep(after=Offset.model_validate("1d"), notify=[RecipientRole.FOCAL_POINT]),
            EscalationStep(
                after=Offset.model_validate("5wd"),
                notify=[RecipientRole.HEAD_OF_AGENCY, RecipientRole.AGGREGATOR],
            ),
        ],
        closes_at=datetime(2027, 1, 1, tzinfo=ZONE),
        time_zone="Asia/Ho_Chi_Minh",
        has_recipient=recipient,
    )


def test_importing_the_planner_leaves_temporal_unloaded() -> None:
    code = (
        "import sys; import agreements.planner, agreements.recipients; "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'temporalio'); "
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_reminders_around_tet_go_out_once_on_the_last_working_morning_before() -> None:
    """Due 23/02/2026, the Monday after Tết (days off 16–20/02): 7d, 3d and 1d land on
    16/02, 20/02 and Sunday 22/02, all in Friday 13/02's window, and go out once."""
    due = datetime(2026, 2, 23, tzinfo=ZONE)
    result = planner.plan_task(
        _terms(),
        opens_at=datetime(2026, 1, 1, tzinfo=ZONE),
        due_at=due,
        written_due=due,
        calendar=CALENDAR,
    )
    sent = [(n.kind, n.at) for n in result.notices if n.kind == "reminder"]
    assert sent == [("reminder", datetime(2026, 2, 13, 7, 30, tzinfo=ZONE))]
    assert result.state == "not_done_overdue"
    escalations = [n for n in result.notices if n.kind == "escalation"]
    assert [n.roles for n in escalations] == [
        (RecipientRole.FOCAL_POINT,),
        (RecipientRole.HEAD_OF_AGENCY, RecipientRole.AGGREGATOR),
    ]
    assert all(CALENDAR.is_working_day(n.at.date()) for n in escalations)


def test_a_report_stops_the_ladder_and_gets_a_receipt() -> None:
    due = datetime(2025, 5, 15, tzinfo=ZONE)
    submitted = datetime(2025, 5, 19, 9, tzinfo=ZONE)
    result = planner.plan_task(
        _terms(),
        opens_at=datetime(2025, 1, 1, tzinfo=ZONE),
        due_at=due,
        written_due=due,
        calendar=CALENDAR,
        submitted_at=submitted,
    )
    kinds = [n.kind for n in result.notices]
    assert kinds == ["reminder", "reminder", "reminder", "escalation", "receipt"]
    receipt = result.notices[-1]
    assert (receipt.at, receipt.late) == (submitted, True)
    assert receipt.roles == (RecipientRole.FOCAL_POINT, RecipientRole.AGGREGATOR)
    assert result.state == "done_late"


def test_stale_actions_are_skipped_not_sent() -> None:
    """A task opened two days before its due instant: the 7d and 3d reminders are past."""
    due = datetime(2025, 5, 15, tzinfo=ZONE)
    result = planner.plan_task(
        _terms(recipient=False),
        opens_at=due - timedelta(days=2),
        due_at=due,
        written_due=due,
        calendar=CALENDAR,
        submitted_at=datetime(2025, 5, 14, 9, tzinfo=ZONE),
    )
    assert [a.offset for a in result.skipped] == ["7d", "3d"]
    assert [(n.kind, n.late) for n in result.notices] == [("reminder", None), ("receipt", False)]
    assert result.notices[-1].roles == (RecipientRole.FOCAL_POINT,)


def test_deadline_rule_moves_a_weekend_deadline_and_says_why() -> None:
    from agreements.models import DeadlineRule

    written = datetime(2026, 11, 15, tzinfo=ZONE)  # last day Saturday 14/11
    moved = planner.deadline(written, DeadlineRule.NEXT_WORKING_DAY, CALENDAR)
    assert moved.due_at == datetime(2026, 11, 17, tzinfo=ZONE)
    assert moved.note_vi and "16/11/2026" in moved.note_vi
    assert planner.deadline(written, DeadlineRule.AS_WRITTEN, None).due_at == written


def test_roles_reach_officers_once_per_address_in_role_order() -> None:
    officers = [
        ("a", Holder("SNV", "P", {OfficerRole.FOCAL_POINT.value}, "a@x.example")),
        ("b", Holder("STP", "P", {OfficerRole.FOCAL_POINT.value}, "b@x.example")),
        ("c", Holder("STP", "P", {OfficerRole.HEAD.value}, "B@x.example")),
        ("d", Holder("UBND", "P", {OfficerRole.PROVINCIAL_LEADERSHIP.value}, "d@x.example")),
        ("e", Holder("X", "Q", {OfficerRole.PROVINCIAL_LEADERSHIP.value}, "e@x.example")),
    ]
    scopes = role_scopes(
        [
            RecipientRole.HEAD_OF_AGENCY,
            RecipientRole.FOCAL_POINT,
            RecipientRole.AGGREGATOR,
            RecipientRole.PROVINCIAL_LEADERSHIP,
        ],
        agency="STP",
        recipient="SNV",
    )
    assert pick_recipients(scopes, officers, "P") == [
        ("c", RecipientRole.HEAD_OF_AGENCY),
        ("a", RecipientRole.AGGREGATOR),
        ("d", RecipientRole.PROVINCIAL_LEADERSHIP),
    ]
    assert role_scopes([RecipientRole.AGGREGATOR], agency="STP", recipient=None) == []


def test_task_calendar_is_cut_around_the_due_year() -> None:
    cut = planner.task_calendar(CALENDAR, datetime(2026, 5, 1, tzinfo=ZONE), datetime.now(ZONE))
    assert cut is not None and (cut.first_year, cut.last_year) == (2025, 2027)
    assert planner.task_calendar(None, None, datetime.now(ZONE)) is None
    assert date(2026, 5, 1) not in [d.day for d in cut.make_up_working_days]


def test_an_extension_request_reaches_the_aggregator_and_whoever_decides_it() -> None:
    both = [ExtensionApprover.RECIPIENT_HEAD, ExtensionApprover.PROVINCIAL_LEADERSHIP]
    with_recipient = _terms(recipient=True)
    assert planner.extension_request_roles(with_recipient, recipient="SNV", approvers=both) == (
        RecipientRole.AGGREGATOR,
        LeadershipOf(leadership_of="SNV"),
    )
    assert planner.extension_request_roles(
        with_recipient, recipient="SNV", approvers=[ExtensionApprover.PROVINCIAL_LEADERSHIP]
    ) == (RecipientRole.AGGREGATOR, RecipientRole.PROVINCIAL_LEADERSHIP)
    # Nobody receives the deliverable: the provincial leadership decides, and is told.
    assert planner.extension_request_roles(
        _terms(recipient=False), recipient=None, approvers=both
    ) == (RecipientRole.PROVINCIAL_LEADERSHIP,)
    assert (
        planner.extension_request_roles(
            _terms(recipient=False), recipient=None, approvers=[ExtensionApprover.RECIPIENT_HEAD]
        )
        == ()
    )
