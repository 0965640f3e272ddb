"""A running task receives a newly published working calendar (say, the government adds a day
off): its deadline moves under Civil Code art. 148, its timers follow, the reason is recorded,
and nothing already sent is sent again."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from pathlib import Path

from harness import (
    TEST_CREDENTIAL,
    ZONE,
    harness,
    local_now,
    midnight,
    obligation_input,
    sent_at,
)

from accord.calendars import RUNNING_TASKS, Published, _send, publish_calendar
from agreements.calendar import CalendarDay, WorkingCalendar
from agreements.expansion import cached_calendar
from agreements.models import OfficerRole
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
