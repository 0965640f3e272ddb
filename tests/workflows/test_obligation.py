"""One obligation through its life on the time-skipping server, with the real activities, a
real SQLite database and a real SMTP server: what officers receive and what the admin sees."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from harness import ZONE, harness, local_now, midnight, obligation_input, recipients, sent_at
from sqlalchemy import select
from temporalio.client import WorkflowUpdateFailedError

from agreements.models import Indicator, OfficerRole
from infra import db
from workflows.obligation import ObligationWorkflow
from workflows.payloads import (
    ExtensionDecision,
    ExtensionRequest,
    SubmitReport,
    TaskState,
    Waiver,
)

FOCAL_STP = "dau-moi.stp@quangbinh.example"
HEAD_STP = "thu-truong.stp@quangbinh.example"
FOCAL_SNV = "dau-moi.snv@quangbinh.example"
LEADERSHIP = "lanh-dao@quangbinh.example"


def _kinds(messages: list[EmailMessage]) -> list[str]:
    return [str(m["X-Accord-Kind"]) for m in messages]


async def test_nobody_submits_every_reminder_and_escalation_step(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        due = midnight(now.date() + timedelta(days=20))
        handle = await h.start_obligation(obligation_input(due_at=due))
        outcome = await handle.result()
        # Closed when the ladder ran out, with a final state that says so.
        assert outcome.state is TaskState.NOT_DONE_OVERDUE
        assert outcome.escalation_level == 3

        got = [(sent_at(m), str(m["X-Accord-Kind"]), recipients(m)) for m in h.mails()]
        leadership = [
            o.email for o in h.directory.officers if OfficerRole.PROVINCIAL_LEADERSHIP in o.roles
        ]
        expected = [
            (due - timedelta(days=7), "reminder", [FOCAL_STP]),
            (due - timedelta(days=3), "reminder", [FOCAL_STP]),
            (due - timedelta(days=1), "reminder", [FOCAL_STP]),
            (due + timedelta(days=1), "escalation", [FOCAL_STP]),
            (due + timedelta(days=1), "escalation", [HEAD_STP]),
            (due + timedelta(days=5), "escalation", [FOCAL_SNV]),
            (due + timedelta(days=5), "escalation", [HEAD_STP]),
            *[(due + timedelta(days=10), "escalation", [e]) for e in sorted(leadership)],
        ]
        assert got == expected

        first = h.mails()[0]
        assert first["Subject"] == (
            f"[Accord] Nhắc hạn: Báo cáo 6 tháng đầu năm – Sở Tư pháp – hạn trước {due:%d/%m/%Y}"
        )
        body = first.get_body(preferencelist=("plain",))
        assert body is not None
        text = body.get_content()
        assert f"trước ngày {due:%d/%m/%Y}" in text
        assert "Thực hiện công tác dân vận chính quyền năm 2025" in text

        status = await handle.query(ObligationWorkflow.status)
        assert status.state_label == "Không hoàn thành, quá hạn khi đóng"
        assert [n.kind for n in status.notices if not n.skipped] == [
            "reminder",
            "reminder",
            "reminder",
            "overdue",
            "escalation",
            "escalation",
            "escalation",
        ]
        with h.sessions() as session:
            rows = session.scalars(select(db.OutboxRow)).all()
            assert len(rows) == len(expected)
            assert {r.status for r in rows} == {db.OutboxStatus.SENT}
            assert len({(r.business_key, r.recipient_email) for r in rows}) == len(rows)
            actions = [a.action for a in session.scalars(select(db.AuditRow))]
            assert actions.count("overdue") == 1
            assert actions.count("closed") == 1
            # Written by the workflow's local activities and the mail activity: one chain.
            chains = db.verify_audit(session)
            assert [(c.entries, c.problem) for c in chains] == [(len(actions), None)]


async def test_on_time_submission_gets_receipt_and_no_escalation(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        due = midnight(now.date() + timedelta(days=20))
        indicator = Indicator.model_validate(
            {"code": "cong-dan-duoc-tiep", "label": "Số lượt công dân được tiếp"}
        )
        handle = await h.start_obligation(obligation_input(due_at=due, indicators=(indicator,)))
        await h.env.sleep(timedelta(days=15))  # after the 7-day reminder only
        result = await h.update(
            handle,
            ObligationWorkflow.submit_report,
            SubmitReport(
                actor=h.actor("STP"),
                summary="Đã tiếp 1.901 lượt công dân.",
                indicators={"cong-dan-duoc-tiep": 1901},
            ),
        )
        assert result.state is TaskState.DONE_ON_TIME
        outcome = await handle.result()
        assert outcome.state is TaskState.DONE_ON_TIME
        mails = h.mails()
        assert _kinds(mails) == ["reminder", "receipt", "receipt"]
        assert sorted(r for m in mails[1:] for r in recipients(m)) == [FOCAL_SNV, FOCAL_STP]
        assert "Đã nhận báo cáo" in str(mails[1]["Subject"])
        with h.sessions() as session:
            row = session.scalars(select(db.SubmissionRow)).one()
            assert row.task_id.endswith("/STP/" + f"{due.year}-6t")
            assert row.late is False
            assert row.indicators == {"cong-dan-duoc-tiep": 1901}
            assert row.officer_id == h.actor("STP").officer_id


async def test_late_submission_stops_escalation_and_is_recorded_late(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        due = midnight(now.date() + timedelta(days=10))
        handle = await h.start_obligation(obligation_input(due_at=due))
        await h.env.sleep(due + timedelta(days=2) - now)  # past escalation step 1 (+1d)
        result = await h.update(
            handle,
            ObligationWorkflow.submit_report,
            SubmitReport(actor=h.actor("STP"), summary="Nộp muộn."),
        )
        assert result.state is TaskState.DONE_LATE
        outcome = await handle.result()
        assert outcome.state is TaskState.DONE_LATE
        assert outcome.escalation_level == 1
        mails = h.mails()
        assert _kinds(mails) == ["reminder"] * 3 + ["escalation"] * 2 + ["receipt"] * 2
        assert all(sent_at(m) < due + timedelta(days=5) for m in mails)
        with h.sessions() as session:
            assert session.scalars(select(db.SubmissionRow)).one().late is True
        status = await handle.query(ObligationWorkflow.status)
        assert status.state_label == "Hoàn thành quá hạn"
        assert status.decisions[-1].kind == "submitted"


async def test_approved_extension_moves_reminders_and_escalation(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        due = midnight(now.date() + timedelta(days=20))
        new_due = due + timedelta(days=10)
        handle = await h.start_obligation(
            obligation_input(due_at=due, period_end=due.date() + timedelta(days=90))
        )
        await h.env.sleep(timedelta(days=14))  # the 7-day reminder has gone out
        await h.update(
            handle,
            ObligationWorkflow.request_extension,
            ExtensionRequest(actor=h.actor("STP"), new_due=new_due.date(), reason="Chờ số liệu"),
        )
        decided = await h.update(
            handle,
            ObligationWorkflow.decide_extension,
            ExtensionDecision(actor=h.actor("SNV", OfficerRole.HEAD), approve=True, note="Đồng ý"),
        )
        assert decided.due_at == new_due
        await handle.result()
        reminders = [sent_at(m) for m in h.mails() if m["X-Accord-Kind"] == "reminder"]
        assert reminders == [
            due - timedelta(days=7),
            new_due - timedelta(days=7),
            new_due - timedelta(days=3),
            new_due - timedelta(days=1),
        ]
        escalations = sorted({sent_at(m) for m in h.mails() if m["X-Accord-Kind"] == "escalation"})
        assert escalations == [new_due + timedelta(days=d) for d in (1, 5, 10)]
        decided_mail = next(m for m in h.mails() if m["X-Accord-Kind"] == "extension_decided")
        assert recipients(decided_mail) == [FOCAL_STP]
        # The request reaches the aggregator (SNV's focal point) and who decides it: SNV's
        # head (recipient_head), so that he has a mail to follow to the request; not the
        # provincial leadership, the second approver, for every request.
        requested = [m for m in h.mails() if m["X-Accord-Kind"] == "extension_requested"]
        assert sorted(r for m in requested for r in recipients(m)) == sorted(
            [FOCAL_SNV, "thu-truong.snv@quangbinh.example"]
        )
        status = await handle.query(ObligationWorkflow.status)
        assert status.original_due_at == due
        assert status.due_at == new_due
        assert [d.kind for d in status.decisions] == ["extension_requested", "extension_approved"]


async def test_rejected_updates_leave_no_trace_in_history(tmp_path: Path) -> None:
    # On the real (dev) server: the time-skipping test server has no speculative workflow
    # tasks and records a workflow task for every update, accepted or not.
    async with harness(tmp_path, dev_server=True) as h:
        now = await local_now(h.env)
        due = midnight(now.date() + timedelta(days=20))
        handle = await h.start_obligation(obligation_input(due_at=due))
        await handle.query(ObligationWorkflow.status)  # first workflow task done: timer set
        before = [e.event_type for e in (await handle.fetch_history()).events]

        with pytest.raises(WorkflowUpdateFailedError) as other_agency:
            await h.update(
                handle,
                ObligationWorkflow.submit_report,
                SubmitReport(actor=h.actor("UBND_LE_THUY"), summary="Không phải của tôi"),
            )
        assert "rule: only an officer of STP or an admin may submit" in str(
            other_agency.value.cause
        )
        with pytest.raises(WorkflowUpdateFailedError) as unknown_indicator:
            await h.update(
                handle,
                ObligationWorkflow.submit_report,
                SubmitReport(actor=h.actor("STP"), summary="x", indicators={"so-lieu-la": 5}),
            )
        assert "unknown indicator 'so-lieu-la'" in str(unknown_indicator.value.cause)
        with pytest.raises(WorkflowUpdateFailedError) as outside:
            await h.update(
                handle,
                ObligationWorkflow.request_extension,
                ExtensionRequest(
                    actor=h.actor("STP"), new_due=due.date() + timedelta(days=400), reason="x"
                ),
            )
        assert "outside the agreement's period" in str(outside.value.cause)
        with pytest.raises(WorkflowUpdateFailedError) as not_admin:
            await h.update(
                handle, ObligationWorkflow.waive, Waiver(actor=h.actor("STP"), reason="x")
            )
        assert "only an admin may waive" in str(not_admin.value.cause)

        after = [e.event_type for e in (await handle.fetch_history()).events]
        assert after == before  # rejected updates are not written to history

        result = await h.update(
            handle,
            ObligationWorkflow.waive,
            Waiver(actor=h.actor("SNV", OfficerRole.ADMIN), reason="Đơn vị đã giải thể"),
        )
        assert result.state is TaskState.WAIVED
        outcome = await handle.result()
        assert outcome.state is TaskState.WAIVED
        assert _kinds(h.mails()) == ["waived"]
        assert sent_at(h.mails()[0]).tzinfo is not None
        assert now.tzinfo == ZONE
