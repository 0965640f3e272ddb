"""Talking to the engine, shared by the commands: settings, the Temporal connection, the update
sender, and the mapping of expected failures to one message and an exit code.

`CommandError` is an expected failure: `main` prints its message without a traceback and exits
with its code (1: the action failed; 2: the input was wrong). Losing the server midway is one
too. Engine modules (the worker, the database layer) are imported inside the functions that
need them, so commands that only read files stay fast. No command's arguments or output
format live here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import RPCError, RPCStatusCode

from accord.cli.errors import EXIT_BAD_INPUT as EXIT_BAD_INPUT
from accord.cli.errors import EXIT_FAILED as EXIT_FAILED
from accord.cli.errors import CommandError as CommandError
from accord.identity import Credential, signed
from infra.settings import Settings, settings_problems
from workflows.payloads import (
    STATE_LABELS_EN,
    STATE_LABELS_VI,
    TaskState,
    UpdateResult,
    task_workflow_id,
)
from workflows.refusals import REFUSED
from workflows.search_attributes import SA_STATE

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker
    from temporalio.workflow import UpdateMethodMultiParam

    from workflows.obligation import ObligationWorkflow


CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the Temporal server to answer."""
ACCEPT_TIMEOUT = 30.0
"""Seconds to wait for a worker to accept (or refuse) a request."""
RESULT_TIMEOUT = 60.0
"""Seconds to wait for an accepted request to finish (it records and sends mail)."""
QUERY_TIMEOUT = timedelta(seconds=10)

LOCAL_ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
"""Every Vietnamese province keeps this time; dates are shown in it."""

TASK_PREFIX = task_workflow_id("")


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = settings_problems(error)
        raise CommandError(f"invalid ACCORD_* settings: {problems}", EXIT_BAD_INPUT) from None
    except ValueError as error:  # ACCORD_ENV_FILE names no file
        raise CommandError(f"invalid ACCORD_* settings: {error}", EXIT_BAD_INPUT) from None


def open_database(settings: Settings) -> sessionmaker[Session]:
    """The database's sessions, or a one-line `CommandError` naming the URL without its
    password."""
    import worker
    from infra.db import DatabaseUnavailable

    try:
        return worker.open_database(settings)
    except DatabaseUnavailable as error:
        raise CommandError(str(error)) from None


def operator_credential(settings: Settings) -> Credential:
    """The operator's credential: every command that acts on a task, an agreement or the
    calendar needs it, and refuses without it."""
    from infra.claim_keys import ClaimKeyError, signing_key

    if not settings.claims.operator:
        raise CommandError(
            "no operator credential: set ACCORD_CLAIMS__OPERATOR (your operator ID) and "
            "ACCORD_CLAIMS__KEY (or use the embedded service's data folder) to act on an "
            "officer's behalf",
            EXIT_BAD_INPUT,
        )
    try:
        key = signing_key(settings, create=False)
    except (ClaimKeyError, OSError) as error:
        raise CommandError(f"no operator credential: {error}", EXIT_BAD_INPUT) from error
    return Credential(operator=settings.claims.operator, key=key)


def temporal_address(settings: Settings) -> str:
    return settings.temporal.address or f"127.0.0.1:{settings.temporal.dev_port}"


async def connect(settings: Settings) -> Client:
    import worker

    address = temporal_address(settings)
    try:
        return await asyncio.wait_for(worker.connect(settings), CONNECT_TIMEOUT)
    except worker.TemporalUnreachable as error:
        if error.names_setting:  # a TLS file, the CA, the certificate or the API key
            raise CommandError(str(error), EXIT_BAD_INPUT) from error
        reason = error.reason
        raise CommandError(
            f"cannot reach Temporal at {address} (namespace {settings.temporal.namespace}): "
            f"{reason}. Is `accord run` running? Otherwise point ACCORD_TEMPORAL__ADDRESS at "
            "your Temporal server."
        ) from error
    except (RuntimeError, TimeoutError, OSError) as error:
        reason = _connect_failure(error)
        raise CommandError(
            f"cannot reach Temporal at {address} (namespace {settings.temporal.namespace}): "
            f"{reason}. Is `accord run` running? Otherwise point ACCORD_TEMPORAL__ADDRESS at "
            "your Temporal server."
        ) from error


def _connect_failure(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT:.0f} s"
    if isinstance(error, OSError) and error.filename:
        return f"cannot read {error.filename}: {error.strerror}"
    text = str(error)
    # The Rust core's message ends in a debug dump; its human part is in `message: "…"`.
    found = re.search(r'message: "([^"]+)"', text)
    return found.group(1).lower() if found else text


@functools.cache
def _cli_runtime() -> Runtime:
    """A Temporal runtime whose core log lines (written to stdout by default, where they would
    corrupt `--json` output) go through Python logging to stderr instead."""
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
            )
        )
    )


def use_cli_runtime() -> None:
    Runtime.set_default(_cli_runtime(), error_if_already_set=False)


