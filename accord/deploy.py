"""Turn a validated agreement into the workflow input, and start it idempotently.

Used by `accord deploy`, `accord run` and the demo: loads the directory into the database and
starts the agreement workflow under its deterministic ID, so deploying again changes nothing.
It holds no workflow logic and decides no deadline: the expansion and the workflows do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agreements.expansion import (
    TaskOccurrence,
    cached_calendar,
    calendar_years,
    effective_policy,
    local_midnight,
    resolve_owners,
)
from agreements.loader import LoadedAgreement, LoadError, agreement_files, load_agreement
from agreements.models import EventDue, Offset, OffsetUnit
from workflows.payloads import (
    AgencySpan,
    AgreementInput,
    AgreementPlan,
    AgreementSummary,
    ObligationPlan,
    PlannedTask,
    agreement_workflow_id,
    clip_summary,
    ui_text,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker
    from temporalio.client import Client, WorkflowHandle

# The Temporal client, the workflows and the database are imported by the functions that start
# workflows: `accord plan` needs only `build_input`, and must not pay their imports (≈1 s).

CLOSE_GRACE = timedelta(days=30)
"""How long after the period ends unfinished tasks are still chased before they close."""
OPEN_LEAD = timedelta(days=60)
"""A task's workflow starts this long before its first reminder (or at the agreement's start),
so that early reports can be submitted, without keeping years of idle workflows open."""


def _lead(offset: Offset) -> timedelta:
    # A working-day offset can span weekends and Tết: open its window generously.
    if offset.unit is OffsetUnit.WORKING_DAYS:
        return offset.duration * 3
    return offset.duration


def opens_at(occurrence: TaskOccurrence, starts_at: datetime) -> datetime:
    if occurrence.due_at is None:
        return starts_at
    longest = max((_lead(o) for o in occurrence.reminders.before), default=timedelta(0))
    return max(starts_at, occurrence.due_at - longest - OPEN_LEAD)


def planned_task(occurrence: TaskOccurrence, opens_at: datetime) -> PlannedTask:
    o = occurrence
    return PlannedTask(
        task_id=o.task_id,
        obligation_id=o.obligation_id,
        agency=o.agency,
        co_owners=o.co_owners,
        period_label=o.period_label,
        due_at=o.due_at,
        written_due_at=o.written_due_at,
        due_note_vi=o.due_note_vi,
        due_note_en=o.due_note_en,
        covers_from=o.covers_from,
        covers_to=o.covers_to,
        opens_at=opens_at,
    )


def build_input(loaded: LoadedAgreement, *, digest: bool = False) -> AgreementInput:
    """The agreement workflow's input. `digest`: mail the compliance digest (`accord deploy`
    does; the simulation, `accord plan` and the tests' own starts leave it off, so that they
    preview and check the task notices alone)."""
    agreement = loaded.agreement
    zone = agreement.zone
    starts_at = local_midnight(agreement.period.start, zone)
    ends_at = local_midnight(agreement.period.end, zone) + timedelta(days=1)
    obligations: dict[str, ObligationPlan] = {}
    for item, obligation in agreement.all_obligations():
        reminders, escalation = effective_policy(obligation, agreement)
        event = obligation.due if isinstance(obligation.due, EventDue) else None
        owners: dict[str, AgencySpan] = {}
        if event is not None:
            for code in resolve_owners(obligation.owners, loaded.directory):
                agency = loaded.directory.agency(code)
                owners[code] = (
                    AgencySpan(active_from=agency.active_from, active_until=agency.active_until)
                    if agency
                    else AgencySpan()
                )
        obligations[obligation.id] = ObligationPlan(
            obligation_id=obligation.id,
            item_number=item.number if item else None,
            title=obligation.title,
            deliverable=obligation.deliverable,
            recipient=obligation.recipient,
            reminders=reminders,
            escalation=escalation,
            indicators=obligation.indicators,
            deadline_rule=obligation.deadline_rule or agreement.deadline_rule,
            copy_to=list(obligation.copy_to),
            event=event.event if event else None,
            within=event.within if event else None,
            owners=owners,
            jointly=obligation.owners.jointly,
            extension_approver=list(obligation.extension_approver),
        )
    tasks = [planned_task(o, opens_at(o, starts_at)) for o in loaded.occurrences]
    plan = AgreementPlan(
        agreement_id=agreement.agreement_id,
        tenant=loaded.directory.tenant,
        document_number=agreement.document_number,
        title=agreement.title,
        issuer=agreement.issuer,
        time_zone=agreement.time_zone,
        period_start=agreement.period.start,
        period_end=agreement.period.end,
        starts_at=starts_at,
        ends_at=ends_at,
        closes_at=ends_at + CLOSE_GRACE,
        obligations=obligations,
        calendar=cached_calendar(calendar_years(agreement)),
        sending_time=agreement.sending_time,
        digest=digest,
    )
    return AgreementInput(plan=plan, waiting=tasks)


def amendment_id(document: str, plan: AgreementPlan, tasks: list[PlannedTask]) -> str:
    """An amendment's ID (`accord amend`, `accord simulate --amend`): a hash of the document
    and the canonical JSON of the new plan and tasks, so that the same file and document give
    the same ID (the agreement workflow applies an ID once)."""
    canonical = json.dumps(
        {
            "document": document,
            "plan": plan.model_dump(mode="json"),
            "tasks": [task.model_dump(mode="json") for task in tasks],
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return "sd-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:24]


QUERY_TIMEOUT = timedelta(seconds=10)
"""How long `running_version_differs` waits for the agreement's worker to answer."""


