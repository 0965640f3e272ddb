"""Replay committed histories of real runs against today's workflow code.

A change to workflow logic that running workflows would replay differently fails here, before
it reaches a server: guard such a change with `workflow.patched(...)` (see the README).
Histories are recorded by `tests/workflows/make_histories.py`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

from activities.models import AuditEntry
from workflows.agreement import AgreementWorkflow
from workflows.digest import DigestWorkflow
from workflows.obligation import ObligationWorkflow
from workflows.payloads import TASK_ORDER_SIGNAL, ObligationInput, TaskOrder, TaskOutcome

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_histories_cover_both_workflow_types_and_continue_as_new() -> None:
    names = {p.stem.split("-")[0] for p in HISTORIES}
    assert names == {"agreement", "obligation", "digest"}
    continued = [
        p
        for p in HISTORIES
        if _history(p).events[-1].HasField("workflow_execution_continued_as_new_event_attributes")
    ]
    assert continued, "no recorded history ends in continue-as-new"
    updates = {
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for p in HISTORIES
        for e in _history(p).events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    }
    assert {"request_extension", "decide_extension", "submit_report", "change_calendar"} <= updates
    signals = {
        e.workflow_execution_signaled_event_attributes.signal_name
        for p in HISTORIES
        for e in _history(p).events
        if e.HasField("workflow_execution_signaled_event_attributes")
    }
    assert "task_changed" in signals
    # The calendar is an update since issue 14: no history holds the old signal.
    assert "calendar_changed" not in signals
    activities = {
        e.activity_task_scheduled_event_attributes.activity_type.name
        for p in HISTORIES
        for e in _history(p).events
        if e.HasField("activity_task_scheduled_event_attributes")
    }
    # The agreement's digest timers and its digest children (issue 16) replay too.
    assert "send_digest" in activities
    children = {
        e.start_child_workflow_execution_initiated_event_attributes.workflow_type.name
        for p in HISTORIES
        for e in _history(p).events
        if e.HasField("start_child_workflow_execution_initiated_event_attributes")
    }
    assert {"Obligation", "Digest"} <= children


def test_histories_cover_a_published_calendar() -> None:
    """A task whose deadline moved by a published calendar (the signed update) replays."""
    history = _history(HISTORIES[0].with_stem("obligation-calendar-change"))
    updates = [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert updates == ["change_calendar"]


def test_histories_cover_every_task_order() -> None:
    """Issue 17: tasks that took each kind of their agreement's order (make_histories.py
    `orders`), a task started suspended among them, replay."""
    kinds: list[str] = []
    for path in HISTORIES:
        for event in _history(path).events:
            if not event.HasField("workflow_execution_signaled_event_attributes"):
                continue
            signal = event.workflow_execution_signaled_event_attributes
            if signal.signal_name != TASK_ORDER_SIGNAL:
                continue
            (order,) = pydantic_data_converter.payload_converter.from_payloads(
                list(signal.input.payloads), [TaskOrder]
            )
            assert isinstance(order, TaskOrder)
            kinds.append(order.kind)
    assert set(kinds) == {"withdraw", "move_due", "suspend", "resume", "transfer"}
    started = _history(HISTORIES[0].with_stem("obligation-orders-started-suspended")).events[0]
    (input,) = pydantic_data_converter.payload_converter.from_payloads(
        list(started.workflow_execution_started_event_attributes.input.payloads),
        [ObligationInput],
    )
    assert isinstance(input, ObligationInput)
    assert input.suspension is not None


def test_histories_cover_every_agreement_change() -> None:
    """Issue 17: agreements that took an amendment (and the same again), a suspension and its
    resumption, and a succession applied by their own timer (make_histories.py `amend`,
    `suspend`, `succession`), each ordering its running tasks by signal, replay."""
    updates: set[str] = set()
    orders = 0
    for path in HISTORIES:
        if not path.stem.startswith("agreement-"):
            continue
        for event in _history(path).events:
            if event.HasField("workflow_execution_update_accepted_event_attributes"):
                update = event.workflow_execution_update_accepted_event_attributes
                updates.add(update.accepted_request.input.name)
            if event.HasField("signal_external_workflow_execution_initiated_event_attributes"):
                signal = event.signal_external_workflow_execution_initiated_event_attributes
                orders += signal.signal_name == TASK_ORDER_SIGNAL
    assert {"amend", "suspend", "resume", "succeed"} <= updates
    assert orders >= 4
    amended = _history(HISTORIES[0].with_stem("agreement-amend"))
    accepted = [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for e in amended.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert accepted == ["amend", "amend"]


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_replay_committed_history(path: Path) -> None:
    replayer = Replayer(
        workflows=[AgreementWorkflow, ObligationWorkflow, DigestWorkflow],
        data_converter=pydantic_data_converter,
    )
    await replayer.replay_workflow(_history(path))


@workflow.defn(name="Obligation")
class ReorderedObligation(ObligationWorkflow):
    """A careless change: write an audit entry before anything else, without versioning."""

    @workflow.run
    async def run(self, input: ObligationInput) -> TaskOutcome:
        await workflow.execute_activity(
            "record_audit",
            AuditEntry(
                event_key=f"{input.task.task_id}/started",
                at=workflow.now(),
                agreement_id=input.task.agreement_id,
                action="started",
            ),
            start_to_close_timeout=timedelta(minutes=1),
        )
        return await super().run(input)


async def test_unversioned_change_fails_replay() -> None:
    path = next(p for p in HISTORIES if p.stem == "obligation-extension-late")
    replayer = Replayer(
        workflows=[ReorderedObligation],
        data_converter=pydantic_data_converter,
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(_history(path))
