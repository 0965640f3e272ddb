"""From agreement + directory to the concrete task occurrences the engine tracks.

Pure and deterministic: the same files always give the same occurrences, in the same order,
with the same IDs. Recurring rules are expanded with APScheduler's `CronTrigger` in the
agreement's time zone (only its date arithmetic is used here; nothing is scheduled).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from agreements.calendar import (
    DEFAULT_OVERRIDES,
    WorkingCalendar,
    apply_deadline_rule,
    last_day_of,
    load_calendar,
    period_of_day,
    period_window,
)
from agreements.models import (
    Agreement,
    ContentItem,
    DeadlineRule,
    Deliverable,
    Directory,
    EscalationStep,
    EventDue,
    EveryDue,
    FixedDue,
    Indicator,
    NoDue,
    Obligation,
    Owners,
    QuarterlyDue,
    RecurringDue,
    RelativeDue,
    ReminderPolicy,
)
from agreements.planner import event_due_at
from agreements.recipients import owing


class TaskOccurrence(BaseModel):
    """One task: an agency owes a deliverable for a reporting period by a due instant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str = Field(description="'{agreement}/{obligation}/{agency}/{period}'.")
    agreement_id: str
    item_number: str | None
    obligation_id: str
    deliverable: Deliverable
    title: str
    agency: str
    co_owners: list[str] = Field(
        default_factory=list,
        description="A joint task (`owners.jointly`): the other owing agencies; `agency` leads.",
    )
    recipient: str | None
    copy_to: list[str] = Field(
        default_factory=list, description="Agencies that get the notices for information."
    )
    period_label: str
    due_at: AwareDatetime | None = Field(
        description="Due instant (first late moment), local, after the deadline rule."
    )
    written_due_at: AwareDatetime | None = Field(
        default=None, description="Due instant as the document writes it, before the rule."
    )
    deadline_rule: DeadlineRule = DeadlineRule.NEXT_WORKING_DAY
    due_note_vi: str | None = Field(default=None, description="Why the deadline moved.")
    due_note_en: str | None = None
    covers_from: date | None = Field(
        default=None, description="First day of the data the report covers (Decree 09/2019)."
    )
    covers_to: date | None = Field(default=None, description="Last day of the data covered.")
    reminders: ReminderPolicy
    escalation: list[EscalationStep]
    indicators: list[Indicator] = Field(default_factory=list)


_CALENDARS: dict[tuple[range, float], WorkingCalendar] = {}


def cached_calendar(years: range) -> WorkingCalendar:
    """The working calendar for `years`, rebuilt when the overrides file changes."""
    stamp = DEFAULT_OVERRIDES.stat().st_mtime if DEFAULT_OVERRIDES.exists() else 0.0
    key = (years, stamp)
    if key not in _CALENDARS:
        _CALENDARS[key] = load_calendar(years)
    return _CALENDARS[key]


def task_id(agreement_id: str, obligation_id: str, agency: str, period_label: str) -> str:
    return f"{agreement_id}/{obligation_id}/{agency}/{period_label}"


def resolve_owners(owners: Owners, directory: Directory) -> list[str]:
    """Agency codes an `Owners` block names, in directory order, without duplicates."""
    wanted = set(owners.agencies)
    for group in owners.groups:
        wanted.update(a.code for a in directory.members(group))
    wanted.difference_update(owners.excluding)
    return [a.code for a in directory.agencies if a.code in wanted]


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


