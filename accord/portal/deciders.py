"""Approvers, admins and aggregators: pending extension requests, waivers, the matrix and the
consolidated report.

Who sees what is worked out here from the agreement's facts (the agreement workflow's `facts`
query) with the same rules as the obligation workflow's validators, but the validators stay
the judge: every decision and waiver goes through `engine.act`, signed, once per form key.

- An approver (`may_decide`): the head or a deputy head of the obligation's recipient agency,
  or the provincial leadership, as the obligation's `extension_approver` says; never an officer
  of an agency that owes the task, never the officer who asked.
- An admin waives a task with a reason.
- An aggregator (`is_aggregator`): an officer of an agency some obligation of the agreement
  goes to (e.g. Sở Nội vụ), an admin or the provincial leadership of the tenant. He sees the
  matrix of agencies × tasks and the consolidated report (issue 16) with its downloads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Annotated, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from temporalio.service import RPCError

from accord.portal.auth import CurrentOfficer, PageError, PortalOfficer, render, require_csrf
from accord.portal.context import PortalContext, portal_context, task_path
from accord.portal.engine import act
from accord.portal.i18n import Locale, t
from accord.portal.reads import task_status, tenant_facts
from accord.reporting import agreement_facts
from activities.models import Actor, AgreementFacts, TaskFact, TaskState
from activities.reporting import report_inputs
from agreements.calendar import last_day_of
from agreements.models import ExtensionApprover, OfficerRole
from infra.db import AgreementRow, directory_agencies, get_officer
from reports import charts, docx, xlsx
from reports.consolidate import UnknownPeriod, consolidate
from reports.export_labels import percent, status_label
from reports.model import ConsolidatedReport
from workflows.obligation import ObligationWorkflow
from workflows.payloads import (
    STATE_LABELS_EN,
    STATE_LABELS_VI,
    ExtensionDecision,
    ExtensionRequest,
    TaskStatus,
    Waiver,
)

log = logging.getLogger(__name__)

router = APIRouter()

NOT_STARTED = "not_started"
"""The matrix's state of a task whose workflow has not opened yet (`TaskFact.state` None)."""

STATE_SYMBOLS: dict[str, str] = {
    TaskState.PENDING.value: "○",
    TaskState.OVERDUE.value: "!",
    TaskState.DONE_ON_TIME.value: "✓",
    TaskState.DONE_LATE.value: "✓!",
    TaskState.WAIVED.value: "–",
    TaskState.NOT_DONE.value: "✗",
    TaskState.NOT_DONE_OVERDUE.value: "✗!",
    TaskState.SUSPENDED.value: "‖",
    TaskState.WITHDRAWN.value: "⊘",
    NOT_STARTED: "·",
}
"""A symbol per state, so that a cell never says its state by colour alone."""

MATRIX_STATES: tuple[str, ...] = tuple(STATE_SYMBOLS)


def state_label(state: str, locale: str) -> str:
    if state == NOT_STARTED:
        return t(locale, "Chưa mở", "Not open yet")
    labels = STATE_LABELS_EN if locale == "en" else STATE_LABELS_VI
    return labels[TaskState(state)]


# --------------------------------------------------------------------------------------------
# Who may do what (the validators' rules, to list; the validators judge)


def task_owners(task: TaskFact) -> list[str]:
    return [task.agency, *task.co_owners]


def may_decide(actor: Actor, facts: AgreementFacts, task: TaskFact) -> bool:
    """Whether `actor` is one the obligation names to decide the task's extension requests
    (`ObligationWorkflow._validate_decision`, less "not the one who asked", checked on the
    request itself)."""
    if actor.tenant != facts.tenant or actor.agency in task_owners(task):
        return False
    obligation = facts.obligations.get(task.obligation_id)
    if obligation is None:
        return False
    approvers = obligation.extension_approver
    head = OfficerRole.HEAD in actor.roles or OfficerRole.DEPUTY_HEAD in actor.roles
    if (
        ExtensionApprover.RECIPIENT_HEAD in approvers
        and head
        and obligation.recipient is not None
        and actor.agency == obligation.recipient
    ):
        return True
    leadership = OfficerRole.PROVINCIAL_LEADERSHIP in actor.roles
    return ExtensionApprover.PROVINCIAL_LEADERSHIP in approvers and leadership


def may_decide_now(actor: Actor, facts: AgreementFacts, task: TaskFact, status: TaskStatus) -> bool:
    """Whether the task page should offer `actor` the decide form (deciders_macros.html.j2
    `decide_form`): an open task with a pending request he did not make, that he may decide."""
    pending = status.pending_extension
    return (
        pending is not None
        and not status.closed
        and status.state.is_open
        and pending.actor.officer_id != actor.officer_id
        and may_decide(actor, facts, task)
    )


