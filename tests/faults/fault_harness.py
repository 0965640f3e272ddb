"""Machinery of the fault-injection suite (issue 5): real parts, a plan with expected mail, and
the figures every scenario reports.

Each scenario runs, in a temporary folder:

- the Temporal dev server on its SQLite file (`accord.embedded.DevServer`), the embedded default;
- `python worker.py` as separate processes (the production entry point), which the scenarios
  kill with SIGKILL and restart;
- a real SMTP server on loopback that counts every accepted message by business key
  (`X-Accord-Key`) and recipient, and can refuse connections, defer (451) or reject (550);
- the Accord database as a SQLite file, which a scenario can lock.

The agreement has 100 synthetic agencies × 2 obligations = 200 tasks whose due instants are
spread over a minute, with reminders 20 s and 10 s before and an escalation ladder 5 s, 15 s and
25 s after. The harness submits most reports itself, at planned moments (early, between the
reminders, after them, late after the first or second escalation step); a sixth of the tasks
never report. Which messages each task must receive follows from the plan alone (see
`expected_messages`), never from what the engine did.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Final
from zoneinfo import ZoneInfo

import yaml
from aiosmtpd.controller import Controller
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateHandle,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from accord.deploy import build_input, start_agreement
from accord.embedded import DevServer
from accord.identity import Credential, signed
from activities.models import Actor
from agreements.loader import load_agreement
from agreements.models import Directory, OfficerRole
from infra import db, migrations
from infra.claim_keys import SigningKey
from workflows.agreement import AgreementWorkflow
from workflows.obligation import ObligationWorkflow
from workflows.payloads import (
    AgreementInput,
    SubmitReport,
    TaskState,
    TaskStatus,
    UpdateResult,
    agreement_workflow_id,
    task_workflow_id,
)
from workflows.search_attributes import SA_ESCALATION_LEVEL

ROOT: Final = Path(__file__).resolve().parents[2]
ZONE: Final = ZoneInfo("Asia/Ho_Chi_Minh")
LOOPBACK: Final = "127.0.0.1"

AGENCY_COUNT: Final = 100
OBLIGATIONS: Final = ("bao-cao-nhanh", "bao-cao-chuyen-de")
AGGREGATOR_AGENCY: Final = "SNV"
ADMIN_EMAIL: Final = "quan-tri@snv.faults.example"
"""Receives the delivery-failure notice of each message refused with a 5xx."""
GROUP: Final = "co_quan_thu_nghiem"

REMINDERS: Final = ("20s", "10s")
ESCALATION: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("5s", ("focal_point",)),
    ("15s", ("focal_point", "head_of_agency")),
    ("25s", ("head_of_agency", "aggregator")),
)
RECEIPT_ROLES: Final = ("focal_point", "aggregator")
"""Who is told that a report arrived: the owing agency's focal point and the aggregator."""

FIRST_DUE: Final = timedelta(seconds=60)
"""From the deploy to the first due instant. The first reminder comes 40 s after the deploy;
the agreement workflow needs about 20 s here to start its 200 obligation workflows, and a
reminder whose time passed before its task started is skipped by design. Faults start once
all tasks have started."""
DUE_SPREAD: Final = timedelta(seconds=60)
"""The due instants of the 200 tasks are spread evenly over this stretch."""

WORKFLOW_TASK_TIMEOUT: Final = timedelta(seconds=10)
"""After a worker dies, its workflows' next tasks are stuck for this long: a task waiting on the
dead worker's sticky queue moves to the shared queue after the SDK's sticky schedule-to-start
timeout (10 s), and a task the dead worker had already started times out after the server's
workflow-task timeout (10 s). Observed in histories as WorkflowTaskTimedOut 10 s later."""
PROCESSING_LAG: Final = timedelta(seconds=2)
"""How far behind its instant a timer may be processed on a busy but healthy worker (the
control scenario measures it; p99 is reported in its notes)."""


# --------------------------------------------------------------------------------------------
# The plan: who owes what, when each report comes, and which mail follows from that


class Behaviour(Enum):
    """When the harness submits a task's report, relative to the due instant.

    Every moment lies in the middle of a gap between two notification instants (-20, -10, 0,
    +5, +15, +25 s) so that a few seconds of delay never change which messages are owed."""

    EARLY = -25
    BETWEEN_REMINDERS = -15
    AFTER_REMINDERS = -5
    LATE_AFTER_STEP_1 = 10
    LATE_AFTER_STEP_2 = 20
    NEVER = 0

    @property
    def submit_offset(self) -> timedelta | None:
        if self is Behaviour.NEVER:
            return None
        return timedelta(seconds=self.value)


BEHAVIOURS: Final = tuple(Behaviour)


@dataclass(frozen=True)
class Officers:
    focal: dict[str, str]
    head: dict[str, str]

    def addresses(self, role: str, agency: str) -> list[str]:
        """Addresses a role resolves to for a task of `agency`, per the directory written."""
        match role:
            case "focal_point":
                return [self.focal[agency]]
            case "head_of_agency":
                return [self.head[agency]]
            case "aggregator":
                return [self.focal[AGGREGATOR_AGENCY]]
        raise ValueError(f"role {role!r} is not used by the fault suite")


@dataclass(frozen=True)
class Notice:
    """One notification instant of a task: a reminder or an escalation step."""

    kind: str  # "reminder" | "escalation"
    step: int
    at: datetime
    roles: tuple[str, ...]


@dataclass(frozen=True)
class ScheduledTask:
    task_id: str
    agency: str
    due_at: datetime
    behaviour: Behaviour

    @property
    def submit_at(self) -> datetime | None:
        offset = self.behaviour.submit_offset
        return None if offset is None else self.due_at + offset

    def notices(self) -> list[Notice]:
        reminders = [
            Notice("reminder", index, self.due_at - _seconds(offset), ("focal_point",))
            # Sorted farthest first: reminder 1 is the earliest.
            for index, offset in enumerate(sorted(REMINDERS, key=_seconds, reverse=True), 1)
        ]
        steps = [
            Notice("escalation", index, self.due_at + _seconds(after), roles)
            for index, (after, roles) in enumerate(ESCALATION, 1)
        ]
        return reminders + steps


MessageId = tuple[str, str, int, str]
"""(task ID, kind, step, recipient address); a receipt has step 0."""


def expected_messages(
    task: ScheduledTask, officers: Officers, sent_at: datetime | None = None
) -> set[MessageId]:
    """What the plan owes this task: each reminder and escalation step whose instant comes
    before the report (every one, for a task never reported), and a receipt if it reports.

    `sent_at` is when the harness actually sent the report, if it did: the engine stamps a
    report with its sending time, so that instant, not the planned one, divides what is owed.
    The two differ when the harness's own event loop runs late on a loaded machine."""
    submit_at = task.submit_at if sent_at is None or task.submit_at is None else sent_at
    owed: set[MessageId] = set()
    for notice in task.notices():
        if submit_at is None or notice.at < submit_at:
            owed.update(_to(task, notice.kind, notice.step, notice.roles, officers))
    if submit_at is not None:
        owed.update(_to(task, "receipt", 0, RECEIPT_ROLES, officers))
    return owed


