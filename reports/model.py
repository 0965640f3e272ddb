"""What a consolidated report says, and what it is computed from.

Every figure of a report comes from `ReportInputs`: the engine's facts about the agreement and
its tasks (the agreement workflow's `facts` query, or the facts a digest was started with), the
stored submissions, and the waivers and approved extensions from the audit trail. Agencies
appear in the directory's order. An agency that did not report is listed as missing, never
counted as zero.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from activities.models import AgreementFacts, IndicatorValue, TaskState
from agreements.models import IndicatorKind


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------
# Inputs


class AgencyFact(Model):
    """An agency of the agreement's directory (tenant), in directory order."""

    code: str
    name: str


class SubmissionFact(Model):
    """A stored report (the `submissions` table)."""

    task_id: str
    agency: str = Field(description="The agency of the officer who submitted.")
    submitted_at: AwareDatetime = Field(description="When Accord received it (signed claim).")
    late: bool
    summary: str
    indicators: dict[str, IndicatorValue] = Field(default_factory=dict)
    attachments: list[str] = Field(default_factory=list)


class WaiverFact(Model):
    """A task waived by an admin (audit action `waived`)."""

    task_id: str
    at: AwareDatetime
    reason: str


class ExtensionFact(Model):
    """An approved extension (audit action `extension_approved`): due before `new_due`."""

    task_id: str
    at: AwareDatetime
    new_due: date


class ReportInputs(Model):
    facts: AgreementFacts
    province: str | None = Field(default=None, description="The directory's province name.")
    agencies: list[AgencyFact] = Field(description="The tenant's agencies, directory order.")
    submissions: list[SubmissionFact] = Field(default_factory=list)
    waivers: list[WaiverFact] = Field(default_factory=list)
    extensions: list[ExtensionFact] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------
# The report


class ComplianceStatus(StrEnum):
    """An agency's standing on one task, as the aggregator reads it."""

    ON_TIME = "on_time"
    """Report received by the deadline (an extended one included)."""
    LATE = "late"
    """Report received after the deadline: `late_working_days` says by how much."""
    OVERDUE = "overdue"
    """No report and the deadline passed; still chased (`escalation_level`)."""
    NOT_DONE = "not_done"
    """Closed without a report (the escalation ladder ran out, or the period ended)."""
    WAIVED = "waived"
    """Released by an admin: `waiver_reason`."""
    EXTENDED = "extended"
    """No report yet, within a deadline moved by an approved extension (`extended_to`)."""
    NOT_YET_DUE = "not_yet_due"
    """No report yet, and the deadline has not passed (or the task has not opened)."""
    SUSPENDED = "suspended"
    """No report yet, and the task is suspended (issue 17): neither due nor missing."""
    WITHDRAWN = "withdrawn"
    """Withdrawn by an amendment (issue 17): owed nothing; left out of the totals and rates."""


STATUS_LABELS_VI: dict[ComplianceStatus, str] = {
    ComplianceStatus.ON_TIME: "Đúng hạn",
    ComplianceStatus.LATE: "Trễ hạn",
    ComplianceStatus.OVERDUE: "Quá hạn, chưa nộp",
    ComplianceStatus.NOT_DONE: "Không nộp",
    ComplianceStatus.WAIVED: "Được miễn",
    ComplianceStatus.EXTENDED: "Được gia hạn",
    ComplianceStatus.NOT_YET_DUE: "Chưa đến hạn",
    ComplianceStatus.SUSPENDED: "Tạm dừng",
    ComplianceStatus.WITHDRAWN: "Đã rút theo văn bản sửa đổi",
}
STATUS_LABELS_EN: dict[ComplianceStatus, str] = {
    ComplianceStatus.ON_TIME: "On time",
    ComplianceStatus.LATE: "Late",
    ComplianceStatus.OVERDUE: "Overdue, not received",
    ComplianceStatus.NOT_DONE: "Not submitted",
    ComplianceStatus.WAIVED: "Waived",
    ComplianceStatus.EXTENDED: "Extended",
    ComplianceStatus.NOT_YET_DUE: "Not yet due",
    ComplianceStatus.SUSPENDED: "Suspended",
    ComplianceStatus.WITHDRAWN: "Withdrawn by an amendment",
}


def owner_text(name: str, former_name: str | None, *, english: bool) -> str:
    """A task's owner as shown in a report: the current owner, and the original one when a
    succession passed the task ("Sở Nội vụ (trước đây: Sở Lao động…)")."""
    if not former_name:
        return name
    return f"{name} (formerly {former_name})" if english else f"{name} (trước đây: {former_name})"


