"""Health, metrics and logs of the real processes: `python worker.py` and `accord run` started as
an operator starts them (output piped, as under systemd), against a Temporal dev server and a
real SMTP server; readiness on PostgreSQL stopped under it.

- liveness and readiness over HTTP; SMTP down is reported and leaves readiness at 200; Temporal
  or the database down makes it 503;
- every metric the example Grafana dashboard (`deploy/grafana/accord.json`) queries is in a
  scrape of the running worker;
- stderr is JSON lines (not a terminal), with no colour codes and no secret anywhere."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from ports import free_ports
from postgres import Cluster, throwaway_cluster
from prometheus_client.parser import text_string_to_metric_families
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

import worker
from accord.embedded import DevServer
from activities.models import NotificationKind, NotificationRequest, NotificationResult, TaskRef
from agreements.models import Deliverable, RecipientRole
from infra import migrations
from infra.db import make_engine, session_factory
from infra.settings import MetricsSettings, Settings, SmtpSettings

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "accord.json"
ACCORD = str(Path(sys.executable).parent / "accord")

SMTP_PASSWORD = "smtp-pass-Zq81-never-logged"
CLAIM_KEY = "claim-key-never-logged-0123456789abcdefXYZ"
API_KEY = "temporal-api-key-never-logged-77"


def get(url: str, timeout: float = 20) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def ready(url: str) -> tuple[int, dict[str, Any]]:
    status, body = get(f"{url}/readyz")
    return status, json.loads(body)


def wait_until_serving(url: str, process: subprocess.Popen[str], seconds: float = 150) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out, _ = process.communicate()
            pytest.fail(f"the process ended ({process.returncode}): {out}")
        try:
            if get(f"{url}/healthz", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} never answered")


def launch(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """The process with stdout piped and stderr to `cwd/stderr.log`, as under systemd: not a
    terminal."""
    with (cwd / "stderr.log").open("w") as stderr:
        return subprocess.Popen(
            command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=stderr, text=True
        )


def stop(process: subprocess.Popen[str], cwd: Path) -> tuple[str, str]:
    """Its stdout and stderr once stopped (SIGTERM)."""
    process.terminate()
    try:
        out, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out, (cwd / "stderr.log").read_text()


def wait_for_line(cwd: Path, logger_prefix: str, seconds: float = 60) -> dict[str, Any]:
    """The first JSON line on the process's stderr from a logger named `logger_prefix…`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for line in (cwd / "stderr.log").read_text().splitlines():
            if line.startswith("{") and json.loads(line)["logger"].startswith(logger_prefix):
                return dict(json.loads(line))
        time.sleep(0.5)
    pytest.fail(f"no log line from {logger_prefix}")


class Sink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


@pytest.fixture
def smtp_port() -> Iterator[tuple[int, Controller]]:
    [port] = free_ports(1)
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port, controller
    with contextlib.suppress(AssertionError, RuntimeError):  # already stopped by the test
        controller.stop()


