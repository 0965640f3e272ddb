"""The officer's pages: his agency's tasks, a task, submit, extension request, decisions.

The data comes from the database's agreements of the officer's tenant, each agreement
workflow's `facts` query and each task workflow's `status` query (never Temporal visibility).
The forms go through `engine.act` (signed, once per form key); a refusal is shown on the page
in the reader's language and changes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from starlette.datastructures import FormData, UploadFile
from temporalio.service import RPCError

from accord.portal.auth import CurrentOfficer, PageError, PortalOfficer, render, require_csrf
from accord.portal.context import PortalContext, portal_context, task_path
from accord.portal.engine import act
from accord.portal.i18n import t
from accord.portal.reads import QUERY_TIMEOUT, task_status, tenant_facts
from accord.reporting import agreement_facts
from activities.models import (
    MAX_ATTACHMENTS,
    STATE_LABELS_EN,
    STATE_LABELS_VI,
    AgreementFacts,
    IndicatorValue,
    Ratio,
    TaskFact,
    TaskState,
)
from agreements.models import Indicator, IndicatorKind, OfficerRole
from infra.db import AgreementRow, SubmissionRow, UploadRow
from workflows.payloads import (
    ExtensionRequest,
    SubmitReport,
    TaskStatus,
)

log = logging.getLogger(__name__)

router = APIRouter()

HEADS = (OfficerRole.HEAD, OfficerRole.DEPUTY_HEAD)


# --------------------------------------------------------------------------------------------
# The data


@dataclass(frozen=True)
class TaskRow:
    """One task of the officer's agency, as the list shows it."""

    task_id: str
    agreement_id: str
    document_number: str
    title: str
    item_number: str | None
    period_label: str
    owners: list[str]
    state: TaskState | None
    """None: not started yet (its workflow opens later)."""
    due_at: datetime | None
    due_note_vi: str | None = None
    due_note_en: str | None = None
    covers_from: date | None = None
    covers_to: date | None = None
    escalation_level: int = 0
    escalations: list[datetime] = field(default_factory=list)
    """When each escalation notice went out."""

    @property
    def is_open(self) -> bool:
        return self.state is None or self.state.is_open

    @property
    def path(self) -> str:
        return task_path(self.task_id)


DECISION_LABELS: dict[str, tuple[str, str]] = {
    "submitted": ("Nộp báo cáo", "Report submitted"),
    "extension_requested": ("Đề nghị gia hạn", "Extension requested"),
    "extension_approved": ("Đồng ý gia hạn", "Extension approved"),
    "extension_rejected": ("Không đồng ý gia hạn", "Extension refused"),
    "waived": ("Miễn thực hiện", "Waived"),
    "no_recipient": ("Thông báo không có người nhận", "Notice without a recipient"),
    "calendar_changed": ("Lịch làm việc thay đổi", "Working calendar changed"),
}
NOTICE_LABELS: dict[str, tuple[str, str]] = {
    "reminder": ("Nhắc hạn", "Reminder"),
    "escalation": ("Nhắc cấp trên", "Escalation"),
    "overdue": ("Quá hạn", "Overdue"),
}


def kind_label(labels: dict[str, tuple[str, str]], kind: str, locale: str) -> str:
    """A decision's or notice's kind in the reader's language (the code itself if unknown)."""
    if kind not in labels:
        return kind
    vi, en = labels[kind]
    return t(locale, vi, en)


def due_text(due_at: datetime | None, zone: str, locale: str) -> str:
    """A due instant (the first late moment) as officers read it: 'Hết ngày 04/01/2027
    (trước 00:00 ngày 05/01/2027)'."""
    if due_at is None:
        return t(locale, "Không có hạn", "No due date")
    local = due_at.astimezone(ZoneInfo(zone))
    if local.hour == 0 and local.minute == 0:
        last = local.date() - timedelta(days=1)
        return t(
            locale,
            f"Hết ngày {last:%d/%m/%Y} (trước 00:00 ngày {local:%d/%m/%Y})",
            f"By the end of {last:%d/%m/%Y} (before 00:00 on {local:%d/%m/%Y})",
        )
    return t(
        locale,
        f"Trước {local:%H:%M} ngày {local:%d/%m/%Y}",
        f"Before {local:%H:%M} on {local:%d/%m/%Y}",
    )


