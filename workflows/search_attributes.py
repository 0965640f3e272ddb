"""The workflows' search attributes: codes and dates only, never names, e-mails or report text.

Apart from `workflows.payloads` so that reading or planning an agreement (which needs the
payload models, not the engine) does not import temporalio.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from activities.models import TaskRef
from workflows.payloads import TaskState

SA_KIND = SearchAttributeKey.for_keyword("AccordKind")
SA_AGREEMENT = SearchAttributeKey.for_keyword("AccordAgreement")
SA_TENANT = SearchAttributeKey.for_keyword("AccordTenant")
"""The tenant (directory) slug of an agreement and of its tasks, e.g. `quang-binh`."""
SA_ITEM = SearchAttributeKey.for_keyword("AccordItem")
SA_AGENCY = SearchAttributeKey.for_keyword("AccordAgency")
"""A task's current lead owner (after a succession, the successor)."""
SA_ORIGINAL_AGENCY = SearchAttributeKey.for_keyword("AccordOriginalAgency")
"""Issue 17: set only on a task a succession transferred: the agency that first owed it."""
SA_OBLIGATION = SearchAttributeKey.for_keyword("AccordObligation")
SA_PERIOD = SearchAttributeKey.for_keyword("AccordPeriod")
SA_STATE = SearchAttributeKey.for_keyword("AccordState")
SA_DUE_AT = SearchAttributeKey.for_datetime("AccordDueAt")
SA_ESCALATION_LEVEL = SearchAttributeKey.for_int("AccordEscalationLevel")


def task_search_attributes(
    task: TaskRef,
    *,
    state: TaskState,
    escalation_level: int = 0,
    due_at: datetime | None = None,
) -> TypedSearchAttributes:
    """A task's search attributes. The starter passes them with the start (no upsert event in
    the task's history); the task upserts only the ones that change later."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(SA_KIND, "task"),
        SearchAttributePair(SA_AGREEMENT, task.agreement_id),
        SearchAttributePair(SA_TENANT, task.tenant),
        SearchAttributePair(SA_AGENCY, task.agency),
        SearchAttributePair(SA_OBLIGATION, task.obligation_id),
        SearchAttributePair(SA_PERIOD, task.period_label),
        SearchAttributePair(SA_STATE, state.value),
        SearchAttributePair(SA_ESCALATION_LEVEL, escalation_level),
    ]
    if task.item_number:
        pairs.append(SearchAttributePair(SA_ITEM, task.item_number))
    if task.original_agency:
        pairs.append(SearchAttributePair(SA_ORIGINAL_AGENCY, task.original_agency))
    if due_at is not None:
        pairs.append(SearchAttributePair(SA_DUE_AT, due_at))
    return TypedSearchAttributes(pairs)


def agreement_search_attributes(agreement_id: str, tenant: str) -> TypedSearchAttributes:
    """An agreement's search attributes at its start (the workflow upserts its state later)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(SA_KIND, "agreement"),
            SearchAttributePair(SA_AGREEMENT, agreement_id),
            SearchAttributePair(SA_TENANT, tenant),
        ]
    )


def digest_search_attributes(agreement_id: str, tenant: str) -> TypedSearchAttributes:
    """A digest's (workflows.digest): its agreement and tenant, kind `digest`."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(SA_KIND, "digest"),
            SearchAttributePair(SA_AGREEMENT, agreement_id),
            SearchAttributePair(SA_TENANT, tenant),
        ]
    )
