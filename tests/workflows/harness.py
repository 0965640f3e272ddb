"""Real parts for workflow tests: the time-skipping Temporal test server, a SQLite database
loaded with the Quảng Bình directory, the .eml mail sink on loopback, and the real worker."""

from __future__ import annotations

import email
import email.policy
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from accord import identity
from accord.embedded import MailSink, find_binary, register_search_attributes
from accord.simulation import start_test_server
from activities.mail import PortalLinks
from activities.models import Actor, TaskRef
from agreements.calendar import WorkingCalendar
from agreements.loader import load_directory
from agreements.models import (
    Deliverable,
    Directory,
    EscalationStep,
    Indicator,
    OfficerRole,
    ReminderPolicy,
)
from infra import db, migrations
from infra.claim_keys import SigningKey
from infra.settings import SmtpSettings
from worker import build_worker
from workflows.obligation import ObligationWorkflow
from workflows.payloads import ObligationInput, TaskOutcome, TaskState, task_workflow_id
from workflows.search_attributes import task_search_attributes

TEST_CREDENTIAL = identity.Credential(
    operator="van-hanh-thu", key=SigningKey("test", b"accord-test-claim-key-0123456789abcdef")
)
"""The operator credential the tests sign with; the harness's worker accepts its key."""
TEST_CLAIM_KEYS = {TEST_CREDENTIAL.key.key_id: TEST_CREDENTIAL.key.secret}

P = TypeVar("P", bound=BaseModel)


async def sign(
    env: WorkflowEnvironment,
    handle: WorkflowHandle[Any, Any],
    update: Any,
    payload: P,
    *,
    received_at: datetime | None = None,
    credential: identity.Credential = TEST_CREDENTIAL,
) -> P:
    """`payload` signed as the CLI signs it, received now (the test server's time) unless
    `received_at` says otherwise: the one way tests make an update a validator accepts."""
    return identity.signed(
        credential,
        payload,
        update=update,
        workflow_id=handle.id,
        received_at=received_at or await env.get_current_time(),
    )


ROOT = Path(__file__).resolve().parents[2]
QUANG_BINH = ROOT / "agreements" / "directory" / "quang-binh.yaml"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


@dataclass
class Harness:
    env: WorkflowEnvironment
    sessions: sessionmaker[Session]
    mail_dir: Path
    task_queue: str
    directory: Directory
    sink: MailSink
    smtp: SmtpSettings

    async def relay_up(self) -> None:
        """Start the SMTP server (of a harness made with `relay_down`)."""
        await self.sink.start()

    def mails(self) -> list[EmailMessage]:
        """Every message the SMTP server accepted, oldest first (by Date, then recipient)."""
        messages = []
        for path in self.mail_dir.glob("*.eml"):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            messages.append(message)
        return sorted(messages, key=lambda m: (sent_at(m), str(m["To"])))

    async def signed(
        self, handle: WorkflowHandle[Any, Any], update: Any, payload: P, **kwargs: Any
    ) -> P:
        return await sign(self.env, handle, update, payload, **kwargs)

    async def update(
        self, handle: WorkflowHandle[Any, Any], update: Any, payload: BaseModel, **kwargs: Any
    ) -> Any:
        """Run `update` with `payload` signed by the test operator (see `sign`)."""
        return await handle.execute_update(
            update, await self.signed(handle, update, payload, **kwargs)
        )

    def actor(self, agency: str, role: OfficerRole = OfficerRole.FOCAL_POINT) -> Actor:
        officer = next(o for o in self.directory.officers if o.agency == agency and role in o.roles)
        return Actor(
            officer_id=officer.id,
            tenant=self.directory.tenant,
            agency=agency,
            roles=list(officer.roles),
        )

    async def start_obligation(
        self, input: ObligationInput
    ) -> WorkflowHandle[ObligationWorkflow, TaskOutcome]:
        return await self.env.client.start_workflow(
            ObligationWorkflow.run,
            input,
            id=task_workflow_id(input.task.task_id),
            task_queue=self.task_queue,
            # As the agreement workflow starts its tasks.
            search_attributes=task_search_attributes(
                input.task, state=TaskState.PENDING, due_at=input.task.due_at
            ),
        )


def sent_at(message: EmailMessage) -> datetime:
    return email.utils.parsedate_to_datetime(str(message["Date"])).astimezone(ZONE)