def _to(
    task: ScheduledTask, kind: str, step: int, roles: Iterable[str], officers: Officers
) -> set[MessageId]:
    return {
        (task.task_id, kind, step, address)
        for role in roles
        for address in officers.addresses(role, task.agency)
    }


def _seconds(offset: str) -> timedelta:
    assert offset.endswith("s"), offset
    return timedelta(seconds=int(offset[:-1]))


@dataclass(frozen=True)
class FaultPlan:
    agreement_id: str
    input: AgreementInput
    directory: Directory
    officers: Officers
    tasks: list[ScheduledTask]
    deployed_at: datetime

    @property
    def last_instant(self) -> datetime:
        return max(n.at for t in self.tasks for n in t.notices())

    def task(self, task_id: str) -> ScheduledTask:
        return self._by_id[task_id]

    @property
    def _by_id(self) -> dict[str, ScheduledTask]:
        return {t.task_id: t for t in self.tasks}


def write_directory(folder: Path) -> Path:
    """A synthetic province: 100 agencies with a focal point and a head each, the aggregator
    (Sở Nội vụ) and the People's Committee; every address on a reserved `.example` domain."""
    agencies: list[dict[str, Any]] = [
        {
            "code": "UBND_TINH",
            "name": "Ủy ban nhân dân tỉnh thử nghiệm",
            "kind": "peoples_committee",
        },
        {"code": AGGREGATOR_AGENCY, "name": "Sở Nội vụ thử nghiệm", "kind": "department"},
    ]
    officers: list[dict[str, Any]] = [
        {
            "id": "snv-dau-moi",
            "name": "Đầu mối Sở Nội vụ",
            "email": "dau-moi@snv.faults.example",
            "agency": AGGREGATOR_AGENCY,
            "roles": ["focal_point"],
        },
        {
            "id": "snv-quan-tri",
            "name": "Quản trị hệ thống Accord",
            "email": ADMIN_EMAIL,
            "agency": AGGREGATOR_AGENCY,
            "roles": ["admin"],
        },
    ]
    for number in range(1, AGENCY_COUNT + 1):
        code = f"CQ{number:03d}"
        slug = code.lower()
        agencies.append(
            {
                "code": code,
                "name": f"Cơ quan thử nghiệm số {number}",
                "kind": "department",
                "groups": [GROUP],
                "parent": "UBND_TINH",
            }
        )
        officers.append(
            {
                "id": f"{slug}-dau-moi",
                "name": f"Đầu mối cơ quan số {number}",
                "email": f"dau-moi@{slug}.faults.example",
                "agency": code,
                "roles": ["focal_point"],
            }
        )
        officers.append(
            {
                "id": f"{slug}-thu-truong",
                "name": f"Thủ trưởng cơ quan số {number}",
                "email": f"thu-truong@{slug}.faults.example",
                "agency": code,
                "roles": ["head"],
            }
        )
    path = folder / "directory" / "faults.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "schema_version": 1,
        "tenant": "tinh-thu-nghiem",
        "province": "Tỉnh thử nghiệm",
        "agencies": agencies,
        "officers": officers,
    }
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), "utf-8")
    return path


def write_agreement(folder: Path, agreement_id: str, now: datetime) -> Path:
    today = now.astimezone(ZONE).date()
    document = {
        "id": agreement_id,
        "document_number": f"{agreement_id[-6:]}/KH-THU",
        "kind": "implementation_plan",
        "title": "Kế hoạch thử nghiệm sự cố (hạn nộp cách nhau vài giây)",
        "province": "Tỉnh thử nghiệm",
        "parties": [{"agency": "UBND_TINH"}],
        "signed_on": today.isoformat(),
        "period": {"start": today.isoformat(), "end": (today + timedelta(days=1)).isoformat()},
        "directory": "directory/faults.yaml",
        "defaults": {
            "reminders": {"before": list(REMINDERS), "notify": ["focal_point"]},
            "escalation": [{"after": after, "notify": list(roles)} for after, roles in ESCALATION],
        },
        "reporting": [
            {
                "id": obligation,
                "title": f"Báo cáo thử nghiệm ({obligation})",
                "deliverable": "report",
                "owners": {"groups": [GROUP]},
                "recipient": AGGREGATOR_AGENCY,
                "due": {
                    "kind": "fixed",
                    "before": (today + timedelta(days=1)).isoformat(),
                    "label": "thu-nghiem",
                },
            }
            for obligation in OBLIGATIONS
        ],
    }
    path = folder / f"{agreement_id}.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), "utf-8")
    return path


def make_plan(
    folder: Path, agreement_id: str, deployed_at: datetime, first_due: timedelta = FIRST_DUE
) -> FaultPlan:
    """Load the written agreement like `accord deploy` does, then move its due instants to
    seconds from now, as `accord.demo.demo_input` does for the demo."""
    write_directory(folder)
    loaded = load_agreement(write_agreement(folder, agreement_id, deployed_at))
    base = build_input(loaded)
    ordered = sorted(base.waiting, key=lambda t: (t.agency, t.obligation_id))
    count = len(ordered)
    first_due_at = (deployed_at + first_due).astimezone(ZONE).replace(microsecond=0)
    waiting = []
    tasks = []
    for index, planned in enumerate(ordered):
        due_at = first_due_at + timedelta(seconds=int(DUE_SPREAD.total_seconds() * index / count))
        moved: dict[str, Any] = {"due_at": due_at, "opens_at": deployed_at}
        # Newer plans also carry the due instant as written (business keys use it) and a note
        # when a deadline rule moved it: the instant set here is the written one, unmoved.
        moved.update(
            {
                name: value
                for name, value in (
                    ("written_due_at", due_at),
                    ("due_note_vi", None),
                    ("due_note_en", None),
                )
                if name in type(planned).model_fields
            }
        )
        waiting.append(planned.model_copy(update=moved))
        tasks.append(
            ScheduledTask(
                task_id=planned.task_id,
                agency=planned.agency,
                due_at=due_at,
                behaviour=BEHAVIOURS[index % len(BEHAVIOURS)],
            )
        )
    last_due = max(t.due_at for t in tasks)
    plan = base.plan.model_copy(
        update={
            "starts_at": deployed_at,
            "ends_at": last_due + timedelta(minutes=5),
            "closes_at": last_due + timedelta(minutes=8),
        }
    )
    directory = loaded.directory
    officers = Officers(
        focal={o.agency: o.email for o in directory.officers if OfficerRole.FOCAL_POINT in o.roles},
        head={o.agency: o.email for o in directory.officers if OfficerRole.HEAD in o.roles},
    )
    return FaultPlan(
        agreement_id=agreement_id,
        input=base.model_copy(update={"plan": plan, "waiting": waiting}),
        directory=directory,
        officers=officers,
        tasks=tasks,
        deployed_at=deployed_at,
    )


