"""Preview every mail an agreement will cause, before it is signed.

The agreement's real workflows and activities run from its start to its end on the
time-skipping test server, with a real SQLite database and mail delivered over SMTP to an
in-process server. The test server's clock starts at today's date and only moves forward, so
an agreement whose period has already begun is simulated a whole number of 28-year cycles
later (weekdays and leap years repeat every 28 years) and every time and date printed is moved
back by the same amount.

The test server skips time only while nothing holds its time-skipping lock. One lock leaks:
when a child workflow completes, the server takes a lock that the parent releases on hearing of
the completion, and a parent run that has since continued-as-new never hears of it. Obligation
workflows are children of the agreement run that started them, and a report closes a task
whose starting run may have continued-as-new (a task opened at the agreement's start is started
by the run that continues-as-new into the new year at once; a late annual report is completed
in the next year's run). After each scripted report, `_LeakedLocks` releases exactly the
locks the server leaked; if the clock still stops skipping, `_Watch` ends the simulation with
one line rather than letting it hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import fnmatch
import os
import re
import secrets
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from time import monotonic
from typing import Any, TypeVar

from temporalio.api.enums.v1 import WorkflowExecutionStatus as RawStatus
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.testservice.v1 import UnlockTimeSkippingRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from accord.deploy import amendment_id, build_input, start_agreement
from accord.embedded import MailSink, find_binary, register_search_attributes
from accord.identity import Credential, signed
from accord.plan import SUBMIT_AT as SUBMIT_AT
from accord.plan import PlannedMail, summary_json
from accord.plan import ScriptedSubmission as ScriptedSubmission
from activities.models import Actor, IndicatorValue, Ratio
from activities.reporting import report_inputs
from agreements.calendar import CalendarDay, WorkingCalendar
from agreements.expansion import calendar_years
from agreements.loader import LoadedAgreement, warning_line
from agreements.models import Indicator, IndicatorKind, OfficerRole
from agreements.recipients import JOINT_SEPARATOR
from agreements.succession import SuccessionFile, apply_to_directory, succession_groups
from infra import db, migrations
from infra.claim_keys import SigningKey
from infra.settings import SmtpSettings
from reports.model import ReportInputs
from worker import build_worker
from workflows.agreement import AgreementWorkflow
from workflows.obligation import ObligationWorkflow
from workflows.payloads import (
    AgreementInput,
    AgreementOverview,
    AgreementSummary,
    AmendmentRequest,
    SubmitReport,
    SuccessionRequest,
    TaskStatus,
    task_workflow_id,
)

CYCLE_YEARS = 28
SIMULATION_TIMEOUT = timedelta(days=365 * 100)
POLL_SECONDS = 1.0
"""How often a waiting simulation looks at the test server's clock (and reports progress)."""
STALL_SECONDS = 120.0
"""Wall-clock seconds without progress (the clock skipping ahead, or a mail arriving) after
which a simulation is declared stalled. A busy moment, when hundreds of tasks open at once,
holds the clock for a few seconds; a leaked lock holds it for good."""
SETTLE_SECONDS = 60.0
"""Wall-clock seconds a scripted report's task has to complete (record, receipt, tell the
agreement) before the simulation stops waiting for it and checks it later."""

T = TypeVar("T")
Progress = Callable[[datetime], None]
"""Told the simulated moment (in the agreement's own dates) about once a second."""


class SimulationStalled(Exception):
    """The test server's clock stopped skipping and the simulation could not finish; the
    message is one line for the user."""


@dataclass(frozen=True)
class ScriptedAmendment:
    """`--amend DATE:NEW_FILE`: at local midnight of `on`, the agreement is amended to
    `loaded` (the new version of its file), as `accord amend` would."""

    on: date
    loaded: LoadedAgreement
    path: Path

    @property
    def document(self) -> str:
        return f"Văn bản sửa đổi (mô phỏng) {self.path.name}, ngày {self.on:%d/%m/%Y}"


