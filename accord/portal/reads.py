"""What the portal's pages read from Temporal: the facts of a tenant's agreements and a task's
status, with one timeout. A workflow that does not exist (an agreement not deployed on this
server, a task not started yet) is left out or None; any other failure raises, so the page
shows an error rather than silently leaving data out."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from temporalio.service import RPCError, RPCStatusCode

from accord.portal.context import PortalContext
from accord.reporting import agreement_facts
from activities.models import AgreementFacts
from infra.db import AgreementRow
from workflows.payloads import TaskStatus, task_workflow_id

QUERY_TIMEOUT = timedelta(seconds=10)


async def task_status(ctx: PortalContext, task_id: str) -> TaskStatus | None:
    """The task's `status` query; None when its workflow does not exist (yet)."""
    from workflows.obligation import ObligationWorkflow

    handle = ctx.client.get_workflow_handle_for(ObligationWorkflow.run, task_workflow_id(task_id))
    try:
        return await handle.query(ObligationWorkflow.status, rpc_timeout=QUERY_TIMEOUT)
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return None
        raise


async def tenant_facts(ctx: PortalContext, tenant: str) -> list[AgreementFacts]:
    """The facts of every agreement deployed for `tenant` whose workflow exists."""
    with ctx.session_factory() as session:
        ids = session.scalars(
            select(AgreementRow.id).where(AgreementRow.tenant == tenant).order_by(AgreementRow.id)
        ).all()
    found: list[AgreementFacts] = []
    for agreement_id in ids:
        try:
            found.append(await agreement_facts(ctx.client, agreement_id, rpc_timeout=QUERY_TIMEOUT))
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
    return found
