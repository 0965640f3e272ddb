"""Issue 17, the task's side: the orders an agreement sends its running tasks (`task_order`
signal): withdraw, move the due date, suspend, resume (deadline shifted or kept), transfer to a
successor. Orders are sent here as the agreement sends them, by signalling the task with the
parent's workflow ID; every date is worked out by hand from the test server's "today" (no
working calendar, so no deadline rule moves a date), and the mails are the SMTP sink's.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from harness import Harness, harness, local_now, midnight, obligation_input, recipients
from temporalio import workflow
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from workflows.obligation import ObligationWorkflow
from workflows.payloads import (
    TASK_CHANGED_SIGNAL,
    TASK_ORDER_SIGNAL,
    ObligationInput,
    SubmitReport,
    Suspended,
    TaskChange,
    TaskOrder,
    TaskOutcome,
    TaskState,
)
from workflows.search_attributes import SA_AGENCY, SA_ORIGINAL_AGENCY

PARENT = "agreement/test-2025"
"""The tasks' (dummy) agreement workflow: the orders name it; telling it fails harmlessly."""
DOCUMENT = "Quyết định số 15/QĐ-UBND ngày 02/03/2025"
FOCAL_STP = "dau-moi.stp@quangbinh.example"
HEAD_STP = "thu-truong.stp@quangbinh.example"
FOCAL_VH = "dau-moi.svhttdl@quangbinh.example"
HEAD_VH = "thu-truong.svhttdl@quangbinh.example"
FOCAL_VP = "dau-moi.vp-ubnd@quangbinh.example"
NO_ESCALATION: tuple[tuple[str, tuple[str, ...]], ...] = ()


def child(suffix: str, due: datetime, **kwargs: object) -> ObligationInput:
    task = obligation_input(due_at=due, task_suffix=suffix, **kwargs)  # type: ignore[arg-type]
    return task.model_copy(update={"parent_workflow_id": PARENT})


async def order(
    h: Harness,
    handle: WorkflowHandle[ObligationWorkflow, TaskOutcome],
    order_id: str,
    kind: str,
    *,
    parent: str = PARENT,
    **fields: object,
) -> None:
    await handle.signal(
        TASK_ORDER_SIGNAL,
        TaskOrder.model_validate(
            {
                "order_id": order_id,
                "agreement_workflow_id": parent,
                "kind": kind,
                "at": await h.env.get_current_time(),
                "document": DOCUMENT,
                "reason": "Theo chỉ đạo của UBND tỉnh",
                "actor": "quan-tri-snv",
                **fields,
            }
        ),
    )
    # Let the task take it (the test server skips no time while a worker is busy).
    await h.env.sleep(timedelta(seconds=30))


async def sleep_until(h: Harness, at: datetime) -> None:
    await h.env.sleep(at - await local_now(h.env))


def of_kind(mails: list[EmailMessage], kind: str, task: str = "") -> list[EmailMessage]:
    return [m for m in mails if str(m["X-Accord-Kind"]) == kind and task in str(m["X-Accord-Key"])]


def text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def day(d: date) -> str:
    return f"{d:%d/%m/%Y}"


