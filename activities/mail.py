"""The activity that e-mails a notification to the officers who hold the requested roles.

Delivery goes through an outbox: one row per (business key, recipient address), written before
the SMTP conversation and marked `sent` right after the server accepts the message. A retried
attempt therefore sends only what is still pending, never a message twice (barring a crash
between the server's acceptance and the commit, when at-least-once is the best SMTP allows;
that commit is one UPDATE on a thread of its own, to keep the window short).

Recipients are resolved from the directory when the activity runs, not when the workflow
scheduled it: an officer replaced in the directory stops receiving, the new one starts.
Workflow history only ever holds codes and counts; addresses stay in the database.

A recipient the server refuses for good (5xx) does not hold up the others. Their row is marked
failed and the directory's admins (of the owing agency's province) get a short delivery-failure
notice, itself outbox mail under a key of its own (`<key>/delivery-failed/<hash>`), so that it
too goes out once. A notification no officer holds the roles for (an agency with no head in
the directory) is not an error either: the admins get a no-recipient notice instead, outbox
mail under `<key>/no-recipient`, and the result says so (`recipients` 0, `admins_told`), for
the workflow to record on the task. The audit entries the workflow hands over with the request
are written, once each by event key, in the transaction of the notification's own
`notification_sent` (or `notification_no_recipient`) row.

The SMTP session is borrowed from a small pool kept by the worker (`infra/smtp.py`) and
given back for the next notification, so a burst of reminders does not open, greet and QUIT a
session (with STARTTLS and AUTH) per message; the outbox, not the session, decides what is sent.

The workflow runs this activity as a local activity first and, if that fails, as a regular
activity with a heartbeat timeout. As a regular activity it heartbeats every few seconds, so a
worker killed mid-send has its mail retried after the heartbeat timeout, not the start-to-close
timeout. A local activity cannot heartbeat (it has no activity task on the server: the SDK
hands the heartbeat to the core, which finds no such task and only logs a warning), so there it
does not try.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple, TypeVarTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiosmtplib
from sqlalchemy import Engine, Executable, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.models import (
    NotificationKind,
    NotificationRequest,
    NotificationResult,
)
from activities.store import abandon_pending_outbox, audit_rows
from activities.templates import (
    Attachment,
    Composed,
    MailTemplates,
    Recipient,
    RefusedDelivery,
    compose_delivery_failure,
    compose_message,
    compose_no_recipient,
    package_templates,
    sender_address,
)
from agreements.models import OfficerRole, notify_text
from agreements.recipients import Holder, pick_recipients, role_scopes
from infra.db import (
    OUTBOX_TABLE,
    OfficerRow,
    OutboxStatus,
    SubmissionRow,
    UploadRow,
    active_officers,
    add_audit_rows,
    agencies_by_code,
)
from infra.links import issue_link
from infra.settings import SmtpSettings
from infra.smtp import SmtpConnections

NO_LONGER_RECIPIENT = "no longer holds the role at send time"

HEARTBEAT_INTERVAL = timedelta(seconds=5)
"""Between two heartbeats of a regular (not local) attempt; the workflow's heartbeat timeout
(30 s) is several intervals, so one slow beat is not a dead worker."""

_Ts = TypeVarTuple("_Ts")


def no_recipient_key(business_key: str) -> str:
    """Business key of the admins' notice that `business_key` reached nobody."""
    return f"{business_key}/no-recipient"


def delivery_failure_key(business_key: str, address: str) -> str:
    """Business key of the admins' notice that `business_key` was refused for `address`.

    A hash stands for the address: keys are copied into headers, logs and the Temporal UI,
    where an address must not appear.
    """
    digest = hashlib.sha256(f"{business_key}\n{address.lower()}".encode()).hexdigest()
    return f"{business_key}/delivery-failed/{digest[:32]}"