# --------------------------------------------------------------------------------------------
# The SMTP server that counts


@dataclass(frozen=True)
class Delivery:
    key: str
    recipient: str
    at: datetime
    message_id: str = ""


class _CountingHandler:
    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.defer_everyone = False
        self.reject: set[str] = set()
        self.refused_rcpt = Counter[str]()
        self._lock = threading.Lock()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if self.defer_everyone:
            with self._lock:
                self.refused_rcpt["451"] += 1
            return "451 4.3.0 Mailbox temporarily unavailable, try again later"
        if address in self.reject:
            with self._lock:
                self.refused_rcpt["550"] += 1
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        headers = BytesHeaderParser(policy=default_policy).parsebytes(envelope.original_content)
        # Long keys arrive folded: the parsed value may start with the folding space.
        key = str(headers.get("X-Accord-Key", "")).strip()
        message_id = str(headers.get("Message-ID", "")).strip()
        at = datetime.now(UTC)
        with self._lock:
            self.deliveries.extend(Delivery(key, str(r), at, message_id) for r in envelope.rcpt_tos)
        return "250 2.0.0 Message accepted for delivery"


class CountingSmtpServer:
    """aiosmtpd on 127.0.0.1 (in its own thread) that records (business key, recipient) of
    every accepted message. `refuse_connections` closes the listening socket, so connections
    are refused until `accept_connections`; `defer_everyone` answers 451 to every recipient;
    addresses in `reject` get 550."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._handler = _CountingHandler()
        self._controller: Controller | None = None

    def accept_connections(self) -> None:
        if self._controller is None:
            self._controller = Controller(self._handler, hostname=LOOPBACK, port=self.port)
            self._controller.start()

    def refuse_connections(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def defer_everyone(self, on: bool) -> None:
        self._handler.defer_everyone = on

    def reject(self, address: str) -> None:
        self._handler.reject.add(address)

    @property
    def refused_recipients(self) -> Counter[str]:
        with self._handler._lock:
            return Counter(self._handler.refused_rcpt)

    def deliveries(self) -> list[Delivery]:
        with self._handler._lock:
            return list(self._handler.deliveries)


# --------------------------------------------------------------------------------------------
# Worker processes

FAULTS_CREDENTIAL = Credential(
    operator="faults-harness", key=SigningKey("faults", b"accord-faults-claim-key-0123456789abcdef")
)


class WorkerProcess:
    """`python worker.py` against the scenario's server, database and SMTP server. Each
    (re)start is a new process with its own log file."""

    def __init__(self, name: str, folder: Path, env: dict[str, str]) -> None:
        self.name = name
        self._folder = folder
        self._env = env
        self._process: subprocess.Popen[bytes] | None = None
        self.incarnation = 0
        self.log_path = folder / f"worker-{name}-0.log"

    def start(self) -> None:
        assert self._process is None or self._process.poll() is not None
        self.incarnation += 1
        self.log_path = self._folder / f"worker-{self.name}-{self.incarnation}.log"
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, str(ROOT / "worker.py")],
                cwd=self._folder,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process else None

    async def wait_ready(self, within: float = 60.0) -> None:
        """Until the worker logs that it polls (its client connected, its worker started)."""
        deadline = time.monotonic() + within
        while b"worker polling" not in self.log_path.read_bytes():
            if not self.alive:
                raise RuntimeError(
                    f"worker {self.name} exited with {self.returncode}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name} not ready in {within} s")
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, activities in flight are abandoned. Blocks until the
        process is reaped (for use outside the event loop; see `kill_now`)."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()

    async def kill_now(self) -> None:
        """SIGKILL, then wait for the process to be reaped without blocking the event loop: a
        process killed inside a system call (an fsync on a busy disk) can take seconds to
        exit, and the harness's timers (its planned report times) must not wait for it."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(self._process.wait)

    def terminate(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------
# Submissions by the harness


@dataclass
class Submission:
    task_id: str
    agency: str
    planned_at: datetime
    sent_at: datetime | None = None
    accepted_at: datetime | None = None
    attempts: int = 0
    rejected: str | None = None
    handle: WorkflowUpdateHandle[UpdateResult] | None = None
    result: UpdateResult | None = None
    errors: list[str] = field(default_factory=list)


def free_ports(count: int) -> list[int]:
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in sockets:
            probe.bind((LOOPBACK, 0))
        return [int(probe.getsockname()[1]) for probe in sockets]


# --------------------------------------------------------------------------------------------
# Figures


@dataclass
class Figures:
    scenario: str
    expected: int = 0
    delivered: int = 0
    duplicated: int = 0
    resent: int = 0
    lost: int = 0
    unexpected: int = 0
    contested: int = 0
    stuck: int = 0
    submissions: int = 0
    submissions_lost: int = 0
    recorded_late: int = 0
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)

    HEADER: ClassVar[tuple[str, ...]] = (
        "scenario",
        "messages expected",
        "delivered",
        "duplicated",
        "resent, same Message-ID",
        "lost",
        "unexpected",
        "contested",
        "tasks stuck",
        "submissions lost",
        "on-time reports marked late",
        "wall s",
    )

    def row(self) -> tuple[str, ...]:
        return (
            self.scenario,
            str(self.expected),
            str(self.delivered),
            str(self.duplicated),
            str(self.resent),
            str(self.lost),
            str(self.unexpected),
            str(self.contested),
            str(self.stuck),
            f"{self.submissions_lost}/{self.submissions}",
            str(self.recorded_late),
            f"{self.wall_seconds:.0f}",
        )

    @property
    def clean(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.unexpected
            or self.stuck
            or self.submissions_lost
            or self.recorded_late
        )


def table(rows: Sequence[Figures]) -> str:
    """A Markdown table of the figures, one row per scenario."""
    cells = [Figures.HEADER, *(f.row() for f in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(Figures.HEADER))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), separator, *(line(r) for r in cells[1:])])


# --------------------------------------------------------------------------------------------
# A scenario's world


@dataclass
class Outage:
    """A stretch in which workflow tasks could not be processed (worker or server down)."""

    what: str
    began: datetime
    ended: datetime | None = None


