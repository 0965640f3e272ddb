"""Computes a `ConsolidatedReport` from `ReportInputs`: pure, no I/O, no clock.

Every task of the agreement (or of one reporting period) gets one `ComplianceStatus`:

- a stored report: on time, or late by N working days (the agreement's working calendar,
  from the first late day to the day it arrived, both counted; calendar days when the
  agreement has none), judged as Accord judged it on receipt (`SubmissionFact.late`);
- else waived (the audit's reason), closed without a report (not done), overdue at its
  escalation level, within an approved extension (extended to a date), or not yet due.

Agencies come in the directory's order, then obligations in the plan's order, then periods by
their first deadline. Indicators are consolidated per obligation over the agencies that
reported them: counts and categories summed, ratios as summed done over summed total (never an
average of the agencies' ratios), texts listed; an agency that owes the obligation in the
report's scope and has not reported an indicator is listed in `missing`, never counted as
zero. A waived task owes nothing.

Issue 17: a suspended task without a report is SUSPENDED (neither due nor missing); a task an
amendment withdrew is WITHDRAWN: listed, counted under its own status, but left out of the
number of tasks (`ComplianceTotals.tasks`), of what was due and of every on-time rate, and
owes no indicator. A task a succession passed is the current owner's (`agency`), naming the
original (`original_agency`).
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from datetime import date, datetime
from zoneinfo import ZoneInfo

from activities.models import IndicatorValue, Ratio, TaskFact, TaskState
from agreements.calendar import CalendarRangeError, WorkingCalendar
from agreements.models import Indicator, IndicatorKind
from reports.model import (
    AgencyCompliance,
    AgencyValue,
    ComplianceStatus,
    ComplianceTotals,
    ConsolidatedIndicator,
    ConsolidatedReport,
    MissingReport,
    Narrative,
    ReportInputs,
    SubmissionFact,
    TaskCompliance,
)

DUE_STATUSES = (
    ComplianceStatus.ON_TIME,
    ComplianceStatus.LATE,
    ComplianceStatus.OVERDUE,
    ComplianceStatus.NOT_DONE,
)
"""Tasks that were due: the on-time rate's denominator."""
MISSING_STATUSES = (ComplianceStatus.OVERDUE, ComplianceStatus.NOT_DONE)
"""Past due without a report."""


class UnknownPeriod(ValueError):
    """The period asked for is not one of the agreement's (the message lists them)."""

    def __init__(self, period: str, valid: list[str]) -> None:
        listed = ", ".join(valid) if valid else "none"
        super().__init__(f"unknown period {period!r}; the agreement's periods: {listed}")
        self.period = period
        self.valid = valid


