"""The consolidated report of a deployed agreement: its facts from the agreement workflow's
`facts` query, its stored inputs from the database (`activities.reporting`), the figures from
`reports.consolidate`. Read-only: it starts, signals and writes nothing."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client

from activities.models import AgreementFacts
from workflows.payloads import agreement_workflow_id

FACTS_QUERY = "facts"
"""The agreement workflow's query (workflows.agreement.AgreementWorkflow.facts)."""


async def agreement_facts(
    client: Client, agreement_id: str, *, rpc_timeout: timedelta | None = None
) -> AgreementFacts:
    """The agreement's facts now (workflow time). `temporalio.service.RPCError` NOT_FOUND when
    the agreement was never deployed; a finished agreement still answers."""
    handle = client.get_workflow_handle(agreement_workflow_id(agreement_id))
    facts: AgreementFacts = await handle.query(
        FACTS_QUERY, result_type=AgreementFacts, rpc_timeout=rpc_timeout
    )
    return facts