@dataclass(frozen=True)
class ScriptedSuccession:
    """`--succession DATE:CHANGE_FILE`: at local midnight of `on`, the succession file's
    directory changes are made and its successions sent, as `accord succession apply`
    would."""

    on: date
    file: SuccessionFile
    path: Path


SIMULATED_ADMIN = "accord-simulate"
"""The officer ID the simulation's amendments and successions are signed for."""


@dataclass(frozen=True)
class DeliveredMail(PlannedMail):
    """A message the simulation's mail server received: what `accord plan` lists, and the
    message itself."""

    raw: bytes = field(repr=False, default=b"")

    @property
    def message(self) -> EmailMessage:
        """The whole message, parsed (only the headers are read for the listing)."""
        message = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message


@dataclass
class SimulationReport:
    agreement_id: str
    shift_years: int
    mails: list[DeliveredMail]
    summary: AgreementSummary
    statuses: dict[str, TaskStatus]
    overview: AgreementOverview
    database_url: str
    warnings: list[str] = field(default_factory=list)
    report_inputs: ReportInputs | None = None
    """What the consolidated report of the simulated run is computed from, in the agreement's
    own dates (only when `simulate(..., report=True)`)."""

    def summary_json(self) -> dict[str, Any]:
        return summary_json(
            self.agreement_id,
            self.mails,
            self.summary.total,
            self.summary.counts,
            self.warnings,
            simulated_years_later=self.shift_years,
        )


def shift_years_for(starts_at: datetime, now: datetime) -> int:
    """Smallest multiple of 28 years that puts the agreement's start after `now`."""
    years = 0
    while starts_at.replace(year=starts_at.year + years) <= now + timedelta(days=1):
        years += CYCLE_YEARS
    return years


def _shift(at: datetime, years: int) -> datetime:
    return at.replace(year=at.year + years)


def _shift_date(day: date, years: int) -> date:
    return day.replace(year=day.year + years)


def shift_input(input: AgreementInput, years: int) -> AgreementInput:
    """The same plan `years` later (a multiple of 28 keeps weekdays and 29 February)."""
    if years == 0:
        return input
    calendar = input.plan.calendar
    if calendar is not None:
        calendar = shift_calendar(calendar, years)
    plan = input.plan.model_copy(
        update={
            "calendar": calendar,
            "period_start": _shift_date(input.plan.period_start, years),
            "period_end": _shift_date(input.plan.period_end, years),
            "starts_at": _shift(input.plan.starts_at, years),
            "ends_at": _shift(input.plan.ends_at, years),
            "closes_at": _shift(input.plan.closes_at, years),
        }
    )
    waiting = [
        t.model_copy(
            update={
                "due_at": _shift(t.due_at, years) if t.due_at else None,
                "written_due_at": (_shift(t.written_due_at, years) if t.written_due_at else None),
                "opens_at": _shift(t.opens_at, years),
            }
        )
        for t in input.waiting
    ]
    return input.model_copy(update={"plan": plan, "waiting": waiting})


def shift_calendar(calendar: WorkingCalendar, years: int) -> WorkingCalendar:
    """The same working days `years` later: with a multiple of 28, every weekday matches."""

    def moved(days: tuple[CalendarDay, ...]) -> tuple[CalendarDay, ...]:
        return tuple(d.model_copy(update={"day": _shift_date(d.day, years)}) for d in days)

    return WorkingCalendar(
        first_year=calendar.first_year + years,
        last_year=calendar.last_year + years,
        weekend=calendar.weekend,
        days_off=moved(calendar.days_off),
        make_up_working_days=moved(calendar.make_up_working_days),
        source=f"{calendar.source} (simulated {years} years later)",
    )


_DATE_IN_TEXT = re.compile(r"\b(\d{1,2}/\d{1,2}/)(\d{4})\b")


