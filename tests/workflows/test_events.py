"""Issue 13, point 11 end to end: an obligation due some days after an event has no task until
an admin records the event; recording it (through the function `accord event record` calls)
starts one task per owing agency on the running Agreement workflow, with due instants counted
from the event's day; recording it again starts nothing. Real parts: the time-skipping server,
the worker with the real workflows and activities, SQLite (the audit row).

Expected due instants are worked out by hand in the comments, never by Accord's expansion.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from clock import scenario_year, shift_years
from harness import ROOT, TEST_CREDENTIAL, ZONE, Harness, harness
from sqlalchemy import select
from temporalio.client import WorkflowUpdateFailedError

from accord import identity
from accord.cli import main
from accord.cli.events import send_event
from accord.deploy import build_input, deploy_loaded, start_agreement
from agreements.expansion import event_occurrences
from agreements.loader import load_agreement
from agreements.models import OfficerRole
from infra import db
from workflows.agreement import AgreementWorkflow
from workflows.obligation import ObligationWorkflow
from workflows.payloads import EventRecord, EventResult, TaskState, task_workflow_id

AGREEMENT = ROOT / "tests" / "agreements" / "forms" / "su-kien.yaml"
# The programme runs 2026–2030 and the conference is on Tuesday 01/12/2026: written for 2026,
# run in 2026 while the programme is still running (before 01/12/2030), else in the first later
# year with 2026's weekdays, the server's clock moved there (it starts at the real time and
# only moves forward).
YEAR = scenario_year(2026, date(2030, 12, 1))


def y(text: str) -> str:
    """`text` written for 2026–2030, moved to the programme's years."""
    return shift_years(text, 2026, YEAR, span=5)


AGREEMENT_ID = y("su-kien-2026")
CONFERENCE = f"{AGREEMENT_ID}/bao-cao-sau-hoi-nghi"


async def _wait_for(condition: Any, seconds: float = 30.0) -> None:
    async with asyncio.timeout(seconds):
        while not await condition():  # noqa: ASYNC110 (polling a query, no event to wait on)
            await asyncio.sleep(0.1)


def local(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=ZONE)


def su_kien(folder: Path) -> Path:
    """tests/agreements/forms/su-kien.yaml and its directory, moved to the programme's years."""
    folder.mkdir()
    forms = AGREEMENT.parent
    (folder / "directory.yaml").write_text((forms / "directory.yaml").read_text())
    path = folder / AGREEMENT.name
    path.write_text(y(AGREEMENT.read_text(encoding="utf-8")), encoding="utf-8")
    return path


