"""Nobody acts by naming someone else, and each decision needs the right person (issue 14,
points 2-4): every update carries an actor claim signed by Accord's entry point, which the
validators verify before any rule; a plain Temporal client with a made-up, altered, unsigned,
misdirected or expired claim is refused and leaves nothing in history. Extensions are decided
by the approver the agreement names, never by the requester or an owing agency; a waiver
needs a real reason, which its mail states with who waived; a report's time is when Accord
received it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from harness import (
    TEST_CREDENTIAL,
    Harness,
    harness,
    local_now,
    midnight,
    obligation_input,
    sign,
)
from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from accord import identity
from activities.models import Actor
from agreements.models import ExtensionApprover, OfficerRole
from infra import db
from infra.claim_keys import SigningKey
from workflows.obligation import ObligationWorkflow
from workflows.payloads import (
    ExtensionDecision,
    ExtensionRequest,
    SubmitReport,
    TaskState,
    Waiver,
)

UPDATE_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
}
FORGER = Actor(
    officer_id="ke-gia-mao", tenant="quang-binh", agency="SNV", roles=[OfficerRole.ADMIN]
)
"""The issue's made-up actor."""


async def _refused(handle: WorkflowHandle[Any, Any], update: str, payload: object) -> str:
    """Send as a plain Temporal client does (by name, whatever payload); the refusal's text."""
    raw = handle._client.get_workflow_handle(handle.id)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await raw.execute_update(update, payload)
    return str(refused.value.cause)


async def test_a_plain_client_cannot_act_with_a_made_up_or_altered_actor(tmp_path: Path) -> None:
    # On the real (dev) server: a refused update is not written to its history there.
    async with harness(tmp_path, dev_server=True) as h:
        now = await local_now(h.env)
        handle = await h.start_obligation(obligation_input(due_at=midnight(now.date()) + 20 * DAY))
        other = await h.start_obligation(
            obligation_input(due_at=midnight(now.date()) + 20 * DAY, task_suffix="b")
        )
        await handle.query(ObligationWorkflow.status)  # first workflow task done: timer set
        before = [e.event_type for e in (await handle.fetch_history()).events]
        admin = h.actor("SNV", OfficerRole.ADMIN)
        waiver = Waiver(actor=admin, reason="Đơn vị đã giải thể")
        signed = await h.signed(handle, ObligationWorkflow.waive, waiver)
        assert signed.claim is not None
        attacker = identity.Credential(operator="ke-gia-mao", key=SigningKey("attacker", b"k" * 40))
        # The attacker's own key under the real key's ID.
        impostor = identity.Credential(operator="ke-gia-mao", key=SigningKey("test", b"k" * 40))

        # The attack: a made-up admin, no claim at all (as a dict, as JSON would be).
        made_up = {"actor": FORGER.model_dump(mode="json"), "reason": "Không cần"}
        assert "claim: unsigned request" in await _refused(handle, "waive", made_up)
        # Signed, but with a key Accord does not hold.
        for credential, why in ((attacker, "unknown key 'attacker'"), (impostor, "bad claim")):
            forged = await sign(
                h.env, handle, "waive", Waiver(actor=FORGER, reason="x"), credential=credential
            )
            assert why in await _refused(handle, "waive", forged)
        # A real signed request whose actor, roles or reason were changed on the way.
        altered = [
            signed.model_copy(update={"actor": FORGER}),
            signed.model_copy(
                update={"actor": admin.model_copy(update={"officer_id": "dau-moi-snv"})}
            ),
            signed.model_copy(update={"reason": "Lý do khác"}),
        ]
        for payload in altered:
            assert "claim: bad claim signature" in await _refused(handle, "waive", payload)
        # Its claim moved to another update's payload of the same fields, or another task.
        misdirected = await h.signed(other, ObligationWorkflow.waive, waiver)
        assert "bad claim signature" in await _refused(handle, "waive", misdirected)
        as_extension = await h.signed(
            handle,
            ObligationWorkflow.request_extension,
            ExtensionRequest(actor=admin, new_due=now.date() + 30 * DAY, reason="x"),
        )
        assert "bad claim signature" in await _refused(
            handle, "request_extension", as_extension.model_copy(update={"claim": signed.claim})
        )
        # Older than Accord's own delay, or from the future; a CLI claim without its operator.
        server_now = await h.env.get_current_time()
        stale = await h.signed(
            handle, ObligationWorkflow.waive, waiver, received_at=server_now - 6 * MINUTE
        )
        assert "expired claim" in await _refused(handle, "waive", stale)
        ahead = await h.signed(
            handle, ObligationWorkflow.waive, waiver, received_at=server_now + 10 * MINUTE
        )
        assert "in the future" in await _refused(handle, "waive", ahead)
        no_operator = identity.Credential(operator=None, key=TEST_CREDENTIAL.key)
        anonymous = await sign(h.env, handle, "waive", waiver, credential=no_operator)
        assert "must name its operator" in await _refused(handle, "waive", anonymous)
        # The other updates too: a made-up actor, unsigned.
        report = SubmitReport(actor=FORGER, summary="Giả mạo")
        assert "claim: unsigned" in await _refused(handle, "submit_report", report)

        history = (await handle.fetch_history()).events
        assert [e.event_type for e in history] == before
        assert not {e.event_type for e in history} & UPDATE_EVENTS
        status = await handle.query(ObligationWorkflow.status)
        assert status.state is TaskState.PENDING and status.decisions == []

        # The real admin's request, signed by the operator: accepted and recorded as such.
        result = await handle.execute_update(ObligationWorkflow.waive, signed)
        assert result.state is TaskState.WAIVED
        status = await handle.query(ObligationWorkflow.status)
        decision = status.decisions[-1]
        assert (decision.kind, decision.actor, decision.channel, decision.operator) == (
            "waived",
            "quan-tri-snv",
            "cli",
            "van-hanh-thu",
        )
        assert decision.request_id == signed.claim.request_id
        accepted = [
            e
            for e in (await handle.fetch_history()).events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        ]
        assert len(accepted) == 1


DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)


async def _requested(h: Harness, handle: WorkflowHandle[Any, Any], by: Actor) -> None:
    status = await handle.query(ObligationWorkflow.status)
    assert status.due_at is not None
    await h.update(
        handle,
        ObligationWorkflow.request_extension,
        ExtensionRequest(actor=by, new_due=status.due_at.date() + 10 * DAY, reason="Chờ số liệu"),
    )


async def _decide_refused(h: Harness, handle: WorkflowHandle[Any, Any], by: Actor) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await h.update(
            handle, ObligationWorkflow.decide_extension, ExtensionDecision(actor=by, approve=True)
        )
    return str(refused.value.cause)


async def test_only_the_named_approver_decides_an_extension(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        due = midnight(now.date() + 20 * DAY)
        # STP's report to SNV; default approvers: SNV's head (or deputy), or the leadership.
        handle = await h.start_obligation(
            obligation_input(due_at=due, agency="STP", period_end=due.date() + 90 * DAY)
        )
        await _requested(h, handle, h.actor("STP"))
        snv_focal = h.actor("SNV")
        assert "only the head or a deputy head of SNV or the provincial leadership may decide" in (
            await _decide_refused(h, handle, snv_focal)
        )
        # An admin is no approver; neither is the owing agency's own head.
        admin = h.actor("SNV", OfficerRole.ADMIN)
        assert "only the head or a deputy head of SNV" in await _decide_refused(h, handle, admin)
        stp_head = h.actor("STP", OfficerRole.HEAD)
        assert "an officer of STP, which owes this task, cannot decide" in (
            await _decide_refused(h, handle, stp_head)
        )
        # A head of another agency is not the recipient's head.
        other_head = h.actor("UBND_LE_THUY", OfficerRole.HEAD)
        assert "only the head or a deputy head of SNV" in (
            await _decide_refused(h, handle, other_head)
        )
        status = await handle.query(ObligationWorkflow.status)
        assert status.pending_extension is not None and status.due_at == due
        decided = await h.update(
            handle,
            ObligationWorkflow.decide_extension,
            ExtensionDecision(actor=h.actor("SNV", OfficerRole.HEAD), approve=True),
        )
        assert decided.due_at == due + 10 * DAY


async def test_the_approver_is_never_the_requester(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        due = midnight(now.date() + 20 * DAY)
        handle = await h.start_obligation(
            obligation_input(due_at=due, period_end=due.date() + 90 * DAY)
        )
        # A leader who is also an admin may ask (admins may) and could decide (leadership):
        # not both for the same request.
        leader = Actor(
            officer_id="lanh-dao-ubnd-tinh",
            tenant="quang-binh",
            agency="UBND_TINH",
            roles=[OfficerRole.PROVINCIAL_LEADERSHIP, OfficerRole.ADMIN],
        )
        await _requested(h, handle, leader)
        assert "officer lanh-dao-ubnd-tinh asked for this extension and cannot decide it" in (
            await _decide_refused(h, handle, leader)
        )
        # Nor by another officer ID's claim: the same officer is refused whatever his roles say.
        as_leader_only = leader.model_copy(update={"roles": [OfficerRole.PROVINCIAL_LEADERSHIP]})
        assert "cannot decide it" in await _decide_refused(h, handle, as_leader_only)
        decided = await h.update(
            handle,
            ObligationWorkflow.decide_extension,
            ExtensionDecision(actor=h.actor("SNV", OfficerRole.HEAD), approve=False),
        )
        assert decided.state is TaskState.PENDING


async def test_an_obligation_owed_by_its_recipient_is_decided_outside_the_agency(
    tmp_path: Path,
) -> None:
    """SNV reports to SNV: its own head may not extend its deadline; the provincial
    leadership may (and `validate` refuses such an obligation whose only approver is the
    recipient's head: tests/agreements)."""
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        due = midnight(now.date() + 20 * DAY)
        handle = await h.start_obligation(
            obligation_input(due_at=due, agency="SNV", period_end=due.date() + 90 * DAY)
        )
        await _requested(h, handle, h.actor("SNV"))
        assert "an officer of SNV, which owes this task, cannot decide" in (
            await _decide_refused(h, handle, h.actor("SNV", OfficerRole.HEAD))
        )
        decided = await h.update(
            handle,
            ObligationWorkflow.decide_extension,
            ExtensionDecision(
                actor=h.actor("UBND_TINH", OfficerRole.PROVINCIAL_LEADERSHIP), approve=True
            ),
        )
        assert decided.state is TaskState.PENDING


async def test_the_agreement_names_the_approver(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        due = midnight(now.date() + 20 * DAY)
        input = obligation_input(due_at=due, period_end=due.date() + 90 * DAY)
        input = input.model_copy(
            update={"extension_approver": [ExtensionApprover.PROVINCIAL_LEADERSHIP]}
        )
        handle = await h.start_obligation(input)
        await _requested(h, handle, h.actor("STP"))
        assert "only the provincial leadership may decide this extension" in (
            await _decide_refused(h, handle, h.actor("SNV", OfficerRole.HEAD))
        )


async def test_a_waiver_needs_a_real_reason_and_its_mail_says_it_and_who(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        handle = await h.start_obligation(obligation_input(due_at=midnight(now.date() + 20 * DAY)))
        admin = h.actor("SNV", OfficerRole.ADMIN)
        # Blank after trimming: refused by the model (what the CLI builds) and by the workflow
        # (what a client sends as JSON, even signed).
        with pytest.raises(ValueError, match="a waiver needs a reason, not only spaces"):
            Waiver(actor=admin, reason=" \t\n ")
        blank = {"actor": admin.model_dump(mode="json"), "reason": "   "}
        assert "reason: Value error, a waiver needs a reason" in (
            await _refused(handle, "waive", blank)
        )
        result = await h.update(
            handle,
            ObligationWorkflow.waive,
            Waiver(actor=admin, reason="  Đơn vị đã sáp nhập vào Sở Nội vụ  "),
        )
        assert result.state is TaskState.WAIVED
        await handle.result()
        [mail] = [m for m in h.mails() if m["X-Accord-Kind"] == "waived"]
        body = mail.get_body(preferencelist=("plain",))
        assert body is not None
        text = body.get_content()
        assert "Lý do miễn: Đơn vị đã sáp nhập vào Sở Nội vụ" in text
        assert "Người quyết định miễn: quan-tri-snv (Sở Nội vụ (SNV))" in text
        status = await handle.query(ObligationWorkflow.status)
        assert status.decisions[-1].detail == "Đơn vị đã sáp nhập vào Sở Nội vụ"


async def test_a_report_received_three_minutes_late_is_late_whatever_the_client_clock_says(
    tmp_path: Path,
) -> None:
    """The issue's scenario: three minutes after the deadline, after the escalation mail, a
    client's clock claims the report was sent earlier. Accord believes only when its entry
    point received it."""
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        due = midnight(now.date() + 10 * DAY)
        handle = await h.start_obligation(
            obligation_input(due_at=due, escalation=(("1m", ("focal_point",)),))
        )
        await h.env.sleep(due + 3 * MINUTE - now)
        # The old way: a `sent_at` from the client's clock. The field no longer exists.
        report = SubmitReport(actor=h.actor("STP"), summary="Nộp lúc 23:50 (đồng hồ máy tôi).")
        signed = await h.signed(handle, ObligationWorkflow.submit_report, report)
        claimed = signed.model_dump(mode="json") | {"sent_at": (due - 10 * MINUTE).isoformat()}
        assert "sent_at: Extra inputs are not permitted" in (
            await _refused(handle, "submit_report", claimed)
        )
        result = await handle.execute_update(ObligationWorkflow.submit_report, signed)
        assert result.state is TaskState.DONE_LATE
        await handle.result()
        kinds = [str(m["X-Accord-Kind"]) for m in h.mails()]
        assert "escalation" in kinds
        with h.sessions() as session:
            row = session.scalars(select(db.SubmissionRow)).one()
        assert row.late is True
        assert row.submitted_at == signed.claim.received_at if signed.claim else False
        assert row.submitted_at >= due
        assert row.handled_at is not None and row.handled_at >= row.submitted_at