def unshift_text(text: str, years: int) -> str:
    if years == 0:
        return text
    return _DATE_IN_TEXT.sub(lambda m: f"{m.group(1)}{int(m.group(2)) - years}", text)


_DUE_IN_KEY = re.compile(r"/(\d{4})(\d{8})\b")
"""The due instant in a notice's key, e.g. 'escalation/1/202512150000'."""


def unshift_key(text: str, years: int, agreement_years: range) -> str:
    """A notice key as the agreement dates it. A key holds a due instant (the written one
    when the deadline rule moved it), shifted like every instant of the simulation; a year
    `years` (a multiple of 28) after the agreement's years is a shifted one, and one already
    in the agreement's years stays."""
    if years == 0:
        return text

    def back(match: re.Match[str]) -> str:
        year = int(match.group(1))
        if year not in agreement_years and year - years in agreement_years:
            year -= years
        return f"/{year}{match.group(2)}"

    return _DUE_IN_KEY.sub(back, text)


def _back(at: datetime, years: int, agreement_years: range) -> datetime:
    """A simulated instant in the agreement's own years; one already there stays."""
    if at.year not in agreement_years and at.year - years in agreement_years:
        return _shift(at, -years)
    return at


def _back_date(day: date, years: int, agreement_years: range) -> date:
    if day.year not in agreement_years and day.year - years in agreement_years:
        return _shift_date(day, -years)
    return day


_YEAR_IN_LABEL = re.compile(r"(?<!\d)(\d{4})(?!\d)")


def unshift_label(text: str, years: int, agreement_years: range) -> str:
    """A task ID or period label in the agreement's own years: a four-digit year `years` after
    one of the agreement's years is moved back; the agreement's own years (as in
    '289-kh-ubnd-2025') and other numbers stay."""
    if years == 0:
        return text

    def back(match: re.Match[str]) -> str:
        year = int(match.group(1))
        if year not in agreement_years and year - years in agreement_years:
            year -= years
        return str(year)

    return _YEAR_IN_LABEL.sub(back, text)


def unshift_report_inputs(
    inputs: ReportInputs,
    years: int,
    agreement_years: range,
    calendar: WorkingCalendar | None,
) -> ReportInputs:
    """The simulated run's report inputs moved back `years` years to the agreement's own dates:
    the agreement's period, the facts' moment, every task's due instant, task ID and period
    label, and every submission, waiver and extension; `calendar` (the agreement's own working
    calendar, unshifted) replaces the simulated one."""
    if years == 0:
        return inputs

    def at(value: datetime) -> datetime:
        return _back(value, years, agreement_years)

    def day(value: date) -> date:
        return _back_date(value, years, agreement_years)

    def label(value: str) -> str:
        return unshift_label(value, years, agreement_years)

    facts = inputs.facts
    tasks = [
        task.model_copy(
            update={
                "task_id": label(task.task_id),
                "period_label": label(task.period_label),
                "due_at": at(task.due_at) if task.due_at else None,
            }
        )
        for task in facts.tasks
    ]
    unshifted = facts.model_copy(
        update={
            "period_start": day(facts.period_start),
            "period_end": day(facts.period_end),
            "as_of": at(facts.as_of),
            "tasks": tasks,
            "calendar": calendar,
        }
    )
    submissions = [
        s.model_copy(update={"task_id": label(s.task_id), "submitted_at": at(s.submitted_at)})
        for s in inputs.submissions
    ]
    waivers = [
        w.model_copy(update={"task_id": label(w.task_id), "at": at(w.at)}) for w in inputs.waivers
    ]
    extensions = [
        e.model_copy(
            update={"task_id": label(e.task_id), "at": at(e.at), "new_due": day(e.new_due)}
        )
        for e in inputs.extensions
    ]
    return inputs.model_copy(
        update={
            "facts": unshifted,
            "submissions": submissions,
            "waivers": waivers,
            "extensions": extensions,
        }
    )


