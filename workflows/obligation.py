"""Obligation workflow: one agency owes one deliverable for one period by one due instant.

It sleeps until the next reminder, the due instant or the next escalation step, whichever comes
first, and wakes early when an update changes the picture (a report, an extension, a waiver).
What comes next, when, and to which roles is decided by the pure planner
(`agreements/planner.py`), which `accord plan` also runs; this class is the shell that sleeps,
sends and records. All time comes from `workflow.now()`; recipients are resolved by the mail
activity at send time.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Coroutine, Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from activities.models import (
        Actor,
        AuditBatch,
        AuditEntry,
        IndicatorValue,
        NotificationKind,
        NotificationRequest,
        NotificationResult,
        Ratio,
        RecordSubmission,
    )
    from agreements import planner
    from agreements.models import (
        ExtensionApprover,
        IndicatorKind,
        LeadershipOf,
        NotifyTarget,
        OfficerRole,
        RecipientRole,
        notify_text,
    )
    from workflows.claims import Claim, ClaimRefused, received_time, verify
    from workflows.payloads import (
        STATE_LABELS_EN,
        STATE_LABELS_VI,
        TASK_CHANGED_SIGNAL,
        TASK_ORDER_SIGNAL,
        CalendarUpdate,
        Decision,
        ExtensionDecision,
        ExtensionRequest,
        ObligationInput,
        SentNotice,
        SubmitReport,
        Suspended,
        TaskChange,
        TaskOrder,
        TaskOutcome,
        TaskState,
        TaskStatus,
        UpdateResult,
        Waiver,
        before_day_text,
        local_text,
        no_recipient_detail,
        parse_argument,
        ui_text,
    )
    from workflows.refusals import refusal
    from workflows.search_attributes import task_search_attributes

ACTIVITY_TIMEOUT = timedelta(minutes=2)
LOCAL_MAIL_TIMEOUT = timedelta(seconds=75)
"""Longer than one SMTP exchange may take (30 s timeout per step, settings), so the fast path is
rarely cut off between the relay's acceptance and the outbox mark (which would resend it, with
the same Message-ID, on the durable path)."""
MAIL_HEARTBEAT = timedelta(seconds=30)
LOCAL_STORE_TIMEOUT = timedelta(seconds=45)
LOCAL_MAIL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_attempts=2,
)
"""The fast path: two tries inside the workflow task; then the durable `MAIL_RETRY` path."""
MAIL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)
STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
ORDER_ROLES = (RecipientRole.FOCAL_POINT, RecipientRole.HEAD_OF_AGENCY)
"""Who an order of the agreement (withdrawal, new due date, suspension, resumption) is told
to: the owing agencies' focal points and heads."""


