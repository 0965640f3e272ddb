"""Issue 17, point 3 on the engine: a succession applied to a running agreement. Sở Tư pháp
(STP) is succeeded by UBND xã A (XA_A) from Thu 01/07/2027, sent ten days before: at local
midnight of that day STP's open task passes to XA_A, and so does its task not started yet; the
task SNV owes to STP is re-addressed to XA_A; STP's task closed in June keeps its history
under STP. After the day no mail reaches STP's officers but the head's transfer notice.

Real parts: the time-skipping server, the real worker, the SMTP sink, SQLite. Written for
2027, moved to a later year with 2027's calendar when needed (clock.py).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from clock import scenario_year, shift_years
from harness import Harness, harness, recipients, sent_at
from living import deploy, local, mails, move_to, task, to, write_agreement
from sqlalchemy import select
from temporalio.client import WorkflowHandle

from agreements.models import OfficerRole
from agreements.succession import Transfer
from infra import db
from workflows.agreement import AgreementWorkflow
from workflows.obligation import ObligationWorkflow
from workflows.payloads import ChangeResult, SubmitReport, SuccessionRequest, TaskState

YEAR = scenario_year(2027, date(2027, 4, 1))


def y(text: str) -> str:
    return shift_years(text, 2027, YEAR)


def obligation(key: str, owner: str, recipient: str, before: str) -> str:
    return f"""\
      - id: {key}
        title: Báo cáo {key}
        deliverable: report
        owners:
          agencies: [{owner}]
        recipient: {recipient}
        due:
          kind: fixed
          before: {before}
"""


PLAN = y(
    """\
id: ke-thua-2027
document_number: 23/KH-TEST
kind: yearly_plan
title: Kế hoạch thử nghiệm kế thừa
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
      notify: [focal_point, head_of_agency]
items:
  - number: "1"
    title: Phổ biến pháp luật
    obligations:
"""
    + obligation("bao-cao-dau", "STP", "SNV", "2027-06-15")
    + obligation("bao-cao-giua", "STP", "SNV", "2027-07-20")
    + obligation("bao-cao-cuoi", "STP", "SNV", "2027-10-15")
    + obligation("bao-cao-snv", "SNV", "STP", "2027-07-22")
)
AGREEMENT = y("ke-thua-2027")
CLOSED = f"{AGREEMENT}/bao-cao-dau/STP/{YEAR}"
OPEN = f"{AGREEMENT}/bao-cao-giua/STP/{YEAR}"
WAITING = f"{AGREEMENT}/bao-cao-cuoi/STP/{YEAR}"
TO_STP = f"{AGREEMENT}/bao-cao-snv/SNV/{YEAR}"
STP_OFFICERS = {"dau-moi.stp@mau.example", "giam-doc.stp@mau.example"}
FOCAL_XA_A = "dau-moi.xa-a@mau.example"
HEAD_STP = "giam-doc.stp@mau.example"
DOCUMENT = y("Nghị quyết số 5/NQ-HĐND ngày 20/06/2027")


async def succeed_on_1_july(
    h: Harness,
    agreement: WorkflowHandle[AgreementWorkflow, Any],
    succession_id: str,
    transfer: Transfer,
) -> ChangeResult:
    """An admin's succession of one agency, effective Thu 01/07 (make_histories.py too)."""
    result: ChangeResult = await h.update(
        agreement,
        AgreementWorkflow.succeed,
        SuccessionRequest(
            actor=h.actor("SNV", OfficerRole.ADMIN),
            succession_id=succession_id,
            document=DOCUMENT,
            effective=date(YEAR, 7, 1),
            transfers=[transfer],
        ),
    )
    return result


