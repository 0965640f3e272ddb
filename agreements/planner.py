"""The planner: what a task sends, when, and to which roles, given its terms, its calendar and
what has happened so far.

One set of pure functions answers that question for two callers: the Obligation workflow
(`workflows/obligation.py`), which asks for its next action, sleeps until it and then sends or
records it; and `accord plan`, which runs a task from its opening to its close on paper, with
scripted submissions, and prints the same mail `accord simulate` delivers, without a server.

What it must not do: import Temporal (workflow code depends on this module, not the other way
round; a test checks that importing it leaves `temporalio` unloaded), read a clock, the
database, settings or the network, or resolve officers and addresses. Time comes in as
arguments (`now`, `schedule_from`), and roles stay roles: whom a role reaches is decided by
`agreements/recipients.py` over a directory. Changing what a function here returns changes
what running workflows do on replay: such a change needs a `workflow.patched` guard in the
workflow and a replay test.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

from agreements.calendar import (
    CalendarRangeError,
    SendingWindow,
    WorkingCalendar,
    apply_deadline_rule,
    offset_after,
    offset_before,
)
from agreements.models import (
    DeadlineRule,
    EscalationStep,
    ExtensionApprover,
    LeadershipOf,
    NotifyTarget,
    Offset,
    OffsetUnit,
    RecipientRole,
    ReminderPolicy,
)

ActionKind = Literal["reminder", "overdue", "escalation", "close"]
NoticeKind = Literal[
    "reminder", "escalation", "receipt", "extension_requested", "extension_decided", "waived"
]
"""The values of `activities.models.NotificationKind` the planner decides on."""

_DAY_UNITS = frozenset({OffsetUnit.DAYS, OffsetUnit.WORKING_DAYS})

RECEIPT_ROLES = (RecipientRole.FOCAL_POINT,)
"""A receipt goes to the owing agency's focal point, and to the aggregator when there is one
(`receipt_roles`)."""
EXTENSION_REQUEST_ROLES = (RecipientRole.AGGREGATOR,)
"""The aggregator decides; without one (no recipient agency) nobody is mailed."""
EXTENSION_DECISION_ROLES = (RecipientRole.FOCAL_POINT,)
WAIVER_ROLES = (RecipientRole.FOCAL_POINT,)


# --------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class TaskTerms:
    """What a task's schedule is made of and never changes while it runs."""

    reminders: ReminderPolicy
    escalation: Sequence[EscalationStep]
    closes_at: datetime
    """When the agreement's unfinished tasks close (a late ladder may keep a task open longer)."""
    time_zone: str
    sending_time: time = time(7, 30)
    deadline_rule: DeadlineRule = DeadlineRule.NEXT_WORKING_DAY
    has_recipient: bool = False
    """The obligation names an agency that receives the deliverable (the aggregator)."""
    has_copies: bool = False
    """The obligation is copied to other agencies (`copy_to`): every reminder, escalation step
    and receipt also goes to them (`RecipientRole.COPY`), for information."""


@dataclass(frozen=True)
class Progress:
    """What has happened so far, as far as the schedule cares."""

    due_at: datetime | None
    """The due instant now in force (after the deadline rule, extensions, calendar changes)."""
    written_due: datetime | None
    """The due instant as written or extended, before the rule: business keys use it, so a
    calendar change that moves the deadline never re-sends a notice."""
    calendar: WorkingCalendar | None
    schedule_from: datetime
    """When the schedule was last (re)made: actions planned before it are skipped, not sent."""
    open: bool = True
    overdue: bool = False
    escalation_level: int = 0
    done: Collection[str] = frozenset()
    """Keys of the actions already taken (sent, skipped or recorded)."""


# --------------------------------------------------------------------------------------------
# Outputs


@dataclass(frozen=True)
class Action:
    """The next thing on a task's schedule; `key` is unique per task and due instant."""

    key: str
    kind: ActionKind
    step: int
    offset: str
    at: datetime


