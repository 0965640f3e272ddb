"""Activities that write submissions and audit entries to the database, idempotently.

Each write is keyed by its business key (the task ID, the audit event key), so a retried
activity finds the row an earlier attempt stored and reports `created=False`. Transient
database errors (a locked SQLite file, a dropped PostgreSQL connection) are left to propagate:
Temporal retries the activity.

No workflow logic and no mail here; the tables and queries are `infra.db`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.models import (
    AuditBatch,
    AuditEntry,
    AuditStored,
    RecordSubmission,
    SubmissionStored,
)
from infra import observe
from infra.db import OutboxRow, OutboxStatus, SubmissionRow, add_audit_rows


def audit_rows(entries: Sequence[AuditEntry]) -> list[dict[str, Any]]:
    """Audit entries as column values, for `infra.db.add_audit_rows`."""
    return [
        {
            "event_key": entry.event_key,
            "at": entry.at,
            "agreement_id": entry.agreement_id,
            "task_id": entry.task_id,
            "actor": entry.actor,
            "action": entry.action,
            "detail": dict(entry.detail),
            "tenant": entry.tenant,
            "roles": list(entry.roles),
            "channel": entry.channel,
            "request_id": entry.request_id,
            "operator": entry.operator,
        }
        for entry in entries
    ]


def abandon_pending_outbox(session: Session, task_id: str, *, keep: str | None = None) -> None:
    """At a task's close every notice it decided has been sent or has failed: a row still
    pending was written by an attempt cut short (a worker killed mid-activity) for a notice the
    task, re-run elsewhere, did not send. Mark such rows abandoned (no commit). `keep`: the
    business key of the notification being sent now, with its delivery-failure notices."""
    query = update(OutboxRow).where(
        OutboxRow.task_id == task_id, OutboxRow.status == OutboxStatus.PENDING.value
    )
    if keep is not None:
        query = query.where(
            OutboxRow.business_key != keep,
            ~OutboxRow.business_key.startswith(keep + "/", autoescape=True),
        )
    session.execute(
        query.values(
            status=OutboxStatus.ABANDONED.value,
            last_error="not sent: the task closed without deciding this notice",
        )
    )


class StoreActivities:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    @activity.defn(name="record_submission")
    async def record_submission(self, request: RecordSubmission) -> SubmissionStored:
        # SQLAlchemy is synchronous: run it in a thread so the worker's event loop stays free.
        return await asyncio.to_thread(self._record_submission, request)

    @activity.defn(name="record_audit")
    async def record_audit(self, entry: AuditEntry) -> AuditStored:
        return await asyncio.to_thread(self._record_audit, entry)

    @activity.defn(name="record_audits")
    async def record_audits(self, batch: AuditBatch) -> AuditStored:
        return await asyncio.to_thread(self._record_audits, batch.entries, batch.abandon_pending_of)

    def _record_submission(self, request: RecordSubmission) -> SubmissionStored:
        payload = request.model_dump(mode="json", include={"indicators", "attachments"})
        row = SubmissionRow(
            task_id=request.task.task_id,
            agreement_id=request.task.agreement_id,
            tenant=request.task.tenant,
            agency=request.task.agency,
            officer_id=request.officer_id,
            submitted_at=request.submitted_at,
            handled_at=request.handled_at,
            late=request.late,
            summary=request.summary,
            indicators=payload["indicators"],
            attachments=payload["attachments"],
            created_at=datetime.now(UTC),
        )
        for attempt in range(2):
            with self._session_factory() as session:
                found = session.scalar(
                    select(SubmissionRow).where(SubmissionRow.task_id == request.task.task_id)
                )
                created = found is None
                if found is None:
                    session.add(row)
                add_audit_rows(session, rows=audit_rows(request.audit))
                try:
                    session.commit()
                except IntegrityError:
                    # Another attempt stored the same submission or entries first: read again.
                    session.rollback()
                    if attempt:
                        raise
                    row = _copy_submission(row)
                    continue
                stored = row if found is None else found
                if created:
                    activity.logger.info("stored submission of task %s", request.task.task_id)
                    timing = "late" if request.late else "on_time"
                    observe.REPORTS.labels(timing=timing).inc()
                return SubmissionStored(submission_id=stored.id, created=created)
        raise AssertionError("unreachable")

    def _record_audits(
        self, entries: Sequence[AuditEntry], abandon_pending_of: str | None = None
    ) -> AuditStored:
        with self._session_factory() as session:
            # Entries an earlier attempt stored are skipped: a retried attempt cannot conflict.
            appended = add_audit_rows(session, rows=audit_rows(entries))
            if abandon_pending_of is not None:
                abandon_pending_outbox(session, abandon_pending_of)
            session.commit()
            return AuditStored(created=bool(appended))

    def _record_audit(self, entry: AuditEntry) -> AuditStored:
        return self._record_audits([entry])


def _copy_submission(row: SubmissionRow) -> SubmissionRow:
    """A fresh, unattached copy of a submission row (the old one belongs to a closed session)."""
    return SubmissionRow(
        task_id=row.task_id,
        agreement_id=row.agreement_id,
        tenant=row.tenant,
        agency=row.agency,
        officer_id=row.officer_id,
        submitted_at=row.submitted_at,
        handled_at=row.handled_at,
        late=row.late,
        summary=row.summary,
        indicators=row.indicators,
        attachments=row.attachments,
        created_at=row.created_at,
    )
