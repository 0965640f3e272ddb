"""Load agreement and directory YAML files, reporting every mistake at once.

Each problem is reported as `FILE:LINE:COL: field.path: message`, pointing at the YAML node
that is wrong (or, for a missing field, at the mapping that lacks it). The loader either
returns complete, validated models or raises `LoadError`; it never returns a partial result.

The top of the agreements package: it reads files with `yaml_files`, checks the rules that
span an agreement and its directory, and expands with `expansion` (which uses the calendar).
Nothing in the package imports the loader back; it does no I/O beyond reading the files named.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from pathlib import Path, PureWindowsPath

import yaml
from apscheduler.triggers.cron import CronTrigger

from agreements.calendar import format_day
from agreements.expansion import (
    TaskOccurrence,
    cached_calendar,
    calendar_years,
    due_instants,
    effective_policy,
    expand,
    resolve_owners,
)
from agreements.models import (
    Agreement,
    Directory,
    EscalationStep,
    EventDue,
    EveryDue,
    FixedDue,
    LeadershipOf,
    NoDue,
    NotifyTarget,
    Obligation,
    OfficerRole,
    Offset,
    OffsetUnit,
    Owners,
    QuarterlyDue,
    RecipientRole,
    RecurringDue,
)
from agreements.planner import TaskTerms, deadline, escalation_instants
from agreements.yaml_files import (
    LoadError,
    Loc,
    Problem,
    YamlDoc,
    closest_name,
    format_loc,
    parse_yaml,
    read_text,
    validate_model,
)

__all__ = [
    "SUPPORTED_YEARS",
    "LoadError",
    "LoadedAgreement",
    "Problem",
    "agreement_files",
    "agreement_warnings",
    "check_agreement",
    "check_directory",
    "load_agreement",
    "load_directory",
    "looks_like_directory",
    "looks_like_succession",
    "parse_agreement",
    "warning_line",
]


@dataclass(frozen=True)
class LoadedAgreement:
    path: Path
    agreement: Agreement
    directory: Directory
    occurrences: list[TaskOccurrence]
    warnings: list[Problem] = field(default_factory=list)
    """What loads but will not work as written: a role some owing agency has nobody in, a
    period whose owners have all ceased (see `agreement_warnings`). Print with `warning_line`."""


# --------------------------------------------------------------------------------------------
# Public API


def load_directory(path: Path) -> Directory:
    problems: list[Problem] = []
    directory = _load_directory(path, problems)
    if directory is None or problems:
        raise LoadError(problems)
    return directory


def load_agreement(path: Path) -> LoadedAgreement:
    """Load and fully validate an agreement and its directory. Raises `LoadError`."""
    path = Path(path)
    text, problem = read_text(path)
    if problem:
        raise LoadError([problem])
    assert text is not None
    doc = parse_yaml(text, str(path))
    agreement = validate_model(doc, Agreement)
    problems = list(doc.problems)
    if agreement is None:
        raise LoadError(problems)
    directory_path, outside = _directory_path(path, agreement.directory)
    if outside:
        problems.append(doc.problem(("directory",), outside))
        raise LoadError(problems)
    try:
        found = directory_path.is_file()
    except (OSError, ValueError):  # e.g. a name longer than the file system allows
        found = False
    if not found:
        problems.append(
            doc.problem(("directory",), f"directory file not found: {agreement.directory!r}")
        )
        raise LoadError(problems)
    directory = _load_directory(directory_path, problems)
    if directory is None:
        raise LoadError(problems)
    problems.extend(check_agreement(agreement, directory, doc))
    if problems:
        raise LoadError(problems)
    occurrences = expand(agreement, directory)
    warnings = agreement_warnings(agreement, directory, doc, occurrences)
    return LoadedAgreement(path, agreement, directory, occurrences, warnings)


def parse_agreement(text: str, file: str, directory: Directory) -> Agreement:
    """Validate agreement text against a given directory (used by tests and fuzzing)."""
    doc = parse_yaml(text, file)
    agreement = validate_model(doc, Agreement)
    problems = list(doc.problems)
    if agreement is not None:
        problems.extend(check_agreement(agreement, directory, doc))
    if problems or agreement is None:
        raise LoadError(problems)
    return agreement


def _directory_path(agreement_path: Path, written: str) -> tuple[Path, str | None]:
    """Where an agreement's `directory:` points, and why it may not be read (else None).

    The directory must lie in the agreement's own folder or below it, after following symbolic
    links: a file that names `../../etc/passwd`, an absolute path, or a link to a file outside
    would otherwise make Accord read (and `validate` quote) any file the service can read."""
    folder = agreement_path.parent
    if Path(written).is_absolute() or PureWindowsPath(written).is_absolute():
        return folder, (
            f"directory must be a path relative to the agreement's folder, not {written!r}"
        )
    try:
        resolved = (folder / written).resolve()
        inside = resolved.is_relative_to(folder.resolve())
    except (OSError, ValueError, RuntimeError):  # RuntimeError: a symbolic link loop
        return folder / written, None  # reported as not found
    if not inside:
        return resolved, (
            f"directory file {written!r} is outside the agreement's folder "
            f"{str(folder) or '.'}; keep the directory in that folder or below it "
            "(e.g. directory/ten-tinh.yaml)"
        )
    return resolved, None


def _load_directory(path: Path, problems: list[Problem]) -> Directory | None:
    text, problem = read_text(path)
    if problem:
        problems.append(problem)
        return None
    assert text is not None
    doc = parse_yaml(text, str(path))
    directory = validate_model(doc, Directory)
    problems.extend(doc.problems)
    if directory is None:
        return None
    found = check_directory(directory, doc)
    problems.extend(found)
    return None if found else directory


# --------------------------------------------------------------------------------------------
# Cross-reference rules


_PLURALS = {"agency": "agencies"}


def _unknown(kind: str, value: str, known: Iterable[str]) -> str:
    known_sorted = sorted(set(known))
    close = closest_name(value, known_sorted)
    hint = f" (did you mean {close!r}?)" if close else ""
    plural = _PLURALS.get(kind, f"{kind}s")
    return f"unknown {kind} {value!r}{hint}; known {plural}: {', '.join(known_sorted)}"


def check_directory(directory: Directory, doc: YamlDoc) -> list[Problem]:
    problems: list[Problem] = []
    codes = [a.code for a in directory.agencies]
    seen: set[str] = set()
    for i, agency in enumerate(directory.agencies):
        if agency.code in seen:
            problems.append(
                doc.problem(("agencies", i, "code"), f"duplicate agency code {agency.code!r}")
            )
        seen.add(agency.code)
        for attr in ("parent", "successor"):
            ref = getattr(agency, attr)
            if ref is not None and ref not in codes:
                problems.append(doc.problem(("agencies", i, attr), _unknown("agency", ref, codes)))
    officer_ids: set[str] = set()
    emails: set[str] = set()
    for i, officer in enumerate(directory.officers):
        if officer.id in officer_ids:
            problems.append(doc.problem(("officers", i, "id"), f"duplicate officer {officer.id!r}"))
        officer_ids.add(officer.id)
        if officer.email.lower() in emails:
            problems.append(
                doc.problem(("officers", i, "email"), f"duplicate e-mail {officer.email!r}")
            )
        emails.add(officer.email.lower())
        if officer.agency not in codes:
            problems.append(
                doc.problem(("officers", i, "agency"), _unknown("agency", officer.agency, codes))
            )
    return problems


def check_agreement(agreement: Agreement, directory: Directory, doc: YamlDoc) -> list[Problem]:
    """Rules that span fields and files: references, uniqueness, dates, ladders, roles."""
    problems: list[Problem] = []
    codes = [a.code for a in directory.agencies]
    groups = directory.groups

    def check_owners(owners: Owners | None, loc: Loc) -> None:
        if owners is None:
            return
        for attr in ("agencies", "excluding"):
            for j, code in enumerate(getattr(owners, attr)):
                if code not in codes:
                    problems.append(doc.problem((*loc, attr, j), _unknown("agency", code, codes)))
        for j, group in enumerate(owners.groups):
            if group not in groups:
                problems.append(doc.problem((*loc, "groups", j), _unknown("group", group, groups)))

    for i, party in enumerate(agreement.parties):
        if party.agency not in codes:
            problems.append(
                doc.problem(("parties", i, "agency"), _unknown("agency", party.agency, codes))
            )

    numbers: dict[str, int] = {}
    for i, item in enumerate(agreement.items):
        if item.number in numbers:
            problems.append(
                doc.problem(
                    ("items", i, "number"),
                    f"duplicate item number {item.number!r} (also items[{numbers[item.number]}])",
                )
            )
        else:
            numbers[item.number] = i
        check_owners(item.lead, ("items", i, "lead"))
        check_owners(item.coordinating, ("items", i, "coordinating"))

    problems.extend(_check_ladder(agreement.defaults.escalation, ("defaults", "escalation"), doc))
    period_problems = _check_period(agreement, doc)
    problems.extend(period_problems)

    obligation_ids: dict[str, str] = {}
    for loc, obligation in _obligations_with_loc(agreement):
        where = format_loc(loc)
        if obligation.id in obligation_ids:
            problems.append(
                doc.problem(
                    (*loc, "id"),
                    f"duplicate obligation id {obligation.id!r} "
                    f"(also {obligation_ids[obligation.id]})",
                )
            )
        else:
            obligation_ids[obligation.id] = where
        check_owners(obligation.owners, (*loc, "owners"))
        if obligation.recipient is not None and obligation.recipient not in codes:
            problems.append(
                doc.problem((*loc, "recipient"), _unknown("agency", obligation.recipient, codes))
            )
        for j, code in enumerate(obligation.copy_to):
            if code not in codes:
                problems.append(doc.problem((*loc, "copy_to", j), _unknown("agency", code, codes)))
            elif not any(
                o.agency == code and OfficerRole.FOCAL_POINT in o.roles for o in directory.officers
            ):
                problems.append(
                    doc.problem(
                        (*loc, "copy_to", j),
                        f"the copy to {code} reaches nobody: no officer of {code} has role "
                        "'focal_point'",
                    )
                )
        if obligation.notifications is not None:
            problems.extend(
                _check_ladder(
                    obligation.notifications.escalation, (*loc, "notifications", "escalation"), doc
                )
            )
        if not period_problems:  # date arithmetic near year 1 or 9999 overflows
            problems.extend(_check_due(agreement, obligation, loc, doc))
        problems.extend(_check_roles(agreement, directory, obligation, loc, doc, codes))
    if not problems:
        problems.extend(_check_ladder_dates(agreement, doc))
    if not problems:
        problems.extend(_check_unique_tasks(agreement, doc))
    return problems


def _obligations_with_loc(agreement: Agreement) -> Iterable[tuple[Loc, Obligation]]:
    for i, item in enumerate(agreement.items):
        for j, obligation in enumerate(item.obligations):
            yield ("items", i, "obligations", j), obligation
    for j, obligation in enumerate(agreement.reporting):
        yield ("reporting", j), obligation


def _unit_kind(offset: Offset) -> str:
    """'d', 'wd', or 'time' for offsets in hours, minutes and seconds (sent as computed)."""
    if offset.unit in (OffsetUnit.DAYS, OffsetUnit.WORKING_DAYS):
        return offset.unit.value
    return "time"


def _never_after(earlier: Offset, later: Offset) -> bool:
    """Whether `later` can come after `earlier` on no due date at all.

    Same kind: by length (`5d` after `5d` or `3d` never comes). A `d` step after a `wd` one of
    no more days never does (n working days are at least n days); nor a step in hours that is
    no longer than the days before it (day steps also wait for the sending window). Other
    mixes depend on the calendar and are checked on the agreement's due dates."""
    earlier_kind, later_kind = _unit_kind(earlier), _unit_kind(later)
    if earlier_kind == later_kind:
        return later.seconds <= earlier.seconds
    if later_kind == "d" and earlier_kind == "wd":
        return later.amount <= earlier.amount
    if later_kind == "time":
        return later.seconds <= earlier.amount * 86_400
    return False


