"""The Vietnamese working calendar: which days are worked, when a deadline ends, when mail may go.

Two halves with different homes:

* **Building** (`build_calendar`, `load_overrides`, `load_calendar`) runs outside workflows. It asks
  the `holidays` package for Vietnam's public holidays, days off in lieu, and days off swapped
  against a Saturday worked in exchange, then applies the admin's per-year overrides file
  (`agreements/calendars/vn-overrides.yaml`, which `accord validate agreements/` skips like the
  agency directories).
* **Using** (`WorkingCalendar`, `apply_deadline_rule`, `SendingWindow`, `offset_before`,
  `offset_after`, `period_window`, `render_year`) is date arithmetic over the built data: no clock,
  no I/O and no `holidays` import. A workflow receives a `WorkingCalendar` in its input and gets the
  same answers on every replay.

Days are local calendar dates in Vietnam (Asia/Ho_Chi_Minh, UTC+7, no DST). Instants follow the
project's deadline convention (see `agreements.models`): a due instant is the first late moment,
so "before 15/11" is 15/11 00:00 and its **last day** is 14/11.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, Field, PrivateAttr, field_validator, model_validator

from agreements.models import (
    DeadlineRule,
    Model,
    Name,
    Offset,
    OffsetUnit,
    ReportingPeriodPreset,
    Text,
)
from agreements.yaml_files import LoadError, Loc, format_loc, parse_yaml, read_text, validate_model

__all__ = [
    "CALENDAR_YEARS",
    "DEFAULT_OVERRIDES",
    "VIETNAM",
    "AddedDayOff",
    "AddedWorkingDay",
    "AdjustedDeadline",
    "CalendarDay",
    "CalendarOverrides",
    "CalendarRangeError",
    "DeadlineRule",
    "RemovedDay",
    "ReportingPeriodPreset",
    "SendingWindow",
    "WorkingCalendar",
    "apply_deadline_rule",
    "build_calendar",
    "end_of_day",
    "format_day",
    "last_day_of",
    "load_calendar",
    "load_overrides",
    "offset_after",
    "offset_before",
    "parse_overrides",
    "period_of_day",
    "period_window",
    "render_year",
    "weekday_name",
]

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
DEFAULT_OVERRIDES = Path(__file__).parent / "calendars" / "vn-overrides.yaml"
CALENDAR_YEARS = range(2000, 2101)
"""Years a calendar may cover: the agreements' years that the `holidays` package computes."""

SATURDAY, SUNDAY = 5, 6
Locale = Literal["vi", "en"]

_WEEKDAYS_VI = ("thứ Hai", "thứ Ba", "thứ Tư", "thứ Năm", "thứ Sáu", "thứ Bảy", "Chủ nhật")
_WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_ONE_DAY = timedelta(days=1)


def weekday_name(day: date, locale: Locale = "vi") -> str:
    """`thứ Hai` … `thứ Bảy`, `Chủ nhật` in Vietnamese; `Monday` … `Sunday` in English."""
    return (_WEEKDAYS_VI if locale == "vi" else _WEEKDAYS_EN)[day.weekday()]


def format_day(day: date) -> str:
    """dd/mm/yyyy, as Vietnamese documents and the project's mails write dates."""
    return day.strftime("%d/%m/%Y")


# --------------------------------------------------------------------------------------------
# The calendar


class CalendarRangeError(ValueError):
    """A date outside the years a `WorkingCalendar` was built for.

    Answering "working day" for a date the calendar knows nothing about could put a deadline or
    a reminder on Tết, so the calendar refuses instead; build it for more years.
    """


class CalendarDay(Model):
    """A named day: a day off, or a weekend day worked in exchange for one."""

    day: date
    name_vi: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    source: str = Field(
        min_length=1,
        description="'holidays <version>' or the source note of the override that set the day.",
    )