def recipients(message: EmailMessage) -> list[str]:
    return [a.addr_spec for a in getattr(message["To"], "addresses", ())]


async def start_dev_server() -> WorkflowEnvironment:
    """The real dev server (in memory), for behaviour the test server does not share."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=pydantic_data_converter,
        ui=False,
    )
    await register_search_attributes(env.client)
    return env


@asynccontextmanager
async def harness(
    tmp_path: Path,
    *,
    dev_server: bool = False,
    relay_down: bool = False,
    keep_connections: bool = True,
    directory_path: Path = QUANG_BINH,
    portal_links: PortalLinks | None = None,
    database_url: str | None = None,
) -> AsyncIterator[Harness]:
    """The real parts, a worker on its own task queue. With `relay_down` the SMTP port is
    reserved but nothing listens on it until the test calls `Harness.relay_up()`; the
    database holds the Quảng Bình directory unless `directory_path` names another; the mail
    carries portal links when `portal_links` says how to make them. The database is a new
    SQLite file unless `database_url` names one (at the migrations' head: tests/conftest.py)."""
    directory = load_directory(directory_path)
    engine = db.make_engine(database_url or f"sqlite:///{tmp_path / 'accord.db'}")
    migrations.upgrade(engine)
    sessions = db.session_factory(engine)
    with sessions() as session:
        db.upsert_directory(session, directory=directory)
    env = await (start_dev_server() if dev_server else start_test_server())
    sink = MailSink(tmp_path / "mail", port=_free_port() if relay_down else 0)
    try:
        if not relay_down:
            await sink.start()
        # keep_connections=False: a new SMTP session per message, so that stopping the sink
        # (`sink.stop()`) takes the relay down for every later message.
        smtp = SmtpSettings(
            host="127.0.0.1",
            port=sink.port,
            embedded=False,
            idle_connections=8 if keep_connections else 0,
        )
        task_queue = f"test-{uuid.uuid4()}"
        async with build_worker(
            env.client,
            task_queue=task_queue,
            session_factory=sessions,
            smtp=smtp,
            # The strict sandbox: a restricted call in workflow code fails the test.
            share_accord_modules=False,
            claim_keys=TEST_CLAIM_KEYS,
            portal_links=portal_links,
        ):
            yield Harness(env, sessions, tmp_path / "mail", task_queue, directory, sink, smtp)
    finally:
        await sink.stop()
        await env.shutdown()
        engine.dispose()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def obligation_input(
    *,
    due_at: datetime,
    agency: str = "STP",
    reminders: tuple[str, ...] = ("7d", "3d", "1d"),
    escalation: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("1d", ("focal_point", "head_of_agency")),
        ("5d", ("head_of_agency", "aggregator")),
        ("10d", ("provincial_leadership",)),
    ),
    indicators: tuple[Indicator, ...] = (),
    period_end: date | None = None,
    task_suffix: str = "",
    calendar: WorkingCalendar | None = None,
) -> ObligationInput:
    """One 'báo cáo 6 tháng' task of Sở Tư pháp (or `agency`), to Sở Nội vụ."""
    label = f"{due_at.year}-6t{task_suffix}"
    task = TaskRef(
        task_id=f"test-2025/bao-cao-6-thang/{agency}/{label}",
        agreement_id="test-2025",
        tenant="quang-binh",
        document_number="289/KH-UBND",
        agreement_title="Thực hiện công tác dân vận chính quyền năm 2025",
        item_number="III.7",
        obligation_id="bao-cao-6-thang",
        deliverable=Deliverable.REPORT,
        title="Báo cáo 6 tháng đầu năm",
        agency=agency,
        recipient="SNV",
        period_label=label,
        due_at=due_at,
    )
    end = period_end or date(due_at.year, 12, 31)
    return ObligationInput(
        task=task,
        reminders=ReminderPolicy.model_validate({"before": list(reminders)}),
        escalation=[
            EscalationStep.model_validate({"after": after, "notify": list(roles)})
            for after, roles in escalation
        ],
        indicators=list(indicators),
        period_end=end,
        closes_at=datetime(end.year, end.month, end.day, tzinfo=ZONE) + timedelta(days=31),
        written_due_at=due_at,
        calendar=calendar,
    )


async def local_now(env: WorkflowEnvironment) -> datetime:
    return (await env.get_current_time()).astimezone(ZONE)


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZONE)
