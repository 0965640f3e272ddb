"""A notice that reaches nobody (issue 13, point 4): the Obligation workflow on the
time-skipping test server, the real mail activity, a SQLite directory in which Sở Tư pháp has
no head, and mail over SMTP to the .eml sink.

The escalation step to the head of agency reaches nobody: the task records the step as such
(not as sent, not as skipped), and the province's admin gets one mail naming the task, the
step and the role; the next step, to the focal point, goes out as usual.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from harness import harness, local_now, midnight, obligation_input, recipients
from sqlalchemy import select

from agreements.models import Directory, OfficerRole
from infra import db
from workflows.obligation import ObligationWorkflow
from workflows.payloads import TaskState

ADMIN = "quan-tri.snv@quangbinh.example"
FOCAL_STP = "dau-moi.stp@quangbinh.example"


def without_role(directory: Directory, *, agency: str, role: OfficerRole) -> Directory:
    """The directory with `role` taken from every officer of `agency` (an officer left with
    no role is removed)."""
    officers = []
    for officer in directory.officers:
        roles = [r for r in officer.roles if not (officer.agency == agency and r is role)]
        if roles:
            officers.append(officer.model_copy(update={"roles": roles}))
    return directory.model_copy(update={"officers": officers})


async def test_a_step_that_reaches_nobody_is_recorded_and_told_to_the_admin_once(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        headless = without_role(h.directory, agency="STP", role=OfficerRole.HEAD)
        assert not any(o.agency == "STP" and OfficerRole.HEAD in o.roles for o in headless.officers)
        with h.sessions() as session:
            db.upsert_directory(session, directory=headless)
            session.commit()
        now = await local_now(h.env)
        due = midnight(now.date() + timedelta(days=10))
        input = obligation_input(
            due_at=due,
            reminders=("3d",),
            # No calendar in the input: offsets are plain durations, 1 and 2 days after.
            escalation=(("1d", ("head_of_agency",)), ("2d", ("focal_point",))),
        )
        handle = await h.start_obligation(input)
        await h.env.sleep(due - now + timedelta(days=3))

        status = await handle.query(ObligationWorkflow.status)
        assert status.state is TaskState.OVERDUE
        by_key = {n.key.split("/")[0] + str(n.step): n for n in status.notices}
        assert by_key["escalation1"].no_recipient
        assert not by_key["escalation1"].skipped
        assert not by_key["escalation2"].no_recipient
        assert not by_key["reminder1"].no_recipient
        [decision] = [d for d in status.decisions if d.kind == "no_recipient"]
        # Recorded when the mail activity answered, just after the step's instant.
        assert timedelta(0) <= decision.at - (due + timedelta(days=1)) < timedelta(minutes=1)
        assert decision.detail == (
            f"escalation/1/{due:%Y%m%d%H%M} reached nobody: no officer holds head_of_agency; "
            "the admins were told"
        )

        mails = h.mails()
        admin_mails = [m for m in mails if m["X-Accord-Kind"] == "no_recipient"]
        assert len(admin_mails) == 1
        [notice] = admin_mails
        assert recipients(notice) == [ADMIN]
        assert notice["X-Accord-Task"] == input.task.task_id
        assert str(notice["Subject"]) == (
            "[Accord] Không có người nhận: thông báo quá hạn (bậc 1) – "
            "Báo cáo 6 tháng đầu năm – Sở Tư pháp"
        )
        body = notice.get_body(("plain",))
        assert body is not None
        text = body.get_content()
        assert (
            "Thông báo quá hạn (bậc 1) về báo cáo “Báo cáo 6 tháng đầu năm” "
            f"(kỳ {input.task.period_label}) của Sở Tư pháp không gửi được cho ai: trong danh "
            "bạ, không cán bộ nào đang giữ vai trò thủ trưởng cơ quan (head_of_agency)." in text
        )
        assert f"Mã nhiệm vụ: {input.task.task_id}" in text
        assert "Vai trò không có người nhận: thủ trưởng cơ quan (head_of_agency)" in text

        # The step to the focal point went out as usual; nobody else got the first step.
        escalations = [m for m in mails if m["X-Accord-Kind"] == "escalation"]
        assert [recipients(m) for m in escalations] == [[FOCAL_STP]]

        await h.env.sleep(timedelta(days=60))
        await handle.result()
        # Once, in the outbox too, after the task closed.
        with h.sessions() as session:
            rows = session.scalars(
                select(db.OutboxRow).where(db.OutboxRow.kind == "no_recipient")
            ).all()
        assert [(r.recipient_email, r.status) for r in rows] == [(ADMIN, "sent")]
        assert len([m for m in h.mails() if m["X-Accord-Kind"] == "no_recipient"]) == 1
