"""The Vietnamese working calendar, checked against worked examples derived by hand.

Every expected value below comes from the rules (DOMAIN.md, the Civil Code 2015 art. 148,
Decree 09/2019/NĐ-CP art. 12, the documented sending window) and a wall calendar, not from the
code's output. Weekdays used by the examples, from a calendar (and checked by
`test_the_wall_calendar_the_examples_rely_on`):

    2026: 01/01 Thu.  Feb: 09 Mon, 13 Fri, 14 Sat, 15 Sun, 16 Mon … 20 Fri, 21 Sat, 22 Sun, 23 Mon.
          Apr: 24 Fri, 25 Sat, 26 Sun, 27 Mon, 28 Tue, 29 Wed, 30 Thu.  May: 01 Fri, 02 Sat,
          03 Sun, 04 Mon, 05 Tue, 14 Thu.  Aug: 21 Fri, 22 Sat, 31 Mon.  Nov: 13 Fri, 14 Sat,
          15 Sun, 16 Mon, 17 Tue, 24 Tue.
    2027: Feb: 04 Thu, 06 Sat, 11 Thu, 12 Fri, 13 Sat, 15 Mon, 20 Sat, 21 Sun, 22 Mon.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agreements.calendar import (
    DEFAULT_OVERRIDES,
    VIETNAM,
    AddedWorkingDay,
    CalendarOverrides,
    CalendarRangeError,
    DeadlineRule,
    ReportingPeriodPreset,
    SendingWindow,
    apply_deadline_rule,
    build_calendar,
    last_day_of,
    load_calendar,
    load_overrides,
    offset_after,
    offset_before,
    period_of_day,
    period_window,
    render_year,
)
from agreements.loader import LoadError
from agreements.models import Offset

YEARS = range(2024, 2030)
CALENDAR = load_calendar(YEARS)
WINDOW = SendingWindow(calendar=CALENDAR)
PROPERTIES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NEXT = DeadlineRule.NEXT_WORKING_DAY
PREVIOUS = DeadlineRule.PREVIOUS_WORKING_DAY
AS_WRITTEN = DeadlineRule.AS_WRITTEN


def at(day: int, month: int, year: int, hour: int = 0, minute: int = 0) -> datetime:
    """A local instant in Vietnam."""
    return datetime(year, month, day, hour, minute, tzinfo=VIETNAM)


def before(day: int, month: int, year: int) -> datetime:
    """The due instant of "Trước ngày D/M/Y": that day's local midnight (the first late moment)."""
    return at(day, month, year)


def offset(text: str) -> Offset:
    return Offset.model_validate(text)


def test_the_wall_calendar_the_examples_rely_on() -> None:
    mon, tue, wed, thu, fri, sat, sun = range(7)
    expected = {
        date(2026, 1, 1): thu,
        date(2026, 2, 13): fri,
        date(2026, 2, 14): sat,
        date(2026, 2, 15): sun,
        date(2026, 2, 16): mon,
        date(2026, 2, 23): mon,
        date(2026, 4, 24): fri,
        date(2026, 4, 26): sun,
        date(2026, 4, 30): thu,
        date(2026, 5, 4): mon,
        date(2026, 8, 22): sat,
        date(2026, 8, 31): mon,
        date(2026, 11, 14): sat,
        date(2026, 11, 16): mon,
        date(2026, 11, 24): tue,
        date(2027, 2, 4): thu,
        date(2027, 2, 11): thu,
        date(2027, 2, 20): sat,
        date(2027, 2, 22): mon,
    }
    assert {day: day.weekday() for day in expected} == expected
    assert tue == wed - 1  # every name used


# --------------------------------------------------------------------------------------------
# What the holidays package gives for 2026 (DOMAIN.md facts)