def _check_ladder(steps: list[EscalationStep] | None, loc: Loc, doc: YamlDoc) -> list[Problem]:
    problems: list[Problem] = []
    for k in range(1, len(steps or [])):
        assert steps is not None
        if _never_after(steps[k - 1].after, steps[k].after):
            problems.append(
                doc.problem(
                    (*loc, k, "after"),
                    f"escalation steps must be in increasing order: {steps[k].after} "
                    f"does not come after {steps[k - 1].after}",
                )
            )
    return problems


def _when(instant: datetime, other: datetime) -> str:
    """dd/mm/yyyy, with the time when `other` is on the same day."""
    if instant.date() == other.date():
        return f"{format_day(instant.date())} {instant:%H:%M}"
    return format_day(instant.date())


def _check_ladder_dates(agreement: Agreement, doc: YamlDoc) -> list[Problem]:
    """Ladders mixing d, wd and hours, checked on the due dates the agreement expands to.

    Whether `4d` comes after `3wd` depends on the weekday (not after a Friday due date), and
    `4wd` after `5d` on the weekend in between: a ladder is refused when, on one of the
    agreement's actual due dates (after the deadline rule), a step's computed sending instant
    falls before the one above it. Steps falling in the same sending window are fine: they go
    out together, in ladder order. One problem per step, naming the first due date it fails on.
    """
    calendar = cached_calendar(calendar_years(agreement))
    problems: list[Problem] = []
    reported: set[Loc] = set()
    for loc, obligation in _obligations_with_loc(agreement):
        reminders, ladder = effective_policy(obligation, agreement)
        mixed = [
            k
            for k in range(1, len(ladder))
            if _unit_kind(ladder[k].after) != _unit_kind(ladder[k - 1].after)
        ]
        if not mixed:
            continue
        own = obligation.notifications is not None and obligation.notifications.escalation
        ladder_loc: Loc = (
            (*loc, "notifications", "escalation") if own else ("defaults", "escalation")
        )
        rule = obligation.deadline_rule or agreement.deadline_rule
        for label, written in due_instants(obligation, agreement):
            if written is None:
                continue
            due = deadline(written, rule, calendar).due_at
            terms = TaskTerms(
                reminders=reminders,
                escalation=ladder,
                closes_at=due,
                time_zone=agreement.time_zone,
                sending_time=agreement.sending_time,
                deadline_rule=rule,
            )
            instants = escalation_instants(terms, calendar, due)
            for k in mixed:
                step_loc: Loc = (*ladder_loc, k, "after")
                if step_loc in reported or instants[k] >= instants[k - 1]:
                    continue
                reported.add(step_loc)
                due_text = (
                    f"before {format_day(due.date())}"
                    if due.time() == time.min
                    else f"{format_day(due.date())} {due:%H:%M}"
                )
                problems.append(
                    doc.problem(
                        step_loc,
                        f"escalation step {k + 1} ({ladder[k].after}) falls on "
                        f"{_when(instants[k], instants[k - 1])}, before step {k} "
                        f"({ladder[k - 1].after}) on {_when(instants[k - 1], instants[k])} "
                        f"for obligation {obligation.id!r}, period {label}, due {due_text}: "
                        "put the steps in the order they fall, or use one unit",
                    )
                )
    return problems


