"""A demo agreement whose deadlines are minutes away, for a newcomer's first run.

Two agencies owe a report due six minutes after start. Both get reminders; Sở Tư pháp submits
on time (the demo sends its report after the first reminder), so its officers get a receipt;
UBND huyện Lệ Thủy never submits, so it goes overdue and climbs the escalation ladder.

Demo data only: nothing here is used by a real agreement.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from accord.deploy import build_input, start_agreement
from activities.models import Actor
from agreements.expansion import expand
from agreements.loader import LoadedAgreement, load_directory
from agreements.models import Agreement, OfficerRole
from infra import db
from workflows.obligation import ObligationWorkflow
from workflows.payloads import AgreementInput, SubmitReport, task_workflow_id

log = logging.getLogger("accord.demo")

DUE_AFTER = timedelta(minutes=6)
SUBMIT_AFTER = timedelta(minutes=3)
ON_TIME_AGENCY = "STP"
LATE_AGENCY = "UBND_LE_THUY"


def demo_agreement(now: datetime, directory_file: str) -> Agreement:
    today = now.date()
    return Agreement.model_validate(
        {
            "id": f"demo-{now:%Y%m%d-%H%M%S}",
            "document_number": f"DEMO-{now:%H%M%S}/KH-UBND",
            "kind": "implementation_plan",
            "title": "Kế hoạch trình diễn Accord (hạn nộp sau vài phút)",
            "province": "Quảng Bình",
            "parties": [{"agency": "UBND_TINH"}],
            "signed_on": today.isoformat(),
            "period": {"start": today.isoformat(), "end": (today + timedelta(days=1)).isoformat()},
            "directory": directory_file,
            "defaults": {
                "reminders": {"before": ["4m", "2m"], "notify": ["focal_point"]},
                "escalation": [
                    {"after": "1m", "notify": ["focal_point", "head_of_agency"]},
                    {"after": "2m", "notify": ["head_of_agency", "aggregator"]},
                    {"after": "3m", "notify": ["provincial_leadership"]},
                ],
            },
            "reporting": [
                {
                    "id": "bao-cao-trinh-dien",
                    "title": "Báo cáo kết quả công tác dân vận chính quyền (trình diễn)",
                    "deliverable": "report",
                    "owners": {"agencies": [ON_TIME_AGENCY, LATE_AGENCY]},
                    "recipient": "SNV",
                    "due": {
                        "kind": "fixed",
                        "before": (today + timedelta(days=1)).isoformat(),
                        "label": "demo",
                    },
                }
            ],
        }
    )


def demo_input(loaded: LoadedAgreement, now: datetime) -> AgreementInput:
    """The plan with its due instant moved to a few minutes from now."""
    base = build_input(loaded)
    due_at = (now + DUE_AFTER).astimezone(base.plan.starts_at.tzinfo).replace(microsecond=0)
    waiting = [t.model_copy(update={"due_at": due_at, "opens_at": now}) for t in base.waiting]
    plan = base.plan.model_copy(
        update={
            "starts_at": now,
            "ends_at": due_at + timedelta(minutes=5),
            "closes_at": due_at + timedelta(minutes=8),
        }
    )
    return base.model_copy(update={"plan": plan, "waiting": waiting})


async def start_demo(
    client: Client,
    agreements_dir: Path,
    *,
    session_factory: sessionmaker[Session],
    task_queue: str,
) -> None:
    directory_path = agreements_dir / "directory" / "quang-binh.yaml"
    directory = load_directory(directory_path)
    now = datetime.now().astimezone()
    agreement = demo_agreement(now, str(directory_path))
    loaded = LoadedAgreement(directory_path, agreement, directory, expand(agreement, directory))
    input = demo_input(loaded, now)
    with session_factory() as session:
        db.register_agreement(
            session, agreement_id=input.plan.agreement_id, tenant=directory.tenant
        )
        db.upsert_directory(session, directory=directory)
    deployed = await start_agreement(client, input, task_queue=task_queue)
    due_at = input.waiting[0].due_at
    assert due_at is not None
    submit_at = (now + SUBMIT_AFTER).astimezone(due_at.tzinfo)
    print(
        f"demo {deployed.workflow_id}: 2 tasks due {due_at:%H:%M} ({agreement.time_zone}); "
        f"{ON_TIME_AGENCY} submits at {submit_at:%H:%M}, {LATE_AGENCY} never does "
        "(escalation 1, 2 and 3 minutes after the due time)",
        flush=True,
    )
    await asyncio.sleep(SUBMIT_AFTER.total_seconds())
    on_time = next(t for t in input.waiting if t.agency == ON_TIME_AGENCY)
    with session_factory() as session:
        officer = db.officers_for(
            session,
            tenant=directory.tenant,
            agency=ON_TIME_AGENCY,
            role=OfficerRole.FOCAL_POINT,
        )[0]
        actor = Actor(
            officer_id=officer.id,
            tenant=directory.tenant,
            agency=ON_TIME_AGENCY,
            roles=[OfficerRole(r) for r in officer.roles],
        )
    result = await client.get_workflow_handle(task_workflow_id(on_time.task_id)).execute_update(
        ObligationWorkflow.submit_report,
        SubmitReport(actor=actor, summary="Báo cáo trình diễn: đã hoàn thành các nội dung."),
    )
    print(f"demo: {on_time.task_id} submitted: {result.message}", flush=True)