def test_2026_days_off_are_the_labour_code_holidays_with_substitutions() -> None:
    # 1/1; Tết 16–20/2 (the announced five days, Mon–Fri, between two weekends); Hùng Kings'
    # day 10/3 lunar = Sunday 26/4, so Monday 27/4 off in lieu; 30/4 and 1/5; 2/9 plus the
    # adjacent 1/9, and 31/8 off in exchange for Saturday 22/8; 24/11, Vietnam Cultural Day,
    # which the package adds from 2026.
    expected = [
        date(2026, 1, 1),
        *(date(2026, 2, d) for d in range(16, 21)),
        date(2026, 4, 26),
        date(2026, 4, 27),
        date(2026, 4, 30),
        date(2026, 5, 1),
        date(2026, 8, 31),
        date(2026, 9, 1),
        date(2026, 9, 2),
        date(2026, 11, 24),
    ]
    holidays = CALENDAR.holidays_between(date(2026, 1, 1), date(2026, 12, 31))
    assert [h.day for h in holidays] == expected
    names = {h.day: h.name_vi for h in holidays}
    assert names[date(2026, 2, 17)] == "Tết Nguyên Đán"
    assert "Hùng Vương" in names[date(2026, 4, 26)]
    assert "Hùng Vương" in names[date(2026, 4, 27)]
    assert names[date(2026, 9, 2)] == "Quốc khánh"
    english = {h.day: h.name_en for h in holidays}
    assert english[date(2026, 2, 17)] == "Lunar New Year"
    assert english[date(2026, 8, 31)] == "Day off (substituted from 22/08/2026)"

    worked = CALENDAR.make_up_days_between(date(2026, 1, 1), date(2026, 12, 31))
    assert [(d.day, d.name_vi) for d in worked] == [
        (date(2026, 8, 22), "Làm bù cho ngày nghỉ 31/08/2026")
    ]
    # 2025: Friday 2/5 off, Saturday 26/4 worked in exchange.
    assert [d.day for d in CALENDAR.make_up_days_between(date(2025, 1, 1), date(2025, 12, 31))] == [
        date(2025, 4, 26)
    ]


def test_the_shipped_overrides_file_loads_and_changes_nothing_yet() -> None:
    overrides = load_overrides(DEFAULT_OVERRIDES)
    assert overrides == CalendarOverrides()
    assert build_calendar(YEARS) == CALENDAR


def test_days_outside_the_calendar_are_refused_not_guessed() -> None:
    with pytest.raises(CalendarRangeError, match="2030-01-01 is outside"):
        CALENDAR.is_working_day(date(2030, 1, 1))
    with pytest.raises(CalendarRangeError):
        CALENDAR.next_working_day(date(2029, 12, 31))  # Monday 31/12/2029 → into 2030


# --------------------------------------------------------------------------------------------
# The 2026 annual report: "Trước ngày 15/11/2026" (289/KH-UBND, III.7), last day Saturday 14/11


@pytest.mark.parametrize(
    ("rule", "last_day", "due", "vi", "en"),
    [
        (
            NEXT,
            date(2026, 11, 16),  # Saturday 14 → Sunday 15 → Monday 16, a working day
            before(17, 11, 2026),
            "Hạn 14/11/2026 rơi vào thứ Bảy; theo Điều 148 Bộ luật Dân sự, hạn chuyển sang "
            "hết ngày 16/11/2026",
            "The deadline 14/11/2026 falls on a Saturday; under Article 148 of the Civil Code "
            "it moves to the end of 16/11/2026",
        ),
        (
            PREVIOUS,
            date(2026, 11, 13),  # Friday before
            before(14, 11, 2026),
            "Hạn 14/11/2026 rơi vào thứ Bảy; theo quy tắc của thỏa thuận, hạn chuyển về hết "
            "ngày làm việc liền trước 13/11/2026",
            "The deadline 14/11/2026 falls on a Saturday; under the agreement's rule it moves "
            "back to the end of the previous working day, 13/11/2026",
        ),
        (
            AS_WRITTEN,
            date(2026, 11, 14),
            before(15, 11, 2026),
            "Hạn 14/11/2026 rơi vào thứ Bảy; theo thỏa thuận, hạn giữ nguyên như văn bản",
            "The deadline 14/11/2026 falls on a Saturday; the agreement keeps it as written",
        ),
    ],
    ids=lambda v: str(v) if isinstance(v, DeadlineRule) else "",
)
def test_annual_report_2026_under_each_rule(
    rule: DeadlineRule, last_day: date, due: datetime, vi: str, en: str
) -> None:
    adjusted = apply_deadline_rule(before(15, 11, 2026), rule, CALENDAR, VIETNAM)

    assert adjusted.original == before(15, 11, 2026)
    assert adjusted.original_last_day == date(2026, 11, 14)
    assert adjusted.last_day == last_day
    assert adjusted.adjusted == due
    assert adjusted.moved is (rule is not AS_WRITTEN)
    assert adjusted.explanation("vi") == vi
    assert adjusted.explanation("en") == en