# The working calendar covers 2000–2100; a period needs a year of margin on each side.
SUPPORTED_YEARS = range(2001, 2100)
"""Years a period may touch: catches typos such as 2205, and keeps date arithmetic in range."""


def _check_period(agreement: Agreement, doc: YamlDoc) -> list[Problem]:
    problems: list[Problem] = []
    for attr in ("start", "end"):
        day: date = getattr(agreement.period, attr)
        if day.year not in SUPPORTED_YEARS:
            problems.append(
                doc.problem(
                    ("period", attr),
                    f"year {day.year} is outside the supported years "
                    f"{SUPPORTED_YEARS.start}..{SUPPORTED_YEARS.stop - 1}",
                )
            )
    return problems


def _check_due(
    agreement: Agreement, obligation: Obligation, loc: Loc, doc: YamlDoc
) -> list[Problem]:
    due = obligation.due
    period = agreement.period
    # A due instant is the first late moment, so 'before: <day after the end>' is still inside.
    latest = date.fromordinal(period.end.toordinal() + 1)
    if isinstance(due, NoDue | EveryDue | EventDue):
        return []
    if isinstance(due, FixedDue):
        # `by` and a time of day name the last day itself, which must be inside the period.
        field = "before" if due.before is not None else "by"
        last_allowed = latest if field == "before" and due.time is None else period.end
        if not period.start <= due.day <= last_allowed:
            return [
                doc.problem(
                    (*loc, "due", field),
                    f"due date {due.day} is outside the agreement's period "
                    f"{period.start}..{period.end}",
                )
            ]
        return []
    if isinstance(due, RecurringDue | QuarterlyDue):
        for attr in ("starting", "until"):
            day = getattr(due, attr)
            if day is not None and not period.start <= day <= latest:
                return [
                    doc.problem(
                        (*loc, "due", attr),
                        f"{day} is outside the agreement's period {period.start}..{period.end}",
                    )
                ]
        if isinstance(due, RecurringDue):  # a quarterly rule's fields are checked by its model
            cron_problems = [
                doc.problem((*loc, "due", attr), message)
                for attr, message in _cron_field_problems(due)
            ]
            if cron_problems:
                return cron_problems
        try:
            instants = due_instants(obligation, agreement)
        except ValueError as exc:
            return [doc.problem((*loc, "due"), f"invalid recurring rule: {exc}")]
        if not instants:
            return [
                doc.problem(
                    (*loc, "due"),
                    f"the rule gives no due date inside the period {period.start}..{period.end}"
                    + (_why_no_date(due, agreement) if isinstance(due, RecurringDue) else ""),
                )
            ]
        return []
    ((_label, instant),) = due_instants(obligation, agreement)
    assert instant is not None
    if not period.start <= instant.date() <= latest:
        return [
            doc.problem(
                (*loc, "due"),
                f"due date {instant.date()} is outside the agreement's period "
                f"{period.start}..{period.end}",
            )
        ]
    return []