def is_aggregator(actor: Actor, facts: AgreementFacts) -> bool:
    """An admin or the provincial leadership of the agreement's tenant, or an officer of an
    agency one of its obligations goes to."""
    if actor.tenant != facts.tenant:
        return False
    if actor.is_admin or OfficerRole.PROVINCIAL_LEADERSHIP in actor.roles:
        return True
    return any(o.recipient == actor.agency for o in facts.obligations.values())


def agreement_of(task_id: str) -> str:
    return task_id.split("/", 1)[0]


# --------------------------------------------------------------------------------------------
# The matrix


@dataclass(frozen=True)
class MatrixColumn:
    obligation_id: str
    item_number: str | None
    title: str
    period_label: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.obligation_id, self.period_label)


@dataclass(frozen=True)
class MatrixCell:
    task_id: str
    state: str
    """A `TaskState` value or `NOT_STARTED`."""
    due_at: datetime | None
    escalation_level: int
    co_owners: list[str]
    lead: str
    """The leading owner: a joint task's cell says so in its co-owners' rows."""


@dataclass(frozen=True)
class MatrixRow:
    agency: str
    agency_name: str
    cells: list[MatrixCell | None]


@dataclass(frozen=True)
class MatrixFilters:
    item: str | None = None
    period: str | None = None
    state: str | None = None


@dataclass
class Matrix:
    columns: list[MatrixColumn]
    rows: list[MatrixRow]
    items: list[tuple[str, str]] = field(default_factory=list)
    """(obligation ID, label) of every obligation, for the filter."""
    periods: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    """Cells shown, by state."""


def cell_state(task: TaskFact) -> str:
    return task.state.value if task.state is not None else NOT_STARTED


def build_matrix(
    facts: AgreementFacts, agencies: list[tuple[str, str]], filters: MatrixFilters
) -> Matrix:
    """Agencies (rows, in `agencies`' order: the directory's; an agency without a task is
    left out) × tasks (columns: obligation and period, in the agreement's obligation order and
    by due date), each cell the task of that agency (a joint task in each owner's row) with its
    state.
    `filters` keep one obligation (`item`), one period, and cells of one state (the others
    blank, rows and columns left without a cell dropped)."""
    order = {key: n for n, key in enumerate(facts.obligations)}
    first_due: dict[tuple[str, str], datetime | None] = {}
    for task in facts.tasks:
        key = (task.obligation_id, task.period_label)
        due = first_due.get(key)
        if key not in first_due or (task.due_at is not None and (due is None or task.due_at < due)):
            first_due[key] = task.due_at
    periods: list[str] = []
    for key in sorted(first_due, key=lambda k: (_when(first_due[k]), k[1])):
        if key[1] not in periods:
            periods.append(key[1])

    def column(key: tuple[str, str]) -> MatrixColumn:
        obligation = facts.obligations.get(key[0])
        return MatrixColumn(
            obligation_id=key[0],
            item_number=obligation.item_number if obligation else None,
            title=obligation.title if obligation else key[0],
            period_label=key[1],
        )

    keys = sorted(
        first_due,
        key=lambda k: (order.get(k[0], len(order)), _when(first_due[k]), k[1]),
    )
    keys = [
        k
        for k in keys
        if (filters.item is None or k[0] == filters.item)
        and (filters.period is None or k[1] == filters.period)
    ]
    by_cell: dict[tuple[str, str, str], TaskFact] = {}
    for task in facts.tasks:  # a joint task is in each of its owners' rows
        for owner in task_owners(task):
            by_cell.setdefault((owner, task.obligation_id, task.period_label), task)
    names = dict(agencies)
    codes = [code for code, _ in agencies]
    codes += sorted({o for t in facts.tasks for o in task_owners(t)} - set(codes))
    rows: list[MatrixRow] = []
    counts: dict[str, int] = {}
    for code in codes:
        cells: list[MatrixCell | None] = []
        for key in keys:
            fact = by_cell.get((code, *key))
            if fact is None or (filters.state is not None and cell_state(fact) != filters.state):
                cells.append(None)
                continue
            cells.append(
                MatrixCell(
                    task_id=fact.task_id,
                    state=cell_state(fact),
                    due_at=fact.due_at,
                    escalation_level=fact.escalation_level,
                    co_owners=list(fact.co_owners),
                    lead=fact.agency,
                )
            )
        if any(cells):
            rows.append(MatrixRow(agency=code, agency_name=names.get(code, code), cells=cells))
            for cell in cells:
                if cell is not None:
                    counts[cell.state] = counts.get(cell.state, 0) + 1
    kept = [n for n in range(len(keys)) if any(row.cells[n] for row in rows)]
    return Matrix(
        columns=[column(keys[n]) for n in kept],
        rows=[MatrixRow(row.agency, row.agency_name, [row.cells[n] for n in kept]) for row in rows],
        items=[
            (key, f"{o.item_number} {o.title}" if o.item_number else o.title)
            for key, o in facts.obligations.items()
        ],
        periods=periods,
        counts=counts,
    )


