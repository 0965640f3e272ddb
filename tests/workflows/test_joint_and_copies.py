"""A joint report copied to a third agency, on the time-skipping server with the real worker,
SQLite database and SMTP server, over the small directory of `tests/agreements/forms/`:
who receives what (copies marked as such), who may submit, and that one submission closes the
task for every owner."""

from __future__ import annotations

from datetime import date, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from harness import (
    ROOT,
    Harness,
    harness,
    local_now,
    midnight,
    obligation_input,
    recipients,
    sent_at,
)
from sqlalchemy import select
from temporalio.client import WorkflowUpdateFailedError

from activities.models import Actor
from agreements.models import EscalationStep
from infra import db
from workflows.obligation import ObligationWorkflow
from workflows.payloads import ObligationInput, SubmitReport, TaskState

FORMS_DIRECTORY = ROOT / "tests" / "agreements" / "forms" / "directory.yaml"

FOCAL_SNV = "dau-moi.snv@mau.example"
FOCAL_STP = "dau-moi.stp@mau.example"
HEAD_SNV = "giam-doc.snv@mau.example"
HEAD_STP = "giam-doc.stp@mau.example"
COPY_VI = "dau-moi.btgdv@mau.example"
COPY_EN = "dau-moi-2.btgdv@mau.example"  # the same board's focal point who reads English
UBND_LEADER = "lanh-dao.ubnd-tinh@mau.example"
UBND_CHAIR = "chu-tich.ubnd-tinh@mau.example"
FOCAL_UBND = "dau-moi.ubnd-tinh@mau.example"


def _joint_input(due_days: int, today: date) -> ObligationInput:
    """SNV and STP owe one report to UBND_TINH, copied to BTGDV: reminded 3 days before, then
    their heads a day after, then UBND_TINH's leaders five days after."""
    base = obligation_input(
        due_at=midnight(today + timedelta(days=due_days)),
        agency="SNV",
        reminders=("3d",),
        escalation=(("1d", ("head_of_agency",)),),
    )
    task = base.task.model_copy(
        update={
            "task_id": base.task.task_id.replace("/SNV/", "/SNV+STP/"),
            "tenant": "tinh-mau",  # the forms directory's
            "co_owners": ["STP"],
            "recipient": "UBND_TINH",
            "copy_to": ["BTGDV"],
        }
    )
    ladder = [
        *base.escalation,
        EscalationStep.model_validate({"after": "5d", "notify": [{"leadership_of": "UBND_TINH"}]}),
    ]
    return base.model_copy(update={"task": task, "escalation": ladder})


def _text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def _is_copy(message: EmailMessage) -> bool:
    subject = str(message["Subject"])
    if recipients(message) == [COPY_EN]:
        marked = subject.startswith("[Accord] Copy for information –")
        return marked and "Copy for information: your agency" in _text(message)
    marked = subject.startswith("[Accord] Đồng gửi để biết –")
    return marked and "Đồng gửi để biết: thư này gửi đến cơ quan đồng chí" in _text(message)


def _actor(h: Harness, officer_id: str) -> Actor:
    officer = next(o for o in h.directory.officers if o.id == officer_id)
    return Actor(
        officer_id=officer.id,
        tenant=h.directory.tenant,
        agency=officer.agency,
        roles=list(officer.roles),
    )


async def test_joint_task_reaches_every_owner_copies_and_one_leadership(tmp_path: Path) -> None:
    async with harness(tmp_path, directory_path=FORMS_DIRECTORY) as h:
        now = await local_now(h.env)
        input = _joint_input(20, now.date())
        due = input.task.due_at
        assert due is not None
        handle = await h.start_obligation(input)
        outcome = await handle.result()
        assert outcome.state is TaskState.NOT_DONE_OVERDUE

        got = sorted(
            (sent_at(m), str(m["X-Accord-Kind"]), recipients(m)[0], _is_copy(m)) for m in h.mails()
        )
        # No calendar: offsets in calendar days from the due instant, no sending window.
        reminder, step1, step2 = (
            due - timedelta(days=3),
            due + timedelta(days=1),
            due + timedelta(days=5),
        )
        expected = sorted(
            [
                (reminder, "reminder", FOCAL_SNV, False),
                (reminder, "reminder", FOCAL_STP, False),
                (reminder, "reminder", COPY_VI, True),
                (reminder, "reminder", COPY_EN, True),
                (step1, "escalation", HEAD_SNV, False),
                (step1, "escalation", HEAD_STP, False),
                (step1, "escalation", COPY_VI, True),
                (step1, "escalation", COPY_EN, True),
                # The People's Committee's leaders only: not the Party committee's.
                (step2, "escalation", UBND_LEADER, False),
                (step2, "escalation", UBND_CHAIR, False),
                (step2, "escalation", COPY_VI, True),
                (step2, "escalation", COPY_EN, True),
            ]
        )
        assert got == expected
        owners_mail = next(m for m in h.mails() if recipients(m) == [FOCAL_STP])
        assert "Cơ quan thực hiện: Sở Nội vụ (SNV), Sở Tư pháp (STP)" in _text(owners_mail)
        assert "Đồng gửi: Ban Tuyên giáo và Dân vận Tỉnh ủy (BTGDV)" in _text(owners_mail)


async def test_second_owner_submits_and_closes_the_joint_task(tmp_path: Path) -> None:
    async with harness(tmp_path, directory_path=FORMS_DIRECTORY) as h:
        now = await local_now(h.env)
        input = _joint_input(20, now.date())
        handle = await h.start_obligation(input)
        await h.env.sleep(timedelta(days=18))  # after the 3-day reminder, before the due date

        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                ObligationWorkflow.submit_report,
                SubmitReport(actor=_actor(h, "dau-moi-xa-a"), summary="Không phải của tôi"),
            )
        assert "rule: only an officer of SNV or STP or an admin may submit" in str(
            refused.value.cause
        )

        result = await handle.execute_update(
            ObligationWorkflow.submit_report,
            SubmitReport(actor=_actor(h, "dau-moi-stp"), summary="Báo cáo chung của hai sở."),
        )
        assert result.state is TaskState.DONE_ON_TIME
        outcome = await handle.result()
        assert outcome.state is TaskState.DONE_ON_TIME

        receipts = [m for m in h.mails() if str(m["X-Accord-Kind"]) == "receipt"]
        assert sorted((recipients(m)[0], _is_copy(m)) for m in receipts) == sorted(
            [
                (FOCAL_SNV, False),
                (FOCAL_STP, False),
                (FOCAL_UBND, False),  # the aggregator
                (COPY_VI, True),
                (COPY_EN, True),
            ]
        )
        assert [str(m["X-Accord-Kind"]) for m in h.mails()].count("escalation") == 0
        with h.sessions() as session:
            row = session.scalars(select(db.SubmissionRow)).one()
            assert row.task_id == input.task.task_id
            assert row.officer_id == "dau-moi-stp"
        status = await handle.query(ObligationWorkflow.status)
        assert status.task.co_owners == ["STP"]
        # What the Web UI shows for the task (its current details).
        metadata = await handle.query("__temporal_workflow_metadata")
        details = metadata.current_details
        assert "- Cơ quan thực hiện: `SNV`, `STP` (cùng thực hiện)" in details
        assert "- Đồng gửi: `BTGDV`" in details
