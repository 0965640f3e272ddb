"""The report's exports read back as an office would open them: the XLSX with openpyxl, the
DOCX with python-docx, the charts as PNG images (decoded, pixels included). The report is the
hand-built sample of sample_report.py, whose figures are listed there."""

from __future__ import annotations

import io
import struct
from datetime import datetime
from functools import cache

import numpy as np
import pytest
from docx import Document
from docx.document import Document as DocxDocument
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.shared import Cm, Mm, Pt
from docx.table import _Cell
from matplotlib.image import imread
from openpyxl import Workbook, load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from sample_report import empty_report, sample_report

from reports.charts import (
    STATUS_COLOURS,
    escalation_chart,
    heatmap_rows,
    on_time_chart,
    state_heatmap,
    worst_status,
)
from reports.docx import document_bytes
from reports.model import ComplianceStatus
from reports.xlsx import workbook_bytes

S = ComplianceStatus
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SHEETS_VI = [
    "Tổng hợp",
    "Tình hình nộp báo cáo",
    "Theo cơ quan",
    "Chỉ tiêu",
    "Chưa nộp",
    "Nội dung",
]
SHEETS_EN = ["Summary", "Compliance", "By agency", "Indicators", "Missing", "Narratives"]
AGENCY_NAMES = [
    "Sở Nội vụ",
    "Thanh tra tỉnh",
    "Sở Tài nguyên và Môi trường",
    "Ban Tuyên giáo và Dân vận Tỉnh ủy",
    "Báo Quảng Bình",
    "Ủy ban nhân dân thành phố Đồng Hới",
    "Đài Phát thanh và Truyền hình tỉnh",
]


# --------------------------------------------------------------------------------------------
# Charts


def _size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIGNATURE
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def _colours(png: bytes) -> set[tuple[int, ...]]:
    pixels = (imread(io.BytesIO(png), format="png")[:, :, :3] * 255).round().astype(np.uint8)
    return {tuple(int(c) for c in colour) for colour in np.unique(pixels.reshape(-1, 3), axis=0)}


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return (int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16))


def test_charts_are_pngs_sized_for_a_page_and_a_mail() -> None:
    report = sample_report()
    # 900 px wide; as tall as the rows need (7 agencies).
    assert _size(on_time_chart(report)) == (900, 424)
    assert _size(state_heatmap(report)) == (900, 534)
    assert _size(escalation_chart(report)) == (900, 360)
    assert _size(on_time_chart(report, "en")) == (900, 424)


def test_charts_are_deterministic_and_carry_no_software_or_date() -> None:
    report = sample_report()
    for chart in (on_time_chart, state_heatmap, escalation_chart):
        first, second = chart(report), chart(report)
        assert first == second
        assert b"matplotlib" not in first
        assert b"tIME" not in first
        assert b"Software" not in first


def test_a_report_with_nothing_due_gives_charts_that_say_so() -> None:
    report = empty_report()
    for chart in (on_time_chart, state_heatmap, escalation_chart):
        assert _size(chart(report)) == (900, 200)
        assert _size(chart(report, "en")) == (900, 200)
    # No status is drawn: none of the status colours is on the image (the light grey of "not
    # yet due" is left out: the text's anti-aliasing may make it).
    drawn = _colours(state_heatmap(report))
    painted = {
        _rgb(colour) for status, colour in STATUS_COLOURS.items() if status is not S.NOT_YET_DUE
    }
    assert painted & drawn == set()


