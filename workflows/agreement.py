"""Agreement workflow: one per signed agreement, for the whole of its period.

It starts an obligation workflow (child) for each task when the task's window opens, keeps a
compact ledger of their states (children report changes by signal, so the ledger survives
continue-as-new), answers an overview query, continues-as-new before history limits and at
every change of reporting year, and completes once the period has ended and every task closed.

Like every workflow module it does no I/O and reads no clock but `workflow.now()`: whatever
it does beyond computing goes through `workflow.*` (children, signals, timers, continue-as-new).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
from collections import Counter
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ChildWorkflowError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.models import (
        AgreementFacts,
        AuditEntry,
        DigestKind,
        DigestRequest,
        DigestResult,
        ObligationFact,
        TaskFact,
    )
    from agreements import planner
    from agreements.calendar import CalendarRangeError, WorkingCalendar, last_day_of
    from agreements.models import OfficerRole
    from agreements.recipients import JOINT_SEPARATOR, owing
    from workflows.amendment import KnownTask, event_obligations, plan_diff, task_diff
    from workflows.digest import DigestWorkflow, digest_workflow_id
    from workflows.obligation import ObligationWorkflow, require_claim, require_publisher
    from workflows.payloads import (
        STATE_LABELS_VI,
        TASK_CHANGED_SIGNAL,
        TASK_ORDER_SIGNAL,
        AgreementInput,
        AgreementOverview,
        AgreementPlan,
        AgreementSummary,
        AgreementVersion,
        AmendmentRequest,
        AmendmentResult,
        CalendarUpdate,
        ChangeResult,
        ChangeScope,
        Deadline,
        EventRecord,
        EventResult,
        EventTask,
        LedgerEntry,
        ObligationInput,
        PlannedTask,
        RecordedEvent,
        ResumptionRequest,
        SuccessionRequest,
        Suspended,
        SuspensionRequest,
        TaskChange,
        TaskOrder,
        TaskState,
        before_day_text,
        clip_summary,
        local_text,
        parse_argument,
        task_ref,
        task_workflow_id,
        ui_text,
    )
    from workflows.refusals import refusal
    from workflows.search_attributes import (
        SA_AGREEMENT,
        SA_KIND,
        SA_STATE,
        SA_TENANT,
        digest_search_attributes,
        task_search_attributes,
    )

# Continue-as-new well before the server's 10,240-event warning.
HISTORY_EVENT_BUDGET = 8_000
MAX_STARTS_PER_WAKE = 200
OPEN = (TaskState.PENDING, TaskState.OVERDUE)
LATE = (TaskState.OVERDUE, TaskState.NOT_DONE_OVERDUE)
"""Not done after the deadline: still chased, or closed so."""
MAX_OVERDUE_LISTED = 100
"""Overdue tasks named in the Web UI details (which hold up to 20 KB)."""
Scope = tuple[str, str]
"""An obligation's period, (obligation ID, period label): what a digest covers."""
WEEK = timedelta(days=7)
LATE_DIGEST = timedelta(days=1)
"""A weekly digest whose instant passed more than this long ago while nothing was overdue
(no timer waited for it) is skipped, not sent late when a task becomes overdue again."""
DIGEST_KEY_SCOPE = 120
"""The longest list of period labels a digest's business key names (`a+b+c`)."""


