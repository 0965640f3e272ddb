"""Publishing a changed working calendar to running workflows.

When the government announces a year's Tết or bridge-day schedule, an admin edits
`agreements/calendars/vn-overrides.yaml` and runs `accord calendar YEAR --publish`: every
running task due within the calendar's years recomputes its deadline and timers (recording
why the date moved), and every running agreement hands the new calendar to the tasks it has
not started yet. Tasks due in other years keep their calendar (and would record and ignore
one that does not cover their year).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from agreements.calendar import WorkingCalendar
from workflows.agreement import AgreementWorkflow
from workflows.obligation import ObligationWorkflow
from workflows.payloads import CalendarUpdate

RUNNING_TASKS = "AccordKind = 'task' AND ExecutionStatus = 'Running'"
RUNNING_AGREEMENTS = "AccordKind = 'agreement' AND ExecutionStatus = 'Running'"


@dataclass(frozen=True)
class Published:
    tasks: int
    """Running tasks due within the calendar's years that were sent it."""
    agreements: int
    closed_meanwhile: int = 0
    """Tasks or agreements listed as running that had closed by the time they were signalled
    (visibility lags behind): nothing to tell them."""
    outside: int = 0
    """Running tasks due outside the calendar's years (or without a date): not sent it; they
    keep their calendar."""


def covered_tasks_query(calendar: WorkingCalendar, zone: str) -> str:
    """Running tasks whose due instant falls in the calendar's years (local time)."""
    offset = datetime(calendar.first_year, 1, 1, tzinfo=ZoneInfo(zone)).strftime("%z")
    offset = f"{offset[:3]}:{offset[3:]}"
    return (
        f"{RUNNING_TASKS} AND AccordDueAt >= '{calendar.first_year}-01-01T00:00:00{offset}' "
        f"AND AccordDueAt < '{calendar.last_year + 1}-01-01T00:00:00{offset}'"
    )


async def publish_calendar(
    client: Client,
    calendar: WorkingCalendar,
    note: str,
    *,
    zone: str = "Asia/Ho_Chi_Minh",
    published_by: str | None = None,
) -> Published:
    """Signal the calendar to every running task due within its years, and to every running
    agreement (for the tasks it has not started); the tasks record `published_by` (the
    operator) as who changed their deadline. A workflow that closed since the listing is
    counted, not an error; the others are still told."""
    update = CalendarUpdate(calendar=calendar, note=note, published_by=published_by)
    tasks = agreements = closed = 0
    async for execution in client.list_workflows(covered_tasks_query(calendar, zone)):
        if await _signal(client, execution.id, ObligationWorkflow.calendar_changed, update):
            tasks += 1
        else:
            closed += 1
    async for execution in client.list_workflows(RUNNING_AGREEMENTS):
        if await _signal(client, execution.id, AgreementWorkflow.calendar_changed, update):
            agreements += 1
        else:
            closed += 1
    running = (await client.count_workflows(RUNNING_TASKS)).count
    return Published(tasks, agreements, closed, max(running - tasks - closed, 0))


async def _signal(client: Client, workflow_id: str, signal: Any, update: CalendarUpdate) -> bool:
    """False when the workflow has closed meanwhile."""
    try:
        await client.get_workflow_handle(workflow_id).signal(signal, update)
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True