def environment(data_dir: Path, temporal: str, smtp: int, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    env.update(
        ACCORD_ENV_FILE="/dev/null",
        ACCORD_DATA_DIR=str(data_dir),
        ACCORD_TEMPORAL__ADDRESS=temporal,
        ACCORD_CLAIMS__KEY=CLAIM_KEY,
        ACCORD_SMTP__HOST="127.0.0.1",
        ACCORD_SMTP__PORT=str(smtp),
        ACCORD_SMTP__EMBEDDED="false",
        ACCORD_SMTP__SECURITY="starttls",
        ACCORD_SMTP__USERNAME="accord",
        ACCORD_SMTP__PASSWORD=SMTP_PASSWORD,
        **more,
    )
    return env


def dashboard_metrics() -> set[str]:
    """Every metric name the dashboard's queries use."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    names: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names |= set(re.findall(r"\b(?:accord|temporal)_[a-z_]+\b", target["expr"]))
    return names


def sample_names(text: str) -> set[str]:
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def json_lines(text: str) -> list[dict[str, Any]]:
    """Each line of `text` parsed as JSON (a line that is not fails the test)."""
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
    return lines


async def test_worker_process_health_metrics_and_logs(
    tmp_path: Path, smtp_port: tuple[int, Controller]
) -> None:
    port, controller = smtp_port
    grpc, ui, metrics = free_ports(3)
    data = tmp_path / "data"
    data.mkdir()
    # The deploy step: a worker never creates its schema.
    migrations.upgrade(make_engine(Settings(data_dir=data).resolved_database_url))
    url = f"http://127.0.0.1:{metrics}"
    async with DevServer(tmp_path / "temporal", port=grpc, ui_port=ui) as server:
        address = f"127.0.0.1:{metrics}"
        env = environment(data, server.address, port, ACCORD_METRICS__ADDRESS=address)
        process = launch([sys.executable, str(ROOT / "worker.py")], env, tmp_path)
        try:
            await asyncio.to_thread(wait_until_serving, url, process)
            status, body = await asyncio.to_thread(ready, url)
            assert status == 200, body
            assert body["checks"] == {
                "temporal": {"ok": True, "required": True},
                "database": {"ok": True, "required": True},
                "smtp": {"ok": True, "required": False},
            }
            # Every metric the dashboard queries is in a scrape of the running worker.
            status, scraped = await asyncio.to_thread(get, f"{url}/metrics")
            assert status == 200
            missing = dashboard_metrics() - sample_names(scraped.decode())
            assert not missing, f"the dashboard queries metrics the worker lacks: {missing}"

            # SMTP down: reported, still ready.
            controller.stop()
            status, body = await asyncio.to_thread(ready, url)
            assert status == 200, body
            assert body["checks"]["smtp"]["ok"] is False
            assert "ConnectionRefusedError" in body["checks"]["smtp"]["error"]
        except BaseException:
            stop(process, tmp_path)
            raise
    # Temporal down (the dev server stopped): unready, still alive.
    status, body = await asyncio.to_thread(ready, url)
    assert status == 503, body
    assert body["status"] == "unready"
    assert body["checks"]["temporal"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert (await asyncio.to_thread(get, f"{url}/healthz"))[0] == 200
    # The SDK core's warnings (its polls failing) come through the same logging, as JSON.
    core = await asyncio.to_thread(wait_for_line, tmp_path, "temporalio.core")
    assert core["level"] == "WARNING"
    out, err = stop(process, tmp_path)

    lines = json_lines(err)
    messages = [line["message"] for line in lines]
    assert "worker polling accord" in messages
    assert f"metrics and health at {url} (/metrics, /healthz, /readyz)" in messages
    assert all({"ts", "level", "logger", "message"} <= line.keys() for line in lines)
    for secret in (SMTP_PASSWORD, CLAIM_KEY):
        assert secret not in out + err
    assert "\x1b[" not in out + err


async def test_accord_run_prints_its_metrics_url_and_logs_json(
    tmp_path: Path, smtp_port: tuple[int, Controller]
) -> None:
    port, _ = smtp_port
    grpc, ui, metrics, portal = free_ports(4)
    data = tmp_path / "data"
    data.mkdir()
    url = f"http://127.0.0.1:{metrics}"
    async with DevServer(tmp_path / "temporal", port=grpc, ui_port=ui) as server:
        env = environment(
            data,
            server.address,
            port,
            ACCORD_METRICS__ADDRESS=f"127.0.0.1:{metrics}",
            ACCORD_METRICS__PORTAL="true",
            ACCORD_PORTAL__PORT=str(portal),
        )
        process = launch([ACCORD, "run", "--no-deploy"], env, tmp_path)
        try:
            await asyncio.to_thread(wait_until_serving, url, process)
            await asyncio.to_thread(wait_until_serving, f"http://127.0.0.1:{portal}", process)
            assert (await asyncio.to_thread(ready, url))[0] == 200
            status, body = await asyncio.to_thread(ready, f"http://127.0.0.1:{portal}")
            assert status == 200, body
            assert body["checks"]["smtp"]["required"] is False
            status, scraped = await asyncio.to_thread(get, f"http://127.0.0.1:{portal}/metrics")
            assert status == 200
            assert "accord_notification_messages_sent_total" in sample_names(scraped.decode())
            # A notification run by `accord run`'s worker: its activity's log line is shown.
            run_id = await send_through_accord_queue(server.address)
            line = await asyncio.to_thread(wait_for_line, tmp_path, "temporalio.activity")
        finally:
            out, err = stop(process, tmp_path)
        assert line["level"] == "WARNING"
        assert (
            line["message"]
            == f"{REQUEST.business_key} reached nobody, and there is no active admin to tell"
        )
        assert line["task_id"] == REQUEST.task.task_id
        assert line["business_key"] == REQUEST.business_key
        assert line["workflow_id"] == f"task:{REQUEST.task.task_id}"
        assert line["run_id"] == run_id
        assert line["activity_type"] == "send_notification"
    assert f"Metrics:  {url}/metrics (health: /healthz, /readyz)" in out.splitlines()
    json_lines(err)
    for secret in (SMTP_PASSWORD, CLAIM_KEY):
        assert secret not in out + err
    assert "\x1b[" not in out + err


REQUEST = NotificationRequest(
    business_key="289-kh-ubnd-2025/III.7/STP/2025-6t/reminder/1",
    kind=NotificationKind.REMINDER,
    task=TaskRef(
        task_id="289-kh-ubnd-2025/bao-cao-6-thang/STP/2025-6t",
        agreement_id="289-kh-ubnd-2025",
        tenant="quang-binh",
        document_number="289/KH-UBND",
        agreement_title="Kế hoạch thực hiện công tác dân vận năm 2025",
        item_number="III.7",
        obligation_id="bao-cao-6-thang",
        deliverable=Deliverable.REPORT,
        title="Báo cáo kết quả công tác dân vận 6 tháng",
        agency="STP",
        recipient="SNV",
        period_label="2025-6t",
        due_at=datetime(2025, 5, 15, tzinfo=UTC),
    ),
    roles=[RecipientRole.FOCAL_POINT],
    step=1,
    scheduled_at=datetime(2025, 5, 8, 1, 0, tzinfo=UTC),
)
"""A reminder for a tenant `accord run --no-deploy` has no directory of: it reaches nobody."""


@workflow.defn(name="ObserveSendOnAccordQueue", sandboxed=False)
class SendOnAccordQueue:
    """Runs `send_notification` on the `accord` task queue, where `accord run`'s worker is."""

    @workflow.run
    async def run(self, request: NotificationRequest) -> NotificationResult:
        result: NotificationResult = await workflow.execute_activity(
            "send_notification",
            request,
            result_type=NotificationResult,
            task_queue="accord",
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        return result


async def send_through_accord_queue(address: str) -> str:
    """The run ID of a workflow (hosted here) whose activity `accord run`'s worker runs."""
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    queue = f"observe-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[SendOnAccordQueue],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            SendOnAccordQueue.run, REQUEST, id=f"task:{REQUEST.task.task_id}", task_queue=queue
        )
        await handle.result()
    assert handle.result_run_id is not None
    return handle.result_run_id


def test_a_worker_given_an_api_key_never_prints_it(tmp_path: Path) -> None:
    """The API key (TLS to a server that speaks none: the connection fails) and the other
    secrets appear nowhere in what the worker prints, even when it fails."""
    [grpc] = free_ports(1)
    data = tmp_path / "data"
    data.mkdir()
    env = environment(
        data, f"127.0.0.1:{grpc}", 1, ACCORD_TEMPORAL__API_KEY=API_KEY, ACCORD_LOG_LEVEL="DEBUG"
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "worker.py")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    for secret in (API_KEY, SMTP_PASSWORD, CLAIM_KEY):
        assert secret not in done.stdout + done.stderr


async def test_readiness_follows_the_database_and_smtp_is_only_reported(tmp_path: Path) -> None:
    """On PostgreSQL: ready while it runs, 503 once it is stopped under the worker's server;
    an SMTP relay that is down shows in the body and leaves readiness at 200."""
    from temporalio.testing import WorkflowEnvironment

    from accord.embedded import find_binary

    [port, smtp_port] = free_ports(2)
    settings = Settings(data_dir=tmp_path, metrics=MetricsSettings(address=f"127.0.0.1:{port}"))
    smtp = SmtpSettings(host="127.0.0.1", port=smtp_port, embedded=False)
    with throwaway_cluster() as cluster:
        engine = make_engine(cluster.url("postgres"))
        migrations.upgrade(engine)
        async with await WorkflowEnvironment.start_local(
            dev_server_existing_path=find_binary("temporal"), ui=False
        ) as env:
            monitor = worker.monitor_server(
                settings, env.client, session_factory(engine), smtp, None
            )
            assert monitor is not None
            async with monitor:
                status, body = await asyncio.to_thread(ready, monitor.url)
                assert status == 200, body
                assert body["checks"]["smtp"]["ok"] is False
                assert body["checks"]["smtp"]["required"] is False
                assert body["checks"]["temporal"]["ok"] is True
                assert body["checks"]["database"]["ok"] is True
                await asyncio.to_thread(stop_cluster, cluster)
                status, body = await asyncio.to_thread(ready, monitor.url)
                assert status == 503, body
                assert body["status"] == "unready"
                assert body["checks"]["database"]["ok"] is False
                assert body["checks"]["temporal"]["ok"] is True
                assert (await asyncio.to_thread(get, f"{monitor.url}/healthz"))[0] == 200
        engine.dispose()


def stop_cluster(cluster: Cluster) -> None:
    """Stop the throwaway cluster's server (the fixture removes its folder afterwards)."""
    pid_file = next(
        pid
        for pid in Path(tempfile.gettempdir()).glob("accord-pg-*/data/postmaster.pid")
        if pid.read_text().splitlines()[3] == str(cluster.port)
    )
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    done = subprocess.run(
        [*as_user, str(cluster.bin / "pg_ctl"), "-D", str(pid_file.parent), "-m", "fast", "stop"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


async def test_a_metrics_address_in_use_is_one_line_naming_the_setting() -> None:
    import socket

    from infra.observe import MonitorError, MonitorServer

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MonitorError) as raised:
            async with MonitorServer(f"127.0.0.1:{port}", checks=[]):
                pass
    message = str(raised.value)
    assert message.startswith(f"the metrics and health server cannot listen on 127.0.0.1:{port}")
    assert "set ACCORD_METRICS__ADDRESS" in message
    assert "\n" not in message