def add_months(day: date, months: int) -> date:
    """Same day `months` later, clamped to the end of a shorter month (31 Jan + 1 → 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def cron_dates(
    rule: RecurringDue | QuarterlyDue, start: date, end: date, zone: ZoneInfo
) -> Iterator[datetime]:
    """Local midnights of the days the rule names between `start` and `end` inclusive."""
    first = max(start, rule.starting) if rule.starting else start
    last = min(end, rule.until) if rule.until else end
    if last < first:
        return
    month = ",".join(map(str, rule.months)) if isinstance(rule, QuarterlyDue) else str(rule.month)
    trigger = CronTrigger(
        month=month,
        day=str(rule.day),
        hour=0,
        minute=0,
        second=0,
        timezone=zone,
        start_date=local_midnight(first, zone),
        end_date=local_midnight(last, zone),
    )
    now = local_midnight(first, zone)
    previous: datetime | None = None
    while True:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            return
        yield fire
        previous = fire
        now = fire + timedelta(seconds=1)


def named_day_instant(
    day: date, zone: ZoneInfo, *, inclusive: bool = False, at: time | None = None
) -> datetime:
    """The due instant of a day a document names: `before` it (its 00:00), `by` it (inclusive:
    the next day's 00:00), or at a time of day on it ("trước 17 giờ ngày X": X 17:00)."""
    if at is not None:
        return datetime.combine(day, at, tzinfo=zone)
    if inclusive:
        return local_midnight(day + timedelta(days=1), zone)
    return local_midnight(day, zone)


def quarter_of(month: int) -> int:
    return (month - 1) // 3 + 1


def every_periods(due: EveryDue, start: date, end: date) -> Iterator[tuple[date, date]]:
    """(first day, first day of the next period) of each year, quarter or month that overlaps
    `start`..`end`."""
    months = {"year": 12, "quarter": 3, "month": 1}[due.period]
    first_month = (start.month - 1) // months * months + 1
    period_start = date(start.year, first_month, 1)
    while period_start <= end:
        yield period_start, add_months(period_start, months)
        period_start = add_months(period_start, months)


def due_instants(obligation: Obligation, agreement: Agreement) -> list[tuple[str, datetime | None]]:
    """(period label, due instant) pairs for one obligation. An obligation started by an event
    has none until the event is recorded (see `event_occurrences`)."""
    zone = agreement.zone
    due = obligation.due
    default_label = str(agreement.period.start.year)
    if isinstance(due, FixedDue):
        at = named_day_instant(due.day, zone, inclusive=due.by is not None, at=due.time)
        return [(due.label or str(due.day.year), at)]
    if isinstance(due, RelativeDue):
        day = add_months(agreement.period.start, due.years * 12 + due.months)
        day += timedelta(days=due.days)
        return [(due.label or str(day.year), local_midnight(day, zone))]
    if isinstance(due, RecurringDue | QuarterlyDue):
        return [
            (
                due.label.format(
                    year=named.year,
                    quarter=quarter_of(named.month),
                    month=named.month,
                    day=named.day,
                ),
                named_day_instant(named.date(), zone, inclusive=due.inclusive, at=due.time),
            )
            for named in cron_dates(due, agreement.period.start, agreement.period.end, zone)
        ]
    if isinstance(due, EveryDue):
        end = agreement.period.end
        return [
            (
                due.label_template.format(
                    year=first.year, quarter=quarter_of(first.month), month=first.month
                ),
                local_midnight(min(following, end + timedelta(days=1)), zone),
            )
            for first, following in every_periods(due, agreement.period.start, end)
        ]
    if isinstance(due, EventDue):
        return []
    assert isinstance(due, NoDue)
    return [(due.label or default_label, None)]


def effective_policy(
    obligation: Obligation, agreement: Agreement
) -> tuple[ReminderPolicy, list[EscalationStep]]:
    """Per-obligation overrides on top of the agreement's defaults. Undated tasks get neither."""
    if isinstance(obligation.due, NoDue):
        return ReminderPolicy(), []
    override = obligation.notifications
    reminders = (override.reminders if override else None) or agreement.defaults.reminders
    escalation = override.escalation if override and override.escalation is not None else None
    if escalation is None:
        escalation = agreement.defaults.escalation or []
    return reminders or ReminderPolicy(), list(escalation)


def _agency_active(directory: Directory, code: str, dated: bool, last_day: date) -> bool:
    """Whether the agency owes a task whose last day as written is `last_day`.

    An agency is judged by the task's last day as written (the day before a midnight due
    instant), before the deadline rule moves it: a move under Civil Code art. 148 gives more
    time, it never takes a task away nor hands one to a body that did not exist yet. An agency
    active until 30/06/2025 owes a report due "before 30/6" even though 29/6 is a Sunday and the
    due instant becomes 01/07/2025 00:00; an agency active from 30/06/2025 does not owe it. An
    undated task (`dated` false, `last_day` the agreement's start) is owed by every agency
    that has not ceased by the start, including those that begin later.
    """
    agency = directory.agency(code)
    if agency is None:
        return True
    if dated and agency.active_from is not None and last_day < agency.active_from:
        return False
    return agency.active_until is None or last_day <= agency.active_until


def calendar_years(agreement: Agreement) -> range:
    """Years a working calendar must cover for this agreement (one year of margin each side)."""
    return range(agreement.period.start.year - 1, agreement.period.end.year + 2)


def expand(
    agreement: Agreement, directory: Directory, calendar: WorkingCalendar | None = None
) -> list[TaskOccurrence]:
    """Every task occurrence of the agreement, ordered by due instant (undated last), then ID.

    Due instants go through the deadline rule (by default Civil Code art. 148: a last day on a
    weekend or holiday moves to the next working day) against the working calendar, which is
    built from the `holidays` package and the overrides file unless one is given."""
    if calendar is None:
        calendar = cached_calendar(calendar_years(agreement))
    occurrences: list[TaskOccurrence] = []
    for item, obligation in agreement.all_obligations():
        occurrences.extend(_expand_obligation(agreement, directory, item, obligation, calendar))
    far_future = datetime.max.replace(tzinfo=agreement.zone)
    occurrences.sort(key=lambda o: (o.due_at or far_future, o.task_id))
    return occurrences


def _expand_obligation(
    agreement: Agreement,
    directory: Directory,
    item: ContentItem | None,
    obligation: Obligation,
    calendar: WorkingCalendar,
) -> Iterator[TaskOccurrence]:
    yield from _occurrences(
        agreement, directory, item, obligation, calendar, due_instants(obligation, agreement)
    )


def event_obligations(
    agreement: Agreement, event: str
) -> list[tuple[ContentItem | None, Obligation]]:
    """The obligations an event starts."""
    return [
        (item, ob)
        for item, ob in agreement.all_obligations()
        if isinstance(ob.due, EventDue) and ob.due.event == event
    ]


def event_occurrences(
    agreement: Agreement,
    directory: Directory,
    event: str,
    day: date,
    label: str,
    calendar: WorkingCalendar | None = None,
) -> list[TaskOccurrence]:
    """The tasks an event recorded on `day` starts, one per owner agency of each obligation
    that waits for it, under the period label `label` (what `accord plan --event` previews;
    the Agreement workflow computes the same with `planner.event_due_at`)."""
    if calendar is None:
        calendar = cached_calendar(calendar_years(agreement))
    found: list[TaskOccurrence] = []
    for item, obligation in event_obligations(agreement, event):
        assert isinstance(obligation.due, EventDue)
        written = event_due_at(day, obligation.due.within, calendar, agreement.zone)
        found.extend(
            _occurrences(agreement, directory, item, obligation, calendar, [(label, written)])
        )
    return found


def _occurrences(
    agreement: Agreement,
    directory: Directory,
    item: ContentItem | None,
    obligation: Obligation,
    calendar: WorkingCalendar,
    instants: list[tuple[str, datetime | None]],
) -> Iterator[TaskOccurrence]:
    reminders, escalation = effective_policy(obligation, agreement)
    agencies = resolve_owners(obligation.owners, directory)
    rule = obligation.deadline_rule or agreement.deadline_rule
    for label, written in instants:
        due_at, note_vi, note_en = written, None, None
        covers: tuple[date, date] | tuple[None, None] = (None, None)
        if written is not None and obligation.reporting_period is not None:
            preset = obligation.reporting_period
            covers = period_window(preset, *period_of_day(preset, last_day_of(written)))
        if written is not None:
            adjusted = apply_deadline_rule(written, rule, calendar, agreement.zone)
            due_at, note_vi, note_en = (
                adjusted.adjusted,
                adjusted.explanation_vi,
                adjusted.explanation_en,
            )
        # Undated tasks belong to the agreement's start; dated ones to their written last day.
        last_day = (
            last_day_of(written, agreement.zone) if written is not None else agreement.period.start
        )
        dated = written is not None
        active = [a for a in agencies if _agency_active(directory, a, dated, last_day)]
        for segment, agency, co_owners in owing(active, jointly=obligation.owners.jointly):
            yield TaskOccurrence(
                task_id=task_id(agreement.agreement_id, obligation.id, segment, label),
                agreement_id=agreement.agreement_id,
                item_number=item.number if item else None,
                obligation_id=obligation.id,
                deliverable=obligation.deliverable,
                title=obligation.title,
                agency=agency,
                co_owners=co_owners,
                recipient=obligation.recipient,
                copy_to=list(obligation.copy_to),
                period_label=label,
                due_at=due_at,
                written_due_at=written,
                deadline_rule=rule,
                due_note_vi=note_vi,
                due_note_en=note_en,
                covers_from=covers[0],
                covers_to=covers[1],
                reminders=reminders,
                escalation=escalation,
                indicators=list(obligation.indicators),
            )