@workflow.defn(name="Agreement")
class AgreementWorkflow:
    @workflow.init
    def __init__(self, input: AgreementInput) -> None:
        self._plan = input.plan
        self._waiting: list[PlannedTask] = sorted(
            input.waiting, key=lambda t: (t.opens_at, t.task_id)
        )
        self._ledger: dict[str, LedgerEntry] = dict(input.ledger)
        self._runs = input.runs
        self._events: dict[str, RecordedEvent] = dict(input.events)
        self._changed = False
        self._finished = False
        self._published_state = ""
        self._ignored_signals = 0
        self._digested_until = input.digested_until
        self._digest_anchor = input.digest_anchor
        self._digests_running: dict[str, asyncio.Task[None]] = {}
        """Digest children of this run not finished yet, by business key: the run closes
        (completes or continues as new) only once each has reported back to it."""
        # Issue 17: a living agreement (amendments, suspensions, successions).
        self._versions: list[AgreementVersion] = list(input.versions)
        self._suspensions: dict[str, Suspended] = dict(input.suspensions)
        self._suspension_scopes: dict[str, ChangeScope] = dict(input.suspension_scopes)
        self._suspended_obligations: dict[str, list[str]] = dict(input.suspended_obligations)
        self._starting: dict[str, list[TaskOrder]] = {}
        """Orders for tasks whose start is in flight, sent once the child exists: a signal
        to a workflow not started yet is lost."""
        self._successions: list[SuccessionRequest] = list(input.successions)
        self._applied: list[str] = list(input.applied_changes)

    @workflow.run
    async def run(self, input: AgreementInput) -> AgreementSummary:
        # `self._plan`, never a copy: an amendment replaces it (dates included).
        zone = self._plan.starts_at.tzinfo
        run_year = workflow.now().astimezone(zone).year
        if self._plan.digest and self._digested_until is None:
            # No digest for due dates before the agreement's workflow existed; weekly ones
            # (while a task is overdue) count from its first day until a due date's digest.
            self._digested_until = workflow.now()
            self._digest_anchor = workflow.now().astimezone(zone).date()
        self._publish()
        while True:
            await self._apply_due_successions()
            await self._start_open_tasks()
            await self._send_digests()
            now = workflow.now()
            if (
                not self._waiting
                and now >= self._plan.ends_at
                and self._all_closed()
                and not self._due_digest_pending()
                and not self._digests_running
            ):
                break
            if self._should_continue_as_new(run_year) and not self._digests_running:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    AgreementInput(
                        plan=self._plan,
                        waiting=self._waiting,
                        ledger=self._ledger,
                        runs=self._runs + 1,
                        events=self._events,
                        digested_until=self._digested_until,
                        digest_anchor=self._digest_anchor,
                        versions=self._versions,
                        suspensions=self._suspensions,
                        suspension_scopes=self._suspension_scopes,
                        suspended_obligations=self._suspended_obligations,
                        successions=self._successions,
                        applied_changes=self._applied,
                    )
                )
            wake_at = self._next_wake(now)
            self._changed = False
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    self._should_wake,
                    timeout=wake_at - now,
                    timeout_summary="mở nhiệm vụ tiếp theo / sang năm mới",
                )
        self._finished = True
        counts = self._counts()
        await workflow.execute_activity(
            "record_audit",
            AuditEntry(
                event_key=f"{self._plan.agreement_id}/completed",
                at=workflow.now(),
                agreement_id=self._plan.agreement_id,
                actor="system",
                action="agreement_completed",
                tenant=self._plan.tenant,
                detail={state: str(n) for state, n in counts.items()},
            ),
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            summary="tổng kết",
        )
        self._publish()
        return AgreementSummary(
            agreement_id=self._plan.agreement_id,
            counts=counts,
            total=len(self._ledger),
            finished_at=workflow.now(),
        )

    # ----------------------------------------------------------------------------------------

    def _next_wake(self, now: datetime) -> datetime:
        plan = self._plan
        candidates = [now + timedelta(days=366)]
        if self._waiting:
            candidates.append(self._waiting[0].opens_at)
        if now < plan.ends_at:
            candidates.append(plan.ends_at)
        digest = self._next_digest(now)
        if digest is not None:
            candidates.append(digest[0])
        succession = self._next_succession()
        if succession is not None:
            candidates.append(self._effective_at(succession))
        local = now.astimezone(plan.starts_at.tzinfo)
        candidates.append(
            local.replace(
                year=local.year + 1, month=1, day=1, hour=0, minute=0, second=0, microsecond=0
            )
        )
        return max(min(candidates), now + timedelta(seconds=1))

    # ----------------------------------------------------------------------------------------
    # The digest by mail (plan.digest): the working day after each due date at the sending
    # time, and weekly while a task is overdue. Each digest instant is handled once: the
    # cursor `_digested_until` (carried over continue-as-new) is the latest one handled, and
    # the outbox sends each (business key, recipient) once whatever the retries.

    def _zone(self) -> tzinfo:
        zone = self._plan.starts_at.tzinfo
        assert zone is not None
        return zone

    def _opening(self, day: date) -> datetime:
        """The sending time on `day`, local."""
        return datetime.combine(day, self._plan.sending_time, tzinfo=self._zone())

    def _working_day_after(self, day: date) -> date:
        """The next working day after `day` (the next day without a calendar, or beyond the
        years the calendar covers)."""
        calendar = self._plan.calendar
        if calendar is not None:
            with contextlib.suppress(CalendarRangeError):
                return calendar.next_working_day(day)
        return day + timedelta(days=1)

    def _working_day_from(self, day: date) -> date:
        """`day` if it is a working day, else the next one."""
        calendar = self._plan.calendar
        if calendar is not None:
            with contextlib.suppress(CalendarRangeError):
                return calendar.roll_forward(day)
        return day

    def _dated_tasks(self) -> list[tuple[Scope, datetime]]:
        """((obligation, period), due instant) of every task with a deadline."""
        dated = [
            ((task_id.split("/")[1], _period_of(task_id)), entry.due_at)
            for task_id, entry in self._ledger.items()
            if entry.due_at is not None
        ]
        dated.extend(
            ((task.obligation_id, task.period_label), task.due_at)
            for task in self._waiting
            if task.due_at is not None
        )
        return dated

    def _due_digests(self) -> dict[date, tuple[set[Scope], set[date]]]:
        """Digest day → (the obligations' periods due, their last days): the working day after
        each task's last day."""
        zone = self._zone()
        days: dict[date, tuple[set[Scope], set[date]]] = {}
        last_days: dict[date, date] = {}
        for scope, due_at in self._dated_tasks():
            last = last_day_of(due_at, zone)
            day = last_days.get(last)
            if day is None:
                day = last_days[last] = self._working_day_after(last)
            scopes, dues = days.setdefault(day, (set(), set()))
            scopes.add(scope)
            dues.add(last)
        return days

    def _overdue_scopes(self) -> set[Scope]:
        """The obligations' periods with a task still overdue."""
        return {
            (task_id.split("/")[1], _period_of(task_id))
            for task_id, entry in self._ledger.items()
            if entry.state is TaskState.OVERDUE and not entry.closed
        }

    def _next_due_digest(self) -> tuple[datetime, list[Scope], list[date]] | None:
        after = self._digested_until
        best: tuple[datetime, list[Scope], list[date]] | None = None
        for day, (scopes, dues) in self._due_digests().items():
            at = self._opening(day)
            if (after is None or at > after) and (best is None or at < best[0]):
                best = (at, sorted(scopes), sorted(dues))
        return best

    def _due_digest_pending(self) -> bool:
        return self._plan.digest and self._next_due_digest() is not None

    def _next_weekly_digest(self, now: datetime) -> datetime | None:
        """The next weekly instant after the cursor (the due-date digest's weekday, rolled to a
        working day), if a task is overdue; one missed by more than LATE_DIGEST is skipped."""
        anchor, after = self._digest_anchor, self._digested_until
        if anchor is None or after is None or not self._overdue_scopes():
            return None
        weeks = max(1, (after.astimezone(self._zone()).date() - anchor).days // 7)
        while True:
            at = self._opening(self._working_day_from(anchor + weeks * WEEK))
            if at > after and at + LATE_DIGEST >= now:
                return at
            weeks += 1

    def _next_digest(
        self, now: datetime
    ) -> tuple[datetime, DigestKind, list[Scope], list[date]] | None:
        if not self._plan.digest:
            return None
        due = self._next_due_digest()
        weekly = self._next_weekly_digest(now)
        if due is not None and (weekly is None or due[0] <= weekly):
            return due[0], "due", due[1], due[2]
        if weekly is not None:
            return weekly, "weekly", sorted(self._overdue_scopes()), []
        return None

    async def _send_digests(self) -> None:
        """Every digest whose instant has come, in order."""
        while True:
            now = workflow.now()
            digest = self._next_digest(now)
            if digest is None or digest[0] > now:
                return
            at, kind, scopes, due_days = digest
            self._digested_until = at
            day = at.astimezone(self._zone()).date()
            if kind == "due":
                self._digest_anchor = day
            await self._send_digest(at, kind, scopes, due_days)

    async def _send_digest(
        self, at: datetime, kind: DigestKind, scopes: list[Scope], due_days: list[date]
    ) -> None:
        plan = self._plan
        day = at.astimezone(self._zone()).date()
        periods = sorted({period for _, period in scopes})
        scope = "weekly" if kind == "weekly" else "+".join(periods)
        if len(scope) > DIGEST_KEY_SCOPE:
            # Business keys hold 400 characters: many periods are named by a digest of them.
            digest = hashlib.sha256(scope.encode()).hexdigest()[:16]
            scope = f"{len(periods)}-periods-{digest}"
        request = DigestRequest(
            business_key=f"{plan.agreement_id}/digest/{scope}/{day.isoformat()}",
            kind=kind,
            scheduled_at=at,
            periods=periods,
            due_days=due_days,
            facts=self._digest_facts(set(scopes)),
        )
        try:
            # A child of its own: the digest is retried until the mail is out while this
            # workflow goes on starting tasks (workflows.digest). The run waits for it before it
            # closes; abandoned anyway, should a run be closed from outside.
            handle = await workflow.start_child_workflow(
                DigestWorkflow.run,
                request,
                id=digest_workflow_id(request.business_key),
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=digest_search_attributes(plan.agreement_id, plan.tenant),
                static_summary=clip_summary(
                    f"Bản tổng hợp · {plan.document_number} · {scope} · {day:%d/%m/%Y}"
                ),
            )
        except WorkflowAlreadyStartedError:
            # Started by an earlier run whose record of it was lost (continue-as-new).
            workflow.logger.info("digest %s already started", request.business_key)
            return
        self._digests_running[request.business_key] = asyncio.create_task(
            self._follow_digest(request.business_key, handle)
        )

    async def _follow_digest(
        self, key: str, handle: workflow.ChildWorkflowHandle[Any, DigestResult]
    ) -> None:
        try:
            await handle
        except ChildWorkflowError as error:  # terminated or cancelled by an admin
            workflow.logger.warning("digest %s did not finish: %s", key, error)
        finally:
            del self._digests_running[key]
            self._changed = True

    def _digest_facts(self, scopes: set[Scope]) -> AgreementFacts:
        """The `facts` of the tasks of these obligations' periods only, with their obligations
        and the calendar cut to their years: what a digest needs, and no more in its
        activity's input."""
        facts = self.facts()
        tasks = [t for t in facts.tasks if (t.obligation_id, t.period_label) in scopes]
        used = {t.obligation_id for t in tasks}
        calendar = facts.calendar
        years = [t.due_at.year for t in tasks if t.due_at is not None]
        if calendar is not None and years:
            first = max(min(years), calendar.first_year)
            last = min(max(years) + 1, calendar.last_year)
            calendar = calendar.between_years(first, last) if first <= last else None
        return facts.model_copy(
            update={
                "tasks": tasks,
                "obligations": {k: o for k, o in facts.obligations.items() if k in used},
                "calendar": calendar,
            }
        )

    def _should_wake(self) -> bool:
        # Task signals arrive between wakes: look at the history's size after each, so a burst
        # of escalations cannot carry a run far past its budget before it notices.
        return self._changed or self._over_budget()

    @staticmethod
    def _over_budget() -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() > HISTORY_EVENT_BUDGET
        )

    def _should_continue_as_new(self, run_year: int) -> bool:
        if self._over_budget():
            return True
        # Also before the period starts: the time-skipping server caps a run at ten years.
        local_year = workflow.now().astimezone(self._plan.starts_at.tzinfo).year
        return local_year != run_year and bool(self._waiting or not self._all_closed())

    def _all_closed(self) -> bool:
        return all(entry.closed for entry in self._ledger.values())

    async def _start_open_tasks(self) -> None:
        now = workflow.now()
        started = 0
        while self._waiting and self._waiting[0].opens_at <= now:
            if started >= MAX_STARTS_PER_WAKE:
                # Give the history a chance to be checked against its budget between batches.
                self._changed = True
                return
            task = self._waiting.pop(0)
            await self._start_task(task)
            started += 1
        if started:
            self._publish()

    async def _start_task(self, task: PlannedTask) -> None:
        plan = self._plan
        obligation = plan.obligations[task.obligation_id]
        # Successions in force reach a task however it was planned (signed, amended, event).
        task = self._succeeded(task)
        ref = task_ref(plan, task).model_copy(update={"original_agency": task.original_agency})
        suspensions = self._suspensions_over(task.task_id)
        state = TaskState.SUSPENDED if suspensions else TaskState.PENDING
        self._ledger[task.task_id] = LedgerEntry(
            state=state,
            due_at=task.due_at,
            # Owners a succession changed before the start (the ID names the original).
            agency=task.agency if task.agency != _id_owners(task.task_id)[0] else None,
            co_owners=(
                list(task.co_owners)
                if list(task.co_owners) != _id_owners(task.task_id)[1:]
                else None
            ),
            written_due_at=task.written_due_at or task.due_at,
        )
        # The child's search attributes come with its start: no upsert event in its history.
        attributes = task_search_attributes(ref, state=state, due_at=task.due_at)
        self._starting[task.task_id] = []
        try:
            await workflow.start_child_workflow(
                ObligationWorkflow.run,
                ObligationInput(
                    task=ref,
                    reminders=obligation.reminders,
                    escalation=obligation.escalation,
                    indicators=obligation.indicators,
                    period_end=plan.period_end,
                    closes_at=plan.closes_at,
                    parent_workflow_id=workflow.info().workflow_id,
                    written_due_at=task.written_due_at,
                    deadline_rule=obligation.deadline_rule,
                    calendar=self._task_calendar(task),
                    sending_time=plan.sending_time,
                    extension_approver=obligation.extension_approver,
                    suspension=suspensions[0] if suspensions else None,
                ),
                id=task_workflow_id(task.task_id),
                # Children outlive each run of this workflow (continue-as-new) and report back
                # by signal, so closing a run must not touch them.
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=attributes,
                static_summary=clip_summary(
                    f"{'+'.join(ref.owners)} · {task.period_label} · {obligation.title}"
                ),
                static_details=ui_text(
                    f"**{obligation.title}**\n\n"
                    f"- Văn bản: {plan.document_number} — {plan.title}\n"
                    f"- Nội dung: {obligation.item_number or 'chế độ báo cáo'}\n"
                    f"- Cơ quan thực hiện: {', '.join(f'`{c}`' for c in ref.owners)}"
                    f"{' (cùng thực hiện)' if ref.co_owners else ''}\n"
                    f"- Nơi nhận: `{obligation.recipient or '—'}`\n"
                    + "".join(f"- Đồng gửi: `{c}`\n" for c in ref.copy_to)
                    + f"- Kỳ: {task.period_label}\n"
                    f"- Hạn: {before_day_text(task.due_at)}\n"
                    f"- Mã nhiệm vụ: `{task.task_id}`"
                ),
            )
        except WorkflowAlreadyStartedError:
            # Started by an earlier run whose record of it was lost; the child reports by signal.
            workflow.logger.info("task %s already started", task.task_id)
            await self._drain_held(task.task_id)
            return
        # Overlapping suspensions (agreement and item): the task waits for the last one. Only
        # those still in force: one lifted while the task was starting sent its resume to the
        # held orders, which the task ignores as not in force on it. They go first.
        self._starting[task.task_id][:0] = [
            self._order(
                task.task_id,
                f"{s.suspension_id}/suspend",
                "suspend",
                actor="system",
                document=s.document,
                reason=s.reason,
                suspension_id=s.suspension_id,
            )[1]
            for s in suspensions[1:]
            if s.suspension_id in self._suspensions
        ]
        await self._drain_held(task.task_id)

    async def _drain_held(self, task_id: str) -> None:
        """Send a started task's held orders one by one, in the order they were accepted. The
        task stays in `_starting` until none is left, so that an order accepted meanwhile
        queues behind them instead of overtaking them."""
        held = self._starting[task_id]
        while held:
            await self._signal_order(task_id, held.pop(0))
        del self._starting[task_id]

    def _task_calendar(self, task: PlannedTask) -> WorkingCalendar | None:
        """The plan's calendar cut to the years around the task, to keep child inputs small."""
        return planner.task_calendar(self._plan.calendar, task.due_at, self._plan.starts_at)

    @workflow.update
    async def change_calendar(self, update: CalendarUpdate | Any = None, *extra: Any) -> str:
        """A newly published calendar, for the tasks not started yet. (Running tasks get it
        by their own update; see `accord calendar --publish`.) The validator refuses an
        unsigned or altered payload, leaving nothing in history."""
        update = parse_argument(CalendarUpdate, "change_calendar", update, extra)
        self._plan = self._plan.model_copy(update={"calendar": update.calendar})
        return self._plan.agreement_id

    @change_calendar.validator
    def _check_calendar(self, update: CalendarUpdate | Any = None, *extra: Any) -> None:
        update = parse_argument(CalendarUpdate, "change_calendar", update, extra)
        require_claim(update, "change_calendar")
        require_publisher(update)

    @workflow.update
    async def record_event(self, record: EventRecord) -> EventResult:
        """An admin records an event (`accord event record`): the obligations waiting for it
        get their tasks, one per owing agency, due the obligation's `within` after the event's
        day under the deadline rule. Recording the same event and label again starts nothing
        and answers with the tasks of the first recording."""
        plan = self._plan
        label = record.label or record.day.isoformat()
        key = f"{record.event}/{label}"
        known = self._events.get(key)
        if known is not None:
            return self._event_result(known, created=False)
        tasks = self._event_tasks(record.event, record.day, label)
        # Noted before the first await, so that a second recording running alongside sees it.
        recorded = RecordedEvent(
            event=record.event,
            label=label,
            day=record.day,
            recorded_at=workflow.now(),
            actor=record.actor.officer_id,
            task_ids=[t.task_id for t in tasks],
        )
        self._events[key] = recorded
        started = set(self._ledger) | {t.task_id for t in self._waiting}
        # The successions in force apply to an event's tasks too (their IDs keep the owners
        # the plan names).
        fresh = [self._succeeded(t) for t in tasks if t.task_id not in started]
        self._waiting = sorted([*self._waiting, *fresh], key=lambda t: (t.opens_at, t.task_id))
        self._changed = True
        await workflow.execute_activity(
            "record_audit",
            AuditEntry(
                event_key=f"{plan.agreement_id}/event/{key}",
                at=workflow.now(),
                agreement_id=plan.agreement_id,
                actor=record.actor.officer_id,
                roles=[role.value for role in record.actor.roles],
                channel=record.claim.channel if record.claim else "system",
                request_id=record.claim.request_id if record.claim else None,
                operator=record.claim.operator if record.claim else None,
                action="event_recorded",
                tenant=plan.tenant,
                detail={
                    "event": record.event,
                    "label": label,
                    "day": record.day.isoformat(),
                    "tasks": ", ".join(recorded.task_ids)[:2000],
                },
            ),
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            summary=f"ghi nhận sự kiện {record.event}",
        )
        return self._event_result(recorded, created=True)

    @record_event.validator
    def _check_event(self, record: EventRecord) -> None:
        plan = self._plan
        require_claim(record, "record_event")
        if record.actor.tenant != plan.tenant:
            raise refusal(
                vi=f"cán bộ {record.actor.officer_id} thuộc {record.actor.tenant} không được ghi "
                f"nhận sự kiện của văn bản thuộc {plan.tenant}",
                en=f"officer {record.actor.officer_id} of {record.actor.tenant} may not record an "
                f"event of an agreement of {plan.tenant}",
            )
        if OfficerRole.ADMIN not in record.actor.roles:
            raise refusal(
                vi="chỉ quản trị viên được ghi nhận sự kiện",
                en="only an admin may record an event",
            )
        events = sorted({o.event for o in plan.obligations.values() if o.event})
        if record.event not in events:
            known_vi = ", ".join(events) or "không có"
            known_en = ", ".join(events) or "none"
            raise refusal(
                vi=f"thỏa thuận không có nghĩa vụ nào chờ sự kiện {record.event!r} "
                f"(các sự kiện: {known_vi})",
                en=f"no obligation of this agreement waits for event {record.event!r} "
                f"(events: {known_en})",
            )
        if not plan.period_start <= record.day <= plan.period_end:
            period = f"{plan.period_start:%d/%m/%Y} – {plan.period_end:%d/%m/%Y}"
            raise refusal(
                vi=f"ngày {record.day:%d/%m/%Y} nằm ngoài thời gian thực hiện {period}",
                en=f"{record.day:%d/%m/%Y} is outside the agreement's period {period}",
            )

    def _event_tasks(self, event: str, day: date, label: str) -> list[PlannedTask]:
        plan = self._plan
        zone = plan.starts_at.tzinfo
        assert zone is not None
        opens_at = max(workflow.now(), plan.starts_at)
        tasks: list[PlannedTask] = []
        for obligation in plan.obligations.values():
            if obligation.event != event or obligation.within is None:
                continue
            written = planner.event_due_at(day, obligation.within, plan.calendar, zone)
            calendar = planner.task_calendar(plan.calendar, written, plan.starts_at)
            moved = planner.deadline(written, obligation.deadline_rule, calendar)
            # Judged by the last day as written, as dated tasks are (agreements/expansion.py).
            last_day = last_day_of(written, zone)
            active = [
                agency
                for agency, span in obligation.owners.items()
                if (span.active_from is None or span.active_from <= last_day)
                and (span.active_until is None or last_day <= span.active_until)
            ]
            for segment, agency, co_owners in owing(active, jointly=obligation.jointly):
                tasks.append(
                    PlannedTask(
                        task_id=f"{plan.agreement_id}/{obligation.obligation_id}/{segment}/{label}",
                        obligation_id=obligation.obligation_id,
                        agency=agency,
                        co_owners=co_owners,
                        period_label=label,
                        due_at=moved.due_at,
                        written_due_at=written,
                        due_note_vi=moved.note_vi,
                        due_note_en=moved.note_en,
                        opens_at=opens_at,
                    )
                )
        return tasks

    def _event_result(self, recorded: RecordedEvent, *, created: bool) -> EventResult:
        plan = self._plan
        planned = {t.task_id: t for t in self._waiting}
        tasks: list[EventTask] = []
        for task_id in recorded.task_ids:
            task = planned.get(task_id)
            entry = self._ledger.get(task_id)
            due_at = task.due_at if task else entry.due_at if entry else None
            if due_at is None:
                continue
            tasks.append(
                EventTask(
                    task_id=task_id,
                    agency=_agency_of(task_id),
                    due_at=due_at,
                    due_note_vi=task.due_note_vi if task else None,
                )
            )
        day = f"{recorded.day:%d/%m/%Y}"
        if created:
            vi = f"Đã ghi nhận sự kiện {recorded.event} ngày {day}: {len(tasks)} nhiệm vụ"
            en = f"Recorded event {recorded.event} of {day}: {len(tasks)} tasks"
        else:
            vi = (
                f"Sự kiện {recorded.event} ({recorded.label}) đã được ghi nhận ngày {day}; "
                "không tạo thêm nhiệm vụ"
            )
            en = (
                f"Event {recorded.event} ({recorded.label}) was already recorded for {day}; "
                "no task added"
            )
        return EventResult(
            agreement_id=plan.agreement_id,
            event=recorded.event,
            label=recorded.label,
            day=recorded.day,
            created=created,
            tasks=tasks,
            message=vi,
            message_en=en,
        )

    # ----------------------------------------------------------------------------------------
    # A living agreement (issue 17): amendments, suspensions, resumptions and successions,
    # each accepted by an update whose validator checks the admin's signed claim, each ID
    # applied once (`applied_changes`). Running tasks get orders (`task_order` signal); tasks
    # not started yet are changed in `waiting`.

    @workflow.query
    def current_plan(self) -> AgreementPlan:
        """The plan in force: the signed one, or the latest amendment's, with the recipients
        that successions applied so far changed."""
        return self._plan

    def _version(self) -> AgreementVersion:
        if self._versions:
            return self._versions[-1]
        return AgreementVersion(
            number=1, document=self._plan.document_number, in_force_since=self._plan.starts_at
        )

    @workflow.update
    async def amend(self, request: AmendmentRequest) -> AmendmentResult:
        """A new version of the agreement (`accord amend`): new tasks are planned (started now
        when their window is open), tasks it no longer plans are withdrawn (dropped when not
        started), changed due dates move (`workflows.amendment.task_diff`). The same
        amendment again changes nothing (applied=False)."""
        plan = self._plan
        if request.amendment_id in self._applied:
            version = next(
                (v for v in self._versions if v.amendment_id == request.amendment_id),
                self._version(),
            )
            return AmendmentResult(
                agreement_id=plan.agreement_id,
                version=version.number,
                applied=False,
                message=f"Văn bản sửa đổi {version.document} đã được áp dụng (phiên bản "
                f"{version.number}); không thay đổi gì thêm",
                message_en=f"Amendment {version.document} was already applied (version "
                f"{version.number}); nothing changed",
            )
        # Noted before the first await, so that the same amendment alongside changes nothing.
        self._applied.append(request.amendment_id)
        now = workflow.now()
        new_plan = self._succeeded_plan(
            request.plan.model_copy(update={"digest": plan.digest, "calendar": plan.calendar})
            if request.plan.calendar is None
            else request.plan.model_copy(update={"digest": plan.digest})
        )
        new_tasks = [self._succeeded(t) for t in request.tasks]
        known = [
            KnownTask(
                task_id=task_id,
                due_at=entry.due_at,
                written_due_at=entry.written_due_at,
                state=entry.state,
                closed=entry.closed,
            )
            for task_id, entry in self._ledger.items()
        ]
        known += [
            KnownTask(
                task_id=t.task_id,
                due_at=t.due_at,
                written_due_at=t.written_due_at,
                state=None,
                planned=t,
            )
            for t in self._waiting
        ]
        diff = task_diff(known, new_tasks, now, event_obligations(new_plan))
        summary = list(request.summary) or plan_diff(plan, new_plan)
        if not self._versions:
            self._versions.append(self._version())
        version = AgreementVersion(
            number=self._versions[-1].number + 1,
            document=request.document,
            in_force_since=now,
            amendment_id=request.amendment_id,
            summary=summary[:200],
        )
        self._versions.append(version)
        self._plan = new_plan
        dropped = set(diff.withdrawn_waiting)
        replaced = {t.task_id: t for t in diff.moved_waiting}
        self._waiting = sorted(
            [replaced.get(t.task_id, t) for t in self._waiting if t.task_id not in dropped]
            + diff.added,
            key=lambda t: (t.opens_at, t.task_id),
        )
        orders: list[tuple[str, TaskOrder]] = []
        for task_id in diff.withdrawn_started:
            orders.append(
                self._order(
                    task_id,
                    f"{request.amendment_id}/withdraw",
                    "withdraw",
                    actor=request.actor.officer_id,
                    document=request.document,
                )
            )
        for task in diff.moved_started:
            written = task.written_due_at or task.due_at
            entry = self._ledger[task.task_id]
            self._ledger[task.task_id] = entry.model_copy(update={"written_due_at": written})
            orders.append(
                self._order(
                    task.task_id,
                    f"{request.amendment_id}/move_due",
                    "move_due",
                    actor=request.actor.officer_id,
                    document=request.document,
                    written_due_at=written,
                )
            )
        self._changed = True
        await self._send_orders(orders)
        added = [t.task_id for t in diff.added]
        withdrawn = sorted([*diff.withdrawn_started, *diff.withdrawn_waiting])
        moved = sorted([*(t.task_id for t in diff.moved_started), *replaced])
        await self._audit(
            key=f"amended/{request.amendment_id}",
            action="agreement_amended",
            request=request,
            detail={
                "document": request.document,
                "version": str(version.number),
                "added": ", ".join(added)[:2000],
                "withdrawn": ", ".join(withdrawn)[:2000],
                "moved": ", ".join(moved)[:2000],
                "skipped": ", ".join(diff.skipped)[:2000],
                "summary": "\n".join(summary)[:2000],
            },
            summary=f"sửa đổi theo {request.document}",
        )
        self._publish_details()
        return AmendmentResult(
            agreement_id=plan.agreement_id,
            version=version.number,
            applied=True,
            added=added,
            withdrawn=withdrawn,
            moved=moved,
            message=f"Đã áp dụng {request.document} (phiên bản {version.number}): thêm "
            f"{len(added)}, rút {len(withdrawn)}, đổi hạn {len(moved)} nhiệm vụ",
            message_en=f"Applied {request.document} (version {version.number}): "
            f"{len(added)} added, {len(withdrawn)} withdrawn, {len(moved)} moved",
        )

    @amend.validator
    def _check_amend(self, request: AmendmentRequest) -> None:
        plan = self._plan
        self._check_admin(request, "amend", vi="sửa đổi", en="amend")
        if request.plan.agreement_id != plan.agreement_id or request.plan.tenant != plan.tenant:
            raise refusal(
                vi=f"văn bản sửa đổi dành cho {request.plan.agreement_id} ({request.plan.tenant}),"
                f" không phải {plan.agreement_id} ({plan.tenant})",
                en=f"the amendment is for {request.plan.agreement_id} ({request.plan.tenant}), "
                f"not {plan.agreement_id} ({plan.tenant})",
            )
        for task in request.tasks:
            parts = task.task_id.split("/")
            if (
                len(parts) < 4
                or parts[0] != plan.agreement_id
                or parts[1] != task.obligation_id
                or task.obligation_id not in request.plan.obligations
            ):
                raise refusal(
                    vi=f"nhiệm vụ {task.task_id[:200]!r} không thuộc văn bản sửa đổi",
                    en=f"task {task.task_id[:200]!r} is not one of the amendment's",
                )

    @workflow.update
    async def suspend(self, request: SuspensionRequest) -> ChangeResult:
        """Suspend the agreement, an item or an obligation: its running open tasks get a
        suspend order, tasks started while it lasts start suspended."""
        plan = self._plan
        if request.suspension_id in self._applied:
            return self._not_again(f"tạm dừng {request.suspension_id}", request.suspension_id)
        self._applied.append(request.suspension_id)
        suspended = Suspended(
            suspension_id=request.suspension_id,
            since=workflow.now(),
            document=request.document,
            reason=request.reason,
        )
        self._suspensions[request.suspension_id] = suspended
        self._suspension_scopes[request.suspension_id] = request.scope
        self._suspended_obligations[request.suspension_id] = [
            key for key in sorted(plan.obligations) if self._covers(request.scope, key)
        ]
        reached = [
            task_id
            for task_id, entry in sorted(self._ledger.items())
            if not entry.closed and self._suspension_covers(request.suspension_id, task_id)
        ]
        await self._send_orders(
            [
                self._order(
                    task_id,
                    f"{request.suspension_id}/suspend",
                    "suspend",
                    actor=request.actor.officer_id,
                    document=request.document,
                    reason=request.reason,
                    suspension_id=request.suspension_id,
                )
                for task_id in reached
            ]
        )
        await self._audit(
            key=f"suspended/{request.suspension_id}",
            action="agreement_suspended",
            request=request,
            detail={
                "suspension": request.suspension_id,
                "scope": request.scope.key,
                "document": request.document,
                "reason": request.reason[:2000],
                "tasks": ", ".join(reached)[:2000],
            },
            summary=f"tạm dừng theo {request.document}",
        )
        self._publish_details()
        scope = request.scope.text_vi
        return ChangeResult(
            agreement_id=plan.agreement_id,
            applied=True,
            tasks=reached,
            message=f"Đã tạm dừng {scope} theo {request.document}: {len(reached)} nhiệm vụ "
            "đang thực hiện",
            message_en=f"Suspended {request.scope.key} by {request.document}: {len(reached)} "
            "running tasks",
        )

    @suspend.validator
    def _check_suspend(self, request: SuspensionRequest) -> None:
        self._check_admin(request, "suspend", vi="tạm dừng", en="suspend")
        scope = request.scope
        obligations = self._plan.obligations
        if scope.obligation_id is not None and scope.obligation_id not in obligations:
            raise refusal(
                vi=f"văn bản không có nghĩa vụ {scope.obligation_id!r}",
                en=f"the agreement has no obligation {scope.obligation_id!r}",
            )
        if scope.item is not None and all(
            o.item_number != scope.item for o in obligations.values()
        ):
            raise refusal(
                vi=f"văn bản không có nội dung (mục) {scope.item!r}",
                en=f"the agreement has no item {scope.item!r}",
            )
        if (
            scope.item is not None
            and scope.obligation_id is not None
            and obligations[scope.obligation_id].item_number != scope.item
        ):
            raise refusal(
                vi=f"nghĩa vụ {scope.obligation_id!r} không thuộc mục {scope.item!r}",
                en=f"obligation {scope.obligation_id!r} is not in item {scope.item!r}",
            )

    @workflow.update
    async def resume(self, request: ResumptionRequest) -> ChangeResult:
        """Lift a suspension: its running tasks get a resume order (deadlines moved by the time
        they were suspended when `shift_deadlines`). Tasks not started yet were never
        suspended: their deadlines stay."""
        plan = self._plan
        change_id = f"resume:{request.suspension_id}"
        if change_id in self._applied:
            return self._not_again(f"tiếp tục {request.suspension_id}", change_id)
        self._applied.append(change_id)
        self._suspensions.pop(request.suspension_id)
        reached = [
            task_id
            for task_id, entry in sorted(self._ledger.items())
            if not entry.closed and self._suspension_covers(request.suspension_id, task_id)
        ]
        scope = self._suspension_scopes.pop(request.suspension_id, ChangeScope())
        self._suspended_obligations.pop(request.suspension_id, None)
        await self._send_orders(
            [
                self._order(
                    task_id,
                    f"{change_id}/resume",
                    "resume",
                    actor=request.actor.officer_id,
                    document=request.document,
                    reason=request.reason,
                    suspension_id=request.suspension_id,
                    shift_deadline=request.shift_deadlines,
                )
                for task_id in reached
            ]
        )
        await self._audit(
            key=f"resumed/{request.suspension_id}",
            action="agreement_resumed",
            request=request,
            detail={
                "suspension": request.suspension_id,
                "scope": scope.key,
                "document": request.document,
                "reason": request.reason[:2000],
                "shift_deadlines": str(request.shift_deadlines).lower(),
                "tasks": ", ".join(reached)[:2000],
            },
            summary=f"tiếp tục theo {request.document}",
        )
        self._publish_details()
        moved_vi = "lùi hạn" if request.shift_deadlines else "giữ nguyên hạn"
        moved_en = "deadlines moved" if request.shift_deadlines else "deadlines kept"
        return ChangeResult(
            agreement_id=plan.agreement_id,
            applied=True,
            tasks=reached,
            message=f"Đã tiếp tục {scope.text_vi} theo {request.document} ({moved_vi}): "
            f"{len(reached)} nhiệm vụ",
            message_en=f"Resumed {scope.key} by {request.document} ({moved_en}): "
            f"{len(reached)} tasks",
        )

    @resume.validator
    def _check_resume(self, request: ResumptionRequest) -> None:
        self._check_admin(request, "resume", vi="tiếp tục thực hiện", en="resume")
        if (
            f"resume:{request.suspension_id}" not in self._applied
            and request.suspension_id not in self._suspensions
        ):
            known = ", ".join(sorted(self._suspensions))
            raise refusal(
                vi=f"không có quyết định tạm dừng {request.suspension_id!r} đang có hiệu lực "
                f"(đang tạm dừng: {known or 'không có'})",
                en=f"no suspension {request.suspension_id!r} is in force "
                f"(in force: {known or 'none'})",
            )

    @workflow.update
    async def succeed(self, request: SuccessionRequest) -> ChangeResult:
        """A succession (`accord succession apply`): applied at local midnight of its
        effective day (now when already past) by the workflow's own timer, to the tasks then
        open or waiting and to those planned later."""
        plan = self._plan
        if request.succession_id in self._applied:
            return self._not_again(f"kế thừa {request.succession_id}", request.succession_id)
        self._applied.append(request.succession_id)
        self._successions.append(request.model_copy(update={"claim": None}))
        self._changed = True
        await self._audit(
            key=f"succession/{request.succession_id}",
            action="succession_applied",
            request=request,
            detail={
                "succession": request.succession_id,
                "document": request.document,
                "effective": request.effective.isoformat(),
                "transfers": ", ".join(
                    f"{t.from_agency}->{t.to_agency}"
                    + (f" ({'+'.join(t.obligations)})" if t.obligations else "")
                    for t in request.transfers
                )[:2000],
            },
            summary=f"kế thừa theo {request.document}",
        )
        # Already effective: applied now, and the tasks it reaches named in the answer.
        reached = await self._apply_due_successions()
        return ChangeResult(
            agreement_id=plan.agreement_id,
            applied=True,
            tasks=reached,
            message=f"Đã ghi nhận việc kế thừa theo {request.document}, hiệu lực từ "
            f"{request.effective:%d/%m/%Y}: {len(reached)} nhiệm vụ chuyển giao ngay",
            message_en=f"Succession by {request.document} recorded, effective "
            f"{request.effective:%d/%m/%Y}: {len(reached)} tasks transferred now",
        )

    @succeed.validator
    def _check_succeed(self, request: SuccessionRequest) -> None:
        self._check_admin(request, "succeed", vi="áp dụng việc kế thừa", en="apply a succession")
        for transfer in request.transfers:
            if transfer.from_agency == transfer.to_agency:
                raise refusal(
                    vi=f"cơ quan {transfer.from_agency} không thể kế thừa chính mình",
                    en=f"agency {transfer.from_agency} cannot succeed itself",
                )

    def _check_admin(self, payload: Any, update: str, *, vi: str, en: str) -> None:
        """The rules every change shares: a signed claim for this update first, then an admin
        of the agreement's tenant."""
        plan = self._plan
        require_claim(payload, update)
        actor = payload.actor
        if actor.tenant != plan.tenant:
            raise refusal(
                vi=f"cán bộ {actor.officer_id} thuộc {actor.tenant} không được {vi} văn bản "
                f"thuộc {plan.tenant}",
                en=f"officer {actor.officer_id} of {actor.tenant} may not {en} an agreement "
                f"of {plan.tenant}",
            )
        if OfficerRole.ADMIN not in actor.roles:
            raise refusal(vi=f"chỉ quản trị viên được {vi}", en=f"only an admin may {en}")

    def _not_again(self, what: str, change_id: str) -> ChangeResult:
        return ChangeResult(
            agreement_id=self._plan.agreement_id,
            applied=False,
            message=f"Thay đổi {what} đã được áp dụng; không thay đổi gì thêm",
            message_en=f"Change {change_id} was already applied; nothing changed",
        )

    async def _audit(
        self, *, key: str, action: str, request: Any, detail: dict[str, str], summary: str
    ) -> None:
        plan = self._plan
        claim = request.claim
        await workflow.execute_activity(
            "record_audit",
            AuditEntry(
                event_key=f"{plan.agreement_id}/{key}",
                at=workflow.now(),
                agreement_id=plan.agreement_id,
                actor=request.actor.officer_id,
                roles=[role.value for role in request.actor.roles],
                channel=claim.channel if claim else "system",
                request_id=claim.request_id if claim else None,
                operator=claim.operator if claim else None,
                action=action,
                tenant=plan.tenant,
                detail=detail,
            ),
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            summary=summary,
        )

    def _order(
        self, task_id: str, order_id: str, kind: Any, *, actor: str, document: str, **fields: Any
    ) -> tuple[str, TaskOrder]:
        """An order to one running task (`order_id` unique per task: `<change>/<kind>`)."""
        return task_id, TaskOrder(
            order_id=order_id,
            agreement_workflow_id=workflow.info().workflow_id,
            kind=kind,
            at=workflow.now(),
            document=document,
            actor=actor,
            **fields,
        )

    async def _send_orders(self, orders: list[tuple[str, TaskOrder]]) -> None:
        """Signal each order to its task, all at once; one for a task being started waits for
        its start (`_starting`). A task that has just closed (its last report on the way)
        cannot take it: logged, nothing else to do."""

        async def send(task_id: str, order: TaskOrder) -> None:
            if task_id in self._starting:
                self._starting[task_id].append(order)
                return
            await self._signal_order(task_id, order)

        if orders:
            await asyncio.gather(*(send(task_id, order) for task_id, order in orders))

    async def _signal_order(self, task_id: str, order: TaskOrder) -> None:
        try:
            await workflow.get_external_workflow_handle(task_workflow_id(task_id)).signal(
                TASK_ORDER_SIGNAL, order
            )
        except Exception as error:  # the task is gone: nothing to order
            workflow.logger.warning(
                "order %s to %s not delivered: %s", order.order_id, task_id, error
            )

    def _covers(self, scope: ChangeScope, obligation_id: str) -> bool:
        if scope.obligation_id is not None:
            return scope.obligation_id == obligation_id
        if scope.item is not None:
            obligation = self._plan.obligations.get(obligation_id)
            return obligation is not None and obligation.item_number == scope.item
        return True

    def _suspension_covers(self, suspension_id: str, task_id: str) -> bool:
        """Whether a suspension in force covers a task: its scope in the plan now (an item's
        obligations added by an amendment are covered) or the obligations it covered when it
        was made (an amendment renumbering the item does not free them)."""
        obligation_id = task_id.split("/")[1]
        return obligation_id in self._suspended_obligations.get(suspension_id, ()) or self._covers(
            self._suspension_scopes.get(suspension_id, ChangeScope()), obligation_id
        )

    def _suspensions_over(self, task_id: str) -> list[Suspended]:
        """The suspensions in force over a task, oldest first."""
        return sorted(
            (s for key, s in self._suspensions.items() if self._suspension_covers(key, task_id)),
            key=lambda s: (s.since, s.suspension_id),
        )

    # Successions --------------------------------------------------------------------------

    def _effective_at(self, succession: SuccessionRequest) -> datetime:
        """Local midnight of the effective day."""
        return datetime.combine(succession.effective, datetime.min.time(), tzinfo=self._zone())

    def _applied_successions(self) -> list[SuccessionRequest]:
        """The successions applied so far, in the order they took effect (a chain A → C,
        C → D gives D whatever order they were sent in)."""
        return sorted(
            (s for s in self._successions if f"{s.succession_id}/applied" in self._applied),
            key=lambda s: (s.effective, s.succession_id),
        )

    def _next_succession(self) -> SuccessionRequest | None:
        due = [s for s in self._successions if f"{s.succession_id}/applied" not in self._applied]
        return min(due, key=lambda s: (s.effective, s.succession_id)) if due else None

    def _succeeded_owners(
        self,
        owners: list[str],
        obligation_id: str,
        successions: list[SuccessionRequest] | None = None,
    ) -> list[str]:
        """The owners after the successions (applied ones by default), in order, each once.
        Successions of one day are one change: a chain A → C, C → D that day gives D whatever
        their IDs (passes until nothing changes, at most one per transfer: a cycle stops)."""
        current = list(owners)
        applied = self._applied_successions() if successions is None else successions
        for _, same_day in itertools.groupby(applied, key=lambda s: s.effective):
            transfers = [
                t
                for succession in same_day
                for t in succession.transfers
                if t.obligations is None or obligation_id in t.obligations
            ]
            for _ in range(len(transfers)):
                passed = [
                    next((t.to_agency for t in transfers if t.from_agency == a), a) for a in current
                ]
                if passed == current:
                    break
                current = passed
        return list(dict.fromkeys(current))

    def _succeeded(self, task: PlannedTask) -> PlannedTask:
        """A planned task with the successions applied so far: owed by the successors of its
        original owners (the task ID keeps the original)."""
        original = (
            _id_owners(task.task_id)
            if _agency_of(task.task_id)
            else [task.original_agency or task.agency, *task.co_owners]
        )
        owners = self._succeeded_owners(original, task.obligation_id)
        update = {
            "agency": owners[0],
            "co_owners": owners[1:],
            "original_agency": original[0] if owners[0] != original[0] else None,
        }
        if update == {
            "agency": task.agency,
            "co_owners": list(task.co_owners),
            "original_agency": task.original_agency,
        }:
            return task
        return task.model_copy(update=update)

    def _succeeded_plan(self, plan: AgreementPlan) -> AgreementPlan:
        """The plan with each obligation's recipient passed to its successor."""
        obligations = dict(plan.obligations)
        for key, obligation in plan.obligations.items():
            if obligation.recipient is None:
                continue
            recipient = self._succeeded_owners([obligation.recipient], key)[0]
            if recipient != obligation.recipient:
                obligations[key] = obligation.model_copy(update={"recipient": recipient})
        return plan.model_copy(update={"obligations": obligations})

    async def _apply_due_successions(self) -> list[str]:
        """Apply every succession whose effective midnight has come, together: the task IDs
        transferred or re-addressed now. Successions taking effect on the same day (Quảng
        Bình's bodies and its districts on 01/07/2025) give each task one order, so that a
        task whose owner and recipient both change is not first re-addressed to its former
        owner."""
        batch: list[SuccessionRequest] = []
        while (succession := self._next_succession()) is not None:
            if self._effective_at(succession) > workflow.now():
                break
            self._applied.append(f"{succession.succession_id}/applied")
            batch.append(succession)
        return await self._apply_successions(batch) if batch else []

    async def _apply_successions(self, batch: list[SuccessionRequest]) -> list[str]:
        """Waiting tasks of a `from_agency` pass to its successor; obligations received by one
        get the successor as recipient; open started tasks get one transfer order (new owners,
        new recipient) naming the documents that changed them. Closed tasks keep their
        history."""
        before = self._plan
        earlier = [s for s in self._applied_successions() if s not in batch]
        self._waiting = [self._succeeded(t) for t in self._waiting]
        self._plan = self._succeeded_plan(before)
        orders: list[tuple[str, TaskOrder]] = []
        touched: dict[str, list[str]] = {s.succession_id: [] for s in batch}
        order_id = (
            batch[0].succession_id
            if len(batch) == 1
            else f"{batch[0].succession_id}+{len(batch) - 1}"
        )
        for task_id, entry in sorted(self._ledger.items()):
            if entry.closed:
                continue
            obligation_id = task_id.split("/")[1]
            original = _id_owners(task_id)
            was = self._succeeded_owners(original, obligation_id, earlier)
            now = self._succeeded_owners(original, obligation_id)
            old_obligation = before.obligations.get(obligation_id)
            new_obligation = self._plan.obligations.get(obligation_id)
            recipient = (
                new_obligation.recipient
                if old_obligation is not None
                and new_obligation is not None
                and new_obligation.recipient != old_obligation.recipient
                else None
            )
            if was == now and recipient is None:
                continue
            concerned = {*was}
            if old_obligation is not None and old_obligation.recipient is not None:
                concerned.add(old_obligation.recipient)
            relevant = [
                (s, t)
                for s in batch
                for t in s.transfers
                if t.from_agency in concerned
                and (t.obligations is None or obligation_id in t.obligations)
            ]
            deciding = list(dict.fromkeys(s.succession_id for s, _ in relevant))
            documents = list(dict.fromkeys(t.document or s.document for s, t in relevant))
            for succession_id in deciding or touched:
                touched[succession_id].append(task_id)
            last = next(s for s in reversed(batch) if not deciding or s.succession_id in deciding)
            if now != was:
                self._ledger[task_id] = entry.model_copy(
                    update={
                        "agency": now[0] if now[0] != original[0] else None,
                        "co_owners": now[1:] if now[1:] != original[1:] else None,
                    }
                )
            orders.append(
                self._order(
                    task_id,
                    f"{order_id}/transfer",
                    "transfer",
                    actor=last.actor.officer_id,
                    document=clip_summary("; ".join(documents) or last.document, 300),
                    agency=now[0],
                    co_owners=now[1:],
                    recipient=recipient,
                    effective=last.effective,
                )
            )
        await self._send_orders(orders)
        self._changed = True
        for succession in batch:
            await workflow.execute_activity(
                "record_audit",
                AuditEntry(
                    event_key=(
                        f"{before.agreement_id}/succession/{succession.succession_id}/applied"
                    ),
                    at=workflow.now(),
                    agreement_id=before.agreement_id,
                    actor="system",
                    action="succession_applied",
                    tenant=before.tenant,
                    detail={
                        "succession": succession.succession_id,
                        "document": succession.document,
                        "effective": succession.effective.isoformat(),
                        "tasks": ", ".join(touched[succession.succession_id])[:2000],
                    },
                ),
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
                summary=f"chuyển giao theo {succession.document}",
            )
        self._publish_details()
        return [task_id for task_id, _ in orders]

    @workflow.signal(name=TASK_CHANGED_SIGNAL)
    def task_changed(self, change: TaskChange | Any = None, *extra: Any) -> None:
        """A task's new state (sent by the task itself). A malformed payload, or one about a
        task this agreement never started, is logged and ignored."""
        try:
            change = parse_argument(TaskChange, TASK_CHANGED_SIGNAL, change, extra)
        except ValueError as error:
            self._ignore_signal(str(error))
            return
        previous = self._ledger.get(change.task_id)
        if previous is None:
            self._ignore_signal(f"{TASK_CHANGED_SIGNAL}: unknown task {change.task_id[:200]!r}")
            return
        if previous.closed:
            return
        self._ledger[change.task_id] = LedgerEntry(
            state=change.state,
            due_at=change.due_at,
            escalation_level=change.escalation_level,
            closed=change.closed,
            agency=change.agency or previous.agency,
            co_owners=previous.co_owners,
            written_due_at=previous.written_due_at,
        )
        if change.closed:
            self._changed = True
        if change.state is not previous.state or change.closed:
            self._publish_details()

    def _ignore_signal(self, why: str) -> None:
        self._ignored_signals += 1
        workflow.logger.warning("signal ignored: %s", why)

    @workflow.query
    def overview(self) -> AgreementOverview:
        dated = sorted(
            (e.due_at, task_id, e)
            for task_id, e in self._ledger.items()
            if e.due_at is not None and e.state in (*OPEN, TaskState.NOT_DONE_OVERDUE)
        )
        return AgreementOverview(
            agreement_id=self._plan.agreement_id,
            document_number=self._plan.document_number,
            counts=self._counts(),
            waiting=len(self._waiting),
            started=len(self._ledger),
            closed=sum(1 for e in self._ledger.values() if e.closed),
            next_deadlines=[
                _deadline(task_id, e) for _, task_id, e in dated if e.state is TaskState.PENDING
            ][:10],
            overdue=[_deadline(task_id, e) for _, task_id, e in dated if e.state in LATE],
            runs=self._runs,
            finished=self._finished,
            ignored_signals=self._ignored_signals,
            version=self._versions[-1] if self._versions else None,
            suspensions=[self._suspensions[k] for k in sorted(self._suspensions)],
            suspension_scopes={
                k: self._suspension_scopes.get(k, ChangeScope()) for k in sorted(self._suspensions)
            },
        )

    @workflow.query
    def facts(self) -> AgreementFacts:
        """The engine's side of a consolidated report (reports.model.ReportInputs): every
        task this agreement started, with its ledger entry, and every task still waiting (state
        None), the obligations and the calendar, at the current workflow time."""
        plan = self._plan
        tasks = [self._started_fact(task_id, entry) for task_id, entry in self._ledger.items()]
        tasks += [
            TaskFact(
                task_id=task.task_id,
                obligation_id=task.obligation_id,
                agency=task.agency,
                co_owners=list(task.co_owners),
                period_label=task.period_label,
                state=None,
                due_at=task.due_at,
                original_agency=task.original_agency,
                written_due_at=task.written_due_at,
            )
            for task in self._waiting
        ]
        return AgreementFacts(
            agreement_id=plan.agreement_id,
            tenant=plan.tenant,
            document_number=plan.document_number,
            title=plan.title,
            issuer=plan.issuer,
            time_zone=plan.time_zone,
            period_start=plan.period_start,
            period_end=plan.period_end,
            as_of=workflow.now(),
            obligations={
                key: ObligationFact(
                    obligation_id=obligation.obligation_id,
                    item_number=obligation.item_number,
                    title=obligation.title,
                    deliverable=obligation.deliverable,
                    recipient=obligation.recipient,
                    indicators=list(obligation.indicators),
                    extension_approver=list(obligation.extension_approver),
                )
                for key, obligation in plan.obligations.items()
            },
            tasks=sorted(tasks, key=lambda t: t.task_id),
            calendar=plan.calendar,
        )

    def _started_fact(self, task_id: str, entry: LedgerEntry) -> TaskFact:
        """A started task's fact, owed by its current owners (the ledger's, recorded when a
        succession changed them while it was open); the original lead when it passed. A task
        closed before keeps the owners its ID names."""
        fact = _task_fact(task_id, entry.state, entry.due_at, entry.escalation_level, entry.closed)
        fact = fact.model_copy(update={"written_due_at": entry.written_due_at})
        if entry.agency is None and entry.co_owners is None:
            return fact
        lead = entry.agency or fact.agency
        return fact.model_copy(
            update={
                "agency": lead,
                "co_owners": (
                    entry.co_owners
                    if entry.co_owners is not None
                    else [a for a in fact.co_owners if a != lead]
                ),
                "original_agency": fact.agency if lead != fact.agency else None,
            }
        )

    def _counts(self) -> dict[str, int]:
        counter = Counter(entry.state.value for entry in self._ledger.values())
        return {state.value: counter.get(state.value, 0) for state in TaskState}

    def _publish(self) -> None:
        state = "finished" if self._finished else "running"
        if state != self._published_state:
            # Each upsert is a history event: only when the value changes.
            self._published_state = state
            workflow.upsert_search_attributes(
                [
                    SA_KIND.value_set("agreement"),
                    SA_AGREEMENT.value_set(self._plan.agreement_id),
                    SA_TENANT.value_set(self._plan.tenant),
                    SA_STATE.value_set(state),
                ]
            )
        self._publish_details()

    def _publish_details(self) -> None:
        """The agreement's current details in the Web UI: counts by state and, so that an admin
        sees who is late on what without opening each task, the overdue tasks by agency."""
        counts = self._counts()
        lines = [
            f"**{self._plan.document_number} — {self._plan.title}**",
            "",
            f"- Thời gian: {self._plan.period_start:%d/%m/%Y} – {self._plan.period_end:%d/%m/%Y}",
            f"- Nhiệm vụ đã mở: {len(self._ledger)}, chưa đến kỳ: {len(self._waiting)}",
        ]
        lines.extend(
            f"- {STATE_LABELS_VI[s]}: {counts[s.value]}" for s in TaskState if counts[s.value]
        )
        zone = self._plan.starts_at.tzinfo
        if self._versions:
            version = self._versions[-1]
            lines.append(
                f"- Phiên bản {version.number}, có hiệu lực từ "
                f"{local_text(version.in_force_since.astimezone(zone))} theo "
                f"{clip_summary(version.document, 120)}"
            )
        for key in sorted(self._suspensions):
            suspended = self._suspensions[key]
            scope = self._suspension_scopes.get(key, ChangeScope())
            lines.append(
                f"- Tạm dừng {scope.text_vi} từ "
                f"{local_text(suspended.since.astimezone(zone))} theo "
                f"{clip_summary(suspended.document, 120)}"
            )
        lines.append(f"- Cập nhật: {local_text(workflow.now().astimezone(zone))}")
        overdue = sorted(
            (
                entry.agency or _agency_of(task_id),
                entry.due_at or self._plan.ends_at,
                task_id,
                entry,
            )
            for task_id, entry in self._ledger.items()
            if entry.state in LATE
        )
        if overdue:
            lines += ["", f"**Quá hạn, chưa nộp ({len(overdue)}):**", ""]
            for agency, due_at, task_id, entry in overdue[:MAX_OVERDUE_LISTED]:
                obligation = self._plan.obligations.get(task_id.split("/")[1])
                title = obligation.title if obligation else task_id
                lines.append(
                    f"- `{agency}` · {clip_summary(title, 80)} · {_period_of(task_id)} · "
                    f"{before_day_text(due_at)} · mức đôn đốc {entry.escalation_level}"
                    + (" (đã đóng)" if entry.closed else "")
                )
            if len(overdue) > MAX_OVERDUE_LISTED:
                lines.append(f"- … và {len(overdue) - MAX_OVERDUE_LISTED} nhiệm vụ khác")
        workflow.set_current_details(ui_text("\n".join(lines)))