_CRON_FIELDS = {
    "month": ("month", 1, 12, "5 or '5,11'"),
    "day": ("day of the month", 1, 31, "15, '5,20' or 'last'"),
}
_CRON_RANGE = re.compile(
    r"the (?:first|last) value \((\d+)\) is (?:higher|lower) than the (?:maximum|minimum) value"
)


def _cron_field_problems(due: RecurringDue) -> list[tuple[str, str]]:
    """What is wrong with a recurring rule's `month` and `day`, in the agreement's words rather
    than the cron library's ("Error validating expression '13': the last value (13) is higher
    than the maximum value (12)" becomes "month 13 does not exist: a month is 1–12")."""
    problems: list[tuple[str, str]] = []
    for attr, (name, low, high, example) in _CRON_FIELDS.items():
        value = getattr(due, attr)
        try:
            CronTrigger(**{attr: str(value)})
        except ValueError as exc:
            shown = repr(value) if isinstance(value, str) else str(value)
            out_of_range = _CRON_RANGE.search(str(exc))
            if out_of_range:
                what = f"{name} {out_of_range.group(1)} does not exist"
            else:
                what = f"{shown} is not a {name}"
            problems.append(
                (
                    attr,
                    f"{what}: a {name} is {low}–{high}; write one number, a list or a range, "
                    f"e.g. {example}",
                )
            )
    return problems