class WorkingCalendar(Model):
    """Working days over a range of years, as plain data a workflow can take in its input.

    A day is a working day when it is a make-up working day, or else when it is neither a day
    off nor a weekend day. Every question about a date outside `first_year..last_year` raises
    `CalendarRangeError`.
    """

    first_year: int = Field(ge=CALENDAR_YEARS.start, lt=CALENDAR_YEARS.stop)
    last_year: int = Field(ge=CALENDAR_YEARS.start, lt=CALENDAR_YEARS.stop)
    weekend: tuple[int, ...] = Field(
        default=(SATURDAY, SUNDAY),
        description="Weekly rest days as `date.weekday()` numbers (Monday 0 … Sunday 6).",
    )
    days_off: tuple[CalendarDay, ...] = Field(
        default=(), description="Public holidays and other days off, sorted by day."
    )
    make_up_working_days: tuple[CalendarDay, ...] = Field(
        default=(), description="Weekend days worked in exchange for a day off, sorted by day."
    )
    removed_days_off: tuple[CalendarDay, ...] = Field(
        default=(),
        description="Days off of the package that the overrides cancelled (kept for checking).",
    )
    source: str = Field(default="", description="What the calendar was built from.")

    _off: dict[date, CalendarDay] = PrivateAttr(default_factory=dict)
    _worked: dict[date, CalendarDay] = PrivateAttr(default_factory=dict)
    _off_days: list[date] = PrivateAttr(default_factory=list)

    @field_validator("weekend")
    @classmethod
    def _weekend_days(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 0 <= d <= 6 for d in value) or len(set(value)) != len(value):
            raise ValueError("weekend days are distinct numbers 0 (Monday) … 6 (Sunday)")
        if len(value) == 7:
            raise ValueError("a week needs at least one working day")
        return tuple(sorted(value))

    @model_validator(mode="after")
    def _consistent(self) -> WorkingCalendar:
        if self.last_year < self.first_year:
            raise ValueError(f"last_year {self.last_year} is before first_year {self.first_year}")
        for attr in ("days_off", "make_up_working_days", "removed_days_off"):
            days = [d.day for d in getattr(self, attr)]
            if days != sorted(set(days)):
                raise ValueError(f"{attr} must be sorted by day without repeats")
            outside = [d for d in days if not self.first_year <= d.year <= self.last_year]
            if outside:
                raise ValueError(
                    f"{attr}: {outside[0]} is outside {self.first_year}..{self.last_year}"
                )
        off = {d.day for d in self.days_off}
        for worked in self.make_up_working_days:
            if worked.day.weekday() not in self.weekend:
                raise ValueError(f"make-up working day {worked.day} is not a weekend day")
            if worked.day in off:
                raise ValueError(f"{worked.day} is both a day off and a make-up working day")
        return self

    def model_post_init(self, context: Any) -> None:
        self._off = {d.day: d for d in self.days_off}
        self._worked = {d.day: d for d in self.make_up_working_days}
        self._off_days = [d.day for d in self.days_off]

    def between_years(self, first_year: int, last_year: int) -> WorkingCalendar:
        """The same calendar cut down to `first_year..last_year` (within its own years), without
        the audit list of removed days: what one task's workflow needs in its input."""
        first, last = max(first_year, self.first_year), min(last_year, self.last_year)
        return WorkingCalendar(
            first_year=first,
            last_year=last,
            weekend=self.weekend,
            days_off=tuple(d for d in self.days_off if first <= d.day.year <= last),
            make_up_working_days=tuple(
                d for d in self.make_up_working_days if first <= d.day.year <= last
            ),
            source=self.source,
        )

    # Questions about one day

    def covers(self, day: date) -> bool:
        return self.first_year <= day.year <= self.last_year

    def _check(self, day: date) -> None:
        if not self.covers(day):
            raise CalendarRangeError(
                f"{day} is outside the working calendar's years {self.first_year}..{self.last_year}"
            )

    def is_working_day(self, day: date) -> bool:
        self._check(day)
        if day in self._worked:
            return True
        return day not in self._off and day.weekday() not in self.weekend

    def day_off(self, day: date) -> CalendarDay | None:
        """The named day off on `day` (a holiday), or None (a working or plain weekend day)."""
        self._check(day)
        return self._off.get(day)

    def make_up_day(self, day: date) -> CalendarDay | None:
        self._check(day)
        return self._worked.get(day)

    # Moving between working days

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after `day`."""
        day += _ONE_DAY
        while not self.is_working_day(day):
            day += _ONE_DAY
        return day

    def previous_working_day(self, day: date) -> date:
        """The last working day strictly before `day`."""
        day -= _ONE_DAY
        while not self.is_working_day(day):
            day -= _ONE_DAY
        return day

    def roll_forward(self, day: date) -> date:
        """`day` itself when it is a working day, else the next one."""
        return day if self.is_working_day(day) else self.next_working_day(day)

    def roll_backward(self, day: date) -> date:
        """`day` itself when it is a working day, else the previous one."""
        return day if self.is_working_day(day) else self.previous_working_day(day)

    def add_working_days(self, day: date, n: int) -> date:
        """The n-th working day after `day` (before it when n < 0); `day` itself when n == 0.

        `day` need not be a working day: one working day after Saturday is Monday. For a working
        day, `add_working_days(add_working_days(day, n), -n) == day`.
        """
        for _ in range(abs(n)):
            day = self.next_working_day(day) if n > 0 else self.previous_working_day(day)
        return day

    def count_working_days(self, first: date, last: date) -> int:
        """Working days from `first` to `last`, both included (0 when last < first)."""
        count, day = 0, first
        while day <= last:
            count += self.is_working_day(day)
            day += _ONE_DAY
        return count

    # Listing

    def holidays_between(self, first: date, last: date) -> list[CalendarDay]:
        """Named days off from `first` to `last`, both included, weekend ones too, by day."""
        self._check(first)
        self._check(last)
        lo = bisect_left(self._off_days, first)
        hi = bisect_right(self._off_days, last)
        return list(self.days_off[lo:hi])

    def make_up_days_between(self, first: date, last: date) -> list[CalendarDay]:
        self._check(first)
        self._check(last)
        return [d for d in self.make_up_working_days if first <= d.day <= last]

    def digest(self) -> str:
        """A fingerprint of which days are worked: it changes when a date would move.

        Names and sources are left out, so renaming a holiday or upgrading the package without
        a changed day keeps the digest; a running workflow compares digests to decide whether a
        published calendar means recomputing its timers.
        """
        content = "|".join(
            [
                f"{self.first_year}-{self.last_year}",
                ",".join(map(str, self.weekend)),
                ",".join(d.day.isoformat() for d in self.days_off),
                ",".join(d.day.isoformat() for d in self.make_up_working_days),
            ]
        )
        return hashlib.sha256(content.encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# Deadline rules (Civil Code 2015, art. 148)


def last_day_of(due_instant: datetime, zone: tzinfo = VIETNAM) -> date:
    """The last day on which a deliverable is still on time.

    A due instant at local midnight is the first late moment, so the last day is the day before
    (15/11 00:00 → 14/11). An instant later in the day leaves that day itself as the last day.
    """
    local = _local(due_instant, zone)
    if local.time() == time.min:
        return local.date() - _ONE_DAY
    return local.date()


def end_of_day(day: date, zone: tzinfo = VIETNAM) -> datetime:
    """The instant `day` ends: the next day's local midnight."""
    return datetime.combine(day + _ONE_DAY, time.min, tzinfo=zone)


