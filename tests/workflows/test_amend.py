"""Issue 17, point 1 on the engine: an amendment that adds an item, removes an obligation and
moves a date, applied to a running agreement (the update `accord amend` sends), then applied
again. Real parts: the time-skipping server, the worker with the real workflows and
activities, the SMTP sink (mail parsed), SQLite (audit rows).

Dates are worked out by hand in the comments, for 2027 (moved to a later year with the same
calendar when 2027's June is behind the clock; see clock.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from clock import scenario_year, shift_years
from harness import harness, recipients, sent_at
from living import body, deploy, expand, local, mails, move_to, task, to, wait_for, write_agreement
from pydantic import BaseModel
from sqlalchemy import select
from temporalio.client import WorkflowUpdateFailedError

from activities.models import Actor
from agreements.models import OfficerRole
from agreements.succession import Transfer
from infra import db
from workflows.agreement import AgreementWorkflow
from workflows.obligation import ObligationWorkflow
from workflows.payloads import (
    AmendmentRequest,
    ChangeScope,
    ResumptionRequest,
    SuccessionRequest,
    SuspensionRequest,
    TaskState,
)

# Ahead: New Year 2027, so that the agreement, deployed at the real now, continues as new then.
YEAR = scenario_year(2027, date(2027, 1, 2))


def y(text: str) -> str:
    return shift_years(text, 2027, YEAR)


HEAD = y("""\
id: song-2027
document_number: 21/KH-TEST
kind: yearly_plan
title: Kế hoạch thử nghiệm sửa đổi
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
""")
ITEM_1 = y("""\
  - number: "1"
    title: Tuyên truyền
    obligations:
      - id: bao-cao-a
        title: Báo cáo tuyên truyền của Sở Nội vụ
        deliverable: report
        owners:
          agencies: [SNV]
        recipient: UBND_TINH
        due:
          kind: fixed
          before: {a_due}
""")
OBLIGATION_B = y("""\
      - id: bao-cao-b
        title: Báo cáo tuyên truyền của Sở Tư pháp
        deliverable: report
        owners:
          agencies: [STP]
        recipient: UBND_TINH
        due:
          kind: fixed
          before: 2027-06-18
""")
ITEM_2 = y("""\
  - number: "2"
    title: Phổ biến pháp luật
    obligations:
      - id: bao-cao-c
        title: Báo cáo phổ biến pháp luật
        deliverable: report
        owners:
          agencies: [STP]
        recipient: UBND_TINH
        due:
          kind: fixed
          before: 2027-07-15
""")
REPORTING = y("""\
reporting:
  - id: bao-cao-nam
    title: Báo cáo năm
    deliverable: report
    owners:
      agencies: [SNV]
    recipient: UBND_TINH
    due:
      kind: fixed
      before: 2027-11-30
