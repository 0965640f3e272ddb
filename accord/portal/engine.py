"""The portal's one path into the engine: `act` runs an update of a task's workflow, signed
with the portal's credential, exactly once per form.

The form key (a hidden field each form carries, random per rendering) is the Temporal update
ID, so a double click or a re-posted form runs the update once; its outcome is also kept in
the database (`portal_actions`), so a form re-posted after the task closed shows the first
outcome again. A refusal by the workflow's validator comes back as `ok=False` with its text in
the reader's language; nothing else the engine says reaches the page as a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.service import RPCError, RPCStatusCode

from accord.cli.engine import refusal_text
from accord.identity import signed, update_name
from accord.portal.i18n import t
from infra.db import PortalActionRow
from workflows.payloads import UpdateResult, task_workflow_id

if TYPE_CHECKING:
    from accord.portal.auth import PortalOfficer
    from accord.portal.context import PortalContext

log = logging.getLogger(__name__)

P = TypeVar("P", bound=BaseModel)

ACCEPT_TIMEOUT = 30.0
RESULT_TIMEOUT = 60.0
FORM_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


@dataclass(frozen=True)
class ActOutcome:
    ok: bool
    message: str
    """In the reader's language."""
    result: UpdateResult | None = None


def result_message(result: UpdateResult, locale: str) -> str:
    return (result.message_en or result.message) if locale == "en" else result.message


async def act(
    ctx: PortalContext,
    officer: PortalOfficer,
    task_id: str,
    update: Any,
    payload: P,
    form_key: str,
) -> ActOutcome:
    """Run `update` (an `ObligationWorkflow` update method) with `payload` (whose actor is
    `officer.actor`) on the task, once per `form_key`."""
    from workflows.obligation import ObligationWorkflow

    locale = officer.locale
    if not FORM_KEY.fullmatch(form_key):
        return ActOutcome(
            False,
            t(
                locale,
                "Biểu mẫu không hợp lệ: hãy tải lại trang.",
                "Invalid form: reload the page.",
            ),
        )
    name = update_name(update)
    with ctx.session_factory() as session:
        done = session.get(PortalActionRow, form_key)
        if done is not None:
            if (done.tenant, done.officer_id, done.task_id) != (
                officer.actor.tenant,
                officer.actor.officer_id,
                task_id,
            ):
                return ActOutcome(
                    False,
                    t(
                        locale,
                        "Biểu mẫu không hợp lệ: hãy tải lại trang.",
                        "Invalid form: reload the page.",
                    ),
                )
            earlier = UpdateResult.model_validate(done.result)
            return ActOutcome(True, result_message(earlier, locale), earlier)
    workflow_id = task_workflow_id(task_id)
    # Stamped now by the portal's clock: the claim's received-at is when Accord took it.
    payload = signed(
        ctx.credential, payload, update=update, workflow_id=workflow_id, received_at=ctx.now()
    )
    handle = ctx.client.get_workflow_handle_for(ObligationWorkflow.run, workflow_id)
    try:
        started = await asyncio.wait_for(
            handle.start_update(
                update, payload, id=form_key, wait_for_stage=WorkflowUpdateStage.ACCEPTED
            ),
            ACCEPT_TIMEOUT,
        )
        result: UpdateResult = await asyncio.wait_for(started.result(), RESULT_TIMEOUT)
    except WorkflowUpdateFailedError as error:
        return ActOutcome(False, refusal_text(error, locale))
    except TimeoutError:
        return ActOutcome(
            False,
            t(
                locale,
                "Accord chưa xử lý xong yêu cầu; hãy xem lại trang nhiệm vụ sau ít phút.",
                "Accord has not finished with the request yet; look at the task again in a few "
                "minutes.",
            ),
        )
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return ActOutcome(
                False,
                t(
                    locale,
                    "Nhiệm vụ đã đóng hoặc không tồn tại; không nhận thêm yêu cầu.",
                    "The task is closed or does not exist; it takes no more requests.",
                ),
            )
        log.exception("portal update %s on %s failed", name, workflow_id)
        return ActOutcome(
            False,
            t(
                locale,
                "Không liên lạc được với Accord; hãy thử lại sau.",
                "Accord could not be reached; try again later.",
            ),
        )
    with ctx.session_factory() as session:
        if session.get(PortalActionRow, form_key) is None:
            session.add(
                PortalActionRow(
                    form_key=form_key,
                    tenant=officer.actor.tenant,
                    officer_id=officer.actor.officer_id,
                    task_id=task_id,
                    update=name,
                    result=result.model_dump(mode="json"),
                    at=ctx.now(),
                )
            )
            try:
                session.commit()
            except IntegrityError:  # the same form's other post recorded it first
                session.rollback()
    return ActOutcome(True, result_message(result, locale), result)