@dataclass(frozen=True)
class Notice:
    """What taking a reminder or escalation action means: mail to `roles`, or a skip."""

    kind: Literal["reminder", "escalation"]
    step: int
    roles: tuple[NotifyTarget, ...]
    skipped: bool


@dataclass(frozen=True)
class Deadline:
    due_at: datetime
    note_vi: str | None = None
    note_en: str | None = None
    """Why the rule moved it, when it did."""


# --------------------------------------------------------------------------------------------
# The schedule


def closes_at(
    terms: TaskTerms, due_at: datetime | None, calendar: WorkingCalendar | None = None
) -> datetime:
    """The agreement's close, or a day after the last escalation step if that is later.

    The last step counts by its nominal length (a working day as one day); given the calendar,
    when a step's computed sending instant comes later still (working days over a weekend or
    Tết, a step pushed to the next sending window), the task stays open until a day after that
    instant, so that no step of the ladder is dropped by the close."""
    instants = escalation_instants(terms, calendar, due_at) if due_at is not None else []
    return _close(terms, due_at, instants)


def _close(terms: TaskTerms, due_at: datetime | None, instants: Sequence[datetime]) -> datetime:
    if due_at is None or not terms.escalation:
        return terms.closes_at
    last_step = due_at + terms.escalation[-1].after.duration
    close = max(terms.closes_at, last_step + timedelta(days=1))
    last_sent = max(instants, default=close)
    return last_sent + timedelta(days=1) if last_sent > close else close


def next_action(terms: TaskTerms, progress: Progress) -> Action:
    """The earliest thing still to do; closing is always last."""
    due_at = progress.due_at
    # Before the due instant the nominal close is enough (it comes after the due instant
    # whenever there is a ladder); the steps' instants are computed once overdue.
    instants = (
        escalation_instants(terms, progress.calendar, due_at)
        if due_at is not None and progress.overdue
        else []
    )
    close = Action("close", "close", 0, "", _close(terms, due_at, instants))
    if not progress.open or due_at is None:
        return close
    done = progress.done
    due_key = f"{progress.written_due or due_at:%Y%m%d%H%M}"
    candidates: list[Action] = []
    if not progress.overdue:
        for reminder in reminder_schedule(terms, progress.calendar, due_at):
            key = f"reminder/{reminder.index}/{due_key}"
            if key not in done and not reminder.merged:
                candidates.append(
                    Action(key, "reminder", reminder.index, str(reminder.offset), reminder.at)
                )
        candidates.append(Action(f"overdue/{due_key}", "overdue", 0, "", due_at))
    else:
        latest: datetime | None = None
        for index, (step, at) in enumerate(zip(terms.escalation, instants, strict=True), start=1):
            # Ladder order: a step never goes before the one above it (a `4d` step after a
            # `3wd` one on a Friday due date waits for it), so none is overtaken and skipped.
            latest = at if latest is None else max(latest, at)
            key = f"escalation/{index}/{due_key}"
            if index > progress.escalation_level and key not in done:
                candidates.append(Action(key, "escalation", index, str(step.after), latest))
    candidates = [c for c in candidates if c.at <= close.at]
    return min(candidates, key=lambda c: (c.at, c.step), default=close)


def is_stale(action: Action, schedule_from: datetime) -> bool:
    """A reminder or escalation step whose time had already passed when the schedule was
    made (a task deployed late, or an extension granted after the fact) is recorded as
    skipped, not sent in a burst. Timers that fire late because a worker was down are not
    stale: their time was still ahead when the schedule was made."""
    return action.at < schedule_from


def notice_for(terms: TaskTerms, progress: Progress, action: Action, now: datetime) -> Notice:
    """What a reminder or escalation action sends when taken at `now` (not overdue, close)."""
    # A reminder goes before the due instant, so before any close a ladder sets.
    calendar = progress.calendar if action.kind == "escalation" else None
    close = closes_at(terms, progress.due_at, calendar)
    skipped = is_stale(action, progress.schedule_from) or now >= close
    if action.kind == "reminder":
        roles = _with_copies(terms, tuple(terms.reminders.notify))
        return Notice("reminder", action.step, roles, skipped)
    if action.kind == "escalation":
        roles = _with_copies(terms, tuple(terms.escalation[action.step - 1].notify))
        return Notice("escalation", action.step, roles, skipped)
    raise ValueError(f"a {action.kind} action sends no notice")