""")
SIGNED = HEAD + "items:\n" + ITEM_1.format(a_due=y("2027-06-15")) + OBLIGATION_B + REPORTING
AMENDED = HEAD + "items:\n" + ITEM_1.format(a_due=y("2027-06-30")) + ITEM_2 + REPORTING
DOCUMENT = y("Quyết định số 7/QĐ-UBND ngày 09/06/2027")
AGREEMENT = y("song-2027")
A = f"{AGREEMENT}/bao-cao-a/SNV/{YEAR}"
B = f"{AGREEMENT}/bao-cao-b/STP/{YEAR}"
C = f"{AGREEMENT}/bao-cao-c/STP/{YEAR}"
NAM = f"{AGREEMENT}/bao-cao-nam/SNV/{YEAR}"
FOCAL_SNV = "dau-moi.snv@mau.example"
FOCAL_STP = "dau-moi.stp@mau.example"


def amendment(path: Path, actor: Actor) -> AmendmentRequest:
    """As `accord amend` builds it: the new file's whole expansion, its ID a hash of the
    document and the new plan."""
    expanded = expand(path)
    digest = hashlib.sha256(
        (DOCUMENT + expanded.plan.model_dump_json() + str(len(expanded.waiting))).encode()
    ).hexdigest()[:24]
    return AmendmentRequest(
        actor=actor,
        amendment_id=f"amend-{digest}",
        document=DOCUMENT,
        plan=expanded.plan,
        tasks=expanded.waiting,
    )


async def test_an_amendment_applies_to_a_running_agreement_once(tmp_path: Path) -> None:
    signed = write_agreement(tmp_path / "v1", "song.yaml", SIGNED)
    amended = write_agreement(tmp_path / "v2", "song.yaml", AMENDED)
    async with harness(tmp_path, directory_path=signed.parent / "directory.yaml") as h:
        agreement = await deploy(h, signed)
        # Thursday 10/06/2027, noon: A (due before Tue 15/06) and B (before Fri 18/06) opened
        # 67 days before their due dates (60 days plus the longest reminder), A's 7-day
        # reminder went out on Tue 08/06; B's (Fri 11/06) not yet. The annual report waits.
        await move_to(h, local(y("2027-06-10T12:00")))
        before = await agreement.query(AgreementWorkflow.overview)
        assert (before.started, before.waiting, before.version) == (2, 1, None)
        assert [f"{sent_at(m):%Y-%m-%d}" for m in mails(h, "reminder", A)] == [y("2027-06-08")]
        assert mails(h, "reminder", B) == []

        admin = h.actor("SNV", OfficerRole.ADMIN)
        request = amendment(amended, admin)
        result = await h.update(agreement, AgreementWorkflow.amend, request)
        assert result.applied and result.version == 2
        assert result.added == [C]
        assert result.withdrawn == [B]
        assert result.moved == [A]

        overview = await agreement.query(AgreementWorkflow.overview)
        assert overview.version is not None
        assert (overview.version.number, overview.version.document) == (2, DOCUMENT)
        since = overview.version.in_force_since
        assert local(y("2027-06-10T12:00")) <= since < local(y("2027-06-10T12:05"))
        assert any("bao-cao-b" in line and "removed" in line for line in overview.version.summary)
        assert any(line == "item 2 added" for line in overview.version.summary)
        plan = await agreement.query(AgreementWorkflow.current_plan)
        assert sorted(plan.obligations) == ["bao-cao-a", "bao-cao-c", "bao-cao-nam"]
        # The Web UI details: the version in force, since when, by which document.
        details = (await agreement.query("__temporal_workflow_metadata")).current_details
        assert f"- Phiên bản 2, có hiệu lực từ {y('10/06/2027')} 12:0" in details
        assert DOCUMENT in details

        # B is withdrawn, its owners told which document withdrew it.
        outcome = await task(h, B).result()
        assert outcome.state is TaskState.WITHDRAWN
        withdrawn = mails(h, "withdrawn", B)
        assert withdrawn and FOCAL_STP in recipients(withdrawn[0])
        assert DOCUMENT in body(withdrawn[0])
        # C (due before Thu 15/07) opens at once: its window opened on 09/05.
        await wait_for(lambda: _started(agreement, 3))
        c_status = await task(h, C).query(ObligationWorkflow.status)
        assert c_status.due_at == local(y("2027-07-15T00:00"))

        # A now due before Wed 30/06: its reminders planned again, 7 days before (Wed 23/06)
        # and 1 day before (Tue 29/06); the one of 08/06 not sent again; no escalation.
        await move_to(h, local(y("2027-06-29T12:00")))
        a_status = await task(h, A).query(ObligationWorkflow.status)
        assert a_status.due_at == local(y("2027-06-30T00:00"))
        assert a_status.state is TaskState.PENDING
        assert [d.kind for d in a_status.decisions] == ["due_changed"]
        reminders = mails(h, "reminder", A)
        assert [f"{sent_at(m):%Y-%m-%d}" for m in reminders] == [
            y("2027-06-08"),
            y("2027-06-23"),
            y("2027-06-29"),
        ]
        assert all(recipients(m) == [FOCAL_SNV] for m in reminders)
        # One notice (one business key), to the owner's officers, each once.
        moved_mail = mails(h, "due_changed", A)
        assert len({str(m["X-Accord-Key"]) for m in moved_mail}) == 1
        assert len(moved_mail) == len({r for m in moved_mail for r in recipients(m)})
        assert FOCAL_SNV in recipients(moved_mail[0]) or FOCAL_SNV in to(moved_mail)
        assert mails(h, "escalation", A) == []

        # The same amendment again: nothing changes, no mail.
        sent = len(h.mails())
        again = await h.update(agreement, AgreementWorkflow.amend, request)
        assert not again.applied and again.version == 2
        assert (again.added, again.withdrawn, again.moved) == ([], [], [])
        after = await agreement.query(AgreementWorkflow.overview)
        assert after.version == overview.version
        assert (after.started, after.waiting) == (3, 1)
        await move_to(h, local(y("2027-06-29T12:30")))
        assert len(h.mails()) == sent

        with h.sessions() as session:
            rows = session.scalars(
                select(db.AuditRow).where(db.AuditRow.action == "agreement_amended")
            ).all()
        assert [(row.actor, row.channel) for row in rows] == [(admin.officer_id, "cli")]


async def _started(agreement: object, n: int) -> bool:
    overview = await agreement.query(AgreementWorkflow.overview)  # type: ignore[attr-defined]
    return bool(overview.started == n)


async def test_refused_amendments_change_nothing(tmp_path: Path) -> None:
    signed = write_agreement(tmp_path / "v1", "song.yaml", SIGNED)
    amended = write_agreement(tmp_path / "v2", "song.yaml", AMENDED)
    async with harness(tmp_path, directory_path=signed.parent / "directory.yaml") as h:
        agreement = await deploy(h, signed)
        admin = h.actor("SNV", OfficerRole.ADMIN)
        refused: list[str] = []
        for request in (
            amendment(amended, h.actor("SNV", OfficerRole.FOCAL_POINT)),
            amendment(amended, admin.model_copy(update={"tenant": "quang-binh"})),
        ):
            with pytest.raises(WorkflowUpdateFailedError) as error:
                await h.update(agreement, AgreementWorkflow.amend, request)
            refused.append(str(error.value.cause))
        # Unsigned: as a plain Temporal client would send it.
        with pytest.raises(WorkflowUpdateFailedError) as error:
            await agreement.execute_update(AgreementWorkflow.amend, amendment(amended, admin))
        refused.append(str(error.value.cause))
        # Another agreement's plan.
        other = amendment(amended, admin)
        other = other.model_copy(
            update={"plan": other.plan.model_copy(update={"agreement_id": "khac-2027"})}
        )
        with pytest.raises(WorkflowUpdateFailedError) as error:
            await h.update(agreement, AgreementWorkflow.amend, other)
        refused.append(str(error.value.cause))
        assert "only an admin may amend" in refused[0]
        assert "of quang-binh may not amend an agreement of tinh-mau" in refused[1]
        assert "claim: unsigned request" in refused[2]
        assert "the amendment is for khac-2027" in refused[3]
        # Signed for another update: refused as well.
        signed_other = await h.signed(
            agreement, AgreementWorkflow.suspend, amendment(amended, admin)
        )
        with pytest.raises(WorkflowUpdateFailedError):
            await agreement.execute_update(AgreementWorkflow.amend, signed_other)

        # The other changes, refused alike: by a focal point, by an admin of another tenant,
        # unsigned.
        focal = h.actor("SNV", OfficerRole.FOCAL_POINT)
        foreign = admin.model_copy(update={"tenant": "quang-binh"})
        changes: list[tuple[Any, Callable[[Actor], BaseModel], str]] = [
            (
                AgreementWorkflow.suspend,
                lambda actor: SuspensionRequest(
                    actor=actor, suspension_id="t", document=DOCUMENT, reason="x"
                ),
                "suspend",
            ),
            (
                AgreementWorkflow.resume,
                lambda actor: ResumptionRequest(
                    actor=actor,
                    suspension_id="t",
                    document=DOCUMENT,
                    reason="x",
                    shift_deadlines=False,
                ),
                "resume",
            ),
            (
                AgreementWorkflow.succeed,
                lambda actor: SuccessionRequest(
                    actor=actor,
                    succession_id="s",
                    document=DOCUMENT,
                    effective=date(YEAR, 7, 1),
                    transfers=[Transfer(from_agency="STP", to_agency="XA_A")],
                ),
                "apply a succession",
            ),
        ]
        for update, make, verb in changes:
            with pytest.raises(WorkflowUpdateFailedError) as error:
                await h.update(agreement, update, make(focal))
            assert f"only an admin may {verb}" in str(error.value.cause)
            with pytest.raises(WorkflowUpdateFailedError) as error:
                await h.update(agreement, update, make(foreign))
            assert "of quang-binh may not" in str(error.value.cause)
            with pytest.raises(WorkflowUpdateFailedError) as error:
                await agreement.execute_update(update, make(admin))
            assert "claim: unsigned request" in str(error.value.cause)

        overview = await agreement.query(AgreementWorkflow.overview)
        assert overview.version is None and overview.suspensions == []
        plan = await agreement.query(AgreementWorkflow.current_plan)
        assert sorted(plan.obligations) == ["bao-cao-a", "bao-cao-b", "bao-cao-nam"]
        # The succession never took: STP still owes B on its day.
        await move_to(h, local(y("2027-07-02T09:00")))
        facts = await agreement.query(AgreementWorkflow.facts)
        assert {t.task_id: t.agency for t in facts.tasks}[B] == "STP"
        # No change audited.
        changes_audited = (
            "agreement_amended",
            "agreement_suspended",
            "agreement_resumed",
            "succession_applied",
        )
        with h.sessions() as session:
            rows = session.scalars(select(db.AuditRow)).all()
        assert [r.action for r in rows if r.action in changes_audited] == []
        # The tasks' own entries: their notices and their deadlines passing, nothing ordered.
        assert {r.action for r in rows} <= {"notification_sent", "overdue"}


async def test_changes_made_before_the_period_survive_continue_as_new(tmp_path: Path) -> None:
    """An amendment, a suspension of item 2 and a succession accepted before the plan's year
    begins: at New Year the agreement continues as new, and all three go with it (asked
    again, each answers that it was already applied); the succession then applies on its
    day to the task the amendment added, started suspended."""
    signed = write_agreement(tmp_path / "v1", "song.yaml", SIGNED)
    amended = write_agreement(tmp_path / "v2", "song.yaml", AMENDED)
    async with harness(tmp_path, directory_path=signed.parent / "directory.yaml") as h:
        agreement = await deploy(h, signed)
        admin = h.actor("SNV", OfficerRole.ADMIN)
        request = amendment(amended, admin)
        suspension = SuspensionRequest(
            actor=admin,
            suspension_id="tam-dung-muc-2",
            scope=ChangeScope(item="2"),
            document=DOCUMENT,
            reason="Chờ hướng dẫn",
        )
        succession = SuccessionRequest(
            actor=admin,
            succession_id="stp-xa-a",
            document=DOCUMENT,
            effective=date(YEAR, 7, 1),
            transfers=[Transfer(from_agency="STP", to_agency="XA_A")],
        )
        first = await h.update(agreement, AgreementWorkflow.amend, request)
        assert first.applied and first.added == [C] and first.withdrawn == [B]
        assert (await h.update(agreement, AgreementWorkflow.suspend, suspension)).applied
        assert (await h.update(agreement, AgreementWorkflow.succeed, succession)).applied
        runs = (await agreement.query(AgreementWorkflow.overview)).runs

        # Sat 02/01/2027: a new run of the agreement, with every change.
        await move_to(h, local(y("2027-01-02T09:00")))
        overview = await agreement.query(AgreementWorkflow.overview)
        assert overview.runs > runs
        assert overview.version is not None and overview.version.number == 2
        assert [s.suspension_id for s in overview.suspensions] == ["tam-dung-muc-2"]
        assert not (await h.update(agreement, AgreementWorkflow.amend, request)).applied
        assert not (await h.update(agreement, AgreementWorkflow.suspend, suspension)).applied
        assert not (await h.update(agreement, AgreementWorkflow.succeed, succession)).applied

        # Fri 02/07/2027: C (item 2, due before 15/07) started suspended on 09/05 under STP
        # and passed to XA_A at midnight of 01/07.
        await move_to(h, local(y("2027-07-02T09:00")))
        status = await task(h, C).query(ObligationWorkflow.status)
        assert status.state is TaskState.SUSPENDED
        assert (status.task.agency, status.task.original_agency) == ("XA_A", "STP")
        facts = await agreement.query(AgreementWorkflow.facts)
        assert B not in {t.task_id for t in facts.tasks}