def _local_day(request: NotificationRequest) -> date:
    """The notice's day where the agreement runs (its workflow time, not the clock's)."""
    try:
        zone = ZoneInfo(request.task.time_zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        zone = ZoneInfo("Asia/Ho_Chi_Minh")
    return request.scheduled_at.astimezone(zone).date()


# --------------------------------------------------------------------------------------------
# Outbox statements. Core statements on the table: one round trip each, no ORM unit of work.

_OUTBOX = OUTBOX_TABLE
_MARK_SENT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"))
    .values(
        status=OutboxStatus.SENT.value,
        attempts=_OUTBOX.c.attempts + 1,
        sent_at=bindparam("at"),
        message_id=bindparam("mid"),
        last_error=None,
    )
)
_MARK_FAILED = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"))
    .values(
        status=OutboxStatus.FAILED.value,
        attempts=_OUTBOX.c.attempts + 1,
        last_error=bindparam("error"),
    )
)
_COUNT_ATTEMPT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("row_ids", expanding=True)))
    .values(attempts=_OUTBOX.c.attempts + 1, last_error=bindparam("error"))
)
_INSERT = insert(_OUTBOX).returning(_OUTBOX.c.id, _OUTBOX.c.recipient_email)


class _Row(NamedTuple):
    id: int
    business_key: str
    recipient_email: str
    recipient_officer_id: str
    status: str
    subject: str
    last_error: str | None


def select_outbox(session: Session, keys: Sequence[str]) -> list[_Row]:
    """The outbox rows of these business keys (few columns, no ORM objects)."""
    key = _OUTBOX.c.business_key
    query = select(
        _OUTBOX.c.id,
        _OUTBOX.c.business_key,
        _OUTBOX.c.recipient_email,
        _OUTBOX.c.recipient_officer_id,
        _OUTBOX.c.status,
        _OUTBOX.c.subject,
        _OUTBOX.c.last_error,
    ).where(key == keys[0] if len(keys) == 1 else key.in_(keys))
    return [_Row(*row) for row in session.execute(query)]


class OutboxOwner(NamedTuple):
    """What an outbox row belongs to: a task (or a digest's agreement-level pseudo task)."""

    task_id: str
    agreement_id: str
    tenant: str

    @classmethod
    def of(cls, request: NotificationRequest) -> OutboxOwner:
        return cls(request.task.task_id, request.task.agreement_id, request.task.tenant)


def insert_outbox(
    session: Session,
    owner: OutboxOwner | NotificationRequest,
    *,
    business_key: str,
    kind: NotificationKind | str,
    new: Sequence[tuple[Recipient, str]],
) -> dict[str, int]:
    """Insert pending rows for `(recipient, subject)` pairs in one statement; IDs by address."""
    if not new:
        return {}
    if isinstance(owner, NotificationRequest):
        owner = OutboxOwner.of(owner)
    now = datetime.now(UTC)
    rows = session.execute(
        _INSERT,
        [
            {
                "business_key": business_key,
                "recipient_email": recipient.email,
                "recipient_officer_id": recipient.officer_id,
                "kind": str(kind),
                "task_id": owner.task_id,
                "agreement_id": owner.agreement_id,
                "tenant": owner.tenant,
                "subject": subject,
                "status": OutboxStatus.PENDING.value,
                "attempts": 0,
                "created_at": now,
            }
            for recipient, subject in new
        ],
    )
    return {email: row_id for row_id, email in rows}


def submission_attachments(session: Session, tenant: str, task_id: str) -> list[Attachment]:
    """The attachments of the task's stored submission, in its order: a `sha256:` reference
    to a file uploaded through the portal (for this task, in this tenant) with the file's name,
    size and digest; any other reference (a link, a file name, a digest with no stored file)
    as it is. Empty when nothing is stored."""
    refs = session.scalar(
        select(SubmissionRow.attachments).where(
            SubmissionRow.tenant == tenant, SubmissionRow.task_id == task_id
        )
    )
    refs = list(refs or [])
    digests = [ref.removeprefix("sha256:") for ref in refs if ref.startswith("sha256:")]
    uploads: dict[str, UploadRow] = {}
    if digests:
        rows = session.scalars(
            select(UploadRow)
            .where(
                UploadRow.tenant == tenant,
                UploadRow.task_id == task_id,
                UploadRow.sha256.in_(digests),
            )
            .order_by(UploadRow.id)
        )
        # The same file uploaded twice under two names: the later upload's name.
        uploads = {row.sha256: row for row in rows}
    attachments: list[Attachment] = []
    for ref in refs:
        row = uploads.get(ref.removeprefix("sha256:")) if ref.startswith("sha256:") else None
        if row is None:
            attachments.append(Attachment(reference=ref))
        else:
            attachments.append(
                Attachment(reference=ref, name=row.name, size=row.size, sha256=row.sha256)
            )
    return attachments


# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortalLinks:
    """How mail links to the officer portal: every message carries its recipient's own signed
    link (`infra.links`), `<base_url>/l/<token>`, to the task's page (a notification) or to the
    portal's home (an admin's notice, the digest).

    A link is issued in the transaction that writes the message's outbox row, once per
    (business key, officer): a retried attempt finds it and sends the same bytes (same link,
    same subject, same Message-ID). The token names no one: the officer, tenant and task are
    in the database row it points to."""

    base_url: str
    key: bytes = field(repr=False)
    days: int = 30

    def url(
        self,
        session: Session,
        *,
        tenant: str,
        officer_id: str,
        business_key: str,
        task_id: str | None = None,
    ) -> str:
        token = issue_link(
            session,
            tenant=tenant,
            officer_id=officer_id,
            key=self.key,
            now=datetime.now(UTC),
            days=self.days,
            task_id=task_id,
            business_key=business_key,
        )
        return f"{self.base_url.rstrip('/')}/l/{token}"


@dataclass(frozen=True)
class Outgoing:
    row_id: int
    recipient: Recipient
    message: Composed
    notice: bool = False
    """A delivery-failure notice: if it is refused too, that is logged, not reported again."""


@dataclass
class _Plan:
    recipients: list[Recipient]
    province: str | None
    """Province of the owing agency (None if it is not in the directory)."""
    agency_names: dict[str, str]
    outgoing: list[Outgoing] = field(default_factory=list)
    """Messages still to send: the notification's, then pending delivery-failure notices."""
    already_sent: int = 0
    failed_before: int = 0
    refused: list[str] = field(default_factory=list)
    """Officers whose address the server refused for good, in this attempt or an earlier one."""
    unreported: list[str] = field(default_factory=list)
    """Of those, the ones no admin could be told about."""
    result: NotificationResult | None = None
    """Set when nothing was left to send: the result, already audited."""
    admins_told_before: int = 0
    """With no recipient: admins an earlier attempt told so."""
    attachments: list[Attachment] = field(default_factory=list)
    """A receipt's: the attachments of the task's stored submission."""


@dataclass
class Outcome:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    notices_sent: int = 0


class _ConnectionLost(Exception):
    """The SMTP session is unusable; the rest of the batch waits for the next attempt."""


