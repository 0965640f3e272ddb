"""Publishing a changed working calendar to running workflows.

When the government announces a year's Tết or bridge-day schedule, an admin edits
`agreements/calendars/vn-overrides.yaml` and runs `accord calendar YEAR --publish`: every
running task recomputes its deadline and timers (recording why the date moved), and every
running agreement hands the new calendar to the tasks it has not started yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import Client

from agreements.calendar import WorkingCalendar
from workflows.agreement import AgreementWorkflow
from workflows.obligation import ObligationWorkflow
from workflows.payloads import CalendarUpdate

RUNNING_TASKS = "AccordKind = 'task' AND ExecutionStatus = 'Running'"
RUNNING_AGREEMENTS = "AccordKind = 'agreement' AND ExecutionStatus = 'Running'"


@dataclass(frozen=True)
class Published:
    tasks: int
    agreements: int


async def publish_calendar(client: Client, calendar: WorkingCalendar, note: str) -> Published:
    """Signal the calendar to every running task and agreement workflow."""
    update = CalendarUpdate(calendar=calendar, note=note)
    tasks = agreements = 0
    async for execution in client.list_workflows(RUNNING_TASKS):
        await client.get_workflow_handle(execution.id).signal(
            ObligationWorkflow.calendar_changed, update
        )
        tasks += 1
    async for execution in client.list_workflows(RUNNING_AGREEMENTS):
        await client.get_workflow_handle(execution.id).signal(
            AgreementWorkflow.calendar_changed, update
        )
        agreements += 1
    return Published(tasks, agreements)
