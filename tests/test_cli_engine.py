"""The engine commands of `accord` (run, deploy, status, submit, extend, decide, waive,
simulate), run as a user runs them, against real components: a Temporal dev server, a worker
with the real workflows and activities, an SMTP server keeping `.eml` files and a SQLite
database. Nothing is mocked.

The dev server keeps real time. The Nghệ An programme is deployed from a copy moved in time
so that today is, for it, what 3 December 2026 is for the shipped one (its last month): nine of
its yearly plans and reports are past due, so deploying it starts them overdue, and they stay
open until the programme ends; its last two tasks, due a few weeks from now, start a few weeks
before they are due. Every date the tests expect comes from that copy (expanded by the same
code, working calendar included), so they pass whatever today is.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import email
import email.policy
import functools
import io
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from ports import free_ports
from sqlalchemy import select
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

import worker
from accord.cli import main
from accord.cli.deployment import status_query
from accord.deploy import build_input
from accord.embedded import DevServer, MailSink, find_binary
from agreements.expansion import cached_calendar
from agreements.loader import load_agreement
from infra import db
from infra.settings import Settings, SmtpSettings

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_NGHE_AN = ROOT / "agreements" / "nghe-an-2021-2026-chuong-trinh.yaml"
QUANG_BINH_289 = ROOT / "agreements" / "quang-binh-2025-289-kh-ubnd.yaml"
BROKEN = ROOT / "tests" / "agreements" / "broken" / "unknown-owner-agency.yaml"
NGHE_AN_ID = "nghe-an-ctph-dan-van-2021-2026"
NGHE_AN_TITLE = "Chương trình phối hợp 2021-2026 (số hiệu chưa rõ)"
ACCORD = str(Path(sys.executable).parent / "accord")

# Officers of the Nghệ An directory. The programme's yearly tasks are owed by Sở Nội vụ (SNV)
# and reported to Ban Dân vận Tỉnh ủy (BDV_TU), which aggregates them.
SNV_FOCAL_POINT = "dau-moi-snv"
BDV_FOCAL_POINT = "dau-moi-bdv-tu"
ADMIN = "quan-tri-snv"
BDV_HEAD = "thu-truong-bdv-tu"
CLAIM_KEY = "accord-cli-test-claim-key-0123456789abcdef"
"""The operator credential's key: the test engine's worker accepts it."""
OPERATOR = "van-hanh-vien-1"

OVERDUE = "Chưa hoàn thành, quá hạn"
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
T = TypeVar("T")


WRITTEN_FOR = date(2026, 12, 3)
"""The day these tests were written on, in the shipped programme's last month."""


