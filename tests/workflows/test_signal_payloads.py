"""Payloads a workflow cannot use never fail a workflow task (issue 11: a published 2026
calendar jammed every task due in 2022–2023 with "last_year 2023 is before first_year 2025",
retried forever), and a calendar nobody vouches for is never taken (issue 14).

The calendar reaches tasks and agreements by the `change_calendar` update: hostile and
out-of-range payloads, on a fresh task and on tasks years old (the Nghệ An 2021–2026 programme
deployed at the end of 2026 starts its 2022 tasks overdue), are refused by its validator and
leave nothing in history; a signed good calendar is still taken. The agreement's
`task_changed` signal records and ignores what it cannot use.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from clock import shift_years
from harness import ROOT, harness, local_now, midnight, obligation_input
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from accord.deploy import build_input, start_agreement
from agreements.calendar import WorkingCalendar
from agreements.expansion import cached_calendar
from agreements.loader import load_agreement
from workflows.agreement import AgreementWorkflow
from workflows.obligation import ObligationWorkflow
from workflows.payloads import CalendarUpdate, TaskState, task_workflow_id

NGHE_AN = ROOT / "agreements" / "nghe-an-2021-2026-chuong-trinh.yaml"


def _hostile_calendars(calendar: WorkingCalendar) -> list[tuple[Any, ...]]:
    """Argument lists a sender could put on `change_calendar`: none, too many, wrong types,
    broken calendars, absurd years, control characters, an oversized note."""
    good = calendar.model_dump(mode="json")
    return [
        (),
        (None,),
        (b"\x00\xff",),
        ("2026",),
        (42,),
        ([good],),
        ({},),
        ({"calendar": "2026"},),
        ({"calendar": {**good, "first_year": 2030, "last_year": 2020}},),
        ({"calendar": {**good, "first_year": 1800, "last_year": 1801}},),
        ({"calendar": {**good, "weekend": [9]}},),
        ({"calendar": good, "note": "x" * 10_000},),
        ({"calendar": good, "note": "\u202e\r\n\x1b[2J"},),
        ({"calendar": good, "extra": 1},),
        ({"calendar": good}, {"calendar": good}),
    ]


async def _failed_tasks(handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [
        event.workflow_task_failed_event_attributes.failure.message
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]


UPDATE_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED,
}


async def _update_events(handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [
        EventType.Name(event.event_type)
        async for event in handle.fetch_history_events()
        if event.event_type in UPDATE_EVENTS
    ]


async def _refused_all(
    handle: WorkflowHandle[Any, Any], name: str, calls: list[tuple[Any, ...]]
) -> list[str]:
    """Send each argument list as update `name`; every one must be refused. The reasons."""
    reasons: list[str] = []
    for args in calls:
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(name, args=list(args))
        reasons.append(str(getattr(refused.value.cause, "message", refused.value)))
    return reasons


async def _wait_for(condition: Any, seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while not await condition():  # noqa: ASYNC110 (polling a query, no event to wait on)
            await asyncio.sleep(0.1)


async def test_fresh_task_refuses_what_it_cannot_use_and_takes_a_good_calendar(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        calendar = cached_calendar(range(now.year - 1, now.year + 3))
        last_day = now.date() + timedelta(days=60)
        while not calendar.is_working_day(last_day):
            last_day += timedelta(days=1)
        due = midnight(last_day + timedelta(days=1))
        handle = await h.start_obligation(obligation_input(due_at=due, calendar=calendar))
        before = await handle.query(ObligationWorkflow.status)
        reasons = await _refused_all(handle, "change_calendar", _hostile_calendars(calendar))
        # Malformed ones are named by the validator's parsing, the rest lack a claim.
        assert any("takes exactly one argument" in r for r in reasons), reasons
        assert any("unsigned request" in r for r in reasons), reasons
        # A signed calendar of years that do not include the deadline's: refused, with why.
        elsewhere = calendar.between_years(now.year - 1, now.year - 1)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await h.update(
                handle, ObligationWorkflow.change_calendar, CalendarUpdate(calendar=elsewhere)
            )
        assert f"not {due.year}, the year of the task's deadline" in str(refused.value.cause)
        assert not await _update_events(handle)
        assert not await _failed_tasks(handle)
        status = await handle.query(ObligationWorkflow.status)
        assert status.decisions == before.decisions
        assert status.state is TaskState.PENDING and status.due_at == due

        # Then a good one, which moves nothing (same days) but is taken.
        result = await h.update(
            handle, ObligationWorkflow.change_calendar, CalendarUpdate(calendar=calendar)
        )
        assert result.due_at == due
        events = await _update_events(handle)
        assert events.count("EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED") == 1, events
        assert not await _failed_tasks(handle)


async def test_years_old_tasks_and_the_agreement_survive_every_payload(tmp_path: Path) -> None:
    """Nghệ An's programme deployed in its last year: its 2022 tasks are open and overdue."""
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        # The programme 2021–2026 moved so that its last year is this one (the server's clock
        # starts at the real time): as shipped, it is over from 2027.
        (tmp_path / "agreement" / "directory").mkdir(parents=True)
        directory = NGHE_AN.parent / "directory" / "nghe-an.yaml"
        (tmp_path / "agreement" / "directory" / directory.name).write_bytes(directory.read_bytes())
        path = tmp_path / "agreement" / NGHE_AN.name
        moved = shift_years(NGHE_AN.read_text(encoding="utf-8"), 2021, now.year - 5, span=7)
        path.write_text(moved, encoding="utf-8")
        loaded = load_agreement(path)
        deployed = await start_agreement(h.env.client, build_input(loaded), task_queue=h.task_queue)
        assert deployed.handle is not None
        agreement = h.env.client.get_workflow_handle(deployed.workflow_id)

        async def started() -> bool:
            return (await agreement.query(AgreementWorkflow.overview)).started > 0

        await _wait_for(started)
        overview = await agreement.query(AgreementWorkflow.overview)
        old = [d for d in overview.overdue if d.due_at.year < now.year - 1]
        assert old, "expected tasks due years ago to be open"
        published = cached_calendar(range(now.year, now.year + 2))
        tasks = [h.env.client.get_workflow_handle(task_workflow_id(d.task_id)) for d in old[:3]]
        for task in tasks:
            before = await task.query(ObligationWorkflow.status)
            await _refused_all(task, "change_calendar", _hostile_calendars(published))
            # Signed, but without the task's year: the task due years ago keeps its calendar.
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await h.update(
                    task, ObligationWorkflow.change_calendar, CalendarUpdate(calendar=published)
                )
            assert "the task keeps its calendar" in str(refused.value.cause)
            status = await task.query(ObligationWorkflow.status)
            assert status.decisions == before.decisions
            assert status.state is TaskState.OVERDUE
            assert not await _update_events(task)
            assert not await _failed_tasks(task)

        await _refused_all(agreement, "change_calendar", _hostile_calendars(published)[:8])
        signals: list[tuple[Any, ...]] = [
            (),
            (None,),
            ({"task_id": "x"},),
            ({"task_id": old[0].task_id, "state": "exploded"},),
            (
                {
                    "task_id": "nghe-an/bia-dat/KHONG_CO/2099",
                    "state": "done_on_time",
                    "escalation_level": 0,
                    "due_at": None,
                    "closed": True,
                },
            ),
        ]
        for args in signals:
            await agreement.signal("task_changed", args=list(args))

        async def agreement_settled() -> bool:
            overview = await agreement.query(AgreementWorkflow.overview)
            return overview.ignored_signals >= len(signals)

        await _wait_for(agreement_settled)
        overview = await agreement.query(AgreementWorkflow.overview)
        assert overview.ignored_signals == len(signals)
        assert "nghe-an/bia-dat/KHONG_CO/2099" not in {d.task_id for d in overview.overdue}
        assert sum(overview.counts.values()) == overview.started
        assert not await _update_events(agreement)
        assert not await _failed_tasks(agreement)
        # The agreement's history, with the signals it recorded and ignored, replays.
        replayer = Replayer(
            workflows=[AgreementWorkflow, ObligationWorkflow],
            data_converter=pydantic_data_converter,
        )
        await replayer.replay_workflow(await agreement.fetch_history())