def _with_copies(terms: TaskTerms, roles: tuple[NotifyTarget, ...]) -> tuple[NotifyTarget, ...]:
    if terms.has_copies and RecipientRole.COPY not in roles:
        return (*roles, RecipientRole.COPY)
    return roles


def receipt_roles(terms: TaskTerms) -> tuple[RecipientRole, ...]:
    roles: tuple[RecipientRole, ...] = RECEIPT_ROLES
    if terms.has_recipient:
        roles = (*roles, RecipientRole.AGGREGATOR)
    if terms.has_copies:
        roles = (*roles, RecipientRole.COPY)
    return roles


def extension_request_roles(
    terms: TaskTerms,
    *,
    recipient: str | None = None,
    approvers: Sequence[ExtensionApprover] = (),
) -> tuple[NotifyTarget, ...]:
    """Who hears of an extension request: the aggregator (the receiving agency's focal point,
    who follows the deliverable) and whoever decides it — the receiving agency's leaders
    (`{leadership_of: recipient}`) when its head is an approver; the provincial leadership
    when it is the only approver there is (it is not mailed for every request as a second
    approver: the portal's decisions page lists them). Empty when nobody receives the
    deliverable and no approver can be reached."""
    roles: list[NotifyTarget] = list(EXTENSION_REQUEST_ROLES) if terms.has_recipient else []
    head_decides = ExtensionApprover.RECIPIENT_HEAD in approvers and recipient is not None
    if head_decides and recipient is not None:
        roles.append(LeadershipOf(leadership_of=recipient))
    if ExtensionApprover.PROVINCIAL_LEADERSHIP in approvers and not head_decides:
        roles.append(RecipientRole.PROVINCIAL_LEADERSHIP)
    return tuple(roles)


def is_late(submitted_at: datetime, due_at: datetime | None) -> bool:
    return due_at is not None and submitted_at >= due_at


# --------------------------------------------------------------------------------------------
# Calendar arithmetic


def sending_window(terms: TaskTerms, calendar: WorkingCalendar | None) -> SendingWindow | None:
    if calendar is None:
        return None
    key = (id(calendar), terms.time_zone, terms.sending_time)
    cached = _WINDOWS.get(key)
    # The entry holds its calendar, so the id cannot have been reused by another object.
    if cached is None or cached[0] is not calendar:
        window = SendingWindow(
            calendar=calendar, time_zone=terms.time_zone, opens_at=terms.sending_time
        )
        if len(_WINDOWS) >= 256:
            _WINDOWS.clear()
        cached = _WINDOWS[key] = (calendar, window)
    return cached[1]


_WINDOWS: dict[tuple[int, str, time], tuple[WorkingCalendar, SendingWindow]] = {}
"""Sending windows by calendar object, zone and opening: a whole agreement shares a few, and
building one (or hashing a calendar) on every question costs more than the question."""


def reminder_at(
    terms: TaskTerms, calendar: WorkingCalendar | None, due_at: datetime, offset: Offset
) -> datetime:
    """Due instant minus the offset; day offsets go to the latest sending window before."""
    window = sending_window(terms, calendar)
    if window is None or offset.unit not in _DAY_UNITS:
        return due_at - offset.duration
    key = (id(window), -1, due_at, due_at.tzinfo, due_at.utcoffset(), offset.amount, offset.unit)
    cached = _TIMES.get(key)
    if cached is not None and cached[0] is window:
        return cached[1]
    try:
        planned = offset_before(due_at, offset, window.calendar)
        # The morning of the planned day, or of the working day before it.
        at = window.previous_window(window.opening(planned.date()))
    except CalendarRangeError:
        at = due_at - offset.duration
    return _remember(key, window, at)