def test_the_heat_map_shows_each_agencys_worst_status_per_period() -> None:
    report = sample_report()
    rows = heatmap_rows(report)
    assert [row.agency_name for row in rows] == AGENCY_NAMES
    assert [[worst_status(cell) for cell in row.cells] for row in rows] == [
        [S.ON_TIME, S.ON_TIME, S.NOT_YET_DUE],
        [S.LATE, S.ON_TIME, S.NOT_YET_DUE],
        [S.ON_TIME, S.OVERDUE, S.NOT_YET_DUE],
        [S.WAIVED, S.EXTENDED, S.NOT_YET_DUE],
        [S.NOT_DONE, S.LATE, S.NOT_YET_DUE],
        # On time for one obligation, overdue for the other: the cell is overdue.
        [S.OVERDUE, S.ON_TIME, S.NOT_YET_DUE],
        [None, None, None],
    ]
    assert [len(cell) for cell in rows[5].cells] == [2, 1, 1]
    # Every status of the sample is painted in its colour (the legend and the cells);
    # suspended and withdrawn, which no task of the sample has, are left out of the legend.
    drawn = _colours(state_heatmap(report))
    shown = [s for s in STATUS_COLOURS if s not in (S.SUSPENDED, S.WITHDRAWN)]
    assert {_rgb(STATUS_COLOURS[s]) for s in shown} <= drawn
    assert {_rgb(STATUS_COLOURS[S.SUSPENDED]), _rgb(STATUS_COLOURS[S.WITHDRAWN])} & drawn == set()


def test_the_on_time_chart_draws_bars_only_where_something_was_due() -> None:
    bar = _rgb("#1565c0")
    assert bar in _colours(on_time_chart(sample_report()))
    assert bar not in _colours(on_time_chart(empty_report()))


# --------------------------------------------------------------------------------------------
# XLSX


@cache
def _xlsx(locale: str, empty: bool) -> bytes:
    return workbook_bytes(empty_report() if empty else sample_report(), locale)


def _workbook(locale: str = "vi", empty: bool = False) -> Workbook:
    return load_workbook(io.BytesIO(_xlsx(locale, empty)))