class AdjustedDeadline(Model):
    """A due instant after its agreement's deadline rule, with the reason in plain words."""

    rule: DeadlineRule
    original: AwareDatetime = Field(description="Due instant as the document sets it.")
    adjusted: AwareDatetime = Field(description="Due instant after the rule (first late moment).")
    original_last_day: date
    last_day: date = Field(description="Last day on time after the rule.")
    explanation_vi: str | None = Field(
        default=None,
        description="Why the deadline moved (or stays on a day off); None on a working day.",
    )
    explanation_en: str | None = None

    @property
    def moved(self) -> bool:
        return self.adjusted != self.original

    def explanation(self, locale: Locale = "vi") -> str | None:
        return self.explanation_vi if locale == "vi" else self.explanation_en


def apply_deadline_rule(
    due_instant: datetime,
    rule: DeadlineRule,
    calendar: WorkingCalendar,
    zone: tzinfo = VIETNAM,
) -> AdjustedDeadline:
    """Apply a deadline rule to a due instant (the first late moment).

    When the last day is a working day nothing changes. Otherwise:

    * `next_working_day` (Civil Code 2015, art. 148): the last day becomes the next working day
      and the limit ends at its end: before 15/11/2026 (last day Saturday 14/11) → due
      17/11/2026 00:00 (last day Monday 16/11);
    * `previous_working_day`: the last day becomes the previous working day (Friday 13/11, due
      14/11 00:00);
    * `as_written`: the instant stays, and the explanation says that it falls on a day off.

    A due instant with a time of day (before 17:00 on Saturday 14/11/2026) has that day as its
    last day; a move keeps the time (17:00 on Monday 16/11/2026).
    """
    last = last_day_of(due_instant, zone)
    if calendar.is_working_day(last):
        return AdjustedDeadline(
            rule=rule,
            original=due_instant,
            adjusted=due_instant,
            original_last_day=last,
            last_day=last,
        )
    if rule is DeadlineRule.NEXT_WORKING_DAY:
        new_last = calendar.next_working_day(last)
    elif rule is DeadlineRule.PREVIOUS_WORKING_DAY:
        new_last = calendar.previous_working_day(last)
    else:
        new_last = last
    local = _local(due_instant, zone)
    at = None if local.time() == time.min else local.time()
    vi, en = _explain(rule, last, new_last, calendar, at)
    if new_last == last:
        adjusted = due_instant
    elif at is None:
        adjusted = end_of_day(new_last, zone)
    else:
        # A deadline with a time of day ("trước 17 giờ ngày X") keeps its time on the new day.
        adjusted = datetime.combine(new_last, local.time(), tzinfo=local.tzinfo)
    return AdjustedDeadline(
        rule=rule,
        original=due_instant,
        adjusted=adjusted,
        original_last_day=last,
        last_day=new_last,
        explanation_vi=vi,
        explanation_en=en,
    )


