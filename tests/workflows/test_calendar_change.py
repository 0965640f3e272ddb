"""A running task receives a newly published working calendar (say, the government adds a day
off): its deadline moves under Civil Code art. 148, its timers follow, the reason is recorded,
and nothing already sent is sent again."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from harness import (
    ROOT,
    TEST_CREDENTIAL,
    ZONE,
    harness,
    local_now,
    midnight,
    obligation_input,
    sent_at,
    sign,
)
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError

from accord.calendars import RUNNING_TASKS, Published, _send, publish_calendar
from accord.deploy import build_input, start_agreement
from accord.identity import Credential
from agreements.calendar import CalendarDay, WorkingCalendar
from agreements.expansion import cached_calendar
from agreements.loader import load_agreement
from agreements.models import OfficerRole
from infra.claim_keys import SigningKey
from workflows.agreement import AgreementWorkflow
from workflows.obligation import ObligationWorkflow
from workflows.payloads import CalendarUpdate, TaskState, Waiver


def _working_run(calendar: WorkingCalendar, start: date, length: int) -> date:
    """The first day from `start` that begins `length` consecutive working days."""
    day = start
    while not all(calendar.is_working_day(day + timedelta(days=i)) for i in range(length)):
        day += timedelta(days=1)
    return day


def _morning(day: date, calendar: WorkingCalendar, step: int) -> datetime:
    while not calendar.is_working_day(day):
        day += timedelta(days=step)
    return datetime.combine(day, time(7, 30), tzinfo=ZONE)


async def test_published_calendar_moves_deadline_and_timers(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        calendar = cached_calendar(range(now.year - 1, now.year + 3))
        # A last day with working days around it, far enough ahead for every reminder.
        last_day = _working_run(calendar, now.date() + timedelta(days=25), 3) + timedelta(days=1)
        due = midnight(last_day + timedelta(days=1))
        handle = await h.start_obligation(obligation_input(due_at=due, calendar=calendar))
        first_reminder = _morning(last_day + timedelta(days=1) - timedelta(days=7), calendar, -1)
        await h.env.sleep(first_reminder + timedelta(hours=1) - now)
        assert [m["X-Accord-Kind"] for m in h.mails()] == ["reminder"]

        # The government makes the last day a day off.
        extra = CalendarDay(
            day=last_day, name_vi="Ngày nghỉ bổ sung", name_en="Extra day off", source="test"
        )
        changed = calendar.model_copy(
            update={"days_off": tuple(sorted((*calendar.days_off, extra), key=lambda d: d.day))}
        )
        changed = WorkingCalendar.model_validate(changed.model_dump())
        await h.update(
            handle,
            ObligationWorkflow.change_calendar,
            CalendarUpdate(calendar=changed, note="Quyết định nghỉ bổ sung"),
        )
        new_last_day = last_day + timedelta(days=1)
        while not changed.is_working_day(new_last_day):
            new_last_day += timedelta(days=1)
        new_due = midnight(new_last_day + timedelta(days=1))
        status = await handle.query(ObligationWorkflow.status)
        assert status.due_at == new_due
        assert status.original_due_at == due
        assert status.due_note is not None
        assert "rơi vào ngày nghỉ bổ sung" in status.due_note
        assert f"hết ngày {new_last_day:%d/%m/%Y}" in status.due_note
        assert status.decisions[-1].kind == "calendar_changed"
        assert status.decisions[-1].actor == TEST_CREDENTIAL.operator  # who signed it
        assert "Quyết định nghỉ bổ sung" in status.decisions[-1].detail

        outcome = await handle.result()
        assert outcome.state is TaskState.NOT_DONE_OVERDUE
        mails = h.mails()
        reminders = [sent_at(m) for m in mails if m["X-Accord-Kind"] == "reminder"]
        # The 7-day reminder went out before the change and is not repeated; the 3-day and
        # 1-day ones follow the new deadline.
        assert reminders == [
            first_reminder,
            _morning(new_due.date() - timedelta(days=3), changed, -1),
            _morning(new_due.date() - timedelta(days=1), changed, -1),
        ]
        escalations = sorted({sent_at(m) for m in mails if m["X-Accord-Kind"] == "escalation"})
        assert escalations == [
            _morning(new_due.date() + timedelta(days=d), changed, +1) for d in (1, 5, 10)
        ]
        assert all(changed.is_working_day(sent_at(m).date()) for m in mails)
        note = mails[-1].get_body(preferencelist=("plain",))
        assert note is not None and "rơi vào ngày nghỉ bổ sung" in note.get_content()


async def test_publishing_reaches_running_tasks_on_the_dev_server(tmp_path: Path) -> None:
    async with harness(tmp_path, dev_server=True) as h:
        now = await local_now(h.env)
        calendar = cached_calendar(range(now.year - 1, now.year + 3))
        last_day = _working_run(calendar, now.date() + timedelta(days=25), 3) + timedelta(days=1)
        handles = [
            await h.start_obligation(
                obligation_input(
                    due_at=midnight(last_day + timedelta(days=1)),
                    calendar=calendar,
                    agency=agency,
                )
            )
            for agency in ("STP", "SNV")
        ]
        # A task of a programme's early years, still being chased: the published calendar does
        # not cover its year, so it is not sent it (issue 11: such tasks jammed).
        old_due = midnight(date(calendar.first_year - 3, 11, 15))
        old = await h.start_obligation(
            obligation_input(
                due_at=old_due,
                agency="SVHTTDL",
                period_end=date(now.year + 1, 12, 31),
                escalation=(("1d", ("focal_point",)), ("1500d", ("head_of_agency",))),
            )
        )
        # And one that completes before the calendar reaches it: counted, not an error.
        done = await h.start_obligation(
            obligation_input(due_at=midnight(last_day + timedelta(days=1)), agency="TTT")
        )
        await h.update(
            done,
            ObligationWorkflow.waive,
            Waiver(actor=h.actor("SNV", OfficerRole.ADMIN), reason="Đã sáp nhập"),
        )
        await done.result()
        assert (
            await _send(
                h.env.client,
                TEST_CREDENTIAL,
                done.id,
                ObligationWorkflow,
                CalendarUpdate(calendar=calendar),
            )
            == "closed"
        )
        extra = CalendarDay(day=last_day, name_vi="Ngày nghỉ bổ sung", name_en="Extra", source="t")
        changed = WorkingCalendar.model_validate(
            {
                **calendar.model_dump(),
                "days_off": [
                    d.model_dump() for d in sorted((*calendar.days_off, extra), key=lambda d: d.day)
                ],
            }
        )
        # Visibility on the dev server is eventually consistent: wait until both are listed.
        for _ in range(50):
            listed = [w.id async for w in h.env.client.list_workflows(RUNNING_TASKS)]
            if len(listed) == 3:
                break
            await asyncio.sleep(0.1)
        published = await publish_calendar(
            h.env.client, changed, "Thông báo nghỉ bổ sung", TEST_CREDENTIAL
        )
        assert published == Published(tasks=2, agreements=0, outside=1)
        assert not any(
            d.kind == "calendar_changed"
            for d in (await old.query(ObligationWorkflow.status)).decisions
        )
        for handle in handles:
            status = await handle.query(ObligationWorkflow.status)
            assert status.due_at is not None and status.due_at.date() > last_day + timedelta(days=1)
            assert status.decisions[-1].kind == "calendar_changed"
            assert status.decisions[-1].actor == "van-hanh-thu"  # the operator who published


async def _refused(client: Client, workflow_id: str, payload: object) -> str:
    """Send `change_calendar` as a plain Temporal client does (by name); the refusal's text."""
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await client.get_workflow_handle(workflow_id).execute_update("change_calendar", payload)
    return str(refused.value.cause)


