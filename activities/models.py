"""Payloads of the activities: one pydantic model in, one out.

This module imports no I/O library, so workflow code can import it (passed through the
sandbox) without pulling SQLAlchemy or SMTP into workflow code. Payloads never carry e-mail
addresses or names: recipients are resolved from the directory at send time, and workflow
history keeps only codes and counts.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from agreements.calendar import WorkingCalendar
from agreements.models import (
    AgencyCode,
    Deliverable,
    ExtensionApprover,
    Indicator,
    NotifyTarget,
    OfficerRole,
    Slug,
)


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskRef(Payload):
    """What a message or a row needs to know about a task; codes only, no personal data."""

    task_id: str
    agreement_id: str
    tenant: Slug = Field(
        description="The tenant of the agreement's directory (e.g. `quang-binh`): its officers "
        "and agencies are the only ones this task's mail and updates can reach."
    )
    document_number: str
    agreement_title: str
    item_number: str | None
    obligation_id: str
    deliverable: Deliverable
    title: str
    agency: str
    recipient: str | None
    period_label: str
    due_at: AwareDatetime | None
    time_zone: str = "Asia/Ho_Chi_Minh"
    due_note_vi: str | None = Field(
        default=None, description="Why the deadline is not the written one (working calendar)."
    )
    due_note_en: str | None = None
    covers_from: date | None = Field(default=None, description="Data window covered, from.")
    covers_to: date | None = Field(default=None, description="Data window covered, to.")
    issuer: str | None = Field(
        default=None,
        description="The agreement's issuing body as printed (Agreement.issuer): where the "
        "deliverable goes when no receiving agency is named.",
    )
    co_owners: list[str] = Field(
        default_factory=list,
        description="A joint task: the owing agencies besides `agency` (which leads); an "
        "officer of any of them may submit, and each one's officers are reminded.",
    )
    copy_to: list[str] = Field(
        default_factory=list,
        description="Agencies whose focal points get the task's notices for information.",
    )
    original_agency: str | None = Field(
        default=None,
        description="Issue 17: the agency that first owed the task, when a succession passed it "
        "to `agency` (its successor); None: never transferred. The task ID keeps the original.",
    )

    @property
    def owners(self) -> list[str]:
        """Every owing agency, the lead first."""
        return [self.agency, *self.co_owners]


class TaskState(StrEnum):
    """The status matrix Vietnamese government trackers use, plus waived."""

    PENDING = "pending"
    """Chưa hoàn thành, còn trong hạn (not done, within deadline)."""
    OVERDUE = "overdue"
    """Chưa hoàn thành, quá hạn (not done and overdue)."""
    DONE_ON_TIME = "done_on_time"
    """Hoàn thành đúng hạn."""
    DONE_LATE = "done_late"
    """Hoàn thành quá hạn."""
    WAIVED = "waived"
    """Được miễn (waived by an admin)."""
    NOT_DONE = "not_done"
    """Closed without a report before any deadline passed: an obligation without a date at
    the end of the agreement's period."""
    NOT_DONE_OVERDUE = "not_done_overdue"
    """Closed without a report after its deadline (the escalation ladder ran out)."""
    SUSPENDED = "suspended"
    """Tạm dừng: open, but neither reminded nor escalated until resumed (issue 17)."""
    WITHDRAWN = "withdrawn"
    """Đã rút: closed by an amendment that removed the task (issue 17)."""

    @property
    def is_open(self) -> bool:
        """Not closed: still owed (chased, or suspended)."""
        return self in (TaskState.PENDING, TaskState.OVERDUE, TaskState.SUSPENDED)

    @property
    def is_chased(self) -> bool:
        """Reminded and escalated now: open and not suspended."""
        return self in (TaskState.PENDING, TaskState.OVERDUE)

    def unfinished(self) -> TaskState:
        """The final state of an open task that closes without a report."""
        return TaskState.NOT_DONE_OVERDUE if self is TaskState.OVERDUE else TaskState.NOT_DONE