def _explain(
    rule: DeadlineRule,
    last: date,
    new_last: date,
    calendar: WorkingCalendar,
    at: time | None = None,
) -> tuple[str, str]:
    falls_vi, falls_en = _falls_on(last, calendar)
    head_vi = f"Hạn {format_day(last)} rơi vào {falls_vi}; "
    head_en = f"The deadline {format_day(last)} falls on {falls_en}; "
    new = format_day(new_last)
    if rule is DeadlineRule.NEXT_WORKING_DAY:
        if at is not None:
            return (
                head_vi + f"theo Điều 148 Bộ luật Dân sự, hạn chuyển sang {at:%H:%M} ngày {new}",
                head_en + f"under Article 148 of the Civil Code it moves to {at:%H:%M} on {new}",
            )
        return (
            head_vi + f"theo Điều 148 Bộ luật Dân sự, hạn chuyển sang hết ngày {new}",
            head_en + f"under Article 148 of the Civil Code it moves to the end of {new}",
        )
    if rule is DeadlineRule.PREVIOUS_WORKING_DAY:
        return (
            head_vi + f"theo quy tắc của thỏa thuận, hạn chuyển về hết ngày làm việc liền trước "
            f"{new}",
            head_en + f"under the agreement's rule it moves back to the end of the previous "
            f"working day, {new}",
        )
    return (
        head_vi + "theo thỏa thuận, hạn giữ nguyên như văn bản",
        head_en + "the agreement keeps it as written",
    )


def _falls_on(day: date, calendar: WorkingCalendar) -> tuple[str, str]:
    """'thứ Bảy' / 'a Saturday', or the holiday: 'ngày nghỉ Tết Nguyên Đán (thứ Ba)'."""
    weekday_vi, weekday_en = weekday_name(day, "vi"), weekday_name(day, "en")
    holiday = calendar.day_off(day)
    if holiday is None:
        return weekday_vi, f"a {weekday_en}"
    return (
        f"{_day_off_phrase(holiday.name_vi)} ({weekday_vi})",
        f"a day off, {holiday.name_en} ({weekday_en})",
    )


def _day_off_phrase(name: str) -> str:
    # "ngày nghỉ" + the holiday's name without repeating words: "Ngày Chiến thắng" → "ngày nghỉ
    # Chiến thắng"; "Ngày nghỉ (thay cho ngày 22/08/2026)" and "Nghỉ Tết …" stay one phrase.
    folded = name.casefold()
    if folded.startswith("ngày nghỉ"):
        return "ngày nghỉ" + name[len("ngày nghỉ") :]
    if folded.startswith("nghỉ "):  # an override named "Nghỉ Tết …"
        return "ngày nghỉ" + name[len("nghỉ") :]
    return "ngày nghỉ " + name.removeprefix("Ngày ")


# --------------------------------------------------------------------------------------------
# Sending window