_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def _cron_numbers(value: int | str, high: int) -> list[int] | None:
    """The numbers a plain cron field (`6`, `'5,11'`, `'3-5'`) stands for; None for anything
    fancier (`*`, steps, `last`), whose dates this explanation does not try to work out."""
    numbers: list[int] = []
    for part in str(value).split(","):
        bounds = part.strip().split("-")
        if not all(b.strip().isdigit() for b in bounds) or len(bounds) > 2:
            return None
        first, last = int(bounds[0]), int(bounds[-1])
        numbers.extend(range(first, min(last, high) + 1))
    return numbers


def _why_no_date(due: RecurringDue, agreement: Agreement) -> str:
    """Why a valid recurring rule produced no date: the day does not exist in its months (31/6,
    30/2), 29/2 in years that are not leap years, or dates outside `starting`..`until`."""
    months = _cron_numbers(due.month, 12)
    days = _cron_numbers(due.day, 31)
    if not months or not days:
        return ""
    period = agreement.period
    years = range(period.start.year, period.end.year + 1)
    leap_years = [y for y in years if calendar.isleap(y)]
    exists = [
        (m, d) for m in months for d in days if d <= calendar.monthrange(2000, m)[1]
    ]  # 2000 is a leap year: every day that exists in some year
    written = [f"{d}/{m}" for m in months for d in days]
    if not exists or (not leap_years and set(exists) == {(2, 29)}):
        reasons = [
            f"{d}/{m} does not exist ({_MONTH_NAMES[m - 1]} has "
            f"{'at most ' if m == 2 else ''}{calendar.monthrange(2000, m)[1]} days)"
            for m in months
            for d in days
            if (m, d) not in exists
        ]
        if exists:
            reasons.append(
                f"29/2 exists only in leap years, and {period.start.year}..{period.end.year} "
                "has none"
            )
        return ": " + "; ".join(reasons)
    window = [d for d in (due.starting, due.until) if d is not None]
    if window:
        return (
            f": {', '.join(written)} never falls between "
            f"{due.starting or period.start} and {due.until or period.end}"
        )
    return ""