def _when(at: datetime | None) -> datetime:
    return at if at is not None else datetime.max.replace(tzinfo=ZoneInfo("UTC"))


# --------------------------------------------------------------------------------------------
# Pending extension requests


@dataclass(frozen=True)
class PendingDecision:
    task_id: str
    agreement_title: str
    obligation_title: str
    item_number: str | None
    agency: str
    agency_name: str
    period_label: str
    due_at: datetime | None
    request: ExtensionRequest
    current_last_day: str
    asked_last_day: str
    asked_by: str
    """The requesting officer's name and agency, as the directory says."""


async def pending_decisions(ctx: PortalContext, officer: PortalOfficer) -> list[PendingDecision]:
    """The open tasks of the officer's tenant with an extension request he may decide."""
    actor = officer.actor
    found: list[PendingDecision] = []
    with ctx.session_factory() as session:
        names = {a.code: a.name for a in directory_agencies(session, tenant=actor.tenant)}
    for facts in await tenant_facts(ctx, actor.tenant):
        for task in facts.tasks:
            if task.state is None or not task.state.is_open or task.closed:
                continue
            if not may_decide(actor, facts, task):
                continue
            status = await task_status(ctx, task.task_id)
            if status is None or status.pending_extension is None:
                continue
            request = status.pending_extension
            if request.actor.officer_id == actor.officer_id:
                continue
            found.append(
                PendingDecision(
                    task_id=task.task_id,
                    agreement_title=facts.title,
                    obligation_title=status.task.title,
                    item_number=status.task.item_number,
                    agency=task.agency,
                    agency_name=names.get(task.agency, task.agency),
                    period_label=task.period_label,
                    due_at=status.due_at,
                    request=request,
                    current_last_day=last_day(status.due_at, status.task.time_zone),
                    asked_last_day=_day(request.new_due - timedelta(days=1)),
                    asked_by=_officer_text(ctx, request.actor, names),
                )
            )
    return sorted(found, key=lambda p: (_when(p.due_at), p.task_id))


def _officer_text(ctx: PortalContext, actor: Actor, names: dict[str, str]) -> str:
    with ctx.session_factory() as session:
        row = get_officer(session, tenant=actor.tenant, officer_id=actor.officer_id)
    name = row.name if row is not None else actor.officer_id
    return f"{name} ({names.get(actor.agency, actor.agency)})"


# --------------------------------------------------------------------------------------------
# Engine reads


def _not_found() -> PageError:
    return PageError(
        404,
        vi="Không có nhiệm vụ hoặc văn bản này trong đơn vị của bạn.",
        en="There is no such task or agreement in your organisation.",
    )


def _forbidden(vi: str, en: str) -> PageError:
    return PageError(403, vi=vi, en=en)


def _owns(ctx: PortalContext, tenant: str, agreement_id: str) -> bool:
    with ctx.session_factory() as session:
        row = session.get(AgreementRow, agreement_id)
    return row is not None and row.tenant == tenant


async def _facts_for(
    ctx: PortalContext, officer: PortalOfficer, agreement_id: str
) -> AgreementFacts:
    """The agreement's facts, when it is the officer's tenant's and he is one of its
    aggregators; else a 404 (another tenant's: nothing of it is told) or a 403 page."""
    if not _owns(ctx, officer.actor.tenant, agreement_id):
        raise _not_found()
    try:
        facts = await agreement_facts(ctx.client, agreement_id)
    except RPCError:
        raise _not_found() from None
    if not is_aggregator(officer.actor, facts):
        raise _forbidden(
            "Chỉ cơ quan tổng hợp, lãnh đạo tỉnh và quản trị viên xem được toàn bộ văn bản.",
            "Only the aggregating agency, the provincial leadership and admins see the whole "
            "agreement.",
        )
    return facts