@dataclass(frozen=True)
class PlannedReminder:
    """One reminder of a task's policy with its computed sending instant."""

    index: int
    """Position in the policy sorted by nominal length, longest first (as written on ties): the
    key's number, stable whatever the calendar does to the instants."""
    offset: Offset
    at: datetime
    merged: bool
    """Another reminder of a lower index falls in the same sending window: this one goes out
    with it, once."""


def reminder_schedule(
    terms: TaskTerms, calendar: WorkingCalendar | None, due_at: datetime
) -> list[PlannedReminder]:
    """The reminders of a task by computed sending instant (then index).

    Days and working days mix: `5wd` before a due date after Tết can fall earlier than `7d`,
    so reminders are ordered by the instants computed, not by nominal length, and only those
    that fall in the very same sending window merge into one mail; a distinct day is never
    dropped."""
    offsets = sorted(terms.reminders.before, key=lambda o: -o.seconds)
    planned: list[PlannedReminder] = []
    first_at: dict[datetime, int] = {}
    for index, offset in enumerate(offsets, start=1):
        at = reminder_at(terms, calendar, due_at, offset)
        merged = at in first_at
        first_at.setdefault(at, index)
        planned.append(PlannedReminder(index, offset, at, merged))
    return sorted(planned, key=lambda r: (r.at, r.index))


def escalation_instants(
    terms: TaskTerms, calendar: WorkingCalendar | None, due_at: datetime
) -> list[datetime]:
    """Each escalation step's computed instant, in ladder order (not yet forced into order:
    `next_action` sends a step no earlier than the one above it; `agreements.loader` refuses
    a ladder that comes out of order on the agreement's due dates)."""
    return [escalation_at(terms, calendar, due_at, step.after) for step in terms.escalation]


def escalation_at(
    terms: TaskTerms, calendar: WorkingCalendar | None, due_at: datetime, offset: Offset
) -> datetime:
    """Due instant plus the offset; day offsets go to the next sending window."""
    window = sending_window(terms, calendar)
    if window is None or offset.unit not in _DAY_UNITS:
        return due_at + offset.duration
    key = (id(window), +1, due_at, due_at.tzinfo, due_at.utcoffset(), offset.amount, offset.unit)
    cached = _TIMES.get(key)
    if cached is not None and cached[0] is window:
        return cached[1]
    try:
        at = window.next_window(offset_after(due_at, offset, window.calendar))
    except CalendarRangeError:
        at = due_at + offset.duration
    return _remember(key, window, at)


_TimeKey = tuple[int, int, datetime, tzinfo | None, timedelta | None, int, OffsetUnit]
_TIMES: dict[_TimeKey, tuple[SendingWindow, datetime]] = {}
"""Reminder (-1) and escalation (+1) instants by sending window, due instant (with its zone
and offset: the dates are read in the instant's own zone) and day offset:
`next_action` asks again at every step of a task, and the tasks of a programme's agencies
share their due instants (`accord plan` on 115 agencies: 13,800 questions, a few hundred
different). The entry holds its window, so the id cannot belong to another object."""


def _remember(key: _TimeKey, window: SendingWindow, at: datetime) -> datetime:
    if len(_TIMES) >= 65_536:
        _TIMES.clear()
    _TIMES[key] = (window, at)
    return at


def deadline(
    written: datetime,
    rule: DeadlineRule,
    calendar: WorkingCalendar | None,
) -> Deadline:
    """The due instant for a written one under the rule and calendar, with the explanation
    when it moved (none without a calendar, or outside its years)."""
    if calendar is None:
        return Deadline(written)
    try:
        adjusted = apply_deadline_rule(written, rule, calendar, written.tzinfo or UTC)
    except CalendarRangeError:
        return Deadline(written)
    return Deadline(adjusted.adjusted, adjusted.explanation_vi, adjusted.explanation_en)


def task_calendar(
    calendar: WorkingCalendar | None, due_at: datetime | None, starts_at: datetime
) -> WorkingCalendar | None:
    """The agreement's calendar cut to the years around a task, as the task receives it."""
    if calendar is None:
        return None
    year = (due_at or starts_at).year
    if not calendar.first_year <= year <= calendar.last_year:
        return None
    return calendar.between_years(year - 1, year + 1)


