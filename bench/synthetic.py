"""Synthetic (made-up) inputs for the benchmark: obligation inputs, directories, agreements.

Everything here is labelled synthetic: agreement IDs start with `synthetic-bench-`, provinces
are called "Tỉnh mô phỏng NN", agencies `CQ001`…, and every e-mail address is on a reserved
`*.example` domain. Nothing refers to a real agency or person.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from temporalio.common import TypedSearchAttributes

from activities.models import TaskRef
from agreements.models import Deliverable, EscalationStep, ReminderPolicy
from workflows.payloads import ObligationInput, TaskState
from workflows.search_attributes import task_search_attributes

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
AGREEMENT_PREFIX = "synthetic-bench-"

# Agencies of agreements/directory/quang-binh.yaml with a focal point and a head: owners of the
# synthetic dev-server obligations (their officers receive the mail).
QUANG_BINH_AGENCIES: tuple[str, ...] = (
    "STP",
    "SNV",
    "VP_UBND",
    "SVHTTDL",
    "TTT",
    "BCHQS",
    "CAT",
    "UBND_LE_THUY",
    "UBND_DONG_HOI",
    "UBND_BA_DON",
    "UBND_QUANG_NINH",
    "UBND_BO_TRACH",
)

ESCALATION_LADDER: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("1m", ("focal_point", "head_of_agency")),
    ("2m", ("head_of_agency", "aggregator")),
    ("3m", ("provincial_leadership",)),
)
"""Accord's usual three-step ladder (1d/5d/10d in the real agreements) compressed to minutes."""


def obligation_input(
    *,
    run: str,
    index: int,
    due_at: datetime,
    reminders: Sequence[str],
    escalation: Sequence[tuple[str, Sequence[str]]] = ESCALATION_LADDER,
    agencies: Sequence[str] = QUANG_BINH_AGENCIES,
) -> ObligationInput:
    """One synthetic six-monthly report of one agency to Sở Nội vụ, without a parent agreement
    (the obligation workflow is started directly, as `accord` would start it as a child)."""
    agency = agencies[index % len(agencies)]
    agreement_id = f"{AGREEMENT_PREFIX}{run}"
    label = f"{due_at.year}-6t-{index:05d}"
    task = TaskRef(
        task_id=f"{agreement_id}/bao-cao-6-thang/{agency}/{label}",
        agreement_id=agreement_id,
        tenant="quang-binh",
        document_number="BENCH/KH-UBND",
        agreement_title="Kế hoạch tổng hợp để đo hiệu năng (dữ liệu tổng hợp)",
        item_number="III.7",
        obligation_id="bao-cao-6-thang",
        deliverable=Deliverable.REPORT,
        title="Báo cáo 6 tháng (tổng hợp)",
        agency=agency,
        recipient="SNV",
        period_label=label,
        due_at=due_at,
    )
    end = due_at.date() + timedelta(days=90)
    return ObligationInput(
        task=task,
        reminders=ReminderPolicy.model_validate({"before": list(reminders)}),
        escalation=[
            EscalationStep.model_validate({"after": after, "notify": list(roles)})
            for after, roles in escalation
        ],
        period_end=end,
        closes_at=datetime(end.year, end.month, end.day, tzinfo=ZONE) + timedelta(days=31),
    )


def start_attributes(input: ObligationInput) -> TypedSearchAttributes:
    """The search attributes `accord` gives a task at its start (as the agreement does)."""
    return task_search_attributes(input.task, state=TaskState.PENDING, due_at=input.task.due_at)


# --------------------------------------------------------------------------------------------
# Synthetic provinces for the time-skipping runs


def province_code(number: int) -> str:
    return f"tinh{number:02d}"


