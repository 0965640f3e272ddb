"""Words, numbers and dates shared by the report's exports (XLSX, DOCX, charts), in Vietnamese
(the default) or English (locale "en"). Numbers and percentages go through Babel; dates and
times are shown in the report's time zone."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from babel.numbers import format_decimal, format_percent

from activities.models import IndicatorValue, Ratio
from reports.model import (
    STATUS_LABELS_EN,
    STATUS_LABELS_VI,
    ComplianceStatus,
    ConsolidatedReport,
    TaskCompliance,
    owner_text,
)

SEVERITY: tuple[ComplianceStatus, ...] = (
    ComplianceStatus.NOT_DONE,
    ComplianceStatus.OVERDUE,
    ComplianceStatus.LATE,
    ComplianceStatus.EXTENDED,
    ComplianceStatus.NOT_YET_DUE,
    ComplianceStatus.SUSPENDED,
    ComplianceStatus.WAIVED,
    ComplianceStatus.ON_TIME,
    ComplianceStatus.WITHDRAWN,
)
"""Worst first: an agency's cell in the heat map shows its worst status of the period."""


def is_english(locale: str) -> bool:
    return locale.lower().startswith("en")


def babel_locale(locale: str) -> str:
    return "en" if is_english(locale) else "vi"


def status_label(status: ComplianceStatus, locale: str) -> str:
    return (STATUS_LABELS_EN if is_english(locale) else STATUS_LABELS_VI)[status]


def task_owner(task: TaskCompliance, locale: str) -> str:
    """The task's current owner, with the original when a succession passed it."""
    return owner_text(task.agency_name, task.original_agency_name, english=is_english(locale))


def text(locale: str, vi: str, en: str) -> str:
    return en if is_english(locale) else vi


def number(value: int, locale: str) -> str:
    return format_decimal(value, locale=babel_locale(locale))


def percent(rate: float | None, locale: str) -> str:
    """54,5% (vi), 54.5% (en); an en dash when nothing was due."""
    if rate is None:
        return "–"
    return format_percent(rate, format="#,##0.0%", locale=babel_locale(locale))


def local(report: ConsolidatedReport, at: datetime) -> datetime:
    return at.astimezone(ZoneInfo(report.time_zone))


def day(report: ConsolidatedReport, at: datetime | date | None) -> str:
    """dd/mm/yyyy in the report's zone ('' for None)."""
    if at is None:
        return ""
    if isinstance(at, datetime):
        at = local(report, at)
    return at.strftime("%d/%m/%Y")


def due_day(report: ConsolidatedReport, at: datetime | None) -> str:
    """A deadline "before …": the day (dd/mm/yyyy) when it falls at midnight, as most do;
    with its time (HH:MM dd/mm/yyyy) when the agreement gives one ('' for None)."""
    if at is None:
        return ""
    there = local(report, at)
    return there.strftime("%d/%m/%Y" if there.time() == time(0, 0) else "%H:%M %d/%m/%Y")


def moment(report: ConsolidatedReport, at: datetime | None) -> str:
    """dd/mm/yyyy HH:MM in the report's zone ('' for None)."""
    return "" if at is None else local(report, at).strftime("%d/%m/%Y %H:%M")


def value_text(value: IndicatorValue, locale: str) -> str:
    """An agency's value of an indicator, as one line."""
    if isinstance(value, Ratio):
        rate = value.done / value.total if value.total else None
        return (
            f"{number(value.done, locale)}/{number(value.total, locale)} ({percent(rate, locale)})"
        )
    if isinstance(value, dict):
        return "; ".join(f"{name}: {number(count, locale)}" for name, count in value.items())
    if isinstance(value, int):
        return number(value, locale)
    return value


def agency_names(report: ConsolidatedReport, codes: list[str]) -> list[str]:
    """Agency names for codes (the code itself when the report does not name it)."""
    names = {agency.agency: agency.agency_name for agency in report.agencies}
    names.update(
        {task.agency: task.agency_name for task in report.tasks if task.agency not in names}
    )
    return [names.get(code, code) for code in codes]