def test_a_deadline_on_a_working_day_stays_and_needs_no_explanation() -> None:
    # Six-month report "Trước ngày 15/5/2026": last day Thursday 14/5, a working day.
    for rule in DeadlineRule:
        adjusted = apply_deadline_rule(before(15, 5, 2026), rule, CALENDAR)
        assert adjusted.adjusted == before(15, 5, 2026)
        assert not adjusted.moved
        assert adjusted.explanation_vi is None
        assert adjusted.explanation_en is None


def test_the_last_day_is_the_day_before_a_midnight_due_instant() -> None:
    assert last_day_of(before(15, 11, 2026)) == date(2026, 11, 14)
    assert last_day_of(at(15, 11, 2026, 17)) == date(2026, 11, 15)
    # 14/11 18:00 UTC is 15/11 01:00 in Vietnam.
    assert last_day_of(datetime(2026, 11, 14, 18, tzinfo=UTC)) == date(2026, 11, 15)


# --------------------------------------------------------------------------------------------
# Tết 2026: days off Monday 16/2 – Friday 20/2, between the weekends 14–15/2 and 21–22/2


def test_a_deadline_during_tet_names_the_holiday() -> None:
    # "Trước ngày 19/2/2026": last day Wednesday 18/2 (mùng hai). Next working day: 19 and 20
    # are Tết, 21–22 the weekend, so Monday 23/2; due 24/2 00:00.
    adjusted = apply_deadline_rule(before(19, 2, 2026), NEXT, CALENDAR)
    assert adjusted.adjusted == before(24, 2, 2026)
    assert adjusted.explanation_vi == (
        "Hạn 18/02/2026 rơi vào ngày nghỉ Mùng hai Tết Nguyên Đán (thứ Tư); theo Điều 148 "
        "Bộ luật Dân sự, hạn chuyển sang hết ngày 23/02/2026"
    )
    assert adjusted.explanation_en == (
        "The deadline 18/02/2026 falls on a day off, Second Day of Lunar New Year (Wednesday); "
        "under Article 148 of the Civil Code it moves to the end of 23/02/2026"
    )


def test_reminders_and_escalations_around_tet_2026() -> None:
    # A report due "before 24/2/2026" (last day Monday 23/2) with a 7-day reminder: planned for
    # 17/2 00:00, the first day of Tết. Looking back for a window: 17/2 and 16/2 are Tết, 15/2
    # and 14/2 the weekend, so Friday 13/2 at 07:30.
    due = before(24, 2, 2026)
    planned = offset_before(due, offset("7d"), CALENDAR)
    assert planned == at(17, 2, 2026)
    assert WINDOW.previous_window(planned) == at(13, 2, 2026, 7, 30)
    # During the day too.
    assert WINDOW.previous_window(at(17, 2, 2026, 10)) == at(13, 2, 2026, 7, 30)

    # An escalation planned on Wednesday 18/2 (mùng hai): 18–20 are Tết, 21–22 the weekend,
    # so it goes out on Monday 23/2 at 07:30.
    assert WINDOW.next_window(at(18, 2, 2026, 9)) == at(23, 2, 2026, 7, 30)
    assert WINDOW.next_window(at(18, 2, 2026)) == at(23, 2, 2026, 7, 30)

    # Working days skip Tết: 2 working days before 24/2 00:00 is Friday 13/2 (23/2 is the
    # first, then 20 … 14 are not working days), at the same time of day.
    assert offset_before(due, offset("2wd"), CALENDAR) == at(13, 2, 2026)
    # 1 working day after Friday 13/2 is Monday 23/2.
    assert CALENDAR.add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 23)


def test_window_boundaries_on_the_first_working_day_after_tet() -> None:
    # Monday 23/2/2026 is the first working day after Tết; the one before it is Friday 13/2.
    opening = at(23, 2, 2026, 7, 30)
    assert WINDOW.previous_window(opening) == opening  # a window is at or before itself
    assert WINDOW.next_window(opening) == opening
    one_minute = timedelta(minutes=1)
    assert WINDOW.previous_window(opening - one_minute) == at(13, 2, 2026, 7, 30)
    assert WINDOW.next_window(opening - one_minute) == opening
    assert WINDOW.previous_window(opening + one_minute) == opening
    assert WINDOW.next_window(opening + one_minute) == at(24, 2, 2026, 7, 30)