def run_engine_command(command: Coroutine[Any, Any, int]) -> int:
    """Run an async command; losing the server midway is a message, not a traceback."""
    use_cli_runtime()
    try:
        return asyncio.run(command)
    except RPCError as error:
        if error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise CommandError(f"Temporal did not answer: {error.message}") from error
        if error.status is RPCStatusCode.INVALID_ARGUMENT and any(
            missing in error.message
            for missing in ("no mapping defined for search attribute", "invalid search attribute")
        ):
            # A cluster's namespace without Accord's search attributes: deploy starts workflows
            # with them, status queries them.
            raise CommandError(
                f"Temporal: {error.message}. Register Accord's search attributes once per "
                "namespace: `accord search-attributes register`."
            ) from error
        raise


def local_due_text(due_at: datetime | None, locale: str = "vi") -> str:
    """'trước 27/12/2026' ('before 27/12/2026'): a due instant is the first late moment, as
    in the mail subjects."""
    before = "before" if locale == "en" else "trước"
    if due_at is None:
        return "no due date" if locale == "en" else "không có hạn"
    local = due_at.astimezone(LOCAL_ZONE)
    if local.hour == 0 and local.minute == 0:
        return f"{before} {local:%d/%m/%Y}"
    return f"{before} {local:%H:%M} {local:%d/%m/%Y}"


def state_label(state: TaskState | str | None) -> str:
    try:
        return STATE_LABELS_VI[TaskState(state)] if state else "—"
    except ValueError:
        return str(state)


P = TypeVar("P", bound=BaseModel)
"""An update's payload model."""


async def send_update(
    settings: Settings,
    task_id: str,
    update: UpdateMethodMultiParam[[ObligationWorkflow, P], UpdateResult],
    payload: P,
    credential: Credential,
) -> int:
    """Run one update of a task's workflow, signed by the operator's credential, and print its
    outcome. A refusal by the workflow's validator names the rule that was broken."""
    client = await connect(settings)
    # Stamped as late as possible: the claim's time is when Accord takes the request.
    payload = signed(credential, payload, update=update, workflow_id=task_workflow_id(task_id))
    try:
        result = await _run_update(client, settings, task_id, update, payload)
    except WorkflowUpdateFailedError as error:
        word = "refused" if settings.locale == "en" else "bị từ chối"
        raise CommandError(f"{task_id}: {word}: {refusal_text(error, settings.locale)}") from error
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise CommandError(await _missing_task(client, task_id)) from error
        raise
    if result is None:
        print(
            f"{task_id}: accepted, still being processed (a notification may be waiting for "
            "the mail server); `accord status` shows the outcome"
        )
        return 0
    due = local_due_text(result.due_at, settings.locale)
    if settings.locale == "en":
        deadline = f"due {due}" if result.due_at else due
        message, label = result.message_en or result.message, STATE_LABELS_EN[result.state]
    else:
        deadline = f"hạn {due}" if result.due_at else due
        message, label = result.message, STATE_LABELS_VI[result.state]
    print(f"{message}: {result.task_id} — {label}, {deadline}")
    return 0


def refusal_text(error: WorkflowUpdateFailedError, locale: str) -> str:
    """Why the workflow refused an update, in the reader's language when the rule gave both
    (see `workflows.refusals.refusal`); a malformed payload's English field list otherwise."""
    cause = error.cause
    if not isinstance(cause, FailureError):
        return str(error)
    if isinstance(cause, ApplicationError) and cause.type == REFUSED and cause.details:
        texts = cause.details[0]
        if isinstance(texts, dict) and isinstance(texts.get(locale), str):
            return str(texts[locale])
    return cause.message


async def _run_update(
    client: Client,
    settings: Settings,
    task_id: str,
    update: UpdateMethodMultiParam[[ObligationWorkflow, P], UpdateResult],
    payload: P,
) -> UpdateResult | None:
    """The update's result, or None if it was accepted but has not finished in time."""
    from workflows.obligation import ObligationWorkflow

    handle = client.get_workflow_handle_for(ObligationWorkflow.run, task_workflow_id(task_id))
    try:
        started = await asyncio.wait_for(
            handle.start_update(update, payload, wait_for_stage=WorkflowUpdateStage.ACCEPTED),
            ACCEPT_TIMEOUT,
        )
    except TimeoutError:
        raise CommandError(
            f"{task_id}: no Accord worker answered within {ACCEPT_TIMEOUT:.0f} s (task queue "
            f"{settings.temporal.task_queue!r}); is `accord run` running?"
        ) from None
    try:
        return await asyncio.wait_for(started.result(), RESULT_TIMEOUT)
    except TimeoutError:
        return None


async def _missing_task(client: Client, task_id: str) -> str:
    try:
        description = await client.get_workflow_handle(task_workflow_id(task_id)).describe()
    except RPCError:
        return (
            f"no task {task_id!r}: check the ID with `accord status` (a task appears some days "
            "before its first reminder)"
        )
    state = description.typed_search_attributes.get(SA_STATE)
    return f"task {task_id!r} is closed ({state_label(state)}); it takes no more requests"