class FaultWorld:
    """Everything one scenario runs on. Use `fault_world(...)` to get one."""

    def __init__(
        self, scenario: str, folder: Path, server: DevServer, smtp: CountingSmtpServer
    ) -> None:
        self.scenario = scenario
        # Agreement IDs are slugs of at most 60 characters: "faults-s3-<epoch>".
        self.key = "s" + re.sub(r"[^a-z0-9]+", "-", scenario.lower()).strip("-")[:8].strip("-")
        self.folder = folder
        self.server = server
        self.smtp = smtp
        self.task_queue = f"faults-{self.key}-{os.getpid()}-{int(time.time())}"
        self.database_path = folder / "accord.db"
        self.engine = db.make_engine(f"sqlite:///{self.database_path}")
        migrations.upgrade(self.engine)
        self.sessions: sessionmaker[Session] = db.session_factory(self.engine)
        self.workers: dict[str, WorkerProcess] = {}
        self.outages: list[Outage] = []
        self.events: list[str] = []
        self.began = time.monotonic()
        self._client: Client | None = None
        self._plan: FaultPlan | None = None
        self.submissions: dict[str, Submission] = {}
        self._submitters: list[asyncio.Task[None]] = []
        self._stories: dict[str, _Story] = {}

    # -- parts ----------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        assert self._client is not None, "connect() first"
        return self._client

    @property
    def plan(self) -> FaultPlan:
        assert self._plan is not None, "deploy() first"
        return self._plan

    async def connect(self) -> None:
        self._client = await Client.connect(
            self.server.address, data_converter=pydantic_data_converter
        )

    def worker_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
        env.update(
            {
                "ACCORD_TEMPORAL__ADDRESS": self.server.address,
                "ACCORD_TEMPORAL__TASK_QUEUE": self.task_queue,
                "ACCORD_DATABASE_URL": f"sqlite:///{self.database_path}",
                "ACCORD_DATA_DIR": str(self.folder / "data"),
                "ACCORD_SMTP__HOST": LOOPBACK,
                "ACCORD_SMTP__PORT": str(self.smtp.port),
                "ACCORD_SMTP__EMBEDDED": "false",
                "ACCORD_SMTP__TIMEOUT_SECONDS": "10",
                # The workers verify the claims the harness signs, as `accord submit` does.
                "ACCORD_CLAIMS__KEY": FAULTS_CREDENTIAL.key.secret.decode(),
                "ACCORD_CLAIMS__KEY_ID": FAULTS_CREDENTIAL.key.key_id,
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    async def start_worker(self, name: str = "a") -> WorkerProcess:
        worker = self.workers.get(name)
        if worker is None:
            worker = self.workers[name] = WorkerProcess(name, self.folder, self.worker_env())
        worker.start()
        await worker.wait_ready()
        return worker

    def note(self, text: str) -> None:
        stamp = self.now().astimezone(ZONE).strftime("%H:%M:%S.%f")[:-3]
        self.events.append(f"{stamp} {text}")

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    def since_deploy(self) -> float:
        return (self.now() - self.plan.deployed_at).total_seconds()

    async def sleep_until(self, offset_seconds: float) -> None:
        """Until `offset_seconds` after the deploy."""
        await asyncio.sleep(max(0.0, offset_seconds - self.since_deploy()))

    # -- faults ---------------------------------------------------------------------------

    async def crash_worker(self, name: str = "a", *, restart: bool = True) -> None:
        worker = self.workers[name]
        outage = Outage(f"worker {name} killed", self.now())
        await worker.kill_now()
        self.note(f"kill -9 worker {name} (pid {worker.pid}) at +{self.since_deploy():.1f}s")
        if not restart:
            outage.ended = outage.began + WORKFLOW_TASK_TIMEOUT
            self.outages.append(outage)
            return
        worker.start()
        await worker.wait_ready()
        # The dead worker's workflow tasks time out before anyone else takes them.
        outage.ended = max(self.now(), outage.began + WORKFLOW_TASK_TIMEOUT)
        self.outages.append(outage)
        self.note(f"worker {name} restarted (pid {worker.pid}) at +{self.since_deploy():.1f}s")

    async def restart_server(self, down_for: float) -> None:
        outage = Outage("server restart", self.now())
        self.note(f"stopping the dev server at +{self.since_deploy():.1f}s")
        await self.server.stop()
        self.note(f"dev server stopped at +{self.since_deploy():.1f}s")
        await asyncio.sleep(down_for)
        await self.server.start()
        outage.ended = self.now() + WORKFLOW_TASK_TIMEOUT
        self.outages.append(outage)
        self.note(f"dev server serving again at +{self.since_deploy():.1f}s")

    async def lock_database(self, seconds: float) -> None:
        """Hold SQLite's write lock on the Accord database (BEGIN EXCLUSIVE) from a separate
        connection, as another program would."""
        self.note(f"locking accord.db for {seconds:.0f}s at +{self.since_deploy():.1f}s")
        await asyncio.to_thread(_hold_exclusive_lock, self.database_path, seconds)
        self.note(f"accord.db unlocked at +{self.since_deploy():.1f}s")

    # -- the run --------------------------------------------------------------------------

    async def deploy(self, first_due: timedelta = FIRST_DUE) -> FaultPlan:
        """Start the plan's agreement; `first_due` later than the default leaves a loaded
        machine more time to start the 200 tasks before the first reminder."""
        agreement_id = f"faults-{self.key}-{int(time.time())}"
        deployed_at = self.now() + timedelta(seconds=1)
        plan = make_plan(self.folder, agreement_id, deployed_at, first_due)
        self._plan = plan
        with self.sessions() as session:
            db.upsert_directory(session, directory=plan.directory)
        await start_agreement(self.client, plan.input, task_queue=self.task_queue)
        await self._wait_all_started()
        for task in plan.tasks:
            if task.submit_at is not None:
                submission = Submission(task.task_id, task.agency, task.submit_at)
                self.submissions[task.task_id] = submission
                self._submitters.append(asyncio.create_task(self._submit(submission)))
        return plan

    async def _wait_all_started(self) -> None:
        plan = self.plan
        handle = self.client.get_workflow_handle_for(
            AgreementWorkflow.run, agreement_workflow_id(plan.agreement_id)
        )
        first_reminder = min(n.at for t in plan.tasks for n in t.notices())
        while True:
            overview = await handle.query(AgreementWorkflow.overview)
            if overview.started == len(plan.tasks):
                break
            if self.now() > first_reminder:
                raise AssertionError(
                    f"only {overview.started} of {len(plan.tasks)} tasks had started at the "
                    "first reminder: the plan's expectations would not hold"
                )
            await asyncio.sleep(0.25)
        self.note(
            f"all {len(plan.tasks)} tasks started at +{self.since_deploy():.1f}s "
            f"(first reminder at +{(first_reminder - plan.deployed_at).total_seconds():.0f}s)"
        )

    async def _submit(self, submission: Submission) -> None:
        """Send the report at its planned moment; on a transport error, send it again under
        the same update ID (the server deduplicates), as a careful client would."""
        await asyncio.sleep(max(0.0, (submission.planned_at - self.now()).total_seconds()))
        handle = self.client.get_workflow_handle_for(
            ObligationWorkflow.run, task_workflow_id(submission.task_id)
        )
        officer = self.plan.directory.officers
        focal = next(
            o for o in officer if o.agency == submission.agency and o.id.endswith("dau-moi")
        )
        submission.sent_at = self.now()
        # As `accord submit` does: signed, stamped with the moment Accord received it, and kept
        # across retries (a delivery later than claims.MAX_DELIVERY_DELAY is refused).
        report = signed(
            FAULTS_CREDENTIAL,
            SubmitReport(
                actor=Actor(
                    officer_id=focal.id,
                    tenant=self.plan.directory.tenant,
                    agency=focal.agency,
                    roles=list(focal.roles),
                ),
                summary=f"Báo cáo thử nghiệm của {submission.agency}.",
            ),
            update=ObligationWorkflow.submit_report,
            workflow_id=task_workflow_id(submission.task_id),
            received_at=submission.sent_at,
        )
        while True:
            submission.attempts += 1
            try:
                submission.handle = await handle.start_update(
                    ObligationWorkflow.submit_report,
                    report,
                    id=f"faults-submit/{submission.task_id}",
                    wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                    rpc_timeout=timedelta(seconds=30),
                )
            except WorkflowUpdateFailedError as err:
                submission.rejected = str(err.cause)
                return
            except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
                submission.errors.append(f"{type(err).__name__}: {err}")
                await asyncio.sleep(0.5)
                continue
            submission.accepted_at = self.now()
            return

    async def settle(self, budget: timedelta) -> None:
        """Wait until every task has reached its final state (reported → completed, never
        reported → last escalation step sent), no outbox row is pending and the mail has
        stopped for a while; or until `budget` after the deploy."""
        plan = self.plan
        deadline = plan.deployed_at + budget
        await asyncio.wait(
            self._submitters, timeout=max(1.0, (deadline - self.now()).total_seconds())
        )
        quiet_since: datetime | None = None
        last_count = -1
        while self.now() < deadline:
            final = await self._final_tasks()
            pending = self._pending_outbox()
            count = len(self.smtp.deliveries())
            if count != last_count:
                last_count, quiet_since = count, self.now()
            quiet = quiet_since is not None and self.now() - quiet_since > timedelta(seconds=8)
            if len(final) == len(plan.tasks) and pending == 0 and quiet:
                self.note(f"settled at +{self.since_deploy():.1f}s")
                return
            await asyncio.sleep(2)
        self.note(f"not settled when the budget ran out at +{self.since_deploy():.1f}s")

    async def _final_tasks(self) -> set[str]:
        plan = self.plan
        final: set[str] = set()
        query = f"AccordAgreement = '{plan.agreement_id}' AND AccordKind = 'task'"
        with contextlib.suppress(RPCError):
            async for execution in self.client.list_workflows(query):
                task_id = execution.id.removeprefix("task:")
                task = plan.task(task_id)
                level = execution.typed_search_attributes.get(SA_ESCALATION_LEVEL)
                if task.submit_at is not None:
                    if execution.status is WorkflowExecutionStatus.COMPLETED:
                        final.add(task_id)
                elif level == len(ESCALATION):
                    final.add(task_id)
        return final

    def _pending_outbox(self) -> int:
        with self.sessions() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(db.OutboxRow)
                    .where(db.OutboxRow.status == db.OutboxStatus.PENDING.value)
                )
                or 0
            )

    # -- the verdict ----------------------------------------------------------------------

    async def figures(self, *, refused: Iterable[str] = ()) -> Figures:
        """Compare what arrived with what the plan owes; check every task and report.

        `refused` are addresses the SMTP server answers 550: what the plan owes them is
        expected to be recorded as failed in the outbox, not delivered."""
        plan = self.plan
        refused = set(refused)
        figures = Figures(self.scenario)
        contested = await self._contested()
        owed: set[MessageId] = set()
        for task in plan.tasks:
            owed |= expected_messages(task, plan.officers, self._sent_at(task))
        refused_owed = {m for m in owed if m[3] in refused}
        owed -= refused_owed
        owed_now = owed - contested

        deliveries = self.smtp.deliveries()
        by_raw = Counter((d.key, d.recipient) for d in deliveries)
        keys_of: dict[MessageId, set[str]] = {}
        arrival: dict[MessageId, datetime] = {}
        unparsed: list[str] = []
        for delivery in deliveries:
            if "/delivery-failed/" in delivery.key:
                continue  # checked with the 550 address (`_check_refused`)
            identity = self._identity(delivery)
            if identity is None:
                unparsed.append(delivery.key)
                continue
            keys_of.setdefault(identity, set()).add(delivery.key)
            arrival.setdefault(identity, delivery.at)
        delivered = set(keys_of)
        failure_notices = Counter(
            (d.key.split("/delivery-failed/")[0], d.recipient)
            for d in deliveries
            if "/delivery-failed/" in d.key
        )

        figures.expected = len(owed_now)
        figures.delivered = len(owed_now & delivered)
        lost = sorted(owed_now - delivered)
        figures.lost = len(lost)
        unexpected = sorted(delivered - owed - contested)
        figures.unexpected = len(unexpected) + len(unparsed)
        figures.contested = len(contested)
        copies = {raw: n for raw, n in by_raw.items() if n > 1}
        ids_of: dict[tuple[str, str], set[str]] = {}
        for d in deliveries:
            ids_of.setdefault((d.key, d.recipient), set()).add(d.message_id)
        # A copy with the same Message-ID is the at-least-once resend after a crash between the
        # relay's acceptance and the outbox mark: mail servers and clients drop it by that ID.
        # Copies under different Message-IDs reach the officer twice: true duplicates.
        resent = {raw: n for raw, n in copies.items() if len(ids_of[raw] - {""}) == 1}
        duplicates = {raw: n for raw, n in copies.items() if raw not in resent}
        multi_key = {i: keys for i, keys in keys_of.items() if len(keys) > 1}
        figures.resent = sum(n - 1 for n in resent.values())
        figures.duplicated = sum(n - 1 for n in duplicates.values()) + sum(
            len(k) - 1 for k in multi_key.values()
        )
        if contested:
            got = len(contested & delivered)
            figures.notes.append(
                f"{len(contested)} contested messages (their instant fell while a report was "
                f"in flight through an outage; either outcome is right): {got} delivered"
            )
        for raw, n in sorted(copies.items()):
            times = [d.at for d in deliveries if (d.key, d.recipient) == raw]
            label = "resent (same Message-ID)" if raw in resent else "duplicate"
            figures.evidence.append(
                f"{label} ×{n}: {raw[0]} → {raw[1]}, arrived at "
                + ", ".join(_hms(t, millis=True) for t in times)
                + self._outages_between(times[0], times[-1])
            )
        for identity, keys in sorted(multi_key.items()):
            figures.evidence.append(f"one message under several keys: {identity} {sorted(keys)}")
        for identity in unexpected:
            figures.evidence.append(f"unexpected: {identity} at {arrival[identity]:%H:%M:%S}")
        figures.evidence.extend(f"unparsable key: {key!r}" for key in unparsed)
        if lost:
            figures.evidence.extend(await self._explain_lost(lost))

        figures.notes.extend(self._lag_notes(arrival))
        figures.notes.append(self._send_lag_note())
        if refused_owed:
            figures.notes.extend(
                self._check_refused(refused_owed, delivered, figures, failure_notices)
            )
        elif failure_notices:
            figures.unexpected += sum(failure_notices.values())
            figures.evidence.extend(
                f"delivery-failure notice without a 550: {key} → {to}"
                for key, to in failure_notices
            )

        await self._check_tasks(figures)
        figures.notes.append(await self._ledger_note())
        figures.notes.append(self._worker_log_note())
        figures.wall_seconds = time.monotonic() - self.began
        return figures

    def _sent_at(self, task: ScheduledTask) -> datetime | None:
        submission = self.submissions.get(task.task_id)
        return None if submission is None else submission.sent_at

    def _send_lag_note(self) -> str:
        """How late the harness itself sent the reports against their planned moments: the
        expectations follow the actual sending time, and this says how far it drifted."""
        lags = sorted(
            (s.sent_at - s.planned_at).total_seconds()
            for s in self.submissions.values()
            if s.sent_at is not None
        )
        if not lags:
            return "harness sent no report"
        late = sum(1 for lag in lags if lag > PROCESSING_LAG.total_seconds())
        return (
            f"harness report sending after its planned moment: p50 {lags[len(lags) // 2]:.2f}s, "
            f"max {lags[-1]:.2f}s, {late} of {len(lags)} more than "
            f"{PROCESSING_LAG.total_seconds():.0f}s late (owed mail follows the actual time)"
        )

    def _outages_between(self, first: datetime, last: datetime) -> str:
        """The first fault injected after `first` (within `last`), and how soon after."""
        after = sorted(
            (o for o in self.outages if first - PROCESSING_LAG <= o.began <= last),
            key=lambda o: o.began,
        )
        if not after:
            return "; no fault injected in between"
        fault = after[0]
        delay = (fault.began - first).total_seconds() * 1000
        return f"; {fault.what} {delay:.0f} ms after the first copy was accepted"

    def _identity(self, delivery: Delivery) -> MessageId | None:
        # Key: '<task id>/<kind>[/<step>/<due instant>]'; a task ID has exactly four parts.
        parts = delivery.key.split("/")
        if len(parts) < 5:
            return None
        task_id, kind = "/".join(parts[:4]), parts[4]
        if kind == "receipt" and len(parts) == 5:
            return (task_id, kind, 0, delivery.recipient)
        if kind in ("reminder", "escalation") and len(parts) == 7 and parts[5].isdigit():
            return (task_id, kind, int(parts[5]), delivery.recipient)
        return None

    async def _contested(self) -> set[MessageId]:
        """Messages for which either outcome is right, because the report and the notice's
        timer reached the task's workflow together.

        That happens when the instant falls between the report being sent and its being
        accepted, or when the report was sent while the workflow could not run (its workflow
        task waiting for a dead worker or a restarting server) and the instant fell in the same
        stall: the engine then sees both in one workflow task and takes the report first. The
        stalls are read from the task's history (a timer that fired late, a workflow task
        scheduled long before it started), not guessed from when the harness injected faults."""
        plan = self.plan
        contested: set[MessageId] = set()
        for submission in self.submissions.values():
            if submission.sent_at is None:
                continue
            sent = submission.sent_at
            accepted = (submission.accepted_at or self.now()) + timedelta(seconds=0.5)
            task = plan.task(submission.task_id)
            stalls = (await self._history_story(task.task_id)).stalls
            for notice in task.notices():
                together = sent - PROCESSING_LAG <= notice.at <= accepted or any(
                    began - PROCESSING_LAG <= notice.at <= sent <= ended for began, ended in stalls
                )
                if together:
                    contested |= _to(task, notice.kind, notice.step, notice.roles, plan.officers)
        return contested

    def _lag_notes(self, arrival: dict[MessageId, datetime]) -> list[str]:
        plan = self.plan
        lags: list[float] = []
        for task in plan.tasks:
            for notice in task.notices():
                for address in {
                    a for r in notice.roles for a in plan.officers.addresses(r, task.agency)
                }:
                    got = arrival.get((task.task_id, notice.kind, notice.step, address))
                    if got is not None:
                        lags.append((got - notice.at).total_seconds())
        if not lags:
            return []
        lags.sort()
        p50 = lags[len(lags) // 2]
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        return [
            f"reminder/escalation arrival after its instant: p50 {p50:.1f}s, p99 {p99:.1f}s, "
            f"max {lags[-1]:.1f}s"
        ]

    def _check_refused(
        self,
        refused_owed: set[MessageId],
        delivered: set[MessageId],
        figures: Figures,
        failure_notices: Counter[tuple[str, str]],
    ) -> list[str]:
        """What the plan owes a refused (550) address must be an outbox row marked failed,
        with the refusal in `last_error`, must not hold up the other recipients, and must be
        reported to the admin by exactly one delivery-failure notice per refused message."""
        addresses = {m[3] for m in refused_owed}
        with self.sessions() as session:
            rows = list(
                session.scalars(
                    select(db.OutboxRow).where(db.OutboxRow.recipient_email.in_(addresses))
                )
            )
            audit = list(
                session.scalars(
                    select(db.AuditRow).where(db.AuditRow.action == "notification_sent")
                )
            )
        row_of = {
            identity: row
            for row in rows
            if (
                identity := self._identity(
                    Delivery(row.business_key, row.recipient_email, row.created_at)
                )
            )
        }
        failed = [
            m
            for m in refused_owed
            if (r := row_of.get(m)) and r.status == db.OutboxStatus.FAILED.value
        ]
        for message in sorted(refused_owed - set(failed)):
            row = row_of.get(message)
            figures.lost += 1
            figures.evidence.append(
                f"owed to the 550 address but {'row ' + row.status if row else 'never attempted'}"
                f": {message}"
            )
        for message in sorted(refused_owed & delivered):
            figures.unexpected += 1
            figures.evidence.append(f"delivered despite 550: {message}")
        keys = {row_of[m].business_key for m in failed}
        others = {
            m
            for m in _owed_to_others(self.plan, keys, addresses, self._sent_at)
            if m not in refused_owed
        }
        counted = [
            a
            for a in audit
            if a.detail.get("business_key") in keys and a.detail.get("failed", "0") != "0"
        ]
        example = row_of[failed[0]].last_error if failed else "-"
        # Every refused message (owed or contested) that the outbox marked failed is reported.
        with self.sessions() as session:
            refused_keys = set(
                session.scalars(
                    select(db.OutboxRow.business_key).where(
                        db.OutboxRow.recipient_email.in_(addresses),
                        db.OutboxRow.status == db.OutboxStatus.FAILED.value,
                    )
                )
            )
        reported = {key for key, to in failure_notices if to == ADMIN_EMAIL}
        for key in sorted(refused_keys - reported):
            figures.lost += 1
            figures.evidence.append(f"550 not reported to the admin: {key}")
        for (key, to), n in sorted(failure_notices.items()):
            if to != ADMIN_EMAIL or key not in refused_keys:
                figures.unexpected += n
                figures.evidence.append(f"unexpected delivery-failure notice: {key} → {to}")
            elif n > 1:
                figures.duplicated += n - 1
                figures.evidence.append(f"delivery-failure notice ×{n}: {key}")
        return [
            f"550 for {', '.join(sorted(addresses))}: {len(failed)} of {len(refused_owed)} "
            f"owed messages recorded as failed in the outbox (last_error {example!r}); the "
            f"other recipients of those messages: {len(others & delivered)} of {len(others)} "
            f"delivered; {len(counted)} of {len(keys)} 'notification_sent' audit rows count the "
            f"failure; {len(reported & refused_keys)} of {len(refused_keys)} refused messages "
            f"reported to the admin ({ADMIN_EMAIL}) by a delivery-failure notice"
        ]

    def _worker_log_note(self) -> str:
        """How often the workers' logs report failed activity attempts, and why."""
        text = "\n".join(
            path.read_text("utf-8", errors="replace")
            for path in sorted(self.folder.glob("worker-*.log"))
        )
        failed = text.count("Completing activity as failed")
        locked = text.count("database is locked")
        return (
            f"worker logs: {failed} activity attempts failed; 'database is locked' appears "
            f"{locked} times"
        )

    async def _ledger_note(self) -> str:
        """What the agreement workflow's ledger (its overview query) says at the end."""
        handle = self.client.get_workflow_handle_for(
            AgreementWorkflow.run, agreement_workflow_id(self.plan.agreement_id)
        )
        try:
            overview = await handle.query(AgreementWorkflow.overview)
        except Exception as err:  # reported, not fatal: the tasks are checked one by one
            return f"agreement overview unavailable: {type(err).__name__}: {err}"
        reported = sum(1 for t in self.plan.tasks if t.submit_at is not None)
        return (
            f"agreement ledger: {overview.closed} of {overview.started} tasks closed "
            f"({reported} reported, so {reported} should be); counts {overview.counts}"
        )

    async def _check_tasks(self, figures: Figures) -> None:
        """Stuck: a task not in the state its plan leads to (a reported task must have
        completed; a never reported one must be overdue at the last escalation step with
        nothing pending). Submission lost: a report the harness sent that is not stored, or
        whose task does not show it."""
        plan = self.plan
        with self.sessions() as session:
            stored = {
                row.task_id: row
                for row in session.scalars(
                    select(db.SubmissionRow).where(
                        db.SubmissionRow.agreement_id == plan.agreement_id
                    )
                )
            }
        semaphore = asyncio.Semaphore(16)

        async def check(task: ScheduledTask) -> _TaskCheck:
            async with semaphore:
                handle = self.client.get_workflow_handle(task_workflow_id(task.task_id))
                try:
                    described = await handle.describe()
                    result = await handle.query(ObligationWorkflow.status)
                except Exception as err:  # a task that cannot answer is stuck
                    return _TaskCheck(task, None, None, 0, f"{type(err).__name__}: {err}")
                pending = len(described.raw_description.pending_activities)
                return _TaskCheck(task, result, described.status, pending, "")

        checks = await asyncio.gather(*(check(t) for t in plan.tasks))
        for checked in checks:
            task, result = checked.task, checked.status
            submission = self.submissions.get(task.task_id)
            if submission is not None:
                figures.submissions += 1
                row = stored.get(task.task_id)
                if (
                    submission.accepted_at is None
                    or submission.rejected
                    or row is None
                    or result is None
                    or result.submitted_at is None
                ):
                    figures.submissions_lost += 1
                    figures.evidence.append(
                        f"submission lost: {task.task_id} (accepted "
                        f"{_hms(submission.accepted_at)}, rejected {submission.rejected}, "
                        f"stored {row is not None}, errors {submission.errors[-1:]})"
                    )
                sent_on_time = submission.sent_at is not None and submission.sent_at < task.due_at
                if row is not None and sent_on_time and row.late:
                    figures.recorded_late += 1
                    figures.evidence.append(
                        f"sent on time but recorded late: {task.task_id} sent "
                        f"{_hms(submission.sent_at, millis=True)}, accepted "
                        f"{_hms(submission.accepted_at, millis=True)}, stamped "
                        f"{_hms(row.submitted_at, millis=True)}, due {_hms(task.due_at)}"
                    )
                if row is not None and not sent_on_time and not row.late:
                    figures.submissions_lost += 1
                    figures.evidence.append(f"late report recorded on time: {task.task_id}")
            if checked.ok:
                continue
            figures.stuck += 1
            story = await self._history_story(task.task_id)
            figures.evidence.append(f"stuck: {checked.describe()}; {story.timer_text()}")
        if figures.recorded_late:
            figures.notes.append(
                f"{figures.recorded_late} reports sent before the due instant were recorded "
                "late: the workflow stamps a report with the time it processes it"
            )

    async def _explain_lost(self, lost: Sequence[MessageId]) -> list[str]:
        """For each lost message, what the task's history shows around its instant."""
        plan = self.plan
        lines: list[str] = []
        by_task: dict[str, list[MessageId]] = {}
        for message in lost:
            by_task.setdefault(message[0], []).append(message)
        superseded = 0
        for task_id, messages in sorted(by_task.items()):
            task = plan.task(task_id)
            story = await self._history_story(task_id)
            submission = self.submissions.get(task_id)
            for message in messages:
                notice = next((n for n in task.notices() if (n.kind, n.step) == message[1:3]), None)
                at = f"{notice.at:%H:%M:%S}" if notice else "-"
                accepted = story.update_accepted
                # What kept the task busy past the instant before the report came: the main
                # loop awaits each notice's activities before it looks at the next notice.
                blocked = [
                    activity
                    for activity in story.activities
                    if notice is not None
                    and accepted is not None
                    and activity.scheduled < accepted
                    and (activity.closed is None or activity.closed > notice.at)
                ]
                if notice is not None and accepted is not None and accepted > notice.at and blocked:
                    superseded += 1
                sent = _hms(submission.sent_at if submission else None)
                lines.append(
                    f"lost: {message[1]} {message[2]} of {task_id} → {message[3]} (instant {at}, "
                    f"{task.behaviour.name}, report sent {sent}"
                    f", accepted by workflow {_hms(story.update_accepted)}); "
                    + (
                        "at the instant the task was still waiting for "
                        + "; ".join(b.describe() for b in blocked)
                        if blocked
                        else "no activity outstanding at the instant"
                    )
                )
        if superseded:
            lines.insert(
                0,
                f"{superseded} of {len(lost)} lost messages: their instant passed while the task "
                "waited for an earlier activity (a notification or an audit write), and the "
                "report was accepted before that activity finished, so the notification was "
                "never sent",
            )
        return lines

    async def _history_story(self, task_id: str) -> _Story:
        """What the task's history shows; read once, after the run has settled."""
        story = self._stories.get(task_id)
        if story is None:
            story = self._stories[task_id] = await self._read_history(task_id)
        return story

    async def _read_history(self, task_id: str) -> _Story:
        handle = self.client.get_workflow_handle(task_workflow_id(task_id))
        story = _Story()
        waiting_since: datetime | None = None
        task_started: datetime | None = None
        timers: dict[str, datetime] = {}
        scheduled: dict[int, _ActivityStory] = {}
        try:
            history = await handle.fetch_history()
        except RPCError:
            return story
        for event in history.events:
            at = event.event_time.ToDatetime(tzinfo=UTC)
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attributes = event.activity_task_scheduled_event_attributes
                entry = _ActivityStory(attributes.activity_type.name, at)
                scheduled[event.event_id] = entry
                story.activities.append(entry)
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started = event.activity_task_started_event_attributes
                entry = scheduled[started.scheduled_event_id]
                entry.attempts = started.attempt
                if started.last_failure.message:
                    entry.last_failure = started.last_failure.message[:160]
            elif event.event_type in _ACTIVITY_CLOSED:
                closed_id = _closed_scheduled_id(event)
                entry = scheduled[closed_id]
                entry.closed = at
                entry.outcome = (
                    EventType.Name(event.event_type)
                    .removeprefix("EVENT_TYPE_ACTIVITY_TASK_")
                    .lower()
                )
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
                # The workflow saw the report when the workflow task holding it started (its
                # `workflow.now()`); the event itself is written when that task completes.
                story.update_accepted = task_started or at
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                waiting_since = waiting_since or at
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                task_started = at
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                # Timed-out or failed attempts keep the workflow waiting: only a completed
                # workflow task ends a stall.
                if waiting_since and task_started and task_started - waiting_since > PROCESSING_LAG:
                    story.stalls.append((waiting_since, task_started))
                waiting_since = None
            elif event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                timer = event.timer_started_event_attributes
                story.timer_fires_at = at + timer.start_to_fire_timeout.ToTimedelta()
                timers[timer.timer_id] = story.timer_fires_at
            elif event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
                story.timer_fires_at = None
                planned = timers.pop(event.timer_fired_event_attributes.timer_id, at)
                if at - planned > PROCESSING_LAG:
                    # A timer that fired late (the server was down) stalls the workflow from
                    # its planned instant on.
                    waiting_since = min(waiting_since or planned, planned)
            elif event.event_type == EventType.EVENT_TYPE_TIMER_CANCELED:
                story.timer_fires_at = None
                planned = timers.pop(event.timer_canceled_event_attributes.timer_id, at)
                if at - planned > PROCESSING_LAG:
                    # Cancelled (by a report) although its instant had passed: the server had
                    # not fired it yet (it was catching up after a restart): a stall too.
                    story.stalls.append((planned, at))
        return story

    async def close(self) -> None:
        for task in self._submitters:
            task.cancel()
        for worker in self.workers.values():
            worker.terminate()
        self.smtp.refuse_connections()
        self.engine.dispose()


@dataclass
class _ActivityStory:
    activity: str
    scheduled: datetime
    closed: datetime | None = None
    outcome: str = "open"
    attempts: int = 1
    last_failure: str = ""

    def describe(self) -> str:
        closed = _hms(self.closed)
        text = (
            f"{self.activity} scheduled {_hms(self.scheduled)}, {self.outcome} {closed} "
            f"after {self.attempts} attempt(s)"
        )
        return text + (f", last failure: {self.last_failure}" if self.last_failure else "")


@dataclass
class _Story:
    activities: list[_ActivityStory] = field(default_factory=list)
    update_accepted: datetime | None = None
    timer_fires_at: datetime | None = None
    stalls: list[tuple[datetime, datetime]] = field(default_factory=list)
    """Stretches in which a workflow task waited longer than `PROCESSING_LAG` to run."""

    def timer_text(self) -> str:
        if self.timer_fires_at is None:
            return "no timer pending"
        return f"its last timer fires at {self.timer_fires_at.astimezone(ZONE):%d/%m %H:%M:%S}"


@dataclass(frozen=True)
class _TaskCheck:
    task: ScheduledTask
    status: TaskStatus | None
    execution: WorkflowExecutionStatus | None
    pending_activities: int
    error: str

    @property
    def ok(self) -> bool:
        status = self.status
        if status is None:
            return False
        if self.task.submit_at is None:
            return (
                self.execution is WorkflowExecutionStatus.RUNNING
                and status.state is TaskState.OVERDUE
                and status.escalation_level == len(ESCALATION)
                and self.pending_activities == 0
            )
        return self.execution is WorkflowExecutionStatus.COMPLETED and not status.state.is_open

    def describe(self) -> str:
        task, status = self.task, self.status
        head = f"{task.task_id} ({task.behaviour.name})"
        if status is None:
            return f"{head}: no status ({self.error})"
        execution = self.execution.name if self.execution else "?"
        return (
            f"{head}: workflow {execution}, state {status.state.value}, closed flag "
            f"{status.closed}, escalation level {status.escalation_level}, "
            f"{self.pending_activities} pending activities"
        )


_ACTIVITY_CLOSED: Final = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
}