# --------------------------------------------------------------------------------------------
# 30/4 – 1/5 2026: Monday 27/4 off in lieu of Hùng Kings' day, Thursday 30/4 and Friday 1/5 off


def test_a_deadline_on_reunification_day() -> None:
    # "Trước ngày 1/5/2026": last day Thursday 30/4. Next working day: 1/5 holiday, 2–3/5
    # weekend, so Monday 4/5 (due 5/5 00:00). Previous working day: Wednesday 29/4.
    after_rule = apply_deadline_rule(before(1, 5, 2026), NEXT, CALENDAR)
    assert after_rule.last_day == date(2026, 5, 4)
    assert after_rule.adjusted == before(5, 5, 2026)
    assert after_rule.explanation_vi == (
        "Hạn 30/04/2026 rơi vào ngày nghỉ Chiến thắng (thứ Năm); theo Điều 148 Bộ luật Dân "
        "sự, hạn chuyển sang hết ngày 04/05/2026"
    )
    assert after_rule.explanation_en == (
        "The deadline 30/04/2026 falls on a day off, Liberation Day/Reunification Day "
        "(Thursday); under Article 148 of the Civil Code it moves to the end of 04/05/2026"
    )
    previous = apply_deadline_rule(before(1, 5, 2026), PREVIOUS, CALENDAR)
    assert previous.last_day == date(2026, 4, 29)
    assert previous.adjusted == before(30, 4, 2026)


def test_reminders_and_escalations_around_30_4_and_1_5_2026() -> None:
    due = before(5, 5, 2026)  # after art. 148: last day Monday 4/5
    # 1wd before 5/5 00:00 is 4/5 00:00; the latest window at or before it: 4/5 07:30 is later,
    # 3/5–30/4 are not working days, so Wednesday 29/4 07:30.
    assert offset_before(due, offset("1wd"), CALENDAR) == at(4, 5, 2026)
    assert WINDOW.previous_window(at(4, 5, 2026)) == at(29, 4, 2026, 7, 30)
    # 3wd before: 4/5 (1), 29/4 (2), 28/4 (3). Its window looks back past 27/4 (in lieu) and
    # the weekend 25–26/4 to Friday 24/4.
    assert offset_before(due, offset("3wd"), CALENDAR) == at(28, 4, 2026)
    assert WINDOW.previous_window(at(28, 4, 2026)) == at(24, 4, 2026, 7, 30)
    # A reminder planned on 1/5 at 10:00 goes out on Wednesday 29/4 at 07:30.
    assert WINDOW.previous_window(at(1, 5, 2026, 10)) == at(29, 4, 2026, 7, 30)
    # An escalation planned on 30/4 goes out on Monday 4/5 at 07:30.
    assert WINDOW.next_window(at(30, 4, 2026, 8)) == at(4, 5, 2026, 7, 30)
    # 1wd after the due instant: the working day after Tuesday 5/5.
    assert offset_after(due, offset("1wd"), CALENDAR) == at(6, 5, 2026)
    assert WINDOW.next_window(at(6, 5, 2026)) == at(6, 5, 2026, 7, 30)
    assert CALENDAR.add_working_days(date(2026, 4, 29), 1) == date(2026, 5, 4)
    assert CALENDAR.add_working_days(date(2026, 5, 4), -3) == date(2026, 4, 24)


# --------------------------------------------------------------------------------------------
# Make-up Saturdays


def test_the_packages_make_up_saturday_is_a_working_day() -> None:
    # Saturday 22/8/2026 is worked in exchange for Monday 31/8 (National Day bridge).
    assert CALENDAR.is_working_day(date(2026, 8, 22))
    assert not CALENDAR.is_working_day(date(2026, 8, 31))
    assert not CALENDAR.is_working_day(date(2026, 8, 29))  # an ordinary Saturday
    # "Trước ngày 23/8/2026": last day Saturday 22/8, a working day, so nothing moves.
    adjusted = apply_deadline_rule(before(23, 8, 2026), NEXT, CALENDAR)
    assert not adjusted.moved
    assert adjusted.explanation_vi is None
    # An escalation planned on Friday 21/8 after 07:30 goes out on Saturday 22/8 at 07:30.
    assert WINDOW.next_window(at(21, 8, 2026, 9)) == at(22, 8, 2026, 7, 30)
    assert CALENDAR.add_working_days(date(2026, 8, 21), 1) == date(2026, 8, 22)
    assert CALENDAR.add_working_days(date(2026, 8, 28), -4) == date(2026, 8, 24)


