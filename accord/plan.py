"""Every mail an agreement will send, worked out on paper: `accord plan`.

The pure planner (`agreements/planner.py`) runs each task of the expanded agreement from its
opening to its close, with scripted submissions; roles become the directory's officers by the
mail activity's rule (`agreements/recipients.py`), and subjects come from the mail templates.
The result has the shape of `accord simulate`'s, which runs the real workflows on a
time-skipping server: the two must agree message for message, and a test checks that they do.
No server, database or SMTP is involved, and no 28-year shift: dates are the agreement's own.

Not modelled (simulate does not script them either): extensions, waivers, calendar changes
published while the agreement runs, and mail refused by the relay.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from accord.deploy import build_input, planned_task
from activities.models import NotificationKind, NotificationRequest, TaskRef
from activities.templates import (
    MailTemplates,
    Recipient,
    no_recipient_subject,
    package_templates,
    recipient_variables,
    subject,
)
from agreements import planner
from agreements.calendar import WorkingCalendar
from agreements.expansion import event_occurrences, local_midnight
from agreements.loader import LoadedAgreement, warning_line
from agreements.models import (
    Directory,
    EventDue,
    NotifyTarget,
    Officer,
    OfficerRole,
    notify_text,
)
from agreements.recipients import Holder, pick_recipients, role_scopes
from workflows.payloads import (
    AgreementInput,
    PlannedTask,
    TaskState,
    no_recipient_detail,
    task_ref,
)

SUBMIT_AT = time(9, 0)
"""Scripted submissions arrive at 09:00 local time on their day."""


@dataclass(frozen=True)
class ScriptedSubmission:
    pattern: str
    on: date

    @classmethod
    def parse(cls, text: str) -> ScriptedSubmission:
        pattern, sep, day = text.rpartition("@")
        if not sep or not pattern:
            raise ValueError(f"expected GLOB@YYYY-MM-DD, got {text!r}")
        try:
            return cls(pattern, date.fromisoformat(day))
        except ValueError as exc:
            raise ValueError(f"{text!r}: {day!r} is not a date YYYY-MM-DD") from exc


def mail_subject(
    request: NotificationRequest,
    recipient: Recipient,
    agency_names: Mapping[str, str],
    templates: MailTemplates | None = None,
) -> str:
    """The subject a recipient reads: the one place `accord plan` takes mail wording from
    `activities/templates.py`."""
    return subject(request, recipient=recipient, agency_names=agency_names, templates=templates)


@dataclass(frozen=True)
class PreviewedEvent:
    """`--event EVENT=YYYY-MM-DD[:LABEL]`: plan as if an admin recorded the event that day."""

    event: str
    on: date
    label: str | None = None

    @classmethod
    def parse(cls, text: str) -> PreviewedEvent:
        event, sep, rest = text.partition("=")
        day, _, label = rest.partition(":")
        if not sep or not event:
            raise ValueError(f"expected EVENT=YYYY-MM-DD[:LABEL], got {text!r}")
        try:
            return cls(event, date.fromisoformat(day), label or None)
        except ValueError as exc:
            raise ValueError(f"{text!r}: {day!r} is not a date YYYY-MM-DD") from exc


def awaiting_events(loaded: LoadedAgreement, previewed: Collection[str] = ()) -> list[str]:
    """One line per obligation that has no task until its event is recorded (events in
    `previewed` excepted)."""
    lines = []
    for _item, obligation in loaded.agreement.all_obligations():
        due = obligation.due
        if isinstance(due, EventDue) and due.event not in previewed:
            lines.append(
                f"{obligation.id}: waiting for event {due.event} "
                f"(due {due.within} after it; `accord event record`)"
            )
    return lines


@dataclass(frozen=True)
class PlannedMail:
    """One message to one address, as `accord simulate` lists a delivered one."""

    at: datetime
    kind: str
    task: str
    agency: str
    to: list[str]
    subject: str
    from_agency: str | None = None
    """After a succession (`accord simulate --succession`): the agency the task came from;
    `agency` is the one owing it when the mail was sent."""

    def as_json(self) -> dict[str, Any]:
        found = {
            "at": self.at.isoformat(),
            "kind": self.kind,
            "task": self.task,
            "agency": self.agency,
            "to": self.to,
            "subject": self.subject,
        }
        if self.from_agency is not None:
            found["from"] = self.from_agency
        return found


@dataclass
class PlanReport:
    agreement_id: str
    mails: list[PlannedMail]
    tasks: int
    counts: dict[str, int]
    """End states of the tasks, by `TaskState` value (every state, zeros included)."""
    warnings: list[str] = field(default_factory=list)
    awaiting: list[str] = field(default_factory=list)
    """Obligations waiting for an event that was not previewed (no task, no date)."""

    def summary_json(self) -> dict[str, Any]:
        more: dict[str, object] = {"awaiting_events": self.awaiting} if self.awaiting else {}
        return summary_json(
            self.agreement_id, self.mails, self.tasks, self.counts, self.warnings, **more
        )


def summary_json(
    agreement_id: str,
    mails: Sequence[PlannedMail],
    tasks: int,
    counts: dict[str, int],
    warnings: list[str],
    **more: object,
) -> dict[str, Any]:
    """The closing JSON line of `accord plan` and `accord simulate` (`more`: simulate's own)."""
    return {
        "summary": {
            "agreement": agreement_id,
            "messages": len(mails),
            "by_kind": dict(sorted(Counter(m.kind for m in mails).items())),
            "tasks": tasks,
            "task_states": counts,
            **more,
            "warnings": warnings,
        }
    }


class _Addressing:
    """Roles to officers over the directory file, as the mail activity does over the database
    filled from it (officers by ID; the province of the directory)."""

    def __init__(self, directory: Directory) -> None:
        self._directory = directory
        self._codes = {agency.code for agency in directory.agencies}
        self._names = {agency.code: agency.name for agency in directory.agencies}
        self._officers = [
            (
                officer,
                Holder(
                    agency=officer.agency,
                    province=directory.province if officer.agency in self._codes else None,
                    roles={role.value for role in officer.roles},
                    email=officer.email,
                ),
            )
            for officer in sorted(directory.officers, key=lambda o: o.id)
            # An officer of an agency outside the directory is not stored (no agency row).
            if officer.agency in self._codes
        ]
        # Where each agency's officers and each role's holders are in that list.
        self._of_agency: dict[str, list[int]] = {}
        self._holding: dict[str, list[int]] = {}
        for index, (_, holder) in enumerate(self._officers):
            self._of_agency.setdefault(holder.agency, []).append(index)
            for role in holder.roles:
                self._holding.setdefault(role, []).append(index)
        self._candidates: dict[tuple[tuple[str, str | None], ...], list[tuple[Officer, Holder]]]
        self._candidates = {}

    def recipients(self, task: TaskRef, roles: Sequence[NotifyTarget]) -> list[Recipient]:
        scopes = role_scopes(
            roles,
            agency=task.agency,
            recipient=task.recipient,
            co_owners=task.co_owners,
            copy_to=task.copy_to,
        )
        province = self._directory.province if task.agency in self._codes else None
        key = tuple((scope.officer_role.value, scope.agency) for scope in scopes)
        candidates = self._candidates.get(key)
        if candidates is None:
            # Only officers a scope can reach (of its agency, or holding its role when it
            # names no agency), in directory order: the rule then skips the rest.
            reached: set[int] = set()
            for role, agency in key:
                reached.update(
                    self._of_agency.get(agency, [])
                    if agency is not None
                    else self._holding.get(role, [])
                )
            candidates = self._candidates[key] = [self._officers[i] for i in sorted(reached)]
        return [
            Recipient.of(officer, role)
            for officer, role in pick_recipients(scopes, candidates, province)
        ]

    def admins(self) -> list[Recipient]:
        """The directory's admins, told when a notice reaches nobody (as the mail activity
        tells the owing agency's province's, one per address, by officer ID)."""
        seen: set[str] = set()
        admins: list[Recipient] = []
        for officer, holder in self._officers:
            if OfficerRole.ADMIN.value in holder.roles and holder.email.lower() not in seen:
                seen.add(holder.email.lower())
                admins.append(Recipient.of(officer, None))
        return admins

    def names(self, task: TaskRef) -> dict[str, str]:
        codes = [*task.owners, *task.copy_to, *([task.recipient] if task.recipient else [])]
        return {code: self._names[code] for code in codes if code in self._names}


def plan(
    loaded: LoadedAgreement,
    *,
    submissions: Sequence[ScriptedSubmission] = (),
    input: AgreementInput | None = None,
    events: Sequence[PreviewedEvent] = (),
    templates: MailTemplates | None = None,
) -> PlanReport:
    """Every message the agreement sends from its start to its end, and each task's end state,
    with the scripted submissions (a task's first matching one counts, as in a simulation).
    `events` adds the tasks of events as if recorded on their day (at its first moment).
    `templates`: the mail wording subjects come from (the package's if None)."""
    input = input or build_input(loaded)
    templates = templates or package_templates()
    agreement = input.plan
    zone = loaded.agreement.zone
    addressing = _Addressing(loaded.directory)
    # What validate warns about (a role an agency has nobody for, owners all ceased) first.
    warnings = [warning_line(problem) for problem in loaded.warnings]
    awaiting = awaiting_events(loaded, {preview.event for preview in events})
    if events:
        previewed: list[PlannedTask] = []
        for preview in events:
            found = event_occurrences(
                loaded.agreement,
                loaded.directory,
                preview.event,
                preview.on,
                preview.label or preview.on.isoformat(),
                agreement.calendar,
            )
            if not found:
                warnings.append(f"--event {preview.event}: no obligation waits for this event")
            opens = max(agreement.starts_at, local_midnight(preview.on, zone))
            previewed.extend(planned_task(o, opens) for o in found)
        input = input.model_copy(update={"waiting": [*input.waiting, *previewed]})
    arrivals: dict[str, datetime] = {}
    for scripted in sorted(submissions, key=lambda s: s.on):
        matched = [t for t in input.waiting if fnmatch.fnmatchcase(t.task_id, scripted.pattern)]
        if not matched:
            warnings.append(f"--submit {scripted.pattern}@{scripted.on}: no task matches")
        for task in matched:
            if task.due_at is None:
                warnings.append(
                    f"{task.task_id}: undated tasks cannot be submitted in a simulation"
                )
                continue
            arrivals.setdefault(task.task_id, datetime.combine(scripted.on, SUBMIT_AT, zone))
    mails: list[PlannedMail] = []
    counts = Counter[str]()
    # A task's calendar is the agreement's cut to the years around it: one per year, shared,
    # so that the planner's sending windows and calendar lookups are built once per year.
    calendars: dict[int, WorkingCalendar | None] = {}
    # The agencies of a programme share an obligation's dates: their tasks' plans are equal.
    plans: dict[tuple[Any, ...], planner.TaskPlan] = {}
    for task in input.waiting:
        obligation = agreement.obligations[task.obligation_id]
        ref = task_ref(agreement, task)
        terms = planner.TaskTerms(
            reminders=obligation.reminders,
            escalation=obligation.escalation,
            closes_at=agreement.closes_at,
            time_zone=agreement.time_zone,
            sending_time=agreement.sending_time,
            deadline_rule=obligation.deadline_rule,
            has_recipient=obligation.recipient is not None,
            has_copies=bool(obligation.copy_to),
        )
        calendar = _task_calendar(calendars, agreement.calendar, task.due_at, agreement.starts_at)
        submitted_at = arrivals.get(task.task_id)
        key = (
            task.obligation_id,
            task.opens_at,
            task.due_at,
            task.written_due_at,
            id(calendar),
            submitted_at,
        )
        result = plans.get(key)
        if result is None:
            result = plans[key] = planner.plan_task(
                terms,
                opens_at=task.opens_at,
                due_at=task.due_at,
                written_due=task.written_due_at,
                calendar=calendar,
                submitted_at=submitted_at,
            )
        counts[result.state] += 1
        if result.submission_refused:
            warnings.append(f"{task.task_id}: not submitted: {result.submission_refused}")
        for notice in result.notices:
            sent = _mails(addressing, ref, notice, zone, templates)
            if not sent:
                # Nobody holds the roles: the admins are told instead, as the activity does.
                admins = addressing.admins()
                sent = _no_recipient_mails(addressing, ref, notice, zone, admins)
                roles = [notify_text(role) for role in notice.roles]
                detail = no_recipient_detail(notice.key, roles, admins_told=bool(admins))
                warnings.append(f"{task.task_id}: {detail}")
            mails.extend(sent)
    mails.sort(key=lambda m: (m.at, m.task, m.kind, m.to))
    return PlanReport(
        agreement_id=agreement.agreement_id,
        mails=mails,
        tasks=len(input.waiting),
        counts={state.value: counts.get(state.value, 0) for state in TaskState},
        warnings=warnings,
        awaiting=awaiting,
    )


def _task_calendar(
    calendars: dict[int, WorkingCalendar | None],
    calendar: WorkingCalendar | None,
    due_at: datetime | None,
    starts_at: datetime,
) -> WorkingCalendar | None:
    """`planner.task_calendar`, once per year (it depends on the task's year alone)."""
    year = (due_at or starts_at).year
    if year not in calendars:
        calendars[year] = planner.task_calendar(calendar, due_at, starts_at)
    return calendars[year]


def _request(task: TaskRef, notice: planner.PlannedNotice, zone: Any) -> NotificationRequest:
    return NotificationRequest(
        business_key=f"{task.task_id}/{notice.key}",
        kind=NotificationKind(notice.kind),
        task=task,
        roles=list(notice.roles),
        step=notice.step,
        offset=notice.offset,
        scheduled_at=notice.at.astimezone(zone),
        late=notice.late,
    )


def _mails(
    addressing: _Addressing,
    task: TaskRef,
    notice: planner.PlannedNotice,
    zone: Any,
    templates: MailTemplates,
) -> list[PlannedMail]:
    recipients = addressing.recipients(task, notice.roles)
    if not recipients:
        return []
    request = _request(task, notice, zone)
    names = addressing.names(task)
    at = notice.at.astimezone(zone)
    # A subject is rendered once per language and values of the recipient variables it reads
    # (`copy` in the package's reminders: once for the owners, once for the copies); for each
    # recipient when the templates' analysis cannot tell (a province's override may do more).
    shared: dict[tuple[Any, ...], str] = {}

    def subject_for(recipient: Recipient) -> str:
        reads = templates.subject_recipient_names(request.kind, recipient.locale)
        if reads is None:
            return mail_subject(request, recipient, names, templates)
        given = recipient_variables(recipient) if reads else {}
        key = (recipient.locale, *(given[name] for name in reads))
        text = shared.get(key)
        if text is None:
            text = shared[key] = mail_subject(request, recipient, names, templates)
        return text

    return [
        PlannedMail(
            at=at,
            kind=notice.kind,
            task=task.task_id,
            agency=task.agency,
            to=[recipient.email],
            subject=subject_for(recipient),
        )
        for recipient in recipients
    ]


def _no_recipient_mails(
    addressing: _Addressing,
    task: TaskRef,
    notice: planner.PlannedNotice,
    zone: Any,
    admins: Sequence[Recipient],
) -> list[PlannedMail]:
    request = _request(task, notice, zone)
    names = addressing.names(task)
    return [
        PlannedMail(
            at=notice.at.astimezone(zone),
            kind=NotificationKind.NO_RECIPIENT.value,
            task=task.task_id,
            agency=task.agency,
            to=[admin.email],
            subject=no_recipient_subject(request, admin=admin, agency_names=names),
        )
        for admin in admins
    ]