class SendingWindow(Model):
    """When mail may go: at `opens_at` local time on a working day, and at no other moment.

    A window is the instant `opens_at` (07:30 by default) on a working day. `previous_window(at)`
    is the latest window at or before `at` (for reminders: never later than planned);
    `next_window(at)` is the earliest window at or after `at` (for escalations: never earlier
    than planned). A reminder planned for Tuesday 17/02/2026 00:00 (Tết) goes out on Friday
    13/02/2026 at 07:30; an escalation planned for Wednesday 18/02/2026 goes out on Monday
    23/02/2026 at 07:30. A time on a working day before 07:30 belongs to the previous working
    day's window when looking back, and to that same day's window when looking forward.
    """

    calendar: WorkingCalendar
    time_zone: str = "Asia/Ho_Chi_Minh"
    opens_at: time = time(7, 30)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("opens_at")
    @classmethod
    def _local_time(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("opens_at is a local wall-clock time, without a time zone")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def opening(self, day: date) -> datetime:
        """The window instant on `day` (whether or not `day` is a working day)."""
        return datetime.combine(day, self.opens_at, tzinfo=self.zone)

    def is_window(self, at: datetime) -> bool:
        local = _local(at, self.zone)
        return self.calendar.is_working_day(local.date()) and local == self.opening(local.date())

    def previous_window(self, at: datetime) -> datetime:
        """The latest window at or before `at`."""
        local = _local(at, self.zone)
        day = local.date()
        if not (self.calendar.is_working_day(day) and self.opening(day) <= local):
            day = self.calendar.previous_working_day(day)
        return self.opening(day)

    def next_window(self, at: datetime) -> datetime:
        """The earliest window at or after `at`."""
        local = _local(at, self.zone)
        day = local.date()
        if not (self.calendar.is_working_day(day) and self.opening(day) >= local):
            day = self.calendar.next_working_day(day)
        return self.opening(day)


# --------------------------------------------------------------------------------------------
# Offsets


def offset_before(
    due_instant: datetime,
    offset: Offset,
    calendar: WorkingCalendar,
    *,
    zone: tzinfo | None = None,
) -> datetime:
    """The instant `offset` before `due_instant` (for reminders).

    `wd` moves the local date back by that many working days and keeps the time of day
    (before 17/11/2026 00:00, `1wd` is 16/11/2026 00:00 and `2wd` is 13/11/2026 00:00); `d`
    moves by calendar days, `h`, `m` and `s` by elapsed time. Dates are read in `zone`, by default
    the instant's own time zone (due instants are local).
    """
    return _shift(due_instant, offset, -1, calendar, zone)


def offset_after(
    due_instant: datetime,
    offset: Offset,
    calendar: WorkingCalendar,
    *,
    zone: tzinfo | None = None,
) -> datetime:
    """The instant `offset` after `due_instant` (for escalation steps); see `offset_before`."""
    return _shift(due_instant, offset, +1, calendar, zone)


def _shift(
    at: datetime, offset: Offset, sign: int, calendar: WorkingCalendar, zone: tzinfo | None
) -> datetime:
    local = _local(at, zone or at.tzinfo or VIETNAM)
    n = sign * offset.amount
    if offset.unit is OffsetUnit.WORKING_DAYS:
        day = calendar.add_working_days(local.date(), n)
        return datetime.combine(day, local.time(), tzinfo=local.tzinfo)
    if offset.unit is OffsetUnit.DAYS:
        # Wall-clock arithmetic: 7 days before 15/11 00:00 is 08/11 00:00 in any zone.
        return local + timedelta(days=n)
    return (local.astimezone(UTC) + sign * offset.duration).astimezone(local.tzinfo)


def _local(at: datetime, zone: tzinfo | None) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at} has no time zone: instants must be aware")
    return at.astimezone(zone)


# --------------------------------------------------------------------------------------------
# Reporting periods (Decree 09/2019/NĐ-CP, art. 12: data cut-off windows)

_PERIODS_PER_YEAR = {
    ReportingPeriodPreset.MONTHLY: 12,
    ReportingPeriodPreset.QUARTERLY: 4,
    ReportingPeriodPreset.SIX_MONTH: 1,
    ReportingPeriodPreset.NINE_MONTH: 1,
    ReportingPeriodPreset.ANNUAL: 1,
}
_LAST_MONTH = {
    ReportingPeriodPreset.SIX_MONTH: 6,
    ReportingPeriodPreset.NINE_MONTH: 9,
    ReportingPeriodPreset.ANNUAL: 12,
}


