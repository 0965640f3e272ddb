"""The real agreements encoded from the seed documents load, and expand to the expected tasks.

The expected numbers of task occurrences are derived by hand from the source texts and the
directories, not read back from the expansion code; each derivation is written next to its
assertion.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agreements.expansion import TaskOccurrence
from agreements.loader import LoadedAgreement, load_agreement, load_directory
from agreements.models import Deliverable, IndicatorKind, OfficerRole

ROOT = Path(__file__).resolve().parents[2] / "agreements"
PLAN_289 = ROOT / "quang-binh-2025-289-kh-ubnd.yaml"
NGHE_AN_PROGRAMME = ROOT / "nghe-an-2021-2026-chuong-trinh.yaml"
QUANG_BINH_2023 = ROOT / "quang-binh-2023-ke-hoach-phoi-hop.yaml"
AGREEMENT_FILES = [PLAN_289, NGHE_AN_PROGRAMME, QUANG_BINH_2023]
DIRECTORY_FILES = [ROOT / "directory" / "quang-binh.yaml", ROOT / "directory" / "nghe-an.yaml"]

VN = ZoneInfo("Asia/Ho_Chi_Minh")
ID_289 = "289-kh-ubnd-2025"
ID_NGHE_AN = "nghe-an-ctph-dan-van-2021-2026"
ID_QB_2023 = "quang-binh-kh-phoi-hop-dan-van-2023"

SO_BAN_NGANH = ["VP_UBND", "SNV", "STP", "SVHTTDL", "TTT", "DAI_PTTH", "CONG_TTDT"]
UBND_CAP_HUYEN = [
    "UBND_DONG_HOI",
    "UBND_BA_DON",
    "UBND_LE_THUY",
    "UBND_QUANG_NINH",
    "UBND_BO_TRACH",
    "UBND_QUANG_TRACH",
    "UBND_TUYEN_HOA",
    "UBND_MINH_HOA",
]


def by_id(loaded: LoadedAgreement) -> dict[str, TaskOccurrence]:
    return {o.task_id: o for o in loaded.occurrences}


def at_midnight(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 0, 0, tzinfo=VN)


# --------------------------------------------------------------------------------------------
# Every file


@pytest.mark.parametrize("path", AGREEMENT_FILES, ids=lambda p: p.name)
def test_agreement_file_loads(path: Path) -> None:
    loaded = load_agreement(path)
    assert loaded.occurrences


@pytest.mark.parametrize("path", AGREEMENT_FILES, ids=lambda p: p.name)
def test_task_ids_are_unique(path: Path) -> None:
    ids = [o.task_id for o in load_agreement(path).occurrences]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("path", AGREEMENT_FILES, ids=lambda p: p.name)
def test_expansion_is_deterministic(path: Path) -> None:
    assert load_agreement(path).occurrences == load_agreement(path).occurrences


@pytest.mark.parametrize("path", AGREEMENT_FILES, ids=lambda p: p.name)
def test_undated_tasks_are_neither_reminded_nor_escalated(path: Path) -> None:
    for occurrence in load_agreement(path).occurrences:
        if occurrence.due_at is None:
            assert occurrence.escalation == []
            assert occurrence.reminders.before == []


@pytest.mark.parametrize("path", DIRECTORY_FILES, ids=lambda p: p.name)
def test_directory_officers_are_demo_people(path: Path) -> None:
    directory = load_directory(path)
    for officer in directory.officers:
        assert officer.email.endswith(".example"), officer.email
    for agency in directory.agencies:
        roles = {r for o in directory.officers if o.agency == agency.code for r in o.roles}
        assert OfficerRole.FOCAL_POINT in roles, agency.code
        assert OfficerRole.HEAD in roles, agency.code
    everyone = [r for o in directory.officers for r in o.roles]
    assert OfficerRole.PROVINCIAL_LEADERSHIP in everyone
    assert OfficerRole.ADMIN in everyone


def test_quang_binh_groups() -> None:
    directory = load_directory(DIRECTORY_FILES[0])
    members = {g: [a.code for a in directory.members(g)] for g in directory.groups}
    assert members == {
        "so_ban_nganh": SO_BAN_NGANH,
        "ubnd_cap_huyen": UBND_CAP_HUYEN,
        "co_quan_bao_chi": ["SVHTTDL", "DAI_PTTH", "CONG_TTDT", "BAO_QB"],
        "luc_luong_vu_trang": ["BCHQS", "BDBP", "CAT"],
    }
    old_board = directory.agency("BDV_TU")
    assert old_board is not None
    assert old_board.successor == "BTGDV_TU"
    assert old_board.active_until is None


# --------------------------------------------------------------------------------------------
# Plan No. 289/KH-UBND, Quảng Bình, 26 Feb 2025 (seed 003)


def test_289_occurrence_count() -> None:
    """Derivation from the plan's section III and the Quảng Bình directory.

    so_ban_nganh has 7 bodies, ubnd_cap_huyen 8 districts: 15 agencies.

    - III.7 reporting (bao-cao-6-thang, bao-cao-nam): 15 agencies minus SNV, which
      consolidates = 14 agencies x 2 reports = 28
    - III.1 (own 2025 plan, own inspection plan): 15 agencies x 2 = 30
    - III.2 SNV: inspection + consolidated periodic report = 2
    - III.3 Thanh tra tỉnh: periodic citizen-reception report = 1
    - III.4 co_quan_bao_chi (SVHTTDL, Báo, Đài, Cổng): 4 x 1 = 4
    - III.5 luc_luong_vu_trang (BCHQS, BĐBP, CA): 3 x 1 = 3
    - III.6 Ban Tuyên giáo và Dân vận Tỉnh ủy: 1

    Total: 28 + 30 + 2 + 1 + 4 + 3 + 1 = 69.
    """
    loaded = load_agreement(PLAN_289)
    assert loaded.agreement.agreement_id == ID_289
    assert len(loaded.occurrences) == 69
    assert Counter(o.item_number for o in loaded.occurrences) == {
        None: 28,
        "III.1": 30,
        "III.2": 2,
        "III.3": 1,
        "III.4": 4,
        "III.5": 3,
        "III.6": 1,
    }


def test_289_six_month_report_of_le_thuy() -> None:
    tasks = by_id(load_agreement(PLAN_289))
    task = tasks[f"{ID_289}/bao-cao-6-thang/UBND_LE_THUY/2025-6t"]
    # "Trước ngày 15/5": due at 15 May 00:00 local, the last day to submit is 14 May.
    assert task.due_at == at_midnight(2025, 5, 15)
    assert task.deliverable is Deliverable.REPORT
    assert task.recipient == "SNV"
    assert task.item_number is None
    assert [str(o) for o in task.reminders.before] == ["7d", "3d", "1d"]
    assert [str(step.after) for step in task.escalation] == ["1d", "5d", "10d"]
    codes = [i.code for i in task.indicators]
    assert codes == [
        "mo-hinh-dan-van-kheo",
        "cong-dan-duoc-tiep",
        "khieu-nai-to-cao-da-giai-quyet",
        "ho-so-tthc-dung-han",
    ]
    breakdown = task.indicators[0]
    assert breakdown.kind is IndicatorKind.BREAKDOWN
    assert breakdown.categories == [
        "văn hóa - xã hội",
        "kinh tế",
        "quốc phòng - an ninh",
        "xây dựng hệ thống chính trị",
        "“04 không”",
    ]


def test_289_annual_report_and_its_owners() -> None:
    loaded = load_agreement(PLAN_289)
    tasks = by_id(loaded)
    annual = tasks[f"{ID_289}/bao-cao-nam/UBND_MINH_HOA/2025"]
    assert annual.due_at == at_midnight(2025, 11, 15)
    six_month_owners = [
        o.agency for o in loaded.occurrences if o.obligation_id == "bao-cao-6-thang"
    ]
    expected = [code for code in SO_BAN_NGANH + UBND_CAP_HUYEN if code != "SNV"]
    assert sorted(six_month_owners) == sorted(expected)
    # SNV consolidates the reports: it owes neither the 6-month nor the annual report.
    assert f"{ID_289}/bao-cao-6-thang/SNV/2025-6t" not in tasks
    assert f"{ID_289}/bao-cao-nam/SNV/2025" not in tasks
    # The Party newspaper is not under UBND tỉnh and does not report under III.7.
    assert f"{ID_289}/bao-cao-6-thang/BAO_QB/2025-6t" not in tasks


def test_289_undated_obligations() -> None:
    tasks = by_id(load_agreement(PLAN_289))
    for task_id in (
        f"{ID_289}/ke-hoach-dan-van-chinh-quyen/UBND_LE_THUY/2025",
        f"{ID_289}/ke-hoach-kiem-tra/DAI_PTTH/2025",
        f"{ID_289}/tong-hop-bao-cao-dinh-ky/SNV/2025",
        f"{ID_289}/bao-cao-tiep-cong-dan/TTT/2025",
        f"{ID_289}/bao-cao-tuyen-truyen/BAO_QB/2025",
        f"{ID_289}/kiem-tra-dan-van-luc-luong-vu-trang/BDBP/2025",
        f"{ID_289}/chi-dao-ban-cap-huyen/BTGDV_TU/2025",
    ):
        task = tasks[task_id]
        assert task.due_at is None
        assert task.escalation == []
        assert task.reminders.before == []
    assert tasks[f"{ID_289}/tong-hop-bao-cao-dinh-ky/SNV/2025"].recipient == "UBND_TINH"
    assert tasks[f"{ID_289}/bao-cao-tiep-cong-dan/TTT/2025"].recipient == "SNV"


def test_289_items_and_vietnamese_text() -> None:
    agreement = load_agreement(PLAN_289).agreement
    title = "Thực hiện công tác dân vận chính quyền năm 2025"
    assert unicodedata.is_normalized("NFC", title)
    assert agreement.title == title
    assert "dân vận" in agreement.title
    assert agreement.province == "Quảng Bình"
    assert agreement.document_number == "289/KH-UBND"
    assert [item.number for item in agreement.items] == [
        *(f"II.{n}" for n in range(1, 8)),
        *(f"III.{n}" for n in range(1, 8)),
    ]
    items = {item.number: item for item in agreement.items}
    assert items["II.5"].title == "Triển khai có hiệu quả phong trào thi đua “Dân vận khéo”"
    assert items["III.7"].title == "Chế độ, thông tin, báo cáo"
    assert items["III.7"].obligations == []
    assert items["III.7"].text is not None
    assert "- Báo cáo 6 tháng đầu năm: Trước ngày 15/5." in items["III.7"].text
    coordinating = items["II.6"].coordinating
    assert coordinating is not None
    assert coordinating.agencies == ["BTGDV_TU", "UBMTTQ"]
    assert len(agreement.legal_bases) == 4
    assert agreement.legal_bases[0].startswith("Quyết định số 23-QĐ/TW ngày 30/7/2021")
    for text in (agreement.title, *agreement.legal_bases, *(i.text or "" for i in agreement.items)):
        assert unicodedata.is_normalized("NFC", text)
    for _, obligation in agreement.all_obligations():
        assert obligation.source, obligation.id


# --------------------------------------------------------------------------------------------
# Nghệ An programme 2021-2026 (seed 004)


def test_nghe_an_occurrence_count() -> None:
    """Derivation: period 27/12/2021 - 31/12/2026, rules starting 2022-01-01.

    - ke-hoach-nam, every 31 March: 2022, 2023, 2024, 2025, 2026 = 5
    - bao-cao-ket-qua-nam, every 27 December: 2022, 2023, 2024, 2025, 2026 = 5
    - tong-ket-chuong-trinh, 5 years after 27/12/2021 = 27/12/2026: 1

    Total: 5 + 5 + 1 = 11, each owed by a single agency.
    """
    loaded = load_agreement(NGHE_AN_PROGRAMME)
    assert loaded.agreement.agreement_id == ID_NGHE_AN
    assert len(loaded.occurrences) == 11
    assert Counter(o.obligation_id for o in loaded.occurrences) == {
        "ke-hoach-nam": 5,
        "bao-cao-ket-qua-nam": 5,
        "tong-ket-chuong-trinh": 1,
    }


def test_nghe_an_dates_are_marked_as_assumed() -> None:
    loaded = load_agreement(NGHE_AN_PROGRAMME)
    tasks = by_id(loaded)
    assert tasks[f"{ID_NGHE_AN}/ke-hoach-nam/SNV/2022"].due_at == at_midnight(2022, 3, 31)
    # "Before 27/12/2026": the last day, 26/12/2026, is a Saturday, so under Civil Code art. 148
    # the limit ends with Monday 28/12/2026 and the due instant is 29/12/2026 00:00.
    report_2026 = tasks[f"{ID_NGHE_AN}/bao-cao-ket-qua-nam/SNV/2026"]
    assert report_2026.written_due_at == at_midnight(2026, 12, 27)
    assert report_2026.due_at == at_midnight(2026, 12, 29)
    assert report_2026.due_note_vi == (
        "Hạn 26/12/2026 rơi vào thứ Bảy; theo Điều 148 Bộ luật Dân sự, "
        "hạn chuyển sang hết ngày 28/12/2026"
    )
    summary = tasks[f"{ID_NGHE_AN}/tong-ket-chuong-trinh/BDV_TU/2026"]
    assert summary.written_due_at == at_midnight(2026, 12, 27)
    assert summary.due_at == at_midnight(2026, 12, 29)
    assert [str(o) for o in summary.reminders.before] == ["14d", "7d", "1d"]
    for _, obligation in loaded.agreement.all_obligations():
        assert obligation.assumed, obligation.id
    assert loaded.directory.province == "Nghệ An"


# --------------------------------------------------------------------------------------------
# Quảng Bình yearly coordination plan 2023 (seed 000)


def test_quang_binh_2023_occurrence_count() -> None:
    """Derivation: the article names 4 of the 15 items; two of them carry obligations.

    - TT2 "Dân vận khéo" models in projects: one task per named locality (Lệ Thủy, Quảng Ninh,
      Bố Trạch, Quảng Trạch, Ba Đồn, Đồng Hới) = 6
    - TT4 inspection of departments and district People's Committees: Ban Cán sự Đảng = 1

    Total: 6 + 1 = 7, all undated.
    """
    loaded = load_agreement(QUANG_BINH_2023)
    agreement = loaded.agreement
    assert agreement.agreement_id == ID_QB_2023
    assert agreement.source is not None
    assert agreement.source.declared_item_count == 15
    assert [item.number for item in agreement.items] == ["TT1", "TT2", "TT3", "TT4"]
    assert len(loaded.occurrences) == 7
    model_owners = {
        o.agency for o in loaded.occurrences if o.obligation_id == "mo-hinh-dan-van-kheo-du-an"
    }
    assert model_owners == set(UBND_CAP_HUYEN) - {"UBND_TUYEN_HOA", "UBND_MINH_HOA"}
    tasks = by_id(loaded)
    inspection = tasks[f"{ID_QB_2023}/kiem-tra-dan-van-chinh-quyen-2023/BCSD_UBND/2023"]
    assert inspection.deliverable is Deliverable.INSPECTION
    assert all(o.due_at is None for o in loaded.occurrences)


def test_289_reports_cover_the_decree_09_data_windows() -> None:
    """Decree 09/2019/NĐ-CP: the six-month figures run 15/12 of the previous year to 14/6, the
    annual ones 15/12 to 14/12, even though plan 289 asks for them by 15/5 and 15/11."""
    tasks = by_id(load_agreement(PLAN_289))
    six_month = tasks["289-kh-ubnd-2025/bao-cao-6-thang/STP/2025-6t"]
    assert (six_month.covers_from, six_month.covers_to) == (date(2024, 12, 15), date(2025, 6, 14))
    annual = tasks["289-kh-ubnd-2025/bao-cao-nam/STP/2025"]
    assert (annual.covers_from, annual.covers_to) == (date(2024, 12, 15), date(2025, 12, 14))
    undated = next(t for t in tasks.values() if t.due_at is None)
    assert undated.covers_from is None
