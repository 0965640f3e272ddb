"""The activity that mails the compliance digest of an agreement to the aggregator (the focal
points of the agencies its obligations' deliverables go to, e.g. Sở Nội vụ) and the tenant's
provincial leadership.

The agreement workflow runs it the working day after each due date and weekly while a task is
overdue (workflows/agreement.py), with the facts of the periods the digest covers; the stored
side of the report (submissions, waivers, extensions) is read here, and the report is
computed by `reports.consolidate`, like every other rendering of it. Each message carries the
compliance table (text and HTML, in the officer's language: Vietnamese unless the directory
says `en`), the on-time chart inline (`cid:`) and the XLSX workbook attached.

Delivery goes through the notifications' outbox and SMTP pool (activities/mail.py): one row per
(business key, recipient), written before the SMTP conversation and marked sent right after,
so a retried attempt sends only what is still pending. A digest's rows have kind `digest` and
the agreement-level pseudo task ID `<agreement>/digest` (`digest_task_id`). A recipient the
server refuses for good is marked failed and logged; unlike a task's notices, no admin notice
follows (the digest is a summary; its absence harms no deadline). Recipients are resolved when
the activity runs; nobody to send to is not an error (logged, result `recipients` 0).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.mail import MailActivities, OutboxOwner, Outgoing, insert_outbox, select_outbox
from activities.models import (
    DIGEST_OUTBOX_KIND,
    DigestRequest,
    DigestResult,
    digest_task_id,
)
from activities.reporting import report_inputs
from activities.templates import (
    Composed,
    Locale,
    MailPart,
    MailTemplates,
    Recipient,
    compose_digest,
    package_templates,
)
from agreements.models import OfficerRole, RecipientRole
from agreements.recipients import Holder, pick_recipients, role_scopes
from infra.db import OutboxStatus, active_officers, add_audit_rows
from infra.settings import SmtpSettings
from reports.charts import on_time_chart
from reports.consolidate import consolidate
from reports.export_labels import day, moment, number, percent, status_label, text
from reports.model import ComplianceStatus, ConsolidatedReport, TaskCompliance
from reports.xlsx import workbook_bytes

CHART_CID = "ty-le-dung-han@accord"
CHART_FILE = "ty-le-dung-han.png"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def digest_recipients(session: Session, request: DigestRequest) -> list[Recipient]:
    """The aggregator's focal points (of every agency the obligations' deliverables go to)
    and the officers of the tenant holding the provincial-leadership role, one per address,
    the aggregator first."""
    facts = request.facts
    aggregators = sorted({o.recipient for o in facts.obligations.values() if o.recipient})
    scopes = [
        scope
        for code in aggregators
        for scope in role_scopes([RecipientRole.AGGREGATOR], agency=code, recipient=code)
    ]
    scopes += role_scopes([RecipientRole.PROVINCIAL_LEADERSHIP], agency="", recipient=None)
    officers = active_officers(
        session,
        tenant=facts.tenant,
        roles={OfficerRole.FOCAL_POINT, OfficerRole.PROVINCIAL_LEADERSHIP},
        everywhere=True,
    )
    holders = [
        (officer, Holder(officer.agency_code, province, officer.roles, officer.email))
        for officer, province in officers
    ]
    # No province: the tenant's provincial leadership, wherever their agency is.
    return [Recipient.of(officer, role) for officer, role in pick_recipients(scopes, holders, None)]


def digest_variables(
    report: ConsolidatedReport,
    request: DigestRequest,
    recipient: Recipient,
    locale: Locale,
    portal_url: str | None = None,
) -> dict[str, Any]:
    """What the digest's templates are given (`activities.templates.DIGEST_VARIABLES`);
    `portal_url` is the recipient's own link to the portal's home (None: no link)."""
    totals = report.totals
    shown = [s for s in ComplianceStatus if totals.counts.get(s, 0)]
    overdue = totals.counts.get(ComplianceStatus.OVERDUE, 0)
    missing = [f"{m.agency_name} ({m.obligation_title}, {m.period_label})" for m in report.missing]
    return {
        "lang": locale,
        "recipient_name": recipient.name,
        "role": recipient.role.value if recipient.role else "",
        "kind": request.kind,
        "document": report.document_number,
        "title": report.title,
        "periods": request.periods,
        "due_days": [d.strftime("%d/%m/%Y") for d in request.due_days],
        "as_of": moment(report, request.scheduled_at),
        "totals": {
            "tasks": number(totals.tasks, locale),
            "due": number(totals.due, locale),
            "on_time": number(totals.on_time, locale),
            "rate": percent(totals.on_time_rate, locale),
            "counts": [(status_label(s, locale), number(totals.counts[s], locale)) for s in shown],
        },
        "rows": [_row(report, task, locale) for task in report.tasks],
        "missing": missing,
        "overdue": number(overdue, locale),
        "xlsx_name": xlsx_name(request),
        "portal_url": portal_url,
    }


def _row(report: ConsolidatedReport, task: TaskCompliance, locale: Locale) -> dict[str, str]:
    detail = ""
    match task.status:
        case ComplianceStatus.LATE if task.late_working_days is not None:
            detail = text(
                locale,
                f"trễ {task.late_working_days} ngày làm việc",
                f"{task.late_working_days} working day(s) late",
            )
        case ComplianceStatus.OVERDUE | ComplianceStatus.NOT_DONE if task.escalation_level:
            detail = text(
                locale,
                f"mức đôn đốc {task.escalation_level}",
                f"escalation level {task.escalation_level}",
            )
        case ComplianceStatus.WAIVED if task.waiver_reason:
            detail = text(locale, f"lý do: {task.waiver_reason}", f"reason: {task.waiver_reason}")
        case ComplianceStatus.EXTENDED if task.extended_to is not None:
            detail = text(
                locale,
                f"hạn mới trước ngày {day(report, task.extended_to)}",
                f"new deadline before {day(report, task.extended_to)}",
            )
    due = (
        text(locale, f"trước ngày {day(report, task.due_at)}", f"before {day(report, task.due_at)}")
        if task.due_at is not None
        else text(locale, "không có hạn", "no deadline")
    )
    return {
        "agency": task.agency_name,
        "obligation": task.obligation_title,
        "period": task.period_label,
        "due": due,
        "status": status_label(task.status, locale),
        "detail": " ".join(detail.split()),
        "submitted": day(report, task.submitted_at),
    }


def xlsx_name(request: DigestRequest) -> str:
    """The workbook's file name: ASCII, from the digest's day."""
    try:
        zone: tzinfo = ZoneInfo(request.facts.time_zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        zone = UTC
    local_day = request.scheduled_at.astimezone(zone).date()
    kind = "hang-tuan" if request.kind == "weekly" else "sau-han-nop"
    return f"tong-hop-{kind}-{local_day:%Y-%m-%d}.xlsx"


@dataclass
class _Prepared:
    recipients: list[Recipient]
    outgoing: list[Outgoing] = field(default_factory=list)
    already_sent: int = 0
    failed_before: int = 0


class DigestActivities:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        smtp: SmtpSettings,
        mail: MailActivities,
        *,
        templates: MailTemplates | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._smtp = smtp
        # The notifications' outbox marks and SMTP pool: one sender for all of Accord's mail.
        self._mail = mail
        self._templates = templates or package_templates()

    @activity.defn(name="send_digest")
    async def send_digest(self, request: DigestRequest) -> DigestResult:
        # Database and rendering (matplotlib, openpyxl) are synchronous: in a thread.
        prepared = await asyncio.to_thread(self._prepare, request)
        sent = failed = 0
        if prepared.outgoing:
            outcome = await self._mail.deliver(request.business_key, prepared.outgoing)
            if outcome.deferred:
                raise ApplicationError(
                    f"SMTP server deferred {outcome.deferred} of {len(prepared.outgoing)} "
                    f"message(s) of {request.business_key} with a 4xx reply; will retry",
                    type="SmtpDeferred",
                )
            sent, failed = outcome.sent, outcome.failed
        result = DigestResult(
            recipients=len(prepared.recipients),
            sent=sent,
            already_sent=prepared.already_sent,
            failed_permanently=prepared.failed_before + failed,
        )
        await asyncio.to_thread(self._audit, request, prepared, result)
        if not prepared.recipients:
            activity.logger.warning(
                "%s: no aggregator focal point nor provincial leader to send it to",
                request.business_key,
            )
        return result

    # ----------------------------------------------------------------------------------------

    def _prepare(self, request: DigestRequest) -> _Prepared:
        key = request.business_key
        facts = request.facts
        owner = OutboxOwner(digest_task_id(facts.agreement_id), facts.agreement_id, facts.tenant)
        with self._session_factory() as session:
            prepared = _Prepared(recipients=digest_recipients(session, request))
            messages: dict[str, Composed] = {}
            for _ in range(3):
                rows = {row.recipient_email: row for row in select_outbox(session, [key])}
                to_send = [
                    r
                    for r in prepared.recipients
                    if r.email not in rows or rows[r.email].status == OutboxStatus.PENDING
                ]
                if to_send and not messages:
                    # Built only when something is left to send: the report, chart and
                    # workbook once per language, then one message per recipient.
                    messages = self._compose(session, request, to_send)
                missing = [r for r in to_send if r.email not in rows]
                try:
                    inserted = insert_outbox(
                        session,
                        owner,
                        business_key=key,
                        kind=DIGEST_OUTBOX_KIND,
                        new=[(r, messages[r.email].subject) for r in missing],
                    )
                except IntegrityError:
                    # Another attempt inserted the same rows first: read theirs. The links
                    # issued for the messages went with the rollback: build them again.
                    session.rollback()
                    messages = {}
                    continue
                break
            else:
                raise RuntimeError(f"could not write the outbox rows of {key}")
            for recipient in prepared.recipients:
                row = rows.get(recipient.email)
                if row is not None and row.status == OutboxStatus.SENT:
                    prepared.already_sent += 1
                elif row is not None and row.status == OutboxStatus.FAILED:
                    prepared.failed_before += 1
                else:
                    row_id = inserted.get(recipient.email) or rows[recipient.email].id
                    message = messages[recipient.email]
                    prepared.outgoing.append(Outgoing(row_id, recipient, message))
            session.commit()
        return prepared

    def _compose(
        self, session: Session, request: DigestRequest, recipients: Sequence[Recipient]
    ) -> dict[str, Composed]:
        report = consolidate(report_inputs(session, request.facts))
        parts: dict[Locale, tuple[MailPart, MailPart]] = {}
        messages: dict[str, Composed] = {}
        for recipient in recipients:
            locale = recipient.locale
            if locale not in parts:
                parts[locale] = (
                    MailPart("image/png", CHART_FILE, on_time_chart(report, locale), CHART_CID),
                    MailPart(XLSX_TYPE, xlsx_name(request), workbook_bytes(report, locale)),
                )
            chart, workbook = parts[locale]
            rendered = self._templates.render_digest(
                locale,
                digest_variables(
                    report,
                    request,
                    recipient,
                    locale,
                    self._mail.portal_url(
                        session, request.facts.tenant, recipient, request.business_key, None
                    ),
                ),
                chart_cid=CHART_CID,
            )
            messages[recipient.email] = compose_digest(
                rendered,
                sender=self._smtp.sender,
                recipient=recipient,
                date=request.scheduled_at,
                business_key=request.business_key,
                agreement_id=request.facts.agreement_id,
                time_zone=request.facts.time_zone,
                inline=[chart],
                attachments=[workbook],
            )
        return messages

    def _audit(self, request: DigestRequest, prepared: _Prepared, result: DigestResult) -> None:
        """The `digest_sent` entry, once by event key."""
        facts = request.facts
        detail = {
            "business_key": request.business_key,
            "kind": request.kind,
            "periods": ",".join(request.periods)[:2000],
            "officers": ",".join(r.officer_id for r in prepared.recipients),
            "recipients": str(result.recipients),
            "sent": str(result.sent + result.already_sent),
            "failed": str(result.failed_permanently),
        }
        row: dict[str, Any] = {
            "event_key": f"{request.business_key}/sent",
            "at": datetime.now(UTC),
            "agreement_id": facts.agreement_id,
            "tenant": facts.tenant,
            "task_id": None,
            "actor": "system",
            "action": "digest_sent",
            "detail": detail,
        }
        with self._session_factory() as session:
            add_audit_rows(session, rows=[row])
            session.commit()