# --------------------------------------------------------------------------------------------
# A whole task on paper


@dataclass(frozen=True)
class PlannedNotice:
    """One notification a task sends: when, what, to which roles."""

    at: datetime
    kind: NoticeKind
    key: str
    """The business key's tail after the task ID, as the workflow writes it."""
    roles: tuple[NotifyTarget, ...]
    step: int | None = None
    offset: str | None = None
    late: bool | None = None


@dataclass
class TaskPlan:
    notices: list[PlannedNotice] = field(default_factory=list)
    skipped: list[Action] = field(default_factory=list)
    """Reminders and escalation steps recorded as skipped (stale, or past the close)."""
    state: Literal["done_on_time", "done_late", "not_done", "not_done_overdue"] = "not_done"
    closed_at: datetime | None = None
    submission_refused: str | None = None
    """Why a scripted submission was not taken (the task had closed, or had not opened)."""


def plan_task(
    terms: TaskTerms,
    *,
    opens_at: datetime,
    due_at: datetime | None,
    written_due: datetime | None,
    calendar: WorkingCalendar | None,
    submitted_at: datetime | None = None,
) -> TaskPlan:
    """Run a task from `opens_at` to its close as the Obligation workflow does, with a report
    arriving at `submitted_at` (None: never). Actions due at the very instant of the report
    are taken before it, as the workflow catches up on timers owed before a report."""
    plan = TaskPlan()
    progress = Progress(
        due_at=due_at,
        written_due=written_due or due_at,
        calendar=calendar,
        schedule_from=opens_at,
    )
    done: set[str] = set()
    now = opens_at
    if submitted_at is not None and submitted_at < opens_at:
        plan.submission_refused = "the task has not opened yet"
        submitted_at = None
    while True:
        action = next_action(terms, progress)
        if submitted_at is not None and due_at is not None and submitted_at < action.at:
            late = is_late(submitted_at, progress.due_at)
            plan.state = "done_late" if late else "done_on_time"
            plan.notices.append(
                PlannedNotice(submitted_at, "receipt", "receipt", receipt_roles(terms), late=late)
            )
            plan.closed_at = submitted_at
            return plan
        now = max(now, action.at)
        if action.kind == "close":
            plan.state = "not_done_overdue" if progress.overdue else "not_done"
            plan.closed_at = now
            if submitted_at is not None:
                plan.submission_refused = "the task had closed"
            return plan
        done.add(action.key)
        if action.kind == "overdue":
            progress = replace(progress, overdue=True, done=frozenset(done))
            continue
        notice = notice_for(terms, progress, action, now)
        progress = replace(progress, done=frozenset(done))
        if notice.skipped:
            plan.skipped.append(action)
            continue
        if notice.kind == "escalation":
            progress = replace(progress, escalation_level=action.step)
        plan.notices.append(
            PlannedNotice(
                now, notice.kind, action.key, notice.roles, step=action.step, offset=action.offset
            )
        )


# --------------------------------------------------------------------------------------------
# Obligations started by an event


def event_due_at(
    event_day: date, within: Offset, calendar: WorkingCalendar | None, zone: tzinfo
) -> datetime:
    """The written due instant of an obligation due `within` days (`15d`) or working days
    (`5wd`) after an event: its last day is the n-th day, or the n-th working day, after the
    event's day, and the due instant is the end of that day. "Within 5 days" of an event on
    Tuesday 01/12/2026 has Sunday 06/12 as its last day (due 07/12 00:00, before the deadline
    rule moves it); "within 5 working days" has Tuesday 08/12 (due 09/12 00:00). Without a
    calendar working days count as calendar days.

    The Agreement workflow calls this when an admin records the event; `accord plan --event`
    through `agreements.expansion.event_occurrences`."""
    if within.unit is OffsetUnit.WORKING_DAYS and calendar is not None:
        last = calendar.add_working_days(event_day, within.amount)
    else:
        last = event_day + timedelta(days=within.amount)
    return datetime.combine(last + timedelta(days=1), time.min, tzinfo=zone)