STATE_LABELS_VI = {
    TaskState.PENDING: "Chưa hoàn thành, còn trong hạn",
    TaskState.OVERDUE: "Chưa hoàn thành, quá hạn",
    TaskState.DONE_ON_TIME: "Hoàn thành đúng hạn",
    TaskState.DONE_LATE: "Hoàn thành quá hạn",
    TaskState.WAIVED: "Được miễn",
    TaskState.NOT_DONE: "Không hoàn thành trong kỳ",
    TaskState.NOT_DONE_OVERDUE: "Không hoàn thành, quá hạn khi đóng",
    TaskState.SUSPENDED: "Tạm dừng",
    TaskState.WITHDRAWN: "Đã rút theo văn bản sửa đổi",
}
STATE_LABELS_EN = {
    TaskState.PENDING: "Not done, within deadline",
    TaskState.OVERDUE: "Not done, overdue",
    TaskState.DONE_ON_TIME: "Done on time",
    TaskState.DONE_LATE: "Done late",
    TaskState.WAIVED: "Waived",
    TaskState.NOT_DONE: "Not done by the end of the period",
    TaskState.NOT_DONE_OVERDUE: "Not done, overdue when closed",
    TaskState.SUSPENDED: "Suspended",
    TaskState.WITHDRAWN: "Withdrawn by an amendment",
}


class NotificationKind(StrEnum):
    REMINDER = "reminder"
    ESCALATION = "escalation"
    RECEIPT = "receipt"
    EXTENSION_REQUESTED = "extension_requested"
    EXTENSION_DECIDED = "extension_decided"
    WAIVED = "waived"
    DELIVERY_FAILED = "delivery_failed"
    NO_RECIPIENT = "no_recipient"
    """To the admins: a notification reached nobody, no officer holding its roles."""
    WITHDRAWN = "withdrawn"
    """Issue 17: an amendment removed the task (names the amending document)."""
    DUE_CHANGED = "due_changed"
    """Issue 17: an amendment moved the due date (like an approved extension)."""
    SUSPENDED = "suspended"
    """Issue 17: the task (its agreement, item or obligation) is suspended."""
    RESUMED = "resumed"
    """Issue 17: resumed; says whether the deadline moved and to when."""
    TRANSFERRED = "transferred"
    """Issue 17: succession: to the new owner's officers (the transfer and the deadline) and
    the former owner's head."""


AuditChannel = Literal["portal", "cli", "system"]


class AuditEntry(Payload):
    """One state change or decision. `event_key` makes the write idempotent."""

    event_key: str
    at: AwareDatetime
    agreement_id: str
    task_id: str | None = None
    actor: str | None = Field(default=None, description="Officer ID, or 'system'.")
    action: str
    detail: dict[str, str] = Field(default_factory=dict)
    tenant: str | None = Field(default=None, description="Tenant (directory) of the task.")
    roles: list[str] = Field(default_factory=list, description="Roles the actor acted with.")
    channel: AuditChannel = Field(
        default="system", description="Entry point: portal, cli or system (the engine itself)."
    )
    request_id: str | None = Field(default=None, description="ID of the request that acted.")
    operator: str | None = Field(
        default=None, description="Operator who acted on the officer's behalf (CLI)."
    )


class NotificationRequest(Payload):
    """Send one notification of a task to the officers holding `roles` at send time."""

    business_key: str = Field(
        description="agreement/item/agency/period/kind/step[/due date]: unique per message."
    )
    kind: NotificationKind
    task: TaskRef
    roles: list[NotifyTarget] = Field(
        min_length=1,
        description="Roles, or `{leadership_of: CODE}` for the leaders of one named agency.",
    )
    step: int | None = Field(default=None, description="Reminder or escalation step, from 1.")
    offset: str | None = Field(default=None, description="The policy offset, e.g. '3d'.")
    scheduled_at: AwareDatetime = Field(description="Workflow time of the event (Date header).")
    late: bool | None = Field(default=None, description="Receipt: was the submission late?")
    approved: bool | None = Field(default=None, description="Extension decision.")
    new_due_at: AwareDatetime | None = Field(
        default=None, description="Extension: the due instant asked for (written, before the rule)."
    )
    previous_due_at: AwareDatetime | None = Field(
        default=None,
        description="Extension decision: the task's due instant before the decision; with it "
        "an approval shows the old and the new deadline.",
    )
    reason: str | None = Field(default=None, max_length=2000)
    audit: list[AuditEntry] = Field(
        default_factory=list,
        description="Audit entries the workflow made since its last activity; written (once "
        "each, by event key) in the transaction of this notification's audit row.",
    )
    acted_by: str | None = Field(
        default=None,
        description="The officer (directory ID) whose action this notification reports, e.g. "
        "who waived the task.",
    )
    acted_by_agency: str | None = Field(default=None, description="That officer's agency code.")
    closing: bool = Field(
        default=False,
        description="The task's last notification (its receipt): the task's other outbox rows "
        "still pending are marked abandoned in the same transaction.",
    )
    order_document: str | None = Field(
        default=None,
        max_length=300,
        description="Issue 17: the document of the agreement's order this notification reports "
        "(amendment, suspension, resumption or succession decision), 'số, ngày'.",
    )
    suspended_days: int | None = Field(
        default=None, ge=0, description="Issue 17, RESUMED: how many days the task was suspended."
    )
    previous_agency: str | None = Field(
        default=None, description="Issue 17, TRANSFERRED: the lead owner the task passed from."
    )
    previous_recipient: str | None = Field(
        default=None, description="Issue 17, TRANSFERRED: the receiving agency before the change."
    )
    effective: date | None = Field(
        default=None, description="Issue 17, TRANSFERRED: the day the transfer takes effect."
    )


