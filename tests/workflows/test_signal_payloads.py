"""Signals with payloads a workflow cannot use are recorded and ignored, never a failed
workflow task (issue 11: a published 2026 calendar jammed every task due in 2022–2023 with
"last_year 2023 is before first_year 2025", retried forever).

Every signal handler (the task's `calendar_changed`, the agreement's `calendar_changed` and
`task_changed`) gets hostile and out-of-range payloads on a fresh task and on tasks years old:
the Nghệ An 2021–2026 programme deployed at the end of 2026 starts its 2022 tasks overdue.
Afterwards no history holds a failed workflow task, each ignored signal is in the task's
status, and a good calendar is still taken.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from harness import ROOT, harness, local_now, midnight, obligation_input
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from accord.deploy import build_input, start_agreement
from agreements.calendar import WorkingCalendar
from agreements.expansion import cached_calendar
from agreements.loader import load_agreement
from workflows.agreement import AgreementWorkflow
from workflows.obligation import ObligationWorkflow
from workflows.payloads import CalendarUpdate, TaskState, task_workflow_id

NGHE_AN = ROOT / "agreements" / "nghe-an-2021-2026-chuong-trinh.yaml"


def _hostile_calendars(calendar: WorkingCalendar) -> list[tuple[Any, ...]]:
    """Argument lists a sender could put on `calendar_changed`: none, too many, wrong types,
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


async def _send_all(
    handle: WorkflowHandle[Any, Any], name: str, calls: list[tuple[Any, ...]]
) -> None:
    for args in calls:
        await handle.signal(name, args=list(args))


async def _wait_for(condition: Any, seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while not await condition():  # noqa: ASYNC110 (polling a query, no event to wait on)
            await asyncio.sleep(0.1)


async def test_fresh_task_ignores_what_it_cannot_use_and_takes_a_good_calendar(
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
        hostile = _hostile_calendars(calendar)
        await _send_all(handle, "calendar_changed", hostile)
        # A calendar of years that do not include the deadline's: kept out, with the reason.
        elsewhere = calendar.between_years(now.year - 1, now.year - 1)
        await handle.signal(ObligationWorkflow.calendar_changed, CalendarUpdate(calendar=elsewhere))
        # Then a good one, which moves nothing (same days) but is taken.
        await handle.signal(ObligationWorkflow.calendar_changed, CalendarUpdate(calendar=calendar))

        async def settled() -> bool:
            status = await handle.query(ObligationWorkflow.status)
            return sum(d.kind == "signal_ignored" for d in status.decisions) >= 9

        await _wait_for(settled)
        status = await handle.query(ObligationWorkflow.status)
        ignored = [d.detail for d in status.decisions if d.kind == "signal_ignored"]
        assert not await _failed_tasks(handle)
        assert status.state is TaskState.PENDING and status.due_at == due
        # The malformed ones are named by the handler; the out-of-range one by its years.
        assert all(d.startswith("calendar_changed") for d in ignored)
        assert any(f"không gồm năm {due.year}" in d for d in ignored), ignored
        assert any("takes exactly one argument" in d for d in ignored), ignored
        assert all(len(d) < 1100 and "\u202e" not in d and "\x1b" not in d for d in ignored)


async def test_years_old_tasks_and_the_agreement_survive_every_payload(tmp_path: Path) -> None:
    """Nghệ An's programme deployed in its last year: its 2022 tasks are open and overdue."""
    loaded = load_agreement(NGHE_AN)
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
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
            await _send_all(task, "calendar_changed", _hostile_calendars(published))
            await task.signal(
                ObligationWorkflow.calendar_changed, CalendarUpdate(calendar=published)
            )

        agreement_calls: list[tuple[str, tuple[Any, ...]]] = [
            ("calendar_changed", args) for args in _hostile_calendars(published)[:8]
        ] + [
            ("task_changed", ()),
            ("task_changed", (None,)),
            ("task_changed", ({"task_id": "x"},)),
            ("task_changed", ({"task_id": old[0].task_id, "state": "exploded"},)),
            (
                "task_changed",
                (
                    {
                        "task_id": "nghe-an/bia-dat/KHONG_CO/2099",
                        "state": "done_on_time",
                        "escalation_level": 0,
                        "due_at": None,
                        "closed": True,
                    },
                ),
            ),
        ]
        for name, args in agreement_calls:
            await agreement.signal(name, args=list(args))

        async def agreement_settled() -> bool:
            overview = await agreement.query(AgreementWorkflow.overview)
            return overview.ignored_signals >= len(agreement_calls)

        await _wait_for(agreement_settled)
        for task in tasks:
            status = await task.query(ObligationWorkflow.status)
            ignored = [d.detail for d in status.decisions if d.kind == "signal_ignored"]
            assert len(ignored) == len(_hostile_calendars(published)) + 1, ignored
            # The task due years ago keeps its own calendar and says why.
            assert any("giữ lịch đang dùng" in d for d in ignored)
            assert status.state is TaskState.OVERDUE
            assert not await _failed_tasks(task)
        overview = await agreement.query(AgreementWorkflow.overview)
        assert overview.ignored_signals == len(agreement_calls)
        assert "nghe-an/bia-dat/KHONG_CO/2099" not in {d.task_id for d in overview.overdue}
        assert sum(overview.counts.values()) == overview.started
        assert not await _failed_tasks(agreement)