async def test_recording_an_event_starts_its_tasks_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    agreement_path = su_kien(tmp_path / "agreement")
    loaded = load_agreement(agreement_path)
    async with harness(tmp_path, directory_path=agreement_path.parent / "directory.yaml") as h:
        # The programme running and the conference just past, as on 02/12/2026: in a later
        # year, the server's clock moved there first, and the CLI's claims (stamped with the
        # host's clock) moved with it.
        now = await h.env.get_current_time()
        if now < (moved := local(y("2026-12-02T09:00"))):
            await h.env.sleep(moved - now)
        offset = await h.env.get_current_time() - datetime.now(UTC)
        stamp = identity.stamp
        monkeypatch.setattr(
            identity,
            "stamp",
            lambda credential, *, received_at=None: stamp(
                credential, received_at=received_at or datetime.now(UTC) + offset
            ),
        )
        # As `accord deploy` does: the agreement registered for its tenant, then started.
        deployed = await deploy_loaded(
            h.env.client, loaded, session_factory=h.sessions, task_queue=h.task_queue
        )
        assert deployed.created
        agreement = h.env.client.get_workflow_handle_for(
            AgreementWorkflow.run, deployed.workflow_id
        )
        before = await agreement.query(AgreementWorkflow.overview)
        # Only the dated report exists: nothing waits for the conference yet.
        assert before.waiting + before.started == 1

        admin = h.actor("SNV", OfficerRole.ADMIN)
        focal_point = h.actor("SNV", OfficerRole.FOCAL_POINT)
        conference = date(YEAR, 12, 1)  # a Tuesday

        # Only an admin may record an event, and only one the agreement knows.
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await _send(
                h,
                AGREEMENT_ID,
                EventRecord(actor=focal_point, event="hoi-nghi-so-ket", day=conference),
            )
        assert "only an admin" in str(refused.value.cause)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await _send(
                h,
                AGREEMENT_ID,
                EventRecord(actor=admin, event="hoi-nghi-tong-ket", day=conference),
            )
        assert "events: hoi-nghi-so-ket, su-co" in str(refused.value.cause)

        first = await _send(
            h,
            AGREEMENT_ID,
            EventRecord(actor=admin, event="hoi-nghi-so-ket", day=conference),
        )
        # Within 5 days of Tuesday 01/12/2026: last day Sunday 06/12, moved by art. 148 to
        # Monday 07/12, so due 08/12/2026 00:00; one task for each owner, labelled by the day.
        expected = {
            y(f"{CONFERENCE}/SNV/2026-12-01"): local(y("2026-12-08T00:00")),
            y(f"{CONFERENCE}/STP/2026-12-01"): local(y("2026-12-08T00:00")),
        }
        assert first.created
        assert {t.task_id: t.due_at for t in first.tasks} == expected

        async def started() -> bool:
            overview = await agreement.query(AgreementWorkflow.overview)
            return overview.started == 3 and overview.waiting == 0

        await _wait_for(started)
        for task_id, due_at in expected.items():
            task = h.env.client.get_workflow_handle_for(
                ObligationWorkflow.run, task_workflow_id(task_id)
            )
            status = await task.query(ObligationWorkflow.status)
            assert status.due_at == due_at
            assert status.state in (TaskState.PENDING, TaskState.OVERDUE)
            assert status.due_note and y("hết ngày 07/12/2026") in status.due_note

        # The same event again, as an admin types it: nothing new.
        monkeypatch.setenv(
            "ACCORD_TEMPORAL__ADDRESS", h.env.client.service_client.config.target_host
        )
        monkeypatch.setenv("ACCORD_DATABASE_URL", f"sqlite:///{tmp_path / 'accord.db'}")
        monkeypatch.setenv("ACCORD_DATA_DIR", str(tmp_path / "cli"))
        # The operator's credential: the key the harness's worker accepts.
        monkeypatch.setenv("ACCORD_CLAIMS__KEY", TEST_CREDENTIAL.key.secret.decode())
        monkeypatch.setenv("ACCORD_CLAIMS__KEY_ID", TEST_CREDENTIAL.key.key_id)
        monkeypatch.setenv("ACCORD_CLAIMS__OPERATOR", "van-hanh-thu")
        argv = ["event", "record", AGREEMENT_ID, "hoi-nghi-so-ket", "--date", y("2026-12-01")]
        capsys.readouterr()
        code = await asyncio.to_thread(main, [*argv, "--as", admin.officer_id])
        out = capsys.readouterr().out
        assert code == 0, out
        assert out.splitlines() == [
            y(
                "Sự kiện hoi-nghi-so-ket (2026-12-01) đã được ghi nhận ngày 01/12/2026; "
                "không tạo thêm nhiệm vụ"
            ),
            y(f"  {CONFERENCE}/SNV/2026-12-01  trước 08/12/2026"),
            y(f"  {CONFERENCE}/STP/2026-12-01  trước 08/12/2026"),
        ]
        code = await asyncio.to_thread(main, [*argv, "--as", focal_point.officer_id])
        assert code == 1
        assert "bị từ chối: chỉ quản trị viên được ghi nhận sự kiện" in capsys.readouterr().err

        # And through the function the command calls: the first recording's tasks in the answer.
        again = await _send(
            h,
            AGREEMENT_ID,
            EventRecord(actor=admin, event="hoi-nghi-so-ket", day=conference),
        )
        assert not again.created
        assert {t.task_id: t.due_at for t in again.tasks} == expected
        assert "không tạo thêm nhiệm vụ" in again.message

        # An incident, 5 working days: Wed 02, Thu 03, Fri 04, Mon 07, Tue 08/12/2026.
        incident = await _send(
            h,
            AGREEMENT_ID,
            EventRecord(actor=admin, event="su-co", day=conference, label="su-co-1"),
        )
        assert {t.task_id: t.due_at for t in incident.tasks} == {
            f"{AGREEMENT_ID}/bao-cao-su-co/STP/su-co-1": local(y("2026-12-09T00:00"))
        }

        async def all_started() -> bool:
            overview = await agreement.query(AgreementWorkflow.overview)
            return overview.started == 4 and overview.waiting == 0

        await _wait_for(all_started)
        await asyncio.sleep(0.5)
        overview = await agreement.query(AgreementWorkflow.overview)
        assert overview.started == 4  # no duplicate of the conference's tasks

        with h.sessions() as session:
            rows = session.scalars(
                select(db.AuditRow).where(db.AuditRow.action == "event_recorded")
            ).all()
        assert sorted(row.event_key for row in rows) == [
            y(f"{AGREEMENT_ID}/event/hoi-nghi-so-ket/2026-12-01"),
            f"{AGREEMENT_ID}/event/su-co/su-co-1",
        ]
        assert {row.actor for row in rows} == {admin.officer_id}


