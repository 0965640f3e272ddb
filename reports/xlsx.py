"""The report as an XLSX workbook an office filters, sorts and pastes from (openpyxl).

One sheet per table: the summary (totals and the on-time rate), every task's compliance, each
agency's counts, the consolidated indicators (the province's total, then each agency, then the
agencies that did not report: listed, never zero), the missing reports and the agencies'
summaries. Each sheet has one header row, frozen and filterable. Numbers are numbers, rates are
numbers shown as percentages, dates and times are dates in the report's time zone shown
dd/mm/yyyy. Headers are Vietnamese (English with locale "en"). No formulas: every figure is the
report's own.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from activities.models import IndicatorValue, Ratio
from agreements.models import IndicatorKind
from reports.export_labels import agency_names, local, status_label, task_owner, text
from reports.model import (
    ConsolidatedIndicator,
    ConsolidatedReport,
    shown_statuses,
)

DATE_FORMAT = "dd/mm/yyyy"
DATE_TIME_FORMAT = "dd/mm/yyyy hh:mm"
PERCENT_FORMAT = "0.0%"
INTEGER_FORMAT = "#,##0"

Cell = str | int | float | date | datetime | None

FONT_NAME = "Times New Roman"
BODY_FONT = Font(name=FONT_NAME, size=12)
HEADER_FONT = Font(name=FONT_NAME, size=12, bold=True)
HEADER_FILL = PatternFill("solid", fgColor="DCE6F1")
WRAP = Alignment(wrap_text=True, vertical="top")
LINE_HEIGHT = 16.0
"""Points per line of 12 pt text."""
CHARACTERS_PER_WIDTH = 1.05
"""Characters of Times New Roman 12 pt per unit of column width (the width of a '0' in the
default font), on average, for Vietnamese text."""


@dataclass(frozen=True)
class Column:
    vi: str
    en: str
    width: float
    number_format: str | None = None
    wrap: bool = False


def _local_naive(report: ConsolidatedReport, at: datetime) -> datetime:
    """A wall-clock time in the report's zone (a spreadsheet has no time zones)."""
    return local(report, at).replace(tzinfo=None)


def _due(report: ConsolidatedReport, at: datetime | None) -> datetime | None:
    return None if at is None else _local_naive(report, at)


def _due_format(value: Cell) -> str:
    """Deadlines at midnight ("trước ngày 15/04/2025") show the day only."""
    if isinstance(value, datetime) and value.time() != time(0, 0):
        return DATE_TIME_FORMAT
    return DATE_FORMAT


def _lines(value: Cell, width: float) -> int:
    """How many lines a wrapped cell takes (spreadsheets do not grow rows by themselves when
    a file is opened: Excel and LibreOffice keep the default height unless told)."""
    if not isinstance(value, str):
        return 1
    per_line = max(1, int(width * CHARACTERS_PER_WIDTH))
    return sum(max(1, math.ceil(len(line) / per_line)) for line in value.split("\n"))


def _row_heights(sheet: Worksheet, columns: Sequence[Column]) -> None:
    for index, row in enumerate(sheet.iter_rows(), start=1):
        lines = max(
            (
                _lines(cell.value, column.width)
                for cell, column in zip(row, columns, strict=False)
                if column.wrap or index == 1
            ),
            default=1,
        )
        if lines > 1:
            sheet.row_dimensions[index].height = LINE_HEIGHT * lines


def _sheet(
    workbook: Workbook,
    title: str,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    locale: str,
) -> Worksheet:
    sheet = workbook.create_sheet(title)
    sheet.append([text(locale, column.vi, column.en) for column in columns])
    for cell in sheet[1]:
        cell.font = HEADER_FONT
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    for row in rows:
        sheet.append(list(row))
    for index, column in enumerate(columns, start=1):
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = column.width
        for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
            cell.font = BODY_FONT
            cell.alignment = Alignment(vertical="top")
            if cell.value is None:
                continue
            if column.number_format == DATE_FORMAT:
                cell.number_format = _due_format(cell.value)
            elif column.number_format:
                cell.number_format = column.number_format
            if column.wrap:
                cell.alignment = WRAP
    _row_heights(sheet, columns)
    sheet.freeze_panes = "A2"
    # Printed: A4 landscape, as wide as one page, the header row on every page.
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.print_title_rows = "1:1"
    if rows:
        sheet.auto_filter.ref = sheet.dimensions
    return sheet