def state_label(state: TaskState | None, locale: str) -> str:
    if state is None:
        return t(locale, "Chưa bắt đầu", "Not started yet")
    return STATE_LABELS_EN[state] if locale == "en" else STATE_LABELS_VI[state]


def sort_rows(rows: list[TaskRow]) -> list[TaskRow]:
    """Open tasks first by due date (no date last), then the closed ones, latest due first."""
    far = datetime.max.replace(tzinfo=ZoneInfo("UTC"))
    open_rows = sorted((r for r in rows if r.is_open), key=lambda r: (r.due_at or far, r.task_id))
    closed = sorted(
        (r for r in rows if not r.is_open),
        key=lambda r: (r.due_at or far, r.task_id),
        reverse=True,
    )
    return [*open_rows, *closed]


async def agency_tasks(ctx: PortalContext, officer: PortalOfficer) -> list[TaskRow]:
    """The tasks the officer's agency owes (a joint task counts for each owner), open ones
    first by due date."""
    agency = officer.actor.agency
    rows: list[TaskRow] = []
    for facts in await tenant_facts(ctx, officer.actor.tenant):
        mine = [f for f in facts.tasks if agency in (f.agency, *f.co_owners)]
        statuses = await asyncio.gather(*(task_status(ctx, f.task_id) for f in mine))
        for fact, status in zip(mine, statuses, strict=True):
            obligation = facts.obligations.get(fact.obligation_id)
            ref = status.task if status is not None else None
            rows.append(
                TaskRow(
                    task_id=fact.task_id,
                    agreement_id=facts.agreement_id,
                    document_number=facts.document_number,
                    title=obligation.title if obligation else fact.obligation_id,
                    item_number=obligation.item_number if obligation else None,
                    period_label=fact.period_label,
                    owners=[fact.agency, *fact.co_owners],
                    state=status.state if status is not None else fact.state,
                    due_at=status.due_at if status is not None else fact.due_at,
                    due_note_vi=(status.due_note or (ref.due_note_vi if ref else None))
                    if status is not None
                    else None,
                    due_note_en=ref.due_note_en if ref else None,
                    covers_from=ref.covers_from if ref else None,
                    covers_to=ref.covers_to if ref else None,
                    escalation_level=status.escalation_level if status is not None else 0,
                    escalations=[
                        n.at
                        for n in (status.notices if status is not None else [])
                        if n.kind == "escalation" and not n.skipped
                    ],
                )
            )
    return sort_rows(rows)


def is_head(officer: PortalOfficer) -> bool:
    return any(role in officer.actor.roles for role in HEADS)


def agreement_of(task_id: str) -> str:
    return task_id.split("/", 1)[0]


def may_view(officer: PortalOfficer, status: TaskStatus, facts: AgreementFacts | None) -> bool:
    """Who sees a task: its owners' officers, and whoever sees the agreement's matrix (an
    admin, the provincial leadership, an officer of an agency the agreement's deliverables go
    to: `deciders.is_aggregator`), read-only unless he owns it."""
    from accord.portal.deciders import is_aggregator

    actor = officer.actor
    if actor.tenant != status.task.tenant:
        return False
    if actor.is_admin or actor.agency in status.task.owners:
        return True
    if OfficerRole.PROVINCIAL_LEADERSHIP in actor.roles or actor.agency == status.task.recipient:
        return True
    return facts is not None and is_aggregator(actor, facts)


def deciders_actions(
    officer: PortalOfficer, status: TaskStatus, facts: AgreementFacts | None
) -> tuple[bool, bool]:
    """Which deciders' forms the task page offers (the workflow's validators judge anyway):
    the approve/reject form to one who may decide the pending extension request now
    (`deciders.may_decide_now`), the waiver form to an admin on an open task."""
    from accord.portal.deciders import may_decide_now

    actor = officer.actor
    task = status.task
    may_decide = facts is not None and may_decide_now(
        actor,
        facts,
        TaskFact(
            task_id=task.task_id,
            obligation_id=task.obligation_id,
            agency=task.agency,
            co_owners=list(task.co_owners),
            period_label=task.period_label,
            state=status.state,
            due_at=status.due_at,
            escalation_level=status.escalation_level,
            closed=status.closed,
        ),
        status,
    )
    may_waive = (
        actor.is_admin
        and actor.tenant == task.tenant
        and status.state.is_open
        and not status.closed
    )
    return may_decide, may_waive