_ROLE_HOLDERS = {
    RecipientRole.FOCAL_POINT: OfficerRole.FOCAL_POINT,
    RecipientRole.HEAD_OF_AGENCY: OfficerRole.HEAD,
    RecipientRole.AGGREGATOR: OfficerRole.FOCAL_POINT,
    RecipientRole.PROVINCIAL_LEADERSHIP: OfficerRole.PROVINCIAL_LEADERSHIP,
}


def _roles_used(
    agreement: Agreement, obligation: Obligation, loc: Loc
) -> list[tuple[NotifyTarget, Loc]]:
    """The roles an obligation's reminders and escalation steps notify, each with the place in
    the file that names it (the obligation's override or the agreement's defaults)."""
    reminders, escalation = effective_policy(obligation, agreement)
    used: list[tuple[NotifyTarget, Loc]] = []
    override = obligation.notifications
    reminder_loc: Loc = (
        (*loc, "notifications", "reminders", "notify")
        if override and override.reminders
        else ("defaults", "reminders", "notify")
    )
    escalation_loc: Loc = (
        (*loc, "notifications", "escalation")
        if override and override.escalation is not None
        else ("defaults", "escalation")
    )
    if reminders.before:
        used.extend((role, (*reminder_loc, k)) for k, role in enumerate(reminders.notify))
    for s, step in enumerate(escalation):
        used.extend((role, (*escalation_loc, s, "notify", k)) for k, role in enumerate(step.notify))
    return used


def _check_roles(
    agreement: Agreement,
    directory: Directory,
    obligation: Obligation,
    loc: Loc,
    doc: YamlDoc,
    codes: list[str],
) -> list[Problem]:
    used = _roles_used(agreement, obligation, loc)
    problems: list[Problem] = []
    for target, role_loc in used:
        if isinstance(target, LeadershipOf):
            problems.extend(_check_leadership_of(directory, target, obligation, role_loc, doc))
            continue
        role = target
        if role is RecipientRole.COPY:
            if not obligation.copy_to:
                problems.append(
                    doc.problem(
                        role_loc,
                        f"obligation {obligation.id!r} notifies 'copy' but has no copy_to",
                    )
                )
            continue
        holder = _ROLE_HOLDERS[role]
        if role is RecipientRole.AGGREGATOR:
            if obligation.recipient is not None and obligation.recipient not in codes:
                continue  # reported once, at the recipient; its notify lines are right
            if obligation.recipient is None:
                problems.append(
                    doc.problem(
                        (*loc, "recipient"),
                        f"obligation {obligation.id!r} notifies the aggregator "
                        f"(at {format_loc(role_loc)}) but names no recipient agency",
                    )
                )
                continue
            holders = [
                o
                for o in directory.officers
                if o.agency == obligation.recipient and holder in o.roles
            ]
        else:
            holders = [o for o in directory.officers if holder in o.roles]
        if not holders:
            problems.append(
                doc.problem(
                    role_loc,
                    f"recipient role {role.value!r} (used by obligation {obligation.id!r}) is "
                    f"held by nobody in the directory: no officer has role {holder.value!r}"
                    + (f" in {obligation.recipient}" if role is RecipientRole.AGGREGATOR else ""),
                )
            )
    return sorted(set(problems))


