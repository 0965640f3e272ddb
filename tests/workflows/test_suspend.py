"""Issue 17, point 2 on the engine: a programme suspended for three months (Tue 01/06 to Wed
01/09/2027, 09:00) and resumed, once with its deadlines moved by the suspended time and once
not. No reminder or escalation goes out while it is suspended; a task whose window opens
meanwhile starts suspended; the deadlines after the resume are worked out by hand below.

Real parts: the time-skipping server, the real worker, the SMTP sink, SQLite. Written for
2027, moved to a later year with 2027's calendar when needed (clock.py).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from clock import scenario_year, shift_years
from harness import harness, sent_at
from living import deploy, expand, local, mails, move_to, task, wait_for, write_agreement
from sqlalchemy import select
from temporalio.client import WorkflowUpdateFailedError

from agreements.models import OfficerRole
from infra import db
from workflows.agreement import AgreementWorkflow
from workflows.obligation import ObligationWorkflow
from workflows.payloads import (
    AmendmentRequest,
    ChangeScope,
    ResumptionRequest,
    SuspensionRequest,
    TaskState,
)

YEAR = scenario_year(2027, date(2027, 5, 1))


def y(text: str) -> str:
    return shift_years(text, 2027, YEAR)


PROGRAMME = y("""\
id: tam-dung-2027
document_number: 22/CTr-TEST
kind: yearly_plan
title: Chương trình thử nghiệm tạm dừng
province: Tỉnh Mẫu
parties:
  - agency: UBND_TINH
signed_on: 2027-01-04
period:
  start: 2027-01-01
  end: 2027-12-31
directory: directory.yaml
defaults:
  reminders:
    before: [7d, 1d]
    notify: [focal_point]
  escalation:
    - after: 1d
      notify: [head_of_agency]
    - after: 10d
      notify: [provincial_leadership]
items:
  - number: "1"
    title: Thực hiện đề án
    obligations:
      - id: bao-cao-p
        title: Báo cáo tiến độ đề án
        deliverable: report
        owners:
          agencies: [SNV]
        recipient: UBND_TINH
        due:
          kind: fixed
          before: 2027-07-15
      - id: bao-cao-r
        title: Báo cáo kết quả đề án
        deliverable: report
        owners:
          agencies: [STP]
        recipient: UBND_TINH
        due:
          kind: fixed
          before: 2027-08-18