def placeholder_values(indicators: Sequence[Indicator]) -> dict[str, IndicatorValue]:
    values: dict[str, IndicatorValue] = {}
    for indicator in indicators:
        if indicator.kind is IndicatorKind.COUNT:
            values[indicator.code] = 0
        elif indicator.kind is IndicatorKind.RATIO:
            values[indicator.code] = Ratio(done=0, total=0)
        elif indicator.kind is IndicatorKind.BREAKDOWN:
            values[indicator.code] = dict.fromkeys(indicator.categories or [], 0)
        else:
            values[indicator.code] = "(mô phỏng)"
    return values


async def start_test_server() -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await register_search_attributes(env.client)
    return env


async def simulate(
    loaded: LoadedAgreement,
    *,
    submissions: Sequence[ScriptedSubmission] = (),
    workdir: Path | None = None,
    env: WorkflowEnvironment | None = None,
    progress: Progress | None = None,
    stall_after: float = STALL_SECONDS,
    report: bool = False,
    amendments: Sequence[ScriptedAmendment] = (),
    successions: Sequence[ScriptedSuccession] = (),
) -> SimulationReport:
    """Run the agreement from start to end; return every delivered mail and every task's end
    state, and with `report` the consolidated report's inputs at the end (in the agreement's
    own dates). A fresh test server is started unless `env` is given. Raises
    `SimulationStalled` when the test server's clock stops skipping for `stall_after` seconds.
    `amendments` and `successions` are sent at local midnight of their days (moved like every
    other date), in day order, before that day's scripted reports."""
    owned_env = env is None
    if env is None:
        env = await start_test_server()
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="accord-simulate-")
        workdir = Path(tmp.name)
    try:
        return await _simulate(
            loaded,
            submissions,
            workdir,
            env,
            progress,
            stall_after,
            report,
            list(amendments),
            list(successions),
        )
    finally:
        if owned_env:
            await env.shutdown()
        if tmp is not None:
            tmp.cleanup()