def _check_leadership_of(
    directory: Directory, target: LeadershipOf, obligation: Obligation, loc: Loc, doc: YamlDoc
) -> list[Problem]:
    """`{leadership_of: CODE}` names a known agency with a leader (head or leadership role)."""
    codes = [a.code for a in directory.agencies]
    if target.leadership_of not in codes:
        return [
            doc.problem((*loc, "leadership_of"), _unknown("agency", target.leadership_of, codes))
        ]
    leaders = (OfficerRole.PROVINCIAL_LEADERSHIP, OfficerRole.HEAD)
    if any(
        o.agency == target.leadership_of and any(r in o.roles for r in leaders)
        for o in directory.officers
    ):
        return []
    return [
        doc.problem(
            (*loc, "leadership_of"),
            f"leadership of {target.leadership_of} (used by obligation {obligation.id!r}) is held "
            f"by nobody in the directory: no officer of {target.leadership_of} has role "
            "'provincial_leadership' or 'head'",
        )
    ]


def _check_unique_tasks(agreement: Agreement, doc: YamlDoc) -> list[Problem]:
    """Task IDs differ by obligation and agency, so two tasks share one only when an
    obligation's label template renders two of its due dates alike: report that once."""
    problems: list[Problem] = []
    for loc, obligation in _obligations_with_loc(agreement):
        first: dict[str, datetime | None] = {}
        reported: set[str] = set()
        for label, at in due_instants(obligation, agreement):
            if label not in first:
                first[label] = at
                continue
            if label in reported:
                continue
            reported.add(label)
            dates = " and ".join(
                f"before {instant.date()}" for instant in (first[label], at) if instant is not None
            )
            problems.append(
                doc.problem(
                    (*loc, "due", "label"),
                    f"two due dates ({dates}) get the same period label {label!r}, so their "
                    "tasks would have the same ID; make the label differ for each due date of "
                    "a year, e.g. '{year}-t{month}' for monthly dates or '{year}-q{quarter}' "
                    "for quarterly ones",
                )
            )
    return problems


# --------------------------------------------------------------------------------------------
# Warnings: the agreement loads, but part of it will not work as written


def warning_line(problem: Problem) -> str:
    """A warning as one line: `FILE:LINE:COL: warning: field.path: message`."""
    path = f"warning: {problem.path}" if problem.path else "warning"
    return str(replace(problem, path=path))


def agreement_warnings(
    agreement: Agreement,
    directory: Directory,
    doc: YamlDoc,
    occurrences: Sequence[TaskOccurrence],
) -> list[Problem]:
    """What a valid agreement does not do as written: notices that reach nobody in an owing
    agency, and periods in which an obligation's owners have all ceased."""
    warnings = _roles_nobody_holds(agreement, directory, doc, occurrences)
    warnings += _periods_without_owner(agreement, directory, doc, occurrences)
    return sorted(set(warnings))


_AGENCY_ROLES = (RecipientRole.FOCAL_POINT, RecipientRole.HEAD_OF_AGENCY)
"""The roles held in the owing agency itself; the others (aggregator, provincial leadership)
are checked across the directory by `_check_roles`, as errors."""