class MailActivities:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        smtp: SmtpSettings,
        *,
        heartbeat_interval: timedelta = HEARTBEAT_INTERVAL,
        templates: MailTemplates | None = None,
        links: PortalLinks | None = None,
    ) -> None:
        self._session_factory = session_factory
        # Each recipient's portal link; None: mail without links (tests, `accord simulate`).
        self.links = links
        # The wording (a province's overrides first); the package's alone if none is given.
        self._templates = templates or package_templates()
        self._smtp = smtp
        bind = session_factory.kw.get("bind")
        # Marks go straight to a connection of the factory's engine: a Session around a single
        # UPDATE costs as much again (measured: 45 µs against 80 µs per mark on SQLite).
        self._engine = bind if isinstance(bind, Engine) else None
        self._heartbeat_seconds = heartbeat_interval.total_seconds()
        # Outbox marks run on a thread of their own: never queued behind message building or
        # other activities' work in the default pool, they follow the server's acceptance as
        # closely as the database allows. One thread is enough: SQLite has one writer anyway.
        self._marks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="accord-outbox")
        self._connections = SmtpConnections(smtp)

    async def aclose(self) -> None:
        """Close the SMTP sessions kept open for the next notifications."""
        await self._connections.aclose()

    @activity.defn(name="send_notification")
    async def send_notification(self, request: NotificationRequest) -> NotificationResult:
        beating = None if activity.info().is_local else asyncio.create_task(self._heartbeat())
        try:
            return await self._send(request)
        finally:
            if beating is not None:
                beating.cancel()
                await asyncio.wait({beating})

    async def _heartbeat(self) -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(self._heartbeat_seconds)

    async def _send(self, request: NotificationRequest) -> NotificationResult:
        # SQLAlchemy is synchronous: database steps run in a thread, SMTP on the event loop.
        plan = await asyncio.to_thread(self._prepare, request)
        if plan.result is not None:
            return plan.result
        outcome = await self._deliver(request, plan)
        if outcome.deferred:
            raise ApplicationError(
                f"SMTP server deferred {outcome.deferred} of {len(plan.outgoing)} message(s) "
                f"of {request.business_key} with a 4xx reply; will retry",
                type="SmtpDeferred",
            )
        result = NotificationResult(
            recipients=len(plan.recipients),
            sent=outcome.sent,
            already_sent=plan.already_sent,
            failed_permanently=plan.failed_before + outcome.failed,
            admins_told=plan.admins_told_before + outcome.notices_sent
            if not plan.recipients
            else 0,
        )
        await asyncio.to_thread(self._audit, request, plan, result)
        return result

    # ----------------------------------------------------------------------------------------
    # Before sending: resolve recipients and write the outbox rows, in one transaction

    def _prepare(self, request: NotificationRequest) -> _Plan:
        task = request.task
        with self._session_factory() as session:
            codes = {*task.owners, *task.copy_to} | ({task.recipient} if task.recipient else set())
            codes |= {
                code
                for code in (
                    task.original_agency,
                    request.previous_agency,
                    request.previous_recipient,
                )
                if code
            }
            agencies = agencies_by_code(session, tenant=task.tenant, codes=codes)
            owing = agencies.get(task.agency)
            plan = _Plan(
                recipients=[],
                province=owing.province if owing else None,
                agency_names={code: agency.name for code, agency in agencies.items()},
            )
            plan.recipients = self._resolve(session, request, plan.province)
            if request.kind is NotificationKind.RECEIPT:
                plan.attachments = submission_attachments(session, task.tenant, task.task_id)
            if not plan.recipients:
                # Nobody holds the roles: the admins are told instead, once, by outbox mail.
                self._plan_no_recipient(session, request, plan)
            else:
                self._plan_outbox(session, request, plan)
            if not plan.outgoing:
                # Everything went out in earlier attempts: finish in this same transaction.
                plan.result = NotificationResult(
                    recipients=len(plan.recipients),
                    sent=0,
                    already_sent=plan.already_sent,
                    failed_permanently=plan.failed_before,
                    admins_told=plan.admins_told_before,
                )
                self._write_audit(session, request, plan, plan.result)
            session.commit()
            return plan

    def _resolve(
        self, session: Session, request: NotificationRequest, province: str | None
    ) -> list[Recipient]:
        """Officers holding the requested roles now, one per address, in role order."""
        task = request.task
        scopes = role_scopes(
            request.roles,
            agency=task.agency,
            recipient=task.recipient,
            co_owners=task.co_owners,
            copy_to=task.copy_to,
        )
        province_wide = any(scope.agency is None for scope in scopes)
        officers = active_officers(
            session,
            tenant=task.tenant,
            roles={scope.officer_role for scope in scopes},
            agencies={scope.agency for scope in scopes if scope.agency is not None},
            provinces=[province] if province_wide and province is not None else [],
            # Only the task's tenant's officers, whatever the roles; within it, with several
            # provinces, only the owing agency's, all of them if that agency is unknown.
            everywhere=province_wide and province is None,
            # Found by province: only agencies that exist on the notice's day (a succession).
            on=_local_day(request),
        )
        holders = [
            (officer, Holder(officer.agency_code, officer_province, officer.roles, officer.email))
            for officer, officer_province in officers
        ]
        return [
            Recipient.of(officer, role)
            for officer, role in pick_recipients(scopes, holders, province)
        ]

    def _plan_outbox(self, session: Session, request: NotificationRequest, plan: _Plan) -> None:
        """Insert the missing rows; list what is still to send (messages built only for it)."""
        key = request.business_key
        messages: dict[str, Composed] = {}

        def message(recipient: Recipient) -> Composed:
            if recipient.email not in messages:
                messages[recipient.email] = compose_message(
                    request,
                    recipient=recipient,
                    agency_names=plan.agency_names,
                    sender=self._smtp.sender,
                    templates=self._templates,
                    portal_url=self.portal_url(
                        session, request.task.tenant, recipient, key, request.task.task_id
                    ),
                    attachments=plan.attachments,
                )
            return messages[recipient.email]

        for _ in range(3):
            rows = {row.recipient_email: row for row in select_outbox(session, [key])}
            missing = [r for r in plan.recipients if r.email not in rows]
            try:
                inserted = insert_outbox(
                    session,
                    request,
                    business_key=key,
                    kind=request.kind,
                    new=[(r, message(r).subject) for r in missing],
                )
            except IntegrityError:
                # Another attempt of this activity inserted the same rows first: read theirs.
                # The links issued for the messages went with the rollback: issue them again.
                session.rollback()
                messages.clear()
                continue
            break
        else:
            raise RuntimeError(f"could not write the outbox rows of {key}")

        for recipient in plan.recipients:
            row_id = inserted.get(recipient.email)
            if row_id is None:
                row = rows[recipient.email]
                if row.status == OutboxStatus.SENT:
                    plan.already_sent += 1
                    continue
                if row.status == OutboxStatus.FAILED:
                    plan.failed_before += 1
                    continue
                row_id = row.id
                subject = message(recipient).subject
                if (row.recipient_officer_id, row.subject) != (recipient.officer_id, subject):
                    # The officer behind an address, or their name, may have changed since an
                    # earlier attempt; the row describes what is sent now.
                    session.execute(
                        update(_OUTBOX)
                        .where(_OUTBOX.c.id == row_id)
                        .values(recipient_officer_id=recipient.officer_id, subject=subject)
                    )
            plan.outgoing.append(Outgoing(row_id, recipient, message(recipient)))

        wanted = {r.email for r in plan.recipients}
        gone = [
            row.id
            for row in rows.values()
            if row.recipient_email not in wanted and row.status == OutboxStatus.PENDING
        ]
        if gone:
            session.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id.in_(gone))
                .values(status=OutboxStatus.FAILED.value, last_error=NO_LONGER_RECIPIENT)
            )
        refusals = [
            row
            for row in rows.values()
            if row.status == OutboxStatus.FAILED and row.last_error != NO_LONGER_RECIPIENT
        ]
        if refusals:
            self._plan_notices(session, request, plan, refusals)

    def portal_url(
        self,
        session: Session,
        tenant: str,
        recipient: Recipient,
        business_key: str,
        task_id: str | None,
    ) -> str | None:
        """The recipient's portal link for this message (None without links), issued in
        `session`'s transaction, the one that writes the message's outbox row."""
        if self.links is None:
            return None
        return self.links.url(
            session,
            tenant=tenant,
            officer_id=recipient.officer_id,
            business_key=business_key,
            task_id=task_id,
        )

    def _plan_no_recipient(
        self, session: Session, request: NotificationRequest, plan: _Plan
    ) -> None:
        """No officer holds the roles: queue a no-recipient notice to each active admin of the
        owing agency's province, under one key, so that retries send each admin one."""
        key = no_recipient_key(request.business_key)
        admins = self._admins(
            session, request.task.tenant, plan.province, "", on=_local_day(request)
        )
        existing = {row.recipient_email: row for row in select_outbox(session, [key])}
        to_send = [
            admin
            for admin in admins
            if admin.email not in existing or existing[admin.email].status == OutboxStatus.PENDING
        ]
        plan.admins_told_before = sum(
            1 for row in existing.values() if row.status == OutboxStatus.SENT
        )
        messages = {
            admin.email: compose_no_recipient(
                request,
                admin=admin,
                business_key=key,
                agency_names=plan.agency_names,
                sender=self._smtp.sender,
                templates=self._templates,
                # The portal's home: the task is not the admin's to act on.
                portal_url=self.portal_url(session, request.task.tenant, admin, key, None),
            )
            for admin in to_send
        }
        inserted = insert_outbox(
            session,
            request,
            business_key=key,
            kind=NotificationKind.NO_RECIPIENT,
            new=[(a, messages[a.email].subject) for a in to_send if a.email not in existing],
        )
        for admin in to_send:
            row_id = inserted.get(admin.email) or existing[admin.email].id
            plan.outgoing.append(Outgoing(row_id, admin, messages[admin.email], notice=True))
        if not admins:
            activity.logger.warning(
                "%s reached nobody, and there is no active admin to tell", request.business_key
            )

    def _plan_notices(
        self, session: Session, request: NotificationRequest, plan: _Plan, refusals: list[_Row]
    ) -> None:
        """Earlier refusals: which were reported, and the notices still to send."""
        by_key = {
            delivery_failure_key(row.business_key, row.recipient_email): row for row in refusals
        }
        notices = select_outbox(session, list(by_key))
        reported = {notice.business_key for notice in notices}
        for notice_key, refusal in by_key.items():
            plan.refused.append(refusal.recipient_officer_id)
            if notice_key not in reported:
                plan.unreported.append(refusal.recipient_officer_id)
        pending = [notice for notice in notices if notice.status == OutboxStatus.PENDING]
        if not pending:
            return
        ids = {n.recipient_officer_id for n in pending} | {r.recipient_officer_id for r in refusals}
        officers = {
            officer.id: officer
            for officer in session.scalars(
                select(OfficerRow).where(
                    OfficerRow.tenant == request.task.tenant, OfficerRow.id.in_(ids)
                )
            )
        }
        at = datetime.now(UTC)
        for notice in pending:
            refusal = by_key[notice.business_key]
            refused_officer = officers.get(refusal.recipient_officer_id)
            admin_officer = officers.get(notice.recipient_officer_id)
            admin = Recipient(
                officer_id=notice.recipient_officer_id,
                name=admin_officer.name if admin_officer else notice.recipient_officer_id,
                email=notice.recipient_email,
                role=None,
                locale="en" if admin_officer is not None and admin_officer.locale == "en" else "vi",
            )
            refused = RefusedDelivery(
                officer_id=refusal.recipient_officer_id,
                officer_name=refused_officer.name
                if refused_officer
                else refusal.recipient_officer_id,
                reply=refusal.last_error or "",
            )
            message = self._notice(session, request, plan, notice.business_key, admin, refused, at)
            plan.outgoing.append(Outgoing(notice.id, admin, message, notice=True))

    def _notice(
        self,
        session: Session,
        request: NotificationRequest,
        plan: _Plan,
        business_key: str,
        admin: Recipient,
        refused: RefusedDelivery,
        at: datetime,
    ) -> Composed:
        return compose_delivery_failure(
            request,
            admin=admin,
            refused=refused,
            business_key=business_key,
            agency_names=plan.agency_names,
            sender=self._smtp.sender,
            at=at,
            templates=self._templates,
            portal_url=self.portal_url(session, request.task.tenant, admin, business_key, None),
        )

    # ----------------------------------------------------------------------------------------
    # Sending

    async def _deliver(self, request: NotificationRequest, plan: _Plan) -> Outcome:
        async def refused(item: Outgoing, error: str) -> list[Outgoing]:
            notices = await asyncio.to_thread(self._record_refusal, request, plan, item, error)
            officer_id = item.recipient.officer_id
            plan.refused.append(officer_id)
            if not notices:
                plan.unreported.append(officer_id)
                activity.logger.warning(
                    "%s: no active admin to report the refusal for officer %s to",
                    request.business_key,
                    officer_id,
                )
            return notices

        return await self.deliver(request.business_key, plan.outgoing, on_refusal=refused)

    async def deliver(
        self,
        business_key: str,
        outgoing: Sequence[Outgoing],
        *,
        on_refusal: Callable[[Outgoing, str], Awaitable[list[Outgoing]]] | None = None,
    ) -> Outcome:
        """Send the outbox rows' messages on a pooled SMTP session, marking each row as the
        server answers. A recipient refused for good (5xx) is marked failed and handed to
        `on_refusal` (which may return notices to send after the rest); without it the refusal
        is only logged. ApplicationError (retried) when the server cannot be reached or the
        session is lost; 4xx replies are counted in `Outcome.deferred` for the caller."""
        smtp = self._smtp
        try:
            session = await self._connections.acquire()
        except (aiosmtplib.SMTPException, OSError) as exc:
            # OSError covers refused connections and TimeoutError.
            row_ids = [item.row_id for item in outgoing]
            await self._mark(self._record_attempt, row_ids, _describe(exc))
            activity.logger.warning(
                "cannot reach SMTP server %s:%s for %s: %s",
                smtp.host,
                smtp.port,
                business_key,
                type(exc).__name__,
            )
            raise ApplicationError(
                f"cannot reach SMTP server {smtp.host}:{smtp.port}: {type(exc).__name__}",
                type="SmtpUnavailable",
            ) from exc

        envelope_sender = sender_address(smtp.sender).addr_spec
        outcome = Outcome()
        queue = deque(outgoing)
        healthy = False
        try:
            while queue:
                item = queue.popleft()
                # A refusal adds the admins' notices, sent after everything else.
                queue.extend(
                    await self._send_one(
                        business_key, session.client, envelope_sender, item, outcome, on_refusal
                    )
                )
            healthy = True
        except _ConnectionLost as lost:
            raise ApplicationError(
                f"SMTP connection lost while sending {business_key}: {lost}; will retry",
                type="SmtpUnavailable",
            ) from None
        finally:
            await self._connections.release(
                session,
                sent=outcome.sent + outcome.failed + outcome.deferred + outcome.notices_sent,
                healthy=healthy,
            )
        return outcome

    async def _send_one(
        self,
        key: str,
        client: aiosmtplib.SMTP,
        envelope_sender: str,
        item: Outgoing,
        outcome: Outcome,
        on_refusal: Callable[[Outgoing, str], Awaitable[list[Outgoing]]] | None,
    ) -> list[Outgoing]:
        """Send one message and record what the server said; the notices a refusal causes."""
        officer_id = item.recipient.officer_id
        code: int | None = None
        try:
            await client.sendmail(envelope_sender, [item.recipient.email], item.message.data)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            code = min(refused.code for refused in exc.recipients)
            error = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
        except aiosmtplib.SMTPSenderRefused as exc:
            # A refused sender is a configuration problem, not this recipient's: retry, so that
            # the messages go out once the relay or the sender setting is fixed.
            code, error = 400, f"sender refused: {exc.code} {exc.message}"
        except aiosmtplib.SMTPResponseException as exc:
            code, error = exc.code, f"{exc.code} {exc.message}"
            if not client.is_connected:
                await self._mark(self._record_attempt, [item.row_id], error)
                raise _ConnectionLost(f"{exc.code} reply, then disconnected") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self._mark(self._record_attempt, [item.row_id], _describe(exc))
            raise _ConnectionLost(type(exc).__name__) from None

        if code is None:
            await self._mark(self._record_sent, item.row_id, item.message.message_id)
            if item.notice:
                outcome.notices_sent += 1
                activity.logger.info("%s: notice sent to admin %s", key, officer_id)
            else:
                outcome.sent += 1
                activity.logger.info("%s sent to officer %s", key, officer_id)
            return []
        if not 500 <= code < 600:
            await self._mark(self._record_attempt, [item.row_id], error)
            outcome.deferred += 1
            activity.logger.warning("%s deferred for officer %s with %s", key, officer_id, code)
            return []
        if item.notice:
            await self._mark(self._record_failed, item.row_id, error)
            activity.logger.warning(
                "%s: notice to admin %s refused with %s; not retried",
                key,
                officer_id,
                code,
            )
            return []
        outcome.failed += 1
        activity.logger.warning(
            "%s refused for officer %s with %s; not retried", key, officer_id, code
        )
        if on_refusal is None:
            await self._mark(self._record_failed, item.row_id, error)
            return []
        return await on_refusal(item, error)

    async def _mark(self, record: Callable[[*_Ts], None], *args: *_Ts) -> None:
        await asyncio.get_running_loop().run_in_executor(self._marks, record, *args)

    # ----------------------------------------------------------------------------------------
    # Recording what the server said

    def _record_sent(self, row_id: int, message_id: str) -> None:
        self._write(_MARK_SENT, {"row_id": row_id, "at": datetime.now(UTC), "mid": message_id})

    def _record_failed(self, row_id: int, error: str) -> None:
        self._write(_MARK_FAILED, {"row_id": row_id, "error": error[:2000]})

    def _record_attempt(self, row_ids: list[int], error: str) -> None:
        """A try that may succeed later: count it and keep the rows pending."""
        if row_ids:
            self._write(_COUNT_ATTEMPT, {"row_ids": row_ids, "error": error[:2000]})

    def _write(self, statement: Executable, parameters: dict[str, Any]) -> None:
        """One statement in a transaction of its own."""
        if self._engine is not None:
            with self._engine.begin() as connection:
                connection.execute(statement, parameters)
            return
        with self._session_factory() as session:
            session.execute(statement, parameters)
            session.commit()

    def _record_refusal(
        self, request: NotificationRequest, plan: _Plan, item: Outgoing, error: str
    ) -> list[Outgoing]:
        """Mark the row failed and, in the same transaction, queue the admins' notices."""
        refused_address = item.recipient.email
        with self._session_factory() as session:
            session.execute(_MARK_FAILED, {"row_id": item.row_id, "error": error[:2000]})
            admins = self._admins(
                session, request.task.tenant, plan.province, refused_address, on=_local_day(request)
            )
            key = delivery_failure_key(request.business_key, refused_address)
            refused = RefusedDelivery(
                officer_id=item.recipient.officer_id,
                officer_name=item.recipient.name,
                reply=error,
            )
            at = datetime.now(UTC)
            messages = {
                a.email: self._notice(session, request, plan, key, a, refused, at) for a in admins
            }
            # Normally none exist yet; a racing attempt may have written some.
            existing = {row.recipient_email: row for row in select_outbox(session, [key])}
            inserted = insert_outbox(
                session,
                request,
                business_key=key,
                kind=NotificationKind.DELIVERY_FAILED,
                new=[(a, messages[a.email].subject) for a in admins if a.email not in existing],
            )
            session.commit()
        notices: list[Outgoing] = []
        for admin in admins:
            row_id = inserted.get(admin.email)
            if row_id is None:
                row = existing[admin.email]
                if row.status != OutboxStatus.PENDING:
                    continue
                row_id = row.id
            message = messages[admin.email]
            notices.append(Outgoing(row_id, admin, message, notice=True))
        return notices

    @staticmethod
    def _admins(
        session: Session,
        tenant: str,
        province: str | None,
        refused_address: str,
        *,
        on: date | None = None,
    ) -> list[Recipient]:
        """Active admins of `tenant` in `province` (in any of the tenant's if None), of the
        agencies existing `on` the notice's day, the refused address aside."""
        officers = active_officers(
            session,
            tenant=tenant,
            roles=[OfficerRole.ADMIN],
            provinces=[province] if province is not None else [],
            everywhere=province is None,
            on=on,
        )
        seen = {refused_address.lower()}
        admins: list[Recipient] = []
        for officer, _ in officers:
            if officer.email.lower() in seen:
                continue
            seen.add(officer.email.lower())
            admins.append(Recipient.of(officer, None))
        return admins

    def _audit(self, request: NotificationRequest, plan: _Plan, result: NotificationResult) -> None:
        with self._session_factory() as session:
            self._write_audit(session, request, plan, result)
            session.commit()

    @staticmethod
    def _write_audit(
        session: Session, request: NotificationRequest, plan: _Plan, result: NotificationResult
    ) -> None:
        """The `notification_sent` row and the workflow's entries, once each, one statement."""
        task = request.task
        detail = {
            "business_key": request.business_key,
            "kind": request.kind.value,
            "officers": ",".join(r.officer_id for r in plan.recipients),
            "recipients": str(result.recipients),
            "sent": str(result.sent + result.already_sent),
            "failed": str(result.failed_permanently),
        }
        if plan.refused:
            detail["refused"] = ",".join(dict.fromkeys(plan.refused))
        if not plan.recipients:
            detail["no_recipient"] = (
                f"no active officer holds {', '.join(notify_text(r) for r in request.roles)} for "
                f"agency {task.agency} (recipient {task.recipient or '-'})"
            )
            detail["admins_told"] = str(result.admins_told)
        if plan.unreported:
            where = f"in {plan.province}" if plan.province else "in the directory"
            detail["refusal_not_reported"] = (
                f"no active admin {where} to tell that the address of officer(s) "
                f"{','.join(dict.fromkeys(plan.unreported))} was refused"
            )
        sent: dict[str, Any] = {
            "event_key": f"{request.business_key}/sent",
            "at": datetime.now(UTC),
            "agreement_id": task.agreement_id,
            "tenant": task.tenant,
            "task_id": task.task_id,
            "actor": "system",
            "action": "notification_sent" if plan.recipients else "notification_no_recipient",
            "detail": detail,
        }
        add_audit_rows(session, rows=[sent, *audit_rows(request.audit)])
        if request.closing:
            abandon_pending_outbox(session, task.task_id, keep=request.business_key)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
