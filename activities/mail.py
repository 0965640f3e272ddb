"""The activity that e-mails a notification to the officers who hold the requested roles.

Delivery goes through an outbox: one row per (business key, recipient address), written before
the SMTP conversation and marked `sent` right after the server accepts the message. A retried
attempt therefore sends only what is still pending, never a message twice (barring a crash
between the server's acceptance and the commit, when at-least-once is the best SMTP allows).

Recipients are resolved from the directory when the activity runs, not when the workflow
scheduled it: an officer replaced in the directory stops receiving, the new one starts.
Workflow history only ever holds codes and counts; addresses stay in the database.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage

import aiosmtplib
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from accord.db import (
    AgencyRow,
    AuditRow,
    OfficerRow,
    OutboxRow,
    OutboxStatus,
    agency_names,
    officers_for,
)
from accord.settings import SmtpSettings
from activities.models import NotificationRequest, NotificationResult
from activities.store import insert_once
from activities.templates import Recipient, build_message, sender_address
from agreements.models import OfficerRole, RecipientRole

NO_LONGER_RECIPIENT = "no longer holds the role at send time"


@dataclass(frozen=True)
class _Outgoing:
    row_id: int
    officer_id: str
    email: str
    message: EmailMessage


@dataclass(frozen=True)
class _Plan:
    recipients: list[Recipient]
    outgoing: list[_Outgoing]
    already_sent: int
    failed_before: int


@dataclass
class _Outcome:
    sent: int = 0
    failed: int = 0
    deferred: int = 0


class _ConnectionLost(Exception):
    """The SMTP session is unusable; the rest of the batch waits for the next attempt."""


class MailActivities:
    def __init__(self, session_factory: sessionmaker[Session], smtp: SmtpSettings) -> None:
        self._session_factory = session_factory
        self._smtp = smtp

    @activity.defn(name="send_notification")
    async def send_notification(self, request: NotificationRequest) -> NotificationResult:
        # SQLAlchemy is synchronous: database steps run in a thread, SMTP on the event loop.
        plan = await asyncio.to_thread(self._prepare, request)
        outcome = _Outcome()
        if plan.outgoing:
            outcome = await self._deliver(request, plan.outgoing)
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
        )
        await asyncio.to_thread(self._audit, request, plan, result)
        return result

    # ----------------------------------------------------------------------------------------
    # Before sending: resolve recipients, write the outbox rows

    def _prepare(self, request: NotificationRequest) -> _Plan:
        task = request.task
        with self._session_factory() as session:
            recipients = self._resolve(session, request)
            if not recipients:
                roles = ", ".join(role.value for role in request.roles)
                raise ApplicationError(
                    f"no active officer holds {roles} for task {task.task_id} "
                    f"(agency {task.agency}, recipient {task.recipient or '-'})",
                    type="NoRecipient",
                    non_retryable=True,
                )
            codes = {task.agency} | ({task.recipient} if task.recipient else set())
            names = agency_names(session, codes=codes)
            messages = {
                r.email: build_message(
                    request, recipient=r, agency_names=names, sender=self._smtp.sender
                )
                for r in recipients
            }
            rows = self._outbox_rows(session, request, recipients, messages)

            outgoing: list[_Outgoing] = []
            already_sent = failed_before = 0
            for recipient in recipients:
                row = rows[recipient.email]
                if row.status == OutboxStatus.SENT:
                    already_sent += 1
                elif row.status == OutboxStatus.FAILED:
                    failed_before += 1
                else:
                    # The officer behind an address, or their name, may have changed since an
                    # earlier attempt; the row describes what is sent now.
                    row.recipient_officer_id = recipient.officer_id
                    row.subject = str(messages[recipient.email]["Subject"])
                    outgoing.append(
                        _Outgoing(
                            row.id,
                            recipient.officer_id,
                            recipient.email,
                            messages[recipient.email],
                        )
                    )
            wanted = {r.email for r in recipients}
            for row in rows.values():
                if row.recipient_email not in wanted and row.status == OutboxStatus.PENDING:
                    row.status = OutboxStatus.FAILED.value
                    row.last_error = NO_LONGER_RECIPIENT
            session.commit()
            return _Plan(recipients, outgoing, already_sent, failed_before)

    def _resolve(self, session: Session, request: NotificationRequest) -> list[Recipient]:
        """Officers holding the requested roles now, one per address, in role order."""
        task = request.task
        seen: set[str] = set()
        recipients: list[Recipient] = []
        for role in request.roles:
            for officer in self._officers(session, role, task.agency, task.recipient):
                if officer.email.lower() in seen:
                    continue
                seen.add(officer.email.lower())
                recipients.append(
                    Recipient(
                        officer_id=officer.id,
                        name=officer.name,
                        email=officer.email,
                        role=role,
                        locale="en" if officer.locale == "en" else "vi",
                    )
                )
        return recipients

    @staticmethod
    def _officers(
        session: Session, role: RecipientRole, agency: str, receiving_agency: str | None
    ) -> list[OfficerRow]:
        match role:
            case RecipientRole.FOCAL_POINT:
                return officers_for(session, agency=agency, role=OfficerRole.FOCAL_POINT)
            case RecipientRole.HEAD_OF_AGENCY:
                return officers_for(session, agency=agency, role=OfficerRole.HEAD)
            case RecipientRole.AGGREGATOR:
                if receiving_agency is None:
                    return []
                return officers_for(session, agency=receiving_agency, role=OfficerRole.FOCAL_POINT)
            case RecipientRole.PROVINCIAL_LEADERSHIP:
                leaders = officers_for(session, agency=None, role=OfficerRole.PROVINCIAL_LEADERSHIP)
                # With several provinces in one database, only the owing agency's province.
                owing = session.get(AgencyRow, agency)
                if owing is None:
                    return leaders
                same_province = set(
                    session.scalars(
                        select(AgencyRow.code).where(AgencyRow.province == owing.province)
                    )
                )
                return [o for o in leaders if o.agency_code in same_province]

    def _outbox_rows(
        self,
        session: Session,
        request: NotificationRequest,
        recipients: list[Recipient],
        messages: dict[str, EmailMessage],
    ) -> dict[str, OutboxRow]:
        """The outbox rows of this notification by address, inserting the missing ones."""
        query = select(OutboxRow).where(OutboxRow.business_key == request.business_key)
        for _ in range(3):
            rows = {row.recipient_email: row for row in session.scalars(query)}
            now = datetime.now(UTC)
            for recipient in recipients:
                if recipient.email in rows:
                    continue
                session.add(
                    OutboxRow(
                        business_key=request.business_key,
                        recipient_email=recipient.email,
                        recipient_officer_id=recipient.officer_id,
                        kind=request.kind.value,
                        task_id=request.task.task_id,
                        agreement_id=request.task.agreement_id,
                        subject=str(messages[recipient.email]["Subject"]),
                        status=OutboxStatus.PENDING.value,
                        attempts=0,
                        created_at=now,
                    )
                )
            try:
                session.commit()
            except IntegrityError:
                # Another attempt of this activity inserted the same rows first: read theirs.
                session.rollback()
                continue
            return {row.recipient_email: row for row in session.scalars(query)}
        raise RuntimeError(f"could not write the outbox rows of {request.business_key}")

    # ----------------------------------------------------------------------------------------
    # Sending

    async def _deliver(self, request: NotificationRequest, outgoing: list[_Outgoing]) -> _Outcome:
        smtp = self._smtp
        client = aiosmtplib.SMTP(
            hostname=smtp.host,
            port=smtp.port,
            use_tls=smtp.security == "tls",
            start_tls=smtp.security == "starttls",
            timeout=smtp.timeout_seconds,
        )
        try:
            await client.connect()
            if smtp.username is not None and smtp.password is not None:
                await client.login(smtp.username, smtp.password.get_secret_value())
        except (aiosmtplib.SMTPException, OSError) as exc:
            # OSError covers refused connections and TimeoutError.
            error = _describe(exc)
            await asyncio.to_thread(self._record_attempt, [o.row_id for o in outgoing], error)
            activity.logger.warning(
                "cannot reach SMTP server %s:%s for %s: %s",
                smtp.host,
                smtp.port,
                request.business_key,
                type(exc).__name__,
            )
            raise ApplicationError(
                f"cannot reach SMTP server {smtp.host}:{smtp.port}: {type(exc).__name__}",
                type="SmtpUnavailable",
            ) from exc

        envelope_sender = sender_address(smtp.sender).addr_spec
        outcome = _Outcome()
        try:
            for item in outgoing:
                await self._send_one(request, client, envelope_sender, item, outcome)
        except _ConnectionLost as lost:
            raise ApplicationError(
                f"SMTP connection lost while sending {request.business_key}: {lost}; will retry",
                type="SmtpUnavailable",
            ) from None
        finally:
            await _close(client)
        return outcome

    async def _send_one(
        self,
        request: NotificationRequest,
        client: aiosmtplib.SMTP,
        envelope_sender: str,
        item: _Outgoing,
        outcome: _Outcome,
    ) -> None:
        key = request.business_key
        code: int | None = None
        try:
            await client.send_message(item.message, sender=envelope_sender, recipients=[item.email])
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
                await asyncio.to_thread(self._record_attempt, [item.row_id], error)
                raise _ConnectionLost(f"{exc.code} reply, then disconnected") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            await asyncio.to_thread(self._record_attempt, [item.row_id], _describe(exc))
            raise _ConnectionLost(type(exc).__name__) from None

        if code is None:
            message_id = str(item.message["Message-ID"])
            await asyncio.to_thread(self._record_sent, item.row_id, message_id)
            outcome.sent += 1
            activity.logger.info("%s sent to officer %s", key, item.officer_id)
        elif 500 <= code < 600:
            await asyncio.to_thread(self._record_failed, item.row_id, error)
            outcome.failed += 1
            activity.logger.warning(
                "%s refused for officer %s with %s; not retried", key, item.officer_id, code
            )
        else:
            await asyncio.to_thread(self._record_attempt, [item.row_id], error)
            outcome.deferred += 1
            activity.logger.warning(
                "%s deferred for officer %s with %s", key, item.officer_id, code
            )

    # ----------------------------------------------------------------------------------------
    # After sending

    def _record_sent(self, row_id: int, message_id: str) -> None:
        with self._session_factory() as session:
            row = session.get_one(OutboxRow, row_id)
            row.status = OutboxStatus.SENT.value
            row.attempts += 1
            row.sent_at = datetime.now(UTC)
            row.message_id = message_id
            row.last_error = None
            session.commit()

    def _record_failed(self, row_id: int, error: str) -> None:
        with self._session_factory() as session:
            row = session.get_one(OutboxRow, row_id)
            row.status = OutboxStatus.FAILED.value
            row.attempts += 1
            row.last_error = error[:2000]
            session.commit()

    def _record_attempt(self, row_ids: list[int], error: str) -> None:
        """A try that may succeed later: count it and keep the row pending."""
        with self._session_factory() as session:
            for row_id in row_ids:
                row = session.get_one(OutboxRow, row_id)
                row.attempts += 1
                row.last_error = error[:2000]
            session.commit()

    def _audit(self, request: NotificationRequest, plan: _Plan, result: NotificationResult) -> None:
        task = request.task
        with self._session_factory() as session:
            insert_once(
                session,
                AuditRow(
                    event_key=f"{request.business_key}/sent",
                    at=datetime.now(UTC),
                    agreement_id=task.agreement_id,
                    task_id=task.task_id,
                    actor="system",
                    action="notification_sent",
                    detail={
                        "business_key": request.business_key,
                        "kind": request.kind.value,
                        "officers": ",".join(r.officer_id for r in plan.recipients),
                        "recipients": str(result.recipients),
                        "sent": str(result.sent + result.already_sent),
                        "failed": str(result.failed_permanently),
                    },
                ),
                existing=lambda s: s.scalar(
                    select(AuditRow).where(AuditRow.event_key == f"{request.business_key}/sent")
                ),
            )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


async def _close(client: aiosmtplib.SMTP) -> None:
    if not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()