async def test_a_succession_passes_open_and_waiting_tasks_at_its_effective_day(
    tmp_path: Path,
) -> None:
    path = write_agreement(tmp_path / "kh", "ke-thua.yaml", PLAN)
    async with harness(tmp_path, directory_path=path.parent / "directory.yaml") as h:
        agreement = await deploy(h, path)
        # Thu 10/06/2027: STP reports its first task (due before Tue 15/06) on time.
        await move_to(h, local(y("2027-06-10T10:00")))
        submitted = await h.update(
            task(h, CLOSED),
            ObligationWorkflow.submit_report,
            SubmitReport(actor=h.actor("STP"), summary="Báo cáo đầu kỳ."),
        )
        assert submitted.state is TaskState.DONE_ON_TIME

        # Sun 20/06: the succession is sent, effective Thu 01/07; HUYEN_X, which owes nothing
        # here, passing to PHUONG_B is fine.
        await move_to(h, local(y("2027-06-20T10:00")))
        admin = h.actor("SNV", OfficerRole.ADMIN)
        request = SuccessionRequest(
            actor=admin,
            succession_id="sap-nhap-stp",
            document=DOCUMENT,
            effective=date(YEAR, 7, 1),
            transfers=[
                Transfer(from_agency="STP", to_agency="XA_A"),
                Transfer(from_agency="HUYEN_X", to_agency="PHUONG_B"),
            ],
        )
        accepted = await h.update(agreement, AgreementWorkflow.succeed, request)
        assert accepted.applied and accepted.tasks == []  # not effective yet
        again = await h.update(agreement, AgreementWorkflow.succeed, request)
        assert not again.applied
        facts = await agreement.query(AgreementWorkflow.facts)
        assert {t.task_id: t.agency for t in facts.tasks}[OPEN] == "STP"

        # Wed 30/06 23:00: still STP's.
        await move_to(h, local(y("2027-06-30T23:00")))
        status = await task(h, OPEN).query(ObligationWorkflow.status)
        assert status.task.agency == "STP"

        # Fri 02/07: passed at midnight of 01/07.
        await move_to(h, local(y("2027-07-02T09:00")))
        facts = await agreement.query(AgreementWorkflow.facts)
        owners = {t.task_id: (t.agency, t.original_agency, t.state) for t in facts.tasks}
        assert owners[CLOSED] == ("STP", None, TaskState.DONE_ON_TIME)
        assert owners[OPEN] == ("XA_A", "STP", TaskState.PENDING)
        assert owners[WAITING] == ("XA_A", "STP", None)
        assert owners[TO_STP] == ("SNV", None, TaskState.PENDING)
        status = await task(h, OPEN).query(ObligationWorkflow.status)
        assert (status.task.agency, status.task.original_agency) == ("XA_A", "STP")
        readdressed = await task(h, TO_STP).query(ObligationWorkflow.status)
        assert (readdressed.task.agency, readdressed.task.recipient) == ("SNV", "XA_A")
        plan = await agreement.query(AgreementWorkflow.current_plan)
        assert plan.obligations["bao-cao-snv"].recipient == "XA_A"
        closed = await task(h, CLOSED).query(ObligationWorkflow.status)
        assert closed.task.agency == "STP" and closed.task.original_agency is None

        transferred = mails(h, "transferred", OPEN)
        assert {FOCAL_XA_A, HEAD_STP} <= set(to(transferred))
        assert all(sent_at(m) >= local(y("2027-07-01T00:00")) for m in transferred)

        # Sun 25/07: OPEN (before Tue 20/07) was reminded on Tue 13/07 and Mon 19/07 and
        # escalated on Wed 21/07, all to XA_A; TO_STP reminded SNV. Nothing to STP's officers
        # since 01/07 but the head's transfer notice.
        await move_to(h, local(y("2027-07-25T12:00")))
        reminders = mails(h, "reminder", OPEN)
        assert [f"{sent_at(m):%Y-%m-%d}" for m in reminders] == [
            y("2027-07-13"),
            y("2027-07-19"),
        ]
        assert to(reminders) == [FOCAL_XA_A]
        assert FOCAL_XA_A in to(mails(h, "escalation", OPEN))
        late_to_stp = [
            (str(m["X-Accord-Kind"]), str(m["X-Accord-Task"]))
            for m in h.mails()
            if sent_at(m) >= local(y("2027-07-01T00:00"))
            and STP_OFFICERS & set(recipients(m))
            and str(m["X-Accord-Kind"]) != "transferred"
        ]
        assert late_to_stp == []
        assert set(
            to([m for m in mails(h, "transferred") if STP_OFFICERS & set(recipients(m))])
        ) == {HEAD_STP}

        # Tue 10/08: WAITING opened on Mon 09/08 under XA_A, its ID still STP's.
        await move_to(h, local(y("2027-08-10T12:00")))
        started = await task(h, WAITING).query(ObligationWorkflow.status)
        assert (started.task.agency, started.task.original_agency) == ("XA_A", "STP")

        with h.sessions() as session:
            keys = sorted(
                row.event_key
                for row in session.scalars(
                    select(db.AuditRow).where(db.AuditRow.action == "succession_applied")
                ).all()
            )
        assert keys == [
            f"{AGREEMENT}/succession/sap-nhap-stp",
            f"{AGREEMENT}/succession/sap-nhap-stp/applied",
        ]