def _summary(workbook: Workbook, report: ConsolidatedReport, locale: str) -> None:
    totals = report.totals
    everything = text(locale, "Tất cả các kỳ", "All periods")
    rows: list[tuple[str, Cell, str | None]] = [
        (text(locale, "Văn bản", "Document"), report.document_number, None),
        (text(locale, "Tên văn bản", "Title"), report.title, None),
        (text(locale, "Cơ quan ban hành", "Issued by"), report.issuer or "", None),
        (text(locale, "Tỉnh", "Province"), report.province or "", None),
        (text(locale, "Kỳ báo cáo", "Reporting period"), report.period or everything, None),
        (
            text(locale, "Số liệu tính đến", "Figures as of"),
            _local_naive(report, report.as_of),
            DATE_TIME_FORMAT,
        ),
        (text(locale, "Múi giờ", "Time zone"), report.time_zone, None),
        (text(locale, "Tổng số nhiệm vụ", "Tasks"), totals.tasks, INTEGER_FORMAT),
    ]
    rows += [
        (status_label(status, locale), totals.counts.get(status, 0), INTEGER_FORMAT)
        for status in shown_statuses(report.tasks)
    ]
    rows += [
        (text(locale, "Số báo cáo đã đến hạn", "Reports due"), totals.due, INTEGER_FORMAT),
        (text(locale, "Số báo cáo đúng hạn", "Reports on time"), totals.on_time, INTEGER_FORMAT),
        (text(locale, "Tỷ lệ đúng hạn", "On-time rate"), totals.on_time_rate, PERCENT_FORMAT),
    ]
    rows += [
        (
            text(locale, f"Nhiệm vụ phải đôn đốc mức {level}", f"Tasks escalated to level {level}"),
            count,
            INTEGER_FORMAT,
        )
        for level, count in sorted(totals.escalations.items())
    ]
    columns = [
        Column("Nội dung", "Item", 40),
        Column("Giá trị", "Value", 70, wrap=True),
    ]
    sheet = _sheet(
        workbook,
        text(locale, "Tổng hợp", "Summary"),
        columns,
        [(label, value) for label, value, _ in rows],
        locale,
    )
    for index, (_, _, number_format) in enumerate(rows, start=2):
        cell = sheet.cell(row=index, column=2)
        cell.alignment = Alignment(horizontal="left", vertical="top", wrap_text=True)
        if number_format:
            cell.number_format = number_format


def _compliance(workbook: Workbook, report: ConsolidatedReport, locale: str) -> None:
    columns = [
        Column("STT", "No.", 6),
        Column("Cơ quan", "Agency", 28, wrap=True),
        Column("Mã cơ quan", "Agency code", 15),
        Column("Mục", "Item", 6),
        Column("Nhiệm vụ", "Obligation", 36, wrap=True),
        Column("Kỳ báo cáo", "Period", 10),
        Column("Hạn nộp (trước ngày)", "Due (before)", 12, DATE_FORMAT),
        Column("Thời điểm nộp", "Received", 16, DATE_TIME_FORMAT),
        Column("Tình trạng", "Status", 16, wrap=True),
        Column("Số ngày trễ", "Days late", 8, INTEGER_FORMAT),
        Column("Mức đôn đốc", "Escalation level", 9, INTEGER_FORMAT),
        Column("Gia hạn đến (trước ngày)", "Extended to (before)", 12, DATE_FORMAT),
        Column("Lý do miễn", "Waiver reason", 24, wrap=True),
        Column("Cơ quan phối hợp", "Co-owners", 20, wrap=True),
    ]
    rows = [
        (
            number,
            task_owner(task, locale),
            task.agency,
            task.item_number,
            task.obligation_title,
            task.period_label,
            _due(report, task.due_at),
            None if task.submitted_at is None else _local_naive(report, task.submitted_at),
            status_label(task.status, locale),
            task.late_working_days,
            task.escalation_level,
            task.extended_to,
            task.waiver_reason,
            ", ".join(agency_names(report, task.co_owners)) or None,
        )
        for number, task in enumerate(report.tasks, start=1)
    ]
    _sheet(
        workbook,
        text(locale, "Tình hình nộp báo cáo", "Compliance"),
        columns,
        rows,
        locale,
    )