def may_act(officer: PortalOfficer, status: TaskStatus) -> bool:
    """Who gets the submit and extension forms (the workflow's validators decide anyway)."""
    return officer.actor.is_admin or officer.actor.agency in status.task.owners


async def visible_task(ctx: PortalContext, officer: PortalOfficer, task_id: str) -> TaskStatus:
    """The task's status if the officer may see it: a 404 page when it is not his tenant's
    (or does not exist), a 403 page when it is another agency's. Neither says anything about
    the task."""
    not_found = PageError(
        404,
        vi="Không tìm thấy nhiệm vụ này.",
        en="There is no such task.",
    )
    with ctx.session_factory() as session:
        row = session.get(AgreementRow, agreement_of(task_id))
    if row is None or row.tenant != officer.actor.tenant:
        raise not_found
    status = await task_status(ctx, task_id)
    if status is None:
        raise not_found
    try:
        facts: AgreementFacts | None = await agreement_facts(
            ctx.client, status.task.agreement_id, rpc_timeout=QUERY_TIMEOUT
        )
    except RPCError:
        facts = None
    if not may_view(officer, status, facts):
        raise PageError(
            403,
            vi="Nhiệm vụ này không thuộc cơ quan của bạn.",
            en="This task does not belong to your agency.",
        )
    return status


async def obligation_indicators(ctx: PortalContext, status: TaskStatus) -> list[Indicator]:
    """The indicators the task's obligation asks for (the agreement's facts)."""
    try:
        facts = await agreement_facts(
            ctx.client, status.task.agreement_id, rpc_timeout=QUERY_TIMEOUT
        )
    except RPCError:
        log.exception("portal: facts of %s", status.task.agreement_id)
        return []
    obligation = facts.obligations.get(status.task.obligation_id)
    return list(obligation.indicators) if obligation else []


# --------------------------------------------------------------------------------------------
# Parsing the forms (pure)


@dataclass(frozen=True)
class Problem:
    field: str
    vi: str
    en: str


def indicator_field(code: str, part: str | int | None = None) -> str:
    """The form field of an indicator (or of one part: done/total, a category's index)."""
    return f"ind.{code}" if part is None else f"ind.{code}.{part}"


def _number(raw: str, name: str, label: str) -> tuple[int | None, Problem | None]:
    text = raw.strip().replace(".", "").replace(" ", "") if raw else ""
    if not text:
        return None, None
    if not text.isdigit():
        return None, Problem(
            name,
            f"“{label}”: hãy nhập một số nguyên không âm.",
            f"“{label}”: enter a whole number, zero or more.",
        )
    return int(text), None


def parse_indicators(
    form: dict[str, str], indicators: list[Indicator]
) -> tuple[dict[str, IndicatorValue], list[Problem]]:
    """The indicators typed in the form, or the problems (a required one missing, a number
    that is not one, done above total)."""
    values: dict[str, IndicatorValue] = {}
    problems: list[Problem] = []

    def missing(name: str, label: str) -> Problem:
        return Problem(
            name, f"“{label}”: chỉ tiêu này là bắt buộc.", f"“{label}”: this figure is required."
        )

    for ind in indicators:
        label = ind.label
        if ind.kind is IndicatorKind.COUNT:
            name = indicator_field(ind.code)
            number, problem = _number(form.get(name, ""), name, label)
            if problem:
                problems.append(problem)
            elif number is not None:
                values[ind.code] = number
            elif ind.required:
                problems.append(missing(name, label))
        elif ind.kind is IndicatorKind.RATIO:
            done_name, total_name = (
                indicator_field(ind.code, "done"),
                indicator_field(ind.code, "total"),
            )
            done, p1 = _number(form.get(done_name, ""), done_name, label)
            total, p2 = _number(form.get(total_name, ""), total_name, label)
            if p1 or p2:
                problems.extend(p for p in (p1, p2) if p)
            elif done is None and total is None:
                if ind.required:
                    problems.append(missing(done_name, label))
            elif done is None or total is None:
                problems.append(
                    Problem(
                        done_name,
                        f"“{label}”: hãy nhập cả số đã thực hiện và tổng số.",
                        f"“{label}”: enter both the number done and the total.",
                    )
                )
            elif done > total:
                problems.append(
                    Problem(
                        done_name,
                        f"“{label}”: số đã thực hiện ({done}) lớn hơn tổng số ({total}).",
                        f"“{label}”: done ({done}) is more than the total ({total}).",
                    )
                )
            else:
                values[ind.code] = Ratio(done=done, total=total)
        elif ind.kind is IndicatorKind.BREAKDOWN:
            parts: dict[str, int] = {}
            bad = False
            for index, category in enumerate(ind.categories or []):
                name = indicator_field(ind.code, index)
                number, problem = _number(form.get(name, ""), name, f"{label} — {category}")
                if problem:
                    problems.append(problem)
                    bad = True
                elif number is not None:
                    parts[category] = number
            if bad:
                continue
            if parts:
                for category in ind.categories or []:
                    parts.setdefault(category, 0)
                values[ind.code] = {c: parts[c] for c in ind.categories or []}
            elif ind.required:
                problems.append(missing(indicator_field(ind.code, 0), label))
        else:
            name = indicator_field(ind.code)
            text = form.get(name, "").strip()
            if text:
                values[ind.code] = text
            elif ind.required:
                problems.append(missing(name, label))
    return values, problems