@workflow.defn(name="Obligation")
class ObligationWorkflow:
    @workflow.init
    def __init__(self, input: ObligationInput) -> None:
        self._input = input
        self._task = input.task
        self._due_at = input.task.due_at
        # The due instant as written (or as extended), before the deadline rule: business keys
        # use it, so a calendar change that moves the deadline never re-sends a notice.
        self._written_due = input.written_due_at or input.task.due_at
        self._due_note: str | None = input.task.due_note_vi
        self._due_note_en: str | None = input.task.due_note_en
        self._calendar = input.calendar
        self._terms = planner.TaskTerms(
            reminders=input.reminders,
            escalation=input.escalation,
            closes_at=input.closes_at,
            time_zone=input.task.time_zone,
            sending_time=input.sending_time,
            deadline_rule=input.deadline_rule,
            has_recipient=input.task.recipient is not None,
            has_copies=bool(input.task.copy_to),
        )
        self._receipt: tuple[list[RecipientRole], bool] | None = None
        self._state = TaskState.PENDING
        self._escalation_level = 0
        self._notices: list[SentNotice] = []
        self._decisions: list[Decision] = []
        self._pending_extension: ExtensionRequest | None = None
        self._submitted_at: datetime | None = None
        self._closed = False
        # Reminders and escalation steps already in the past when the schedule was (re)computed
        # are skipped rather than sent late in a burst.
        self._schedule_from = workflow.now()
        self._wakes = 0
        self._inflight: set[asyncio.Task[None]] = set()
        self._pending_audit: list[AuditEntry] = []
        self._told: tuple[object, ...] | None = None
        self._parent_sender: asyncio.Task[None] | None = None
        # Issue 17: orders of the agreement (amendments, suspensions, successions).
        self._applied_orders: list[str] = []
        self._ignored_orders = 0
        self._suspensions: dict[str, Suspended] = {}
        # Since when THIS task has been under each suspension (a task started during one is
        # suspended from its start, not from the decision).
        self._suspended_at: dict[str, datetime] = {}
        # Suspended time up to this instant was already added to the deadline (a shifted
        # resume): overlapping suspensions never move it twice for the same days.
        self._shifted_until: datetime | None = None
        if input.suspension is not None:
            self._suspensions[input.suspension.suspension_id] = input.suspension
            self._suspended_at[input.suspension.suspension_id] = workflow.now()
            self._state = TaskState.SUSPENDED
            self._decisions.append(
                Decision(
                    at=workflow.now(),
                    kind="suspended",
                    actor="system",
                    detail=f"bắt đầu trong thời gian tạm dừng theo "
                    f"{input.suspension.document}: {input.suspension.reason}",
                )
            )

    # ----------------------------------------------------------------------------------------
    # Main loop

    @workflow.run
    async def run(self, input: ObligationInput) -> TaskOutcome:
        """The schedule loop never waits for mail: each notice is decided when its instant
        comes and sent by its own coroutine, so a slow or failing relay cannot make the loop
        miss later instants, and a report arriving meanwhile does not cancel a notice that was
        already owed. The loop ends when a handler closed the task or the close instant came;
        the run completes once handlers, notices and the parent's ledger are settled."""
        self._publish()
        while not self._closed:
            seen = self._wakes
            action = self._next_action()
            if action is None:
                # A report or waiver is being recorded (its handler closes the task), or the
                # task is suspended (a resume or withdraw order wakes it).
                await workflow.wait_condition(self._woken_since(seen))
                continue
            wait = action.at - workflow.now()
            if wait > timedelta(0):
                try:
                    await workflow.wait_condition(
                        self._woken_since(seen),
                        timeout=wait,
                        timeout_summary=f"{action.kind} {action.offset}".strip(),
                    )
                    continue
                except TimeoutError:
                    pass
            if self._next_action() != action:
                continue
            if action.kind == "close":
                # Not done when the chase ends: the final state says how (still within the
                # period, or overdue). The closing write: the audit entry, and no outbox row
                # left pending.
                self._state = self._state.unfinished()
                self._add_audit("closed", {"state": self._state.value})
                await self._flush_audit(closing=True)
                self._closed = True
                self._publish()
            else:
                self._fire(action)
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and not self._inflight
        )
        if self._receipt is not None:
            roles, late = self._receipt
            # The last notification: no outbox row of this task is left pending after it.
            await self._send(
                NotificationKind.RECEIPT, roles, key="receipt", late=late, closing=True
            )
        if self._pending_audit:
            await self._flush_audit()
        self._tell_parent()
        await workflow.wait_condition(lambda: self._parent_sender is None)
        return TaskOutcome(
            task_id=self._task.task_id,
            state=self._state,
            escalation_level=self._escalation_level,
            closed_at=workflow.now(),
        )

    def _woken_since(self, seen: int) -> Callable[[], bool]:
        return lambda: self._wakes != seen

    def _next_action(self) -> planner.Action | None:
        # Suspended: no reminder, escalation or close until resumed (the loop waits).
        if self._closed or not self._state.is_chased:
            return None
        return planner.next_action(self._terms, self._progress())

    def _progress(self) -> planner.Progress:
        return planner.Progress(
            due_at=self._due_at,
            written_due=self._written_due,
            calendar=self._calendar,
            schedule_from=self._schedule_from,
            open=self._state.is_open,
            overdue=self._state is TaskState.OVERDUE,
            escalation_level=self._escalation_level,
            done=self._done_keys(),
        )

    def _fire(self, action: planner.Action) -> None:
        """Decide a reminder, the overdue transition or an escalation step (not the close)."""
        now = workflow.now()
        if action.kind == "overdue":
            self._state = TaskState.OVERDUE
            self._notices.append(
                SentNotice(key=action.key, kind="overdue", step=0, offset="", at=now)
            )
            self._add_audit("overdue", {"due_at": local_text(self._due_at)})
            self._publish()
            return
        notice = planner.notice_for(self._terms, self._progress(), action, now)
        self._notices.append(
            SentNotice(
                key=action.key,
                kind=action.kind,
                step=action.step,
                offset=action.offset,
                at=now,
                skipped=notice.skipped,
            )
        )
        if notice.skipped:
            return
        if notice.kind == "escalation":
            self._escalation_level = action.step
        self._spawn(
            self._send(
                NotificationKind(notice.kind),
                list(notice.roles),
                key=action.key,
                step=action.step,
                offset=action.offset,
                # The planned instant, not the moment the workflow task ran (a busy worker or
                # server starts it a little later).
                scheduled_at=action.at,
            )
        )
        self._publish()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a notice alongside the schedule; the run does not complete before it ends."""
        task = asyncio.create_task(coroutine)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _send(
        self,
        kind: NotificationKind,
        roles: Sequence[NotifyTarget],
        *,
        key: str,
        step: int | None = None,
        offset: str | None = None,
        late: bool | None = None,
        approved: bool | None = None,
        new_due_at: datetime | None = None,
        previous_due_at: datetime | None = None,
        reason: str | None = None,
        closing: bool = False,
        acted_by: Actor | None = None,
        order: TaskOrder | None = None,
        suspended_days: int | None = None,
        previous_agency: str | None = None,
        previous_recipient: str | None = None,
        effective: date | None = None,
        scheduled_at: datetime | None = None,
    ) -> None:
        """Send one notification: first as a local activity (one history event when the relay
        answers), then, if that fails, as an activity with durable retries and a heartbeat.
        The audit entries made since the last write ride along, in the same transaction.
        `scheduled_at`: the notice's planned instant (a reminder's, an escalation's), which
        dates the mail; None: now."""
        request = self._notification(
            kind,
            roles,
            key=key,
            step=step,
            offset=offset,
            late=late,
            approved=approved,
            new_due_at=new_due_at,
            previous_due_at=previous_due_at,
            reason=reason,
            closing=closing,
            acted_by=acted_by,
            order=order,
            suspended_days=suspended_days,
            previous_agency=previous_agency,
            previous_recipient=previous_recipient,
            effective=effective,
            scheduled_at=scheduled_at,
        )
        summary = f"{kind.value} {offset or ''}".strip()
        try:
            result = await workflow.execute_local_activity(
                "send_notification",
                request,
                result_type=NotificationResult,
                start_to_close_timeout=LOCAL_MAIL_TIMEOUT,
                retry_policy=LOCAL_MAIL_RETRY,
                summary=summary,
            )
        except FailureError:  # the fast path gave up (a local activity's arrives unwrapped)
            result = await workflow.execute_activity(
                "send_notification",
                request,
                result_type=NotificationResult,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                heartbeat_timeout=MAIL_HEARTBEAT,
                retry_policy=MAIL_RETRY,
                summary=f"{summary} (gửi lại)",
            )
        if result.recipients == 0:
            # Nobody holds the roles: the activity told the admins; the task records it.
            self._record_no_recipient(key, roles, admins_told=result.admins_told > 0)

    def _record_no_recipient(
        self, key: str, roles: Sequence[NotifyTarget], *, admins_told: bool
    ) -> None:
        detail = no_recipient_detail(key, [notify_text(r) for r in roles], admins_told=admins_told)
        self._notices = [
            notice.model_copy(update={"no_recipient": True}) if notice.key == key else notice
            for notice in self._notices
        ]
        self._decisions.append(
            Decision(at=workflow.now(), kind="no_recipient", actor="system", detail=detail)
        )
        # Not `_publish`: nothing the schedule, search attributes or parent see has changed.
        workflow.set_current_details(self._details())

    def _notification(
        self,
        kind: NotificationKind,
        roles: Sequence[NotifyTarget],
        *,
        key: str,
        step: int | None = None,
        offset: str | None = None,
        late: bool | None = None,
        approved: bool | None = None,
        new_due_at: datetime | None = None,
        previous_due_at: datetime | None = None,
        reason: str | None = None,
        closing: bool = False,
        acted_by: Actor | None = None,
        order: TaskOrder | None = None,
        suspended_days: int | None = None,
        previous_agency: str | None = None,
        previous_recipient: str | None = None,
        effective: date | None = None,
        scheduled_at: datetime | None = None,
    ) -> NotificationRequest:
        task = self._task.model_copy(
            update={
                "due_at": self._due_at,
                "due_note_vi": self._due_note,
                "due_note_en": self._due_note_en,
            }
        )
        audit, self._pending_audit = self._pending_audit, []
        return NotificationRequest(
            business_key=f"{self._task.task_id}/{key}",
            kind=kind,
            task=task,
            roles=list(roles),
            step=step,
            offset=offset,
            scheduled_at=(scheduled_at or workflow.now()).astimezone(self._zone()),
            late=late,
            approved=approved,
            new_due_at=new_due_at,
            previous_due_at=previous_due_at,
            reason=reason,
            audit=audit,
            closing=closing,
            acted_by=acted_by.officer_id if acted_by else None,
            acted_by_agency=acted_by.agency if acted_by else None,
            order_document=order.document if order else None,
            suspended_days=suspended_days,
            previous_agency=previous_agency,
            previous_recipient=previous_recipient,
            effective=effective,
        )

    def _add_audit(
        self,
        action: str,
        detail: dict[str, str],
        actor: str = "system",
        *,
        by: tuple[Actor | None, Claim | None] | None = None,
    ) -> None:
        """Note an audit entry; it is written with the task's next activity (or at close).
        `by`: the officer who acted (None: the claim's operator, e.g. a published calendar)
        and the claim his entry point signed."""
        officer, claim = by if by is not None else (None, None)
        self._pending_audit.append(
            AuditEntry(
                event_key=f"{self._task.task_id}/{action}/{len(self._decisions)}/"
                f"{len(self._notices)}",
                at=workflow.now(),
                agreement_id=self._task.agreement_id,
                task_id=self._task.task_id,
                actor=officer.officer_id if officer else actor,
                action=action,
                detail=detail,
                tenant=self._task.tenant,
                roles=[role.value for role in officer.roles] if officer else [],
                channel=claim.channel if claim else "system",
                request_id=claim.request_id if claim else None,
                operator=claim.operator if claim else None,
            )
        )

    async def _flush_audit(self, *, closing: bool = False) -> None:
        entries, self._pending_audit = self._pending_audit, []
        if not entries:
            return
        await workflow.execute_local_activity(
            "record_audits",
            AuditBatch(entries=entries, abandon_pending_of=self._task.task_id if closing else None),
            start_to_close_timeout=LOCAL_STORE_TIMEOUT,
            retry_policy=STORE_RETRY,
            summary=f"audit {entries[-1].action}",
        )

    def _publish(self) -> None:
        """Upsert only the search attributes whose value changed (the starter set them at
        start), refresh the UI details, and tell the parent when its ledger's view changed."""
        wanted = task_search_attributes(
            self._task,
            state=self._state,
            escalation_level=self._escalation_level,
            due_at=self._due_at,
        )
        current = workflow.info().typed_search_attributes
        changed: list[SearchAttributeUpdate[Any]] = [
            pair.key.value_set(pair.value) for pair in wanted if current.get(pair.key) != pair.value
        ]
        if changed:
            workflow.upsert_search_attributes(changed)
        workflow.set_current_details(self._details())
        self._wakes += 1
        self._tell_parent()

    def _tell_parent(self) -> None:
        if not self._input.parent_workflow_id:
            return
        view = (self._state, self._escalation_level, self._due_at, self._closed, self._task.agency)
        if view == self._told:
            return
        self._told = view
        if self._parent_sender is None:
            self._parent_sender = asyncio.create_task(self._send_to_parent())

    async def _send_to_parent(self) -> None:
        """One signal at a time, always the latest view: the parent's ledger sees the task's
        changes in order, and several changes made meanwhile go as one."""
        parent = self._input.parent_workflow_id
        assert parent is not None
        sent: tuple[object, ...] | None = None
        try:
            while sent != self._told:
                sent = self._told
                change = TaskChange(
                    task_id=self._task.task_id,
                    state=self._state,
                    escalation_level=self._escalation_level,
                    due_at=self._due_at,
                    closed=self._closed,
                    agency=self._task.agency if self._task.original_agency else None,
                )
                try:
                    await workflow.get_external_workflow_handle(parent).signal(
                        TASK_CHANGED_SIGNAL, change
                    )
                except Exception as err:
                    # The agreement may have been terminated by an admin; the task stays right.
                    workflow.logger.warning("could not tell %s about %s: %s", parent, change, err)
                    return
        finally:
            self._parent_sender = None

    def _effective_submission_time(self, report: SubmitReport) -> datetime:
        """When Accord's entry point received the report (its signed claim), never after the
        handling; the validator refused a claim older than `claims.MAX_DELIVERY_DELAY`. No
        client's clock is believed."""
        now = workflow.now()
        if report.claim is None:  # the validator refuses it; kept total for the type checker
            return now
        return received_time(report.claim, now)

    def _catch_up(self, until: datetime) -> None:
        """Decide the notices whose instant came before `until` (a report's sending time) but
        that the schedule has not reached: their timers had not been processed yet (a worker
        or the server was catching up, or this workflow task also carried the timer). They were
        owed before the report was sent, so they go out, whatever order the workflow sees the
        two in."""
        action = self._next_action()
        while action is not None and action.kind != "close" and action.at < until:
            self._fire(action)
            action = self._next_action()

    async def _submit(self, report: SubmitReport) -> UpdateResult:
        now = workflow.now()
        at = self._effective_submission_time(report)
        self._catch_up(at)
        late = planner.is_late(at, self._due_at)
        self._state = TaskState.DONE_LATE if late else TaskState.DONE_ON_TIME
        self._submitted_at = at
        zone = self._zone()
        self._decisions.append(
            Decision.by_officer(
                now,
                "submitted",
                report.actor,
                ("nộp muộn" if late else "nộp đúng hạn")
                + f" (Accord nhận lúc {local_text(at.astimezone(zone))}, xử lý lúc "
                f"{local_text(now.astimezone(zone))})",
                report.claim,
            )
        )
        self._wakes += 1
        self._add_audit(
            "submitted",
            {
                "late": str(late).lower(),
                "received_at": at.isoformat(),
                "handled_at": now.isoformat(),
            },
            by=(report.actor, report.claim),
        )
        audit, self._pending_audit = self._pending_audit, []
        await workflow.execute_local_activity(
            "record_submission",
            RecordSubmission(
                task=self._task,
                officer_id=report.actor.officer_id,
                submitted_at=at,
                handled_at=now,
                late=late,
                summary=report.summary,
                indicators=report.indicators,
                attachments=report.attachments,
                audit=audit,
            ),
            start_to_close_timeout=LOCAL_STORE_TIMEOUT,
            retry_policy=STORE_RETRY,
            summary="lưu báo cáo",
        )
        self._receipt = (list(planner.receipt_roles(self._terms)), late)
        self._closed = True
        self._publish()
        return self._result(
            "Đã nhận báo cáo" + (" (quá hạn)" if late else " (đúng hạn)"),
            "Report received" + (" (late)" if late else " (on time)"),
        )

    async def _request_extension(self, request: ExtensionRequest) -> UpdateResult:
        self._pending_extension = request
        self._decisions.append(
            Decision.by_officer(
                workflow.now(),
                "extension_requested",
                request.actor,
                f"xin gia hạn đến trước ngày {request.new_due:%d/%m/%Y}: {request.reason}",
                request.claim,
            )
        )
        self._add_audit(
            "extension_requested",
            {"new_due": request.new_due.isoformat(), "reason": request.reason},
            by=(request.actor, request.claim),
        )
        roles = planner.extension_request_roles(
            self._terms,
            recipient=self._task.recipient,
            approvers=self._input.extension_approver,
        )
        if roles:
            self._spawn(
                self._send(
                    NotificationKind.EXTENSION_REQUESTED,
                    list(roles),
                    key=f"extension-request/{len(self._decisions)}",
                    new_due_at=self._local_midnight(request.new_due),
                    reason=request.reason,
                )
            )
        self._publish()
        return self._result("Đã ghi nhận đề nghị gia hạn", "Extension request recorded")

    def _decide(
        self, decision: ExtensionDecision
    ) -> tuple[ExtensionRequest, datetime, str, datetime | None]:
        """Apply an extension decision to the task's state; the request, its new due instant,
        the verdict and the due instant before the decision."""
        request = self._pending_extension
        assert request is not None
        self._pending_extension = None
        now = workflow.now()
        new_due_at = self._local_midnight(request.new_due)
        verdict = "approved" if decision.approve else "rejected"
        previous_due_at = self._due_at
        self._decisions.append(
            Decision.by_officer(
                now,
                f"extension_{verdict}",
                decision.actor,
                (
                    f"{'chấp thuận' if decision.approve else 'không chấp thuận'} gia hạn đến "
                    f"trước ngày {request.new_due:%d/%m/%Y}"
                    + (f": {decision.note}" if decision.note else "")
                ),
                decision.claim,
            )
        )
        if decision.approve:
            self._written_due = new_due_at
            self._due_at = self._apply_rule(new_due_at)
            self._escalation_level = 0
            self._state = self._chased_state(now)
            self._schedule_from = now
        return request, new_due_at, verdict, previous_due_at

    def _chased_state(self, now: datetime) -> TaskState:
        """PENDING or OVERDUE by the due instant in force; SUSPENDED while a suspension is."""
        if self._suspensions:
            return TaskState.SUSPENDED
        if self._due_at is not None and now >= self._due_at:
            return TaskState.OVERDUE
        return TaskState.PENDING

    async def _decide_extension(self, decision: ExtensionDecision) -> UpdateResult:
        request, new_due_at, verdict, previous_due_at = self._decide(decision)
        self._add_audit(
            f"extension_{verdict}",
            {"new_due": request.new_due.isoformat(), "note": decision.note or ""},
            by=(decision.actor, decision.claim),
        )
        self._spawn(
            self._send(
                NotificationKind.EXTENSION_DECIDED,
                list(planner.EXTENSION_DECISION_ROLES),
                key=f"extension-decision/{len(self._decisions)}",
                approved=decision.approve,
                new_due_at=new_due_at,
                previous_due_at=previous_due_at,
                reason=decision.note,
            )
        )
        self._publish()
        if decision.approve:
            return self._result("Đã chấp thuận gia hạn", "Extension approved")
        return self._result("Không chấp thuận gia hạn", "Extension rejected")

    async def _waive(self, waiver: Waiver) -> UpdateResult:
        self._state = TaskState.WAIVED
        self._decisions.append(
            Decision.by_officer(workflow.now(), "waived", waiver.actor, waiver.reason, waiver.claim)
        )
        self._add_audit("waived", {"reason": waiver.reason}, by=(waiver.actor, waiver.claim))
        self._spawn(
            self._send(
                NotificationKind.WAIVED,
                list(planner.WAIVER_ROLES),
                key="waived",
                reason=waiver.reason,
                acted_by=waiver.actor,
            )
        )
        self._closed = True
        self._publish()
        return self._result("Đã miễn nhiệm vụ", "Task waived")

    # ----------------------------------------------------------------------------------------
    # Orders of the agreement (issue 17)

    @workflow.signal(name=TASK_ORDER_SIGNAL)
    def task_order(self, order: TaskOrder | Any = None, *extra: Any) -> None:
        """An amendment, suspension, resumption or succession the agreement accepted (its
        update checked the admin's signed claim), for this task. A malformed order, one from
        another workflow than the parent, a repeated one and one reaching a closed task are
        logged and ignored: a signal handler never fails the task."""
        try:
            order = parse_argument(TaskOrder, TASK_ORDER_SIGNAL, order, extra)
        except ValueError as error:
            self._ignore_order(str(error))
            return
        if order.agreement_workflow_id != self._input.parent_workflow_id:
            self._ignore_order(
                f"{TASK_ORDER_SIGNAL}: {order.order_id[:200]!r} from "
                f"{order.agreement_workflow_id[:200]!r}, not this task's agreement"
            )
            return
        if order.order_id in self._applied_orders:
            return
        if self._closed or not self._state.is_open:
            self._ignore_order(
                f"{TASK_ORDER_SIGNAL}: {order.order_id[:200]!r} reached a closed task "
                f"({self._state.value})"
            )
            return
        problem = self._order_problem(order)
        if problem:
            self._ignore_order(f"{TASK_ORDER_SIGNAL}: {order.order_id[:200]!r}: {problem}")
            return
        self._applied_orders.append(order.order_id)
        match order.kind:
            case "withdraw":
                self._withdraw(order)
            case "move_due":
                self._move_due(order)
            case "suspend":
                self._suspend(order)
            case "resume":
                self._resume(order)
            case "transfer":
                self._transfer(order)
        self._publish()

    def _ignore_order(self, why: str) -> None:
        self._ignored_orders += 1
        workflow.logger.warning("signal ignored: %s", why)

    def _order_problem(self, order: TaskOrder) -> str | None:
        """What makes an order inapplicable to this task (None: nothing)."""
        if order.kind == "move_due" and order.written_due_at is None:
            return "move_due without written_due_at"
        if order.kind in ("suspend", "resume") and not order.suspension_id:
            return f"{order.kind} without suspension_id"
        if order.kind == "resume" and order.suspension_id not in self._suspensions:
            return f"suspension {order.suspension_id!r} is not in force on this task"
        if order.kind == "suspend" and order.suspension_id in self._suspensions:
            return f"suspension {order.suspension_id!r} is already in force"
        if order.kind == "transfer" and order.agency is None and order.recipient is None:
            return "transfer without agency or recipient"
        return None

    def _order_decision(self, order: TaskOrder, kind: str, detail: str) -> None:
        self._decisions.append(
            Decision(at=workflow.now(), kind=kind, actor=order.actor, detail=detail)
        )

    def _order_audit(self, order: TaskOrder, action: str, detail: dict[str, str]) -> None:
        self._add_audit(
            action,
            {"order_id": order.order_id, "document": order.document, **detail},
            actor=order.actor,
        )

    def _withdraw(self, order: TaskOrder) -> None:
        self._state = TaskState.WITHDRAWN
        self._suspensions.clear()
        self._suspended_at.clear()
        self._order_decision(
            order,
            "withdrawn",
            f"rút nhiệm vụ theo {order.document}" + (f": {order.reason}" if order.reason else ""),
        )
        self._order_audit(order, "withdrawn", {"reason": order.reason or ""})
        self._spawn(
            self._send(
                NotificationKind.WITHDRAWN,
                list(ORDER_ROLES),
                key="withdrawn",
                reason=order.reason,
                order=order,
            )
        )
        self._closed = True

    def _move_due(self, order: TaskOrder) -> None:
        """Like an approved extension: the written due moves, the rule applies, reminders are
        planned again from now (those already in the past skipped, none sent again)."""
        assert order.written_due_at is not None
        now = workflow.now()
        previous = self._due_at
        self._written_due = order.written_due_at
        self._due_at = self._apply_rule(order.written_due_at)
        self._escalation_level = 0
        self._schedule_from = now
        self._state = self._chased_state(now)
        self._order_decision(
            order,
            "due_changed",
            f"hạn mới {before_day_text(self._due_at)} theo {order.document} (hạn cũ "
            f"{before_day_text(previous)})" + (f": {order.reason}" if order.reason else ""),
        )
        self._order_audit(
            order,
            "due_changed",
            {
                "previous_due_at": local_text(previous) if previous else "",
                "due_at": local_text(self._due_at),
            },
        )
        self._spawn(
            self._send(
                NotificationKind.DUE_CHANGED,
                list(ORDER_ROLES),
                key=f"due-changed/{order.order_id}",
                previous_due_at=previous,
                reason=order.reason,
                order=order,
            )
        )

    def _suspend(self, order: TaskOrder) -> None:
        assert order.suspension_id is not None
        now = workflow.now()
        suspension = Suspended(
            suspension_id=order.suspension_id,
            since=order.at,
            document=order.document,
            reason=order.reason or "",
        )
        self._suspensions[order.suspension_id] = suspension
        self._suspended_at[order.suspension_id] = min(order.at, now)
        self._state = TaskState.SUSPENDED
        self._order_decision(
            order,
            "suspended",
            f"tạm dừng theo {order.document}" + (f": {order.reason}" if order.reason else ""),
        )
        self._order_audit(
            order, "suspended", {"suspension_id": order.suspension_id, "reason": order.reason or ""}
        )
        self._spawn(
            self._send(
                NotificationKind.SUSPENDED,
                list(ORDER_ROLES),
                key=f"suspended/{order.order_id}",
                reason=order.reason,
                order=order,
            )
        )

    def _resume(self, order: TaskOrder) -> None:
        """Lift one suspension; the last one lifted, the task is chased again from now
        (reminders that fell inside the suspension are skipped, not sent in a burst)."""
        assert order.suspension_id is not None
        now = workflow.now()
        self._suspensions.pop(order.suspension_id)
        since = self._suspended_at.pop(order.suspension_id)
        # Counted in whole local days (the day suspended to the day resumed), so a deadline
        # "before day D" stays a day's deadline, from the start of the suspended time this
        # suspension is part of (an older one still in force began it); days already added by
        # another suspension's shifted resume are not added again.
        zone = self._zone()
        start = min([since, *self._suspended_at.values()])
        if self._shifted_until is not None:
            start = max(start, self._shifted_until)
        days = max((now.astimezone(zone).date() - start.astimezone(zone).date()).days, 0)
        previous = self._due_at
        if order.shift_deadline and self._written_due is not None and days > 0:
            self._written_due = self._written_due + timedelta(days=days)
            self._due_at = self._apply_rule(self._written_due)
            self._escalation_level = 0
            self._shifted_until = now
        self._schedule_from = now
        self._state = self._chased_state(now)
        moved = previous != self._due_at
        self._order_decision(
            order,
            "resumed",
            f"tiếp tục theo {order.document} sau {days} ngày tạm dừng; "
            + (
                f"hạn lùi thành {before_day_text(self._due_at)}"
                if moved
                else f"hạn giữ nguyên {before_day_text(self._due_at)}"
            )
            + (" (vẫn còn tạm dừng theo quyết định khác)" if self._suspensions else ""),
        )
        self._order_audit(
            order,
            "resumed",
            {
                "suspension_id": order.suspension_id,
                "shift_deadline": str(order.shift_deadline).lower(),
                "suspended_days": str(days),
                "due_at": local_text(self._due_at) if self._due_at else "",
            },
        )
        if self._suspensions:
            return  # still suspended by another decision: told when the last one is lifted
        self._spawn(
            self._send(
                NotificationKind.RESUMED,
                list(ORDER_ROLES),
                key=f"resumed/{order.order_id}",
                previous_due_at=previous if moved else None,
                reason=order.reason,
                order=order,
                suspended_days=days,
            )
        )

    def _transfer(self, order: TaskOrder) -> None:
        """A succession: the task passes to `agency` (+ `co_owners`), or only its receiving
        agency changes (`recipient`). The task ID keeps the original owner."""
        before = self._task
        agency = order.agency or before.agency
        # An order naming the owners names all of them: a co-owner merged into the lead
        # leaves `co_owners` empty.
        co_owners = list(before.co_owners) if order.agency is None else list(order.co_owners)
        owners_changed = (agency, co_owners) != (before.agency, list(before.co_owners))
        update: dict[str, Any] = {"agency": agency, "co_owners": co_owners}
        if order.recipient is not None:
            update["recipient"] = order.recipient
        if owners_changed and before.original_agency is None:
            update["original_agency"] = before.agency
        self._task = before.model_copy(update=update)
        self._terms = dataclasses.replace(
            self._terms, has_recipient=self._task.recipient is not None
        )
        effective = order.effective or order.at.astimezone(self._zone()).date()
        parts: list[str] = []
        if owners_changed:
            parts.append(
                f"chuyển từ {', '.join(before.owners)} sang {', '.join(self._task.owners)}"
            )
        if self._task.recipient != before.recipient:
            parts.append(f"nơi nhận báo cáo: {before.recipient or '—'} → {self._task.recipient}")
        self._order_decision(
            order,
            "transferred",
            f"{'; '.join(parts) or 'không thay đổi'} từ ngày {effective:%d/%m/%Y} theo "
            f"{order.document}",
        )
        self._order_audit(
            order,
            "transferred",
            {
                "from": "+".join(before.owners),
                "to": "+".join(self._task.owners),
                "recipient": self._task.recipient or "",
                "effective": effective.isoformat(),
            },
        )
        roles: list[NotifyTarget] = [RecipientRole.FOCAL_POINT]
        if owners_changed:
            roles.append(RecipientRole.HEAD_OF_AGENCY)
            roles.extend(
                LeadershipOf(leadership_of=code)
                for code in before.owners
                if code not in self._task.owners
            )
        self._spawn(
            self._send(
                NotificationKind.TRANSFERRED,
                roles,
                key=f"transferred/{order.order_id}",
                reason=order.reason,
                order=order,
                previous_agency=before.agency if owners_changed else None,
                previous_recipient=before.recipient
                if self._task.recipient != before.recipient
                else None,
                effective=effective,
            )
        )

    # ----------------------------------------------------------------------------------------
    # Schedule arithmetic (both schedules)

    def _done_keys(self) -> set[str]:
        return {n.key for n in self._notices}

    def _apply_rule(self, written: datetime) -> datetime:
        """Set the due instant for a written one under the task's deadline rule and calendar,
        with the explanation when it moved."""
        rule = planner.deadline(written, self._input.deadline_rule, self._calendar)
        self._due_note, self._due_note_en = rule.note_vi, rule.note_en
        return rule.due_at

    @workflow.update
    async def change_calendar(
        self, update: CalendarUpdate | Any = None, *extra: Any
    ) -> UpdateResult:
        """A newly published working calendar: recompute the deadline and the timers. Notices
        already sent keep their business keys, so none is sent again. Takes one
        `CalendarUpdate`; the validator refuses (leaving nothing in history) an unsigned or
        altered one, a closed task, and a calendar without the year of the task's deadline."""
        update = parse_argument(CalendarUpdate, "change_calendar", update, extra)
        published = update.calendar
        year = self._deadline_year()
        self._calendar = published.between_years(year - 1, year + 1)
        if self._written_due is None or self._due_at is None:
            self._publish()
            return self._result("Đã nhận lịch làm việc mới", "Calendar received")
        new_due = self._apply_rule(self._written_due)
        note = self._due_note
        now = workflow.now()
        self._schedule_from = now
        if new_due != self._due_at:
            detail = (
                f"lịch làm việc thay đổi{': ' + update.note if update.note else ''}; "
                f"hạn mới {before_day_text(new_due)}" + (f" ({note})" if note else "")
            )
            publisher = (update.claim.operator if update.claim else None) or "system"
            self._decisions.append(
                Decision(at=now, kind="calendar_changed", actor=publisher, detail=detail)
            )
            self._due_at = new_due
            if self._state is TaskState.OVERDUE and now < new_due:
                self._state = TaskState.PENDING
                self._escalation_level = 0
            self._add_audit(
                "calendar_changed",
                {"due_at": local_text(new_due), "note": note or ""},
                actor=publisher,
                by=(None, update.claim),
            )
        self._publish()
        return self._result("Đã áp dụng lịch làm việc mới", "Calendar applied")

    @change_calendar.validator
    def _validate_change_calendar(self, update: CalendarUpdate | Any = None, *extra: Any) -> None:
        update = parse_argument(CalendarUpdate, "change_calendar", update, extra)
        require_claim(update, "change_calendar")
        require_publisher(update)
        self._require_open()
        published = update.calendar
        year = self._deadline_year()
        if not published.covers(date(year, 1, 1)):
            raise refusal(
                en=f"the published calendar covers {published.first_year}–{published.last_year}, "
                f"not {year}, the year of the task's deadline; the task keeps its calendar",
                vi=f"lịch làm việc được công bố cho các năm {published.first_year}–"
                f"{published.last_year}, không gồm năm {year} của hạn nộp; "
                "nhiệm vụ giữ lịch đang dùng",
            )

    def _deadline_year(self) -> int:
        return (self._due_at or workflow.now()).astimezone(self._zone()).year

    # ----------------------------------------------------------------------------------------
    # Updates

    @workflow.update
    async def submit_report(self, report: SubmitReport | Any = None, *extra: Any) -> UpdateResult:
        """Takes one `SubmitReport`, checked here rather than by the SDK\'s decoder, so that a
        malformed payload is refused with a message naming its fields."""
        report = parse_argument(SubmitReport, "submit_report", report, extra)
        return await self._submit(report)

    @submit_report.validator
    def _validate_submit(self, report: SubmitReport | Any = None, *extra: Any) -> None:
        report = parse_argument(SubmitReport, "submit_report", report, extra)
        require_claim(report, "submit_report")
        self._require_open()
        actor = report.actor
        self._require_tenant(actor)
        owners = self._task.owners
        if not (actor.is_admin or actor.agency in owners):
            raise refusal(
                en=f"only an officer of {' or '.join(owners)} or an admin may submit "
                f"(officer {actor.officer_id} belongs to {actor.agency})",
                vi=f"chỉ cán bộ của {' hoặc '.join(owners)} hoặc quản trị viên được nộp báo cáo "
                f"(cán bộ {actor.officer_id} thuộc {actor.agency})",
            )
        problems = _indicator_problems(self._input, report.indicators)
        if problems:
            raise refusal(
                en="; ".join(en for _, en in problems),
                vi="; ".join(vi for vi, _ in problems),
                prefix="",
            )

    @workflow.update
    async def request_extension(
        self, request: ExtensionRequest | Any = None, *extra: Any
    ) -> UpdateResult:
        """Takes one `ExtensionRequest`, checked here rather than by the SDK\'s decoder, so that a
        malformed payload is refused with a message naming its fields."""
        request = parse_argument(ExtensionRequest, "request_extension", request, extra)
        return await self._request_extension(request)

    @request_extension.validator
    def _validate_extension(self, request: ExtensionRequest | Any = None, *extra: Any) -> None:
        request = parse_argument(ExtensionRequest, "request_extension", request, extra)
        require_claim(request, "request_extension")
        self._require_open()
        actor = request.actor
        self._require_tenant(actor)
        owners = self._task.owners
        if not (actor.is_admin or actor.agency in owners):
            raise refusal(
                en=f"only an officer of {' or '.join(owners)} or an admin may request an "
                f"extension (officer {actor.officer_id} belongs to {actor.agency})",
                vi=f"chỉ cán bộ của {' hoặc '.join(owners)} hoặc quản trị viên được đề nghị "
                f"gia hạn (cán bộ {actor.officer_id} thuộc {actor.agency})",
            )
        if self._due_at is None:
            raise refusal(
                en="a task without a due date cannot be extended",
                vi="nhiệm vụ không có hạn nộp nên không thể gia hạn",
            )
        if self._pending_extension is not None:
            raise refusal(
                en="an extension request is already waiting for a decision",
                vi="đã có một đề nghị gia hạn đang chờ quyết định",
            )
        if request.new_due <= self._due_at.date():
            raise refusal(
                en=f"the new date {request.new_due} must be after the current due date "
                f"{self._due_at.date()}",
                vi=f"ngày mới {request.new_due:%d/%m/%Y} phải sau hạn hiện tại "
                f"{self._due_at:%d/%m/%Y}",
            )
        latest = self._input.period_end + timedelta(days=1)
        if request.new_due > latest:
            raise refusal(
                en=f"the new date {request.new_due} is outside the agreement's period "
                f"(ends {self._input.period_end})",
                vi=f"ngày mới {request.new_due:%d/%m/%Y} nằm ngoài thời gian của văn bản "
                f"(kết thúc ngày {self._input.period_end:%d/%m/%Y})",
            )

    @workflow.update
    async def decide_extension(
        self, decision: ExtensionDecision | Any = None, *extra: Any
    ) -> UpdateResult:
        """Takes one `ExtensionDecision`, checked here rather than by the SDK\'s decoder, so that a
        malformed payload is refused with a message naming its fields."""
        decision = parse_argument(ExtensionDecision, "decide_extension", decision, extra)
        return await self._decide_extension(decision)

    @decide_extension.validator
    def _validate_decision(self, decision: ExtensionDecision | Any = None, *extra: Any) -> None:
        decision = parse_argument(ExtensionDecision, "decide_extension", decision, extra)
        require_claim(decision, "decide_extension")
        self._require_open()
        self._require_tenant(decision.actor)
        pending = self._pending_extension
        if pending is None:
            raise refusal(
                en="there is no extension request to decide",
                vi="không có đề nghị gia hạn nào đang chờ quyết định",
            )
        actor = decision.actor
        if actor.officer_id == pending.actor.officer_id:
            raise refusal(
                en=f"officer {actor.officer_id} asked for this extension and cannot decide it",
                vi=f"cán bộ {actor.officer_id} đã đề nghị gia hạn nên không được tự quyết định",
            )
        if actor.agency in self._task.owners:
            raise refusal(
                en=f"an officer of {actor.agency}, which owes this task, cannot decide its "
                "extension",
                vi=f"cán bộ của {actor.agency}, đơn vị thực hiện nhiệm vụ, không được quyết định "
                "gia hạn",
            )
        if not self._may_approve(actor):
            who_en, who_vi = self._approvers_text()
            raise refusal(
                en=f"only {who_en} may decide this extension (officer {actor.officer_id} of "
                f"{actor.agency}, roles {', '.join(actor.roles) or 'none'})",
                vi=f"chỉ {who_vi} được quyết định gia hạn (cán bộ {actor.officer_id} thuộc "
                f"{actor.agency})",
            )

    @workflow.update
    async def waive(self, waiver: Waiver | Any = None, *extra: Any) -> UpdateResult:
        """Takes one `Waiver`, checked here rather than by the SDK\'s decoder, so that a
        malformed payload is refused with a message naming its fields."""
        waiver = parse_argument(Waiver, "waive", waiver, extra)
        return await self._waive(waiver)

    @waive.validator
    def _validate_waive(self, waiver: Waiver | Any = None, *extra: Any) -> None:
        waiver = parse_argument(Waiver, "waive", waiver, extra)
        require_claim(waiver, "waive")
        self._require_open()
        self._require_tenant(waiver.actor)
        if not waiver.actor.is_admin:
            raise refusal(
                en=f"only an admin may waive a task (officer {waiver.actor.officer_id} is not)",
                vi=f"chỉ quản trị viên được miễn nhiệm vụ (cán bộ {waiver.actor.officer_id} "
                "không phải quản trị viên)",
            )

    @workflow.query
    def status(self) -> TaskStatus:
        action = self._next_action()
        return TaskStatus(
            task=self._task,
            state=self._state,
            state_label=STATE_LABELS_VI[self._state],
            due_at=self._due_at,
            due_note=self._due_note,
            original_due_at=self._task.due_at,
            escalation_level=self._escalation_level,
            notices=list(self._notices),
            decisions=list(self._decisions),
            pending_extension=self._pending_extension,
            submitted_at=self._submitted_at,
            next_action=f"{action.kind} {action.offset}".strip() if action else None,
            next_action_at=action.at if action else None,
            closed=self._closed,
            suspensions=list(self._suspensions.values()),
            ignored_orders=self._ignored_orders,
        )

    # ----------------------------------------------------------------------------------------
    # Helpers

    def _may_approve(self, actor: Actor) -> bool:
        approvers = self._input.extension_approver
        head = OfficerRole.HEAD in actor.roles or OfficerRole.DEPUTY_HEAD in actor.roles
        recipient = self._task.recipient
        if ExtensionApprover.RECIPIENT_HEAD in approvers and head and actor.agency == recipient:
            return True
        leadership = OfficerRole.PROVINCIAL_LEADERSHIP in actor.roles
        return ExtensionApprover.PROVINCIAL_LEADERSHIP in approvers and leadership

    def _approvers_text(self) -> tuple[str, str]:
        en: list[str] = []
        vi: list[str] = []
        for approver in self._input.extension_approver:
            if approver is ExtensionApprover.RECIPIENT_HEAD:
                recipient = self._task.recipient or "—"
                en.append(f"the head or a deputy head of {recipient}")
                vi.append(f"thủ trưởng hoặc cấp phó của {recipient}")
            else:
                en.append("the provincial leadership")
                vi.append("lãnh đạo UBND tỉnh")
        return " or ".join(en), " hoặc ".join(vi)

    def _require_open(self) -> None:
        if self._closed or not self._state.is_open:
            raise refusal(
                en=f"the task is closed ({STATE_LABELS_EN[self._state]})",
                vi=f"nhiệm vụ đã đóng ({STATE_LABELS_VI[self._state]})",
            )

    def _require_tenant(self, actor: Actor) -> None:
        """An officer's power, an admin's included, stops at his tenant's tasks."""
        if actor.tenant != self._task.tenant:
            raise refusal(
                en=f"officer {actor.officer_id} of {actor.tenant} may not act on a task of "
                f"{self._task.tenant}",
                vi=f"cán bộ {actor.officer_id} thuộc {actor.tenant} không được thao tác trên "
                f"nhiệm vụ của {self._task.tenant}",
            )

    def _local_midnight(self, day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=self._zone())

    def _result(self, message: str, message_en: str) -> UpdateResult:
        return UpdateResult(
            task_id=self._task.task_id,
            state=self._state,
            due_at=self._due_at,
            message=message,
            message_en=message_en,
        )

    def _zone(self) -> tzinfo | None:
        return (self._due_at or self._input.closes_at).tzinfo

    def _zone_name(self) -> str:
        """How the details name the local time, e.g. 'giờ UTC+07:00'."""
        offset = (self._due_at or self._input.closes_at).strftime("%z")
        return f"giờ UTC{offset[:3]}:{offset[3:]}" if offset else "giờ UTC"

    def _details(self) -> str:
        task = self._task
        lines = [
            f"**{task.title}**",
            "",
            f"- Trạng thái: **{STATE_LABELS_VI[self._state]}**",
            f"- Cơ quan thực hiện: {', '.join(f'`{code}`' for code in self._task.owners)}"
            + (" (cùng thực hiện)" if task.co_owners else ""),
            *(
                [f"- Cơ quan thực hiện ban đầu: `{task.original_agency}` (đã chuyển giao)"]
                if task.original_agency
                else []
            ),
            *([f"- Đồng gửi: {', '.join(f'`{c}`' for c in task.copy_to)}"] if task.copy_to else []),
            f"- Kỳ báo cáo: {task.period_label}",
            f"- Hạn: {before_day_text(self._due_at)}"
            + (f" ({self._zone_name()})" if self._due_at and self._due_at.time() != time() else ""),
            *([f"- Ghi chú về hạn: {self._due_note}"] if self._due_note else []),
            f"- Mức đôn đốc quá hạn: {self._escalation_level}",
            f"- Văn bản: {task.document_number}"
            + (f", nội dung {task.item_number}" if task.item_number else ""),
        ]
        for suspension in self._suspensions.values():
            since = self._suspended_at.get(suspension.suspension_id, suspension.since)
            about = " ".join(f"{suspension.document}: {suspension.reason}".split())
            lines.append(f"- Tạm dừng từ {local_text(since.astimezone(self._zone()))} theo {about}")
        if self._pending_extension:
            lines.append(
                f"- Đang chờ quyết định gia hạn đến trước ngày "
                f"{self._pending_extension.new_due:%d/%m/%Y}"
            )
        sent = [
            n for n in self._notices if not (n.skipped or n.no_recipient) and n.kind != "overdue"
        ]
        if sent:
            last = local_text(sent[-1].at.astimezone(self._zone()))
            lines.append(
                f"- Đã gửi {len(sent)} thông báo, gần nhất lúc {last} ({self._zone_name()})"
            )
        return ui_text("\n".join(lines))


def _indicator_problems(
    input: ObligationInput, values: dict[str, IndicatorValue]
) -> list[tuple[str, str]]:
    """What is wrong with a report's indicators, each as (Vietnamese, English)."""
    known = {i.code: i for i in input.indicators}
    listed = ", ".join(sorted(known))
    problems = [
        (
            f"chỉ tiêu {code!r} không có trong nghĩa vụ; các chỉ tiêu: {listed or 'không có'}",
            f"unknown indicator {code!r}; known: {listed or 'none'}",
        )
        for code in values
        if code not in known
    ]
    for code, indicator in known.items():
        value = values.get(code)
        if value is None:
            if indicator.required:
                problems.append(
                    (
                        f"chỉ tiêu {code!r} ({indicator.label}) là bắt buộc",
                        f"indicator {code!r} ({indicator.label}) is required",
                    )
                )
            continue
        kind = indicator.kind
        if kind is IndicatorKind.COUNT and not (isinstance(value, int) and value >= 0):
            problems.append(
                (
                    f"chỉ tiêu {code!r} phải là số nguyên ≥ 0",
                    f"indicator {code!r} must be a whole number ≥ 0",
                )
            )
        elif kind is IndicatorKind.RATIO and not (
            isinstance(value, Ratio) and value.done <= value.total
        ):
            problems.append(
                (
                    f"chỉ tiêu {code!r} phải có dạng {{done, total}} với done ≤ total",
                    f"indicator {code!r} must be {{done, total}} with done ≤ total",
                )
            )
        elif kind is IndicatorKind.BREAKDOWN:
            categories = ", ".join(sorted(indicator.categories or []))
            if not isinstance(value, dict) or not set(value) <= set(indicator.categories or []):
                problems.append(
                    (
                        f"chỉ tiêu {code!r} phải ghi số nguyên cho các nhóm ({categories})",
                        f"indicator {code!r} must map categories ({categories}) to whole numbers",
                    )
                )
            elif any(v < 0 for v in value.values()):
                problems.append(
                    (f"chỉ tiêu {code!r} có số âm", f"indicator {code!r} has a negative count")
                )
        elif kind is IndicatorKind.TEXT and not (isinstance(value, str) and len(value) <= 5000):
            problems.append(
                (
                    f"chỉ tiêu {code!r} phải là văn bản tối đa 5000 ký tự",
                    f"indicator {code!r} must be text of at most 5000 characters",
                )
            )
    return problems


def require_claim(payload: Any, update: str) -> None:
    """In an update validator (of this workflow or the agreement's): refuse an update whose
    signed claim does not vouch for it (made up, altered, unsigned, for another update or
    workflow, or expired), before any other rule."""
    try:
        verify(payload, update=update, workflow_id=workflow.info().workflow_id, now=workflow.now())
    except ClaimRefused as error:
        raise refusal(vi=error.vi, en=error.en, prefix="claim: ") from None


def require_publisher(update: CalendarUpdate) -> None:
    """A calendar is national: it is published by an operator (an admin credential from
    settings) through the CLI, recorded as his; the (verified) claim names him, and
    `published_by`, when given, must be him."""
    claim = update.claim
    if claim is None or claim.channel != "cli" or not claim.operator:
        raise refusal(
            en="only an operator with the admin credential may publish a calendar (CLI)",
            vi="chỉ người vận hành có khóa quản trị được công bố lịch làm việc (qua CLI)",
        )
    if update.published_by is not None and update.published_by != claim.operator:
        raise refusal(
            en=f"published_by {update.published_by!r} is not the claim's operator "
            f"{claim.operator!r}",
            vi=f"người công bố {update.published_by!r} không phải người vận hành "
            f"{claim.operator!r} đã ký",
        )