async def _send(h: Harness, agreement_id: str, record: EventRecord) -> EventResult:
    """`accord event record`'s update, signed by the test operator, received now."""
    return await send_event(
        h.env.client,
        agreement_id,
        record,
        TEST_CREDENTIAL,
        received_at=await h.env.get_current_time(),
    )


# Written for 2027 and run in 2027 while that year has not begun on the server's clock, else in
# the first later year with 2027's weekdays.
JOINT_YEAR = scenario_year(2027, date(2027, 1, 1))


def j(text: str) -> str:
    """`text` written for 2027, moved to the joint plan's year."""
    return shift_years(text, 2027, JOINT_YEAR)


JOINT_ID = j("su-kien-chung-2027")
JOINT_AGREEMENT = j("""\
id: su-kien-chung-2027
document_number: 19/KH-TEST
kind: yearly_plan
title: Kế hoạch thử nghiệm báo cáo chung sau sự kiện
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
    due: {kind: after_event, event: hoi-nghi, within: 5d}
  - id: bao-cao-dia-phuong
    title: Báo cáo của địa phương trong vòng 5 ngày sau hội nghị
    deliverable: report
    owners:
      agencies: [HUYEN_X, XA_A]
    recipient: SNV
    due: {kind: after_event, event: hoi-nghi, within: 5d}
""")


async def test_an_event_starts_joint_tasks_and_judges_agencies_by_the_written_last_day(
    tmp_path: Path,
) -> None:
    """The Agreement workflow starts an event's tasks as dated tasks are expanded: a joint
    obligation gives one task of its owners (directory order: SNV before STP), and agencies
    are judged by the last day as written, not as moved by art. 148. `accord plan --event`
    (`event_occurrences`) previews the same tasks."""
    directory = (ROOT / "tests" / "agreements" / "forms" / "directory.yaml").read_text()
    # The district ceases on Sunday 13/06/2027; the commune begins on 01/07/2027.
    directory = directory.replace("2025-06-15", j("2027-06-13")).replace(
        "2025-07-01", j("2027-07-01")
    )
    (tmp_path / "directory.yaml").write_text(directory)
    path = tmp_path / "su-kien-chung.yaml"
    path.write_text(JOINT_AGREEMENT)
    loaded = load_agreement(path)
    # Within 5 days of Tuesday 08/06/2027: last day Sunday 13/06, moved to Monday 14/06, so due
    # 15/06/2027 00:00. HUYEN_X still exists on the written last day (13/06): it owes the report
    # (judged by the moved day, 14/06, it would have been dropped). XA_A does not exist yet.
    due = local(j("2027-06-15T00:00"))
    conference = date(JOINT_YEAR, 6, 8)
    expected = {
        j("su-kien-chung-2027/bao-cao-chung/SNV+STP/2027-06-08"): due,
        j("su-kien-chung-2027/bao-cao-dia-phuong/HUYEN_X/2027-06-08"): due,
    }
    previewed = event_occurrences(
        loaded.agreement, loaded.directory, "hoi-nghi", conference, j("2027-06-08")
    )
    assert {o.task_id: o.due_at for o in previewed} == expected
    async with harness(tmp_path, directory_path=tmp_path / "directory.yaml") as h:
        deployed = await start_agreement(h.env.client, build_input(loaded), task_queue=h.task_queue)
        recorded = await _send(
            h,
            JOINT_ID,
            EventRecord(actor=h.actor("SNV", OfficerRole.ADMIN), event="hoi-nghi", day=conference),
        )
        assert recorded.created
        assert {t.task_id: t.due_at for t in recorded.tasks} == expected
        joint = h.env.client.get_workflow_handle_for(
            ObligationWorkflow.run,
            task_workflow_id(j("su-kien-chung-2027/bao-cao-chung/SNV+STP/2027-06-08")),
        )

        async def joint_started() -> bool:
            overview = await h.env.client.get_workflow_handle_for(
                AgreementWorkflow.run, deployed.workflow_id
            ).query(AgreementWorkflow.overview)
            return overview.started == 2

        # The plan's year has not begun on the server's clock: its tasks start on 01/01/2027.
        await h.env.sleep(local(j("2027-01-15T00:00")) - await h.env.get_current_time())
        await _wait_for(joint_started)
        status = await joint.query(ObligationWorkflow.status)
        assert status.due_at == due
        assert status.task.agency == "SNV" and status.task.co_owners == ["STP"]
