"""Schedule 2 of the obligation workflow: what the fault suite found in schedule 1, fixed.

- A report is on time or late by when the officer sent it (`SubmitReport.sent_at`), within a
  bounded tolerance, not by when a worker got round to it.
- Notices are decided when their instant comes and sent alongside the schedule: a mail outage
  neither delays later notices nor lets a report that arrives meanwhile cancel notices that
  were already owed; every one arrives once, when the relay is back.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import timedelta
from pathlib import Path

from harness import (
    QUANG_BINH,
    Harness,
    harness,
    local_now,
    midnight,
    obligation_input,
    recipients,
    start_dev_server,
)
from sqlalchemy import select

from accord import db
from accord.embedded import MailSink
from accord.settings import SmtpSettings
from activities.models import Actor
from agreements import load_directory
from worker import build_worker
from workflows.obligation import SUBMISSION_CLOCK_TOLERANCE, ObligationWorkflow
from workflows.payloads import (
    SubmitReport,
    TaskState,
    task_search_attributes,
    task_workflow_id,
)

FOCAL_STP = "dau-moi.stp@quangbinh.example"
FOCAL_SNV = "dau-moi.snv@quangbinh.example"


async def test_report_sent_before_the_deadline_but_handled_after_it_is_on_time(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        due = midnight(now.date() + timedelta(days=10))
        on_time = await h.start_obligation(obligation_input(due_at=due, task_suffix="a"))
        too_old = await h.start_obligation(obligation_input(due_at=due, task_suffix="b"))
        future = await h.start_obligation(obligation_input(due_at=due, task_suffix="c"))
        await h.env.sleep(due - now + timedelta(minutes=10))
        # Handled 10 minutes after the deadline; sent 2 minutes before it (a worker was down).
        sent = due - timedelta(minutes=2)
        result = await on_time.execute_update(
            ObligationWorkflow.submit_report,
            SubmitReport(actor=h.actor("STP"), summary="Gửi trước hạn.", sent_at=sent),
        )
        assert result.state is TaskState.DONE_ON_TIME
        status = await on_time.query(ObligationWorkflow.status)
        assert status.submitted_at == sent
        # A claimed sending time older than the tolerance is not believed: handled 25 minutes
        # after the deadline, the earliest believable instant is 10 minutes after it.
        await h.env.sleep(timedelta(minutes=15))
        result = await too_old.execute_update(
            ObligationWorkflow.submit_report,
            SubmitReport(
                actor=h.actor("STP"), summary="Đồng hồ sai.", sent_at=due - timedelta(hours=2)
            ),
        )
        assert result.state is TaskState.DONE_LATE
        handled = await local_now(h.env)
        status = await too_old.query(ObligationWorkflow.status)
        assert status.submitted_at is not None
        assert abs(status.submitted_at - (handled - SUBMISSION_CLOCK_TOLERANCE)) < timedelta(
            minutes=1
        )
        # A sending time in the future is replaced by the handling time.
        result = await future.execute_update(
            ObligationWorkflow.submit_report,
            SubmitReport(
                actor=h.actor("STP"), summary="Đồng hồ nhanh.", sent_at=due - timedelta(days=1)
            ),
        )
        assert result.state is TaskState.DONE_LATE  # handled after the due instant
        for handle in (on_time, too_old, future):
            await handle.result()
        with h.sessions() as session:
            rows = {
                r.task_id.rsplit("-", 1)[-1]: r for r in session.scalars(select(db.SubmissionRow))
            }
        assert (rows["6ta"].late, rows["6tb"].late, rows["6tc"].late) == (False, True, True)
        assert rows["6ta"].submitted_at == sent
        receipts = [m for m in h.mails() if str(m["X-Accord-Kind"]) == "receipt"]
        assert len(receipts) == 6  # focal point + aggregator, for each of the three tasks


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_mail_outage_delays_notices_but_loses_none(tmp_path: Path) -> None:
    """Real time on the dev server: the relay is down while both reminders fall due and while
    the report arrives; it comes back afterwards. Both reminders and the receipt arrive, once
    each; nothing else (no overdue escalation)."""
    directory = load_directory(QUANG_BINH)
    engine = db.make_engine(f"sqlite:///{tmp_path / 'accord.db'}")
    db.create_schema(engine)
    sessions = db.session_factory(engine)
    with sessions() as session:
        db.upsert_directory(session, directory=directory)
    port = _free_port()
    smtp = SmtpSettings(host="127.0.0.1", port=port, embedded=False)
    env = await start_dev_server()
    queue = f"test-{uuid.uuid4()}"
    try:
        async with build_worker(
            env.client,
            task_queue=queue,
            session_factory=sessions,
            smtp=smtp,
            share_accord_modules=False,
        ):
            now = await local_now(env)
            input = obligation_input(
                due_at=now + timedelta(seconds=12),
                reminders=("8s", "4s"),
                escalation=(("30s", ("focal_point",)),),
            )
            handle = await env.client.start_workflow(
                ObligationWorkflow.run,
                input,
                id=task_workflow_id(input.task.task_id),
                task_queue=queue,
                search_attributes=task_search_attributes(
                    input.task, state=TaskState.PENDING, due_at=input.task.due_at
                ),
            )
            await asyncio.sleep(10)  # both reminders fell due, neither could be sent
            focal = next(o for o in directory.officers if o.email == FOCAL_STP)
            result = await handle.execute_update(
                ObligationWorkflow.submit_report,
                SubmitReport(
                    actor=Actor(officer_id=focal.id, agency="STP", roles=list(focal.roles)),
                    summary="Nộp khi máy chủ thư đang hỏng.",
                ),
            )
            assert result.state is TaskState.DONE_ON_TIME
            status = await handle.query(ObligationWorkflow.status)
            assert [n.kind for n in status.notices if not n.skipped] == ["reminder", "reminder"]
            async with MailSink(tmp_path / "mail", port=port):
                outcome = await asyncio.wait_for(handle.result(), timeout=90)
            assert outcome.state is TaskState.DONE_ON_TIME
    finally:
        await env.shutdown()
    mails = Harness(env, sessions, tmp_path / "mail", queue, directory).mails()
    got = sorted((str(m["X-Accord-Kind"]), tuple(recipients(m))) for m in mails)
    assert got == [
        ("receipt", (FOCAL_SNV,)),
        ("receipt", (FOCAL_STP,)),
        ("reminder", (FOCAL_STP,)),
        ("reminder", (FOCAL_STP,)),
    ]
    assert (
        len({str(m["X-Accord-Key"]) for m in mails if str(m["X-Accord-Kind"]) == "reminder"}) == 2
    )
    with sessions() as session:
        rows = session.scalars(select(db.OutboxRow)).all()
        assert {r.status for r in rows} == {db.OutboxStatus.SENT}
        assert all(r.attempts >= 1 for r in rows)
        reminder_attempts = [r.attempts for r in rows if r.kind == "reminder"]
        assert max(reminder_attempts) >= 2  # they really met the outage
    engine.dispose()
