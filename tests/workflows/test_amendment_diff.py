"""`workflows.amendment`: what a new version of an agreement changes, on hand-built plans and
tasks (no loader, no expansion), with every expected line and list written out."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from agreements.models import DeadlineRule, Deliverable, EscalationStep, ReminderPolicy
from workflows.amendment import KnownTask, TaskDiff, event_obligations, plan_diff, task_diff
from workflows.payloads import AgencySpan, AgreementPlan, ObligationPlan, PlannedTask, TaskState

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


def obligation(key: str, item: str | None = "I.1", **changes: object) -> ObligationPlan:
    fields: dict[str, object] = {
        "obligation_id": key,
        "item_number": item,
        "title": f"Báo cáo {key}",
        "deliverable": Deliverable.REPORT,
        "recipient": "SNV",
        "reminders": ReminderPolicy(before=["3d"]),
        "escalation": [EscalationStep(after="1d", notify=["head_of_agency"])],
    }
    fields.update(changes)
    return ObligationPlan.model_validate(fields)


def plan(*obligations: ObligationPlan, **changes: object) -> AgreementPlan:
    fields: dict[str, object] = {
        "agreement_id": "kh-1",
        "tenant": "tinh-mau",
        "document_number": "1/KH-UBND",
        "title": "Kế hoạch",
        "time_zone": "Asia/Ho_Chi_Minh",
        "period_start": date(2026, 1, 1),
        "period_end": date(2026, 12, 31),
        "starts_at": at("2026-01-01T00:00"),
        "ends_at": at("2027-01-01T00:00"),
        "closes_at": at("2027-01-31T00:00"),
        "obligations": {o.obligation_id: o for o in obligations},
        "sending_time": time(7, 30),
    }
    fields.update(changes)
    return AgreementPlan.model_validate(fields)


def test_same_plans_differ_in_nothing() -> None:
    old = plan(obligation("a"), obligation("b", "II.1"))
    assert plan_diff(old, old) == []


def test_each_kind_of_change_is_one_line_in_a_stable_order() -> None:
    old = plan(
        obligation("a"),
        obligation("b", "II.1"),
        obligation("e", "I.1", event="hoi-nghi", within="5d", owners={"SNV": AgencySpan()}),
    )
    new = plan(
        obligation("a", recipient="UBND_TINH", reminders=ReminderPolicy(before=["7d", "3d"])),
        obligation("c", "III.3", title="Báo cáo mới"),
        obligation(
            "e",
            "I.1",
            event="hoi-nghi",
            within="10d",
            owners={"STP": AgencySpan(), "SNV": AgencySpan(active_until=date(2026, 6, 30))},
            deadline_rule=DeadlineRule.AS_WRITTEN,
        ),
        period_end=date(2027, 6, 30),
    )
    assert plan_diff(old, new) == [
        "agreement period end changed: 2026-12-31 -> 2027-06-30",
        "item II.1 removed",
        "item III.3 added",
        "obligation removed: b (item II.1): Báo cáo b",
        "obligation added: c (item III.3): Báo cáo mới",
        "obligation a: recipient changed: SNV -> UBND_TINH",
        "obligation a: reminders changed: {before: [3d]} -> {before: [7d, 3d]}",
        "obligation e: owner added: STP",
        "obligation e: owner SNV dates changed: default -> {active_until: 2026-06-30}",
        "obligation e: due after the event changed: 5d -> 10d",
        "obligation e: deadline rule changed: next_working_day -> as_written",
    ]
    # Reversed: the same changes the other way, in the same order of kinds.
    assert plan_diff(new, old)[:5] == [
        "agreement period end changed: 2027-06-30 -> 2026-12-31",
        "item III.3 removed",
        "item II.1 added",
        "obligation removed: c (item III.3): Báo cáo mới",
        "obligation added: b (item II.1): Báo cáo b",
    ]


def test_an_escalation_change_and_an_item_renumbered() -> None:
    old = plan(obligation("a"))
    new = plan(
        obligation(
            "a",
            "I.2",
            escalation=[EscalationStep(after="2d", notify=["head_of_agency"])],
        )
    )
    assert plan_diff(old, new) == [
        "item I.1 removed",
        "item I.2 added",
        "obligation a: item changed: I.1 -> I.2",
        "obligation a: escalation changed: [{after: 1d, notify: [head_of_agency]}] -> "
        "[{after: 2d, notify: [head_of_agency]}]",
    ]


def task(
    task_id: str,
    due: str | None,
    *,
    agency: str = "SNV",
    written: str | None = None,
    opens: str = "2026-01-01T00:00",
) -> PlannedTask:
    return PlannedTask(
        task_id=task_id,
        obligation_id=task_id.split("/")[1],
        agency=agency,
        period_label=task_id.split("/")[3],
        due_at=at(due) if due else None,
        written_due_at=at(written) if written else None,
        opens_at=at(opens),
    )


NOW = at("2026-06-10T09:00")


def test_task_diff_sorts_every_change() -> None:
    waiting_kept = task("kh-1/a/SNV/2026-Q3", "2026-09-15T00:00")
    waiting_moved = task("kh-1/a/SNV/2026-Q4", "2026-12-15T00:00")
    known = [
        # started, open, due date moved by the amendment (15/06 -> 30/06)
        KnownTask("kh-1/a/SNV/2026-Q2", at("2026-06-15T00:00"), None, TaskState.PENDING),
        # started, open, not in the new version: withdrawn
        KnownTask("kh-1/b/STP/2026-Q2", at("2026-06-20T00:00"), None, TaskState.OVERDUE),
        # closed and not in the new version: untouched
        KnownTask("kh-1/b/STP/2026-Q1", at("2026-03-20T00:00"), None, TaskState.DONE_ON_TIME, True),
        # closed and moved in the new version: untouched
        KnownTask("kh-1/a/SNV/2026-Q1", at("2026-03-15T00:00"), None, TaskState.DONE_LATE, True),
        # started, an extension moved due_at, written unchanged: not moved
        KnownTask(
            "kh-1/a/STP/2026-Q2",
            at("2026-06-25T00:00"),
            at("2026-06-15T00:00"),
            TaskState.PENDING,
        ),
        KnownTask("kh-1/a/SNV/2026-Q3", waiting_kept.due_at, None, None, planned=waiting_kept),
        KnownTask("kh-1/a/SNV/2026-Q4", waiting_moved.due_at, None, None, planned=waiting_moved),
        KnownTask("kh-1/b/STP/2026-Q3", at("2026-09-20T00:00"), None, None),
    ]
    new = [
        task("kh-1/a/SNV/2026-Q1", "2026-03-31T00:00"),
        task("kh-1/a/SNV/2026-Q2", "2026-06-30T00:00"),
        task("kh-1/a/STP/2026-Q2", "2026-06-15T00:00", written="2026-06-15T00:00"),
        waiting_kept,
        task("kh-1/a/SNV/2026-Q4", "2026-12-15T00:00", agency="SNV", opens="2026-11-01T00:00"),
        task("kh-1/c/SNV/2026-Q2", "2026-06-01T00:00"),  # due before NOW: skipped
        task("kh-1/c/SNV/2026-Q3", "2026-09-01T00:00"),
        task("kh-1/c/SNV/once", None),
    ]
    diff = task_diff(known, new, NOW)
    assert [t.task_id for t in diff.added] == ["kh-1/c/SNV/2026-Q3", "kh-1/c/SNV/once"]
    assert diff.withdrawn_started == ["kh-1/b/STP/2026-Q2"]
    assert diff.withdrawn_waiting == ["kh-1/b/STP/2026-Q3"]
    assert [t.task_id for t in diff.moved_started] == ["kh-1/a/SNV/2026-Q2"]
    assert diff.moved_started[0].due_at == at("2026-06-30T00:00")
    assert [t.task_id for t in diff.moved_waiting] == ["kh-1/a/SNV/2026-Q4"]
    assert diff.moved_waiting[0].opens_at == at("2026-11-01T00:00")
    assert diff.skipped == ["kh-1/c/SNV/2026-Q2"]
    assert not diff.empty


def test_the_same_tasks_again_change_nothing() -> None:
    tasks = [task("kh-1/a/SNV/2026-Q3", "2026-09-15T00:00")]
    known = [KnownTask("kh-1/a/SNV/2026-Q3", tasks[0].due_at, None, None, planned=tasks[0])]
    assert task_diff(known, tasks, NOW) == TaskDiff()
    assert task_diff(known, tasks, NOW).empty


def test_a_new_task_due_exactly_now_is_added() -> None:
    diff = task_diff([], [task("kh-1/a/SNV/x", "2026-06-10T09:00")], NOW)
    assert [t.task_id for t in diff.added] == ["kh-1/a/SNV/x"] and diff.skipped == []


def test_tasks_a_recorded_event_started_are_kept() -> None:
    """No file plans an event's tasks (`accord event record` starts them): an amendment keeps
    them while the new version keeps their obligation, and withdraws them once it is gone."""
    conference = obligation("hoi-nghi", event="hoi-nghi-so-ket", within="15d")
    started = KnownTask(
        "kh-1/hoi-nghi/SNV/2026-06-01", at("2026-06-16T00:00"), None, TaskState.PENDING
    )
    assert event_obligations(plan(obligation("a"), conference)) == {"hoi-nghi"}
    kept = task_diff([started], [], NOW, event_obligations(plan(obligation("a"), conference)))
    assert kept.empty
    gone = task_diff([started], [], NOW, event_obligations(plan(obligation("a"))))
    assert gone.withdrawn_started == ["kh-1/hoi-nghi/SNV/2026-06-01"]
