"""A consolidated report's inputs built by hand from the seeds' own published figures.

Seed 001 (Bình Thuận, 29/03/2023): of nearly 756,000 administrative dossiers, over 728,000
were resolved on time; 561 "Dân vận khéo" models: 185 culture–society, 86 economy, 161
defence–security, 96 political system, 33 "04 không". Seed 002: 854 citizen receptions, 29 of
39 complaints resolved. Here four agencies report shares that add up to exactly those figures
(the sums are written out beside each table), and four others show the other standings: one
late (across Tết), one that never reported, one waived, one extended.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from activities.models import (
    AgreementFacts,
    IndicatorValue,
    ObligationFact,
    Ratio,
    TaskFact,
    TaskState,
)
from agreements.calendar import load_calendar
from agreements.models import Deliverable, Indicator, IndicatorKind
from reports.model import AgencyFact, ExtensionFact, ReportInputs, SubmissionFact, WaiverFact

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
ID = "binh-thuan-dan-van-2023"
OBLIGATION = "bao-cao-nam"
CATEGORIES = [
    "Văn hóa - xã hội",
    "Kinh tế",
    "Quốc phòng - an ninh",
    "Xây dựng hệ thống chính trị",
    "04 không",
]

AGENCIES = [
    AgencyFact(code="UBND_TINH", name="Ủy ban nhân dân tỉnh"),
    AgencyFact(code="SNV", name="Sở Nội vụ"),
    AgencyFact(code="STP", name="Sở Tư pháp"),
    AgencyFact(code="SKHDT", name="Sở Kế hoạch và Đầu tư"),
    AgencyFact(code="CA_TINH", name="Công an tỉnh"),
    AgencyFact(code="UBND_BAC_BINH", name="Ủy ban nhân dân huyện Bắc Bình"),
    AgencyFact(code="UBND_HAM_THUAN_BAC", name="Ủy ban nhân dân huyện Hàm Thuận Bắc"),
    AgencyFact(code="UBND_LA_GI", name="Ủy ban nhân dân thị xã La Gi"),
]
"""Directory order (not the codes' alphabetical order: CA_TINH would come first)."""

# The four reporting agencies' figures.
DOSSIERS = {  # on time / total
    "SNV": (120_500, 125_000),
    "STP": (98_300, 101_200),
    "SKHDT": (210_000, 218_400),
    "CA_TINH": (299_200, 311_400),
}  # 728,000 / 756,000
MODELS = {  # by CATEGORIES
    "SNV": [40, 20, 35, 30, 8],
    "STP": [45, 16, 41, 20, 5],
    "SKHDT": [50, 30, 40, 26, 10],
    "CA_TINH": [50, 20, 45, 20, 10],
}  # 185, 86, 161, 96, 33: 561
RECEPTIONS = {"SNV": 200, "STP": 150, "SKHDT": 104, "CA_TINH": 400}  # 854
COMPLAINTS = {"SNV": (5, 6), "STP": (7, 10), "SKHDT": (2, 3), "CA_TINH": (15, 20)}  # 29 / 39
DIFFICULTIES = {
    "SNV": "Thiếu cán bộ chuyên trách.",
    "STP": "Kinh phí hạn chế.",
}

DUE = datetime(2023, 1, 19, tzinfo=ZONE)
"""Due before Thursday 19/01/2023 (the last day is Wednesday 18/01)."""
LATE_ARRIVAL = datetime(2023, 1, 30, 9, 0, tzinfo=ZONE)
"""Công an tỉnh's report: Monday 30/01/2023. Working days from 19/01 to 30/01: Thursday 19,
(Friday 20 to Thursday 26: Tết, with the weekend), Friday 27, (weekend), Monday 30 = 3; twelve
calendar days."""
EXTENDED_TO = date(2023, 4, 11)
AS_OF = datetime(2023, 3, 29, 5, 23, tzinfo=ZONE)
WAIVER_REASON = "Huyện tổ chức lại bộ máy, báo cáo chung trong báo cáo của UBND tỉnh"


def task_id(agency: str, period: str = "2022") -> str:
    return f"{ID}/{OBLIGATION}/{agency}/{period}"


def _indicators(agency: str) -> dict[str, IndicatorValue]:
    done, total = DOSSIERS[agency]
    resolved, complaints = COMPLAINTS[agency]
    values: dict[str, IndicatorValue] = {
        "ho-so-dung-han": Ratio(done=done, total=total),
        "mo-hinh-dan-van-kheo": dict(zip(CATEGORIES, MODELS[agency], strict=True)),
        "tiep-cong-dan": RECEPTIONS[agency],
        # As the database hands it back: a plain mapping.
        "khieu-nai-da-giai-quyet": {"done": resolved, "total": complaints},
    }
    if agency in DIFFICULTIES:
        values["kho-khan"] = DIFFICULTIES[agency]
    return values


def _task(
    agency: str,
    state: TaskState | None,
    *,
    period: str = "2022",
    due_at: datetime = DUE,
    level: int = 0,
) -> TaskFact:
    return TaskFact(
        task_id=task_id(agency, period),
        obligation_id=OBLIGATION,
        agency=agency,
        period_label=period,
        state=state,
        due_at=due_at,
        escalation_level=level,
        closed=state is not None and not state.is_open,
    )


def _submission(agency: str, at: datetime, *, late: bool = False) -> SubmissionFact:
    return SubmissionFact(
        task_id=task_id(agency),
        agency=agency,
        submitted_at=at,
        late=late,
        summary=f"Báo cáo kết quả công tác dân vận năm 2022 của {agency}.",
        indicators=_indicators(agency),
    )


def inputs(*, calendar: bool = True) -> ReportInputs:
    midyear = datetime(2023, 7, 15, tzinfo=ZONE)
    facts = AgreementFacts(
        agreement_id=ID,
        tenant="binh-thuan",
        document_number="05-CTr/BDVTU-BCSĐ",
        title="Chương trình phối hợp công tác dân vận",
        issuer="Ban Dân vận Tỉnh ủy",
        time_zone="Asia/Ho_Chi_Minh",
        period_start=date(2022, 7, 1),
        period_end=date(2023, 12, 31),
        as_of=AS_OF,
        obligations={
            OBLIGATION: ObligationFact(
                obligation_id=OBLIGATION,
                item_number="III.2",
                title="Báo cáo kết quả thực hiện công tác dân vận",
                deliverable=Deliverable.REPORT,
                recipient="SNV",
                indicators=[
                    Indicator(
                        code="ho-so-dung-han",
                        label="Hồ sơ thủ tục hành chính giải quyết đúng hạn",
                        kind=IndicatorKind.RATIO,
                    ),
                    Indicator(
                        code="mo-hinh-dan-van-kheo",
                        label="Mô hình “Dân vận khéo”",
                        kind=IndicatorKind.BREAKDOWN,
                        categories=CATEGORIES,
                    ),
                    Indicator(code="tiep-cong-dan", label="Lượt tiếp công dân"),
                    Indicator(
                        code="khieu-nai-da-giai-quyet",
                        label="Đơn khiếu nại đã giải quyết",
                        kind=IndicatorKind.RATIO,
                    ),
                    Indicator(
                        code="kho-khan",
                        label="Khó khăn, vướng mắc",
                        kind=IndicatorKind.TEXT,
                        required=False,
                    ),
                ],
            )
        },
        # The engine's order (by task ID), not the report's.
        tasks=sorted(
            [
                _task("SNV", TaskState.DONE_ON_TIME),
                _task("STP", TaskState.DONE_ON_TIME),
                _task("SKHDT", TaskState.DONE_ON_TIME),
                _task("CA_TINH", TaskState.DONE_LATE, level=1),
                _task("UBND_BAC_BINH", TaskState.OVERDUE, level=2),
                _task("UBND_HAM_THUAN_BAC", TaskState.WAIVED),
                _task(
                    "UBND_LA_GI",
                    TaskState.PENDING,
                    due_at=datetime(2023, 4, 11, tzinfo=ZONE),
                ),
                _task("SNV", None, period="2023-6t", due_at=midyear),
                _task("UBND_BAC_BINH", None, period="2023-6t", due_at=midyear),
            ],
            key=lambda t: t.task_id,
        ),
        calendar=load_calendar(range(2022, 2024)) if calendar else None,
    )
    return ReportInputs(
        facts=facts,
        province="Bình Thuận",
        agencies=AGENCIES,
        submissions=[
            _submission("CA_TINH", LATE_ARRIVAL, late=True),
            _submission("SKHDT", datetime(2023, 1, 17, 14, 0, tzinfo=ZONE)),
            _submission("SNV", datetime(2023, 1, 16, 10, 0, tzinfo=ZONE)),
            _submission("STP", datetime(2023, 1, 18, 16, 30, tzinfo=ZONE)),
        ],
        waivers=[
            WaiverFact(
                task_id=task_id("UBND_HAM_THUAN_BAC"),
                at=datetime(2023, 1, 10, 9, 0, tzinfo=ZONE),
                reason=WAIVER_REASON,
            )
        ],
        extensions=[
            ExtensionFact(
                task_id=task_id("UBND_LA_GI"),
                at=datetime(2023, 1, 12, 9, 0, tzinfo=ZONE),
                new_due=EXTENDED_TO,
            )
        ],
    )