def move_nghe_an(today: date | None = None) -> tuple[Path, timedelta]:
    """The shipped Nghệ An programme (period 27/12/2021-31/12/2026, plans due 31 March, reports
    27 December, the final summary five years after the start) with every date moved by the
    days from `WRITTEN_FOR` to today, written with its directory into a folder of its own; and
    the shift. Its yearly dates become the moved days' month and day (never 29 February)."""
    shift = (today or datetime.now(VIETNAM).date()) - WRITTEN_FOR
    while any((day + shift).timetuple()[1:3] == (2, 29) for day in YEARLY_DUES):
        shift += timedelta(days=1)
    text = SHIPPED_NGHE_AN.read_text(encoding="utf-8")
    plan, report = (day + shift for day in YEARLY_DUES)
    replacements = (
        ("signed_on: 2021-12-27", f"signed_on: {date(2021, 12, 27) + shift}"),
        ("  start: 2021-12-27\n", f"  start: {date(2021, 12, 27) + shift}\n"),
        ("  end: 2026-12-31\n", f"  end: {date(2026, 12, 31) + shift}\n"),
        ("starting: 2022-01-01", f"starting: {date(2022, 1, 1) + shift}"),
        ("      month: 3\n      day: 31\n", f"      month: {plan.month}\n      day: {plan.day}\n"),
        (
            "      month: 12\n      day: 27\n",
            f"      month: {report.month}\n      day: {report.day}\n",
        ),
    )
    # In two passes, so that a new date is never taken for an old one.
    for n, (old, _) in enumerate(replacements):
        assert old in text, old
        text = text.replace(old, f"\0{n}\0")
    for n, (_, new) in enumerate(replacements):
        text = text.replace(f"\0{n}\0", new)
    folder = Path(tempfile.mkdtemp(prefix="accord-cli-nghe-an-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    (folder / "directory").mkdir()
    directory = SHIPPED_NGHE_AN.parent / "directory" / "nghe-an.yaml"
    (folder / "directory" / directory.name).write_bytes(directory.read_bytes())
    path = folder / SHIPPED_NGHE_AN.name
    path.write_text(text, encoding="utf-8")
    return path, shift


YEARLY_DUES = (date(2026, 3, 31), date(2026, 12, 27))
"""The shipped programme's last plan and report due dates."""
NGHE_AN, SHIFT = move_nghe_an()
"""The programme the tests deploy, and how far it was moved from the shipped one."""
NGHE_AN_END = date(2026, 12, 31) + SHIFT
"""The moved programme's last day."""


@functools.cache
def nghe_an_tasks(obligation: str) -> list[tuple[str, datetime]]:
    """The moved programme's tasks of SNV (or whoever owes them) for `obligation`, in due
    order: (task ID, due instant in Vietnam, after the working calendar)."""
    tasks = [
        t for t in build_input(load_agreement(NGHE_AN)).waiting if t.obligation_id == obligation
    ]
    found = []
    for task in sorted(tasks, key=lambda t: t.due_at or datetime.max.replace(tzinfo=UTC)):
        assert task.due_at is not None
        found.append((task.task_id, task.due_at.astimezone(VIETNAM)))
    return found


def nghe_an_task(obligation: str, nth: int) -> str:
    """The ID of the `nth` (0: the first year's) task of `obligation`; -1 is the last."""
    return nghe_an_tasks(obligation)[nth][0]


def nghe_an_due(obligation: str, nth: int) -> str:
    """Its due day as the CLI prints it ("trước DD/MM/YYYY")."""
    return f"{nghe_an_tasks(obligation)[nth][1]:%d/%m/%Y}"


BEYOND_THE_END = NGHE_AN_END + timedelta(days=60)
"""A day after the programme (the shipped one's was 01/03/2027)."""


def extension_day() -> date:
    """The new due day for an extension, as the shipped test's 30/12/2026: the day before the
    programme's last, or earlier so that the last day before it is a working day (the working
    calendar would move it otherwise)."""
    day = NGHE_AN_END - timedelta(days=1)
    calendar = cached_calendar(range(day.year - 1, day.year + 2))
    while not calendar.is_working_day(day - timedelta(days=1)):
        day -= timedelta(days=1)
    assert day > datetime.now(VIETNAM).date() + timedelta(days=1)
    return day


def period_of(task_id: str) -> str:
    return task_id.rsplit("/", 1)[1]


def eventually(check: Callable[[], T], timeout: float = 30.0) -> T:
    """`check()` once it stops failing: visibility (search attributes) lags a moment."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


# --------------------------------------------------------------------------------------------
# The engine: dev server, mail sink and worker on their own thread


@dataclass(frozen=True)
class Engine:
    address: str
    task_queue: str
    database_url: str
    mail_dir: Path
    data_dir: Path

    def mails(self, task_id: str, kind: str) -> list[email.message.EmailMessage]:
        found = []
        for path in sorted(self.mail_dir.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, email.message.EmailMessage)
            if message["X-Accord-Task"] == task_id and message["X-Accord-Kind"] == kind:
                found.append(message)
        return found


class EngineThread(threading.Thread):
    """The server side of Accord on its own event loop. The CLI under test calls
    `asyncio.run` on the test's thread; the worker must keep polling meanwhile."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(name="accord-engine", daemon=True)
        self.data_dir = data_dir
        self.task_queue = f"cli-engine-{uuid.uuid4()}"
        self.database_url = f"sqlite:///{data_dir / 'accord.db'}"
        self.ready = threading.Event()
        self.engine: Engine | None = None
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:
            self.error = error
        finally:
            self.ready.set()

    async def _serve(self) -> None:
        port, ui_port = free_ports(2)
        server = DevServer(self.data_dir / "temporal", port=port, ui_port=ui_port)
        sink = MailSink(self.data_dir / "mail", port=0)
        async with server, sink:
            settings = Settings(database_url=self.database_url, data_dir=self.data_dir)
            client = await worker.connect(settings, server.address)
            engine_worker = worker.build_worker(
                client,
                task_queue=self.task_queue,
                session_factory=worker.open_database(settings, upgrade=True),
                smtp=SmtpSettings(host="127.0.0.1", port=sink.port, embedded=False),
                share_accord_modules=False,
                claim_keys={"cli-test": CLAIM_KEY.encode()},
            )
            async with engine_worker:
                self._loop = asyncio.get_running_loop()
                self._stopping = asyncio.Event()
                self.engine = Engine(
                    address=server.address,
                    task_queue=self.task_queue,
                    database_url=self.database_url,
                    mail_dir=sink.mail_dir,
                    data_dir=self.data_dir,
                )
                self.ready.set()
                await self._stopping.wait()

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self.join(timeout=60)


@pytest.fixture(autouse=True)
def operator_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command here runs as the test operator (the refusals without one: test_cli.py)."""
    monkeypatch.setenv("ACCORD_CLAIMS__KEY", CLAIM_KEY)
    monkeypatch.setenv("ACCORD_CLAIMS__KEY_ID", "cli-test")
    monkeypatch.setenv("ACCORD_CLAIMS__OPERATOR", OPERATOR)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    thread = EngineThread(tmp_path_factory.mktemp("engine"))
    thread.start()
    thread.ready.wait(timeout=120)
    if thread.engine is None:
        thread.stop()
        raise RuntimeError(f"the engine did not start: {thread.error!r}")
    yield thread.engine
    thread.stop()


def cli_settings(engine: Engine) -> dict[str, str]:
    """What a user's environment would say; `Settings()` in the CLI reads it."""
    return {
        "ACCORD_TEMPORAL__ADDRESS": engine.address,
        "ACCORD_TEMPORAL__TASK_QUEUE": engine.task_queue,
        "ACCORD_DATABASE_URL": engine.database_url,
        "ACCORD_DATA_DIR": str(engine.data_dir / "cli"),
        "ACCORD_CLAIMS__KEY": CLAIM_KEY,
        "ACCORD_CLAIMS__KEY_ID": "cli-test",
        "ACCORD_CLAIMS__OPERATOR": OPERATOR,
    }


def point_cli_at(patch: pytest.MonkeyPatch, engine: Engine) -> None:
    for name, value in cli_settings(engine).items():
        patch.setenv(name, value)


@pytest.fixture(scope="module")
def first_deploy(engine: Engine) -> list[str]:
    """Nghệ An deployed once through `accord deploy`; the output, for the deploy test."""
    output = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(output):
        point_cli_at(patch, engine)
        code = main(["deploy", str(NGHE_AN)])
    assert code == 0, output.getvalue()
    return output.getvalue().splitlines()


@pytest.fixture
def nghe_an(engine: Engine, first_deploy: list[str], monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Nghệ An deployed, and the CLI pointed at the engine."""
    point_cli_at(monkeypatch, engine)
    return engine


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def accord(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def status_json(capsys: pytest.CaptureFixture[str], *filters: str) -> dict[str, dict[str, Any]]:
    run = accord(capsys, "status", "--json", *filters)
    assert run.code == 0, run.err
    tasks = [json.loads(line) for line in run.lines]
    return {task["task"]: task for task in tasks}


OPENED = re.compile(r"Nhiệm vụ đã mở: (\d+) \(\d+ đã đóng\), chưa đến kỳ: (\d+)")
"""The overview's line on tasks started and waiting."""


@functools.cache
def nghe_an_opening_times() -> list[datetime]:
    return [task.opens_at for task in build_input(load_agreement(NGHE_AN)).waiting]


def due_to_be_open() -> int:
    """How many of Nghệ An's tasks have opened by now (the agreement starts them a few at a
    time after the deploy, so fewer may be open for a moment)."""
    now = datetime.now(UTC)
    return sum(1 for opens_at in nghe_an_opening_times() if opens_at <= now)


def wait_until_started(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    """Nghệ An's tasks once all that are due to be open are, every one of them is in the
    search index and the nine past ones have noticed they are overdue."""

    def started() -> dict[str, dict[str, Any]]:
        overview = accord(capsys, "status", "--agreement", NGHE_AN_ID)
        opened = OPENED.search(overview.out)
        assert opened, overview.out + overview.err
        assert int(opened[1]) == due_to_be_open()
        tasks = status_json(capsys, "--agreement", NGHE_AN_ID)
        assert len(tasks) == int(opened[1]) >= 9
        now = datetime.now(UTC)
        for task in tasks.values():
            if datetime.fromisoformat(task["due_at"]) < now:
                assert task["state"] != "pending", task
        return tasks

    return eventually(started)


def recipients(messages: list[email.message.EmailMessage]) -> set[str]:
    return {address.addr_spec for m in messages for address in m["To"].addresses}


def write_report(folder: Path, text: str) -> Path:
    path = folder / "bao-cao.yaml"
    path.write_text(text, encoding="utf-8")
    return path


REPORT = """\
summary: >-
  Sở Nội vụ đã xây dựng và ban hành kế hoạch phối hợp về công tác dân vận năm 2026.
attachments:
  - ke-hoach-phoi-hop-dan-van-2026.pdf
"""


async def count_workflows(address: str, query: str) -> int:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    return (await client.count_workflows(query)).count


# --------------------------------------------------------------------------------------------
# accord deploy


def test_deploy_twice_starts_one_agreement_workflow(
    nghe_an: Engine, first_deploy: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    again = accord(capsys, "deploy", str(NGHE_AN))

    assert first_deploy == [f"deployed agreement:{NGHE_AN_ID}: 11 tasks (started)"]
    assert again.code == 0
    assert again.lines == [f"unchanged agreement:{NGHE_AN_ID}: 11 tasks (already running)"]
    query = f"WorkflowId = 'agreement:{NGHE_AN_ID}'"
    assert asyncio.run(count_workflows(nghe_an.address, query)) == 1


def test_deploy_reports_an_invalid_file_and_deploys_the_others(
    nghe_an: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    run = accord(capsys, "deploy", str(BROKEN), str(NGHE_AN))

    assert run.code == 1
    assert run.lines[0] == f"INVALID {BROKEN}: not deployed"
    assert run.lines[1].startswith(f"  {BROKEN}:")
    assert run.lines[-1] == f"unchanged agreement:{NGHE_AN_ID}: 11 tasks (already running)"


# --------------------------------------------------------------------------------------------
# Search attributes and accord status


def test_search_attributes_find_a_task_with_the_temporal_cli(nghe_an: Engine) -> None:
    task_id = nghe_an_task("ke-hoach-nam", 1)
    command = [
        find_binary("temporal"),
        "workflow",
        "list",
        "--address",
        nghe_an.address,
        "--query",
        "AccordKind='task' AND AccordAgency='SNV'",
        "--disable-config-file",
        "--disable-config-env",
    ]

    def listed() -> str:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
        assert f"task:{task_id}" in result.stdout
        return result.stdout

    output = eventually(listed)
    assert f"agreement:{NGHE_AN_ID}" not in output


def test_status_of_an_agreement_prints_its_overview_then_a_table(
    nghe_an: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    started = wait_until_started(capsys)
    plan_2023 = nghe_an_task("ke-hoach-nam", 1)
    report_2023 = nghe_an_task("bao-cao-ket-qua-nam", 1)

    run = accord(capsys, "status", "--agreement", NGHE_AN_ID)

    assert run.code == 0, run.err
    lines = run.lines
    assert lines[0] == f"{NGHE_AN_TITLE} (agreement:{NGHE_AN_ID})"
    opened = OPENED.fullmatch(lines[1])
    assert opened, lines[1]
    assert int(opened[1]) == len(started) and int(opened[1]) + int(opened[2]) == 11
    assert "Quá hạn:" in lines
    overdue = lines[lines.index("Quá hạn:") + 1 :]
    plan_2023_due = nghe_an_due("ke-hoach-nam", 1)
    assert any(line.startswith(f"  trước {plan_2023_due}  SNV  {plan_2023}") for line in overdue)

    header = next(line for line in lines if line.startswith("Nhiệm vụ  "))
    table = lines[lines.index(header) :]
    columns = ["Nhiệm vụ", "Cơ quan", "Kỳ", "Trạng thái", "Hạn", "Mức đôn đốc"]
    starts = [header.index(column) for column in columns]
    assert starts == sorted(starts)
    rows = {line.split()[0]: line for line in table[2:-1]}
    assert set(rows) == set(started)
    for task_id, period, due in (
        (plan_2023, period_of(plan_2023), plan_2023_due),
        (report_2023, period_of(report_2023), nghe_an_due("bao-cao-ket-qua-nam", 1)),
    ):
        row = rows[task_id]
        cells = [
            row[start:end].strip() for start, end in zip(starts, [*starts[1:], None], strict=True)
        ]
        assert cells[:5] == [task_id, "SNV", period, OVERDUE, f"trước {due}"]
        assert cells[5] == str(started[task_id]["escalation_level"])
    assert table[-1].startswith(f"{len(started)} nhiệm vụ: ")


def test_status_filters_and_json(nghe_an: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    wait_until_started(capsys)

    tasks = status_json(capsys, "--agreement", NGHE_AN_ID, "--agency", "SNV", "--state", "overdue")

    task_id, due_at = nghe_an_tasks("ke-hoach-nam")[1]
    plan_2023 = tasks[task_id]
    assert isinstance(plan_2023.pop("escalation_level"), int)
    assert plan_2023 == {
        "task": task_id,
        "agreement": NGHE_AN_ID,
        "tenant": "nghe-an",
        "agency": "SNV",
        "obligation": "ke-hoach-nam",
        "period": period_of(task_id),
        "state": "overdue",
        "state_label": OVERDUE,
        "due_at": due_at.isoformat(),
        "closed": False,
    }
    assert {task["agency"] for task in tasks.values()} == {"SNV"}
    assert {task["state"] for task in tasks.values()} == {"overdue"}
    by_ban_dan_van = status_json(capsys, "--agreement", NGHE_AN_ID, "--agency", "BDV_TU")
    assert {task["obligation"] for task in by_ban_dan_van.values()} <= {"tong-ket-chuong-trinh"}
    assert len(status_json(capsys, "--agreement", NGHE_AN_ID, "--limit", "2")) == 2


def test_status_query_takes_only_safe_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert status_query("nghe-an-2021", "SNV", "overdue") == (
        "AccordKind = 'task' AND AccordAgreement = 'nghe-an-2021' AND AccordAgency = 'SNV' "
        "AND AccordState = 'overdue'"
    )
    assert status_query(None, "SNV", None, "nghe-an") == (
        "AccordKind = 'task' AND AccordTenant = 'nghe-an' AND AccordAgency = 'SNV'"
    )
    for argv in (
        ["--agreement", "x' OR AccordKind = 'agreement"],
        ["--agency", "SNV' OR 'a' = 'a"],
        ["--state", "overdue' OR 'a' = 'a"],
        ["--tenant", "nghe-an' OR 'a' = 'a"],
    ):
        with pytest.raises(SystemExit) as exited:
            main(["status", *argv])
        assert exited.value.code == 2
        assert f"argument {argv[0]}" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# accord submit


def test_submit_records_the_report_and_sends_the_receipt(
    nghe_an: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    wait_until_started(capsys)
    task_id = nghe_an_task("ke-hoach-nam", 4)
    report = write_report(tmp_path, REPORT)

    run = accord(capsys, "submit", task_id, "--file", str(report), "--as", SNV_FOCAL_POINT)

    assert run.code == 0, run.err
    assert run.lines == [
        f"Đã nhận báo cáo (quá hạn): {task_id} — Hoàn thành quá hạn, hạn trước "
        + nghe_an_due("ke-hoach-nam", 4)
    ]
    engine = db.make_engine(nghe_an.database_url)
    with db.session_factory(engine)() as session:
        row = session.scalars(
            select(db.SubmissionRow).where(db.SubmissionRow.task_id == task_id)
        ).one()
    engine.dispose()
    assert (row.agreement_id, row.agency, row.officer_id, row.late) == (
        NGHE_AN_ID,
        "SNV",
        SNV_FOCAL_POINT,
        True,
    )
    assert row.summary.startswith("Sở Nội vụ đã xây dựng")
    assert row.attachments == ["ke-hoach-phoi-hop-dan-van-2026.pdf"]
    # The receipt goes to the agency's focal point and to the aggregator, Ban Dân vận.
    # The update answers once the report is stored; the receipt follows within moments.
    for _ in range(100):
        if len(nghe_an.mails(task_id, "receipt")) >= 2:
            break
        time.sleep(0.1)
    receipts = recipients(nghe_an.mails(task_id, "receipt"))
    assert "dau-moi.snv@nghean.example" in receipts
    assert any(".bdv-tu@" in address for address in receipts)

    def closed() -> None:
        task = status_json(capsys, "--agreement", NGHE_AN_ID)[task_id]
        assert (task["state_label"], task["closed"]) == ("Hoàn thành quá hạn", True)

    eventually(closed)
    again = accord(capsys, "submit", task_id, "--file", str(report), "--as", SNV_FOCAL_POINT)
    assert again.code == 1
    assert again.err.startswith("accord submit: ")
    assert "Hoàn thành quá hạn" in again.err


def test_submit_as_an_officer_of_another_agency_is_refused_by_the_rule(
    nghe_an: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    wait_until_started(capsys)
    task_id = nghe_an_task("bao-cao-ket-qua-nam", 2)
    report = write_report(tmp_path, REPORT)

    run = accord(capsys, "submit", task_id, "--file", str(report), "--as", BDV_FOCAL_POINT)

    assert run.code == 1
    assert run.out == ""
    # Refusals speak the reader's language, as the success lines do (Vietnamese by default).
    assert run.err == (
        f"accord submit: {task_id}: bị từ chối: chỉ cán bộ của SNV hoặc quản trị viên được nộp "
        f"báo cáo (cán bộ {BDV_FOCAL_POINT} thuộc BDV_TU)\n"
    )
    assert "Traceback" not in run.err
    assert status_json(capsys, "--agreement", NGHE_AN_ID)[task_id]["state"] == "overdue"


def test_refusals_and_results_follow_the_language_setting(
    nghe_an: Engine,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wait_until_started(capsys)
    task_id = nghe_an_task("bao-cao-ket-qua-nam", 2)
    report = write_report(tmp_path, REPORT)
    monkeypatch.setenv("ACCORD_LOCALE", "en")

    run = accord(capsys, "submit", task_id, "--file", str(report), "--as", BDV_FOCAL_POINT)
    closed = accord(
        capsys,
        "waive",
        nghe_an_task("ke-hoach-nam", 1),
        "--as",
        ADMIN,
        "--reason",
        "Lồng ghép vào chương trình",
    )

    assert run.code == 1
    assert run.err == (
        f"accord submit: {task_id}: refused: only an officer of SNV or an admin may submit "
        f"(officer {BDV_FOCAL_POINT} belongs to BDV_TU)\n"
    )
    assert closed.code == 0, closed.err
    assert closed.lines == [
        f"Task waived: {nghe_an_task('ke-hoach-nam', 1)} — Waived, due before "
        + nghe_an_due("ke-hoach-nam", 1)
    ]


def test_submit_an_indicator_the_obligation_does_not_have_is_refused(
    nghe_an: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    wait_until_started(capsys)
    task_id = nghe_an_task("bao-cao-ket-qua-nam", 2)
    report = write_report(tmp_path, REPORT + "indicators:\n  cong-dan-duoc-tiep: 12\n")

    run = accord(capsys, "submit", task_id, "--file", str(report), "--as", SNV_FOCAL_POINT)

    assert run.code == 1
    assert (
        "bị từ chối: chỉ tiêu 'cong-dan-duoc-tiep' không có trong nghĩa vụ; các chỉ tiêu: không có"
        in run.err
    )


def test_submit_by_an_unknown_officer_or_to_an_unknown_task(
    nghe_an: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = write_report(tmp_path, REPORT)
    task_id = nghe_an_task("bao-cao-ket-qua-nam", 2)

    unknown_officer = accord(capsys, "submit", task_id, "--file", str(report), "--as", "khong-co")
    unknown_task = accord(
        capsys,
        "submit",
        f"{NGHE_AN_ID}/khong-co/SNV/2024",
        "--file",
        str(report),
        "--as",
        SNV_FOCAL_POINT,
    )

    assert unknown_officer.code == 2
    assert unknown_officer.err.startswith("accord submit: unknown officer 'khong-co'")
    assert unknown_task.code == 1
    assert unknown_task.err.startswith(
        f"accord submit: no task '{NGHE_AN_ID}/khong-co/SNV/2024': check the ID with "
        "`accord status`"
    )


def test_submit_reports_every_problem_of_the_report_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = write_report(
        tmp_path,
        "tom_tat: Báo cáo\nindicators:\n  cong-dan-duoc-tiep: [1, 2]\nattachments: ke-hoach.pdf\n",
    )

    run = accord(capsys, "submit", "x/y/SNV/2024", "--file", str(report), "--as", SNV_FOCAL_POINT)

    assert run.code == 2
    assert run.err.splitlines() == [
        f"accord submit: {report}:1:1: tom_tat: unknown key 'tom_tat'; a report has summary, "
        "indicators, attachments",
        f"{report}:1:1: summary: required: the report's text",
        f"{report}:3:23: indicators.cong-dan-duoc-tiep: expected a whole number, {{done, "
        "total}, {category: number} or text",
        f"{report}:4:14: attachments: must be a list of file names or links",
    ]


def test_submit_refuses_yaml_tags(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    report = write_report(tmp_path, "summary: !!python/object:os.system echo\n")

    run = accord(capsys, "submit", "x/y/SNV/2024", "--file", str(report), "--as", SNV_FOCAL_POINT)

    assert run.code == 2
    assert f"{report}:1:10: " in run.err
    assert "python/object" in run.err


# --------------------------------------------------------------------------------------------
# accord extend, decide, waive


def test_extension_approved_by_the_aggregators_head_moves_the_deadline(
    nghe_an: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    wait_until_started(capsys)
    task_id = nghe_an_task("bao-cao-ket-qua-nam", 3)
    old_due = nghe_an_due("bao-cao-ket-qua-nam", 3)
    new_due = extension_day()

    requested = accord(
        capsys,
        "extend",
        task_id,
        "--until",
        new_due.isoformat(),
        "--reason",
        "Chờ số liệu tổng kết của các huyện",
        "--as",
        SNV_FOCAL_POINT,
    )
    by_the_requester = accord(capsys, "decide", task_id, "approve", "--as", SNV_FOCAL_POINT)
    by_the_aggregators_focal_point = accord(
        capsys, "decide", task_id, "approve", "--as", BDV_FOCAL_POINT
    )
    approved = accord(capsys, "decide", task_id, "approve", "--note", "Đồng ý", "--as", BDV_HEAD)

    assert requested.code == 0, requested.err
    assert requested.lines == [
        f"Đã ghi nhận đề nghị gia hạn: {task_id} — {OVERDUE}, hạn trước {old_due}"
    ]
    assert by_the_requester.code == 1
    assert (
        f"bị từ chối: cán bộ {SNV_FOCAL_POINT} đã đề nghị gia hạn nên không được tự quyết định"
        in by_the_requester.err
    )
    assert by_the_aggregators_focal_point.code == 1
    assert (
        "bị từ chối: chỉ thủ trưởng hoặc cấp phó của BDV_TU hoặc lãnh đạo UBND tỉnh được quyết "
        f"định gia hạn (cán bộ {BDV_FOCAL_POINT} thuộc BDV_TU)"
    ) in by_the_aggregators_focal_point.err
    assert approved.code == 0, approved.err
    assert approved.lines == [
        f"Đã chấp thuận gia hạn: {task_id} — Chưa hoàn thành, còn trong hạn, "
        f"hạn trước {new_due:%d/%m/%Y}"
    ]

    def moved() -> None:
        task = status_json(capsys, "--agreement", NGHE_AN_ID)[task_id]
        assert (task["state"], task["due_at"], task["escalation_level"]) == (
            "pending",
            datetime.combine(new_due, datetime.min.time(), VIETNAM).isoformat(),
            0,
        )

    eventually(moved)
    table = accord(capsys, "status", "--agreement", NGHE_AN_ID, "--agency", "SNV")
    row = next(line for line in table.lines if line.startswith(f"{task_id} "))
    assert f"  Chưa hoàn thành, còn trong hạn  trước {new_due:%d/%m/%Y}  0" in row
    # The aggregator is told of the request, the agency of the decision.
    assert any(".bdv-tu@" in a for a in recipients(nghe_an.mails(task_id, "extension_requested")))
    decided = nghe_an.mails(task_id, "extension_decided")
    assert "dau-moi.snv@nghean.example" in recipients(decided)
    # The decision shows the deadline before and after it (they used to be the same date).
    body = decided[0].get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "Hạn cũ" in text and old_due in text
    assert "Hạn mới" in text and f"{new_due:%d/%m/%Y}" in text


def test_extension_beyond_the_programme_is_refused(
    nghe_an: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    wait_until_started(capsys)
    task_id = nghe_an_task("bao-cao-ket-qua-nam", 2)

    run = accord(
        capsys,
        "extend",
        task_id,
        "--until",
        BEYOND_THE_END.isoformat(),
        "--reason",
        "Chậm",
        "--as",
        SNV_FOCAL_POINT,
    )

    assert run.code == 1
    assert (
        f"bị từ chối: ngày mới {BEYOND_THE_END:%d/%m/%Y} nằm ngoài thời gian của văn bản" in run.err
    )


def test_waive_is_for_admins(nghe_an: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    wait_until_started(capsys)
    task_id = nghe_an_task("ke-hoach-nam", 0)
    reason = "Kế hoạch năm 2022 đã lồng ghép vào chương trình"

    refused = accord(capsys, "waive", task_id, "--reason", reason, "--as", SNV_FOCAL_POINT)
    waived = accord(capsys, "waive", task_id, "--reason", reason, "--as", ADMIN)

    assert refused.code == 1
    assert "bị từ chối: chỉ quản trị viên được miễn nhiệm vụ" in refused.err
    assert waived.code == 0, waived.err
    assert waived.lines == [
        f"Đã miễn nhiệm vụ: {task_id} — Được miễn, hạn trước {nghe_an_due('ke-hoach-nam', 0)}"
    ]


def test_bad_dates_and_verdicts_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["extend", "a/b/SNV/2024", "--until", "30/12/2026", "--reason", "x", "--as", "o"],
        ["decide", "a/b/SNV/2024", "maybe", "--as", "o"],
        ["waive", "a/b/SNV/2024", "--as", "o"],
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
    assert "'30/12/2026' is not a date YYYY-MM-DD" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# An unreachable server


def test_engine_commands_say_when_temporal_is_unreachable(
    nghe_an: Engine,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    (port,) = free_ports(1)
    monkeypatch.setenv("ACCORD_TEMPORAL__ADDRESS", f"127.0.0.1:{port}")
    report = write_report(tmp_path, REPORT)
    task_id = nghe_an_task("bao-cao-ket-qua-nam", 2)

    for argv in (
        ["status"],
        ["deploy", str(NGHE_AN)],
        ["submit", task_id, "--file", str(report), "--as", SNV_FOCAL_POINT],
        ["waive", task_id, "--reason", "x", "--as", ADMIN],
    ):
        run = accord(capsys, *argv)
        assert run.code == 1, argv
        assert run.err == (
            f"accord {argv[0]}: cannot reach Temporal at 127.0.0.1:{port} (namespace default): "
            "connection refused. Is `accord run` running? Otherwise point "
            "ACCORD_TEMPORAL__ADDRESS at your Temporal server.\n"
        )


# --------------------------------------------------------------------------------------------
# accord simulate (a subprocess each: a hung simulation must fail the test, not stop the run)


def run_accord_process(
    *argv: str, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    with subprocess.Popen(
        [ACCORD, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # Its own process group, so a timeout also ends the test server it started.
        start_new_session=True,
    ) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            pytest.fail(f"`accord {' '.join(argv)}` did not finish within {timeout:.0f} s")
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_simulate_json_lists_every_mail_of_plan_289_with_nobody_submitting() -> None:
    """Slow (~10 s): plan 289 from February to the end of 2025 on the time-skipping server."""
    loaded = load_agreement(QUANG_BINH_289)
    due = {o.task_id: o.due_at for o in loaded.occurrences}
    dated = {task for task, at in due.items() if at is not None}

    result = run_accord_process("simulate", str(QUANG_BINH_289), "--json", timeout=180)

    assert result.returncode == 0, result.stderr[-2000:]
    *mails, last = [json.loads(line) for line in result.stdout.splitlines()]
    summary = last["summary"]
    assert summary["agreement"] == "289-kh-ubnd-2025"
    assert summary["tasks"] == 69
    assert summary["warnings"] == []
    # 28 dated tasks: 3 reminders each; 3 escalation steps, each to 2 roles (one officer each).
    assert len(dated) == 28
    assert summary["by_kind"] == {"escalation": 28 * 3 * 2, "reminder": 28 * 3}
    assert summary["messages"] == len(mails) == 252
    # Closed at the end of the period: none is shown as still running or within its deadline.
    assert summary["task_states"]["not_done_overdue"] == 28
    assert summary["task_states"]["not_done"] == 69 - 28
    assert summary["task_states"]["overdue"] == summary["task_states"]["pending"] == 0
    assert Counter(m["task"] for m in mails if m["kind"] == "reminder") == dict.fromkeys(dated, 3)
    for mail in mails:
        at = datetime.fromisoformat(mail["at"])
        due_at = due[mail["task"]]
        assert due_at is not None
        assert at < due_at if mail["kind"] == "reminder" else at >= due_at, mail
        assert at.utcoffset() == due_at.utcoffset()
        assert mail["to"] and all(address.endswith(".example") for address in mail["to"])
        assert mail["subject"].startswith("[Accord] ")


def test_simulate_with_every_report_submitted_on_time_sends_receipts_and_no_escalation() -> None:
    """Slow (~8 s). A task opens 8 days before it is due (a day before its 7-day reminder),
    so the submissions are scripted for days when the reports' tasks are open."""
    dated = {o.task_id for o in load_agreement(QUANG_BINH_289).occurrences if o.due_at}

    result = run_accord_process(
        "simulate",
        str(QUANG_BINH_289),
        "--json",
        "--submit",
        "289-kh-ubnd-2025/bao-cao-6-thang/*@2025-05-10",
        "--submit",
        "289-kh-ubnd-2025/bao-cao-nam/*@2025-11-10",
        timeout=180,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    *mails, last = [json.loads(line) for line in result.stdout.splitlines()]
    summary = last["summary"]
    assert summary["warnings"] == []
    assert summary["task_states"]["done_on_time"] == 28
    assert summary["task_states"]["not_done_overdue"] == 0
    # Only the 7-day reminder precedes the submission; each receipt goes to the agency's focal
    # point and to the aggregator (Sở Nội vụ), at the scripted 09:00.
    assert summary["by_kind"] == {"receipt": 28 * 2, "reminder": 28}
    assert Counter(m["task"] for m in mails if m["kind"] == "reminder") == dict.fromkeys(dated, 1)
    receipts = [m for m in mails if m["kind"] == "receipt"]
    assert Counter(m["task"] for m in receipts) == dict.fromkeys(dated, 2)
    # Receipts follow the scripted 09:00 submissions within the same minute.
    assert {m["at"][:16] for m in receipts} == {"2025-05-10T09:00", "2025-11-10T09:00"}


def test_simulate_with_scripted_submissions() -> None:
    # Every task of the plan submits on 10 May (the six-month reports on time, the undated ones
    # too; the yearly ones are not open yet), then on 10 November (the yearly reports on time;
    # the rest are closed already). Nothing escalates and every task ends done on time.
    result = run_accord_process(
        "simulate",
        str(QUANG_BINH_289),
        "--json",
        "--submit",
        "289-kh-ubnd-2025/*@2025-05-10",
        "--submit",
        "289-kh-ubnd-2025/*@2025-11-10",
        timeout=180,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    *mails, last = [json.loads(line) for line in result.stdout.splitlines()]
    summary = last["summary"]
    assert summary["task_states"]["done_on_time"] == summary["tasks"] == 69
    assert "escalation" not in summary["by_kind"]
    receipts = [m for m in mails if m["kind"] == "receipt"]
    assert len({m["task"] for m in receipts}) == 69
    assert {m["at"][:16] for m in receipts} == {"2025-05-10T09:00", "2025-11-10T09:00"}
    warnings = summary["warnings"]
    assert sum("not open yet on 2025-05-10" in w for w in warnings) == 14
    assert sum("closed already on 2025-11-10" in w for w in warnings) == 69 - 14


def test_simulate_submits_to_undated_tasks_open_since_the_start() -> None:
    """Slow (~15 s). Undated tasks open at the agreement's start and are started by the run
    that continues-as-new into the new year at once: their reports used to hang the run."""
    undated = "289-kh-ubnd-2025/ke-hoach-kiem-tra/*"

    result = run_accord_process(
        "simulate", str(QUANG_BINH_289), "--json", "--submit", f"{undated}@2025-01-15", timeout=180
    )

    assert result.returncode == 0, result.stderr[-2000:]
    *mails, last = [json.loads(line) for line in result.stdout.splitlines()]
    summary = last["summary"]
    assert summary["warnings"] == []
    assert summary["task_states"]["done_on_time"] == 15
    receipts = [m for m in mails if m["kind"] == "receipt"]
    assert len({m["task"] for m in receipts}) == 15
    assert all(m["task"].startswith("289-kh-ubnd-2025/ke-hoach-kiem-tra/") for m in receipts)
    assert {m["at"][:16] for m in receipts} == {"2025-01-15T09:00"}
    # The rest of the plan runs as without reports: the dated tasks are reminded and escalated.
    assert summary["by_kind"]["escalation"] == 28 * 3 * 2


SMALL_DIRECTORY = """\
tenant: quang-binh
province: Quảng Bình
agencies:
  - code: SNV
    name: Sở Nội vụ
    kind: department
officers:
  - id: snv-dau-moi
    name: Nguyễn Văn An
    email: an.nguyen@snv.example
    agency: SNV
    roles: [focal_point]
"""


def small_agreement(folder: Path, *, start: date, due: date, end: date) -> Path:
    """One report owed by Sở Nội vụ, with one reminder and one escalation step: two mails if
    nobody submits. Its ID is 8-kh-snv-{start year}."""
    (folder / "directory").mkdir(parents=True)
    (folder / "directory" / "quang-binh.yaml").write_text(SMALL_DIRECTORY, encoding="utf-8")
    path = folder / "ke-hoach-8.yaml"
    path.write_text(
        f"""\
document_number: 8/KH-SNV
kind: implementation_plan
title: Kế hoạch báo cáo chuyên đề
province: Quảng Bình
parties:
  - agency: SNV
signed_on: {start}
period:
  start: {start}
  end: {end}
directory: directory/quang-binh.yaml
defaults:
  reminders:
    before: [3d]
    notify: [focal_point]
  escalation:
    - after: 1d
      notify: [focal_point]
reporting:
  - id: bao-cao-chuyen-de
    title: Báo cáo chuyên đề
    deliverable: report
    owners:
      agencies: [SNV]
    due:
      kind: fixed
      before: {due}
      label: dot-1
""",
        encoding="utf-8",
    )
    return path


def test_simulate_prints_a_listing_and_a_summary(tmp_path: Path) -> None:
    agreement = small_agreement(
        tmp_path, start=date(2025, 1, 1), due=date(2025, 7, 15), end=date(2025, 12, 31)
    )

    result = run_accord_process("simulate", str(agreement), timeout=120)

    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("11/07/2025, thứ Sáu (1 thư)")
    assert lines[1].split()[:3] == ["07:30", "Nhắc", "hạn"]
    assert " SNV " in lines[1] and " bao-cao-chuyen-de dot-1 " in lines[1]
    assert lines[1].endswith("an.nguyen@snv.example")
    assert lines[2].startswith("16/07/2025, thứ Tư (1 thư)")  # escalation: a day late
    assert "Quá hạn" in lines[3] and lines[3].endswith("an.nguyen@snv.example")
    assert lines[4] == "2 messages (escalation 1, reminder 1) for 1 tasks"
    assert lines[5] == "end states: 1 Không hoàn thành, quá hạn khi đóng"
    assert lines[6].startswith("(run 28 years later on the test server")


def test_simulate_submits_to_a_task_open_since_the_start(tmp_path: Path) -> None:
    """Due within 60 days of the agreement's start, the task opens at the start."""
    agreement = small_agreement(
        tmp_path, start=date(2025, 1, 1), due=date(2025, 2, 1), end=date(2025, 12, 31)
    )
    task_id = "8-kh-snv-2025/bao-cao-chuyen-de/SNV/dot-1"

    result = run_accord_process(
        "simulate", str(agreement), "--json", "--submit", f"{task_id}@2025-01-10", timeout=120
    )

    assert result.returncode == 0, result.stderr[-2000:]
    *mails, last = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(m["kind"], m["at"][:16], m["task"]) for m in mails] == [
        ("receipt", "2025-01-10T09:00", task_id)
    ]
    assert last["summary"]["task_states"]["done_on_time"] == 1
    assert last["summary"]["warnings"] == []


def test_simulate_submits_a_late_report_after_the_agreement_continued_as_new(
    tmp_path: Path,
) -> None:
    """A yearly report due in December and submitted in January: the agreement's run that
    started the task has continued-as-new into the new year before the report closes it."""
    agreement = small_agreement(
        tmp_path, start=date(2025, 1, 1), due=date(2025, 12, 20), end=date(2026, 6, 30)
    )
    task_id = "8-kh-snv-2025/bao-cao-chuyen-de/SNV/dot-1"

    result = run_accord_process(
        "simulate", str(agreement), "--json", "--submit", f"{task_id}@2026-01-12", timeout=120
    )

    assert result.returncode == 0, result.stderr[-2000:]
    *mails, last = [json.loads(line) for line in result.stdout.splitlines()]
    assert [m["kind"] for m in mails] == ["reminder", "escalation", "receipt"]
    assert mails[-1]["at"][:16] == "2026-01-12T09:00"
    assert last["summary"]["task_states"]["done_late"] == 1
    assert last["summary"]["warnings"] == []


@pytest.mark.parametrize("by", ["date", "agency"])
def test_simulate_listing_of_plan_289_fits_100_columns_without_sdk_warnings(by: str) -> None:
    """Slow (~20 s): what a reader of `accord simulate` sees, stdout and stderr."""
    result = run_accord_process(
        "simulate",
        str(QUANG_BINH_289),
        "--by",
        by,
        "--submit",
        "289-kh-ubnd-2025/ke-hoach-kiem-tra/*@2025-01-15",
        timeout=180,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    too_wide = [line for line in lines if len(line) > 100]
    assert not too_wide, too_wide[:3]
    assert "Temporal Server" not in result.stdout + result.stderr
    assert result.stderr == ""
    # The listing ends where the summary begins (its wrapped lines are indented too).
    summary = next(i for i, line in enumerate(lines) if re.match(r"\d+ messages ", line))
    rows = [line for line in lines[:summary] if line.startswith("  ")]
    if by == "date":
        # A heading per day, the agency on each line.
        assert lines[0].startswith("15/01/2025, thứ Tư (")
        assert all(re.match(r"  \d\d:\d\d  ", row) for row in rows)
        assert any(" UBND_LE_THUY " in row for row in rows)
    else:
        assert "UBND_LE_THUY — UBND huyện Lệ Thủy (" in result.stdout
        assert all(re.match(r"  \d\d/\d\d/2025 \d\d:\d\d  ", row) for row in rows)
    assert "252 messages" not in result.stdout  # the receipts are listed too
    assert any("Đã nhận" in row for row in rows)


def test_simulate_an_invalid_agreement_prints_its_problems(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = accord(capsys, "simulate", str(BROKEN))

    assert run.code == 1
    assert run.lines and all(line.startswith(f"{BROKEN}:") for line in run.lines)


def test_simulate_submit_needs_glob_at_date(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("289-kh-ubnd-2025/*", "289-kh-ubnd-2025/*@15/05/2025", "@2025-05-10"):
        with pytest.raises(SystemExit) as exited:
            main(["simulate", str(QUANG_BINH_289), "--submit", bad])
        assert exited.value.code == 2
        assert "argument --submit" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# accord run


def test_run_serves_the_agreements_folder_until_interrupted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slow (seconds): the README's `accord run` on embedded defaults, then `accord status`
    from another process finds its task through the same settings."""
    today = datetime.now(UTC).astimezone(VIETNAM).date()
    start = today - timedelta(days=10)
    agreement = small_agreement(
        tmp_path / "agreements",
        start=start,
        due=today + timedelta(days=3),
        end=start + timedelta(days=60),
    )
    agreement_id = f"8-kh-snv-{start.year}"
    dev_port, ui_port, smtp_port, portal_port = free_ports(4)
    settings = {
        "ACCORD_DATA_DIR": str(tmp_path / "data"),
        "ACCORD_AGREEMENTS_DIR": str(agreement.parent),
        "ACCORD_TEMPORAL__DEV_PORT": str(dev_port),
        "ACCORD_TEMPORAL__UI_PORT": str(ui_port),
        "ACCORD_SMTP__PORT": str(smtp_port),
        "ACCORD_PORTAL__PORT": str(portal_port),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")} | settings
    lines: queue.Queue[str] = queue.Queue()
    process = subprocess.Popen(
        [ACCORD, "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert process.stdout is not None
    reader = threading.Thread(target=copy_lines, args=(process.stdout, lines))
    reader.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while not any(line.startswith("Accord is running") for line in seen):
            assert time.monotonic() < deadline and process.poll() is None, "".join(seen)
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=1))
        assert f"Temporal: 127.0.0.1:{dev_port} (namespace default)\n" in seen
        assert f"deployed agreement:{agreement_id}: 1 tasks (started)\n" in seen
        # The portal runs too: its new-link page answers, in Vietnamese, with its headers.
        assert f"Portal:   http://127.0.0.1:{portal_port}\n" in seen
        with urllib.request.urlopen(f"http://127.0.0.1:{portal_port}/link", timeout=10) as page:
            assert page.status == 200
            assert page.headers["X-Content-Type-Options"] == "nosniff"
            assert "<h1>Xin đường dẫn mới</h1>" in page.read().decode("utf-8")

        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("ACCORD_TEMPORAL__ADDRESS", raising=False)
        listed = eventually(lambda: status_task(capsys, agreement_id))
        assert (listed["task"], listed["state"]) == (
            f"{agreement_id}/bao-cao-chuyen-de/SNV/dot-1",
            "pending",
        )
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
            reader.join(timeout=10)
    while not lines.empty():
        seen.append(lines.get())
    assert code == 0, "".join(seen)
    assert "Stopping: waiting for running activities to finish…\n" in seen


def copy_lines(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def status_task(capsys: pytest.CaptureFixture[str], agreement_id: str) -> dict[str, Any]:
    tasks = list(status_json(capsys, "--agreement", agreement_id).values())
    assert len(tasks) == 1, tasks
    return tasks[0]


# --------------------------------------------------------------------------------------------
# Exit codes of the installed command. A process that used a Temporal client could print its
# result, then abort in interpreter teardown with exit 134 (temporalio/sdk-python#300): only
# real processes show it, and only now and then, so every engine command runs many times.

EXIT_RUNS = 30
"""Runs of each command; before the fix about one engine command in ten aborted."""
EXIT_CONCURRENCY = 4


@dataclass(frozen=True)
class ExpectedExit:
    argv: tuple[str, ...]
    code: int
    line: str
    """A regular expression one whole line must match: of stdout on success, of stderr when
    refused."""

    def problem(self, result: subprocess.CompletedProcess[str]) -> str | None:
        """What is wrong with one run, or None."""
        if result.returncode != self.code:
            return f"exit {result.returncode}"
        output = result.stdout if self.code == 0 else result.stderr
        if not any(re.fullmatch(self.line, line) for line in output.splitlines()):
            return "no result line"
        if "Fatal Python error" in result.stderr:
            return "fatal error printed"
        return None


def run_cli_process(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)


def test_engine_commands_exit_with_their_result_code(
    nghe_an: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Slow (about a minute): some 200 `accord` processes, four at a time, half through the
    console script and half through `python -m accord.cli`."""
    wait_until_started(capsys)
    report = str(write_report(tmp_path, REPORT))
    refused = nghe_an_task("bao-cao-ket-qua-nam", 2)
    submitted = nghe_an_task("ke-hoach-nam", 2)

    def refusal(command: str, rule: str) -> str:
        return re.escape(f"accord {command}: {refused}: bị từ chối: {rule}")

    repeated = [
        ExpectedExit(
            ("status", "--agreement", NGHE_AN_ID),
            0,
            re.escape(f"{NGHE_AN_TITLE} (agreement:{NGHE_AN_ID})"),
        ),
        ExpectedExit(
            ("deploy", str(NGHE_AN)),
            0,
            re.escape(f"unchanged agreement:{NGHE_AN_ID}: 11 tasks (already running)"),
        ),
        ExpectedExit(
            ("submit", refused, "--file", report, "--as", BDV_FOCAL_POINT),
            1,
            refusal("submit", "chỉ cán bộ của SNV hoặc quản trị viên được nộp báo cáo")
            + re.escape(f" (cán bộ {BDV_FOCAL_POINT} thuộc BDV_TU)"),
        ),
        ExpectedExit(
            (
                "extend",
                refused,
                "--until",
                BEYOND_THE_END.isoformat(),
                "--reason",
                "Chậm",
                "--as",
                ADMIN,
            ),
            1,
            refusal("extend", f"ngày mới {BEYOND_THE_END:%d/%m/%Y} nằm ngoài thời gian của văn bản")
            + re.escape(f" (kết thúc ngày {NGHE_AN_END:%d/%m/%Y})"),
        ),
        ExpectedExit(
            ("decide", refused, "approve", "--as", BDV_FOCAL_POINT),
            1,
            refusal("decide", "không có đề nghị gia hạn nào đang chờ quyết định"),
        ),
        ExpectedExit(
            ("waive", refused, "--reason", "Không cần", "--as", SNV_FOCAL_POINT),
            1,
            refusal("waive", "chỉ quản trị viên được miễn nhiệm vụ")
            + re.escape(f" (cán bộ {SNV_FOCAL_POINT} không phải quản trị viên)"),
        ),
        ExpectedExit(
            ("calendar", "2026", "--publish", "--note", "Kiểm thử"),
            0,
            r"published to \d+ running tasks due in \d{4}–\d{4} and 1 running agreements",
        ),
    ]
    submit_once = ExpectedExit(
        ("submit", submitted, "--file", report, "--as", SNV_FOCAL_POINT),
        0,
        re.escape(f"Đã nhận báo cáo (quá hạn): {submitted} — Hoàn thành quá hạn, ")
        + re.escape(f"hạn trước {nghe_an_due('ke-hoach-nam', 2)}"),
    )
    runs = [expected for _ in range(EXIT_RUNS) for expected in repeated] + [submit_once]
    entry_points = ([ACCORD], [sys.executable, "-m", "accord.cli"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    env |= cli_settings(nghe_an)

    with ThreadPoolExecutor(EXIT_CONCURRENCY) as pool:
        results = list(
            pool.map(
                lambda n, expected: run_cli_process([*entry_points[n % 2], *expected.argv], env),
                range(len(runs)),
                runs,
            )
        )

    problems: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for expected, result in zip(runs, results, strict=True):
        problem = expected.problem(result)
        if problem is not None:
            key = f"accord {expected.argv[0]}: {problem}"
            problems[key] += 1
            examples.setdefault(key, f"{result.stdout}{result.stderr}"[-1500:])
    assert not problems, f"{dict(problems)} of {len(runs)} runs; " + "\n".join(
        f"--- {key}:\n{text}" for key, text in examples.items()
    )


def test_simulate_lists_a_step_that_reaches_nobody_as_a_warning_without_a_traceback() -> None:
    """Issue 13, point 4: Sở Xây dựng has no head; its head-of-agency step reaches nobody."""
    agreement = ROOT / "tests" / "agreements" / "warnings" / "head-of-agency-held-by-nobody.yaml"

    result = run_accord_process("simulate", str(agreement), "--json", timeout=180)

    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "NoRecipient" not in result.stderr
    *mails, last = [json.loads(line) for line in result.stdout.splitlines()]
    assert last["summary"]["warnings"][1:] == [
        "12-kh-ubnd-2026/bao-cao-nam/SXD/2026: escalation/2/202611150000 reached nobody: "
        "no officer holds head_of_agency; the admins were told"
    ]
    assert last["summary"]["warnings"][0].startswith(
        f"{agreement}:23:16: warning: defaults.escalation[1].notify[0]: role 'head_of_agency' "
        "reaches nobody in SXD (Sở Xây dựng)"
    )
    [notice] = [m for m in mails if m["kind"] == "no_recipient"]
    assert notice["to"] == ["quantri@ubnd.example"]
    assert notice["subject"].startswith("[Accord] Không có người nhận: thông báo quá hạn (bậc 2)")