def _owed_to_others(
    plan: FaultPlan,
    keys: set[str],
    addresses: set[str],
    sent_at: Callable[[ScheduledTask], datetime | None],
) -> set[MessageId]:
    """Everything the plan owes under the given business keys to addresses not refused."""
    prefixes = {
        key.rsplit("/", 1)[0] if "/escalation/" in key or "/reminder/" in key else key
        for key in keys
    }
    owed: set[MessageId] = set()
    for task in plan.tasks:
        for message in expected_messages(task, plan.officers, sent_at(task)):
            if message[3] in addresses:
                continue
            prefix = f"{message[0]}/{message[1]}" + (f"/{message[2]}" if message[2] else "")
            if prefix in prefixes:
                owed.add(message)
    return owed


def _closed_scheduled_id(event: Any) -> int:
    for name in (
        "activity_task_completed_event_attributes",
        "activity_task_failed_event_attributes",
        "activity_task_timed_out_event_attributes",
        "activity_task_canceled_event_attributes",
    ):
        if event.HasField(name):
            return int(getattr(event, name).scheduled_event_id)
    raise ValueError(f"not an activity close event: {event.event_type}")


def _hms(at: datetime | None, *, millis: bool = False) -> str:
    if at is None:
        return "-"
    text = at.astimezone(ZONE).strftime("%H:%M:%S.%f")
    return text[:-3] if millis else text[:-7]


def _hold_exclusive_lock(path: Path, seconds: float) -> None:
    connection = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        connection.execute("ROLLBACK")
    finally:
        connection.close()


@asynccontextmanager
async def fault_world(scenario: str, folder: Path) -> AsyncIterator[FaultWorld]:
    """Dev server on `folder/temporal.db`, the counting SMTP server, the Accord database;
    workers are started by the scenario. Everything is stopped on the way out."""
    port, ui_port, smtp_port = free_ports(3)
    server = DevServer(folder, port=port, ui_port=ui_port, retention_days=1)
    smtp = CountingSmtpServer(smtp_port)
    smtp.accept_connections()
    await server.start()
    world = FaultWorld(scenario, folder, server, smtp)
    try:
        await world.connect()
        yield world
    finally:
        await world.close()
        await server.stop()
