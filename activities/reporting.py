"""Gathers a consolidated report's inputs from the database (`reports.model.ReportInputs`).

The engine's side (`AgreementFacts`) comes from the agreement workflow's `facts` query (or the
facts a digest was started with); the stored side is read here: the tenant's agencies in the
directory's order, the agreement's submissions, and its waivers and approved extensions from
the audit trail. Read-only: nothing is written.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from activities.models import AgreementFacts
from infra.db import AuditRow, SubmissionRow, directory_agencies
from reports.model import AgencyFact, ExtensionFact, ReportInputs, SubmissionFact, WaiverFact

WAIVED = "waived"
EXTENSION_APPROVED = "extension_approved"


def report_inputs(session: Session, facts: AgreementFacts) -> ReportInputs:
    """Everything `reports.consolidate.consolidate` needs, for the agreement of `facts`."""
    agencies = directory_agencies(session, tenant=facts.tenant)
    submissions = session.scalars(
        select(SubmissionRow)
        .where(
            SubmissionRow.agreement_id == facts.agreement_id,
            SubmissionRow.tenant == facts.tenant,
        )
        .order_by(SubmissionRow.task_id)
    ).all()
    audit = session.scalars(
        select(AuditRow)
        .where(
            AuditRow.agreement_id == facts.agreement_id,
            AuditRow.tenant == facts.tenant,
            AuditRow.action.in_((WAIVED, EXTENSION_APPROVED)),
            AuditRow.task_id.is_not(None),
        )
        .order_by(AuditRow.seq)
    ).all()
    waivers: list[WaiverFact] = []
    extensions: list[ExtensionFact] = []
    for row in audit:
        assert row.task_id is not None
        if row.action == WAIVED:
            reason = row.detail.get("reason")
            waivers.append(WaiverFact(task_id=row.task_id, at=row.at, reason=str(reason or "")))
        else:
            new_due = row.detail.get("new_due")
            if isinstance(new_due, str):
                extensions.append(
                    ExtensionFact(
                        task_id=row.task_id, at=row.at, new_due=date.fromisoformat(new_due)
                    )
                )
    return ReportInputs(
        facts=facts,
        province=agencies[0].province if agencies else None,
        agencies=[AgencyFact(code=row.code, name=row.name) for row in agencies],
        submissions=[
            SubmissionFact(
                task_id=row.task_id,
                agency=row.agency,
                submitted_at=row.submitted_at,
                late=row.late,
                summary=row.summary,
                indicators=dict(row.indicators),
                attachments=list(row.attachments),
            )
            for row in submissions
        ],
        waivers=waivers,
        extensions=extensions,
    )