def _agency_of(task_id: str) -> str:
    """The agency part of a task ID (`agreement/obligation/agency/period`)."""
    return task_id.split("/")[2] if task_id.count("/") >= 3 else ""


def _id_owners(task_id: str) -> list[str]:
    """The owners a task ID names, lead first (`A+B`): the original ones."""
    return _agency_of(task_id).split(JOINT_SEPARATOR)


def _task_fact(
    task_id: str, state: TaskState, due_at: datetime | None, level: int, closed: bool
) -> TaskFact:
    """A started task's fact: its obligation, owners and period are parts of its ID
    (`agreement/obligation/agency/period`, a joint task's agency `A+B`, led by A)."""
    _, obligation_id, segment, period = task_id.split("/", 3)
    owners = segment.split(JOINT_SEPARATOR)
    return TaskFact(
        task_id=task_id,
        obligation_id=obligation_id,
        agency=owners[0],
        co_owners=owners[1:],
        period_label=period,
        state=state,
        due_at=due_at,
        escalation_level=level,
        closed=closed,
    )


def _period_of(task_id: str) -> str:
    return task_id.split("/", 3)[3] if task_id.count("/") >= 3 else ""


def _deadline(task_id: str, entry: LedgerEntry) -> Deadline:
    assert entry.due_at is not None
    return Deadline(
        task_id=task_id,
        agency=entry.agency or _agency_of(task_id),
        due_at=entry.due_at,
        state=entry.state,
        escalation_level=entry.escalation_level,
    )