def period_window(preset: ReportingPeriodPreset, year: int, index: int = 1) -> tuple[date, date]:
    """First and last day (both included) of the data a periodic report covers.

    Decree 09/2019/NĐ-CP, art. 12 cuts every window on the 14th, starting on the 15th:

    * monthly, index = month 1..12: 15th of the previous month to the 14th of the month
      (month 1 of 2026: 15/12/2025 – 14/01/2026);
    * quarterly, index = quarter 1..4: 15th of the month before the quarter to the 14th of the
      quarter's last month (Q1 2026: 15/12/2025 – 14/03/2026; Q4: 15/09 – 14/12/2026);
    * six_month: 15/12 of the previous year to 14/06;
    * nine_month: 15/12 of the previous year to 14/09;
    * annual: 15/12 of the previous year to 14/12.

    This is what the report covers, not when it is due: plans often set an earlier submission
    date (289/KH-UBND asks for the 6-month report before 15/5).
    """
    count = _PERIODS_PER_YEAR[preset]
    if not 1 <= index <= count:
        raise ValueError(f"a {preset.value} period's index is 1..{count}, not {index}")
    if preset is ReportingPeriodPreset.MONTHLY:
        last_month = index
    elif preset is ReportingPeriodPreset.QUARTERLY:
        last_month = 3 * index
    else:
        return date(year - 1, 12, 15), date(year, _LAST_MONTH[preset], 14)
    months = 1 if preset is ReportingPeriodPreset.MONTHLY else 3
    first_month = last_month - months  # 0 is December of the previous year
    start = date(year, first_month, 15) if first_month >= 1 else date(year - 1, 12, 15)
    return start, date(year, last_month, 14)


def period_of_day(preset: ReportingPeriodPreset, day: date) -> tuple[int, int]:
    """(year, index) of the period named after `day`: its year, and its month or quarter.

    A report whose last day is 14/05/2025 covers the six-month window of 2025 (15/12/2024 –
    14/06/2025); a monthly report due in March covers month 3 (15/02 – 14/03).
    """
    if preset is ReportingPeriodPreset.MONTHLY:
        return day.year, day.month
    if preset is ReportingPeriodPreset.QUARTERLY:
        return day.year, (day.month - 1) // 3 + 1
    return day.year, 1


# --------------------------------------------------------------------------------------------
# `accord calendar YEAR`


def render_year(calendar: WorkingCalendar, year: int, locale: Locale = "vi") -> str:
    """The year's days off and make-up working days, one per line, for an admin to check."""
    first, last = date(year, 1, 1), date(year, 12, 31)
    holidays = calendar.holidays_between(first, last)
    worked = calendar.make_up_days_between(first, last)
    removed = [d for d in calendar.removed_days_off if d.day.year == year]
    working_days = calendar.count_working_days(first, last)
    weekend = ", ".join(
        _WEEKDAYS_VI[d] if locale == "vi" else _WEEKDAYS_EN[d] for d in calendar.weekend
    )
    vi = locale == "vi"

    def line(entry: CalendarDay) -> str:
        name = entry.name_vi if vi else entry.name_en
        return f"  {format_day(entry.day)}  {weekday_name(entry.day, locale):<9}  {name}"

    out = [
        f"Lịch làm việc năm {year}" if vi else f"Working calendar {year}",
        (f"Nghỉ hằng tuần: {weekend}" if vi else f"Weekly rest days: {weekend}"),
        "",
        (f"Ngày nghỉ lễ, Tết ({len(holidays)}):" if vi else f"Days off ({len(holidays)}):"),
    ]
    out.extend(line(d) for d in holidays)
    out += [
        "",
        (
            f"Ngày làm bù vào thứ Bảy, Chủ nhật ({len(worked)}):"
            if vi
            else f"Make-up working days on a weekend ({len(worked)}):"
        ),
    ]
    out.extend(line(d) for d in worked)
    if not worked:
        out.append("  (không có)" if vi else "  (none)")
    if removed:
        out += ["", "Ngày nghỉ đã bỏ theo ngoại lệ:" if vi else "Days off removed by overrides:"]
        out.extend(f"{line(d)} — {d.source}" for d in removed)
    out += [
        "",
        (f"Số ngày làm việc: {working_days}" if vi else f"Working days: {working_days}"),
        (f"Nguồn: {calendar.source}" if vi else f"Source: {calendar.source}"),
    ]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Overrides file


class AddedDayOff(Model):
    """A day off the package does not know, e.g. a longer Tết announced by the government."""

    day: date
    name: Name = Field(description="Vietnamese name shown to officers.")
    name_en: Name | None = Field(default=None, description="English name; default: `name`.")
    source: Text = Field(description="The announcement that sets it (number, date, issuer).")


class RemovedDay(Model):
    """A day off, or a make-up working day, of the package that does not apply after all."""

    day: date
    source: Text


class AddedWorkingDay(Model):
    """A Saturday or Sunday worked in exchange for a day off."""

    day: date
    name: Name | None = Field(default=None, description="Default: 'Ngày làm việc bù'.")
    name_en: Name | None = None
    source: Text