def consolidate(inputs: ReportInputs, *, period: str | None = None) -> ConsolidatedReport:
    """The report of `period` (a period label, e.g. `2025-h1`), or of the whole agreement."""
    facts = inputs.facts
    periods = period_labels(facts.tasks)
    if period is not None and period not in periods:
        raise UnknownPeriod(period, periods)
    zone = ZoneInfo(facts.time_zone)
    names = {agency.code: agency.name for agency in inputs.agencies}
    place = {agency.code: index for index, agency in enumerate(inputs.agencies)}
    obligation_place = {key: index for index, key in enumerate(facts.obligations)}
    period_place = {label: index for index, label in enumerate(periods)}

    def agency_key(code: str) -> tuple[int, str]:
        return (place.get(code, len(place)), code)

    scope = sorted(
        (t for t in facts.tasks if period is None or t.period_label == period),
        key=lambda t: (
            agency_key(t.agency),
            obligation_place.get(t.obligation_id, len(obligation_place)),
            period_place[t.period_label],
            t.task_id,
        ),
    )
    submissions = {s.task_id: s for s in inputs.submissions}
    waivers = {w.task_id: w for w in inputs.waivers}
    extended: dict[str, date] = {}
    for extension in sorted(inputs.extensions, key=lambda e: e.at):
        extended[extension.task_id] = extension.new_due

    tasks: list[TaskCompliance] = []
    for fact in scope:
        obligation = facts.obligations.get(fact.obligation_id)
        submission = submissions.get(fact.task_id)
        waiver = waivers.get(fact.task_id)
        status = _status(
            fact, submission, waiver is not None, fact.task_id in extended, facts.as_of
        )
        late_days = None
        if status is ComplianceStatus.LATE and submission is not None and fact.due_at:
            late_days = late_working_days(
                fact.due_at, submission.submitted_at, zone, facts.calendar
            )
        tasks.append(
            TaskCompliance(
                task_id=fact.task_id,
                obligation_id=fact.obligation_id,
                item_number=obligation.item_number if obligation else None,
                obligation_title=obligation.title if obligation else fact.obligation_id,
                period_label=fact.period_label,
                agency=fact.agency,
                agency_name=names.get(fact.agency, fact.agency),
                original_agency=fact.original_agency,
                original_agency_name=names.get(fact.original_agency, fact.original_agency)
                if fact.original_agency
                else None,
                co_owners=list(fact.co_owners),
                status=status,
                state=fact.state,
                due_at=fact.due_at,
                submitted_at=submission.submitted_at if submission else None,
                late_working_days=late_days,
                escalation_level=fact.escalation_level,
                waiver_reason=(waiver.reason or None)
                if waiver is not None and status is ComplianceStatus.WAIVED
                else None,
                extended_to=extended.get(fact.task_id),
            )
        )

    by_agency: dict[str, list[TaskCompliance]] = defaultdict(list)
    for task in tasks:
        by_agency[task.agency].append(task)
    agencies = [
        _agency_compliance(code, names.get(code, code), owned)
        for code, owned in sorted(by_agency.items(), key=lambda item: agency_key(item[0]))
    ]

    counts = _counts(tasks)
    due = sum(counts[s] for s in DUE_STATUSES)
    on_time = counts[ComplianceStatus.ON_TIME]
    levels = Counter(t.escalation_level for t in tasks if t.escalation_level >= 1)
    totals = ComplianceTotals(
        tasks=len(tasks) - counts[ComplianceStatus.WITHDRAWN],
        counts=counts,
        due=due,
        on_time=on_time,
        on_time_rate=on_time / due if due else None,
        escalations={level: levels[level] for level in sorted(levels)},
    )

    indicators: list[ConsolidatedIndicator] = []
    for obligation_id, obligation in facts.obligations.items():
        owed = [
            t
            for t in tasks
            if t.obligation_id == obligation_id
            and t.status not in (ComplianceStatus.WAIVED, ComplianceStatus.WITHDRAWN)
        ]
        for indicator in obligation.indicators:
            indicators.append(
                _indicator(obligation_id, obligation.title, indicator, owed, submissions, names)
            )

    missing = [
        MissingReport(
            task_id=t.task_id,
            agency=t.agency,
            agency_name=t.agency_name,
            obligation_title=t.obligation_title,
            period_label=t.period_label,
            due_at=t.due_at,
            status=t.status,
            escalation_level=t.escalation_level,
        )
        for t in tasks
        if t.status in MISSING_STATUSES
    ]
    narratives = [
        Narrative(
            agency=t.agency,
            agency_name=t.agency_name,
            task_id=t.task_id,
            obligation_title=t.obligation_title,
            period_label=t.period_label,
            submitted_at=submission.submitted_at,
            summary=submission.summary.strip(),
        )
        for t in tasks
        if (submission := submissions.get(t.task_id)) is not None and submission.summary.strip()
    ]
    return ConsolidatedReport(
        agreement_id=facts.agreement_id,
        tenant=facts.tenant,
        document_number=facts.document_number,
        title=facts.title,
        issuer=facts.issuer,
        province=inputs.province,
        period=period,
        periods=[period] if period is not None else periods,
        as_of=facts.as_of,
        time_zone=facts.time_zone,
        tasks=tasks,
        agencies=agencies,
        totals=totals,
        indicators=indicators,
        missing=missing,
        narratives=narratives,
    )


def period_labels(tasks: list[TaskFact]) -> list[str]:
    """The agreement's period labels, by their first deadline (undated ones last), then label."""
    first: dict[str, datetime | None] = {}
    for task in tasks:
        known = first.get(task.period_label)
        if task.period_label not in first or (
            task.due_at is not None and (known is None or task.due_at < known)
        ):
            first[task.period_label] = task.due_at
    return sorted(first, key=lambda label: (first[label] is None, first[label] or 0, label))


def late_working_days(
    due_at: datetime, submitted_at: datetime, zone: ZoneInfo, calendar: WorkingCalendar | None
) -> int:
    """How late a report was: the working days from the first late day (the due instant's
    local day) to the day it arrived, both counted, at least 1 (a report that arrived on a day
    off right after the deadline is late by one). Calendar days without a working calendar, or
    when the days fall outside its years."""
    first = due_at.astimezone(zone).date()
    last = submitted_at.astimezone(zone).date()
    if last < first:
        return 1
    days = (last - first).days + 1
    if calendar is not None:
        with contextlib.suppress(CalendarRangeError):
            days = calendar.count_working_days(first, last)
    return max(days, 1)


def _status(
    fact: TaskFact,
    submission: SubmissionFact | None,
    waived: bool,
    extended: bool,
    as_of: datetime,
) -> ComplianceStatus:
    if submission is not None:
        return ComplianceStatus.LATE if submission.late else ComplianceStatus.ON_TIME
    state = fact.state
    if state is TaskState.WITHDRAWN:
        return ComplianceStatus.WITHDRAWN
    if state is TaskState.DONE_ON_TIME:
        return ComplianceStatus.ON_TIME
    if state is TaskState.DONE_LATE:
        return ComplianceStatus.LATE
    if waived or state is TaskState.WAIVED:
        return ComplianceStatus.WAIVED
    if state in (TaskState.NOT_DONE, TaskState.NOT_DONE_OVERDUE):
        return ComplianceStatus.NOT_DONE
    if state is TaskState.OVERDUE:
        return ComplianceStatus.OVERDUE
    if state is TaskState.SUSPENDED:
        return ComplianceStatus.SUSPENDED
    # Pending, or not opened yet.
    if fact.due_at is not None and fact.due_at <= as_of:
        return ComplianceStatus.OVERDUE
    return ComplianceStatus.EXTENDED if extended else ComplianceStatus.NOT_YET_DUE