OVERRIDES_2027 = """\
schema_version: 1
remove_days_off:
  - day: 2027-02-04
    source: Thông báo thử nghiệm số 1/TB-TEST
add_days_off:
  - day: 2027-02-11
    name: Nghỉ Tết Nguyên đán (hoán đổi)
    name_en: Lunar New Year day off (swapped)
    source: Thông báo thử nghiệm số 1/TB-TEST
add_working_days:
  - day: 2027-02-20
    name: Làm bù cho ngày nghỉ 11/02/2027
    name_en: Make-up working day for 11/02/2027
    source: Thông báo thử nghiệm số 1/TB-TEST
"""


def test_an_admin_moves_a_tet_day_and_adds_a_make_up_saturday(tmp_path: Path) -> None:
    # The package's Tết 2027: Thursday 4/2 (in lieu of Saturday 6/2) to Wednesday 10/2. This
    # test announcement works on 4/2, rests on Thursday 11/2 and works Saturday 20/2 instead.
    path = tmp_path / "vn-overrides.yml"
    path.write_text(OVERRIDES_2027, encoding="utf-8")
    calendar = load_calendar(YEARS, path)
    window = SendingWindow(calendar=calendar)

    assert CALENDAR.day_off(date(2027, 2, 4)) is not None  # without the file: a day off
    assert calendar.is_working_day(date(2027, 2, 4))
    assert not calendar.is_working_day(date(2027, 2, 11))
    assert calendar.is_working_day(date(2027, 2, 20))
    assert not calendar.is_working_day(date(2027, 2, 21))

    # "Trước ngày 12/2/2027": last day Thursday 11/2, now a day off, moves to Friday 12/2.
    adjusted = apply_deadline_rule(before(12, 2, 2027), NEXT, calendar)
    assert adjusted.adjusted == before(13, 2, 2027)
    assert adjusted.explanation_vi == (
        "Hạn 11/02/2027 rơi vào ngày nghỉ Tết Nguyên đán (hoán đổi) (thứ Năm); theo Điều 148 "
        "Bộ luật Dân sự, hạn chuyển sang hết ngày 12/02/2027"
    )
    # "Trước ngày 21/2/2027": last day Saturday 20/2, the make-up day, so it stays.
    assert not apply_deadline_rule(before(21, 2, 2027), NEXT, calendar).moved
    # Without the file the same Saturday moves to Monday 22/2.
    assert apply_deadline_rule(before(21, 2, 2027), NEXT, CALENDAR).adjusted == before(23, 2, 2027)
    # A reminder planned for Sunday 21/2 goes out on the make-up Saturday.
    assert window.previous_window(at(21, 2, 2027, 10)) == at(20, 2, 2027, 7, 30)

    text = render_year(calendar, 2027)
    assert "  20/02/2027  thứ Bảy    Làm bù cho ngày nghỉ 11/02/2027\n" in text
    assert "  11/02/2027  thứ Năm    Nghỉ Tết Nguyên đán (hoán đổi)\n" in text
    assert "Ngày nghỉ đã bỏ theo ngoại lệ:\n" in text
    assert "04/02/2027" in text.split("Ngày nghỉ đã bỏ theo ngoại lệ:")[1]
    assert "holidays " in calendar.source
    assert calendar.source.endswith("+ 3 overrides")


def test_overrides_that_contradict_the_package_are_refused_in_code_too() -> None:
    tuesday = AddedWorkingDay(day=date(2026, 11, 17), source="thử nghiệm")
    with pytest.raises(ValueError, match=r"add_working_days\[0\]\.day: 2026-11-17 is a Tuesday"):
        build_calendar(YEARS, CalendarOverrides(add_working_days=[tuesday]))


# --------------------------------------------------------------------------------------------
# `accord calendar 2026`