async def test_withdraw_and_move_due_once_each_and_only_from_the_parent(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        today = now.date()
        due = midnight(today + timedelta(days=20))
        gone = await h.start_obligation(child("a", due, escalation=NO_ESCALATION))
        moved = await h.start_obligation(child("b", due, escalation=NO_ESCALATION))

        # Another workflow's order, and a malformed one, change nothing.
        await order(h, gone, "x/withdraw", "withdraw", parent="agreement/other")
        await gone.signal(TASK_ORDER_SIGNAL, {"order_id": "y"})
        await h.env.sleep(timedelta(seconds=30))
        status = await gone.query(ObligationWorkflow.status)
        assert status.state is TaskState.PENDING
        assert status.ignored_orders == 2

        await order(h, gone, "sua-doi-1/withdraw", "withdraw")
        # (Not `gone.result()`: waiting on a result lets the server skip the other's timers.)
        status = await gone.query(ObligationWorkflow.status)
        assert status.state is TaskState.WITHDRAWN
        assert status.closed
        assert [d.kind for d in status.decisions] == ["withdrawn"]
        assert DOCUMENT in status.decisions[0].detail

        # Ten days on (the old due is 10 days ahead: its 7-day reminder not sent yet), the due
        # date moves to today + 30, twice with the same order ID.
        await sleep_until(h, midnight(today + timedelta(days=10)) + timedelta(hours=12))
        new_due = midnight(today + timedelta(days=30))
        for _ in range(2):
            await order(h, moved, "sua-doi-2/move_due", "move_due", written_due_at=new_due)
        status = await moved.query(ObligationWorkflow.status)
        assert status.state is TaskState.PENDING
        assert status.due_at == new_due
        assert status.next_action == "reminder 7d"
        assert status.next_action_at is not None
        assert status.next_action_at.astimezone(due.tzinfo).date() == today + timedelta(days=23)
        assert [d.kind for d in status.decisions] == ["due_changed"]
        # Past the new due date: the three reminders of the new one, none of the old one.
        await sleep_until(h, new_due - timedelta(hours=1))
        mails = h.mails()

    withdrawn = of_kind(mails, "withdrawn")
    assert sorted(recipients(m)[0] for m in withdrawn) == [FOCAL_STP, HEAD_STP]
    subject = str(withdrawn[0]["Subject"])
    assert subject == "[Accord] Rút nhiệm vụ: Báo cáo 6 tháng đầu năm – Sở Tư pháp"
    body = text(withdrawn[0])
    assert "đã được rút theo văn bản Quyết định số 15/QĐ-UBND ngày 02/03/2025" in body
    assert "Lý do: Theo chỉ đạo của UBND tỉnh" in body
    assert not of_kind(mails, "reminder", "6ta")

    changed = of_kind(mails, "due_changed")
    assert sorted(recipients(m)[0] for m in changed) == [FOCAL_STP, HEAD_STP]
    body = text(changed[0])
    old_last, new_last = today + timedelta(days=19), today + timedelta(days=29)
    assert f"Hạn cũ: trước ngày {day(due.date())} (ngày cuối: {day(old_last)})" in body
    assert f"Hạn mới: trước ngày {day(new_due.date())} (ngày cuối: {day(new_last)})" in body
    assert f"mới: hạn trước {day(new_due.date())}" in str(changed[0]["Subject"])
    reminders = of_kind(mails, "reminder", "6tb")
    assert [m["X-Accord-Key"].split("/")[-2] for m in reminders] == ["1", "2", "3"]
    assert {recipients(m)[0] for m in reminders} == {FOCAL_STP}
    assert [(m["Date"].datetime.astimezone(due.tzinfo).date()) for m in reminders] == [
        today + timedelta(days=23),
        today + timedelta(days=27),
        today + timedelta(days=29),
    ]


async def test_suspended_task_is_not_chased_and_resumes_with_or_without_shift(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        today = now.date()
        due = midnight(today + timedelta(days=20))
        kept = await h.start_obligation(child("k", due))
        shifted = await h.start_obligation(child("s", due))
        overlap = await h.start_obligation(child("o", due, escalation=NO_ESCALATION))
        born = await h.start_obligation(
            child("n", due).model_copy(
                update={
                    "suspension": Suspended(
                        suspension_id="tam-dung-0",
                        since=now,
                        document=DOCUMENT,
                        reason="Đề án tạm dừng",
                    )
                }
            )
        )

        # Day 5, noon: suspended (the overlapping task twice: agreement and item).
        await sleep_until(h, midnight(today + timedelta(days=5)) + timedelta(hours=12))
        for handle in (kept, shifted, overlap):
            await order(h, handle, "tam-dung-1/suspend", "suspend", suspension_id="tam-dung-1")
        await order(h, overlap, "tam-dung-2/suspend", "suspend", suspension_id="tam-dung-2")
        status = await kept.query(ObligationWorkflow.status)
        assert status.state is TaskState.SUSPENDED
        assert status.next_action is None
        assert [s.suspension_id for s in status.suspensions] == ["tam-dung-1"]
        details = (await kept.query("__temporal_workflow_metadata")).current_details
        assert "- Trạng thái: **Tạm dừng**" in details
        since = midnight(today + timedelta(days=5)) + timedelta(hours=12)
        assert (
            f"- Tạm dừng từ {since:%d/%m/%Y %H:%M} theo {DOCUMENT}: Theo chỉ đạo của UBND tỉnh"
            in details
        )
        born_status = await born.query(ObligationWorkflow.status)
        assert born_status.state is TaskState.SUSPENDED
        assert [d.kind for d in born_status.decisions] == ["suspended"]

        # Day 10: the item's suspension lifted; the agreement's still holds the task.
        await sleep_until(h, midnight(today + timedelta(days=10)) + timedelta(hours=12))
        await order(h, overlap, "resume:tam-dung-2/resume", "resume", suspension_id="tam-dung-2")
        status = await overlap.query(ObligationWorkflow.status)
        assert status.state is TaskState.SUSPENDED  # no mail: the task is not resumed yet
        assert [s.suspension_id for s in status.suspensions] == ["tam-dung-1"]

        # Day 35, noon (past the due date, past every reminder and escalation instant).
        await sleep_until(h, midnight(today + timedelta(days=35)) + timedelta(hours=12))
        mails_while_suspended = h.mails()
        await order(h, kept, "resume:tam-dung-1/resume", "resume", suspension_id="tam-dung-1")
        await order(
            h,
            shifted,
            "resume:tam-dung-1/resume",
            "resume",
            suspension_id="tam-dung-1",
            shift_deadline=True,
        )
        await order(h, overlap, "resume:tam-dung-1/resume", "resume", suspension_id="tam-dung-1")
        kept_status = await kept.query(ObligationWorkflow.status)
        shifted_status = await shifted.query(ObligationWorkflow.status)
        overlap_status = await overlap.query(ObligationWorkflow.status)
        # Kept: overdue now, its missed reminders and escalation steps skipped, not sent.
        assert kept_status.state is TaskState.OVERDUE
        assert kept_status.due_at == due
        assert kept_status.escalation_level == 0
        # Shifted by the 30 days suspended (day 5 → day 35): due before day 50.
        new_due = midnight(today + timedelta(days=50))
        assert shifted_status.state is TaskState.PENDING
        assert shifted_status.due_at == new_due
        assert shifted_status.next_action == "reminder 7d"
        assert overlap_status.state is TaskState.OVERDUE
        # Day 44: the shifted task's 7-day reminder (day 43) went; nothing for the others.
        await sleep_until(h, midnight(today + timedelta(days=44)))
        mails = h.mails()

    assert {str(m["X-Accord-Kind"]) for m in mails_while_suspended} == {"suspended"}
    suspended = of_kind(mails_while_suspended, "suspended")
    # Three tasks told once, the overlapping one twice; focal point and head each.
    assert len(suspended) == 2 * 4
    assert str(suspended[0]["Subject"]) == (
        "[Accord] Tạm dừng: Báo cáo 6 tháng đầu năm – Sở Tư pháp"
    )
    assert "không gửi thư nhắc hạn và không đôn đốc quá hạn" in text(suspended[0])

    resumed_kept = of_kind(mails, "resumed", "6tk")
    assert sorted(recipients(m)[0] for m in resumed_kept) == [FOCAL_STP, HEAD_STP]
    body = text(resumed_kept[0])
    assert "sau 30 ngày tạm dừng" in body
    last = today + timedelta(days=19)
    assert f"Hạn nộp giữ nguyên: trước ngày {day(due.date())} (ngày cuối: {day(last)})" in body
    body = text(of_kind(mails, "resumed", "6ts")[0])
    assert (
        f"hạn cũ trước ngày {day(due.date())} (ngày cuối: {day(last)}), hạn mới trước ngày "
        f"{day(new_due.date())} (ngày cuối: {day(today + timedelta(days=49))})" in body
    )
    before = {(str(m["Message-ID"])) for m in mails_while_suspended}
    after = [m for m in mails if str(m["Message-ID"]) not in before]
    assert sorted(str(m["X-Accord-Kind"]) for m in after) == [
        "reminder",
        *["resumed"] * 6,
    ]
    reminder = of_kind(after, "reminder")[0]
    assert "6ts" in str(reminder["X-Accord-Key"])
    assert reminder["Date"].datetime.astimezone(due.tzinfo).date() == today + timedelta(days=43)


@workflow.defn(name="Recorder", sandboxed=False)
class Recorder:
    """Stands for the tasks' agreement: keeps what they tell it (`task_changed`)."""

    def __init__(self) -> None:
        self._told: list[dict[str, Any]] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name=TASK_CHANGED_SIGNAL)
    def task_changed(self, change: dict[str, Any]) -> None:
        self._told.append(change)

    @workflow.query
    def told(self) -> list[dict[str, Any]]:
        return self._told


async def test_transfer_to_a_successor_and_a_new_receiving_agency(tmp_path: Path) -> None:
    async with (
        harness(tmp_path) as h,
        Worker(
            h.env.client,
            task_queue=h.task_queue + "-parent",
            workflows=[Recorder],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ),
    ):
        now = await local_now(h.env)
        today = now.date()
        due = midnight(today + timedelta(days=20))
        # The agreement, as far as the tasks see it: a workflow that records their signals.
        # By name: a typed start of a workflow without argument confuses mypy's inference of
        # every later `get_workflow_handle_for(ObligationWorkflow.run, …)` in the project.
        parent = await h.env.client.start_workflow(
            "Recorder", id=PARENT, task_queue=h.task_queue + "-parent"
        )
        passed = await h.start_obligation(child("t", due, escalation=NO_ESCALATION))
        readdressed = await h.start_obligation(child("r", due, escalation=NO_ESCALATION))
        effective = today + timedelta(days=1)
        await sleep_until(h, midnight(effective) + timedelta(hours=9))
        for _ in range(2):
            await order(
                h,
                passed,
                "sap-nhap/transfer",
                "transfer",
                agency="SVHTTDL",
                effective=effective,
            )
        await order(
            h, readdressed, "sap-nhap/transfer", "transfer", agency="STP", recipient="VP_UBND"
        )
        status = await passed.query(ObligationWorkflow.status)
        assert (status.task.agency, status.task.original_agency) == ("SVHTTDL", "STP")
        assert status.task.task_id.split("/")[2] == "STP"
        assert [d.kind for d in status.decisions] == ["transferred"]
        described = await passed.describe()
        attributes = described.typed_search_attributes
        assert attributes.get(SA_AGENCY) == "SVHTTDL"
        assert attributes.get(SA_ORIGINAL_AGENCY) == "STP"
        details = (await passed.query("__temporal_workflow_metadata")).current_details
        assert "- Cơ quan thực hiện: `SVHTTDL`" in details
        assert "- Cơ quan thực hiện ban đầu: `STP` (đã chuyển giao)" in details
        other = await readdressed.query(ObligationWorkflow.status)
        assert (other.task.agency, other.task.recipient) == ("STP", "VP_UBND")
        assert other.task.original_agency is None
        assert (await readdressed.describe()).typed_search_attributes.get(
            SA_ORIGINAL_AGENCY
        ) is None

        # The former owner's officers may no longer submit; the successor's may.
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await h.update(
                passed,
                ObligationWorkflow.submit_report,
                SubmitReport(actor=h.actor("STP"), summary="Nộp nhầm."),
            )
        assert "SVHTTDL" in str(refused.value.cause)
        result = await h.update(
            passed,
            ObligationWorkflow.submit_report,
            SubmitReport(actor=h.actor("SVHTTDL"), summary="Đơn vị kế thừa nộp."),
        )
        assert result.state is TaskState.DONE_ON_TIME
        await passed.result()
        mails = h.mails()
        told = [TaskChange.model_validate(c) for c in await parent.query(Recorder.told)]

    # The agreement's ledger learns the current owner once the task passed.
    passed_told = [(c.state, c.agency, c.closed) for c in told if c.task_id.endswith("6tt")]
    assert passed_told[0] == (TaskState.PENDING, None, False)
    assert passed_told[-2:] == [
        (TaskState.PENDING, "SVHTTDL", False),
        (TaskState.DONE_ON_TIME, "SVHTTDL", True),
    ]
    assert all(c.agency is None for c in told if c.task_id.endswith("6tr"))

    transferred = of_kind(mails, "transferred", "6tt")
    assert sorted(recipients(m)[0] for m in transferred) == [
        FOCAL_VH,
        HEAD_STP,
        HEAD_VH,
    ]
    by_address = {recipients(m)[0]: m for m in transferred}
    subject = str(by_address[FOCAL_VH]["Subject"])
    assert subject == (
        "[Accord] Chuyển giao nhiệm vụ: Báo cáo 6 tháng đầu năm – Sở Văn hóa, Thể thao và Du "
        f"lịch – hạn trước {day(due.date())}"
    )
    body = text(by_address[FOCAL_VH])
    assert (
        f"Từ ngày {day(effective)}, theo văn bản {DOCUMENT}, nhiệm vụ báo cáo “Báo cáo 6 tháng "
        "đầu năm”" in body
    )
    assert "của Sở Tư pháp (STP) được chuyển giao cho Sở Văn hóa, Thể thao và Du lịch" in body
    assert (
        f"Hạn nộp: trước ngày {day(due.date())} (ngày cuối: "
        f"{day(today + timedelta(days=19))})" in body
    )
    assert "Đề nghị đồng chí tiếp nhận, hoàn thành và nộp báo cáo đúng hạn." in body
    assert "Kính báo cáo để đồng chí nắm và chỉ đạo." in text(by_address[HEAD_STP])
    readdress = of_kind(mails, "transferred", "6tr")
    assert [recipients(m) for m in readdress] == [[FOCAL_STP]]
    assert str(readdress[0]["Subject"]).startswith("[Accord] Thay đổi nơi nhận báo cáo: ")
    assert "sang Văn phòng UBND tỉnh (VP_UBND)" in text(readdress[0])
    receipts = of_kind(mails, "receipt", "6tt")
    assert FOCAL_VH in {recipients(m)[0] for m in receipts}
    assert FOCAL_STP not in {recipients(m)[0] for m in receipts}


async def test_an_orders_text_stays_in_the_body_on_one_line(tmp_path: Path) -> None:
    """The document and reason come from an admin's command: a line break cannot add a mail
    header, invisible format characters reach no mail, decision or Web UI detail."""
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        handle = await h.start_obligation(
            child("h", midnight(now.date() + timedelta(days=20)), escalation=NO_ESCALATION)
        )
        await order(
            h,
            handle,
            "tam-dung-x/suspend",
            "suspend",
            suspension_id="tam-dung-x",
            document="Công văn 7/UBND\r\nBcc: ke-xau@evil.example",
            reason="Chờ \u202ehướng dẫn\u202c\u200b\nSubject: giả mạo",
        )
        status = await handle.query(ObligationWorkflow.status)
        details = (await handle.query("__temporal_workflow_metadata")).current_details
        mails = h.mails()

    assert len(mails) == 2
    for message in mails:
        assert message["Bcc"] is None
        assert str(message["Subject"]) == "[Accord] Tạm dừng: Báo cáo 6 tháng đầu năm – Sở Tư pháp"
        body = text(message)
        assert "theo văn bản Công văn 7/UBND Bcc: ke-xau@evil.example." in body
        assert "Lý do: Chờ hướng dẫn Subject: giả mạo" in body
        assert not {c for c in str(message) if 0x200B <= ord(c) <= 0x202E}
    assert not {c for d in status.decisions for c in d.detail if 0x200B <= ord(c) <= 0x202E}
    assert "Bcc: ke-xau@evil.example: Chờ hướng dẫn Subject: giả mạo" in details
    assert "\nBcc" not in details and "\nSubject" not in details


async def test_overlapping_suspensions_shift_by_the_whole_suspended_time(tmp_path: Path) -> None:
    """S1 from day 1, S2 from day 5; S2 lifted with a shift on day 10 while S1 holds, then S1
    with a shift on day 12: the deadline moves by days 1 to 12, 11 days (it moved 7 before
    the shift counted from the oldest suspension in force)."""
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        today = now.date()
        due = midnight(today + timedelta(days=40))
        handle = await h.start_obligation(child("o", due, escalation=NO_ESCALATION))

        async def on_day(day: int, kind: str, suspension: str) -> None:
            await sleep_until(h, midnight(today + timedelta(days=day)) + timedelta(hours=12))
            await order(
                h,
                handle,
                f"{suspension}/{kind}",
                kind,
                suspension_id=suspension,
                shift_deadline=kind == "resume",
            )

        await on_day(1, "suspend", "s1")
        await on_day(5, "suspend", "s2")
        await on_day(10, "resume", "s2")
        status = await handle.query(ObligationWorkflow.status)
        assert status.state is TaskState.SUSPENDED
        assert status.due_at == due + timedelta(days=9)  # days 1 to 10
        await on_day(12, "resume", "s1")
        status = await handle.query(ObligationWorkflow.status)
        assert status.state is TaskState.PENDING
        assert status.due_at == due + timedelta(days=11)


async def test_a_co_owner_merged_into_the_lead_leaves_the_task(tmp_path: Path) -> None:
    """A joint task STP+SVHTTDL; SVHTTDL merges into STP: the agreement's order names STP
    alone, and the task is STP's alone (it kept SVHTTDL, and said "không thay đổi")."""
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        due = midnight(now.date() + timedelta(days=20))
        base = child("j", due, escalation=NO_ESCALATION)
        joint = base.model_copy(
            update={
                "task": base.task.model_copy(
                    update={
                        "task_id": base.task.task_id.replace("/STP/", "/STP+SVHTTDL/"),
                        "co_owners": ["SVHTTDL"],
                    }
                )
            }
        )
        handle = await h.start_obligation(joint)
        await order(h, handle, "sap-nhap/transfer", "transfer", agency="STP", co_owners=[])
        status = await handle.query(ObligationWorkflow.status)
        assert (status.task.agency, status.task.co_owners) == ("STP", [])
        assert [d.detail for d in status.decisions] == [
            f"chuyển từ STP, SVHTTDL sang STP từ ngày {now:%d/%m/%Y} theo {DOCUMENT}"
        ]