def _wall(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A spreadsheet's wall-clock time (in the report's zone; a cell has no time zone)."""
    return datetime(year, month, day, hour, minute)  # noqa: DTZ001


def _header(sheet: Worksheet) -> list[object]:
    return [cell.value for cell in sheet[1]]


def _column(sheet: Worksheet, letter: str) -> list[object]:
    return [cell.value for cell in sheet[letter][1:]]


def test_the_workbook_has_one_sheet_per_table_each_with_a_frozen_header() -> None:
    workbook = _workbook()
    assert workbook.sheetnames == SHEETS_VI
    for sheet in workbook.worksheets:
        assert sheet.freeze_panes == "A2"
        assert sheet.auto_filter.ref == sheet.dimensions
        assert all(cell.font.b for cell in sheet[1])
        assert sheet.page_setup.orientation == "landscape"
    assert _workbook("en").sheetnames == SHEETS_EN


def test_the_summary_sheet_carries_the_totals_as_numbers() -> None:
    sheet = _workbook()["Tổng hợp"]
    assert _header(sheet) == ["Nội dung", "Giá trị"]
    values = {row[0].value: row[1] for row in sheet.iter_rows(min_row=2)}
    assert values["Văn bản"].value == "289/KH-UBND"
    assert values["Tỉnh"].value == "Quảng Bình"
    assert values["Kỳ báo cáo"].value == "Tất cả các kỳ"
    # 21/07/2025 02:00 UTC is 09:00 in Hà Nội.
    assert values["Số liệu tính đến"].value == _wall(2025, 7, 21, 9, 0)
    assert values["Số liệu tính đến"].number_format == "dd/mm/yyyy hh:mm"
    figures = {
        "Tổng số nhiệm vụ": 19,
        "Đúng hạn": 6,
        "Trễ hạn": 2,
        "Quá hạn, chưa nộp": 2,
        "Không nộp": 1,
        "Được miễn": 1,
        "Được gia hạn": 1,
        "Chưa đến hạn": 6,
        "Số báo cáo đã đến hạn": 11,
        "Số báo cáo đúng hạn": 6,
        "Nhiệm vụ phải đôn đốc mức 1": 2,
        "Nhiệm vụ phải đôn đốc mức 2": 1,
        "Nhiệm vụ phải đôn đốc mức 3": 1,
    }
    for label, figure in figures.items():
        assert values[label].value == figure, label
        assert values[label].data_type == "n"
        assert values[label].number_format == "#,##0"
    rate = values["Tỷ lệ đúng hạn"]
    assert rate.value == pytest.approx(6 / 11)
    assert rate.data_type == "n"
    assert rate.number_format == "0.0%"


def test_the_compliance_sheet_has_every_task_with_dates_in_the_reports_zone() -> None:
    sheet = _workbook()["Tình hình nộp báo cáo"]
    assert _header(sheet) == [
        "STT",
        "Cơ quan",
        "Mã cơ quan",
        "Mục",
        "Nhiệm vụ",
        "Kỳ báo cáo",
        "Hạn nộp (trước ngày)",
        "Thời điểm nộp",
        "Tình trạng",
        "Số ngày trễ",
        "Mức đôn đốc",
        "Gia hạn đến (trước ngày)",
        "Lý do miễn",
        "Cơ quan phối hợp",
    ]
    assert sheet.max_row == 20
    assert _column(sheet, "A") == list(range(1, 20))
    rows = {(row[2].value, row[5].value, row[4].value[:14]): row for row in sheet.iter_rows(2)}
    first = rows["SO_NOI_VU", "2025-q1", "Báo cáo kết qu"]
    # Due 14/04 17:00 UTC = before 15/04/2025 in Hà Nội; received 10/04 20:00 UTC = 11/04 03:00.
    assert first[6].value == _wall(2025, 4, 15)
    assert first[6].is_date
    assert first[6].number_format == "dd/mm/yyyy"
    assert first[7].value == _wall(2025, 4, 11, 3, 0)
    assert first[7].number_format == "dd/mm/yyyy hh:mm"
    assert first[8].value == "Đúng hạn"
    late = rows["THANH_TRA", "2025-q1", "Báo cáo kết qu"]
    assert (late[8].value, late[9].value, late[9].data_type) == ("Trễ hạn", 3, "n")
    overdue = rows["UBND_DONG_HOI", "2025-q1", "Báo cáo công t"]
    assert (overdue[8].value, overdue[10].value, overdue[7].value) == ("Quá hạn, chưa nộp", 1, None)
    waived = rows["BAN_TGDV", "2025-q1", "Báo cáo kết qu"]
    assert (waived[8].value, waived[12].value) == (
        "Được miễn",
        "Đơn vị mới sáp nhập, chưa ổn định tổ chức",
    )
    extended = rows["BAN_TGDV", "2025-q2", "Báo cáo kết qu"]
    assert extended[8].value == "Được gia hạn"
    assert extended[11].value == _wall(2025, 7, 31)
    assert extended[11].number_format == "dd/mm/yyyy"
    assert sheet.column_dimensions["B"].width == 28
    assert sheet.column_dimensions["E"].width == 36


def test_the_agency_sheet_counts_every_status_and_the_rate_as_a_percentage() -> None:
    sheet = _workbook()["Theo cơ quan"]
    assert _header(sheet) == [
        "STT",
        "Cơ quan",
        "Mã cơ quan",
        "Đúng hạn",
        "Trễ hạn",
        "Quá hạn, chưa nộp",
        "Không nộp",
        "Được miễn",
        "Được gia hạn",
        "Chưa đến hạn",
        "Đã đến hạn",
        "Tỷ lệ đúng hạn",
        "Mức đôn đốc cao nhất",
    ]
    assert _column(sheet, "B") == AGENCY_NAMES
    assert [[cell.value for cell in row[3:11]] for row in sheet.iter_rows(2)] == [
        [2, 0, 0, 0, 0, 0, 1, 2],
        [1, 1, 0, 0, 0, 0, 1, 2],
        [1, 0, 1, 0, 0, 0, 1, 2],
        [0, 0, 0, 0, 1, 1, 1, 0],
        [0, 1, 0, 1, 0, 0, 1, 2],
        [2, 0, 1, 0, 0, 0, 1, 3],
        [0, 0, 0, 0, 0, 0, 0, 0],
    ]
    # Nothing due: no rate (an empty cell), never 0%.
    assert _column(sheet, "L") == [1.0, 0.5, 0.5, None, 0.0, pytest.approx(2 / 3), None]
    assert {cell.number_format for cell in sheet["L"][1:] if cell.value is not None} == {"0.0%"}
    assert _column(sheet, "M") == [0, 0, 2, 0, 3, 1, 0]


def test_the_indicator_sheet_gives_the_province_each_agency_and_who_did_not_report() -> None:
    sheet = _workbook()["Chỉ tiêu"]
    assert _header(sheet) == [
        "Nhiệm vụ",
        "Mã chỉ tiêu",
        "Chỉ tiêu",
        "Loại",
        "Cơ quan",
        "Mã cơ quan",
        "Lĩnh vực",
        "Số lượng",
        "Đã thực hiện",
        "Tổng số",
        "Tỷ lệ",
        "Nội dung",
        "Ghi chú",
    ]
    rows = [[cell.value for cell in row[1:]] for row in sheet.iter_rows(2)]
    by_code: dict[str, list[list[object]]] = {}
    for row in rows:
        by_code.setdefault(str(row[0]), []).append(row[3:])
    not_reported = "Chưa báo cáo (không tính là 0)"
    assert by_code["cong-dan-duoc-tiep"] == [
        ["Tổng hợp", None, None, 854, None, None, None, None, None],
        ["Sở Nội vụ", "SO_NOI_VU", None, 200, None, None, None, None, None],
        ["Thanh tra tỉnh", "THANH_TRA", None, 354, None, None, None, None, None],
        ["Ủy ban nhân dân thành phố Đồng Hới", "UBND_DONG_HOI", None, 300] + [None] * 5,
        ["Sở Tài nguyên và Môi trường", "SO_TNMT"] + [None] * 6 + [not_reported],
        ["Báo Quảng Bình", "BAO_QB"] + [None] * 6 + [not_reported],
    ]
    ratio = by_code["ho-so-dung-han"]
    assert ratio[0][:7] == [
        "Tổng hợp",
        None,
        None,
        None,
        728_000,
        756_000,
        pytest.approx(728 / 756),
    ]
    assert [row[4:6] for row in ratio[1:4]] == [
        [250_000, 260_000],
        [228_000, 236_000],
        [250_000, 260_000],
    ]
    province = [row for row in by_code["mo-hinh-dan-van-kheo"] if row[0] == "Tổng hợp"]
    assert [(row[2], row[3]) for row in province] == [
        ("Văn hóa – xã hội", 185),
        ("Kinh tế", 86),
        ("Quốc phòng – an ninh", 161),
        ("Hệ thống chính trị", 96),
        ("“04 không”", 33),
        ("Cộng", 561),
    ]
    assert [row[0] for row in by_code["mo-hinh-dan-van-kheo"] if row[8] == not_reported] == [
        "Thanh tra tỉnh",
        "Sở Tài nguyên và Môi trường",
        "Báo Quảng Bình",
    ]
    assert [(row[0], row[7]) for row in by_code["kien-nghi"][:2]] == [
        ("Sở Nội vụ", "Đề nghị bổ sung biên chế cho bộ phận một cửa."),
        ("Báo Quảng Bình", "Đề nghị cung cấp thông tin định kỳ cho báo chí."),
    ]
    # Nobody reported it: the province's row says so, with no figure.
    assert by_code["khieu-nai-da-giai-quyet"] == [
        ["Tổng hợp"] + [None] * 7 + ["Chưa có cơ quan nào báo cáo"],
        ["Ủy ban nhân dân thành phố Đồng Hới", "UBND_DONG_HOI"] + [None] * 6 + [not_reported],
    ]
    for row in sheet.iter_rows(2):
        if row[7].value is not None:
            assert row[7].data_type == "n"
            assert row[7].number_format == "#,##0"
        if row[10].value is not None:
            assert row[10].number_format == "0.0%"


def test_the_missing_and_narrative_sheets() -> None:
    workbook = _workbook()
    missing = workbook["Chưa nộp"]
    assert _header(missing) == [
        "STT",
        "Cơ quan",
        "Mã cơ quan",
        "Nhiệm vụ",
        "Kỳ báo cáo",
        "Hạn nộp (trước ngày)",
        "Tình trạng",
        "Mức đôn đốc",
    ]
    assert [[cell.value for cell in row[1:]] for row in missing.iter_rows(2)] == [
        [
            "Sở Tài nguyên và Môi trường",
            "SO_TNMT",
            "Báo cáo kết quả thực hiện công tác dân vận chính quyền hằng quý",
            "2025-q2",
            _wall(2025, 7, 15),
            "Quá hạn, chưa nộp",
            2,
        ],
        [
            "Báo Quảng Bình",
            "BAO_QB",
            "Báo cáo kết quả thực hiện công tác dân vận chính quyền hằng quý",
            "2025-q1",
            _wall(2025, 4, 15),
            "Không nộp",
            3,
        ],
        [
            "Ủy ban nhân dân thành phố Đồng Hới",
            "UBND_DONG_HOI",
            "Báo cáo công tác tiếp công dân, giải quyết khiếu nại, tố cáo",
            "2025-q1",
            _wall(2025, 4, 15),
            "Quá hạn, chưa nộp",
            1,
        ],
    ]
    narratives = workbook["Nội dung"]
    assert _header(narratives) == [
        "STT",
        "Cơ quan",
        "Nhiệm vụ",
        "Kỳ báo cáo",
        "Thời điểm nộp",
        "Nội dung báo cáo",
    ]
    assert _column(narratives, "B") == [
        "Sở Nội vụ",
        "Thanh tra tỉnh",
        "Báo Quảng Bình",
        "Ủy ban nhân dân thành phố Đồng Hới",
    ]
    assert _column(narratives, "E")[0] == _wall(2025, 7, 8, 10, 30)
    assert str(_column(narratives, "F")[3]).startswith("Duy trì mô hình “Chính quyền thân thiện")
    assert narratives["F2"].alignment.wrap_text
    assert narratives.column_dimensions["F"].width == 80
    # The long summary (4 lines at 84 characters a line) gets a row tall enough for it.
    assert narratives.row_dimensions[5].height == 64


def test_the_english_workbook_and_an_empty_report() -> None:
    english = _workbook("en")
    assert _header(english["Missing"])[:3] == ["No.", "Agency", "Agency code"]
    assert english["Compliance"]["I5"].value == "Late"
    empty = _workbook(empty=True)
    assert empty.sheetnames == SHEETS_VI
    for sheet in empty.worksheets[1:]:
        assert sheet.max_row == 1
        assert sheet.freeze_panes == "A2"
    summary = {row[0].value: row[1].value for row in empty["Tổng hợp"].iter_rows(min_row=2)}
    assert (summary["Tổng số nhiệm vụ"], summary["Tỷ lệ đúng hạn"]) == (0, None)
    assert summary["Kỳ báo cáo"] == "2025-q1"


# --------------------------------------------------------------------------------------------
# DOCX


@cache
def _docx(locale: str, empty: bool) -> bytes:
    return document_bytes(empty_report() if empty else sample_report(), locale)


def _document(locale: str = "vi", empty: bool = False) -> DocxDocument:
    return Document(io.BytesIO(_docx(locale, empty)))


def _texts(cell: _Cell) -> list[str]:
    return [paragraph.text for paragraph in cell.paragraphs]


def test_the_document_opens_with_the_decrees_header_block() -> None:
    document = _document()
    header = document.tables[0]
    left, right = header.rows[0].cells
    assert _texts(left) == ["UBND TỈNH QUẢNG BÌNH", "SỞ NỘI VỤ", ""]
    assert [run.bold for run in left.paragraphs[1].runs] == [True]
    assert _texts(right) == ["CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc"]
    motto = right.paragraphs[1].runs[0]
    assert (motto.bold, motto.underline) == (True, True)
    number, place = header.rows[1].cells
    assert _texts(number) == ["Số: …/BC-SNV"]
    assert _texts(place) == ["Quảng Bình, ngày … tháng … năm …"]
    assert place.paragraphs[0].runs[0].italic
    assert all(p.alignment == WD_ALIGN_PARAGRAPH.CENTER for p in right.paragraphs)


def test_the_title_sections_and_closing_blocks() -> None:
    document = _document()
    texts = [paragraph.text for paragraph in document.paragraphs]
    title = texts.index("BÁO CÁO")
    assert texts[title + 1] == (
        "Kết quả thực hiện kế hoạch thực hiện công tác dân vận của cơ quan hành chính nhà "
        "nước, chính quyền các cấp năm 2025 (289/KH-UBND)"
    )
    for paragraph in document.paragraphs[title : title + 2]:
        assert paragraph.alignment == WD_ALIGN_PARAGRAPH.CENTER
        assert all(run.bold for run in paragraph.runs)
    sections = [
        "I. TÌNH HÌNH THỰC HIỆN CHẾ ĐỘ BÁO CÁO",
        "II. KẾT QUẢ CÁC CHỈ TIÊU",
        "III. CƠ QUAN, ĐƠN VỊ CHƯA NỘP BÁO CÁO",
        "IV. TÓM TẮT BÁO CÁO CỦA CÁC CƠ QUAN, ĐƠN VỊ",
    ]
    positions = [texts.index(section) for section in sections]
    assert positions == sorted(positions)
    assert texts[positions[0] + 1] == (
        "Tính đến 21/07/2025 09:00, 7 cơ quan, đơn vị có 19 nhiệm vụ báo cáo; 11 báo cáo đã "
        "đến hạn, trong đó 6 báo cáo đúng hạn (tỷ lệ đúng hạn 54,5%), 2 báo cáo trễ hạn, 2 báo "
        "cáo quá hạn chưa nộp, 1 báo cáo không nộp; 1 nhiệm vụ được miễn, 1 nhiệm vụ được gia "
        "hạn và 6 nhiệm vụ chưa đến hạn."
    )
    narratives = [text for text in texts[positions[3] + 1 :] if text]
    assert narratives[0].startswith(
        "1. Sở Nội vụ (Báo cáo kết quả thực hiện công tác dân vận chính quyền hằng quý, kỳ "
        "2025-q2, nộp 08/07/2025 10:30): Đã tổ chức 04 hội nghị"
    )
    assert [text.split(" (")[0] for text in narratives] == [
        "1. Sở Nội vụ",
        "2. Thanh tra tỉnh",
        "3. Báo Quảng Bình",
        "4. Ủy ban nhân dân thành phố Đồng Hới",
    ]
    closing = document.tables[-1]
    recipients, signature = closing.rows[0].cells
    assert _texts(recipients) == ["Nơi nhận:", "- UBND tỉnh (để báo cáo);", "- …;", "- Lưu: VT, …"]
    assert _texts(signature)[0] == "GIÁM ĐỐC"
    assert _texts(signature)[-1] == "…"


def test_a_title_that_starts_with_thuc_hien_is_not_said_twice() -> None:
    report = sample_report().model_copy(
        update={"title": "Thực hiện công tác dân vận chính quyền năm 2025"}
    )
    texts = [p.text for p in Document(io.BytesIO(document_bytes(report))).paragraphs]
    assert texts[texts.index("BÁO CÁO") + 1].startswith(
        "Kết quả thực hiện công tác dân vận chính quyền năm 2025 ("
    )


def test_the_tables_have_header_rows_and_the_reports_figures() -> None:
    document = _document()
    # header, per agency, exceptions, indicators of two obligations, missing, closing
    assert len(document.tables) == 7
    agencies = document.tables[1]
    assert [cell.text for cell in agencies.rows[0].cells] == [
        "STT",
        "Cơ quan, đơn vị",
        "Đã đến hạn",
        "Đúng hạn",
        "Trễ hạn",
        "Quá hạn, không nộp",
        "Tỷ lệ đúng hạn",
    ]
    assert [[cell.text for cell in row.cells] for row in agencies.rows[1:]] == [
        ["1", "Sở Nội vụ", "2", "2", "0", "0", "100,0%"],
        ["2", "Thanh tra tỉnh", "2", "1", "1", "0", "50,0%"],
        ["3", "Sở Tài nguyên và Môi trường", "2", "1", "0", "1", "50,0%"],
        ["4", "Ban Tuyên giáo và Dân vận Tỉnh ủy", "0", "0", "0", "0", "–"],
        ["5", "Báo Quảng Bình", "2", "0", "1", "1", "0,0%"],
        ["6", "Ủy ban nhân dân thành phố Đồng Hới", "3", "2", "0", "1", "66,7%"],
        ["7", "Đài Phát thanh và Truyền hình tỉnh", "0", "0", "0", "0", "–"],
        ["", "Tổng cộng", "11", "6", "2", "3", "54,5%"],
    ]
    header_row = agencies.rows[0]._tr.trPr
    assert header_row is not None
    assert "w:tblHeader" in header_row.xml
    exceptions = document.tables[2]
    assert [row.cells[4].text for row in exceptions.rows[1:]] == [
        "Trễ hạn",
        "Quá hạn, chưa nộp",
        "Được miễn",
        "Được gia hạn",
        "Không nộp",
        "Trễ hạn",
        "Quá hạn, chưa nộp",
    ]
    assert exceptions.rows[1].cells[5].text == "Nộp 17/04/2025 09:00, trễ 3 ngày làm việc"
    assert exceptions.rows[4].cells[5].text == "Gia hạn đến trước ngày 31/07/2025"
    indicators = document.tables[3]
    assert [cell.text for cell in indicators.rows[0].cells] == [
        "STT",
        "Chỉ tiêu",
        "Kết quả tổng hợp",
        "Số liệu của các cơ quan",
        "Chưa báo cáo",
    ]
    assert [row.cells[2].text for row in indicators.rows[1:]] == [
        "854",
        "728.000/756.000 (96,3%)",
        "561, gồm: Văn hóa – xã hội: 185; Kinh tế: 86; Quốc phòng – an ninh: 161; Hệ thống "
        "chính trị: 96; “04 không”: 33",
        "(tổng hợp từ nội dung các cơ quan)",
    ]
    assert indicators.rows[1].cells[3].text == (
        "Sở Nội vụ: 200\nThanh tra tỉnh: 354\nỦy ban nhân dân thành phố Đồng Hới: 300"
    )
    assert indicators.rows[1].cells[4].text == "Sở Tài nguyên và Môi trường\nBáo Quảng Bình"
    assert [cell.text for cell in document.tables[4].rows[1].cells][1:3] == [
        "Đơn khiếu nại đã giải quyết",
        "Chưa có số liệu",
    ]
    missing = document.tables[5]
    assert [
        [row.cells[1].text, row.cells[5].text, row.cells[6].text] for row in missing.rows[1:]
    ] == [
        ["Sở Tài nguyên và Môi trường", "Quá hạn, chưa nộp", "2"],
        ["Báo Quảng Bình", "Không nộp", "3"],
        ["Ủy ban nhân dân thành phố Đồng Hới", "Quá hạn, chưa nộp", "1"],
    ]


def test_the_three_charts_are_inline_images_and_the_page_follows_the_decree() -> None:
    document = _document()
    assert len(document.inline_shapes) == 3
    assert [shape.width for shape in document.inline_shapes] == [Cm(16)] * 3
    images = [
        part.blob
        for part in document.part.related_parts.values()
        if part.content_type == "image/png"
    ]
    assert len(images) == 3
    assert all(image[:8] == PNG_SIGNATURE for image in images)
    section = document.sections[0]
    # In twentieths of a point, as Word stores them: A4, 20 mm top and bottom, 30 mm left,
    # 15 mm right.
    page = (section.page_width, section.page_height)
    assert [length.twips for length in page if length is not None] == [11906, 16838]
    margins = (section.top_margin, section.bottom_margin, section.left_margin, section.right_margin)
    assert [length.twips for length in margins if length is not None] == [1134, 1134, 1701, 850]
    assert [Mm(20).twips, Mm(30).twips, Mm(15).twips] == [1134, 1701, 850]
    normal = document.styles["Normal"].font
    assert (normal.name, normal.size) == ("Times New Roman", Pt(14))


def test_the_english_document_and_an_empty_report() -> None:
    english = _document("en")
    left, right = english.tables[0].rows[0].cells
    assert _texts(left)[:2] == ["PEOPLE'S COMMITTEE OF QUẢNG BÌNH", "DEPARTMENT OF HOME AFFAIRS"]
    assert _texts(right) == ["SOCIALIST REPUBLIC OF VIETNAM", "Independence - Freedom - Happiness"]
    assert "REPORT" in [paragraph.text for paragraph in english.paragraphs]
    empty = _document(empty=True)
    texts = [paragraph.text for paragraph in empty.paragraphs]
    assert _texts(empty.tables[0].rows[1].cells[1]) == ["…, ngày … tháng … năm …"]
    assert _texts(empty.tables[0].rows[0].cells[0])[0] == "UBND TỈNH …"
    assert texts[texts.index("BÁO CÁO") + 1].endswith("(289/KH-UBND), kỳ báo cáo 2025-q1")
    # Nothing was due: no rate at all, never 0%.
    assert texts[texts.index("I. TÌNH HÌNH THỰC HIỆN CHẾ ĐỘ BÁO CÁO") + 1] == (
        "Tính đến 21/07/2025 09:00, 0 cơ quan, đơn vị có 0 nhiệm vụ báo cáo; 0 báo cáo đã "
        "đến hạn, trong đó 0 báo cáo đúng hạn, 0 báo cáo trễ hạn, 0 báo cáo quá hạn chưa nộp, "
        "0 báo cáo không nộp; 0 nhiệm vụ được miễn, 0 nhiệm vụ được gia hạn và 0 nhiệm vụ chưa "
        "đến hạn."
    )
    assert "Không có cơ quan, đơn vị nào chưa nộp báo cáo đã đến hạn." in texts
    assert "Không có chỉ tiêu nào trong kỳ." in texts
    assert "Không có trường hợp nào." in texts
    # The header block and the closing block only; the charts say that nothing was due.
    assert len(empty.tables) == 2
    assert len(empty.inline_shapes) == 3


def test_a_task_never_escalated_is_not_said_to_be_escalated_to_level_0() -> None:
    report = sample_report()
    quiet = report.model_copy(
        update={
            "tasks": [
                task.model_copy(update={"escalation_level": 0, "due_at": None})
                if task.status in (ComplianceStatus.NOT_DONE, ComplianceStatus.OVERDUE)
                else task
                for task in report.tasks
            ]
        }
    )
    document = Document(io.BytesIO(document_bytes(quiet)))
    cells = [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    assert not [cell for cell in cells if "mức 0" in cell]
    assert "Không có hạn; hết kỳ chưa nộp" in cells