""")
AGREEMENT = y("tam-dung-2027")
P = f"{AGREEMENT}/bao-cao-p/SNV/{YEAR}"
R = f"{AGREEMENT}/bao-cao-r/STP/{YEAR}"
SUSPENDED_BY = y("Quyết định số 12/QĐ-UBND ngày 31/05/2027")
RESUMED_BY = y("Quyết định số 30/QĐ-UBND ngày 31/08/2027")


@pytest.mark.parametrize("shift", [True, False], ids=["deadlines-moved", "deadlines-kept"])
async def test_a_programme_suspended_for_three_months_and_resumed(
    tmp_path: Path, shift: bool
) -> None:
    path = write_agreement(tmp_path / "ctr", "tam-dung.yaml", PROGRAMME)
    async with harness(tmp_path, directory_path=path.parent / "directory.yaml") as h:
        agreement = await deploy(h, path)
        admin = h.actor("SNV", OfficerRole.ADMIN)
        # Tue 01/06/2027 09:00: P (due before Thu 15/07) opened on 09/05 (67 days before);
        # R (before Wed 18/08) opens on Sat 12/06.
        await move_to(h, local(y("2027-06-01T09:00")))
        suspension = SuspensionRequest(
            actor=admin,
            suspension_id="tam-dung-de-an",
            document=SUSPENDED_BY,
            reason="Tạm dừng việc thực hiện Đề án để rà soát",
        )
        suspended = await h.update(agreement, AgreementWorkflow.suspend, suspension)
        assert suspended.applied and suspended.tasks == [P]
        again = await h.update(agreement, AgreementWorkflow.suspend, suspension)
        assert not again.applied and again.tasks == []

        # Refused: a scope the programme does not have, a suspension that is not in force.
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await h.update(
                agreement,
                AgreementWorkflow.suspend,
                suspension.model_copy(
                    update={"suspension_id": "khac", "scope": ChangeScope(item="9")}
                ),
            )
        assert "the agreement has no item '9'" in str(refused.value.cause)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await h.update(
                agreement,
                AgreementWorkflow.resume,
                ResumptionRequest(
                    actor=admin,
                    suspension_id="khong-co",
                    document=RESUMED_BY,
                    reason="x",
                    shift_deadlines=True,
                ),
            )
        assert "no suspension 'khong-co' is in force" in str(refused.value.cause)

        overview = await agreement.query(AgreementWorkflow.overview)
        assert [s.suspension_id for s in overview.suspensions] == ["tam-dung-de-an"]
        assert overview.suspensions[0].document == SUSPENDED_BY
        details = (await agreement.query("__temporal_workflow_metadata")).current_details
        assert (
            f"- Tạm dừng toàn bộ văn bản từ {y('01/06/2027')} 09:0" in details
            and SUSPENDED_BY in details
        )

        # Wed 01/09/2027 09:00, three months later: R started on 12/06, suspended.
        await move_to(h, local(y("2027-09-01T09:00")))
        r_status = await task(h, R).query(ObligationWorkflow.status)
        assert r_status.state is TaskState.SUSPENDED
        assert [s.suspension_id for s in r_status.suspensions] == ["tam-dung-de-an"]
        p_status = await task(h, P).query(ObligationWorkflow.status)
        assert p_status.state is TaskState.SUSPENDED
        # Nothing chased while suspended: P's reminders (08/07, 14/07), its escalations (from
        # 16/07) and R's (from 11/08) all fell inside the suspension.
        assert mails(h, "reminder") == [] and mails(h, "escalation") == []
        assert mails(h, "suspended", P)

        resumed = await h.update(
            agreement,
            AgreementWorkflow.resume,
            ResumptionRequest(
                actor=admin,
                suspension_id="tam-dung-de-an",
                document=RESUMED_BY,
                reason="Tiếp tục thực hiện Đề án",
                shift_deadlines=shift,
            ),
        )
        assert resumed.applied and resumed.tasks == [P, R]
        resumed_at = local(y("2027-09-01T09:00"))

        async def both_resumed() -> bool:
            states = [(await task(h, t).query(ObligationWorkflow.status)).state for t in (P, R)]
            return TaskState.SUSPENDED not in states

        await wait_for(both_resumed)
        p_status = await task(h, P).query(ObligationWorkflow.status)
        r_status = await task(h, R).query(ObligationWorkflow.status)
        if shift:
            # P suspended from 01/06 to 01/09: 92 days. Before 15/07 + 92 days = before Fri
            # 15/10/2027 (last day Thu 14/10, a working day).
            assert p_status.due_at == local(y("2027-10-15T00:00"))
            # R suspended from its start, Sat 12/06, to 01/09: 81 days. Before 18/08 + 81 days
            # = before Sun 07/11; its last day, Sat 06/11, is not a working day: art. 148
            # moves it to Mon 08/11, so due 09/11/2027 00:00.
            assert r_status.due_at == local(y("2027-11-09T00:00"))
            assert (p_status.state, r_status.state) == (TaskState.PENDING, TaskState.PENDING)
        else:
            assert p_status.due_at == local(y("2027-07-15T00:00"))
            assert r_status.due_at == local(y("2027-08-18T00:00"))
            assert (p_status.state, r_status.state) == (TaskState.OVERDUE, TaskState.OVERDUE)
        assert mails(h, "resumed", P) and mails(h, "resumed", R)
        assert all(sent_at(m) >= resumed_at for m in mails(h, "reminder") + mails(h, "escalation"))

        if shift:
            # Chased again towards the new deadline: P's 7-day reminder on Fri 08/10.
            await move_to(h, local(y("2027-10-09T12:00")))
            assert [f"{sent_at(m):%Y-%m-%d}" for m in mails(h, "reminder", P)] == [y("2027-10-08")]
            assert mails(h, "escalation", P) == []

        overview = await agreement.query(AgreementWorkflow.overview)
        assert overview.suspensions == []
        with h.sessions() as session:
            actions = [
                row.action
                for row in session.scalars(
                    select(db.AuditRow)
                    .where(db.AuditRow.task_id.is_(None))
                    .order_by(db.AuditRow.at)
                ).all()
            ]
        assert actions == ["agreement_suspended", "agreement_resumed"]


async def test_an_item_suspended_then_renumbered_by_an_amendment_stays_covered(
    tmp_path: Path,
) -> None:
    """Item 1 suspended, then an amendment renumbers it 2: the suspension still covers its
    obligations (R, opening meanwhile, starts suspended) and the resume reaches them."""
    signed = write_agreement(tmp_path / "v1", "tam-dung.yaml", PROGRAMME)
    renumbered = write_agreement(
        tmp_path / "v2", "tam-dung.yaml", PROGRAMME.replace('  - number: "1"', '  - number: "2"')
    )
    async with harness(tmp_path, directory_path=signed.parent / "directory.yaml") as h:
        agreement = await deploy(h, signed)
        admin = h.actor("SNV", OfficerRole.ADMIN)
        await move_to(h, local(y("2027-06-01T09:00")))
        suspended = await h.update(
            agreement,
            AgreementWorkflow.suspend,
            SuspensionRequest(
                actor=admin,
                suspension_id="tam-dung-muc-1",
                document=SUSPENDED_BY,
                reason="Tạm dừng nội dung 1",
                scope=ChangeScope(item="1"),
            ),
        )
        assert suspended.tasks == [P]
        expanded = expand(renumbered)
        amended = await h.update(
            agreement,
            AgreementWorkflow.amend,
            AmendmentRequest(
                actor=admin,
                amendment_id="danh-so-lai",
                document=y("Kế hoạch số 40/KH-UBND ngày 02/06/2027"),
                plan=expanded.plan,
                tasks=expanded.waiting,
            ),
        )
        assert amended.applied and amended.withdrawn == [] and amended.added == []

        # R opened on Sat 12/06 under item 2: started suspended all the same.
        await move_to(h, local(y("2027-09-01T09:00")))
        statuses = [await task(h, t).query(ObligationWorkflow.status) for t in (P, R)]
        assert [s.state for s in statuses] == [TaskState.SUSPENDED, TaskState.SUSPENDED]
        assert mails(h, "reminder") == [] and mails(h, "escalation") == []

        resumed = await h.update(
            agreement,
            AgreementWorkflow.resume,
            ResumptionRequest(
                actor=admin,
                suspension_id="tam-dung-muc-1",
                document=RESUMED_BY,
                reason="Tiếp tục",
                shift_deadlines=False,
            ),
        )
        assert resumed.tasks == [P, R]

        async def both_overdue() -> bool:
            states = [(await task(h, t).query(ObligationWorkflow.status)).state for t in (P, R)]
            return states == [TaskState.OVERDUE, TaskState.OVERDUE]

        await wait_for(both_overdue)
