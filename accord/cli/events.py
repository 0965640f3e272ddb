"""`accord event record AGREEMENT EVENT --date YYYY-MM-DD --as OFFICER`: an event happened.

Obligations written "within 15 days after the review conference" or "within 5 working days of
an incident" (`due: {kind: after_event, ...}`) have no task until an admin records the event
with its date. The Agreement workflow's `record_event` update starts one task per owing agency
and audits the recording; recording the same event (and label) again starts nothing. The rules
(admins only, a known event, a day inside the agreement's period) are the workflow's validator.
"""

from __future__ import annotations

import argparse
import asyncio

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from accord.cli.engine import (
    ACCEPT_TIMEOUT,
    CommandError,
    connect,
    load_settings,
    local_due_text,
    refusal_text,
    run_engine_command,
)
from accord.cli.tasks import _iso_date, add_officer_argument, checked, find_actor
from workflows.payloads import EventRecord, EventResult, agreement_workflow_id


def add_event_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    record = actions.add_parser(
        "record",
        help="record that an event happened; starts the tasks of the obligations waiting for it",
        description="Record that an event happened on a day: the obligations due a number of "
        "days after it get their tasks. Recording it again changes nothing.",
    )
    record.add_argument("agreement", metavar="AGREEMENT", help="the agreement's ID")
    record.add_argument("event", metavar="EVENT", help="the event's ID, e.g. hoi-nghi-so-ket")
    record.add_argument(
        "--date", type=_iso_date, required=True, metavar="YYYY-MM-DD", help="the event's day"
    )
    record.add_argument(
        "--label",
        help="period label of the tasks (default: the day, e.g. 2026-03-02); give one to tell "
        "apart two events of the same kind on the same day",
    )
    add_officer_argument(record)


def event(args: argparse.Namespace) -> int:
    """Record an event (admins only)."""
    settings = load_settings()
    actor = find_actor(settings, args.officer, args.agreement)
    payload = checked(EventRecord, actor=actor, event=args.event, day=args.date, label=args.label)

    async def run() -> int:
        client = await connect(settings)
        try:
            result = await send_event(client, args.agreement, payload)
        except WorkflowUpdateFailedError as error:
            word = "refused" if settings.locale == "en" else "bị từ chối"
            raise CommandError(
                f"{args.agreement}: {word}: {refusal_text(error, settings.locale)}"
            ) from error
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                raise CommandError(
                    f"no running agreement {args.agreement!r}: check its ID with "
                    "`accord status` (deploy it with `accord deploy`)"
                ) from error
            raise
        print_event_result(result, settings.locale)
        return 0

    return run_engine_command(run())


async def send_event(client: Client, agreement_id: str, record: EventRecord) -> EventResult:
    """The `record_event` update of the agreement's workflow: what the command sends."""
    from workflows.agreement import AgreementWorkflow

    handle = client.get_workflow_handle_for(
        AgreementWorkflow.run, agreement_workflow_id(agreement_id)
    )
    try:
        return await asyncio.wait_for(
            handle.execute_update(AgreementWorkflow.record_event, record), ACCEPT_TIMEOUT * 2
        )
    except TimeoutError:
        raise CommandError(
            f"{agreement_id}: no Accord worker answered within {ACCEPT_TIMEOUT * 2:.0f} s; "
            "is `accord run` running?"
        ) from None


def print_event_result(result: EventResult, locale: str) -> None:
    print(result.message_en if locale == "en" else result.message)
    for task in result.tasks:
        print(f"  {task.task_id}  {local_due_text(task.due_at, locale)}")