async def _simulate(
    loaded: LoadedAgreement,
    submissions: Sequence[ScriptedSubmission],
    workdir: Path,
    env: WorkflowEnvironment,
    progress: Progress | None,
    stall_after: float,
    report: bool,
    amendments: list[ScriptedAmendment],
    successions: list[ScriptedSuccession],
) -> SimulationReport:
    client = env.client
    now = await env.get_current_time()
    base = build_input(loaded)
    years = shift_years_for(base.plan.starts_at, now)
    input = shift_input(base, years)
    database_url = f"sqlite:///{(workdir / 'accord.db').resolve()}"
    engine = db.make_engine(database_url)
    migrations.upgrade(engine)
    session_factory = db.session_factory(engine)
    with session_factory() as session:
        db.upsert_directory(session, directory=loaded.directory)
    # What validate warns about (a role an agency has nobody for, owners all ceased) first.
    warnings = [warning_line(problem) for problem in loaded.warnings]
    task_queue = f"simulate-{uuid.uuid4()}"
    mail_dir = workdir / "mail"
    # The simulation's mail lives as long as the simulation: no fsync per message.
    async with MailSink(mail_dir, port=0, fsync=False) as sink:
        smtp = SmtpSettings(host="127.0.0.1", port=sink.port, embedded=False)
        # Its own ephemeral key: scripted reports are signed as an operator's would be.
        credential = Credential(
            operator="accord-simulate", key=SigningKey("simulate", secrets.token_bytes(32))
        )
        worker = build_worker(
            client,
            task_queue=task_queue,
            session_factory=session_factory,
            smtp=smtp,
            claim_keys={credential.key.key_id: credential.key.secret},
        )
        async with worker:
            deployed = await start_agreement(
                client, input, task_queue=task_queue, execution_timeout=SIMULATION_TIMEOUT
            )
            # The handle from start_workflow is the one that unlocks time skipping while waiting.
            handle = deployed.handle
            if handle is None:
                raise RuntimeError(f"{deployed.workflow_id} exists already: {deployed.note}")
            leaked = _LeakedLocks(client)
            watch = _Watch(
                env,
                years=years,
                zone=loaded.agreement.zone,
                mail_dir=mail_dir,
                leaked=leaked,
                progress=progress,
                stall_after=stall_after,
            )
            zone = loaded.agreement.zone
            midnight = datetime.min.time()
            steps: list[tuple[datetime, int, Any]] = [
                (datetime.combine(_shift_date(a.on, years), midnight, tzinfo=zone), 0, a)
                for a in amendments
            ]
            steps += [
                (datetime.combine(_shift_date(c.on, years), midnight, tzinfo=zone), 1, c)
                for c in successions
            ]
            steps += [
                (datetime.combine(_shift_date(s.on, years), SUBMIT_AT, tzinfo=zone), 2, s)
                for s in submissions
            ]
            current = input
            directory = loaded.directory
            admin = Actor(
                officer_id=SIMULATED_ADMIN,
                tenant=input.plan.tenant,
                agency=directory.agencies[0].code,
                roles=[OfficerRole.ADMIN],
            )
            for target, _, scripted in sorted(steps, key=lambda step: (step[0], step[1])):
                if isinstance(scripted, ScriptedAmendment):
                    await watch.advance_to(target, f"moving to --amend {scripted.on}")
                    current = await _amend(env, credential, handle, admin, current, scripted, years)
                elif isinstance(scripted, ScriptedSuccession):
                    await watch.advance_to(target, f"moving to --succession {scripted.on}")
                    directory = apply_to_directory(scripted.file, directory)
                    with session_factory() as session:
                        db.upsert_directory(session, directory=directory)
                    await _succeed(env, credential, handle, admin, scripted, years)
                else:
                    await watch.advance_to(target, f"moving to --submit {scripted.on}")
                    submitted, problems = await _submit(
                        env, credential, loaded, current, scripted, years, session_factory
                    )
                    warnings.extend(problems)
                    await leaked.settle(submitted, seconds=SETTLE_SECONDS)
            summary = await watch.wait(handle.result(), "running to the agreement's end")
            overview = await handle.query(AgreementWorkflow.overview)
            inputs = None
            if report:
                facts = await handle.query(AgreementWorkflow.facts)
                with session_factory() as session:
                    inputs = unshift_report_inputs(
                        report_inputs(session, facts),
                        years,
                        calendar_years(loaded.agreement),
                        base.plan.calendar,
                    )
            statuses: dict[str, TaskStatus] = {}
            # The tasks that ran: the signed version's, or after amendments those the
            # agreement started (a task withdrawn before it started never ran).
            if amendments:
                facts = await handle.query(AgreementWorkflow.facts)
                ran = [t.task_id for t in facts.tasks if t.state is not None]
            else:
                ran = [task.task_id for task in input.waiting]
            for task_id in ran:
                statuses[task_id] = await client.get_workflow_handle(
                    task_workflow_id(task_id)
                ).query(ObligationWorkflow.status)
    engine.dispose()
    # A notice that reached nobody is recorded on its task (the admins got mail about it).
    warnings.extend(
        f"{task_id}: {unshift_key(decision.detail, years, calendar_years(loaded.agreement))}"
        for task_id, status in statuses.items()
        for decision in status.decisions
        if decision.kind == "no_recipient"
    )
    mails = [_read_mail(path, years, loaded.agreement.zone) for path in mail_dir.glob("*.eml")]
    mails.sort(key=lambda m: (m.at, m.task, m.kind, m.to))
    return SimulationReport(
        agreement_id=loaded.agreement.agreement_id,
        shift_years=years,
        mails=mails,
        summary=summary,
        statuses=statuses,
        overview=overview,
        database_url=database_url,
        warnings=warnings,
        report_inputs=inputs,
    )