class NotificationResult(Payload):
    recipients: int = Field(description="Officers the roles resolved to.")
    sent: int = Field(description="Messages accepted by the SMTP server in this attempt.")
    already_sent: int = Field(description="Messages a previous attempt had already sent.")
    failed_permanently: int = Field(description="Recipients refused with a 5xx reply.")
    admins_told: int = Field(
        default=0,
        description="With no recipient (`recipients` 0): the admins told so (a no-recipient "
        "notice each, sent in this attempt or an earlier one).",
    )


class Ratio(Payload):
    done: int = Field(ge=0)
    total: int = Field(ge=0)


IndicatorValue = int | Ratio | dict[str, int] | str

MAX_ATTACHMENTS = 20
MAX_ATTACHMENT_LENGTH = 500
ATTACHMENT_SCHEMES = ("https", "sha256")
"""What an attachment reference may be: an `https://` link, a content reference
`sha256:<64 hex digits>` (the document kept elsewhere by its digest), or a plain file name
(`bao-cao-6-thang.pdf`, sent alongside). Anything else with a scheme (`javascript:`, `file:`,
`http:`, `data:`) is refused: a reference is shown to officers and admins and may be clicked."""

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,30}):")
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_FILE_NAME = re.compile(r"[^\s/\\:.](?:[^/\\:]*[^\s/\\:])?")


def _attachment(reference: str) -> str:
    # isprintable() is False for control, format (bidi, zero-width) and separator characters.
    if not reference.isprintable():
        raise ValueError("an attachment reference must not contain control or invisible characters")
    scheme = _SCHEME.match(reference)
    if scheme is not None:
        name = scheme.group(1).lower()
        if name not in ATTACHMENT_SCHEMES:
            raise ValueError(
                f"attachment scheme {name!r} is not allowed; use an https:// link, "
                "sha256:<64 hex digits> or a file name"
            )
        if name == "sha256" and not _SHA256.fullmatch(reference):
            raise ValueError("a sha256: reference is 'sha256:' and 64 lower-case hex digits")
        if name == "https":
            parts = urlsplit(reference)
            if " " in reference or not parts.hostname or "@" in parts.netloc:
                raise ValueError(
                    "an https:// attachment link needs a host, and no spaces or user name"
                )
        return reference
    if not _FILE_NAME.fullmatch(reference):
        raise ValueError(
            "an attachment is an https:// link, sha256:<64 hex digits> or a file name without "
            "folders, a leading dot or surrounding spaces (e.g. bao-cao-6-thang.pdf)"
        )
    return reference


AttachmentRef = Annotated[
    str, Field(min_length=1, max_length=MAX_ATTACHMENT_LENGTH), AfterValidator(_attachment)
]
"""One attachment reference (`ATTACHMENT_SCHEMES`), at most 500 characters."""


class RecordSubmission(Payload):
    task: TaskRef
    officer_id: str
    submitted_at: AwareDatetime = Field(
        description="When Accord's entry point received the report (its signed claim)."
    )
    handled_at: AwareDatetime | None = Field(
        default=None, description="When the workflow handled it (workflow time)."
    )
    late: bool
    summary: str = Field(max_length=20_000)
    indicators: dict[str, IndicatorValue] = Field(default_factory=dict)
    attachments: list[AttachmentRef] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    audit: list[AuditEntry] = Field(
        default_factory=list,
        description="Audit entries written (once each, by event key) in the same transaction.",
    )


class SubmissionStored(Payload):
    submission_id: int
    created: bool = Field(description="False when an earlier attempt had stored it already.")


class AuditBatch(Payload):
    """Several audit entries written in one transaction, each once by its event key."""

    entries: list[AuditEntry] = Field(min_length=1)
    abandon_pending_of: str | None = Field(
        default=None,
        description="A task ID: its closing write. Every notice the task decided has been sent "
        "or has failed by then, so its outbox rows still pending are marked abandoned.",
    )


class AuditStored(Payload):
    created: bool