def test_render_year_2026() -> None:
    text = render_year(CALENDAR, 2026)
    lines = text.splitlines()
    assert lines[0] == "Lịch làm việc năm 2026"
    assert "  17/02/2026  thứ Ba     Tết Nguyên Đán" in lines
    assert "  26/04/2026  Chủ nhật   Ngày Giỗ Tổ Hùng Vương" in lines
    assert "  22/08/2026  thứ Bảy    Làm bù cho ngày nghỉ 31/08/2026" in lines
    # 2026 has 365 days from a Thursday: 52 weeks and one Thursday, so 261 weekdays. Minus the
    # 13 holidays on weekdays (1/1, 16–20/2, 27/4, 30/4, 1/5, 31/8, 1/9, 2/9, 24/11; Sunday 26/4
    # does not count), plus Saturday 22/8: 249.
    assert "Số ngày làm việc: 249" in lines
    assert "Ngày nghỉ lễ, Tết (14):" in lines

    english = render_year(CALENDAR, 2026, "en").splitlines()
    assert english[0] == "Working calendar 2026"
    assert "  30/04/2026  Thursday   Liberation Day/Reunification Day" in english
    assert "Working days: 249" in english


# --------------------------------------------------------------------------------------------
# Reporting periods (Decree 09/2019/NĐ-CP, art. 12)


@pytest.mark.parametrize(
    ("preset", "index", "window"),
    [
        (ReportingPeriodPreset.MONTHLY, 1, (date(2025, 12, 15), date(2026, 1, 14))),
        (ReportingPeriodPreset.MONTHLY, 6, (date(2026, 5, 15), date(2026, 6, 14))),
        (ReportingPeriodPreset.QUARTERLY, 1, (date(2025, 12, 15), date(2026, 3, 14))),
        (ReportingPeriodPreset.QUARTERLY, 3, (date(2026, 6, 15), date(2026, 9, 14))),
        (ReportingPeriodPreset.QUARTERLY, 4, (date(2026, 9, 15), date(2026, 12, 14))),
        (ReportingPeriodPreset.SIX_MONTH, 1, (date(2025, 12, 15), date(2026, 6, 14))),
        (ReportingPeriodPreset.NINE_MONTH, 1, (date(2025, 12, 15), date(2026, 9, 14))),
        (ReportingPeriodPreset.ANNUAL, 1, (date(2025, 12, 15), date(2026, 12, 14))),
    ],
)
def test_decree_09_data_cut_off_windows_2026(
    preset: ReportingPeriodPreset, index: int, window: tuple[date, date]
) -> None:
    assert period_window(preset, 2026, index) == window


def test_period_indexes_are_checked_and_named_after_the_due_day() -> None:
    with pytest.raises(ValueError, match=r"1\.\.4"):
        period_window(ReportingPeriodPreset.QUARTERLY, 2026, 5)
    with pytest.raises(ValueError, match=r"1\.\.1"):
        period_window(ReportingPeriodPreset.ANNUAL, 2026, 2)
    # 289/KH-UBND's six-month report, last day 14/5/2025, covers 15/12/2024 – 14/6/2025.
    year, index = period_of_day(ReportingPeriodPreset.SIX_MONTH, date(2025, 5, 14))
    assert period_window(ReportingPeriodPreset.SIX_MONTH, year, index) == (
        date(2024, 12, 15),
        date(2025, 6, 14),
    )
    assert period_of_day(ReportingPeriodPreset.QUARTERLY, date(2026, 8, 20)) == (2026, 3)
    assert period_of_day(ReportingPeriodPreset.MONTHLY, date(2026, 3, 14)) == (2026, 3)


# --------------------------------------------------------------------------------------------
# Offsets in calendar time


def test_calendar_offsets() -> None:
    due = before(17, 11, 2026)
    assert offset_before(due, offset("7d"), CALENDAR) == at(10, 11, 2026)
    assert offset_before(due, offset("12h"), CALENDAR) == at(16, 11, 2026, 12)
    assert offset_after(due, offset("90m"), CALENDAR) == at(17, 11, 2026, 1, 30)
    assert offset_after(due, offset("0wd"), CALENDAR) == due
    # The local date is read in Vietnam even when the instant comes in UTC.
    in_utc = due.astimezone(UTC)
    assert offset_before(in_utc, offset("1wd"), CALENDAR, zone=VIETNAM) == at(16, 11, 2026)


# --------------------------------------------------------------------------------------------
# The calendar travels as workflow input without the holidays package


