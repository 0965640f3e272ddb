"""Issue 13, points 1-3 in the engine: the Obligation workflow on the time-skipping server
sends what the hand-worked dates say, for the agreements in `tests/agreements/offsets/` (through
`accord simulate`) and for a ladder that comes out of order on a Friday (started directly).

Expected instants are worked out by hand from weekdays and the holidays, as in
`tests/agreements/test_offsets.py`; none is read off Accord's expansion or planner."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path

from harness import ZONE, harness, local_now, midnight, obligation_input, sent_at

from accord.simulation import simulate
from agreements.expansion import cached_calendar
from agreements.loader import load_agreement
from workflows.payloads import TaskState

OFFSETS = Path(__file__).resolve().parents[1] / "agreements" / "offsets"


def _at(day: date) -> str:
    return datetime(day.year, day.month, day.day, 7, 30, tzinfo=ZONE).isoformat()


async def test_simulate_sends_the_moved_task_and_every_distinct_reminder(tmp_path: Path) -> None:
    # Point 1: SNV (active until 30/06/2025) owes "before 30/06/2025", moved by art. 148 from
    # Sunday 29/06 to Monday 30/06 (due 01/07 00:00): its reminder (1wd before: Monday 30/06)
    # and its escalation (1wd after: Wednesday 02/07) are sent.
    report = await simulate(
        load_agreement(OFFSETS / "art148-active-until.yaml"), workdir=tmp_path / "a"
    )
    snv = [(m.at.isoformat(), m.kind) for m in report.mails if m.agency == "SNV"]
    assert snv == [(_at(date(2025, 6, 30)), "reminder"), (_at(date(2025, 7, 2)), "escalation")]

    # Point 2: due 24/02/2026 00:00 after Tết; 5wd on Tuesday 10/02, 7d and 3d merged on
    # Friday 13/02, 1wd on Monday 23/02.
    report = await simulate(
        load_agreement(OFFSETS / "mixed-reminders-tet.yaml"), workdir=tmp_path / "b"
    )
    assert [(m.at.isoformat(), m.kind) for m in report.mails] == [
        (_at(date(2026, 2, 10)), "reminder"),
        (_at(date(2026, 2, 13)), "reminder"),
        (_at(date(2026, 2, 23)), "reminder"),
    ]

    # Point 3: [5d, 4wd] after Friday 06/03/2026: Wednesday 11/03, then Thursday 12/03.
    report = await simulate(load_agreement(OFFSETS / "mixed-ladder.yaml"), workdir=tmp_path / "c")
    assert [(m.at.isoformat(), m.kind) for m in report.mails] == [
        (_at(date(2026, 2, 27)), "reminder"),
        (_at(date(2026, 3, 11)), "escalation"),
        (_at(date(2026, 3, 12)), "escalation"),
    ]


async def test_a_ladder_out_of_order_on_a_friday_sends_every_step_in_ladder_order(
    tmp_path: Path,
) -> None:
    """[3wd, 4d, 10wd] on a Friday due date: 4d (Tuesday) would come before 3wd (Wednesday);
    the engine sends step 2 with step 1, never instead of it. (Validation refuses this ladder
    for an agreement due on a Friday; a task meets it when its due date changes.)"""
    async with harness(tmp_path) as h:
        now = await local_now(h.env)
        calendar = cached_calendar(range(now.year - 1, now.year + 3))
        # A Friday due instant a month ahead with no day off from a week before to three
        # weeks after, so that working days are plain weekdays.
        due_day = now.date() + timedelta(days=30)
        due_day += timedelta(days=(4 - due_day.weekday()) % 7)
        while calendar.holidays_between(due_day - timedelta(days=7), due_day + timedelta(21)):
            due_day += timedelta(days=7)
        assert due_day.weekday() == 4
        due = midnight(due_day)
        handle = await h.start_obligation(
            obligation_input(
                due_at=due,
                reminders=(),
                escalation=(
                    ("3wd", ("focal_point",)),
                    ("4d", ("focal_point",)),
                    ("10wd", ("focal_point",)),
                ),
                calendar=calendar.between_years(due.year - 1, due.year + 1),
            )
        )
        outcome = await handle.result()
        assert outcome.state is TaskState.NOT_DONE_OVERDUE
        assert outcome.escalation_level == 3
        steps = sorted(
            (sent_at(m), int(re.search(r"\(bậc (\d+)\)", str(m["Subject"])).group(1)))  # type: ignore[union-attr]
            for m in h.mails()
            if str(m["X-Accord-Kind"]) == "escalation"
        )
        wednesday = due + timedelta(days=5, hours=7, minutes=30)  # Friday + 3 working days
        friday_after_next = due + timedelta(days=14, hours=7, minutes=30)  # + 10 working days
        assert steps == [(wednesday, 1), (wednesday, 2), (friday_after_next, 3)]
