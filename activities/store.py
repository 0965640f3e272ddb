"""Activities that write submissions and audit entries to the database, idempotently.

Each write is keyed by its business key (the task ID, the audit event key), so a retried
activity finds the row an earlier attempt stored and reports `created=False`. Transient
database errors (a locked SQLite file, a dropped PostgreSQL connection) are left to propagate:
Temporal retries the activity.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from accord.db import AuditRow, SubmissionRow
from activities.models import AuditEntry, AuditStored, RecordSubmission, SubmissionStored

Row = TypeVar("Row", SubmissionRow, AuditRow)


def insert_once(
    session: Session, row: Row, *, existing: Callable[[Session], Row | None]
) -> tuple[Row, bool]:
    """Insert `row` unless `existing` finds it; `(row, created)`. Commits.

    The lookup first avoids a failed insert in the common retry case; the IntegrityError
    branch covers two attempts racing past the lookup at the same time.
    """
    found = existing(session)
    if found is not None:
        return found, False
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        found = existing(session)
        if found is None:
            raise
        return found, False
    return row, True


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

    def _record_submission(self, request: RecordSubmission) -> SubmissionStored:
        payload = request.model_dump(mode="json", include={"indicators", "attachments"})
        row = SubmissionRow(
            task_id=request.task.task_id,
            agreement_id=request.task.agreement_id,
            agency=request.task.agency,
            officer_id=request.officer_id,
            submitted_at=request.submitted_at,
            late=request.late,
            summary=request.summary,
            indicators=payload["indicators"],
            attachments=payload["attachments"],
            created_at=datetime.now(UTC),
        )
        with self._session_factory() as session:
            stored, created = insert_once(
                session,
                row,
                existing=lambda s: s.scalar(
                    select(SubmissionRow).where(SubmissionRow.task_id == request.task.task_id)
                ),
            )
            if created:
                activity.logger.info("stored submission of task %s", request.task.task_id)
            return SubmissionStored(submission_id=stored.id, created=created)

    def _record_audit(self, entry: AuditEntry) -> AuditStored:
        row = AuditRow(
            event_key=entry.event_key,
            at=entry.at,
            agreement_id=entry.agreement_id,
            task_id=entry.task_id,
            actor=entry.actor,
            action=entry.action,
            detail=dict(entry.detail),
        )
        with self._session_factory() as session:
            _, created = insert_once(
                session,
                row,
                existing=lambda s: s.scalar(
                    select(AuditRow).where(AuditRow.event_key == entry.event_key)
                ),
            )
            return AuditStored(created=created)