class TenantConflict(Exception):
    """An agreement ID already deployed for another tenant: workflow IDs are the agreement's
    ID, so two tenants' agreements cannot share one; the second is refused, not merged."""

    def __init__(self, agreement_id: str, tenant: str, other: str) -> None:
        super().__init__(
            f"agreement ID {agreement_id!r} is already deployed for tenant {other!r}; an "
            f"agreement of tenant {tenant!r} cannot use it: give this agreement another `id:`"
        )


@dataclass(frozen=True)
class Deployed:
    workflow_id: str
    run_id: str | None
    created: bool
    note: str
    handle: WorkflowHandle[Any, AgreementSummary] | None = None


async def start_agreement(
    client: Client,
    input: AgreementInput,
    *,
    task_queue: str,
    execution_timeout: timedelta | None = None,
) -> Deployed:
    """Start the agreement workflow; a second call for the same agreement creates nothing.

    `execution_timeout` is for the time-skipping test server only, whose default caps a
    workflow at ten years; real servers let an agreement run as long as it needs."""
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError
    from temporalio.service import RPCError, RPCStatusCode

    from workflows.agreement import AgreementWorkflow
    from workflows.search_attributes import SA_TENANT, agreement_search_attributes

    workflow_id = agreement_workflow_id(input.plan.agreement_id)
    try:
        existing = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
    else:
        other = existing.typed_search_attributes.get(SA_TENANT)
        if other is not None and other != input.plan.tenant:
            raise TenantConflict(input.plan.agreement_id, input.plan.tenant, other)
        if existing.status is WorkflowExecutionStatus.RUNNING:
            return Deployed(workflow_id, existing.run_id, False, "already running")
        status = existing.status.name.lower() if existing.status else "closed"
        return Deployed(workflow_id, existing.run_id, False, f"already {status}")
    try:
        # USE_EXISTING makes a concurrent second deploy harmless; REJECT_DUPLICATE keeps a
        # finished agreement from being run again by mistake.
        handle = await client.start_workflow(
            AgreementWorkflow.run,
            input,
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            execution_timeout=execution_timeout,
            run_timeout=execution_timeout,
            search_attributes=agreement_search_attributes(
                input.plan.agreement_id, input.plan.tenant
            ),
            static_summary=clip_summary(f"{input.plan.document_number} · {input.plan.title}"),
            static_details=ui_text(
                f"**{input.plan.document_number} — {input.plan.title}**\n\n"
                f"- Thời gian: {input.plan.period_start:%d/%m/%Y} – "
                f"{input.plan.period_end:%d/%m/%Y}\n"
                f"- Số nhiệm vụ: {len(input.waiting)}\n"
                f"- Số nghĩa vụ: {len(input.plan.obligations)}"
            ),
        )
    except WorkflowAlreadyStartedError:
        return Deployed(workflow_id, None, False, "already completed earlier; not started again")
    return Deployed(workflow_id, handle.result_run_id, True, "started", handle)