async def _submit(
    env: WorkflowEnvironment,
    credential: Credential,
    loaded: LoadedAgreement,
    input: AgreementInput,
    scripted: ScriptedSubmission,
    years: int,
    session_factory: Any,
) -> tuple[list[str], list[str]]:
    """Submit a report to every task matching the script, now; return the task IDs that took
    it and a warning for each that did not."""
    client = env.client
    zone = loaded.agreement.zone
    matched = [t for t in input.waiting if fnmatch.fnmatchcase(t.task_id, scripted.pattern)]
    if not matched:
        return [], [f"--submit {scripted.pattern}@{scripted.on}: no task matches"]
    submitted: list[str] = []
    warnings = []
    target = datetime.combine(_shift_date(scripted.on, years), SUBMIT_AT, tzinfo=zone)
    for task in matched:
        if target < task.opens_at:
            opens = _shift(task.opens_at, -years).astimezone(zone)
            warnings.append(
                f"{task.task_id}: not open yet on {scripted.on} (opens {opens:%d/%m/%Y}), "
                "not submitted"
            )
            continue
        handle = client.get_workflow_handle(task_workflow_id(task.task_id))
        try:
            status = (await handle.describe()).status
        except RPCError as err:
            warnings.append(f"{task.task_id}: not started on {scripted.on}: {err.message}")
            continue
        if status is not WorkflowExecutionStatus.RUNNING:
            warnings.append(f"{task.task_id}: closed already on {scripted.on}, not submitted")
            continue
        obligation = input.plan.obligations[task.obligation_id]
        # The agency that owes the task now: a succession may have passed it on.
        owner = (await handle.query(ObligationWorkflow.status)).task.agency
        with session_factory() as session:
            officers = db.officers_for(
                session,
                tenant=input.plan.tenant,
                agency=owner,
                role=OfficerRole.FOCAL_POINT,
            )
        if not officers:
            warnings.append(f"{task.task_id}: no focal point to submit as")
            continue
        officer = officers[0]
        report = SubmitReport(
            actor=Actor(
                officer_id=officer.id,
                tenant=input.plan.tenant,
                agency=owner,
                roles=[OfficerRole(r) for r in officer.roles],
            ),
            summary="Báo cáo mô phỏng (accord simulate).",
            indicators=placeholder_values(obligation.indicators),
        )
        report = signed(
            credential,
            report,
            update=ObligationWorkflow.submit_report,
            workflow_id=task_workflow_id(task.task_id),
            received_at=await env.get_current_time(),
        )
        try:
            await handle.execute_update(ObligationWorkflow.submit_report, report)
        except (WorkflowUpdateFailedError, RPCError) as err:
            cause = getattr(err, "cause", None) or err
            warnings.append(f"{task.task_id}: not submitted on {scripted.on}: {cause}")
        else:
            submitted.append(task.task_id)
    return submitted, warnings


async def _amend(
    env: WorkflowEnvironment,
    credential: Credential,
    handle: Any,
    admin: Actor,
    current: AgreementInput,
    scripted: ScriptedAmendment,
    years: int,
) -> AgreementInput:
    """Send the amendment now, as `accord amend --yes` would; the new version's input (its
    tasks, for the scripted reports that follow)."""
    new = shift_input(build_input(scripted.loaded), years)
    plan = new.plan.model_copy(update={"digest": current.plan.digest})
    request = AmendmentRequest(
        actor=admin,
        amendment_id=amendment_id(scripted.document, plan, new.waiting),
        document=scripted.document,
        plan=plan,
        tasks=new.waiting,
    )
    request = signed(
        credential,
        request,
        update=AgreementWorkflow.amend,
        workflow_id=handle.id,
        received_at=await env.get_current_time(),
    )
    await handle.execute_update(AgreementWorkflow.amend, request)
    return new.model_copy(update={"plan": plan})