def parse_summary(form: dict[str, str]) -> tuple[str, list[Problem]]:
    summary = form.get("summary", "").strip()
    if not summary:
        return "", [Problem("summary", "Hãy nhập nội dung báo cáo.", "Enter the report's summary.")]
    if len(summary) > 20_000:
        return "", [
            Problem(
                "summary",
                "Nội dung báo cáo dài quá 20.000 ký tự.",
                "The summary is longer than 20,000 characters.",
            )
        ]
    return summary, []


@dataclass(frozen=True)
class ExtensionRules:
    """What dates an extension request may ask for (the workflow's validator's rules)."""

    earliest: date | None
    """The day after the current due date (the new date is a first-late day too)."""
    latest: date
    """The day after the agreement's period ends."""


def extension_rules(status: TaskStatus, period_end: date) -> ExtensionRules:
    zone = ZoneInfo(status.task.time_zone)
    due = status.due_at.astimezone(zone).date() if status.due_at else None
    return ExtensionRules(
        earliest=due + timedelta(days=1) if due else None, latest=period_end + timedelta(days=1)
    )


def parse_extension(
    form: dict[str, str], rules: ExtensionRules
) -> tuple[tuple[date, str] | None, list[Problem]]:
    """The new date and reason of an extension request, checked against the rules shown."""
    problems: list[Problem] = []
    reason = form.get("reason", "").strip()
    if not reason:
        problems.append(Problem("reason", "Hãy nêu lý do.", "Give a reason."))
    elif len(reason) > 2000:
        problems.append(
            Problem("reason", "Lý do dài quá 2.000 ký tự.", "The reason is over 2,000 characters.")
        )
    raw = form.get("new_due", "").strip()
    new_due: date | None = None
    try:
        new_due = date.fromisoformat(raw)
    except ValueError:
        problems.append(Problem("new_due", "Hãy chọn ngày mới hợp lệ.", "Choose a valid new date."))
    if new_due is not None:
        if rules.earliest is not None and new_due < rules.earliest:
            problems.append(
                Problem(
                    "new_due",
                    f"Ngày mới phải từ {rules.earliest:%d/%m/%Y} trở đi (sau hạn hiện tại).",
                    f"The new date must be {rules.earliest:%d/%m/%Y} or later (after the "
                    "current due date).",
                )
            )
        if new_due > rules.latest:
            problems.append(
                Problem(
                    "new_due",
                    f"Ngày mới không được sau {rules.latest:%d/%m/%Y} (hết thời gian của văn bản).",
                    f"The new date may not be after {rules.latest:%d/%m/%Y} (the agreement's "
                    "period ends).",
                )
            )
    if problems or new_due is None:
        return None, problems
    return (new_due, reason), []


# --------------------------------------------------------------------------------------------
# Uploads (content-addressed under <data_dir>/uploads/)

_MAGIC: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}
_ZIP = (b"PK\x03\x04",)
_SAFE_NAME = re.compile(r"[^\w.\- ()]+", re.UNICODE)


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    name: str
    content_type: str

    @property
    def ref(self) -> str:
        return f"sha256:{self.sha256}"


