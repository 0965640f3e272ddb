"""Inputs, updates, queries and results of the workflows, as pydantic models.

Kept apart from the workflow classes so that the sandbox passes this module through instead of
re-importing it for every workflow run. Only standard library, pydantic and the project's
pure model modules are imported here: no temporalio, so that reading or planning an agreement
does not load the engine (search attributes: `workflows.search_attributes`; refusals:
`workflows.refusals`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticSerializationError, to_json

from activities.models import (
    MAX_ATTACHMENTS,
    Actor,
    AttachmentRef,
    IndicatorValue,
    TaskRef,
)
from activities.models import (
    STATE_LABELS_EN as STATE_LABELS_EN,  # re-exported: the labels belong to TaskState
)
from activities.models import (
    STATE_LABELS_VI as STATE_LABELS_VI,
)
from activities.models import TaskState as TaskState  # re-exported: workflows' own state
from agreements.calendar import WorkingCalendar
from agreements.models import (
    DEFAULT_EXTENSION_APPROVERS,
    DeadlineRule,
    Deliverable,
    EscalationStep,
    ExtensionApprover,
    Indicator,
    OffsetText,
    ReminderPolicy,
    Slug,
)
from agreements.plain_text import without_format_characters
from agreements.succession import Transfer
from workflows.claims import Claim


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _visible(value: object) -> object:
    return without_format_characters(value) if isinstance(value, str) else value


OfficerText = Annotated[str, BeforeValidator(_visible)]
"""Text an officer types (a report's summary, a reason, a note): invisible format characters
(bidi overrides, zero-width spaces; `agreements.plain_text`) are removed before the length
rules apply, so none reaches a mail, the Web UI, a stored report or the audit log."""


# --------------------------------------------------------------------------------------------
# Workflow ids and signal names (the search attributes are in `workflows.search_attributes`)

TASK_CHANGED_SIGNAL = "task_changed"
TASK_ORDER_SIGNAL = "task_order"
"""Agreement → task (issue 17): an amendment, suspension, resumption or succession that the
agreement workflow accepted (its update validated the admin's signed claim) applied to one
running task. See `TaskOrder`."""


def agreement_workflow_id(agreement_id: str) -> str:
    return f"agreement:{agreement_id}"


def task_workflow_id(task_id: str) -> str:
    return f"task:{task_id}"


# --------------------------------------------------------------------------------------------
# Obligation workflow


class ObligationInput(Payload):
    task: TaskRef
    reminders: ReminderPolicy
    escalation: list[EscalationStep]
    indicators: list[Indicator] = Field(default_factory=list)
    written_due_at: AwareDatetime | None = Field(
        default=None, description="Due instant as written, before the deadline rule."
    )
    deadline_rule: DeadlineRule = DeadlineRule.NEXT_WORKING_DAY
    calendar: WorkingCalendar | None = Field(
        default=None,
        description="Working calendar around the due date; None: calendar days, no window.",
    )
    sending_time: time = Field(default=time(7, 30), description="Sending window, local time.")
    period_end: date = Field(description="Last day of the agreement; bounds extensions.")
    closes_at: AwareDatetime = Field(
        description="When an unfinished task stops being chased and closes as not done."
    )
    parent_workflow_id: str | None = Field(
        default=None, description="Agreement workflow to tell about state changes."
    )
    extension_approver: list[ExtensionApprover] = Field(
        default_factory=lambda: list(DEFAULT_EXTENSION_APPROVERS),
        description="Who decides extension requests (Obligation.extension_approver).",
    )
    suspension: Suspended | None = Field(
        default=None,
        description="Issue 17: started while its scope is suspended: the task starts in state "
        "SUSPENDED and waits for a resume order.",
    )


CLAIM_DESCRIPTION = (
    "Signed by Accord's entry point (workflows.claims): the channel, operator, request ID and "
    "the instant the request was received, with an HMAC over the whole payload. Optional in "
    "the model so that an unsigned request reaches the validator, which refuses it."
)


class SubmitReport(Payload):
    """A report. On time or late is judged by `claim.received_at` (when Accord's entry point
    received it), never by a client's clock."""

    actor: Actor
    summary: OfficerText = Field(min_length=1, max_length=20_000)
    indicators: dict[str, IndicatorValue] = Field(default_factory=dict)
    attachments: list[AttachmentRef] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    claim: Claim | None = Field(default=None, description=CLAIM_DESCRIPTION)


class ExtensionRequest(Payload):
    actor: Actor
    new_due: date = Field(description="New first-late day, same convention as `before`.")
    reason: OfficerText = Field(min_length=1, max_length=2000)
    claim: Claim | None = Field(default=None, description=CLAIM_DESCRIPTION)


class ExtensionDecision(Payload):
    actor: Actor
    approve: bool
    note: OfficerText | None = Field(default=None, max_length=2000)
    claim: Claim | None = Field(default=None, description=CLAIM_DESCRIPTION)


class Waiver(Payload):
    actor: Actor
    reason: OfficerText = Field(
        min_length=1, max_length=2000, description="Why; not blank after trimming spaces."
    )
    claim: Claim | None = Field(default=None, description=CLAIM_DESCRIPTION)

    @field_validator("reason")
    @classmethod
    def _real_reason(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a waiver needs a reason, not only spaces")
        return value.strip()


class UpdateResult(Payload):
    task_id: str
    state: TaskState
    due_at: AwareDatetime | None
    message: str = Field(description="What happened, in Vietnamese.")
    message_en: str = Field(default="", description="The same in English.")


class SentNotice(Payload):
    key: str
    kind: str
    step: int
    offset: str
    at: AwareDatetime
    skipped: bool = False
    no_recipient: bool = Field(
        default=False,
        description="Decided and not skipped, but no officer held its roles at send time: "
        "nothing was sent, and the admins were told (a no-recipient notice).",
    )


def no_recipient_detail(key: str, roles: Sequence[str], *, admins_told: bool) -> str:
    """What a task records (and `accord plan` / `accord simulate` warn) when a notice of it
    reached nobody: `key` is the notice's key within the task, e.g. 'escalation/1/...'."""
    told = "the admins were told" if admins_told else "no admin could be told"
    return f"{key} reached nobody: no officer holds {', '.join(roles)}; {told}"


class Decision(Payload):
    at: AwareDatetime
    kind: str
    actor: str
    detail: str
    channel: str | None = Field(
        default=None, description="An officer's decision: the entry point (cli, portal)."
    )
    operator: str | None = Field(
        default=None, description="Who acted on the officer's behalf (CLI operator)."
    )
    request_id: str | None = Field(default=None, description="The signed request's ID.")

    @classmethod
    def by_officer(
        cls, at: datetime, kind: str, actor: Actor, detail: str, claim: Claim | None
    ) -> Decision:
        """An officer's decision, with what his entry point's signed claim vouched for."""
        return cls(
            at=at,
            kind=kind,
            actor=actor.officer_id,
            detail=detail,
            channel=claim.channel if claim else None,
            operator=claim.operator if claim else None,
            request_id=claim.request_id if claim else None,
        )


class CalendarUpdate(Payload):
    """A newly published working calendar (e.g. the government's Tết schedule), sent by the
    `change_calendar` update. The calendar is national: the publisher is the operator whose
    signed claim (an admin credential from settings) comes with it, not an officer."""

    calendar: WorkingCalendar
    note: str = Field(default="", max_length=500)
    published_by: str | None = Field(
        default=None,
        max_length=100,
        description="The operator who published it; must be the claim's operator.",
    )
    claim: Claim | None = Field(default=None, description=CLAIM_DESCRIPTION)


class TaskStatus(Payload):
    task: TaskRef
    state: TaskState
    state_label: str
    due_at: AwareDatetime | None
    due_note: str | None = None
    original_due_at: AwareDatetime | None
    escalation_level: int
    notices: list[SentNotice]
    decisions: list[Decision]
    pending_extension: ExtensionRequest | None
    submitted_at: AwareDatetime | None
    next_action: str | None
    next_action_at: AwareDatetime | None
    closed: bool
    suspensions: list[Suspended] = Field(
        default_factory=list, description="Issue 17: suspensions in force over the task."
    )
    ignored_orders: int = Field(
        default=0, description="Issue 17: agreement orders this task ignored (logged)."
    )


class TaskOutcome(Payload):
    task_id: str
    state: TaskState
    escalation_level: int
    closed_at: AwareDatetime


class TaskChange(Payload):
    """Child → parent: a task's state moved."""

    task_id: str
    state: TaskState
    escalation_level: int
    due_at: AwareDatetime | None
    closed: bool
    agency: str | None = Field(
        default=None,
        description="Issue 17: the current lead owner when a succession changed it (else None).",
    )


# --------------------------------------------------------------------------------------------
# Living agreements (issue 17): what the agreement workflow orders its running tasks


class Suspended(Payload):
    """A suspension in force over a task: since when, by which decision."""

    suspension_id: str = Field(description="The suspension's ID (SuspensionRequest).")
    since: AwareDatetime
    document: OfficerText = Field(max_length=300, description="The deciding document, 'số, ngày'.")
    reason: OfficerText = Field(max_length=2000)


class TaskOrder(Payload):
    """Agreement → task, by the `task_order` signal. The agreement's update validator checked
    the admin's signed claim; the task applies each `order_id` once (a repeated order is
    ignored), and ignores an order whose `agreement_workflow_id` is not its parent's.

    - withdraw: close as WITHDRAWN naming `document` (mail: WITHDRAWN to the owners).
    - move_due: `written_due_at` is the new written due instant; the deadline rule applies,
      reminders are planned again from now like an approved extension, nothing already sent is
      sent again (mail: DUE_CHANGED).
    - suspend: state SUSPENDED, no reminder, escalation or close while suspended (mail:
      SUSPENDED). Several suspensions may overlap (agreement and item): the task resumes when
      the last one is lifted.
    - resume: lift suspension `suspension_id`; when `shift_deadline`, the written due instant
      moves by the time the task was suspended (mail: RESUMED, with the deadline).
    - transfer: the task passes to `agency` and `co_owners` (all of them: empty when a
      co-owner merged into the lead) from `effective`, or keeps its owners when `agency` is
      None; `recipient`
      (when not None) replaces the receiving agency (a successor aggregator). The task ID and
      the history keep the original owner (`TaskRef.original_agency`); mail TRANSFERRED to
      the new owner's focal points and heads and to the former owner's head.
    """

    order_id: str = Field(
        min_length=1, max_length=200, description="Idempotency: applied once per task."
    )
    agreement_workflow_id: str
    kind: Literal["withdraw", "move_due", "suspend", "resume", "transfer"]
    at: AwareDatetime = Field(description="When the agreement accepted the change.")
    document: OfficerText = Field(max_length=300, description="The amending/deciding document.")
    reason: OfficerText | None = Field(default=None, max_length=2000)
    actor: str = Field(description="Who ordered it (officer ID), for the task's decisions.")
    written_due_at: AwareDatetime | None = None
    suspension_id: str | None = None
    shift_deadline: bool = False
    agency: str | None = None
    co_owners: list[str] = Field(default_factory=list)
    recipient: str | None = None
    effective: date | None = None


# --------------------------------------------------------------------------------------------
# Agreement workflow


class AgencySpan(Payload):
    """When an agency exists (`active_from`, `active_until`; None: no limit)."""

    active_from: date | None = None
    active_until: date | None = None


class ObligationPlan(Payload):
    """Everything shared by the tasks of one obligation, stored once per agreement."""

    obligation_id: str
    item_number: str | None
    title: str
    deliverable: Deliverable
    recipient: str | None
    reminders: ReminderPolicy
    escalation: list[EscalationStep]
    indicators: list[Indicator] = Field(default_factory=list)
    deadline_rule: DeadlineRule = DeadlineRule.NEXT_WORKING_DAY
    copy_to: list[str] = Field(
        default_factory=list, description="Agencies copied for information (đồng gửi)."
    )
    event: str | None = Field(
        default=None, description="For an obligation started by an event: the event's ID."
    )
    within: OffsetText | None = Field(
        default=None, description="For an event's obligation: due this long after the event."
    )
    owners: dict[str, AgencySpan] = Field(
        default_factory=dict,
        description="For an event's obligation: owing agency (directory order) → when it exists.",
    )
    jointly: bool = Field(
        default=False, description="For an event's obligation: one joint task of all owners."
    )
    extension_approver: list[ExtensionApprover] = Field(
        default_factory=lambda: list(DEFAULT_EXTENSION_APPROVERS),
        description="Who decides extension requests (Obligation.extension_approver).",
    )


class PlannedTask(Payload):
    task_id: str
    obligation_id: str
    agency: str
    original_agency: str | None = Field(
        default=None,
        description="Issue 17: the agency the task was planned for, when a succession passed "
        "it to `agency` before it started.",
    )
    co_owners: list[str] = Field(
        default_factory=list, description="A joint task: the other owing agencies."
    )
    period_label: str
    due_at: AwareDatetime | None
    written_due_at: AwareDatetime | None = None
    due_note_vi: str | None = None
    due_note_en: str | None = None
    covers_from: date | None = None
    covers_to: date | None = None
    opens_at: AwareDatetime = Field(description="When the obligation workflow is started.")


class AgreementPlan(Payload):
    """The validated agreement as the engine needs it: expanded outside the workflow."""

    agreement_id: str
    tenant: Slug = Field(description="The tenant of the agreement's directory.")
    document_number: str
    title: str
    issuer: str | None = Field(default=None, description="Issuing body as printed.")
    time_zone: str
    period_start: date
    period_end: date
    starts_at: AwareDatetime
    ends_at: AwareDatetime = Field(description="End of the period (first moment after it).")
    closes_at: AwareDatetime = Field(description="Unfinished tasks close at this instant.")
    obligations: dict[str, ObligationPlan]
    calendar: WorkingCalendar | None = Field(
        default=None, description="Working calendar for the period (see agreements.calendar)."
    )
    sending_time: time = time(7, 30)
    digest: bool = Field(
        default=False,
        description="Mail the compliance digest to the aggregator and the provincial leadership "
        "the working day after each due date and weekly while a task is overdue (`accord "
        "deploy` sets it; the simulation and `accord plan` preview the notices only).",
    )


class LedgerEntry(Payload):
    state: TaskState
    due_at: AwareDatetime | None
    escalation_level: int = 0
    closed: bool = False
    agency: str | None = Field(
        default=None,
        description="Issue 17: current lead owner when a succession changed it (the task ID "
        "names the original).",
    )
    co_owners: list[str] | None = Field(
        default=None,
        description="Issue 17: current co-owners when a succession changed them (None: as the "
        "task ID names them).",
    )
    written_due_at: AwareDatetime | None = Field(
        default=None,
        description="Issue 17: the due instant as the version in force writes it (before the "
        "deadline rule and extensions): what an amendment compares.",
    )


class RecordedEvent(Payload):
    """An event an admin recorded (e.g. the review conference), and the tasks it started."""

    event: str
    label: str
    day: date
    recorded_at: AwareDatetime
    actor: str
    task_ids: list[str] = Field(default_factory=list)


class ChangeScope(Payload):
    """What a suspension covers: the whole agreement (both None), one item, or one
    obligation."""

    item: str | None = Field(default=None, description="Item number, e.g. `III.3`.")
    obligation_id: str | None = None

    @property
    def key(self) -> str:
        if self.obligation_id:
            return f"obligation:{self.obligation_id}"
        return f"item:{self.item}" if self.item else "agreement"

    @property
    def text_vi(self) -> str:
        """In Vietnamese, for mail, details and `accord status`."""
        if self.obligation_id:
            return f"nghĩa vụ {self.obligation_id}"
        return f"mục {self.item}" if self.item else "toàn bộ văn bản"


class AgreementVersion(Payload):
    """One version of the agreement (the signed one is version 1; each amendment adds one)."""

    number: int
    document: str = Field(max_length=300)
    in_force_since: AwareDatetime
    amendment_id: str | None = Field(default=None, description="None: the signed version.")
    summary: list[str] = Field(
        default_factory=list, description="What changed (agreements.amendment.plan_diff)."
    )


class AmendmentRequest(Payload):
    """`accord amend`: the new version's plan and every task it plans (the whole expansion of
    the new file; the workflow computes the difference with `agreements.amendment.task_diff`).
    `amendment_id` is a hash of the document and the new plan: applying it again changes
    nothing."""

    actor: Actor
    amendment_id: str = Field(min_length=8, max_length=100)
    document: str = Field(min_length=1, max_length=300)
    plan: AgreementPlan
    tasks: list[PlannedTask]
    summary: list[str] = Field(default_factory=list)
    claim: Claim | None = Field(default=None, description=CLAIM_DESCRIPTION)


class AmendmentResult(Payload):
    agreement_id: str
    version: int
    applied: bool = Field(description="False: this amendment was already applied.")
    added: list[str] = Field(default_factory=list, description="Task IDs planned or started.")
    withdrawn: list[str] = Field(default_factory=list)
    moved: list[str] = Field(default_factory=list)
    message: str
    message_en: str


class SuspensionRequest(Payload):
    """`accord suspend`: no reminders or escalations in `scope` until resumed."""

    actor: Actor
    suspension_id: str = Field(min_length=1, max_length=100)
    scope: ChangeScope = Field(default_factory=ChangeScope)
    document: str = Field(min_length=1, max_length=300)
    reason: str = Field(min_length=1, max_length=2000)
    claim: Claim | None = Field(default=None, description=CLAIM_DESCRIPTION)


class ResumptionRequest(Payload):
    """`accord resume`: lift suspension `suspension_id`; `shift_deadlines`: the suspended
    tasks' deadlines move by the time they were suspended, else they stay."""

    actor: Actor
    suspension_id: str = Field(min_length=1, max_length=100)
    document: str = Field(min_length=1, max_length=300)
    reason: str = Field(min_length=1, max_length=2000)
    shift_deadlines: bool
    claim: Claim | None = Field(default=None, description=CLAIM_DESCRIPTION)


class SuccessionRequest(Payload):
    """`accord succession apply`: from `effective` (local midnight in the agreement's zone;
    now when already past), open tasks of each `from_agency` pass to its successor, and so do
    the waiting ones; an obligation whose recipient is succeeded gets the successor as
    recipient for tasks started from then, and open tasks are re-addressed."""

    actor: Actor
    succession_id: str = Field(min_length=1, max_length=100)
    document: str = Field(min_length=1, max_length=300)
    effective: date
    transfers: list[Transfer] = Field(min_length=1)
    claim: Claim | None = Field(default=None, description=CLAIM_DESCRIPTION)


class ChangeResult(Payload):
    """The answer to a suspension, resumption or succession."""

    agreement_id: str
    applied: bool = Field(description="False: this change was already applied.")
    tasks: list[str] = Field(default_factory=list, description="Task IDs it reaches now.")
    message: str
    message_en: str


class AgreementInput(Payload):
    plan: AgreementPlan
    waiting: list[PlannedTask] = Field(description="Tasks not started yet, by opening time.")
    ledger: dict[str, LedgerEntry] = Field(default_factory=dict)
    runs: int = Field(default=1, description="How many runs (continue-as-new) so far.")
    events: dict[str, RecordedEvent] = Field(
        default_factory=dict, description="Events recorded so far, by 'event/label'."
    )
    digested_until: AwareDatetime | None = Field(
        default=None,
        description="The latest digest instant handled (sent or skipped): none is sent again; "
        "None: the first run, which sends none before its own start.",
    )
    digest_anchor: date | None = Field(
        default=None,
        description="Local day of the latest due-date digest: weekly digests follow it.",
    )
    versions: list[AgreementVersion] = Field(
        default_factory=list, description="Issue 17: versions so far; empty: only the signed."
    )
    suspensions: dict[str, Suspended] = Field(
        default_factory=dict, description="Issue 17: suspensions in force, by ID."
    )
    suspension_scopes: dict[str, ChangeScope] = Field(
        default_factory=dict, description="Issue 17: the scope of each suspension in force."
    )
    suspended_obligations: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Issue 17: the obligations each suspension in force covered when it was "
        "made (an amendment renumbering an item keeps them suspended, and resumed).",
    )
    successions: list[SuccessionRequest] = Field(
        default_factory=list,
        description="Issue 17: successions accepted (claims dropped), applied or due.",
    )
    applied_changes: list[str] = Field(
        default_factory=list,
        description="Issue 17: IDs of amendments, suspensions, resumptions and successions "
        "applied (idempotency across continue-as-new).",
    )


class EventRecord(Payload):
    """`accord event record`: an event happened on `day`; start the obligations it triggers."""

    actor: Actor
    event: Slug
    day: date
    label: Slug | None = Field(
        default=None,
        description="Period label of the tasks it starts (default: the day, e.g. 2026-12-01); "
        "recording the same event and label again starts nothing new.",
    )
    claim: Claim | None = Field(default=None, description=CLAIM_DESCRIPTION)


class EventTask(Payload):
    task_id: str
    agency: str
    due_at: AwareDatetime
    due_note_vi: str | None = None


class EventResult(Payload):
    agreement_id: str
    event: str
    label: str
    day: date
    created: bool = Field(description="False when the event was already recorded.")
    tasks: list[EventTask]
    message: str
    message_en: str


class Deadline(Payload):
    task_id: str
    agency: str
    due_at: AwareDatetime
    state: TaskState
    escalation_level: int


class AgreementOverview(Payload):
    agreement_id: str
    document_number: str
    counts: dict[str, int]
    waiting: int
    started: int
    closed: int
    next_deadlines: list[Deadline]
    overdue: list[Deadline]
    runs: int
    finished: bool
    ignored_signals: int = Field(
        default=0, description="Signals of this run with a payload it could not use."
    )
    version: AgreementVersion | None = Field(
        default=None, description="Issue 17: the version in force (None: the signed one)."
    )
    suspensions: list[Suspended] = Field(
        default_factory=list, description="Issue 17: suspensions in force."
    )
    suspension_scopes: dict[str, ChangeScope] = Field(
        default_factory=dict, description="Issue 17: what each suspension in force covers."
    )


class AgreementSummary(Payload):
    agreement_id: str
    counts: dict[str, int]
    total: int
    finished_at: AwareDatetime


def task_ref(plan: AgreementPlan, task: PlannedTask) -> TaskRef:
    """What the task's workflow, its mail and its rows know about a planned task."""
    obligation = plan.obligations[task.obligation_id]
    return TaskRef(
        task_id=task.task_id,
        agreement_id=plan.agreement_id,
        tenant=plan.tenant,
        document_number=plan.document_number,
        agreement_title=plan.title,
        issuer=plan.issuer,
        item_number=obligation.item_number,
        obligation_id=obligation.obligation_id,
        deliverable=obligation.deliverable,
        title=obligation.title,
        agency=task.agency,
        recipient=obligation.recipient,
        period_label=task.period_label,
        due_at=task.due_at,
        time_zone=plan.time_zone,
        due_note_vi=task.due_note_vi,
        due_note_en=task.due_note_en,
        covers_from=task.covers_from,
        covers_to=task.covers_to,
        co_owners=list(task.co_owners),
        copy_to=list(obligation.copy_to),
    )


def ui_text(text: str) -> str:
    """Text for the Web UI (a workflow's summary and details) without invisible format
    characters: agreement files refuse them and officers' text loses them on the way in, and
    this is the last gate before the page."""
    return without_format_characters(text)


def clip_summary(text: str, limit: int = 200) -> str:
    """Text cut to the Web UI's summary limit in UTF-8 bytes, ending in '…' when cut."""
    text = ui_text(text)
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[: limit - len("…".encode())].decode("utf-8", errors="ignore") + "…"


def local_text(at: datetime | None) -> str:
    return at.strftime("%d/%m/%Y %H:%M") if at else "—"


def before_day_text(due_at: datetime | None) -> str:
    """'trước ngày 15/05/2025' for a due instant at local midnight."""
    if due_at is None:
        return "không có hạn"
    if due_at.hour == 0 and due_at.minute == 0:
        return f"trước ngày {due_at:%d/%m/%Y}"
    return f"trước {due_at:%H:%M} ngày {due_at:%d/%m/%Y}"


ONE_DAY = timedelta(days=1)


# --------------------------------------------------------------------------------------------
# Arguments of updates and signals, checked by the handlers themselves

_Argument = TypeVar("_Argument", bound=BaseModel)
MAX_REFUSAL_PROBLEMS = 5


def parse_argument(
    model: type[_Argument], update: str, payload: object, extra: tuple[Any, ...]
) -> _Argument:
    """An update's or signal's one argument as `model`, or a ValueError whose message names the
    handler, the fields and the rule broken, on one line, without echoing the input (the SDK
    would otherwise answer a malformed payload with 'Failed decoding arguments' or a Python
    error, and a signal handler's error would fail the workflow task)."""
    if extra:
        raise ValueError(
            f"{update} takes exactly one argument (a {model.__name__}), got {1 + len(extra)}"
        )
    if isinstance(payload, model):
        return payload
    if payload is None:
        raise ValueError(f"{update} needs one argument: a {model.__name__} object")
    try:
        # Decoded as the SDK's pydantic converter decodes a typed argument: from JSON.
        return model.model_validate_json(to_json(payload))
    except (ValidationError, PydanticSerializationError) as error:
        if isinstance(error, PydanticSerializationError):
            raise ValueError(
                f"{update}: the argument must be a {model.__name__} object (JSON), "
                f"not {type(payload).__name__}"
            ) from None
        problems = [
            f"{'.'.join(_loc_part(part) for part in problem['loc']) or 'payload'}: {problem['msg']}"
            for problem in error.errors(include_url=False, include_input=False)
        ]
        more = len(problems) - MAX_REFUSAL_PROBLEMS
        text = "; ".join(problems[:MAX_REFUSAL_PROBLEMS]) + (
            f"; and {more} more" if more > 0 else ""
        )
        raise ValueError(f"{update}: invalid {model.__name__}: {text}"[:1000]) from None


def _loc_part(part: str | int) -> str:
    """A field name or index for a refusal message; a key the sender made up is quoted in
    ASCII and cut short, so control or invisible characters never reach the message."""
    if isinstance(part, int) or re.fullmatch(r"[A-Za-z0-9_-]{1,40}", part):
        return str(part)
    return ascii(part[:40])


ObligationInput.model_rebuild()
TaskStatus.model_rebuild()