def _roles_nobody_holds(
    agreement: Agreement,
    directory: Directory,
    doc: YamlDoc,
    occurrences: Sequence[TaskOccurrence],
) -> list[Problem]:
    held = {(o.agency, role) for o in directory.officers for role in o.roles}
    owing: dict[str, dict[str, None]] = {}
    for occurrence in occurrences:
        for code in (occurrence.agency, *occurrence.co_owners):  # a joint task: every owner
            owing.setdefault(occurrence.obligation_id, {})[code] = None
    missing: dict[tuple[Loc, RecipientRole, str], list[str]] = {}
    for loc, obligation in _obligations_with_loc(agreement):
        for role, role_loc in _roles_used(agreement, obligation, loc):
            if not isinstance(role, RecipientRole) or role not in _AGENCY_ROLES:
                continue
            for owing_code in owing.get(obligation.id, {}):
                if (owing_code, _ROLE_HOLDERS[role]) not in held:
                    missing.setdefault((role_loc, role, owing_code), []).append(obligation.id)
    warnings: list[Problem] = []
    for (role_loc, role, code), obligation_ids in missing.items():
        agency = directory.agency(code)
        name = f" ({agency.name})" if agency else ""
        warnings.append(
            doc.problem(
                role_loc,
                f"role {role.value!r} reaches nobody in {code}{name}: no officer of {code} has "
                f"role {_ROLE_HOLDERS[role].value!r}, so this notice of "
                f"{', '.join(repr(i) for i in dict.fromkeys(obligation_ids))} will reach "
                "nobody there (the admins are told when it is due); add such an officer to "
                "the directory",
            )
        )
    return warnings


def _periods_without_owner(
    agreement: Agreement,
    directory: Directory,
    doc: YamlDoc,
    occurrences: Sequence[TaskOccurrence],
) -> list[Problem]:
    issued = {(o.obligation_id, o.period_label) for o in occurrences}
    warnings: list[Problem] = []
    for loc, obligation in _obligations_with_loc(agreement):
        owners = [directory.agency(code) for code in resolve_owners(obligation.owners, directory)]
        for label, written in due_instants(obligation, agreement):
            if (obligation.id, label) in issued:
                continue
            day = written.date() if written is not None else agreement.period.start
            ceased = [
                a for a in owners if a is not None and a.active_until and a.active_until < day
            ]
            if ceased:
                detail = "; ".join(
                    f"{a.code} ({a.name}) ceased on {a.active_until} (active_until)"
                    + (f", its duties passed to {a.successor}" if a.successor else "")
                    for a in ceased
                )
                fix = "name the agencies that took over in `owners`"
            elif not owners:
                detail = "its owners name no agency (every member is in `excluding`)"
                fix = "check `owners`"
            else:
                detail = f"none of {', '.join(a.code for a in owners if a)} is active then"
                fix = "check `owners` and the agencies' dates in the directory"
            due = f"due {day}" if written is not None else "undated"
            warnings.append(
                doc.problem(
                    (*loc, "owners"),
                    f"obligation {obligation.id!r} has no active owner for period {label} "
                    f"({due}), so no task is issued for it: {detail}; {fix}",
                )
            )
    return warnings


# --------------------------------------------------------------------------------------------
# Finding agreement files


def agreement_files(folder: Path) -> list[Path]:
    """The agreement files in a folder and its subfolders, in a stable order."""
    return [
        path
        for path in sorted(folder.rglob("*.yaml"))
        if path.is_file()
        and not {"directory", "calendars"} & set(path.relative_to(folder).parts[:-1])
        and not looks_like_directory(path)
        and not looks_like_succession(path)
    ]


def looks_like_directory(path: Path) -> bool:
    """True for a file whose top-level mapping has `agencies:` but no `document_number:` (nor
    `changes:`, which makes it a succession file).

    Anything unreadable or broken counts as an agreement, so that its problems get reported.
    """
    keys = _top_level_keys(path)
    return "agencies" in keys and not {"document_number", "changes"} & keys


def looks_like_succession(path: Path) -> bool:
    """True for a succession file (`agreements.succession`): `changes:` and no
    `document_number:` at the top level."""
    keys = _top_level_keys(path)
    return "changes" in keys and "document_number" not in keys


def _top_level_keys(path: Path) -> set[str]:
    text, _ = read_text(path)
    if text is None:
        return set()
    try:
        # Composing builds nodes only: no values are constructed and aliases are not expanded.
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return set()
    if not isinstance(root, yaml.MappingNode):
        return set()
    return {key.value for key, _ in root.value if isinstance(key, yaml.ScalarNode)}
