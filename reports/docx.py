"""The report as a DOCX draft "Báo cáo kết quả …" laid out after Decree 30/2020/NĐ-CP
(python-docx): issuing body and national motto block, number and date line, title, sections,
tables and charts, for the aggregator to edit and sign.

The layout follows the decree's Appendix I: A4, margins 20 mm top and bottom, 30 mm left, 15 mm
right; Times New Roman, 14 pt body (tables 12 pt); the issuing body on the left (the superior
body in capitals, the issuing unit in bold capitals, a short line under it), the motto on the
right (bold, underlined); "Số: …/BC-SNV" under the issuing body and the place-and-date line in
italics under the motto; the title centred in bold; "Nơi nhận:" and the signature block at the
end. What only the aggregator knows — the number, the day, the signer — is left as "…". The
report is issued by the aggregator (Sở Nội vụ, DOMAIN.md: every report goes "qua Sở Nội vụ")
under the province's People's Committee.

Sections: I. compliance (the sentence of totals, the table per agency, the exceptions, the
charts); II. the consolidated indicators, one table per obligation; III. the agencies that have
not reported; IV. the agencies' own summaries, the starting text of the consolidation.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from docx import Document as new_document
from docx.document import Document
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Mm, Pt
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph

from activities.models import Ratio
from agreements.models import IndicatorKind
from reports.charts import escalation_chart, on_time_chart, state_heatmap
from reports.export_labels import (
    agency_names,
    day,
    due_day,
    is_english,
    moment,
    number,
    percent,
    status_label,
    task_owner,
    text,
    value_text,
)
from reports.model import ComplianceStatus, ConsolidatedIndicator, ConsolidatedReport

FONT = "Times New Roman"
BODY_PT = 14
HEADER_PT = 13
TABLE_PT = 12
TEXT_WIDTH_CM = 16.5
"""A4 (21 cm) less the 3 cm left and 1.5 cm right margins."""
CHART_WIDTH_CM = 16.0
BLANK = "…"


def _font(run_or_style: object, size: float | None = None) -> None:
    """Times New Roman for every script (Word picks the east-Asian and complex-script font
    separately, and Vietnamese letters fall in several of its ranges)."""
    font = run_or_style.font  # type: ignore[attr-defined]
    font.name = FONT
    if size is not None:
        font.size = Pt(size)
    element = run_or_style.element  # type: ignore[attr-defined]
    properties = element.get_or_add_rPr()
    fonts = properties.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        properties.insert(0, fonts)
    for attribute in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):
        fonts.set(qn(attribute), FONT)


def _paragraph(
    container: Document | _Cell,
    content: str = "",
    *,
    size: float = BODY_PT,
    bold: bool = False,
    italic: bool = False,
    underline: bool = False,
    align: WD_ALIGN_PARAGRAPH | None = None,
    indent: bool = False,
    before: float = 0,
    after: float = 6,
    keep: bool = False,
) -> Paragraph:
    """A paragraph of the body; `keep`: on the same page as the next one (headings)."""
    paragraph = container.add_paragraph()
    if content:
        _run(paragraph, content, size=size, bold=bold, italic=italic, underline=underline)
    if align is not None:
        paragraph.alignment = align
    fmt = paragraph.paragraph_format
    fmt.space_before = Pt(before)
    fmt.space_after = Pt(after)
    if indent:
        fmt.first_line_indent = Cm(1.27)
    if keep:
        fmt.keep_with_next = True
    return paragraph


def _run(
    paragraph: Paragraph,
    content: str,
    *,
    size: float = BODY_PT,
    bold: bool = False,
    italic: bool = False,
    underline: bool = False,
) -> None:
    run = paragraph.add_run(content)
    _font(run, size)
    run.bold = bold
    run.italic = italic
    run.underline = underline


def _line_under(container: Document | _Cell, side_indent_cm: float) -> None:
    """A short centred line (the decree's line under the issuing unit and the title): an empty
    paragraph's bottom border, as wide as the column less the indents."""
    paragraph = container.add_paragraph()
    fmt = paragraph.paragraph_format
    fmt.left_indent = Cm(side_indent_cm)
    fmt.right_indent = Cm(side_indent_cm)
    fmt.space_before = Pt(0)
    fmt.space_after = Pt(0)
    fmt.line_spacing = Pt(2)
    borders = OxmlElement("w:pBdr")
    bottom = OxmlElement("w:bottom")
    for key, value in (("w:val", "single"), ("w:sz", "6"), ("w:space", "1"), ("w:color", "000000")):
        bottom.set(qn(key), value)
    borders.append(bottom)
    paragraph._p.get_or_add_pPr().append(borders)


def _first_paragraph(cell: _Cell) -> Paragraph:
    paragraph: Paragraph = cell.paragraphs[0]
    return paragraph


def _cell_text(
    cell: _Cell,
    content: str,
    *,
    size: float = TABLE_PT,
    bold: bool = False,
    italic: bool = False,
    underline: bool = False,
    align: WD_ALIGN_PARAGRAPH = WD_ALIGN_PARAGRAPH.CENTER,
    first: bool = False,
) -> Paragraph:
    paragraph = _first_paragraph(cell) if first else cell.add_paragraph()
    _run(paragraph, content, size=size, bold=bold, italic=italic, underline=underline)
    paragraph.alignment = align
    paragraph.paragraph_format.space_after = Pt(0)
    paragraph.paragraph_format.space_before = Pt(0)
    return paragraph


def _no_borders(table: Table) -> None:
    properties = table._tbl.tblPr
    borders = OxmlElement("w:tblBorders")
    for side in ("top", "left", "bottom", "right", "insideH", "insideV"):
        border = OxmlElement(f"w:{side}")
        border.set(qn("w:val"), "nil")
        borders.append(border)
    properties.append(borders)


def _widths(table: Table, widths_cm: Sequence[float]) -> None:
    """Column widths, on the grid (LibreOffice reads these) and on every cell (Word does)."""
    table.autofit = False
    for column, width in zip(table.columns, widths_cm, strict=True):
        column.width = Cm(width)
    for row in table.rows:
        for cell, width in zip(row.cells, widths_cm, strict=True):
            cell.width = Cm(width)


def _repeat_header(table: Table) -> None:
    """The header row again on every page, and no row split across two pages."""
    for index, row in enumerate(table.rows):
        properties = row._tr.get_or_add_trPr()
        keep = OxmlElement("w:cantSplit")
        keep.set(qn("w:val"), "true")
        properties.append(keep)
        if index == 0:
            header = OxmlElement("w:tblHeader")
            header.set(qn("w:val"), "true")
            properties.append(header)


def _data_table(
    document: Document,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    widths_cm: Sequence[float],
    *,
    left_columns: Sequence[int] = (1,),
) -> Table:
    """A grid table: a bold header row repeated on every page, then the rows; the columns in
    `left_columns` are aligned left (names, titles), the others centred (figures)."""
    table: Table = document.add_table(rows=1 + len(rows), cols=len(headers))
    table.style = document.styles["Table Grid"]
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for cell, header in zip(table.rows[0].cells, headers, strict=True):
        _cell_text(cell, header, bold=True, first=True)
    for row, values in zip(table.rows[1:], rows, strict=True):
        for index, (cell, value) in enumerate(zip(row.cells, values, strict=True)):
            align = WD_ALIGN_PARAGRAPH.LEFT if index in left_columns else WD_ALIGN_PARAGRAPH.CENTER
            _cell_text(cell, value, align=align, first=True)
    _widths(table, widths_cm)
    _repeat_header(table)
    document.add_paragraph().paragraph_format.space_after = Pt(0)
    return table


# --------------------------------------------------------------------------------------------
# The parts of the document


def _page(document: Document) -> None:
    section = document.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width = Mm(210)
    section.page_height = Mm(297)
    section.top_margin = Mm(20)
    section.bottom_margin = Mm(20)
    section.left_margin = Mm(30)
    section.right_margin = Mm(15)
    normal = document.styles["Normal"]
    _font(normal, BODY_PT)
    normal.paragraph_format.space_after = Pt(6)
    normal.paragraph_format.line_spacing = 1.15


def _heading_block(document: Document, report: ConsolidatedReport, locale: str) -> None:
    """The decree's header: issuing body | motto, then number | place and date."""
    province = report.province or BLANK
    table = document.add_table(rows=2, cols=2)
    _no_borders(table)
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    left, right = table.rows[0].cells
    superior = text(
        locale, f"UBND TỈNH {province.upper()}", f"PEOPLE'S COMMITTEE OF {province.upper()}"
    )
    _cell_text(left, superior, size=HEADER_PT, first=True)
    _cell_text(
        left, text(locale, "SỞ NỘI VỤ", "DEPARTMENT OF HOME AFFAIRS"), size=HEADER_PT, bold=True
    )
    _line_under(left, 2.0)
    _cell_text(
        right,
        text(locale, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "SOCIALIST REPUBLIC OF VIETNAM"),
        size=HEADER_PT - 1 if not is_english(locale) else HEADER_PT,
        bold=True,
        first=True,
    )
    _cell_text(
        right,
        text(locale, "Độc lập - Tự do - Hạnh phúc", "Independence - Freedom - Happiness"),
        size=BODY_PT,
        bold=True,
        underline=True,
    )
    number_cell, date_cell = table.rows[1].cells
    _cell_text(
        number_cell,
        text(locale, f"Số: {BLANK}/BC-SNV", f"No.: {BLANK}/BC-SNV"),
        size=HEADER_PT,
        first=True,
    )
    _cell_text(
        date_cell,
        text(
            locale,
            f"{province}, ngày {BLANK} tháng {BLANK} năm {BLANK}",
            f"{province}, date {BLANK}",
        ),
        size=BODY_PT,
        italic=True,
        first=True,
    )
    for cell in table.rows[1].cells:
        _first_paragraph(cell).paragraph_format.space_before = Pt(6)
    _widths(table, (6.3, 10.2))


def _title(document: Document, report: ConsolidatedReport, locale: str) -> None:
    _paragraph(
        document, text(locale, "BÁO CÁO", "REPORT"), bold=True, align=WD_ALIGN_PARAGRAPH.CENTER,
        before=18, after=0,
    )  # fmt: skip
    subject = text(
        locale,
        f"Kết quả thực hiện {_object_vi(report.title)} ({report.document_number})",
        f"Results of {report.title} ({report.document_number})",
    )
    if report.period:
        subject += text(
            locale, f", kỳ báo cáo {report.period}", f", reporting period {report.period}"
        )
    _paragraph(document, subject, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER, after=0)
    _line_under(document, 6.5)
    _paragraph(document, "", after=6)


def _object_vi(title: str) -> str:
    """An agreement's title as the object of "Kết quả thực hiện …": in lower case as the title
    of an administrative report writes it ("… chương trình phối hợp …"), and without a leading
    "Thực hiện" of its own, which would say it twice."""
    words = title.strip()
    if words.casefold().startswith("thực hiện "):
        words = words[len("thực hiện ") :].lstrip()
    return words[:1].lower() + words[1:]


def _section(document: Document, heading: str) -> None:
    _paragraph(document, heading, bold=True, before=6, after=6, keep=True)


def _subheading(document: Document, heading: str) -> None:
    _paragraph(document, heading, bold=True, italic=True, keep=True)


def _picture(document: Document, png: bytes, caption: str) -> None:
    document.add_picture(io.BytesIO(png), width=Cm(CHART_WIDTH_CM))
    document.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER
    document.paragraphs[-1].paragraph_format.keep_with_next = True
    _paragraph(document, caption, size=12, italic=True, align=WD_ALIGN_PARAGRAPH.CENTER)


def _compliance(document: Document, report: ConsolidatedReport, locale: str) -> None:
    totals = report.totals
    counts = totals.counts
    _section(
        document,
        text(
            locale,
            "I. TÌNH HÌNH THỰC HIỆN CHẾ ĐỘ BÁO CÁO",
            "I. COMPLIANCE WITH THE REPORTING OBLIGATIONS",
        ),
    )
    as_of = moment(report, report.as_of)
    agencies = len(report.agencies)
    S = ComplianceStatus
    rate = percent(totals.on_time_rate, locale)
    # Nothing due: no rate to give (never 0%).
    rate_vi = "" if totals.on_time_rate is None else f" (tỷ lệ đúng hạn {rate})"
    rate_en = "" if totals.on_time_rate is None else f" (on-time rate {rate})"
    summary = text(
        locale,
        f"Tính đến {as_of}, {agencies} cơ quan, đơn vị có {totals.tasks} nhiệm vụ báo cáo; "
        f"{totals.due} báo cáo đã đến hạn, trong đó {totals.on_time} báo cáo đúng hạn"
        f"{rate_vi}, {counts[S.LATE]} báo cáo "
        f"trễ hạn, {counts[S.OVERDUE]} báo cáo quá hạn chưa nộp, {counts[S.NOT_DONE]} báo cáo "
        f"không nộp; {counts[S.WAIVED]} nhiệm vụ được miễn, {counts[S.EXTENDED]} nhiệm vụ được "
        f"gia hạn và {counts[S.NOT_YET_DUE]} nhiệm vụ chưa đến hạn.",
        f"As of {as_of}, {agencies} agencies have {totals.tasks} reporting tasks; "
        f"{totals.due} reports were due, of which {totals.on_time} arrived on time"
        f"{rate_en}, {counts[S.LATE]} late, "
        f"{counts[S.OVERDUE]} are overdue and {counts[S.NOT_DONE]} were not submitted; "
        f"{counts[S.WAIVED]} tasks were waived, {counts[S.EXTENDED]} extended and "
        f"{counts[S.NOT_YET_DUE]} are not yet due.",
    )
    _paragraph(document, summary, indent=True, align=WD_ALIGN_PARAGRAPH.JUSTIFY)
    if report.agencies:
        _subheading(
            document,
            text(locale, "1. Tình hình nộp báo cáo của từng cơ quan, đơn vị", "1. Per agency"),
        )
        headers = [
            text(locale, "STT", "No."),
            text(locale, "Cơ quan, đơn vị", "Agency"),
            text(locale, "Đã đến hạn", "Due"),
            status_label(S.ON_TIME, locale),
            status_label(S.LATE, locale),
            text(locale, "Quá hạn, không nộp", "Missing"),
            text(locale, "Tỷ lệ đúng hạn", "On-time rate"),
        ]
        rows = [
            [
                str(index),
                agency.agency_name,
                number(agency.due, locale),
                number(agency.counts.get(S.ON_TIME, 0), locale),
                number(agency.counts.get(S.LATE, 0), locale),
                number(agency.counts.get(S.OVERDUE, 0) + agency.counts.get(S.NOT_DONE, 0), locale),
                percent(agency.on_time_rate, locale),
            ]
            for index, agency in enumerate(report.agencies, start=1)
        ]
        rows.append(
            [
                "",
                text(locale, "Tổng cộng", "Total"),
                number(totals.due, locale),
                number(totals.on_time, locale),
                number(counts[S.LATE], locale),
                number(counts[S.OVERDUE] + counts[S.NOT_DONE], locale),
                percent(totals.on_time_rate, locale),
            ]
        )
        table = _data_table(document, headers, rows, (1.3, 5.5, 1.9, 1.9, 1.9, 2.0, 2.0))
        for cell in table.rows[-1].cells:
            for run in cell.paragraphs[0].runs:
                run.bold = True
    _exceptions(document, report, locale)
    _subheading(document, text(locale, "3. Biểu đồ", "3. Charts"))
    _picture(
        document,
        on_time_chart(report, locale),
        text(locale, "Biểu đồ 1. Tỷ lệ nộp báo cáo đúng hạn", "Chart 1. On-time rate"),
    )
    _picture(
        document,
        state_heatmap(report, locale),
        text(locale, "Biểu đồ 2. Tình hình nộp báo cáo theo kỳ", "Chart 2. Reports by period"),
    )
    _picture(
        document,
        escalation_chart(report, locale),
        text(locale, "Biểu đồ 3. Mức đôn đốc đã áp dụng", "Chart 3. Escalation levels reached"),
    )


def _exceptions(document: Document, report: ConsolidatedReport, locale: str) -> None:
    """Every task that is neither on time nor simply not yet due, with what explains it."""
    S = ComplianceStatus
    shown = [task for task in report.tasks if task.status not in (S.ON_TIME, S.NOT_YET_DUE)]
    _subheading(
        document,
        text(
            locale,
            "2. Các trường hợp trễ hạn, quá hạn, được miễn, được gia hạn",
            "2. Late, overdue, waived and extended tasks",
        ),
    )
    if not shown:
        _paragraph(
            document,
            text(locale, "Không có trường hợp nào.", "None."),
            indent=True,
        )
        return
    rows = []
    for index, task in enumerate(shown, start=1):
        if task.status is S.LATE:
            received, days = moment(report, task.submitted_at), task.late_working_days
            detail = text(
                locale,
                f"Nộp {received}, trễ {days} ngày làm việc",
                f"Received {received}, {days} working days late",
            )
        elif task.status is S.WAIVED:
            detail = task.waiver_reason or ""
        elif task.status is S.EXTENDED:
            detail = text(
                locale,
                f"Gia hạn đến trước ngày {day(report, task.extended_to)}",
                f"Extended to before {day(report, task.extended_to)}",
            )
        elif task.escalation_level:
            detail = text(
                locale,
                f"Đã đôn đốc mức {task.escalation_level}",
                f"Escalated to level {task.escalation_level}",
            )
        elif task.due_at is None:
            # An obligation without a date, closed at the end of the agreement's period.
            detail = text(locale, "Không có hạn; hết kỳ chưa nộp", "No deadline; not received")
        else:
            detail = ""
        rows.append(
            [
                str(index),
                task_owner(task, locale),
                f"{task.obligation_title} ({task.period_label})",
                due_day(report, task.due_at),
                status_label(task.status, locale),
                detail,
            ]
        )
    headers = [
        text(locale, "STT", "No."),
        text(locale, "Cơ quan, đơn vị", "Agency"),
        text(locale, "Nhiệm vụ (kỳ)", "Task (period)"),
        text(locale, "Hạn (trước ngày)", "Due (before)"),
        text(locale, "Tình trạng", "Status"),
        text(locale, "Ghi chú", "Note"),
    ]
    _data_table(document, headers, rows, (1.3, 3.3, 4.0, 2.6, 2.3, 3.0), left_columns=(1, 2, 5))


def _result(indicator: ConsolidatedIndicator, locale: str) -> str:
    if indicator.kind is IndicatorKind.COUNT:
        return "" if indicator.count is None else number(indicator.count, locale)
    if indicator.kind is IndicatorKind.RATIO:
        if indicator.done is None or indicator.total is None:
            return ""
        return value_text(Ratio(done=indicator.done, total=indicator.total), locale)
    if indicator.kind is IndicatorKind.BREAKDOWN:
        if indicator.count is None:
            return ""
        parts = value_text(indicator.breakdown or {}, locale)
        return text(
            locale,
            f"{number(indicator.count, locale)}, gồm: {parts}",
            f"{number(indicator.count, locale)}: {parts}",
        )
    return text(locale, "(tổng hợp từ nội dung các cơ quan)", "(see the agencies' texts)")


def _indicators(document: Document, report: ConsolidatedReport, locale: str) -> None:
    _section(
        document,
        text(locale, "II. KẾT QUẢ CÁC CHỈ TIÊU", "II. CONSOLIDATED INDICATORS"),
    )
    if not report.indicators:
        _paragraph(
            document,
            text(locale, "Không có chỉ tiêu nào trong kỳ.", "No indicator in the period."),
            indent=True,
        )
        return
    obligations: dict[str, list[ConsolidatedIndicator]] = {}
    for indicator in report.indicators:
        obligations.setdefault(indicator.obligation_title, []).append(indicator)
    headers = [
        text(locale, "STT", "No."),
        text(locale, "Chỉ tiêu", "Indicator"),
        text(locale, "Kết quả tổng hợp", "Consolidated"),
        text(locale, "Số liệu của các cơ quan", "Per agency"),
        text(locale, "Chưa báo cáo", "Not reported"),
    ]
    for number_, (title, indicators) in enumerate(obligations.items(), start=1):
        _subheading(document, f"{number_}. {title}")
        rows = [
            [
                str(index),
                indicator.label,
                _result(indicator, locale) or text(locale, "Chưa có số liệu", "No figures yet"),
                "\n".join(
                    f"{value.agency_name}: {value_text(value.value, locale)}"
                    for value in indicator.per_agency
                ),
                "\n".join(agency_names(report, indicator.missing)),
            ]
            for index, indicator in enumerate(indicators, start=1)
        ]
        _data_table(document, headers, rows, (1.3, 3.5, 3.5, 5.0, 3.2), left_columns=(1, 2, 3, 4))


def _missing(document: Document, report: ConsolidatedReport, locale: str) -> None:
    _section(
        document,
        text(
            locale,
            "III. CƠ QUAN, ĐƠN VỊ CHƯA NỘP BÁO CÁO",
            "III. AGENCIES THAT HAVE NOT REPORTED",
        ),
    )
    if not report.missing:
        _paragraph(
            document,
            text(
                locale,
                "Không có cơ quan, đơn vị nào chưa nộp báo cáo đã đến hạn.",
                "Every report that was due has arrived.",
            ),
            indent=True,
        )
        return
    headers = [
        text(locale, "STT", "No."),
        text(locale, "Cơ quan, đơn vị", "Agency"),
        text(locale, "Nhiệm vụ", "Obligation"),
        text(locale, "Kỳ", "Period"),
        text(locale, "Hạn (trước ngày)", "Due (before)"),
        text(locale, "Tình trạng", "Status"),
        text(locale, "Mức đôn đốc", "Escalation"),
    ]
    rows = [
        [
            str(index),
            missing.agency_name,
            missing.obligation_title,
            missing.period_label,
            due_day(report, missing.due_at),
            status_label(missing.status, locale),
            str(missing.escalation_level),
        ]
        for index, missing in enumerate(report.missing, start=1)
    ]
    _data_table(document, headers, rows, (1.3, 3.3, 3.5, 2.0, 2.6, 2.0, 1.8), left_columns=(1, 2))


def _narratives(document: Document, report: ConsolidatedReport, locale: str) -> None:
    _section(
        document,
        text(
            locale,
            "IV. TÓM TẮT BÁO CÁO CỦA CÁC CƠ QUAN, ĐƠN VỊ",
            "IV. THE AGENCIES' SUMMARIES",
        ),
    )
    if not report.narratives:
        _paragraph(
            document,
            text(locale, "Chưa có báo cáo nào.", "No report has arrived yet."),
            indent=True,
        )
        return
    for index, narrative in enumerate(report.narratives, start=1):
        paragraph = _paragraph(document, indent=True, align=WD_ALIGN_PARAGRAPH.JUSTIFY, after=3)
        _run(paragraph, f"{index}. {narrative.agency_name}", bold=True)
        _run(
            paragraph,
            text(
                locale,
                f" ({narrative.obligation_title}, kỳ {narrative.period_label}, "
                f"nộp {moment(report, narrative.submitted_at)}): ",
                f" ({narrative.obligation_title}, period {narrative.period_label}, "
                f"received {moment(report, narrative.submitted_at)}): ",
            ),
            italic=True,
        )
        _run(paragraph, narrative.summary)


def _closing(document: Document, locale: str) -> None:
    _paragraph(document, "", after=6)
    table = document.add_table(rows=1, cols=2)
    _no_borders(table)
    recipients, signature = table.rows[0].cells
    _cell_text(
        recipients,
        text(locale, "Nơi nhận:", "Recipients:"),
        size=12,
        bold=True,
        italic=True,
        align=WD_ALIGN_PARAGRAPH.LEFT,
        first=True,
    )
    for line in (
        text(locale, "- UBND tỉnh (để báo cáo);", "- Provincial People's Committee;"),
        text(locale, f"- {BLANK};", f"- {BLANK};"),
        text(locale, "- Lưu: VT, …", "- Archive: …"),
    ):
        _cell_text(recipients, line, size=11, align=WD_ALIGN_PARAGRAPH.LEFT)
    _cell_text(signature, text(locale, "GIÁM ĐỐC", "DIRECTOR"), size=BODY_PT, bold=True, first=True)
    _cell_text(
        signature, text(locale, "(Ký, ghi rõ họ tên, đóng dấu)", "(Signature, full name, seal)"),
        size=BODY_PT, italic=True,
    )  # fmt: skip
    for _ in range(3):
        _cell_text(signature, "", size=BODY_PT)
    _cell_text(signature, BLANK, size=BODY_PT, bold=True)
    _widths(table, (7.5, 9.0))


def document_bytes(report: ConsolidatedReport, locale: str = "vi") -> bytes:
    document = new_document()
    _page(document)
    properties = document.core_properties
    properties.title = (
        text(locale, "Báo cáo kết quả thực hiện", "Report on") + f" {report.document_number}"
    )
    properties.author = "Accord"
    properties.created = report.as_of
    properties.modified = report.as_of
    properties.last_modified_by = "Accord"
    properties.revision = 1
    _heading_block(document, report, locale)
    _title(document, report, locale)
    _compliance(document, report, locale)
    _indicators(document, report, locale)
    _missing(document, report, locale)
    _narratives(document, report, locale)
    _closing(document, locale)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