UPDATE_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED,
}


async def _history(handle: WorkflowHandle[Any, Any]) -> list[int]:
    return [e.event_type for e in (await handle.fetch_history()).events]


async def test_a_plain_client_cannot_publish_a_made_up_calendar(tmp_path: Path) -> None:
    """Issue 14: the calendar used to be a signal anyone could send with any `published_by`.
    On the real (dev) server: a refused update is not written to its history there."""
    async with harness(tmp_path, dev_server=True) as h:
        now = await local_now(h.env)
        calendar = cached_calendar(range(now.year - 1, now.year + 3))
        last_day = _working_run(calendar, now.date() + timedelta(days=25), 3) + timedelta(days=1)
        due = midnight(last_day + timedelta(days=1))
        task = await h.start_obligation(obligation_input(due_at=due, calendar=calendar))
        loaded = load_agreement(ROOT / "agreements" / "quang-binh-2025-289-kh-ubnd.yaml")
        deployed = await start_agreement(h.env.client, build_input(loaded), task_queue=h.task_queue)
        agreement = h.env.client.get_workflow_handle(deployed.workflow_id)
        await task.query(ObligationWorkflow.status)
        await agreement.query(AgreementWorkflow.overview)
        before = await _history(task)

        # Every weekday of the coming month a day off: a made-up calendar.
        made_up_days = [
            CalendarDay(
                day=now.date() + timedelta(days=d), name_vi="Giả", name_en="Fake", source="x"
            )
            for d in range(1, 60)
        ]
        made_up = WorkingCalendar.model_validate(
            {**calendar.model_dump(), "days_off": [d.model_dump() for d in made_up_days]}
        )
        fake = CalendarUpdate(calendar=made_up, note="Giả mạo", published_by="quan-tri-snv")
        attacker = Credential(operator="ke-gia-mao", key=SigningKey("attacker", b"k" * 40))
        impostor = Credential(operator="ke-gia-mao", key=SigningKey("test", b"k" * 40))
        for workflow_id in (task.id, agreement.id):
            # No claim at all, as a dict or as the payload type.
            assert "claim: unsigned request" in await _refused(
                h.env.client, workflow_id, fake.model_dump(mode="json")
            )
            assert "claim: unsigned request" in await _refused(h.env.client, workflow_id, fake)
            # Signed with a key Accord does not hold (under its own ID or the real key's).
            for credential, why in ((attacker, "unknown key 'attacker'"), (impostor, "bad claim")):
                handle = h.env.client.get_workflow_handle(workflow_id)
                forged = await sign(h.env, handle, "change_calendar", fake, credential=credential)
                assert why in await _refused(h.env.client, workflow_id, forged)
            # A real operator's signed calendar, altered on the way, or claiming another
            # publisher than the operator who signed it.
            handle = h.env.client.get_workflow_handle(workflow_id)
            honest = await sign(h.env, handle, "change_calendar", CalendarUpdate(calendar=calendar))
            altered = honest.model_copy(update={"calendar": made_up})
            assert "bad claim signature" in await _refused(h.env.client, workflow_id, altered)
            other_publisher = await sign(
                h.env,
                handle,
                "change_calendar",
                CalendarUpdate(calendar=calendar, published_by="quan-tri-snv"),
            )
            assert "not the claim's operator" in await _refused(
                h.env.client, workflow_id, other_publisher
            )
            # A claim from the portal (an officer, not an operator) does not publish.
            portal = Credential(operator=None, key=TEST_CREDENTIAL.key, channel="portal")
            officer = await sign(
                h.env,
                handle,
                "change_calendar",
                CalendarUpdate(calendar=calendar),
                credential=portal,
            )
            assert "only an operator" in await _refused(h.env.client, workflow_id, officer)

        assert await _history(task) == before
        # The agreement starts its tasks meanwhile; no update reached its history.
        for handle in (task, agreement):
            assert not set(await _history(handle)) & UPDATE_EVENTS
        status = await task.query(ObligationWorkflow.status)
        assert status.due_at == due and status.decisions == []