async def deploy_loaded(
    client: Client,
    loaded: LoadedAgreement,
    *,
    session_factory: sessionmaker[Session],
    task_queue: str,
) -> Deployed:
    """Register the agreement for its directory's tenant (`TenantConflict` if another tenant
    has its ID), load the directory into the database, then start the agreement's workflow."""
    from infra import db

    tenant = loaded.directory.tenant
    with session_factory() as session:
        try:
            db.register_agreement(
                session, agreement_id=loaded.agreement.agreement_id, tenant=tenant
            )
        except db.AgreementOfOtherTenant as err:
            raise TenantConflict(err.agreement_id, err.tenant, err.other) from None
        db.upsert_directory(session, directory=loaded.directory)
    return await start_agreement(client, build_input(loaded, digest=True), task_queue=task_queue)


async def deploy_paths(
    client: Client,
    paths: list[Path],
    *,
    session_factory: sessionmaker[Session],
    task_queue: str,
    compare_running: bool = False,
) -> tuple[list[str], bool]:
    """Deploy every agreement file given (folders are expanded). Returns report lines and
    whether all were valid. An invalid file is reported and skipped; the others still deploy.
    `compare_running` (`accord deploy`): a file whose agreement is already running is compared
    with the version in force, and a changed one is pointed to `accord amend`."""
    lines: list[str] = []
    ok = True
    files: list[Path] = []
    for path in paths:
        files.extend(agreement_files(path) if path.is_dir() else [path])
    for file in files:
        try:
            loaded = load_agreement(file)
        except LoadError as err:
            ok = False
            lines.append(f"INVALID {file}: not deployed")
            lines.extend(f"  {problem}" for problem in err.problems)
            continue
        try:
            result = await deploy_loaded(
                client, loaded, session_factory=session_factory, task_queue=task_queue
            )
        except TenantConflict as err:
            ok = False
            lines.append(f"REFUSED {file}: {err}")
            continue
        verb = "deployed" if result.created else "unchanged"
        lines.append(
            f"{verb} {result.workflow_id}: {len(loaded.occurrences)} tasks ({result.note})"
        )
        if compare_running and not result.created and result.note == "already running":
            changed = await running_version_differs(client, build_input(loaded, digest=True))
            if changed:
                lines.append(
                    f"  {file} differs from the version in force: nothing was changed; to "
                    f"apply it, `accord amend {loaded.agreement.agreement_id} {file} "
                    '--document "số …, ngày …" --as ADMIN`'
                )
    return lines, ok


async def running_version_differs(client: Client, input: AgreementInput) -> bool:
    """Whether a running agreement's plan or tasks differ from `input` (a file deployed again
    after it changed): what `accord amend` would show. Tasks of recorded events are not in a
    file and are left out."""
    from datetime import UTC

    from temporalio.client import WorkflowQueryFailedError, WorkflowQueryRejectedError
    from temporalio.service import RPCError

    from workflows.agreement import AgreementWorkflow
    from workflows.amendment import KnownTask, plan_diff, task_diff

    handle = client.get_workflow_handle_for(
        AgreementWorkflow.run, agreement_workflow_id(input.plan.agreement_id)
    )
    try:
        current = await handle.query(AgreementWorkflow.current_plan, rpc_timeout=QUERY_TIMEOUT)
        facts = await handle.query(AgreementWorkflow.facts, rpc_timeout=QUERY_TIMEOUT)
    except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError):
        return False  # no worker answering, or an older one: nothing to compare with
    plan = input.plan.model_copy(update={"digest": current.digest})
    if plan_diff(current, plan):
        return True
    known = [
        KnownTask(
            task_id=fact.task_id,
            due_at=fact.due_at,
            written_due_at=fact.written_due_at,
            state=fact.state,
            closed=fact.closed,
        )
        for fact in facts.tasks
        if (obligation := current.obligations.get(fact.obligation_id)) is None
        or obligation.event is None
    ]
    return not task_diff(known, input.waiting, datetime.now(UTC)).empty


async def deploy_folder(
    client: Client, folder: Path, *, session_factory: sessionmaker[Session], task_queue: str
) -> list[str]:
    lines, _ = await deploy_paths(
        client, [folder], session_factory=session_factory, task_queue=task_queue
    )
    return lines