async def test_a_chain_of_successions_on_one_day_ends_with_the_last_successor(
    tmp_path: Path,
) -> None:
    """STP → XA_A and XA_A → PHUONG_B, both from 01/07, sent as two successions whose IDs
    sort the second first: STP's open task passes to PHUONG_B, by one order, whatever the
    IDs' order (applied by ID, it stopped at XA_A)."""
    path = write_agreement(tmp_path / "kh", "ke-thua.yaml", PLAN)
    async with harness(tmp_path, directory_path=path.parent / "directory.yaml") as h:
        agreement = await deploy(h, path)
        await move_to(h, local(y("2027-06-20T10:00")))
        for succession_id, transfer in (
            ("1-xa-a", Transfer(from_agency="XA_A", to_agency="PHUONG_B")),
            ("2-stp", Transfer(from_agency="STP", to_agency="XA_A")),
        ):
            accepted = await succeed_on_1_july(h, agreement, succession_id, transfer)
            assert accepted.applied

        await move_to(h, local(y("2027-07-02T09:00")))
        facts = await agreement.query(AgreementWorkflow.facts)
        owners = {t.task_id: (t.agency, t.original_agency) for t in facts.tasks}
        assert owners[OPEN] == ("PHUONG_B", "STP")
        assert owners[WAITING] == ("PHUONG_B", "STP")
        status = await task(h, OPEN).query(ObligationWorkflow.status)
        assert (status.task.agency, status.task.original_agency) == ("PHUONG_B", "STP")
        assert [d.kind for d in status.decisions] == ["transferred"]
        transferred = to(mails(h, "transferred", OPEN))
        assert "dau-moi.phuong-b@mau.example" in transferred
        assert FOCAL_XA_A not in transferred


JOINT_PLAN = PLAN.replace(
    "          agencies: [STP]\n        recipient: SNV\n        due:\n          kind: fixed\n"
    "          before: " + y("2027-07-20"),
    "          agencies: [STP, SNV]\n          jointly: true\n        recipient: SNV\n"
    "        due:\n          kind: fixed\n          before: " + y("2027-07-20"),
)
JOINT_OPEN = f"{AGREEMENT}/bao-cao-giua/SNV+STP/{YEAR}"  # led by SNV, first in the directory


@pytest.mark.parametrize(
    ("successor", "owners"),
    [("XA_A", ("SNV", ["XA_A"])), ("SNV", ("SNV", []))],
    ids=["co-owner-replaced", "co-owner-merged-into-lead"],
)
async def test_a_joint_tasks_co_owner_passes_and_the_facts_say_so(
    tmp_path: Path, successor: str, owners: tuple[str, list[str]]
) -> None:
    """SNV and STP owe one report jointly, led by SNV; STP passes to `successor` from 01/07:
    the task and the agreement's facts (what reports read) show the lead unchanged and the new
    co-owners (the facts kept STP; merged into the lead, the task kept it too)."""
    assert JOINT_PLAN != PLAN
    path = write_agreement(tmp_path / "kh", "ke-thua.yaml", JOINT_PLAN)
    async with harness(tmp_path, directory_path=path.parent / "directory.yaml") as h:
        agreement = await deploy(h, path)
        await move_to(h, local(y("2027-06-20T10:00")))
        await succeed_on_1_july(
            h, agreement, "stp", Transfer(from_agency="STP", to_agency=successor)
        )
        await move_to(h, local(y("2027-07-02T09:00")))
        status = await task(h, JOINT_OPEN).query(ObligationWorkflow.status)
        assert (status.task.agency, status.task.co_owners) == owners
        facts = await agreement.query(AgreementWorkflow.facts)
        fact = next(t for t in facts.tasks if t.task_id == JOINT_OPEN)
        assert (fact.agency, fact.co_owners, fact.original_agency) == (*owners, None)