def _local(at: datetime | None, zone: str, with_time: bool = False) -> str:
    if at is None:
        return "—"
    local = at.astimezone(ZoneInfo(zone))
    return local.strftime("%d/%m/%Y %H:%M" if with_time else "%d/%m/%Y")


def last_day(due_at: datetime | None, zone: str) -> str:
    """The last day to act, from a due instant (the first late moment, midnight local)."""
    return "—" if due_at is None else f"{last_day_of(due_at, ZoneInfo(zone)):%d/%m/%Y}"


def _day(value: date) -> str:
    return value.strftime("%d/%m/%Y")


# --------------------------------------------------------------------------------------------
# Routes: decisions


@router.get("/decisions", response_class=HTMLResponse)
async def decisions_page(request: Request, officer: CurrentOfficer) -> Response:
    ctx = portal_context(request)
    pending = await pending_decisions(ctx, officer)
    return render(
        request,
        "deciders_decisions.html.j2",
        {
            "officer": officer,
            "pending": pending,
            "task_path": task_path,
        },
    )


@router.post(
    "/tasks/{task_id:path}/decide",
    response_class=HTMLResponse,
    dependencies=[Depends(require_csrf)],
)
async def decide(
    request: Request,
    task_id: str,
    officer: CurrentOfficer,
    decision: Annotated[Literal["approve", "reject"], Form()],
    form_key: Annotated[str, Form()],
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    ctx = portal_context(request)
    if not _owns(ctx, officer.actor.tenant, agreement_of(task_id)):
        raise _not_found()
    payload = ExtensionDecision(
        actor=officer.actor, approve=decision == "approve", note=note.strip() or None
    )
    outcome = await act(
        ctx, officer, task_id, ObligationWorkflow.decide_extension, payload, form_key
    )
    return await _outcome_page(request, ctx, task_id, outcome.ok, outcome.message)


# --------------------------------------------------------------------------------------------
# Routes: waive


@router.get("/waive/{task_id:path}", response_class=HTMLResponse)
async def waive_form(request: Request, task_id: str, officer: CurrentOfficer) -> Response:
    """The waiver form (also reachable from the task page, which posts to the same URL)."""
    ctx = portal_context(request)
    if not _owns(ctx, officer.actor.tenant, agreement_of(task_id)):
        raise _not_found()
    _require_admin(officer)
    status = await task_status(ctx, task_id)
    if status is None:
        raise _not_found()
    return render(
        request,
        "deciders_waive.html.j2",
        {
            "status": status,
            "task_id": task_id,
            "due": last_day(status.due_at, status.task.time_zone),
            "task_path": task_path,
            "state": state_label(status.state.value, officer.locale),
        },
    )


@router.post(
    "/tasks/{task_id:path}/waive",
    response_class=HTMLResponse,
    dependencies=[Depends(require_csrf)],
)
async def waive(
    request: Request,
    task_id: str,
    officer: CurrentOfficer,
    reason: Annotated[str, Form(min_length=1, max_length=2000)],
    form_key: Annotated[str, Form()],
) -> Response:
    ctx = portal_context(request)
    if not _owns(ctx, officer.actor.tenant, agreement_of(task_id)):
        raise _not_found()
    _require_admin(officer)
    outcome = await act(
        ctx,
        officer,
        task_id,
        ObligationWorkflow.waive,
        Waiver(actor=officer.actor, reason=reason),
        form_key,
    )
    return await _outcome_page(request, ctx, task_id, outcome.ok, outcome.message)


def _require_admin(officer: PortalOfficer) -> None:
    if not officer.actor.is_admin:
        raise _forbidden("Chỉ quản trị viên được miễn nhiệm vụ.", "Only an admin may waive a task.")


async def _outcome_page(
    request: Request, ctx: PortalContext, task_id: str, ok: bool, message: str
) -> Response:
    status = await task_status(ctx, task_id)
    zone = status.task.time_zone if status else "Asia/Ho_Chi_Minh"
    return render(
        request,
        "deciders_outcome.html.j2",
        {
            "ok": ok,
            "message": message,
            "task_id": task_id,
            "status": status,
            "due": last_day(status.due_at if status else None, zone),
            "state": state_label(status.state.value, _locale(request)) if status else "—",
            "decisions": [
                (_local(d.at, zone, True), d.kind, d.actor, d.detail)
                for d in (status.decisions if status else [])
            ],
            "next_action_at": _local(status.next_action_at if status else None, zone, True),
            "task_path": task_path,
        },
        status_code=200 if ok else 422,
    )


def _locale(request: Request) -> Locale:
    from accord.portal.i18n import locale_of

    return locale_of(request)


# --------------------------------------------------------------------------------------------
# Routes: the aggregator's agreements, matrix and report


@router.get("/agreements", response_class=HTMLResponse)
async def agreements_page(request: Request, officer: CurrentOfficer) -> Response:
    ctx = portal_context(request)
    mine = [
        f for f in await tenant_facts(ctx, officer.actor.tenant) if is_aggregator(officer.actor, f)
    ]
    return render(request, "deciders_agreements.html.j2", {"agreements": mine})


@router.get("/agreements/{agreement_id}", response_class=HTMLResponse)
async def matrix_page(
    request: Request,
    agreement_id: str,
    officer: CurrentOfficer,
    item: Annotated[str | None, Query(max_length=200)] = None,
    period: Annotated[str | None, Query(max_length=100)] = None,
    state: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    ctx = portal_context(request)
    facts = await _facts_for(ctx, officer, agreement_id)
    filters = MatrixFilters(
        item=item or None,
        period=period or None,
        state=state if state in MATRIX_STATES else None,
    )
    with ctx.session_factory() as session:
        agencies = [(a.code, a.name) for a in directory_agencies(session, tenant=facts.tenant)]
    matrix = build_matrix(facts, agencies, filters)
    locale = _locale(request)
    return render(
        request,
        "deciders_matrix.html.j2",
        {
            "facts": facts,
            "matrix": matrix,
            "filters": filters,
            "states": [(s, state_label(s, locale), STATE_SYMBOLS[s]) for s in MATRIX_STATES],
            "symbol": STATE_SYMBOLS,
            "state_label": lambda s: state_label(s, locale),
            "last_day": lambda at: last_day(at, facts.time_zone),
            "task_path": task_path,
        },
    )


async def _report(
    ctx: PortalContext, officer: PortalOfficer, agreement_id: str, period: str | None
) -> ConsolidatedReport:
    facts = await _facts_for(ctx, officer, agreement_id)
    with ctx.session_factory() as session:
        inputs = report_inputs(session, facts)
    try:
        return consolidate(inputs, period=period or None)
    except UnknownPeriod:
        raise PageError(
            404,
            vi=f"Văn bản không có kỳ báo cáo {period!r}.",
            en=f"The agreement has no reporting period {period!r}.",
        ) from None


PeriodQuery = Annotated[str | None, Query(max_length=100)]


@router.get("/agreements/{agreement_id}/report", response_class=HTMLResponse)
async def report_page(
    request: Request, agreement_id: str, officer: CurrentOfficer, period: PeriodQuery = None
) -> Response:
    ctx = portal_context(request)
    report = await _report(ctx, officer, agreement_id, period)
    locale = _locale(request)
    query = f"?period={quote(period)}" if period else ""
    return render(
        request,
        "deciders_report.html.j2",
        {
            "report": report,
            "query": query,
            "status_label": lambda s: status_label(s, locale),
            "percent": lambda r: percent(r, locale),
            "day": lambda at: _local(at, report.time_zone),
            "moment": lambda at: _local(at, report.time_zone, True),
            "task_path": task_path,
        },
    )


def _download(content: bytes, media_type: str, name: str) -> Response:
    return Response(
        content,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


_EXPORTS = {
    "xlsx": (
        xlsx.workbook_bytes,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    "docx": (
        docx.document_bytes,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
}


@router.get("/agreements/{agreement_id}/report.{kind}")
async def report_export(
    request: Request,
    agreement_id: str,
    kind: Literal["xlsx", "docx"],
    officer: CurrentOfficer,
    period: PeriodQuery = None,
) -> Response:
    """The consolidated report as a workbook or a Decree 30 document."""
    report = await _report(portal_context(request), officer, agreement_id, period)
    render_bytes, media_type = _EXPORTS[kind]
    return _download(
        render_bytes(report, _locale(request)), media_type, f"{_file_stem(report)}.{kind}"
    )


@router.get("/agreements/{agreement_id}/on-time.png")
async def report_chart(
    request: Request, agreement_id: str, officer: CurrentOfficer, period: PeriodQuery = None
) -> Response:
    report = await _report(portal_context(request), officer, agreement_id, period)
    return Response(charts.on_time_chart(report, _locale(request)), media_type="image/png")


def _file_stem(report: ConsolidatedReport) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in report.agreement_id)
    period = "".join(c if c.isalnum() or c in "-_" else "-" for c in (report.period or "all"))
    return f"{safe}-{period}"
