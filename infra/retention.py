"""Retention: blank the personal data of mail and reports older than the retention age.

What is blanked, row by row, when older than the cut-off:
- the outbox (mail sent, failed or abandoned; never a pending one, still in use): the subject,
  the recipient's address (replaced by `purged:` and its SHA-256, which keeps the row unique
  and says whom it was to for whoever already knows the address) and the last SMTP error
  (it may quote the address). Kept: the business key, kind, task, tenant, recipient officer ID,
  status, attempts, Message-ID and dates. Accord stores no mail body in the database; the
  embedded mail sink's copies in the data folder are not touched here.
- submissions: the summary (the report's free text), every text inside the indicators (free
  text; numbers are kept: the consolidated report sums them) and every attachment that is not a
  `sha256:` digest (a file name or address becomes `purged`). Kept: task, agency, officer ID,
  dates, on time or late, the digests, the counts.
- uploads (the portal's attachments): the file name. Kept: digest, size, type, dates.
The audit trail is never touched (its table refuses UPDATE, and its hash chain covers every
field): each tenant's purge is itself audited (`retention_purged`, with the cut-off and the
counts), so `accord audit verify` still passes and says when a purge was run.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from infra.db import OutboxRow, OutboxStatus, SubmissionRow, UploadRow, add_audit_rows

PURGED = "purged"
PURGED_EMAIL_PREFIX = "purged:"
DIGEST_PREFIX = "sha256:"


@dataclass
class PurgeCounts:
    """Rows blanked, by tenant."""

    outbox: Counter[str] = field(default_factory=Counter)
    submissions: Counter[str] = field(default_factory=Counter)
    uploads: Counter[str] = field(default_factory=Counter)

    def tenants(self) -> list[str]:
        return sorted(set(self.outbox) | set(self.submissions) | set(self.uploads))

    def total(self) -> int:
        return (
            sum(self.outbox.values()) + sum(self.submissions.values()) + sum(self.uploads.values())
        )


def _blank_text(value: Any) -> Any:
    """Free text inside indicators blanked; numbers, booleans and the structure kept."""
    if isinstance(value, str):
        return ""
    if isinstance(value, dict):
        return {key: _blank_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_blank_text(item) for item in value]
    return value


def _blank_attachments(attachments: Iterable[str]) -> list[str]:
    return [item if item.startswith(DIGEST_PREFIX) else PURGED for item in attachments]


def purge(
    session: Session, *, before: datetime, now: datetime, operator: str | None, apply: bool
) -> PurgeCounts:
    """Blank what is older than `before` and not blanked yet (see the module); with `apply`,
    audit each tenant's purge and commit, else only count (and roll back)."""
    counts = PurgeCounts()
    outbox = session.scalars(
        select(OutboxRow).where(
            OutboxRow.created_at < before,
            OutboxRow.status != OutboxStatus.PENDING.value,
            ~OutboxRow.recipient_email.startswith(PURGED_EMAIL_PREFIX),
        )
    )
    for mail in outbox:
        counts.outbox[mail.tenant] += 1
        digest = hashlib.sha256(mail.recipient_email.encode("utf-8")).hexdigest()
        mail.recipient_email = PURGED_EMAIL_PREFIX + digest
        mail.subject = ""
        mail.last_error = None
    for report in session.scalars(select(SubmissionRow).where(SubmissionRow.submitted_at < before)):
        indicators = _blank_text(report.indicators)
        attachments = _blank_attachments(report.attachments)
        if (report.summary, indicators, attachments) == (
            "",
            report.indicators,
            report.attachments,
        ):
            continue  # blanked already
        counts.submissions[report.tenant] += 1
        report.summary = ""
        report.indicators = indicators
        report.attachments = attachments
    for upload in session.scalars(
        select(UploadRow).where(UploadRow.at < before, UploadRow.name != "")
    ):
        counts.uploads[upload.tenant] += 1
        upload.name = ""
    if not apply:
        session.rollback()
        return counts
    session.flush()
    add_audit_rows(
        session,
        rows=[
            {
                "event_key": f"retention/{tenant}/{now.isoformat()}",
                "at": now,
                "agreement_id": "",
                "tenant": tenant,
                "action": "retention_purged",
                "channel": "cli",
                "operator": operator,
                "detail": {
                    "before": before.isoformat(),
                    "outbox": counts.outbox[tenant],
                    "submissions": counts.submissions[tenant],
                    "uploads": counts.uploads[tenant],
                },
            }
            for tenant in counts.tenants()
        ],
    )
    session.commit()
    return counts