def write_directory(folder: Path, *, number: int, agencies: int) -> Path:
    """A province with `agencies` owing agencies (group `thanh_vien`), a receiving Sở Nội vụ
    and a People's Committee, each agency with one focal point and one head."""
    code = province_code(number)
    domain = f"{code}.example"
    rows: list[dict[str, object]] = [
        {"code": "UBND_TINH", "name": "Ủy ban nhân dân tỉnh", "kind": "peoples_committee"},
        {"code": "SNV", "name": "Sở Nội vụ", "kind": "department", "parent": "UBND_TINH"},
    ]
    officers: list[dict[str, object]] = [
        {
            "id": "lanh-dao-ubnd-tinh",
            "name": "Lãnh đạo UBND tỉnh (tổng hợp)",
            "email": f"lanh-dao@{domain}",
            "agency": "UBND_TINH",
            "roles": ["provincial_leadership"],
        },
        {
            "id": "dau-moi-snv",
            "name": "Đầu mối Sở Nội vụ (tổng hợp)",
            "email": f"dau-moi.snv@{domain}",
            "agency": "SNV",
            "roles": ["focal_point"],
        },
        {
            "id": "thu-truong-snv",
            "name": "Thủ trưởng Sở Nội vụ (tổng hợp)",
            "email": f"thu-truong.snv@{domain}",
            "agency": "SNV",
            "roles": ["head"],
        },
    ]
    for n in range(1, agencies + 1):
        agency = f"CQ{n:03d}"
        rows.append(
            {
                "code": agency,
                "name": f"Cơ quan tổng hợp số {n}",
                "kind": "department",
                "parent": "UBND_TINH",
                "groups": ["thanh_vien"],
            }
        )
        slug = agency.lower()
        officers.append(
            {
                "id": f"dau-moi-{slug}",
                "name": f"Đầu mối cơ quan {n} (tổng hợp)",
                "email": f"dau-moi.{slug}@{domain}",
                "agency": agency,
                "roles": ["focal_point"],
            }
        )
        officers.append(
            {
                "id": f"thu-truong-{slug}",
                "name": f"Thủ trưởng cơ quan {n} (tổng hợp)",
                "email": f"thu-truong.{slug}@{domain}",
                "agency": agency,
                "roles": ["head"],
            }
        )
    document = {
        "schema_version": 1,
        "tenant": code,
        "province": f"Tỉnh mô phỏng {number:02d}",
        "agencies": rows,
        "officers": officers,
    }
    path = folder / "directory" / f"{code}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Synthetic benchmark directory: made-up agencies and officers.\n"
        + yaml.safe_dump(document, allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    return path


def write_agreement(
    folder: Path, *, number: int, agencies: int, start: date, end: date, label: str
) -> Path:
    """A programme whose `agencies` members each report twice a year, before 15 May and
    before 15 November, with the reminder and escalation policy of the real agreements
    (7d/3d/1d before; 1d/5d/10d after). Nobody submits in the simulation: the worst case."""
    directory = write_directory(folder, number=number, agencies=agencies)
    code = province_code(number)
    document = {
        "schema_version": 1,
        "id": f"{AGREEMENT_PREFIX}{code}-{label}",
        "document_number": f"BENCH-{number:02d}/CTPH",
        "kind": "multi_year_programme",
        "title": f"Chương trình phối hợp tổng hợp {start.year}-{end.year} (dữ liệu tổng hợp)",
        "province": f"Tỉnh mô phỏng {number:02d}",
        "parties": [{"agency": "UBND_TINH"}],
        "signed_on": start.isoformat(),
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "directory": str(directory.relative_to(folder)),
        "defaults": {
            "reminders": {"before": ["7d", "3d", "1d"], "notify": ["focal_point"]},
            "escalation": [
                {"after": "1d", "notify": ["focal_point", "head_of_agency"]},
                {"after": "5d", "notify": ["head_of_agency", "aggregator"]},
                {"after": "10d", "notify": ["provincial_leadership", "head_of_agency"]},
            ],
        },
        "reporting": [
            {
                "id": "bao-cao-6-thang",
                "title": "Báo cáo kết quả công tác dân vận 6 tháng (tổng hợp)",
                "deliverable": "report",
                "owners": {"groups": ["thanh_vien"]},
                "recipient": "SNV",
                "due": {"kind": "recurring", "month": "5,11", "day": 15, "label": "{year}-{month}"},
            }
        ],
    }
    path = folder / f"{code}-{label}.yaml"
    path.write_text(
        "# Synthetic benchmark agreement: made-up programme.\n"
        + yaml.safe_dump(document, allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    return path
