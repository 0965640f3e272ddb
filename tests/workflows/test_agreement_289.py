"""Plan 289/KH-UBND end to end: the real agreement and obligation workflows, activities, SQLite
database and SMTP server, from 1 January to the end of the plan, on the time-skipping server."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from harness import ROOT
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from accord.simulation import ScriptedSubmission, simulate
from agreements.calendar import WorkingCalendar
from agreements.expansion import cached_calendar, calendar_years
from agreements.loader import LoadedAgreement, load_agreement
from agreements.models import Directory, LeadershipOf, OfficerRole, RecipientRole
from infra import db
from workflows.payloads import TaskState

PLAN = ROOT / "agreements" / "quang-binh-2025-289-kh-ubnd.yaml"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def _emails(
    directory: Directory, role: RecipientRole | LeadershipOf, agency: str, recipient: str
) -> set[str]:
    assert isinstance(role, RecipientRole), "plan 289 names roles only"
    wanted = {
        RecipientRole.FOCAL_POINT: (agency, OfficerRole.FOCAL_POINT),
        RecipientRole.HEAD_OF_AGENCY: (agency, OfficerRole.HEAD),
        RecipientRole.AGGREGATOR: (recipient, OfficerRole.FOCAL_POINT),
        RecipientRole.PROVINCIAL_LEADERSHIP: (None, OfficerRole.PROVINCIAL_LEADERSHIP),
    }[role]
    return {
        o.email
        for o in directory.officers
        if wanted[1] in o.roles and (wanted[0] is None or o.agency == wanted[0])
    }


def _window(day: date, calendar: WorkingCalendar, step: int) -> datetime:
    """07:30 on `day` if it is a working day, else on the nearest working day in direction
    `step` (-1: before, for reminders; +1: after, for escalations)."""
    while not calendar.is_working_day(day):
        day += timedelta(days=step)
    return datetime.combine(day, time(7, 30), tzinfo=ZONE)


def expected_mail(loaded: LoadedAgreement) -> Counter[tuple[datetime, str, str, str]]:
    """(local time, kind, task, recipient) for every reminder and escalation step, derived
    from the plan's policy, the directory and the sending-window rule, not from the engine:
    a reminder goes out at 07:30 on its planned day, or on the working day before; an
    escalation at 07:30 on its day, or on the next working day."""
    calendar = cached_calendar(calendar_years(loaded.agreement))
    expected: Counter[tuple[datetime, str, str, str]] = Counter()
    for task in loaded.occurrences:
        if task.due_at is None:
            continue
        assert task.recipient is not None
        for offset in task.reminders.before:
            at = _window((task.due_at - offset.duration).date(), calendar, -1)
            for role in task.reminders.notify:
                for address in _emails(loaded.directory, role, task.agency, task.recipient):
                    expected[(at, "reminder", task.task_id, address)] += 1
        for step in task.escalation:
            at = _window((task.due_at + step.after.duration).date(), calendar, +1)
            addresses = set().union(
                *(_emails(loaded.directory, r, task.agency, task.recipient) for r in step.notify)
            )
            for address in addresses:
                expected[(at, "escalation", task.task_id, address)] += 1
    return expected


async def test_nobody_submits_every_task_gets_every_reminder_and_escalation() -> None:
    loaded = load_agreement(PLAN)
    report = await simulate(loaded)

    got = Counter((m.at, m.kind, m.task, address) for m in report.mails for address in m.to)
    assert got == expected_mail(loaded)
    # 28 dated tasks (14 agencies × 2 reports): 3 reminders to the focal point, then 3 steps of
    # two recipients each (focal point + head; head + Sở Nội vụ; leadership + head).
    assert Counter(m.kind for m in report.mails) == {"reminder": 84, "escalation": 168}
    first = report.mails[0]
    assert first.at.isoformat() == "2025-05-08T07:30:00+07:00"  # Thursday, 7 days before
    # No mail at night, on a weekend or on a holiday.
    calendar = cached_calendar(calendar_years(loaded.agreement))
    assert all(m.at.time() == time(7, 30) for m in report.mails)
    assert all(calendar.is_working_day(m.at.date()) for m in report.mails)
    assert first.subject.endswith("hạn trước 15/05/2025")

    dated = [t for t in loaded.occurrences if t.due_at is not None]
    undated = [t for t in loaded.occurrences if t.due_at is None]
    # Closed without a report: overdue when the ladder ran out, or never due (undated).
    assert report.summary.counts[TaskState.NOT_DONE_OVERDUE] == len(dated) == 28
    assert report.summary.counts[TaskState.NOT_DONE] == len(undated) == 41
    assert report.summary.counts[TaskState.PENDING] == report.summary.counts[TaskState.OVERDUE] == 0
    assert all(report.statuses[t.task_id].escalation_level == 3 for t in dated)
    assert all(report.statuses[t.task_id].closed for t in loaded.occurrences)

    overview = report.overview
    assert overview.finished
    assert overview.counts == report.summary.counts
    assert overview.closed == overview.started == 69 and overview.waiting == 0
    assert sorted(d.task_id for d in overview.overdue) == sorted(t.task_id for t in dated)
    assert {d.escalation_level for d in overview.overdue} == {3}
    assert overview.runs >= 2  # continued-as-new at least once (at each new year)


async def test_on_time_reports_get_receipts_and_no_escalation(tmp_path: Path) -> None:
    loaded = load_agreement(PLAN)
    report = await simulate(
        loaded,
        submissions=[
            ScriptedSubmission.parse("289-kh-ubnd-2025/bao-cao-6-thang/*@2025-05-01"),
            ScriptedSubmission.parse("289-kh-ubnd-2025/bao-cao-nam/*@2025-11-10"),
        ],
        workdir=tmp_path,
    )
    assert report.warnings == []
    kinds = Counter(m.kind for m in report.mails)
    # 6-month reports arrive before the first reminder (8/5); annual reports on Monday 10/11,
    # after the 7-day reminder (planned for Saturday 8/11, so sent Friday 7/11 07:30) and
    # before the 3-day one (12/11). Each receipt goes to the focal point and to Sở Nội vụ.
    assert kinds == {"reminder": 14, "receipt": 56}
    reminder_times = {m.at.isoformat() for m in report.mails if m.kind == "reminder"}
    assert reminder_times == {"2025-11-07T07:30:00+07:00"}
    assert report.summary.counts[TaskState.DONE_ON_TIME] == 28

    engine = create_engine(report.database_url)
    with Session(engine) as session:
        submissions = session.scalars(select(db.SubmissionRow)).all()
        assert len(submissions) == 28
        assert not any(s.late for s in submissions)
        outbox = session.scalars(select(db.OutboxRow)).all()
        assert len(outbox) == len(report.mails) == 70
        assert {o.status for o in outbox} == {db.OutboxStatus.SENT}
        audit = Counter(a.action for a in session.scalars(select(db.AuditRow)))
        assert audit["submitted"] == 28
        assert audit["agreement_completed"] == 1
    engine.dispose()