def _counts(tasks: list[TaskCompliance]) -> dict[ComplianceStatus, int]:
    counter = Counter(t.status for t in tasks)
    return {status: counter[status] for status in ComplianceStatus}


def _agency_compliance(code: str, name: str, tasks: list[TaskCompliance]) -> AgencyCompliance:
    counts = _counts(tasks)
    due = sum(counts[s] for s in DUE_STATUSES)
    return AgencyCompliance(
        agency=code,
        agency_name=name,
        counts=counts,
        due=due,
        on_time_rate=counts[ComplianceStatus.ON_TIME] / due if due else None,
        highest_escalation=max((t.escalation_level for t in tasks), default=0),
    )


def _as_ratio(value: IndicatorValue) -> Ratio | None:
    if isinstance(value, Ratio):
        return value
    if isinstance(value, dict) and set(value) == {"done", "total"}:
        return Ratio(done=value["done"], total=value["total"])
    return None


def _as_count(value: IndicatorValue) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_breakdown(value: IndicatorValue, categories: list[str]) -> dict[str, int] | None:
    if not isinstance(value, dict) or not all(
        isinstance(n, int) and not isinstance(n, bool) for n in value.values()
    ):
        return None
    return {category: int(value.get(category, 0)) for category in categories}


def _indicator(
    obligation_id: str,
    obligation_title: str,
    indicator: Indicator,
    owed: list[TaskCompliance],
    submissions: dict[str, SubmissionFact],
    names: dict[str, str],
) -> ConsolidatedIndicator:
    """One indicator over the tasks that owe it (several periods of an agency are summed, or
    listed for a text)."""
    kind = indicator.kind
    categories = list(indicator.categories or [])
    owing: list[str] = []
    values: dict[str, list[tuple[str, IndicatorValue]]] = defaultdict(list)
    for task in owed:
        if task.agency not in owing:
            owing.append(task.agency)
        submission = submissions.get(task.task_id)
        if submission is None or indicator.code not in submission.indicators:
            continue
        value = submission.indicators[indicator.code]
        usable = {
            IndicatorKind.COUNT: _as_count(value) is not None,
            IndicatorKind.RATIO: _as_ratio(value) is not None,
            IndicatorKind.BREAKDOWN: _as_breakdown(value, categories) is not None,
            IndicatorKind.TEXT: isinstance(value, str),
        }[kind]
        if usable:
            values[task.agency].append((task.period_label, value))

    per_agency: list[AgencyValue] = []
    for code in owing:
        reported = values.get(code)
        if not reported:
            continue
        combined: IndicatorValue
        if kind is IndicatorKind.COUNT:
            combined = sum(_as_count(v) or 0 for _, v in reported)
        elif kind is IndicatorKind.RATIO:
            ratios = [r for _, v in reported if (r := _as_ratio(v)) is not None]
            combined = Ratio(done=sum(r.done for r in ratios), total=sum(r.total for r in ratios))
        elif kind is IndicatorKind.BREAKDOWN:
            combined = {category: 0 for category in categories}
            for _, v in reported:
                for category, n in (_as_breakdown(v, categories) or {}).items():
                    combined[category] += n
        elif len(reported) == 1:
            combined = str(reported[0][1])
        else:
            combined = "\n".join(f"{label}: {v}" for label, v in reported)
        per_agency.append(
            AgencyValue(agency=code, agency_name=names.get(code, code), value=combined)
        )

    count = done = total = None
    ratio: float | None = None
    breakdown: dict[str, int] | None = None
    if per_agency and kind is IndicatorKind.COUNT:
        count = sum(_as_count(a.value) or 0 for a in per_agency)
    elif per_agency and kind is IndicatorKind.RATIO:
        ratios = [r for a in per_agency if (r := _as_ratio(a.value)) is not None]
        done, total = sum(r.done for r in ratios), sum(r.total for r in ratios)
        ratio = done / total if total else None
    elif per_agency and kind is IndicatorKind.BREAKDOWN:
        breakdown = {category: 0 for category in categories}
        for a in per_agency:
            for category, n in (_as_breakdown(a.value, categories) or {}).items():
                breakdown[category] += n
        count = sum(breakdown.values())
    return ConsolidatedIndicator(
        obligation_id=obligation_id,
        obligation_title=obligation_title,
        code=indicator.code,
        label=indicator.label,
        kind=kind,
        categories=categories or None,
        count=count,
        done=done,
        total=total,
        ratio=ratio,
        breakdown=breakdown,
        per_agency=per_agency,
        missing=[code for code in owing if not values.get(code)],
    )