def test_the_calendar_round_trips_as_json_and_is_used_without_the_package(
    tmp_path: Path,
) -> None:
    payload = tmp_path / "calendar.json"
    payload.write_text(WINDOW.model_dump_json(), encoding="utf-8")
    restored = SendingWindow.model_validate_json(payload.read_text(encoding="utf-8"))
    assert restored == WINDOW
    assert restored.calendar.digest() == CALENDAR.digest()

    script = textwrap.dedent(
        f"""
        import sys
        from datetime import date, datetime
        from pathlib import Path
        from agreements.calendar import SendingWindow, VIETNAM
        window = SendingWindow.model_validate_json(Path({str(payload)!r}).read_text("utf-8"))
        assert not window.calendar.is_working_day(date(2026, 2, 17))
        sent = window.previous_window(datetime(2026, 2, 17, tzinfo=VIETNAM))
        assert sent == datetime(2026, 2, 13, 7, 30, tzinfo=VIETNAM), sent
        assert "holidays" not in sys.modules, "using a calendar imported the holidays package"
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_a_changed_calendar_has_a_different_digest(tmp_path: Path) -> None:
    path = tmp_path / "vn-overrides.yml"
    path.write_text(OVERRIDES_2027, encoding="utf-8")
    assert load_calendar(YEARS, path).digest() != CALENDAR.digest()
    assert build_calendar(YEARS).digest() == CALENDAR.digest()
    # Renaming a day off moves no date: same digest.
    renamed = CALENDAR.model_copy(
        update={"days_off": tuple(d.model_copy(update={"name_vi": "x"}) for d in CALENDAR.days_off)}
    )
    assert renamed.digest() == CALENDAR.digest()


# --------------------------------------------------------------------------------------------
# Overrides file errors: FILE:LINE:COL


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "schema_version: 1\nadd_days_off: [\n",
            ["3:1: YAML syntax error: expected the node content, but found '<stream end>'"],
        ),
        (
            "schema_version: 1\nadd_day_off: []\n",
            ["2:1: add_day_off: unknown field; did you mean 'add_days_off'?"],
        ),
        (
            "add_working_days:\n  - day: 2026-11-17\n    source: thử nghiệm\n",
            [
                "2:10: add_working_days[0].day: 2026-11-17 is a Tuesday, already a working "
                "day: a make-up working day is a Saturday or Sunday worked in exchange (to "
                "work on a holiday, list it under remove_days_off)"
            ],
        ),
        (
            "remove_days_off:\n  - day: 2026-11-16\n    source: thử nghiệm\n",
            [
                "2:10: remove_days_off[0].day: 2026-11-16 (Monday) is not a day off in the "
                "holidays package: nothing to remove"
            ],
        ),
        (
            "add_working_days:\n  - day: 2026-04-26\n    source: s\n",
            [
                "2:10: add_working_days[0].day: 2026-04-26 is a day off in the holidays "
                "package ('Ngày Giỗ Tổ Hùng Vương'): list it under remove_days_off too"
            ],
        ),
        (
            "add_days_off:\n"
            "  - day: 2027-02-11\n    name: A\n    source: s\n"
            "  - day: 2027-02-11\n    name: B\n    source: s\n",
            ["5:10: add_days_off[1].day: 2027-02-11 is listed twice (also add_days_off[0])"],
        ),
        (
            "remove_days_off:\n  - day: 2026-11-24\n    source: s\n"
            "add_days_off:\n  - day: 2026-11-24\n    name: A\n    source: s\n",
            [
                "5:10: add_days_off[0].day: 2026-11-24 is also in remove_days_off[0]: the two "
                "entries contradict each other"
            ],
        ),
        (
            "add_days_off:\n  - day: 2027-02-11\n    name: A\n",
            ["2:5: add_days_off[0].source: field required"],
        ),
        (
            "add_days_off:\n  - day: 2027-02-30\n    name: A\n    source: s\n",
            ["2:10: invalid value '2027-02-30': day is out of range for month"],
        ),
        (
            "remove_working_days:\n  - day: 2026-08-29\n    source: s\n",
            [
                "2:10: remove_working_days[0].day: 2026-08-29 (Saturday) is not a make-up "
                "working day in the holidays package: nothing to remove"
            ],
        ),
    ],
    ids=[
        "yaml-syntax",
        "unknown-key",
        "make-up-on-a-weekday",
        "remove-unknown-day-off",
        "make-up-on-a-holiday",
        "listed-twice",
        "added-and-removed",
        "missing-source",
        "invalid-date",
        "remove-unknown-make-up",
    ],
)
def test_overrides_file_errors_point_at_the_line(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = tmp_path / "vn-overrides.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LoadError) as caught:
        load_overrides(path)
    assert [str(p) for p in caught.value.problems] == [f"{path}:{line}" for line in expected]


# --------------------------------------------------------------------------------------------
# Properties

# Far enough from the calendar's edges (2024–2029) for 60 working days either way.
days = st.dates(min_value=date(2024, 4, 1), max_value=date(2029, 9, 30))
zones: st.SearchStrategy[tzinfo] = st.sampled_from([VIETNAM, UTC, ZoneInfo("Europe/Paris")])
# Hypothesis takes naive bounds and attaches the drawn zone itself.
instants = st.datetimes(
    min_value=datetime(2024, 4, 1),  # noqa: DTZ001
    max_value=datetime(2029, 9, 30),  # noqa: DTZ001
    timezones=zones,
)
offsets = st.builds(
    Offset,
    amount=st.integers(min_value=0, max_value=40),
    unit=st.sampled_from(["s", "m", "h", "d", "wd"]),
)


@PROPERTIES
@given(days)
def test_next_working_day_rule_ends_at_the_end_of_the_nearest_working_day(day: date) -> None:
    due = datetime.combine(day, time.min, tzinfo=VIETNAM)
    adjusted = apply_deadline_rule(due, NEXT, CALENDAR)
    new_due = adjusted.adjusted.astimezone(VIETNAM)
    assert new_due.time() == time.min
    last_day = new_due.date() - timedelta(days=1)
    assert CALENDAR.is_working_day(last_day)
    assert last_day == adjusted.last_day
    # Nearest: no working day between the written last day and the new one.
    skipped = adjusted.original_last_day
    while skipped < last_day:
        assert not CALENDAR.is_working_day(skipped)
        skipped += timedelta(days=1)
    assert (adjusted.explanation_vi is None) is (not adjusted.moved)


@PROPERTIES
@given(days)
def test_previous_working_day_rule_never_extends(day: date) -> None:
    due = datetime.combine(day, time.min, tzinfo=VIETNAM)
    adjusted = apply_deadline_rule(due, PREVIOUS, CALENDAR)
    assert adjusted.adjusted <= due
    assert CALENDAR.is_working_day(adjusted.last_day)


@PROPERTIES
@given(instants)
def test_windows_are_07_30_on_a_working_day_and_nearest(moment: datetime) -> None:
    earlier, later = WINDOW.previous_window(moment), WINDOW.next_window(moment)
    for window in (earlier, later):
        local = window.astimezone(VIETNAM)
        assert local.time() == time(7, 30)
        assert CALENDAR.is_working_day(local.date())
        assert WINDOW.is_window(window)
    assert earlier <= moment <= later
    # Nearest: the next window after `earlier` is already past `moment`, and vice versa.
    assert WINDOW.next_window(earlier + timedelta(microseconds=1)) > moment
    assert WINDOW.previous_window(later - timedelta(microseconds=1)) < moment


@PROPERTIES
@given(days, offsets, offsets, st.sampled_from(list(DeadlineRule)))
def test_no_message_time_falls_outside_a_window(
    day: date, reminder: Offset, escalation: Offset, rule: DeadlineRule
) -> None:
    due = apply_deadline_rule(datetime.combine(day, time.min, tzinfo=VIETNAM), rule, CALENDAR)
    remind_at = WINDOW.previous_window(offset_before(due.adjusted, reminder, CALENDAR))
    escalate_at = WINDOW.next_window(offset_after(due.adjusted, escalation, CALENDAR))
    for sent in (remind_at, escalate_at):
        local = sent.astimezone(VIETNAM)
        assert local.time() == time(7, 30)
        assert CALENDAR.is_working_day(local.date())
    assert remind_at <= due.adjusted <= escalate_at


@PROPERTIES
@given(days, st.integers(min_value=-60, max_value=60))
def test_add_working_days_round_trips(day: date, n: int) -> None:
    start = CALENDAR.roll_forward(day)
    moved = CALENDAR.add_working_days(start, n)
    assert CALENDAR.add_working_days(moved, -n) == start
    assert CALENDAR.is_working_day(moved)
    first, last = sorted((start, moved))
    # Both ends are working days, and exactly |n| steps lie between them.
    assert CALENDAR.count_working_days(first, last) == abs(n) + 1