class CalendarOverrides(Model):
    """Per-year corrections to the `holidays` package, applied in the order of the fields."""

    schema_version: Literal[1] = 1
    remove_days_off: list[RemovedDay] = Field(default_factory=list)
    add_days_off: list[AddedDayOff] = Field(default_factory=list)
    remove_working_days: list[RemovedDay] = Field(default_factory=list)
    add_working_days: list[AddedWorkingDay] = Field(default_factory=list)


def parse_overrides(text: str, file: str) -> CalendarOverrides:
    """Validate overrides text; every mistake is reported as FILE:LINE:COL in `LoadError`."""
    doc = parse_yaml(text, file)
    overrides = validate_model(doc, CalendarOverrides)
    problems = list(doc.problems)
    if overrides is not None:
        problems.extend(doc.problem(loc, message) for loc, message in _check(overrides))
    if problems or overrides is None:
        raise LoadError(problems)
    return overrides


def load_overrides(path: Path = DEFAULT_OVERRIDES) -> CalendarOverrides:
    text, problem = read_text(path)
    if problem:
        raise LoadError([problem])
    assert text is not None
    return parse_overrides(text, str(path))


def load_calendar(years: range, path: Path = DEFAULT_OVERRIDES) -> WorkingCalendar:
    """The calendar for `years` from the package and the overrides file at `path`."""
    return build_calendar(years, load_overrides(path))


_OVERRIDE_LISTS = ("remove_days_off", "add_days_off", "remove_working_days", "add_working_days")
_CONTRADICTIONS = (
    ("remove_days_off", "add_days_off"),
    ("add_days_off", "add_working_days"),
    ("remove_working_days", "add_working_days"),
)


def _check(overrides: CalendarOverrides) -> list[tuple[Loc, str]]:
    """Rules across entries and against the package, as (location, message) pairs."""
    problems: list[tuple[Loc, str]] = []
    days: dict[str, dict[date, int]] = {}
    for attr in _OVERRIDE_LISTS:
        first_index: dict[date, int] = {}
        for i, entry in enumerate(getattr(overrides, attr)):
            day: date = entry.day
            if day.year not in CALENDAR_YEARS:
                problems.append(
                    (
                        (attr, i, "day"),
                        f"year {day.year} is outside the calendar's years "
                        f"{CALENDAR_YEARS.start}..{CALENDAR_YEARS.stop - 1}",
                    )
                )
            elif day in first_index:
                problems.append(
                    ((attr, i, "day"), f"{day} is listed twice (also {attr}[{first_index[day]}])")
                )
            else:
                first_index[day] = i
        days[attr] = first_index
    for earlier, later in _CONTRADICTIONS:
        for day, i in days[later].items():
            if day in days[earlier]:
                problems.append(
                    (
                        (later, i, "day"),
                        f"{day} is also in {earlier}[{days[earlier][day]}]: "
                        "the two entries contradict each other",
                    )
                )
    years = {day.year for listed in days.values() for day in listed}
    if not years:
        return problems
    package = _package_days(range(min(years), max(years) + 1))
    for day, i in days["remove_days_off"].items():
        if day not in package.days_off:
            problems.append(
                (
                    ("remove_days_off", i, "day"),
                    f"{day} ({weekday_name(day, 'en')}) is not a day off in the holidays "
                    "package: nothing to remove",
                )
            )
    for day, i in days["remove_working_days"].items():
        if day not in package.make_up:
            problems.append(
                (
                    ("remove_working_days", i, "day"),
                    f"{day} ({weekday_name(day, 'en')}) is not a make-up working day in the "
                    "holidays package: nothing to remove",
                )
            )
    for day, i in days["add_working_days"].items():
        if day.weekday() not in (SATURDAY, SUNDAY):
            problems.append(
                (
                    ("add_working_days", i, "day"),
                    f"{day} is a {weekday_name(day, 'en')}, already a working day: a make-up "
                    "working day is a Saturday or Sunday worked in exchange (to work on a "
                    "holiday, list it under remove_days_off)",
                )
            )
        elif day in package.days_off and day not in days["remove_days_off"]:
            problems.append(
                (
                    ("add_working_days", i, "day"),
                    f"{day} is a day off in the holidays package "
                    f"({package.days_off[day][0]!r}): list it under remove_days_off too",
                )
            )
    return sorted(problems, key=lambda p: (_OVERRIDE_LISTS.index(str(p[0][0])), p[0][1]))


# --------------------------------------------------------------------------------------------
# Building from the `holidays` package


@dataclass(frozen=True)
class _PackageDays:
    days_off: dict[date, tuple[str, str]]
    """Day → (Vietnamese name, English name)."""
    make_up: set[date]
    version: str