def upload_dir(ctx: PortalContext) -> Path:
    return Path(ctx.settings.data_dir) / "uploads"


def clean_name(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    base = _SAFE_NAME.sub("_", base).strip(" .") or "tep"
    return base[:200]


def size_text(size: int) -> str:
    """A byte count as officers read it: `20 MB`, `4 KB`, `1.5 MB`."""
    if size >= 1024 * 1024:
        return f"{size / 1024 / 1024:.1f}".removesuffix(".0") + " MB"
    return f"{size / 1024:.1f}".removesuffix(".0") + " KB"


def type_matches(content_type: str, head: bytes) -> bool:
    """The file's first bytes agree with its declared type (when we know its signature)."""
    if content_type in _MAGIC:
        return head.startswith(_MAGIC[content_type])
    if content_type.startswith("application/vnd.openxmlformats") or content_type.startswith(
        "application/vnd.oasis"
    ):
        return head.startswith(_ZIP)
    return True


async def read_upload(
    upload: UploadFile, *, max_bytes: int, types: list[str]
) -> tuple[bytes | None, Problem | None]:
    """The file's bytes, or why it is refused (too large, a type not allowed)."""
    name = clean_name(upload.filename or "")
    content_type = (upload.content_type or "").split(";")[0].strip().lower()
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        limit = size_text(max_bytes)
        return None, Problem(
            "files",
            f"Tệp “{name}” lớn hơn giới hạn {limit}; không có gì được lưu.",
            f"The file “{name}” is larger than the {limit} limit; nothing was stored.",
        )
    if content_type not in types or not type_matches(content_type, data[:8]):
        return None, Problem(
            "files",
            f"Tệp “{name}” không thuộc loại được nhận (PDF, Word, Excel, ODF, CSV, PNG, JPEG); "
            "không có gì được lưu.",
            f"The file “{name}” is not of an accepted type (PDF, Word, Excel, ODF, CSV, PNG, "
            "JPEG); nothing was stored.",
        )
    return data, None


def store_upload(
    ctx: PortalContext,
    officer: PortalOfficer,
    task_id: str,
    *,
    data: bytes,
    name: str,
    content_type: str,
) -> StoredFile:
    """Keep the file by its digest (written once, atomically) and record its metadata."""
    digest = hashlib.sha256(data).hexdigest()
    folder = upload_dir(ctx) / digest[:2]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / digest
    if not target.exists():
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".upload-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temporary, target)
    stored = StoredFile(digest, len(data), clean_name(name), content_type)
    with ctx.session_factory() as session:
        known = session.scalar(
            select(UploadRow).where(
                UploadRow.task_id == task_id,
                UploadRow.sha256 == digest,
                UploadRow.name == stored.name,
            )
        )
        if known is None:
            session.add(
                UploadRow(
                    sha256=digest,
                    size=stored.size,
                    content_type=content_type,
                    name=stored.name,
                    tenant=officer.actor.tenant,
                    officer_id=officer.actor.officer_id,
                    task_id=task_id,
                    at=ctx.now(),
                )
            )
            session.commit()
    return stored


def task_uploads(ctx: PortalContext, task_id: str, refs: list[str]) -> list[StoredFile]:
    """The stored files a submission's `sha256:` references name."""
    digests = [r.removeprefix("sha256:") for r in refs if r.startswith("sha256:")]
    if not digests:
        return []
    with ctx.session_factory() as session:
        rows = session.scalars(
            select(UploadRow).where(UploadRow.task_id == task_id, UploadRow.sha256.in_(digests))
        ).all()
    by_digest = {r.sha256: r for r in rows}
    return [
        StoredFile(d, by_digest[d].size, by_digest[d].name, by_digest[d].content_type)
        for d in digests
        if d in by_digest
    ]


# --------------------------------------------------------------------------------------------
# Pages


def _fields(form: FormData) -> dict[str, str]:
    return {k: v for k, v in form.multi_items() if isinstance(v, str)}


def _period_end(status: TaskStatus, facts_period_end: date | None) -> date:
    return facts_period_end or date.max - timedelta(days=1)


async def _task_page(
    request: Request,
    officer: PortalOfficer,
    status: TaskStatus,
    *,
    problems: list[Problem] | None = None,
    message: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    ctx = portal_context(request)
    locale = officer.locale
    facts: AgreementFacts | None
    try:
        facts = await agreement_facts(
            ctx.client, status.task.agreement_id, rpc_timeout=QUERY_TIMEOUT
        )
    except RPCError:
        facts = None
    obligation = facts.obligations.get(status.task.obligation_id) if facts else None
    indicators = list(obligation.indicators) if obligation else []
    rules = extension_rules(status, _period_end(status, facts.period_end if facts else None))
    submission_files = submitted_files(ctx, status.task.task_id) if status.submitted_at else []
    may_decide, may_waive = deciders_actions(officer, status, facts)
    return render(
        request,
        "officer_task.html.j2",
        {
            "officer": officer,
            "status": status,
            "task": status.task,
            "task_path": task_path(status.task.task_id),
            "state_text": state_label(status.state, locale),
            "due_note": (status.task.due_note_en if locale == "en" else None)
            or status.due_note
            or status.task.due_note_vi,
            "indicators": indicators,
            "kinds": IndicatorKind,
            "field": indicator_field,
            "rules": rules,
            "may_act": may_act(officer, status) and status.state.is_open,
            "may_extend": may_act(officer, status)
            and status.state.is_open
            and status.due_at is not None
            and status.pending_extension is None,
            "problems": [t(locale, p.vi, p.en) for p in problems or []],
            "message": message,
            "form": form or {},
            "max_upload": size_text(ctx.settings.portal.max_upload_bytes),
            "max_files": MAX_ATTACHMENTS,
            "upload_types": ",".join(ctx.settings.portal.upload_types),
            "files": submission_files,
            "local": lambda at: at.astimezone(ZoneInfo(status.task.time_zone)),
            "is_head": is_head(officer),
            "may_decide": may_decide,
            "may_waive": may_waive,
            "due": lambda at: due_text(at, status.task.time_zone, locale),
            "decision_label": lambda kind: kind_label(DECISION_LABELS, kind, locale),
            "notice_label": lambda kind: kind_label(NOTICE_LABELS, kind, locale),
        },
        status_code=status_code,
    )


@router.get("/", response_class=HTMLResponse)
async def task_list(request: Request, officer: CurrentOfficer) -> Response:
    ctx = portal_context(request)
    rows = await agency_tasks(ctx, officer)
    zone = ZoneInfo("Asia/Ho_Chi_Minh")
    return render(
        request,
        "officer_tasks.html.j2",
        {
            "officer": officer,
            "rows": rows,
            "label": lambda state: state_label(state, officer.locale),
            "local": lambda at: at.astimezone(zone),
            "is_head": is_head(officer),
            "due": lambda at: due_text(at, "Asia/Ho_Chi_Minh", officer.locale),
            "escalated": [r for r in rows if r.escalation_level > 0] if is_head(officer) else [],
        },
    )


# Before the task page: its `{task_id:path}` would take the file's path too.
@router.get("/tasks/{task_id:path}/files/{digest}")
async def download(
    request: Request, task_id: str, digest: str, officer: CurrentOfficer
) -> Response:
    """A file of the task's report, to whoever may see the task: always as an attachment,
    never rendered by the browser (nosniff, and never as HTML)."""
    ctx = portal_context(request)
    await visible_task(ctx, officer, task_id)
    with ctx.session_factory() as session:
        row = session.scalar(
            select(UploadRow).where(UploadRow.task_id == task_id, UploadRow.sha256 == digest)
        )
    path = upload_dir(ctx) / digest[:2] / digest
    if row is None or not re.fullmatch(r"[0-9a-f]{64}", digest) or not path.is_file():
        raise PageError(404, vi="Không có tệp này.", en="There is no such file.")
    content_type = row.content_type
    if "html" in content_type or "xml" in content_type or "javascript" in content_type:
        content_type = "application/octet-stream"
    return Response(
        path.read_bytes(),
        media_type=content_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(row.name)}",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/tasks/{task_id:path}", response_class=HTMLResponse)
async def task_page(request: Request, task_id: str, officer: CurrentOfficer) -> Response:
    ctx = portal_context(request)
    status = await visible_task(ctx, officer, task_id)
    return await _task_page(request, officer, status)


@router.post("/tasks/{task_id:path}/submit", dependencies=[Depends(require_csrf)])
async def submit(request: Request, task_id: str, officer: CurrentOfficer) -> Response:
    ctx = portal_context(request)
    status = await visible_task(ctx, officer, task_id)
    form = await request.form()
    fields = _fields(form)
    indicators = await obligation_indicators(ctx, status)
    summary, problems = parse_summary(fields)
    values, more = parse_indicators(fields, indicators)
    problems += more
    uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
    if len(uploads) > MAX_ATTACHMENTS:
        problems.append(
            Problem(
                "files",
                f"Tối đa {MAX_ATTACHMENTS} tệp đính kèm.",
                f"At most {MAX_ATTACHMENTS} attachments.",
            )
        )
    accepted: list[tuple[bytes, UploadFile]] = []
    for upload in uploads:
        data, problem = await read_upload(
            upload,
            max_bytes=ctx.settings.portal.max_upload_bytes,
            types=ctx.settings.portal.upload_types,
        )
        if problem is not None:
            problems.append(problem)
        elif data is not None:
            accepted.append((data, upload))
    if problems:
        return await _task_page(
            request, officer, status, problems=problems, form=fields, status_code=400
        )
    stored = [
        store_upload(
            ctx,
            officer,
            task_id,
            data=data,
            name=upload.filename or "",
            content_type=(upload.content_type or "").split(";")[0].strip().lower(),
        )
        for data, upload in accepted
    ]
    refs = list(dict.fromkeys(s.ref for s in stored))
    payload = SubmitReport(
        actor=officer.actor, summary=summary, indicators=values, attachments=refs
    )
    outcome = await act(
        ctx, officer, task_id, _obligation().submit_report, payload, fields.get("form_key", "")
    )
    if not outcome.ok or outcome.result is None:
        return await _task_page(
            request,
            officer,
            status,
            problems=[Problem("", outcome.message, outcome.message)],
            form=fields,
            status_code=409,
        )
    result = outcome.result
    if not stored:  # a re-posted form: show the first post's files
        stored = task_uploads(ctx, task_id, list(refs))
    return render(
        request,
        "officer_receipt.html.j2",
        {
            "officer": officer,
            "task": status.task,
            "task_path": task_path(status.task.task_id),
            "result": result,
            "message": outcome.message,
            "state_text": state_label(result.state, officer.locale),
            "files": stored,
            "values": values,
            "indicators": indicators,
            "summary": summary,
            "due": lambda at: due_text(at, status.task.time_zone, officer.locale),
            "local": lambda at: at.astimezone(ZoneInfo(status.task.time_zone)),
        },
    )


@router.post("/tasks/{task_id:path}/extension", dependencies=[Depends(require_csrf)])
async def request_extension(request: Request, task_id: str, officer: CurrentOfficer) -> Response:
    ctx = portal_context(request)
    status = await visible_task(ctx, officer, task_id)
    fields = _fields(await request.form())
    try:
        facts = await agreement_facts(
            ctx.client, status.task.agreement_id, rpc_timeout=QUERY_TIMEOUT
        )
        period_end = facts.period_end
    except RPCError:
        period_end = date.max - timedelta(days=1)
    parsed, problems = parse_extension(fields, extension_rules(status, period_end))
    if parsed is None:
        return await _task_page(
            request, officer, status, problems=problems, form=fields, status_code=400
        )
    new_due, reason = parsed
    payload = ExtensionRequest(actor=officer.actor, new_due=new_due, reason=reason)
    outcome = await act(
        ctx, officer, task_id, _obligation().request_extension, payload, fields.get("form_key", "")
    )
    fresh = await task_status(ctx, task_id) or status
    if not outcome.ok:
        return await _task_page(
            request,
            officer,
            fresh,
            problems=[Problem("", outcome.message, outcome.message)],
            form=fields,
            status_code=409,
        )
    return await _task_page(request, officer, fresh, message=outcome.message)


def submitted_files(ctx: PortalContext, task_id: str) -> list[StoredFile]:
    """The files of the task's stored submission (its `sha256:` attachments)."""
    with ctx.session_factory() as session:
        refs = session.scalar(
            select(SubmissionRow.attachments).where(SubmissionRow.task_id == task_id)
        )
    return task_uploads(ctx, task_id, list(refs or []))


def _obligation() -> Any:
    from workflows.obligation import ObligationWorkflow

    return ObligationWorkflow