def _agencies(workbook: Workbook, report: ConsolidatedReport, locale: str) -> None:
    columns = [
        Column("STT", "No.", 6),
        Column("Cơ quan", "Agency", 34, wrap=True),
        Column("Mã cơ quan", "Agency code", 16),
        *(
            Column(status_label(s, "vi"), status_label(s, "en"), 12, INTEGER_FORMAT)
            for s in shown_statuses(report.tasks)
        ),
        Column("Đã đến hạn", "Due", 10, INTEGER_FORMAT),
        Column("Tỷ lệ đúng hạn", "On-time rate", 12, PERCENT_FORMAT),
        Column("Mức đôn đốc cao nhất", "Highest escalation", 12, INTEGER_FORMAT),
    ]
    rows = [
        (
            number,
            agency.agency_name,
            agency.agency,
            *(agency.counts.get(status, 0) for status in shown_statuses(report.tasks)),
            agency.due,
            agency.on_time_rate,
            agency.highest_escalation,
        )
        for number, agency in enumerate(report.agencies, start=1)
    ]
    _sheet(workbook, text(locale, "Theo cơ quan", "By agency"), columns, rows, locale)


def _value_cells(value: IndicatorValue, category: str | None) -> tuple[Cell, Cell, Cell, Cell]:
    """count, done, total, ratio of one value (a breakdown: of one category)."""
    if isinstance(value, Ratio):
        return None, value.done, value.total, value.done / value.total if value.total else None
    if isinstance(value, dict):
        return (value.get(category, 0) if category else sum(value.values())), None, None, None
    if isinstance(value, int):
        return value, None, None, None
    return None, None, None, None


def _indicator_rows(
    report: ConsolidatedReport, indicator: ConsolidatedIndicator, locale: str
) -> list[tuple[Cell, ...]]:
    kind = {
        IndicatorKind.COUNT: text(locale, "Số lượng", "Count"),
        IndicatorKind.RATIO: text(locale, "Tỷ lệ", "Ratio"),
        IndicatorKind.BREAKDOWN: text(locale, "Theo lĩnh vực", "Breakdown"),
        IndicatorKind.TEXT: text(locale, "Văn bản", "Text"),
    }[indicator.kind]
    head = (indicator.obligation_title, indicator.code, indicator.label, kind)
    province = text(locale, "Tổng hợp", "Consolidated")
    rows: list[tuple[Cell, ...]] = []
    categories: list[str | None] = (
        list(indicator.categories or indicator.breakdown or [])
        if indicator.kind is IndicatorKind.BREAKDOWN
        else [None]
    )
    nobody = (
        None
        if indicator.per_agency
        else text(locale, "Chưa có cơ quan nào báo cáo", "No agency reported yet")
    )
    for category in categories:
        if indicator.kind is IndicatorKind.TEXT:
            break
        count: Cell = indicator.count
        if category is not None:
            count = (indicator.breakdown or {}).get(category, 0)
        rows.append(
            (*head, province, None, category, count, indicator.done, indicator.total,
             indicator.ratio, None, nobody)
        )  # fmt: skip
    if indicator.kind is IndicatorKind.BREAKDOWN:
        rows.append(
            (*head, province, None, text(locale, "Cộng", "Total"), indicator.count, None, None,
             None, None, nobody)
        )  # fmt: skip
    for value in indicator.per_agency:
        for category in categories:
            count, done, total, ratio = _value_cells(value.value, category)
            said = value.value if isinstance(value.value, str) else None
            rows.append(
                (*head, value.agency_name, value.agency, category, count, done, total, ratio,
                 said, None)
            )  # fmt: skip
    not_reported = text(
        locale, "Chưa báo cáo (không tính là 0)", "Not reported (not counted as zero)"
    )
    for code, name in zip(indicator.missing, agency_names(report, indicator.missing), strict=True):
        rows.append((*head, name, code, None, None, None, None, None, None, not_reported))
    return rows