_US_DATE = re.compile(r"\b(\d{2})/(\d{2})/(\d{4})\b")


def _package_days(years: range) -> _PackageDays:
    # Imported here so that using a calendar (in a workflow) never needs the package.
    from importlib.metadata import version

    import holidays

    vi = holidays.country_holidays("VN", years=years, language="vi", categories=("public",))
    en = holidays.country_holidays("VN", years=years, language="en_US", categories=("public",))
    days_off = {
        day: (
            str(name),
            # The package writes English dates US-style (08/22/2026); the project writes dd/mm.
            _US_DATE.sub(r"\2/\1/\3", str(en.get(day) or name)),
        )
        for day, name in vi.items()
    }
    # The package keeps make-up days of every year it knows here, not only those asked for.
    make_up = {day for day in vi.weekend_workdays if day.year in years}
    return _PackageDays(days_off, make_up, f"holidays {version('holidays')}")


def build_calendar(years: range, overrides: CalendarOverrides | None = None) -> WorkingCalendar:
    """The working calendar of `years` (a range of consecutive years, e.g. range(2025, 2028)).

    Starts from `holidays.country_holidays("VN")` (category `public`, the only one the VN class
    has, observed days included): public holidays, a day off in lieu when one falls on a weekend,
    and days off swapped against a Saturday worked in exchange (the package's
    `weekend_workdays`). The overrides then remove days off, add days off, remove make-up days
    and add make-up days, in that order. Raises `ValueError` when the overrides contradict the
    package (`load_overrides` reports the same problems with file positions).
    """
    if years.step != 1 or not years or {years[0], years[-1]} - set(CALENDAR_YEARS):
        raise ValueError(f"years must be consecutive and inside {CALENDAR_YEARS}, not {years}")
    overrides = overrides or CalendarOverrides()
    problems = _check(overrides)
    if problems:
        raise ValueError("\n".join(f"{format_loc(loc)}: {message}" for loc, message in problems))

    package = _package_days(years)
    source = package.version
    days_off = {
        day: CalendarDay(day=day, name_vi=vi, name_en=en, source=source)
        for day, (vi, en) in package.days_off.items()
    }
    make_up = {day: _make_up_day(day, days_off, source) for day in package.make_up}
    removed: list[CalendarDay] = []
    changes = 0
    for gone in (e for e in overrides.remove_days_off if e.day.year in years):
        removed.append(days_off.pop(gone.day).model_copy(update={"source": gone.source}))
        changes += 1
    for added in (e for e in overrides.add_days_off if e.day.year in years):
        days_off[added.day] = CalendarDay(
            day=added.day,
            name_vi=added.name,
            name_en=added.name_en or added.name,
            source=added.source,
        )
        make_up.pop(added.day, None)  # a day off on a make-up Saturday cancels the make-up
        changes += 1
    for gone in (e for e in overrides.remove_working_days if e.day.year in years):
        make_up.pop(gone.day, None)
        changes += 1
    for worked in (e for e in overrides.add_working_days if e.day.year in years):
        make_up[worked.day] = CalendarDay(
            day=worked.day,
            name_vi=worked.name or "Ngày làm việc bù",
            name_en=worked.name_en or worked.name or "Make-up working day",
            source=worked.source,
        )
        changes += 1
    if changes:
        source += f" + {changes} override{'s' if changes > 1 else ''}"
    return WorkingCalendar(
        first_year=years.start,
        last_year=years.stop - 1,
        days_off=_sorted(days_off.values()),
        make_up_working_days=_sorted(make_up.values()),
        removed_days_off=_sorted(removed),
        source=source,
    )


def _make_up_day(day: date, days_off: dict[date, CalendarDay], source: str) -> CalendarDay:
    # The package names the day off after the Saturday it was swapped with
    # ("Ngày nghỉ (thay cho ngày 22/08/2026)"); name the Saturday after that day off in turn.
    swapped = next((d.day for d in days_off.values() if format_day(day) in d.name_vi), None)
    if swapped is None:
        return CalendarDay(
            day=day, name_vi="Ngày làm việc bù", name_en="Make-up working day", source=source
        )
    return CalendarDay(
        day=day,
        name_vi=f"Làm bù cho ngày nghỉ {format_day(swapped)}",
        name_en=f"Make-up working day for the day off on {format_day(swapped)}",
        source=source,
    )


def _sorted(days: Iterable[CalendarDay]) -> tuple[CalendarDay, ...]:
    return tuple(sorted(days, key=lambda d: d.day))
