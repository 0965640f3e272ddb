"""How the obligation workflow sends its notices and dates reports (what the fault suite found
in the first schedule, which is gone since the one schedule of v1.0.0).

- A report is on time or late by when Accord's entry point received it (its signed claim),
  within Accord's own bounded delay, not by when a worker got round to it.
- Notices are decided when their instant comes and sent alongside the schedule: a mail outage
  neither delays later notices nor lets a report that arrives meanwhile cancel notices that
  were already owed; every one arrives once, when the relay is back.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from harness import (
    TEST_CLAIM_KEYS,
    harness,
    local_now,
    midnight,
    obligation_input,
    recipients,
    sign,
)
from sqlalchemy import select
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.worker import Worker

from infra import db
from worker import build_worker
from workflows.obligation import ObligationWorkflow
from workflows.payloads import SubmitReport, TaskState, UpdateResult, task_workflow_id
from workflows.search_attributes import task_search_attributes

FOCAL_STP = "dau-moi.stp@quangbinh.example"
FOCAL_SNV = "dau-moi.snv@quangbinh.example"


async def test_report_received_before_the_deadline_but_handled_after_it_is_on_time(
    tmp_path: Path, database_url: str
) -> None:
    """The report's time is when Accord's entry point received it (the signed claim), not
    when a worker got round to it; a claim older than MAX_DELIVERY_DELAY (5 minutes) is
    refused, and both times are recorded. End to end on SQLite and PostgreSQL."""
    async with harness(tmp_path, database_url=database_url) as h:
        now = await local_now(h.env)
        due = midnight(now.date() + timedelta(days=10))
        on_time = await h.start_obligation(obligation_input(due_at=due, task_suffix="a"))
        too_old = await h.start_obligation(obligation_input(due_at=due, task_suffix="b"))
        await h.env.sleep(due - now + timedelta(minutes=3))
        # Handled 3 minutes after the deadline; received 1 minute before it (a worker was
        # catching up): Accord's own delay, so on time.
        received = due - timedelta(minutes=1)
        result = await h.update(
            on_time,
            ObligationWorkflow.submit_report,
            SubmitReport(actor=h.actor("STP"), summary="Gửi trước hạn."),
            received_at=received,
        )
        assert result.state is TaskState.DONE_ON_TIME
        status = await on_time.query(ObligationWorkflow.status)
        assert status.submitted_at == received
        # 00:02 handled, shown in local time: "Accord nhận lúc <due-1m>, xử lý lúc <handled>".
        assert f"Accord nhận lúc {received:%d/%m/%Y %H:%M}" in status.decisions[-1].detail
        assert "xử lý lúc" in status.decisions[-1].detail
        # Received 6 minutes before it is handled: more than Accord's own delay may be.
        with pytest.raises(WorkflowUpdateFailedError) as expired:
            await h.update(
                too_old,
                ObligationWorkflow.submit_report,
                SubmitReport(actor=h.actor("STP"), summary="Đồng hồ sai."),
                received_at=due - timedelta(minutes=3),
            )
        assert "expired claim" in str(expired.value.cause)
        await on_time.result()
        with h.sessions() as session:
            row = session.scalars(select(db.SubmissionRow)).one()
        assert row.late is False
        assert row.submitted_at == received
        assert row.handled_at is not None
        assert timedelta(minutes=2) < row.handled_at - due < timedelta(minutes=4)


async def test_mail_outage_delays_notices_but_loses_none(tmp_path: Path) -> None:
    """Real time on the dev server: the relay is down while both reminders fall due and while
    the report arrives; it comes back afterwards. Both reminders and the receipt arrive, once
    each; nothing else (no overdue escalation)."""
    async with harness(tmp_path, dev_server=True, relay_down=True) as h:
        now = await local_now(h.env)
        handle = await h.start_obligation(
            obligation_input(
                due_at=now + timedelta(seconds=12),
                reminders=("8s", "4s"),
                escalation=(("30s", ("focal_point",)),),
            )
        )
        await asyncio.sleep(10)  # both reminders fell due, neither could be sent
        result = await h.update(
            handle,
            ObligationWorkflow.submit_report,
            SubmitReport(actor=h.actor("STP"), summary="Nộp khi máy chủ thư đang hỏng."),
        )
        assert result.state is TaskState.DONE_ON_TIME
        status = await handle.query(ObligationWorkflow.status)
        assert [n.kind for n in status.notices if not n.skipped] == ["reminder", "reminder"]
        await h.relay_up()
        outcome = await asyncio.wait_for(handle.result(), timeout=90)
        assert outcome.state is TaskState.DONE_ON_TIME
        mails = h.mails()
        with h.sessions() as session:
            rows = session.scalars(select(db.OutboxRow)).all()
    got = sorted((str(m["X-Accord-Kind"]), tuple(recipients(m))) for m in mails)
    assert got == [
        ("receipt", (FOCAL_SNV,)),
        ("receipt", (FOCAL_STP,)),
        ("reminder", (FOCAL_STP,)),
        ("reminder", (FOCAL_STP,)),
    ]
    reminder_keys = {str(m["X-Accord-Key"]) for m in mails if str(m["X-Accord-Kind"]) == "reminder"}
    assert len(reminder_keys) == 2
    assert {r.status for r in rows} == {db.OutboxStatus.SENT}
    reminder_attempts = [r.attempts for r in rows if r.kind == "reminder"]
    assert max(reminder_attempts) >= 2  # they really met the outage


async def test_notice_owed_before_the_report_is_sent_even_if_the_report_is_seen_first(
    tmp_path: Path,
) -> None:
    """Real time on the dev server, a worker outage: the reminder's instant passes while no
    worker runs, the officer sends the report after that instant, then a worker comes back
    and sees the report and the reminder's timer in one workflow task. The reminder was owed
    before the report was sent, so it goes out; the report is on time."""
    async with harness(tmp_path, dev_server=True) as h:
        queue = f"outage-{uuid.uuid4()}"
        now = await local_now(h.env)
        input = obligation_input(
            due_at=now + timedelta(seconds=30),
            reminders=("22s",),
            escalation=(("60s", ("focal_point",)),),
        )

        def worker() -> Worker:
            return build_worker(
                h.env.client,
                task_queue=queue,
                session_factory=h.sessions,
                smtp=h.smtp,
                share_accord_modules=False,
                claim_keys=TEST_CLAIM_KEYS,
            )

        async with worker():
            handle = await h.env.client.start_workflow(
                ObligationWorkflow.run,
                input,
                id=task_workflow_id(input.task.task_id),
                task_queue=queue,
                search_attributes=task_search_attributes(
                    input.task, state=TaskState.PENDING, due_at=input.task.due_at
                ),
            )
            await asyncio.sleep(2)  # the first workflow task armed the reminder's timer
        await asyncio.sleep(10)  # the reminder's instant (+8 s) passes with no worker
        sent = datetime.now(UTC)
        report = await sign(
            h.env,
            handle,
            ObligationWorkflow.submit_report,
            SubmitReport(actor=h.actor("STP"), summary="Gửi khi máy chủ ngừng."),
            received_at=sent,
        )

        async def submit() -> UpdateResult:
            # With no worker polling the server refuses the update: send it again, same ID and
            # sending time, as a careful client does.
            while True:
                try:
                    return await handle.execute_update(
                        ObligationWorkflow.submit_report, report, id="submit-once"
                    )
                except RPCError:
                    await asyncio.sleep(0.5)

        update = asyncio.create_task(submit())
        await asyncio.sleep(2)
        async with worker():
            result = await asyncio.wait_for(update, timeout=60)
            outcome = await asyncio.wait_for(handle.result(), timeout=60)
            status = await handle.query(ObligationWorkflow.status)
        assert result.state is TaskState.DONE_ON_TIME
        assert outcome.state is TaskState.DONE_ON_TIME
        assert [n.kind for n in status.notices] == ["reminder"]
        assert not status.notices[0].skipped
        kinds = sorted(str(m["X-Accord-Kind"]) for m in h.mails())
        assert kinds == ["receipt", "receipt", "reminder"]
        history = await handle.fetch_history()
        markers = [
            e.marker_recorded_event_attributes.details["patch_data"]
            for e in history.events
            if e.HasField("marker_recorded_event_attributes")
            and e.marker_recorded_event_attributes.marker_name == "core_patch"
        ]
        assert markers == []  # one schedule, no patch before the first release
