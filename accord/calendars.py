"""Publishing a changed working calendar to running workflows.

When the government announces a year's Tết or bridge-day schedule, an admin edits
`agreements/calendars/vn-overrides.yaml` and runs `accord calendar YEAR --publish`: every
running task due within the calendar's years recomputes its deadline and timers (recording
why the date moved), and every running agreement hands the new calendar to the tasks it has
not started yet. Tasks due in other years keep their calendar (and would refuse one that
does not cover their year).

Each workflow gets it by the `change_calendar` update, signed with the operator's credential
(an admin credential from settings): its validator verifies the claim and refuses a payload
the workflow cannot use, so a plain Temporal client cannot publish a made-up calendar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from accord.identity import Credential, signed
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
    refused: tuple[str, ...] = ()
    """Workflows whose validator refused the calendar, each as 'ID: why'."""


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
    credential: Credential,
    *,
    zone: str = "Asia/Ho_Chi_Minh",
) -> Published:
    """Send the calendar (update `change_calendar`, signed by `credential`) to every running
    task due within its years, and to every running agreement (for the tasks it has not
    started); the tasks record the credential's operator as who changed their deadline. A
    workflow that closed since the listing is counted, not an error; the others are still
    told."""
    update = CalendarUpdate(calendar=calendar, note=note, published_by=credential.operator)
    tasks = agreements = closed = 0
    refused: list[str] = []
    async for execution in client.list_workflows(covered_tasks_query(calendar, zone)):
        outcome = await _send(client, credential, execution.id, ObligationWorkflow, update)
        tasks += outcome == "sent"
        closed += outcome == "closed"
        if outcome not in ("sent", "closed"):
            refused.append(f"{execution.id}: {outcome}")
    async for execution in client.list_workflows(RUNNING_AGREEMENTS):
        outcome = await _send(client, credential, execution.id, AgreementWorkflow, update)
        agreements += outcome == "sent"
        closed += outcome == "closed"
        if outcome not in ("sent", "closed"):
            refused.append(f"{execution.id}: {outcome}")
    running = (await client.count_workflows(RUNNING_TASKS)).count
    return Published(
        tasks, agreements, closed, max(running - tasks - closed - len(refused), 0), tuple(refused)
    )


async def _send(
    client: Client,
    credential: Credential,
    workflow_id: str,
    workflow_class: type[ObligationWorkflow] | type[AgreementWorkflow],
    update: CalendarUpdate,
) -> str:
    """'sent', 'closed' when the workflow has closed meanwhile (or is closing), otherwise why
    its validator refused the calendar."""
    method: Any = workflow_class.change_calendar
    payload = signed(credential, update, update=method, workflow_id=workflow_id)
    try:
        await client.get_workflow_handle(workflow_id).execute_update(method, payload)
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return "closed"
        raise
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        message = getattr(cause, "message", None) or str(error)
        if message.startswith("rule: the task is closed"):
            return "closed"
        return message
    return "sent"
