"""The agreement workflow's `facts` query (the engine's side of a consolidated report) and
`activities.reporting.report_inputs` (the stored side), against real parts: the time-skipping
server, the worker with the real workflows, SQLite."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import ROOT, TEST_CREDENTIAL, ZONE, harness

from accord.cli.events import send_event
from accord.deploy import build_input, start_agreement
from accord.reporting import agreement_facts
from activities.models import AuditEntry, TaskState
from activities.reporting import report_inputs
from activities.store import audit_rows
from agreements.loader import load_agreement
from agreements.models import OfficerRole
from infra import db
from reports.model import AgencyFact, ExtensionFact, WaiverFact
from workflows.payloads import EventRecord

JOINT = """\
id: su-kien-chung
document_number: 19/KH-TEST
kind: yearly_plan
title: Kế hoạch thử nghiệm báo cáo chung sau sự kiện
province: Tỉnh Mẫu
parties:
  - agency: UBND_TINH
signed_on: {year}-01-04
period:
  start: {year}-01-01
  end: {year}-12-31
directory: directory.yaml
defaults:
  reminders:
    before: [2d]
    notify: [focal_point]
  escalation:
    - after: 1d
      notify: [head_of_agency]
reporting:
  - id: bao-cao-chung
    title: Báo cáo chung trong vòng 5 ngày sau hội nghị
    deliverable: report
    owners:
      agencies: [STP, SNV]
      jointly: true
    recipient: UBND_TINH
    due: {{kind: after_event, event: hoi-nghi, within: 5d}}
  - id: bao-cao-nam
    title: Báo cáo năm
    deliverable: report
    owners:
      agencies: [STP, BTGDV]
    recipient: SNV
    due: {{kind: fixed, before: {annual}}}
"""
ID = "su-kien-chung"


def at(day: date, hour: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=ZONE)


def weekday_from(day: date, weekday: int) -> date:
    return day + timedelta(days=(weekday - day.weekday()) % 7)


async def test_facts_list_waiting_and_started_tasks_and_add_nothing_to_history(
    tmp_path: Path,
) -> None:
    (tmp_path / "directory.yaml").write_text(
        (ROOT / "tests" / "agreements" / "forms" / "directory.yaml").read_text()
    )
    async with harness(tmp_path, directory_path=tmp_path / "directory.yaml") as h:
        # Next year on the server's clock (today's real time): nothing has opened yet.
        year = (await h.env.get_current_time()).astimezone(ZONE).year + 1
        # The conference on a Tuesday in June: within 5 days, the last day a Sunday, moved to
        # Monday, so due the Tuesday after 00:00 (no holiday in June). The annual report due
        # before a Friday in December (its last day a Thursday).
        conference = weekday_from(date(year, 6, 8), 1)
        joint_due = at(conference + timedelta(days=7))
        annual = weekday_from(date(year, 12, 10), 4)
        joint_task = f"{ID}/bao-cao-chung/SNV+STP/{conference.isoformat()}"
        (tmp_path / "joint.yaml").write_text(JOINT.format(year=year, annual=annual.isoformat()))
        loaded = load_agreement(tmp_path / "joint.yaml")
        deployed = await start_agreement(h.env.client, build_input(loaded), task_queue=h.task_queue)
        await send_event(
            h.env.client,
            ID,
            EventRecord(actor=h.actor("SNV", OfficerRole.ADMIN), event="hoi-nghi", day=conference),
            TEST_CREDENTIAL,
            received_at=await h.env.get_current_time(),
        )
        handle = h.env.client.get_workflow_handle(deployed.workflow_id)

        # The plan's year has not begun on the server's clock: every task still waits.
        facts = await agreement_facts(h.env.client, ID)
        now = await h.env.get_current_time()
        assert abs(facts.as_of - now) < timedelta(minutes=1)
        assert (facts.agreement_id, facts.tenant, facts.document_number) == (
            ID,
            "tinh-mau",
            "19/KH-TEST",
        )
        assert (facts.period_start, facts.period_end) == (date(year, 1, 1), date(year, 12, 31))
        assert list(facts.obligations) == ["bao-cao-chung", "bao-cao-nam"]
        assert facts.obligations["bao-cao-nam"].recipient == "SNV"
        assert facts.obligations["bao-cao-chung"].title.startswith("Báo cáo chung")
        assert facts.calendar == build_input(loaded).plan.calendar
        waiting = {
            t.task_id: (t.agency, t.co_owners, t.period_label, t.state, t.due_at)
            for t in facts.tasks
        }
        assert waiting == {
            joint_task: ("SNV", ["STP"], conference.isoformat(), None, joint_due),
            f"{ID}/bao-cao-nam/STP/{year}": ("STP", [], str(year), None, at(annual)),
            f"{ID}/bao-cao-nam/BTGDV/{year}": (
                "BTGDV",
                [],
                str(year),
                None,
                at(annual),
            ),
        }

        # Past the joint task's deadline: started (from the ledger), overdue, escalated.
        await h.env.sleep(at(joint_due.date() + timedelta(days=2), 12) - now)

        async def joint_escalated() -> Any:
            facts = await agreement_facts(h.env.client, ID)
            joint = next(t for t in facts.tasks if t.task_id == joint_task)
            return joint if joint.escalation_level >= 1 else None

        async with asyncio.timeout(30):
            while (joint := await joint_escalated()) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        assert (joint.agency, joint.co_owners, joint.obligation_id) == (
            "SNV",
            ["STP"],
            "bao-cao-chung",
        )
        assert joint.state is TaskState.OVERDUE and not joint.closed
        assert joint.due_at == joint_due
        # Queries leave no trace: asking again adds no event.
        count = len([e async for e in handle.fetch_history_events()])
        await agreement_facts(h.env.client, ID)
        await agreement_facts(h.env.client, ID)
        assert len([e async for e in handle.fetch_history_events()]) == count

        # The stored side: agencies in the directory's order, not the codes' order.
        with h.sessions() as session:
            db.add_audit_rows(
                session,
                rows=audit_rows(
                    [
                        AuditEntry(
                            event_key=f"{joint_task}/waived/t",
                            at=now,
                            agreement_id=ID,
                            task_id=joint_task,
                            actor="quan-tri-snv",
                            action="waived",
                            detail={"reason": "Đã báo cáo trực tiếp tại hội nghị"},
                            tenant="tinh-mau",
                        ),
                        AuditEntry(
                            event_key=f"{ID}/bao-cao-nam/STP/{year}/extension_approved/t",
                            at=now,
                            agreement_id=ID,
                            task_id=f"{ID}/bao-cao-nam/STP/{year}",
                            actor="quan-tri-snv",
                            action="extension_approved",
                            detail={"new_due": f"{year}-12-24", "note": ""},
                            tenant="tinh-mau",
                        ),
                    ]
                ),
            )
            session.commit()
            inputs = report_inputs(session, facts)
        assert inputs.province == "Tỉnh Mẫu"
        assert [a.code for a in inputs.agencies] == [a.code for a in h.directory.agencies]
        assert inputs.agencies[0] == AgencyFact(code="UBND_TINH", name=h.directory.agencies[0].name)
        assert [a.code for a in inputs.agencies] != sorted(a.code for a in inputs.agencies)
        assert inputs.waivers == [
            WaiverFact(task_id=joint_task, at=now, reason="Đã báo cáo trực tiếp tại hội nghị")
        ]
        assert inputs.extensions == [
            ExtensionFact(
                task_id=f"{ID}/bao-cao-nam/STP/{year}", at=now, new_due=date(year, 12, 24)
            )
        ]
        assert inputs.submissions == []