def _indicators(workbook: Workbook, report: ConsolidatedReport, locale: str) -> None:
    columns = [
        Column("Nhiệm vụ", "Obligation", 28, wrap=True),
        Column("Mã chỉ tiêu", "Indicator code", 18),
        Column("Chỉ tiêu", "Indicator", 28, wrap=True),
        Column("Loại", "Kind", 11),
        Column("Cơ quan", "Agency", 28, wrap=True),
        Column("Mã cơ quan", "Agency code", 15),
        Column("Lĩnh vực", "Category", 18, wrap=True),
        Column("Số lượng", "Count", 11, INTEGER_FORMAT),
        Column("Đã thực hiện", "Done", 11, INTEGER_FORMAT),
        Column("Tổng số", "Total", 11, INTEGER_FORMAT),
        Column("Tỷ lệ", "Ratio", 9, PERCENT_FORMAT),
        Column("Nội dung", "Text", 32, wrap=True),
        Column("Ghi chú", "Note", 24, wrap=True),
    ]
    rows = [
        row for indicator in report.indicators for row in _indicator_rows(report, indicator, locale)
    ]
    _sheet(workbook, text(locale, "Chỉ tiêu", "Indicators"), columns, rows, locale)


def _missing(workbook: Workbook, report: ConsolidatedReport, locale: str) -> None:
    columns = [
        Column("STT", "No.", 6),
        Column("Cơ quan", "Agency", 34, wrap=True),
        Column("Mã cơ quan", "Agency code", 16),
        Column("Nhiệm vụ", "Obligation", 44, wrap=True),
        Column("Kỳ báo cáo", "Period", 12),
        Column("Hạn nộp (trước ngày)", "Due (before)", 14, DATE_FORMAT),
        Column("Tình trạng", "Status", 20, wrap=True),
        Column("Mức đôn đốc", "Escalation level", 11, INTEGER_FORMAT),
    ]
    rows = [
        (
            number,
            missing.agency_name,
            missing.agency,
            missing.obligation_title,
            missing.period_label,
            _due(report, missing.due_at),
            status_label(missing.status, locale),
            missing.escalation_level,
        )
        for number, missing in enumerate(report.missing, start=1)
    ]
    _sheet(workbook, text(locale, "Chưa nộp", "Missing"), columns, rows, locale)


def _narratives(workbook: Workbook, report: ConsolidatedReport, locale: str) -> None:
    columns = [
        Column("STT", "No.", 6),
        Column("Cơ quan", "Agency", 30, wrap=True),
        Column("Nhiệm vụ", "Obligation", 34, wrap=True),
        Column("Kỳ báo cáo", "Period", 12),
        Column("Thời điểm nộp", "Received", 17, DATE_TIME_FORMAT),
        Column("Nội dung báo cáo", "Summary", 80, wrap=True),
    ]
    rows = [
        (
            number,
            narrative.agency_name,
            narrative.obligation_title,
            narrative.period_label,
            _local_naive(report, narrative.submitted_at),
            narrative.summary,
        )
        for number, narrative in enumerate(report.narratives, start=1)
    ]
    _sheet(workbook, text(locale, "Nội dung", "Narratives"), columns, rows, locale)


def workbook_bytes(report: ConsolidatedReport, locale: str = "vi") -> bytes:
    workbook = Workbook()
    workbook.remove(workbook.active)
    workbook.properties.title = f"{report.document_number}: {report.title}"
    workbook.properties.creator = "Accord"
    workbook.properties.created = report.as_of.astimezone(UTC).replace(tzinfo=None)
    _summary(workbook, report, locale)
    _compliance(workbook, report, locale)
    _agencies(workbook, report, locale)
    _indicators(workbook, report, locale)
    _missing(workbook, report, locale)
    _narratives(workbook, report, locale)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