ISSUE_17_STATUSES = (ComplianceStatus.SUSPENDED, ComplianceStatus.WITHDRAWN)


def shown_statuses(tasks: list[TaskCompliance]) -> list[ComplianceStatus]:
    """The statuses a report's tables and legends show: every one, but suspended and withdrawn
    only when a task has them (most reports have neither)."""
    present = {task.status for task in tasks}
    return [s for s in ComplianceStatus if s not in ISSUE_17_STATUSES or s in present]


class TaskCompliance(Model):
    """One task (one agency, one obligation, one period) in the report."""

    task_id: str
    obligation_id: str
    item_number: str | None
    obligation_title: str
    period_label: str
    agency: str = Field(description="The leading owing agency's code (the current owner).")
    agency_name: str
    original_agency: str | None = Field(
        default=None,
        description="Issue 17: the agency that first owed the task, when a succession passed it "
        "to `agency`; None: never transferred.",
    )
    original_agency_name: str | None = None
    co_owners: list[str] = Field(default_factory=list)
    status: ComplianceStatus
    state: TaskState | None = Field(description="The engine's state; None: not opened yet.")
    due_at: AwareDatetime | None
    submitted_at: AwareDatetime | None = None
    late_working_days: int | None = Field(
        default=None,
        description="LATE: working days after the deadline (calendar days "
        "when the agreement has no working calendar).",
    )
    escalation_level: int = 0
    waiver_reason: str | None = None
    extended_to: date | None = Field(
        default=None, description="An approved extension: due before this day."
    )


class AgencyCompliance(Model):
    """One agency's tasks in the report, counted by status."""

    agency: str
    agency_name: str
    counts: dict[ComplianceStatus, int] = Field(description="Every status, zeros included.")
    due: int = Field(description="Tasks that were due: on time + late + overdue + not done.")
    on_time_rate: float | None = Field(description="on time / due; None when nothing was due.")
    highest_escalation: int = 0


class ComplianceTotals(Model):
    tasks: int = Field(description="Tasks in the report, withdrawn ones excluded.")
    counts: dict[ComplianceStatus, int] = Field(description="Every status, zeros included.")
    due: int = Field(description="on time + late + overdue + not done (waived excluded).")
    on_time: int
    on_time_rate: float | None = Field(description="on_time / due; None when nothing was due.")
    escalations: dict[int, int] = Field(
        default_factory=dict, description="Tasks by the highest escalation level reached (≥1)."
    )


class AgencyValue(Model):
    agency: str
    agency_name: str
    value: IndicatorValue


class ConsolidatedIndicator(Model):
    """One indicator of one obligation, over the agencies that reported it.

    count: `count` is the sum. ratio: `done` and `total` are summed and `ratio` is done/total
    (never an average of the agencies' ratios). breakdown: `breakdown` sums each category and
    `count` is their total. text: no total; the agencies' texts are in `per_agency`."""

    obligation_id: str
    obligation_title: str
    code: str
    label: str
    kind: IndicatorKind
    categories: list[str] | None = None
    count: int | None = None
    done: int | None = None
    total: int | None = None
    ratio: float | None = None
    breakdown: dict[str, int] | None = None
    per_agency: list[AgencyValue] = Field(default_factory=list)
    missing: list[str] = Field(
        default_factory=list,
        description="Agencies (codes) that owe this obligation in the report's scope and have "
        "not reported this indicator: listed, never counted as zero.",
    )


class MissingReport(Model):
    task_id: str
    agency: str
    agency_name: str
    obligation_title: str
    period_label: str
    due_at: AwareDatetime | None
    status: ComplianceStatus = Field(description="OVERDUE or NOT_DONE.")
    escalation_level: int


class Narrative(Model):
    """An agency's own summary, the starting point of the consolidated text."""

    agency: str
    agency_name: str
    task_id: str
    obligation_title: str
    period_label: str
    submitted_at: AwareDatetime
    summary: str


class ConsolidatedReport(Model):
    schema_version: Literal[1] = 1
    agreement_id: str
    tenant: str
    document_number: str
    title: str
    issuer: str | None
    province: str | None
    period: str | None = Field(description="The reporting period (label); None: all of them.")
    periods: list[str] = Field(description="Period labels in the report, in order.")
    as_of: AwareDatetime
    time_zone: str
    tasks: list[TaskCompliance] = Field(description="Directory order, then obligation, period.")
    agencies: list[AgencyCompliance] = Field(description="Directory order.")
    totals: ComplianceTotals
    indicators: list[ConsolidatedIndicator]
    missing: list[MissingReport] = Field(description="Tasks past due without a report.")
    narratives: list[Narrative] = Field(description="Directory order.")
