"""Scenarios written for fixed years, run in a year that still works on the real clock.

The time-skipping test server starts at the real current time and only moves forward, so a
scenario dated in 2026 stops working once its dates are behind the clock. `scenario_year`
keeps the written year while the scenario is still ahead, else picks the first later year with
the same calendar (same weekdays, same leap days) for every year the scenario spans, and
`shift_years` rewrites the scenario's text into it. Vietnamese holidays come from the
`holidays` package for any year; lunar ones (Tết, the Hùng Kings) move between years, so
scenarios moved this way stay clear of January–April unless they check.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def _same_calendar(a: int, b: int) -> bool:
    return date(a, 1, 1).weekday() == date(b, 1, 1).weekday() and calendar.isleap(
        a
    ) == calendar.isleap(b)


def scenario_year(written: int, ahead: date, *, span: int = 1, today: date | None = None) -> int:
    """The year to run a scenario written for `written` in: `written` while `ahead` (a day
    written in the scenario, which must still be in the future) is, else the first later year
    `year` such that `ahead` moved by `year - written` is in the future and the years `year` …
    `year + span - 1` have the calendars of `written` … `written + span - 1`."""
    today = today or datetime.now(ZONE).date()
    year = written
    while not (
        all(_same_calendar(year + n, written + n) for n in range(span))
        and today < ahead.replace(year=ahead.year + year - written)
    ):
        year += 1
    return year


def shift_years(text: str, written: int, year: int, *, span: int = 1) -> str:
    """`text` with the years `written` … `written + span - 1` (whole four-digit numbers) moved
    by `year - written`."""
    years = "|".join(str(written + n) for n in range(span))
    return re.sub(rf"(?<!\d)({years})(?!\d)", lambda m: str(int(m.group()) + year - written), text)
