"""A consolidated report built by hand for the export tests (and `scripts/render_report_images.py`).

Seven agencies of Quảng Bình in directory order, three quarters, every compliance status, every
indicator kind, Vietnamese names and texts. The figures are chosen so that the tests can assert
exact values:

| agency        | 2025-q1                   | 2025-q2            | 2025-q3     | due | on time |
| SO_NOI_VU     | on time                   | on time            | not yet due | 2   | 2       |
| THANH_TRA     | late (3 days)             | on time            | not yet due | 2   | 1       |
| SO_TNMT       | on time                   | overdue, level 2   | not yet due | 2   | 1       |
| BAN_TGDV      | waived                    | extended           | not yet due | 0   | 0       |
| BAO_QB        | not done, level 3         | late (1), level 1  | not yet due | 2   | 0       |
| UBND_DONG_HOI | on time + overdue (lvl 1) | on time            | not yet due | 3   | 2       |
| DAI_PTTH      | (no task)                 | (no task)          | (no task)   | 0   | 0       |

The indicators carry seed 001's and 002's figures: 854 citizens received, 728,000 of 756,000
dossiers on time, 561 "Dân vận khéo" models (185, 86, 161, 96, 33); one text indicator; and one
ratio that no agency reported (its only owner is overdue).

19 tasks: 6 on time, 2 late, 2 overdue, 1 not done, 1 waived, 1 extended, 6 not yet due;
11 due, on-time rate 6/11; escalations {1: 2, 2: 1, 3: 1}. UBND_DONG_HOI's 2025-q1 cell in the
heat map is "overdue" (its worst status there).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

from activities.models import IndicatorValue, Ratio, TaskState
from agreements.models import IndicatorKind
from reports.model import (
    AgencyCompliance,
    AgencyValue,
    ComplianceStatus,
    ComplianceTotals,
    ConsolidatedIndicator,
    ConsolidatedReport,
    MissingReport,
    Narrative,
    TaskCompliance,
)

S = ComplianceStatus
AGREEMENT = "quang-binh-2025-289-kh-ubnd"
PERIODS = ["2025-q1", "2025-q2", "2025-q3"]
AGENCIES = [
    ("SO_NOI_VU", "Sở Nội vụ"),
    ("THANH_TRA", "Thanh tra tỉnh"),
    ("SO_TNMT", "Sở Tài nguyên và Môi trường"),
    ("BAN_TGDV", "Ban Tuyên giáo và Dân vận Tỉnh ủy"),
    ("BAO_QB", "Báo Quảng Bình"),
    ("UBND_DONG_HOI", "Ủy ban nhân dân thành phố Đồng Hới"),
    ("DAI_PTTH", "Đài Phát thanh và Truyền hình tỉnh"),
]
NAMES = dict(AGENCIES)
OBLIGATIONS = {
    "bao-cao-quy": ("1", "Báo cáo kết quả thực hiện công tác dân vận chính quyền hằng quý"),
    "tiep-cong-dan": ("2", "Báo cáo công tác tiếp công dân, giải quyết khiếu nại, tố cáo"),
}
DUE = {
    # The first late moment (the agreement convention): "trước ngày 15/04/2025" is 15/04 00:00
    # in Hà Nội, 14/04 17:00 UTC.
    "2025-q1": datetime(2025, 4, 14, 17, 0, tzinfo=UTC),
    "2025-q2": datetime(2025, 7, 14, 17, 0, tzinfo=UTC),
    "2025-q3": datetime(2025, 10, 14, 17, 0, tzinfo=UTC),
}
AS_OF = datetime(2025, 7, 21, 2, 0, tzinfo=UTC)


def _utc(month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=UTC)


# agency, obligation, period, status, escalation level, submitted (UTC), late days
ROWS: list[tuple[str, str, str, ComplianceStatus, int, datetime | None, int | None]] = [
    ("SO_NOI_VU", "bao-cao-quy", "2025-q1", S.ON_TIME, 0, _utc(4, 10, 20, 0), None),
    ("SO_NOI_VU", "bao-cao-quy", "2025-q2", S.ON_TIME, 0, _utc(7, 8, 3, 30), None),
    ("SO_NOI_VU", "bao-cao-quy", "2025-q3", S.NOT_YET_DUE, 0, None, None),
    ("THANH_TRA", "bao-cao-quy", "2025-q1", S.LATE, 0, _utc(4, 17, 2, 0), 3),
    ("THANH_TRA", "bao-cao-quy", "2025-q2", S.ON_TIME, 0, _utc(7, 11, 9, 0), None),
    ("THANH_TRA", "bao-cao-quy", "2025-q3", S.NOT_YET_DUE, 0, None, None),
    ("SO_TNMT", "bao-cao-quy", "2025-q1", S.ON_TIME, 0, _utc(4, 14, 8, 0), None),
    ("SO_TNMT", "bao-cao-quy", "2025-q2", S.OVERDUE, 2, None, None),
    ("SO_TNMT", "bao-cao-quy", "2025-q3", S.NOT_YET_DUE, 0, None, None),
    ("BAN_TGDV", "bao-cao-quy", "2025-q1", S.WAIVED, 0, None, None),
    ("BAN_TGDV", "bao-cao-quy", "2025-q2", S.EXTENDED, 0, None, None),
    ("BAN_TGDV", "bao-cao-quy", "2025-q3", S.NOT_YET_DUE, 0, None, None),
    ("BAO_QB", "bao-cao-quy", "2025-q1", S.NOT_DONE, 3, None, None),
    ("BAO_QB", "bao-cao-quy", "2025-q2", S.LATE, 1, _utc(7, 15, 4, 0), 1),
    ("BAO_QB", "bao-cao-quy", "2025-q3", S.NOT_YET_DUE, 0, None, None),
    ("UBND_DONG_HOI", "bao-cao-quy", "2025-q1", S.ON_TIME, 0, _utc(4, 1, 1, 0), None),
    ("UBND_DONG_HOI", "tiep-cong-dan", "2025-q1", S.OVERDUE, 1, None, None),
    ("UBND_DONG_HOI", "bao-cao-quy", "2025-q2", S.ON_TIME, 0, _utc(7, 2, 2, 0), None),
    ("UBND_DONG_HOI", "bao-cao-quy", "2025-q3", S.NOT_YET_DUE, 0, None, None),
]  # fmt: skip

STATE = {
    S.ON_TIME: TaskState.DONE_ON_TIME,
    S.LATE: TaskState.DONE_LATE,
    S.OVERDUE: TaskState.OVERDUE,
    S.NOT_DONE: TaskState.NOT_DONE_OVERDUE,
    S.WAIVED: TaskState.WAIVED,
    S.EXTENDED: TaskState.PENDING,
}
DUE_STATUSES = (S.ON_TIME, S.LATE, S.OVERDUE, S.NOT_DONE)

SUMMARIES = {
    "SO_NOI_VU": "Đã tổ chức 04 hội nghị đối thoại với Nhân dân; tiếp nhận và giải quyết dứt "
    "điểm 12 kiến nghị của cử tri về thủ tục hành chính.",
    "THANH_TRA": "Tiếp 354 lượt công dân; phối hợp giải quyết các vụ việc khiếu nại đông người, "
    "không để phát sinh điểm nóng.",
    "SO_TNMT": "Công khai quy hoạch sử dụng đất tại 100% xã, phường; hướng dẫn người dân thủ tục "
    "cấp giấy chứng nhận quyền sử dụng đất.",
    "BAO_QB": "Mở chuyên mục “Dân vận khéo”, đăng 36 tin, bài về gương người tốt, việc tốt.",
    "UBND_DONG_HOI": "Duy trì mô hình “Chính quyền thân thiện, vì Nhân dân phục vụ” tại 16 "
    "phường, xã; tỷ lệ hồ sơ giải quyết đúng hạn đạt 96,2%. Tiếp tục chỉ đạo các phường, xã "
    "nâng cao chất lượng tiếp công dân, đối thoại định kỳ với Nhân dân và xử lý dứt điểm các "
    "kiến nghị ngay từ cơ sở, không để tồn đọng, kéo dài.",
}

CATEGORIES = [
    "Văn hóa – xã hội",
    "Kinh tế",
    "Quốc phòng – an ninh",
    "Hệ thống chính trị",
    "“04 không”",
]


def _task_id(agency: str, obligation: str, period: str) -> str:
    return f"{AGREEMENT}/{obligation}/{agency}/{period}"


def _tasks() -> list[TaskCompliance]:
    tasks = []
    for agency, obligation, period, status, level, submitted, late_days in ROWS:
        item, title = OBLIGATIONS[obligation]
        tasks.append(
            TaskCompliance(
                task_id=_task_id(agency, obligation, period),
                obligation_id=obligation,
                item_number=item,
                obligation_title=title,
                period_label=period,
                agency=agency,
                agency_name=NAMES[agency],
                status=status,
                state=STATE.get(status, TaskState.PENDING if period == "2025-q3" else None),
                due_at=DUE[period],
                submitted_at=submitted,
                late_working_days=late_days,
                escalation_level=level,
                waiver_reason="Đơn vị mới sáp nhập, chưa ổn định tổ chức"
                if status is S.WAIVED
                else None,
                extended_to=date(2025, 7, 31) if status is S.EXTENDED else None,
            )
        )
    return tasks


def _counts(tasks: list[TaskCompliance]) -> dict[ComplianceStatus, int]:
    counted = Counter(task.status for task in tasks)
    return {status: counted.get(status, 0) for status in ComplianceStatus}


def _agency(code: str, tasks: list[TaskCompliance]) -> AgencyCompliance:
    own = [task for task in tasks if task.agency == code]
    counts = _counts(own)
    due = sum(counts[status] for status in DUE_STATUSES)
    return AgencyCompliance(
        agency=code,
        agency_name=NAMES[code],
        counts=counts,
        due=due,
        on_time_rate=counts[S.ON_TIME] / due if due else None,
        highest_escalation=max((task.escalation_level for task in own), default=0),
    )


def _values(values: dict[str, IndicatorValue]) -> list[AgencyValue]:
    return [
        AgencyValue(agency=code, agency_name=NAMES[code], value=value)
        for code, value in values.items()
    ]


def _indicators() -> list[ConsolidatedIndicator]:
    quarterly = OBLIGATIONS["bao-cao-quy"][1]
    reception = OBLIGATIONS["tiep-cong-dan"][1]
    return [
        ConsolidatedIndicator(
            obligation_id="bao-cao-quy",
            obligation_title=quarterly,
            code="cong-dan-duoc-tiep",
            label="Số lượt công dân được tiếp",
            kind=IndicatorKind.COUNT,
            count=854,
            per_agency=_values({"SO_NOI_VU": 200, "THANH_TRA": 354, "UBND_DONG_HOI": 300}),
            missing=["SO_TNMT", "BAO_QB"],
        ),
        ConsolidatedIndicator(
            obligation_id="bao-cao-quy",
            obligation_title=quarterly,
            code="ho-so-dung-han",
            label="Hồ sơ thủ tục hành chính giải quyết đúng hạn",
            kind=IndicatorKind.RATIO,
            done=728_000,
            total=756_000,
            ratio=728_000 / 756_000,
            per_agency=_values(
                {
                    "SO_NOI_VU": Ratio(done=250_000, total=260_000),
                    "THANH_TRA": Ratio(done=228_000, total=236_000),
                    "UBND_DONG_HOI": Ratio(done=250_000, total=260_000),
                }
            ),
            missing=["SO_TNMT", "BAO_QB"],
        ),
        ConsolidatedIndicator(
            obligation_id="bao-cao-quy",
            obligation_title=quarterly,
            code="mo-hinh-dan-van-kheo",
            label="Mô hình “Dân vận khéo”",
            kind=IndicatorKind.BREAKDOWN,
            categories=CATEGORIES,
            breakdown=dict(zip(CATEGORIES, [185, 86, 161, 96, 33], strict=True)),
            count=561,
            per_agency=_values(
                {
                    "SO_NOI_VU": dict(zip(CATEGORIES, [100, 40, 61, 50, 13], strict=True)),
                    "UBND_DONG_HOI": dict(zip(CATEGORIES, [85, 46, 100, 46, 20], strict=True)),
                }
            ),
            missing=["THANH_TRA", "SO_TNMT", "BAO_QB"],
        ),
        ConsolidatedIndicator(
            obligation_id="bao-cao-quy",
            obligation_title=quarterly,
            code="kien-nghi",
            label="Kiến nghị, đề xuất",
            kind=IndicatorKind.TEXT,
            per_agency=_values(
                {
                    "SO_NOI_VU": "Đề nghị bổ sung biên chế cho bộ phận một cửa.",
                    "BAO_QB": "Đề nghị cung cấp thông tin định kỳ cho báo chí.",
                }
            ),
            missing=["THANH_TRA", "SO_TNMT", "UBND_DONG_HOI"],
        ),
        ConsolidatedIndicator(
            obligation_id="tiep-cong-dan",
            obligation_title=reception,
            code="khieu-nai-da-giai-quyet",
            label="Đơn khiếu nại đã giải quyết",
            kind=IndicatorKind.RATIO,
            per_agency=[],
            missing=["UBND_DONG_HOI"],
        ),
    ]


def _missing(tasks: list[TaskCompliance]) -> list[MissingReport]:
    return [
        MissingReport(
            task_id=task.task_id,
            agency=task.agency,
            agency_name=task.agency_name,
            obligation_title=task.obligation_title,
            period_label=task.period_label,
            due_at=task.due_at,
            status=task.status,
            escalation_level=task.escalation_level,
        )
        for task in tasks
        if task.status in (S.OVERDUE, S.NOT_DONE)
    ]


def _narratives(tasks: list[TaskCompliance]) -> list[Narrative]:
    return [
        Narrative(
            agency=task.agency,
            agency_name=task.agency_name,
            task_id=task.task_id,
            obligation_title=task.obligation_title,
            period_label=task.period_label,
            submitted_at=task.submitted_at,
            summary=SUMMARIES[task.agency],
        )
        for task in tasks
        if task.submitted_at is not None and task.period_label == "2025-q2"
    ]


def sample_report() -> ConsolidatedReport:
    tasks = _tasks()
    counts = _counts(tasks)
    due = sum(counts[status] for status in DUE_STATUSES)
    escalations = Counter(task.escalation_level for task in tasks if task.escalation_level > 0)
    return ConsolidatedReport(
        agreement_id=AGREEMENT,
        tenant="quang-binh",
        document_number="289/KH-UBND",
        title="Kế hoạch thực hiện công tác dân vận của cơ quan hành chính nhà nước, chính "
        "quyền các cấp năm 2025",
        issuer="Ủy ban nhân dân tỉnh Quảng Bình",
        province="Quảng Bình",
        period=None,
        periods=PERIODS,
        as_of=AS_OF,
        time_zone="Asia/Ho_Chi_Minh",
        tasks=tasks,
        agencies=[_agency(code, tasks) for code, _ in AGENCIES],
        totals=ComplianceTotals(
            tasks=len(tasks),
            counts=counts,
            due=due,
            on_time=counts[S.ON_TIME],
            on_time_rate=counts[S.ON_TIME] / due,
            escalations=dict(sorted(escalations.items())),
        ),
        indicators=_indicators(),
        missing=_missing(tasks),
        narratives=_narratives(tasks),
    )


def empty_report() -> ConsolidatedReport:
    """No agency, no task: every export must still say so rather than fail."""
    return ConsolidatedReport(
        agreement_id=AGREEMENT,
        tenant="quang-binh",
        document_number="289/KH-UBND",
        title="Kế hoạch thực hiện công tác dân vận năm 2025",
        issuer=None,
        province=None,
        period="2025-q1",
        periods=[],
        as_of=AS_OF,
        time_zone="Asia/Ho_Chi_Minh",
        tasks=[],
        agencies=[],
        totals=ComplianceTotals(
            tasks=0,
            counts={status: 0 for status in ComplianceStatus},
            due=0,
            on_time=0,
            on_time_rate=None,
        ),
        indicators=[],
        missing=[],
        narratives=[],
    )
