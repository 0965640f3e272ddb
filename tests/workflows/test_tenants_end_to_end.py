"""Issue 14, point 1, attacked end to end: both shipped directories in one database (as
`scripts/run` loads them), every shipped agreement deployed on one engine, and the tenant of
each agreement's directory is the only one its mail and its updates reach.

The shipped directories share agency codes (SNV, UBND_TINH, BDV_TU, BCSD_UBND) and officer IDs
(`dau-moi-snv`, `quan-tri-snv`, ...): before tenancy, whichever directory was loaded last
decided where the other province's mail went, and one province's admin could waive the other's
tasks. Real parts: the time-skipping server (the dev server for `accord status`, which needs
visibility queries), the worker with the real workflows and activities, SQLite, the SMTP sink.

Expected addresses come from the directory files themselves, never from Accord's resolution.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import shutil
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from clock import scenario_year, shift_years
from harness import ROOT, TEST_CLAIM_KEYS, TEST_CREDENTIAL, ZONE, sign, start_dev_server
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from accord import identity
from accord.cli import main
from accord.cli.events import send_event
from accord.deploy import TenantConflict, deploy_loaded, deploy_paths
from accord.embedded import MailSink
from accord.simulation import start_test_server
from activities.models import Actor
from agreements.loader import agreement_files, load_agreement, load_directory
from agreements.models import Directory
from infra import db, migrations
from infra.settings import SmtpSettings
from worker import build_worker
from workflows.obligation import ObligationWorkflow
from workflows.payloads import (
    EventRecord,
    ExtensionDecision,
    ExtensionRequest,
    SubmitReport,
    TaskState,
    Waiver,
    task_workflow_id,
)

AGREEMENTS = ROOT / "agreements"
QUANG_BINH = load_directory(AGREEMENTS / "directory" / "quang-binh.yaml")
NGHE_AN = load_directory(AGREEMENTS / "directory" / "nghe-an.yaml")
NGHE_AN_FILE = "nghe-an-2021-2026-chuong-trinh.yaml"
# The scenario is written for 3 December 2026, the Nghệ An programme 2021–2026 in its last
# month. The time-skipping server starts at the real time and only moves forward: the scenario
# runs in 2026 while 10/12/2026 is ahead, else in the first later year with the weekdays of
# 2026 and 2027, the server's clock moved to 3 December of it first, and the programme and the
# agreement below moved by as many years (tests/workflows/clock.py).
YEAR = scenario_year(2026, date(2026, 12, 10), span=2)


def y(text: str, year: int = YEAR) -> str:
    """`text` written for 2021–2027 (the programme's years and the next), moved so that 2026
    is `year`."""
    return shift_years(text, 2021, year - 5, span=7)


NGHE_AN_ID = y("nghe-an-ctph-dan-van-2021-2026")
# Due before 31/03/2026 and 27/12/2026 (the programme's yearly plan and report, by hand from
# the agreement file): the first is overdue when the test starts in December 2026, the
# second still pending, with reminders ahead of it.
NA_PLAN_2026 = y(f"{NGHE_AN_ID}/ke-hoach-nam/SNV/2026")
NA_REPORT_2026 = y(f"{NGHE_AN_ID}/bao-cao-ket-qua-nam/SNV/2026")
NA_REPORT_2025 = y(f"{NGHE_AN_ID}/bao-cao-ket-qua-nam/SNV/2025")


# The shipped Quảng Bình agreements (2023, 2025) are over by the time the test runs: their tasks
# close without mail. This one, on the same shipped directory, is running in December 2026, so
# that both tenants send mail at once, to officers with the same IDs and agency codes.
QB_LIVE_ID = y("qb-thu-nghiem-2026")
QB_LIVE = """\
schema_version: 1
id: qb-thu-nghiem-2026
document_number: 99/KH-UBND
kind: yearly_plan
title: Kế hoạch thử nghiệm báo cáo cuối năm 2026
province: Quảng Bình
parties:
  - agency: UBND_TINH
signed_on: 2026-01-05
period:
  start: 2026-01-01
  end: 2026-12-31
directory: directory/quang-binh.yaml
defaults:
  reminders:
    before: [7d, 3d]
    notify: [focal_point]
  escalation:
    - after: 1d
      notify: [focal_point, head_of_agency]
    - after: 5d
      notify: [aggregator, provincial_leadership]
reporting:
  - id: bao-cao-quy-3
    title: Báo cáo quý III
    deliverable: report
    owners:
      agencies: [SNV, BDV_TU, UBND_TINH]
    recipient: SNV
    due:
      kind: fixed
      before: 2026-10-15
  - id: bao-cao-quy-4
    title: Báo cáo quý IV
    deliverable: report
    owners:
      agencies: [SNV, BDV_TU, UBND_TINH]
    recipient: SNV
    due:
      kind: fixed
      before: 2026-12-20
"""
# Due before 15/10/2026: overdue when the test starts. Before 20/12/2026: reminders ahead.
QB_Q3_SNV = y(f"{QB_LIVE_ID}/bao-cao-quy-3/SNV/2026")
QB_Q3_BDV = y(f"{QB_LIVE_ID}/bao-cao-quy-3/BDV_TU/2026")
QB_Q4_SNV = y(f"{QB_LIVE_ID}/bao-cao-quy-4/SNV/2026")


def write_live_agreement(folder: Path, year: int = YEAR) -> Path:
    (folder / "directory").mkdir(parents=True)
    (folder / "directory" / "quang-binh.yaml").write_bytes(
        (AGREEMENTS / "directory" / "quang-binh.yaml").read_bytes()
    )
    path = folder / "thu-nghiem.yaml"
    path.write_text(y(QB_LIVE, year), encoding="utf-8")
    return path


def write_shipped_agreements(folder: Path, year: int = YEAR) -> Path:
    """The shipped agreements and directories, the Nghệ An programme moved so that its last
    year is `year` (the Quảng Bình ones, over already, as they are); its path."""
    (folder / "directory").mkdir(parents=True)
    for path in (AGREEMENTS / "directory").glob("*.yaml"):
        shutil.copyfile(path, folder / "directory" / path.name)
    for path in agreement_files(AGREEMENTS):
        if path.name == NGHE_AN_FILE:
            (folder / y(path.name, year)).write_text(
                y(path.read_text(encoding="utf-8"), year), encoding="utf-8"
            )
        else:
            shutil.copyfile(path, folder / path.name)
    return folder / y(NGHE_AN_FILE, year)


def officer(directory: Directory, officer_id: str) -> Actor:
    found = next(o for o in directory.officers if o.id == officer_id)
    return Actor(
        officer_id=found.id, tenant=directory.tenant, agency=found.agency, roles=list(found.roles)
    )


@dataclass
class Engine:
    env: WorkflowEnvironment
    sessions: sessionmaker[Session]
    mail_dir: Path
    task_queue: str

    def mails(self) -> list[EmailMessage]:
        messages = []
        for path in sorted(self.mail_dir.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            messages.append(message)
        return messages

    def outbox(self) -> list[db.OutboxRow]:
        with self.sessions() as session:
            return list(session.scalars(select(db.OutboxRow).order_by(db.OutboxRow.id)))

    async def settled(self, *, quiet: float = 2.0, within: float = 120.0) -> None:
        """Wait until no outbox row is pending and the outbox has not grown for `quiet` s."""

        def snapshot() -> tuple[int, int]:
            with self.sessions() as session:
                total = session.scalar(select(func.count()).select_from(db.OutboxRow)) or 0
                pending = (
                    session.scalar(
                        select(func.count()).where(
                            db.OutboxRow.status == db.OutboxStatus.PENDING.value
                        )
                    )
                    or 0
                )
            return total, pending

        async with asyncio.timeout(within):
            last = (-1, -1)
            while True:
                await asyncio.sleep(quiet)
                now = snapshot()
                if now == last and now[1] == 0 and now[0] > 0:
                    return
                last = now


@asynccontextmanager
async def engine(tmp_path: Path, *, dev_server: bool = False) -> AsyncIterator[Engine]:
    sql = db.make_engine(f"sqlite:///{tmp_path / 'accord.db'}")
    migrations.upgrade(sql)
    sessions = db.session_factory(sql)
    env = await (start_dev_server() if dev_server else start_test_server())
    sink = MailSink(tmp_path / "mail", port=0, fsync=False)
    try:
        await sink.start()
        task_queue = f"test-{uuid.uuid4()}"
        async with build_worker(
            env.client,
            task_queue=task_queue,
            session_factory=sessions,
            smtp=SmtpSettings(host="127.0.0.1", port=sink.port, embedded=False),
            share_accord_modules=False,
            claim_keys=TEST_CLAIM_KEYS,
        ):
            yield Engine(env, sessions, tmp_path / "mail", task_queue)
    finally:
        await sink.stop()
        await env.shutdown()
        sql.dispose()


async def _update(e: Engine, handle: WorkflowHandle[Any, Any], update: Any, payload: Any) -> Any:
    """The update signed by the test operator, received now (the server's time)."""
    return await handle.execute_update(update, await sign(e.env, handle, update, payload))


async def _exists(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        await handle.describe()
    except RPCError:
        return False
    return True


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 60.0) -> None:
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 (polling a query, no event to wait on)
            await asyncio.sleep(0.2)


def test_the_shipped_directories_share_codes_and_ids() -> None:
    """The premise of the attack: without tenants these keys would collide."""
    assert (QUANG_BINH.tenant, NGHE_AN.tenant) == ("quang-binh", "nghe-an")
    shared_codes = {a.code for a in QUANG_BINH.agencies} & {a.code for a in NGHE_AN.agencies}
    assert {"SNV", "UBND_TINH", "BDV_TU", "BCSD_UBND"} <= shared_codes
    shared_ids = {o.id for o in QUANG_BINH.officers} & {o.id for o in NGHE_AN.officers}
    assert {"dau-moi-snv", "quan-tri-snv"} <= shared_ids
    qb_emails = {o.email for o in QUANG_BINH.officers}
    assert not qb_emails & {o.email for o in NGHE_AN.officers}


async def test_every_outbox_row_of_every_shipped_agreement_stays_in_its_tenant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The directory each agreement file names, read from the files, not from the database.
    live = write_live_agreement(tmp_path / "live")
    nghe_an = write_shipped_agreements(tmp_path / "shipped")
    shipped = agreement_files(nghe_an.parent)
    assert len(shipped) == 3
    directories = {
        loaded.agreement.agreement_id: loaded.directory
        for loaded in map(load_agreement, [*shipped, live])
    }
    assert {d.tenant for d in directories.values()} == {"quang-binh", "nghe-an"}
    async with engine(tmp_path / "run") as e:
        # On 3 December of the scenario's year (no move in 2026 itself, already past it).
        now = await e.env.get_current_time()
        if now < (start := datetime(YEAR, 12, 3, 9, tzinfo=ZONE)):
            await e.env.sleep(start - now)
        # The CLI stamps its claims with the host's clock: moved with the server's.
        offset = await e.env.get_current_time() - datetime.now(UTC)
        stamp = identity.stamp
        monkeypatch.setattr(
            identity,
            "stamp",
            lambda credential, *, received_at=None: stamp(
                credential, received_at=received_at or datetime.now(UTC) + offset
            ),
        )
        # Every shipped agreement, Quảng Bình's directory loaded last: it used to win.
        lines, ok = await deploy_paths(
            e.env.client,
            [nghe_an, nghe_an.parent, live],
            session_factory=e.sessions,
            task_queue=e.task_queue,
        )
        assert ok, lines
        client = e.env.client

        async def started() -> bool:
            for task_id in (NA_PLAN_2026, NA_REPORT_2026, NA_REPORT_2025, QB_Q3_SNV):
                if not await _exists(client.get_workflow_handle(task_workflow_id(task_id))):
                    return False
            return True

        await eventually(started)
        plan_2026 = client.get_workflow_handle_for(
            ObligationWorkflow.run, task_workflow_id(NA_PLAN_2026)
        )
        report_2026 = client.get_workflow_handle_for(
            ObligationWorkflow.run, task_workflow_id(NA_REPORT_2026)
        )
        report_2025 = client.get_workflow_handle_for(
            ObligationWorkflow.run, task_workflow_id(NA_REPORT_2025)
        )

        # (b) A Quảng Bình admin waiving a Nghệ An task: refused, and nothing changes. The
        # officer ID is Nghệ An's admin's too; the tenant tells them apart.
        qb_admin = officer(QUANG_BINH, "quan-tri-snv")
        before = await plan_2026.query(ObligationWorkflow.status)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await _update(
                e,
                plan_2026,
                ObligationWorkflow.waive,
                Waiver(actor=qb_admin, reason="Thử miễn nhiệm vụ."),
            )
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.message == (
            "rule: officer quan-tri-snv of quang-binh may not act on a task of nghe-an"
        )
        assert cause.details[0]["vi"] == (
            "cán bộ quan-tri-snv thuộc quang-binh không được thao tác trên nhiệm vụ của nghe-an"
        )
        # A Quảng Bình focal point of "SNV" may not submit Nghệ An's SNV report either.
        with pytest.raises(WorkflowUpdateFailedError):
            await _update(
                e,
                plan_2026,
                ObligationWorkflow.submit_report,
                SubmitReport(actor=officer(QUANG_BINH, "dau-moi-snv"), summary="Báo cáo."),
            )
        after = await plan_2026.query(ObligationWorkflow.status)
        assert after == before
        assert after.state is TaskState.OVERDUE

        # (c) Through the CLI, `--as quan-tri-snv` on a Nghệ An task is Nghệ An's admin.
        monkeypatch.setenv("ACCORD_TEMPORAL__ADDRESS", client.service_client.config.target_host)
        monkeypatch.setenv("ACCORD_TEMPORAL__TASK_QUEUE", e.task_queue)
        monkeypatch.setenv("ACCORD_DATABASE_URL", f"sqlite:///{tmp_path / 'run' / 'accord.db'}")
        monkeypatch.setenv("ACCORD_DATA_DIR", str(tmp_path / "cli"))
        monkeypatch.setenv("ACCORD_CLAIMS__KEY", TEST_CREDENTIAL.key.secret.decode())
        monkeypatch.setenv("ACCORD_CLAIMS__KEY_ID", TEST_CREDENTIAL.key.key_id)
        monkeypatch.setenv("ACCORD_CLAIMS__OPERATOR", "van-hanh-thu")
        capsys.readouterr()
        argv = ["waive", NA_PLAN_2026, "--reason", "Đã lồng ghép vào kế hoạch khác."]
        code = await asyncio.to_thread(main, [*argv, "--as", "quan-tri-snv"])
        assert code == 0, capsys.readouterr().err
        waived = await plan_2026.query(ObligationWorkflow.status)
        assert waived.state is TaskState.WAIVED

        # A receipt, and an extension asked for and approved, all by Nghệ An's officers.
        na_focal = officer(NGHE_AN, "dau-moi-snv")
        await _update(
            e,
            report_2025,
            ObligationWorkflow.submit_report,
            SubmitReport(actor=na_focal, summary="Báo cáo kết quả năm 2025."),
        )
        await _update(
            e,
            report_2026,
            ObligationWorkflow.request_extension,
            ExtensionRequest(actor=na_focal, new_due=date(YEAR + 1, 1, 1), reason="Chờ số liệu."),
        )
        await _update(
            e,
            report_2026,
            ObligationWorkflow.decide_extension,
            # The approver the agreement names (default: the recipient's head or the leadership).
            ExtensionDecision(actor=officer(NGHE_AN, "lanh-dao-ubnd-tinh"), approve=True),
        )
        # And the same in Quảng Bình, on its task of agency SNV, by its officers of the same IDs.
        qb_q3_snv, qb_q3_bdv, qb_q4_snv = (
            client.get_workflow_handle_for(ObligationWorkflow.run, task_workflow_id(task_id))
            for task_id in (QB_Q3_SNV, QB_Q3_BDV, QB_Q4_SNV)
        )
        await eventually(lambda: _exists(qb_q4_snv))
        with pytest.raises(WorkflowUpdateFailedError):
            await _update(
                e,
                qb_q3_bdv,
                ObligationWorkflow.waive,
                Waiver(actor=officer(NGHE_AN, "quan-tri-snv"), reason="Thử miễn chéo."),
            )
        # Nor record an event of Quảng Bình's agreement.
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await send_event(
                client,
                QB_LIVE_ID,
                EventRecord(
                    actor=officer(NGHE_AN, "quan-tri-snv"), event="hoi-nghi", day=date(YEAR, 12, 1)
                ),
                TEST_CREDENTIAL,
                received_at=await e.env.get_current_time(),
            )
        assert isinstance(refused.value.cause, ApplicationError)
        assert refused.value.cause.message == (
            "rule: officer quan-tri-snv of nghe-an may not record an event of an agreement of "
            "quang-binh"
        )
        await _update(
            e,
            qb_q3_snv,
            ObligationWorkflow.submit_report,
            SubmitReport(actor=officer(QUANG_BINH, "dau-moi-snv"), summary="Báo cáo quý III."),
        )
        await _update(
            e,
            qb_q3_bdv,
            ObligationWorkflow.waive,
            Waiver(actor=qb_admin, reason="Đã báo cáo chung."),
        )
        await _update(
            e,
            qb_q4_snv,
            ObligationWorkflow.request_extension,
            ExtensionRequest(
                actor=officer(QUANG_BINH, "dau-moi-snv"),
                new_due=date(YEAR, 12, 30),
                reason="Chờ số liệu.",
            ),
        )
        await _update(
            e,
            qb_q4_snv,
            ObligationWorkflow.decide_extension,
            ExtensionDecision(actor=officer(QUANG_BINH, "lanh-dao-ubnd-tinh"), approve=False),
        )
        await e.settled()
        # Then a month: the reminders of the report now due before 01/01/2027, its
        # escalation steps, and the closing of the year's tasks.
        await e.env.sleep(timedelta(days=40))
        await e.settled()

        rows = e.outbox()
        mails = e.mails()

    kinds = Counter((row.tenant, row.kind) for row in rows)
    for tenant in ("nghe-an", "quang-binh"):
        for kind in (
            "receipt",
            "waived",
            "extension_requested",
            "extension_decided",
            "reminder",
            "escalation",
        ):
            assert kinds[(tenant, kind)] > 0, (tenant, kind, kinds)

    # (a) Every outbox row's address is in its own agreement's directory, its tenant is that
    # directory's, and the officer named is the directory's officer with that address.
    for row in rows:
        directory = directories[row.agreement_id]
        by_email = {o.email: o.id for o in directory.officers}
        assert row.tenant == directory.tenant, (row.business_key, row.tenant)
        assert row.recipient_email in by_email, (row.business_key, row.recipient_email)
        assert by_email[row.recipient_email] == row.recipient_officer_id
        assert row.status == db.OutboxStatus.SENT.value, (row.business_key, row.status)
    # ... and each was received by the SMTP server, addressed to that address.
    received = Counter(
        (str(m["Message-ID"]), a.addr_spec) for m in mails for a in m["To"].addresses
    )
    for row in rows:
        assert received[(str(row.message_id), row.recipient_email)] == 1, row.business_key
    assert len(mails) == len(rows)
    for prefix, domain in ((NGHE_AN_ID, "@nghean.example"), (QB_LIVE_ID, "@quangbinh.example")):
        sent = [m for m in mails if str(m["X-Accord-Key"] or "").startswith(prefix)]
        assert sent, prefix
        assert all(a.addr_spec.endswith(domain) for m in sent for a in m["To"].addresses)


async def test_an_agreement_id_of_another_tenant_is_refused(tmp_path: Path) -> None:
    """Workflow IDs are agreement IDs: a second tenant's agreement with a taken ID is refused
    with a message that names both tenants, and the first one's workflow is left alone."""
    nghe_an = write_shipped_agreements(tmp_path / "shipped")
    text = nghe_an.read_text(encoding="utf-8")
    (tmp_path / "directory").mkdir()
    # The same agreement, same ID, but with Quảng Bình's directory (which has the same codes).
    (tmp_path / "directory" / "quang-binh.yaml").write_bytes(
        (AGREEMENTS / "directory" / "quang-binh.yaml").read_bytes()
    )
    copy = tmp_path / "copy.yaml"
    copy.write_text(
        text.replace("directory/nghe-an.yaml", "directory/quang-binh.yaml"), encoding="utf-8"
    )
    impostor = load_agreement(copy)
    assert impostor.agreement.agreement_id == NGHE_AN_ID
    assert impostor.directory.tenant == "quang-binh"
    async with engine(tmp_path / "run") as e:
        first = await deploy_loaded(
            e.env.client,
            load_agreement(nghe_an),
            session_factory=e.sessions,
            task_queue=e.task_queue,
        )
        assert first.created
        with pytest.raises(TenantConflict) as refused:
            await deploy_loaded(
                e.env.client, impostor, session_factory=e.sessions, task_queue=e.task_queue
            )
        assert str(refused.value) == (
            f"agreement ID {NGHE_AN_ID!r} is already deployed for tenant 'nghe-an'; an "
            "agreement of tenant 'quang-binh' cannot use it: give this agreement another `id:`"
        )
        lines, ok = await deploy_paths(
            e.env.client, [copy], session_factory=e.sessions, task_queue=e.task_queue
        )
        assert not ok
        assert lines == [f"REFUSED {copy}: {refused.value}"]
        with e.sessions() as session:
            assert db.agreement_tenant(session, agreement_id=NGHE_AN_ID) == "nghe-an"
        # A database that lost the registration still has the engine's word: the search
        # attribute of the running workflow refuses it too.
        with e.sessions() as session:
            session.execute(delete(db.AgreementRow))
            session.commit()
        with pytest.raises(TenantConflict):
            await deploy_loaded(
                e.env.client, impostor, session_factory=e.sessions, task_queue=e.task_queue
            )


async def test_status_lists_one_tenants_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """(d) `accord status --tenant`: only that tenant's tasks, each showing its tenant; agency
    SNV of Nghệ An is not Quảng Bình's SNV."""
    # The dev server keeps the real time: both agreements moved to run this year.
    year = datetime.now(ZONE).year
    live = write_live_agreement(tmp_path / "live", year)
    nghe_an = write_shipped_agreements(tmp_path / "shipped", year)
    async with engine(tmp_path / "run", dev_server=True) as e:
        lines, ok = await deploy_paths(
            e.env.client,
            [nghe_an, live],
            session_factory=e.sessions,
            task_queue=e.task_queue,
        )
        assert ok, lines
        monkeypatch.setenv(
            "ACCORD_TEMPORAL__ADDRESS", e.env.client.service_client.config.target_host
        )
        monkeypatch.setenv("ACCORD_DATA_DIR", str(tmp_path / "cli"))

        async def listed(*argv: str) -> list[dict[str, object]]:
            capsys.readouterr()
            code = await asyncio.to_thread(main, ["status", "--json", *argv])
            captured = capsys.readouterr()
            assert code == 0, captured.err
            return [json.loads(line) for line in captured.out.splitlines()]

        async def both_listed() -> bool:
            tenants = {task["tenant"] for task in await listed()}
            return tenants == {"nghe-an", "quang-binh"}

        await eventually(both_listed)
        na_tasks = await listed("--tenant", "nghe-an", "--agency", "SNV")
        quang_binh = await listed("--tenant", "quang-binh", "--agency", "SNV")

    assert na_tasks and quang_binh
    assert {(t["tenant"], t["agreement"]) for t in na_tasks} == {
        ("nghe-an", y("nghe-an-ctph-dan-van-2021-2026", year))
    }
    assert {(t["tenant"], t["agreement"]) for t in quang_binh} == {
        ("quang-binh", y("qb-thu-nghiem-2026", year))
    }
    assert {t["agency"] for t in na_tasks + quang_binh} == {"SNV"}