async def _succeed(
    env: WorkflowEnvironment,
    credential: Credential,
    handle: Any,
    admin: Actor,
    scripted: ScriptedSuccession,
    years: int,
) -> None:
    """Send the file's successions now, as `accord succession apply` would (their effective
    days moved like every other date)."""
    for group in succession_groups(scripted.file):
        request = SuccessionRequest(
            actor=admin,
            succession_id=group.succession_id,
            document=group.document,
            effective=_shift_date(group.effective, years),
            transfers=group.transfers,
        )
        request = signed(
            credential,
            request,
            update=AgreementWorkflow.succeed,
            workflow_id=handle.id,
            received_at=await env.get_current_time(),
        )
        await handle.execute_update(AgreementWorkflow.succeed, request)


_CHILD_CLOSED = (
    "child_workflow_execution_completed_event_attributes",
    "child_workflow_execution_failed_event_attributes",
    "child_workflow_execution_canceled_event_attributes",
    "child_workflow_execution_timed_out_event_attributes",
)


def _closed_child(event: HistoryEvent) -> str | None:
    """The workflow ID of the child whose closing this parent event records, if any."""
    for name in _CHILD_CLOSED:
        if event.HasField(name):  # type: ignore[arg-type]
            return str(getattr(event, name).workflow_execution.workflow_id)
    return None