class Actor(Payload):
    """Who asks for an update. The client (CLI or API) authenticates the officer and fills this
    from the directory; the workflow's validators enforce who may do what."""

    officer_id: Slug = Field(description="The officer's directory ID.")
    tenant: Slug = Field(description="The tenant of the officer's directory, e.g. `nghe-an`.")
    agency: AgencyCode = Field(description="The officer's agency code.")
    roles: list[OfficerRole] = Field(max_length=len(OfficerRole))

    @property
    def is_admin(self) -> bool:
        return OfficerRole.ADMIN in self.roles


def naive_local(at: datetime) -> str:
    """'dd/mm/yyyy HH:MM' in the timestamp's own zone, for messages and logs."""
    return at.strftime("%d/%m/%Y %H:%M")


# --------------------------------------------------------------------------------------------
# The consolidated report's facts from the engine (reports.consolidate reads them)


class TaskFact(Payload):
    """One task of an agreement as its workflow knows it; `state` None: not started yet (its
    obligation workflow opens later)."""

    task_id: str = Field(description="agreement/obligation/agency/period (agency may be A+B).")
    obligation_id: str
    agency: str = Field(description="The leading owing agency.")
    co_owners: list[str] = Field(default_factory=list, description="A joint task's others.")
    period_label: str
    state: TaskState | None
    due_at: AwareDatetime | None
    escalation_level: int = 0
    closed: bool = False
    original_agency: str | None = Field(
        default=None,
        description="Issue 17: the agency that first owed the task when a succession passed it "
        "to `agency`; None: never transferred.",
    )
    written_due_at: AwareDatetime | None = Field(
        default=None,
        description="Issue 17: the written due instant (before the deadline rule), which "
        "`accord amend` compares to preview what an amendment moves; None: unknown.",
    )


class ObligationFact(Payload):
    """What a report needs of one obligation of the agreement."""

    obligation_id: str
    item_number: str | None
    title: str
    deliverable: Deliverable
    recipient: str | None = Field(description="The receiving agency (e.g. SNV), if named.")
    indicators: list[Indicator] = Field(default_factory=list)
    extension_approver: list[ExtensionApprover] = Field(
        default_factory=lambda: list(ExtensionApprover),
        description="Who decides its extension requests (the portal lists them to those).",
    )


class AgreementFacts(Payload):
    """The engine's side of a consolidated report: the agreement and its tasks at `as_of`.
    The agreement workflow's `facts` query answers it; the stored submissions and audit entries
    are the other side (reports.model.ReportInputs)."""

    agreement_id: str
    tenant: Slug
    document_number: str
    title: str
    issuer: str | None
    time_zone: str
    period_start: date
    period_end: date
    as_of: AwareDatetime = Field(description="Workflow time when the facts were taken.")
    obligations: dict[str, ObligationFact]
    tasks: list[TaskFact]
    calendar: WorkingCalendar | None = Field(
        default=None, description="The agreement's working calendar (late by N working days)."
    )


# --------------------------------------------------------------------------------------------
# The digest by mail (issue 16): the compliance table to the aggregator and the leadership

DigestKind = Literal["due", "weekly"]

DIGEST_OUTBOX_KIND = "digest"
"""The outbox `kind` of a digest's rows (not a NotificationKind: a digest is about an
agreement, not a task, and has no task template)."""


def digest_task_id(agreement_id: str) -> str:
    """The outbox `task_id` of a digest's rows: an agreement-level pseudo task ID,
    `<agreement>/digest`, that no real task has (a task ID has four parts). A task's closing
    write abandons only its own pending rows, so it never touches a digest's."""
    return f"{agreement_id}/digest"


class DigestRequest(Payload):
    """Send the compliance digest of `facts` (the agreement's tasks of the periods it covers,
    taken by the agreement workflow at `scheduled_at`) to the aggregator and the provincial
    leadership, once per recipient for `business_key`."""

    business_key: str = Field(
        description="`<agreement>/digest/<period(s) or weekly>/<yyyy-mm-dd>`: one per day."
    )
    kind: DigestKind = Field(
        description="`due`: the working day after due dates; `weekly`: while a task is overdue."
    )
    scheduled_at: AwareDatetime = Field(description="Workflow time of the digest (Date header).")
    periods: list[str] = Field(description="The period labels the digest covers, in order.")
    due_days: list[date] = Field(
        default_factory=list, description="`due`: the due dates (last days) it follows."
    )
    facts: AgreementFacts


class DigestResult(Payload):
    recipients: int = Field(description="Officers the digest is for.")
    sent: int = Field(description="Messages accepted by the SMTP server in this attempt.")
    already_sent: int = Field(description="Messages a previous attempt had already sent.")
    failed_permanently: int = Field(description="Recipients refused with a 5xx reply.")