class _LeakedLocks:
    """Releases the time-skipping locks the test server leaks for tasks it could not report
    to their parent run.

    When a child completes, the server takes a lock that the parent run releases as it records
    the completion. A parent run that has closed (continued-as-new) records nothing and the
    lock stays: the clock stops skipping. So a task's completion leaked a lock exactly when the
    run that started it is closed and its history has no closing event for the task; that
    lock is released here, once. A task still running, or whose parent run is still open and
    has not yet recorded it, is looked at again later."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._watching: set[str] = set()

    async def settle(self, task_ids: Sequence[str], *, seconds: float) -> None:
        """Watch `task_ids` too, and wait up to `seconds` for every watched task to be settled
        (the ones still unsettled are checked again on the next `check`)."""
        self._watching.update(task_ids)
        deadline = monotonic() + seconds
        while True:
            # Not cancelled midway (no asyncio.timeout): a release must be counted once.
            if not await self.check() or monotonic() > deadline:
                return
            await asyncio.sleep(0.05)

    async def check(self) -> bool:
        """One look at every watched task; true while some remain unsettled."""
        parents: dict[tuple[str, str], tuple[bool, set[str]]] = {}
        for task_id in sorted(self._watching):
            leaked = await self._leaked(task_workflow_id(task_id), parents)
            if leaked is None:
                continue
            self._watching.discard(task_id)
            if leaked:
                await self._client.test_service.unlock_time_skipping(UnlockTimeSkippingRequest())
        return bool(self._watching)

    async def _leaked(
        self, workflow_id: str, parents: dict[tuple[str, str], tuple[bool, set[str]]]
    ) -> bool | None:
        described = await self._client.get_workflow_handle(workflow_id).describe()
        info = described.raw_description.workflow_execution_info
        if info.status == RawStatus.WORKFLOW_EXECUTION_STATUS_RUNNING:
            return None
        parent = info.parent_execution
        if not parent.run_id:
            return False
        key = (parent.workflow_id, parent.run_id)
        if key not in parents:
            handle = self._client.get_workflow_handle(parent.workflow_id, run_id=parent.run_id)
            # Closed first, then its history: a run seen closed cannot record anything later.
            status = (await handle.describe()).raw_description.workflow_execution_info.status
            closed = status != RawStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
            recorded = {
                child
                async for event in handle.fetch_history_events()
                if (child := _closed_child(event)) is not None
            }
            parents[key] = (closed, recorded)
        closed, recorded = parents[key]
        if workflow_id in recorded:
            return False
        return True if closed else None


class _Watch:
    """Waits on the test server for the simulation: reports progress, releases leaked locks,
    and raises `SimulationStalled` when nothing moves for `stall_after` wall-clock seconds."""

    def __init__(
        self,
        env: WorkflowEnvironment,
        *,
        years: int,
        zone: Any,
        mail_dir: Path,
        leaked: _LeakedLocks,
        progress: Progress | None,
        stall_after: float,
    ) -> None:
        self._env = env
        self._years = years
        self._zone = zone
        self._mail_dir = mail_dir
        self._leaked = leaked
        self._progress = progress
        self._stall_after = stall_after

    async def advance_to(self, target: datetime, doing: str) -> None:
        now = await self._env.get_current_time()
        if target <= now:
            return
        try:
            await self.wait(self._env.sleep(target - now), doing)
        except RPCError as error:
            # The server answers a sleep only once its clock has moved: with a lock held, the
            # call runs out of time instead.
            why = f"the test server did not answer ({error.message})"
            raise self._stalled(now, doing, why) from error

    async def wait(self, awaitable: Awaitable[T], doing: str) -> T:
        task = asyncio.ensure_future(awaitable)
        clock = await self._env.get_current_time()
        wall = monotonic()
        mails = self._mails()
        moved_at = wall
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=POLL_SECONDS)
                if done:
                    return task.result()
                await self._leaked.check()
                now_clock, now_wall, now_mails = (
                    await self._env.get_current_time(),
                    monotonic(),
                    self._mails(),
                )
                if self._progress is not None:
                    self._progress(self._local(now_clock))
                # A locked clock moves at the pace of the wall clock; a skipping one jumps.
                skipped = (now_clock - clock).total_seconds() > 2 * (now_wall - wall) + 1
                if skipped or now_mails != mails:
                    moved_at = now_wall
                clock, wall, mails = now_clock, now_wall, now_mails
                if now_wall - moved_at > self._stall_after:
                    raise self._stalled(
                        now_clock,
                        doing,
                        f"its clock has moved only in real time for {self._stall_after:.0f} s",
                    )
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, RPCError):
                    await task

    def _stalled(self, at: datetime, doing: str, why: str) -> SimulationStalled:
        return SimulationStalled(
            f"the simulation stalled at {self._local(at):%d/%m/%Y %H:%M} while {doing}: {why} "
            f"(a limitation of the time-skipping test server, not of the agreement); "
            f"{self._mails()} mails had been sent"
        )

    def _local(self, at: datetime) -> datetime:
        return _shift(at, -self._years).astimezone(self._zone)

    def _mails(self) -> int:
        try:
            return sum(1 for entry in os.scandir(self._mail_dir) if entry.name.endswith(".eml"))
        except FileNotFoundError:
            return 0


_HEADERS = BytesHeaderParser(policy=email.policy.default)


def _read_mail(path: Path, years: int, zone: Any) -> DeliveredMail:
    raw = path.read_bytes()
    message = _HEADERS.parsebytes(raw)
    sent = parsedate_to_datetime(str(message["Date"]))
    at = _shift(sent, -years).astimezone(zone)
    to_header = message["To"]
    addresses = [a.addr_spec for a in getattr(to_header, "addresses", ())]
    task = str(message["X-Accord-Task"])
    agency = str(message["X-Accord-Agency"])
    return DeliveredMail(
        at=at,
        kind=str(message["X-Accord-Kind"]),
        task=task,
        agency=agency,
        from_agency=_original_agency(task, agency),
        to=addresses,
        subject=unshift_text(str(message["Subject"]), years),
        raw=raw,
    )


def _original_agency(task_id: str, agency: str) -> str | None:
    """The agency a task came from, when a succession passed it to `agency`: a task ID keeps
    its first owner (`agreement/obligation/agency/period`, a joint task's `A+B` led by A)."""
    parts = task_id.split("/", 3)
    if len(parts) < 4:
        return None
    first = parts[2].split(JOINT_SEPARATOR)[0]
    return first if first != agency else None
