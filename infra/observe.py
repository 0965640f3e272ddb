"""Metrics and health: Accord's own Prometheus metrics, the readiness checks, and the small
HTTP server a worker runs for them (`ACCORD_METRICS__ADDRESS`).

The server answers three paths:

- `GET /metrics`: Accord's metrics (below) in Prometheus' text format, followed by the
  Temporal SDK's own (its exporter listens on `ACCORD_METRICS__SDK_ADDRESS`, a loopback port:
  it is read and served here too, so one scrape target has everything);
- `GET /healthz` (liveness): 200 while the process serves;
- `GET /readyz` (readiness): 200 when every required check passes (Temporal and the database
  reachable), 503 otherwise; the body is JSON naming each check. SMTP is reported but not
  required: a relay being down delays mail (the outbox retries), it does not stop the worker
  taking work.

Accord's metrics (counters end in `_total` on the wire):

| name | type | labels | what |
|---|---|---|---|
| `accord_notification_messages_sent_total` | counter | kind | messages the SMTP server accepted |
| `accord_notification_messages_failed_total` | counter | kind | messages refused for good |
| `accord_notification_retries_total` | counter | kind | notification attempts after the first |
| `accord_outbox_oldest_pending_age_seconds` | gauge | | age of the oldest pending outbox row |
| `accord_tasks` | gauge | state | tasks by state (Temporal visibility) |
| `accord_tasks_overdue` | gauge | escalation_level | overdue tasks by escalation level |
| `accord_reminder_lateness_seconds` | histogram | | reminder sent minus planned (one a reminder) |
| `accord_reports_total` | counter | timing | reports stored, `on_time` or `late` |

The gauges are computed when scraped (the task counts at most every
`ACCORD_METRICS__TASKS_REFRESH_SECONDS`); the counters and the histogram count what this
process did since it started (Prometheus' `rate`/`increase` sum them over workers).

Infrastructure: prometheus-client and the standard library; the checks and the gauges'
sources are given by the composition root (`worker.py`) or the portal.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from infra.db import OutboxRow, OutboxStatus

log = logging.getLogger("accord.observe")

# Only the counters themselves: no `_created` series (a timestamp per label set).
disable_created_metrics()  # type: ignore[no-untyped-call]

NOTIFICATIONS_SENT = Counter(
    "accord_notification_messages_sent",
    "Notification messages the SMTP server accepted, by notification kind.",
    ["kind"],
)
NOTIFICATIONS_FAILED = Counter(
    "accord_notification_messages_failed",
    "Notification messages the SMTP server refused for good, by notification kind.",
    ["kind"],
)
NOTIFICATIONS_RETRIED = Counter(
    "accord_notification_retries",
    "Attempts of a notification after its first (Temporal retried the activity), by kind.",
    ["kind"],
)
OUTBOX_OLDEST_PENDING = Gauge(
    "accord_outbox_oldest_pending_age_seconds",
    "Age of the oldest outbox row still pending (0: none pending).",
)
TASKS = Gauge("accord_tasks", "Tasks by state, from Temporal's visibility.", ["state"])
TASKS_OVERDUE = Gauge(
    "accord_tasks_overdue", "Overdue tasks by escalation level.", ["escalation_level"]
)
REMINDER_LATENESS = Histogram(
    "accord_reminder_lateness_seconds",
    "Reminder mail: when it was sent minus the instant it was planned for.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600),
)
REPORTS = Counter("accord_reports", "Reports stored, on time or late.", ["timing"])

CHECK_TIMEOUT = 5.0
"""Seconds a readiness check, or a scrape-time gauge's source, may take."""


def init_labels(kinds: Iterable[str], states: Iterable[str]) -> None:
    """Make every label value appear (at 0) from the first scrape on."""
    for kind in kinds:
        NOTIFICATIONS_SENT.labels(kind=kind)
        NOTIFICATIONS_FAILED.labels(kind=kind)
        NOTIFICATIONS_RETRIED.labels(kind=kind)
    for state in states:
        TASKS.labels(state=state)
    for timing in ("on_time", "late"):
        REPORTS.labels(timing=timing)


def record_reminder_lateness(planned: datetime, sent: datetime) -> None:
    REMINDER_LATENESS.observe((sent - planned).total_seconds())


def oldest_pending_outbox_age(session_factory: sessionmaker[Session]) -> float:
    """Seconds since the oldest pending outbox row was written, 0 when none is pending."""
    with session_factory() as session:
        oldest = session.scalar(
            select(func.min(OutboxRow.created_at)).where(
                OutboxRow.status == OutboxStatus.PENDING.value
            )
        )
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - oldest).total_seconds())


def database_check(session_factory: sessionmaker[Session]) -> Callable[[], Awaitable[None]]:
    """Readiness: the database answers a query on the outbox (the schema is there)."""

    def query() -> None:
        with session_factory() as session:
            session.execute(select(OutboxRow.id).limit(1))
            session.execute(text("SELECT 1"))

    async def check() -> None:
        await asyncio.to_thread(query)

    return check


def smtp_check(host: str, port: int) -> Callable[[], Awaitable[None]]:
    """The relay accepts a connection and greets (220); QUIT at once."""

    async def check() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            greeting = await reader.readline()
            if not greeting.startswith(b"220"):
                raise ConnectionError(f"unexpected greeting {greeting[:60]!r}")
            writer.write(b"QUIT\r\n")
            await writer.drain()
        finally:
            writer.close()

    return check


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[], Awaitable[None]]
    required: bool = True
    """A failed required check makes the process unready (503)."""


async def readiness(checks: Sequence[Check]) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of the readiness probe: every check run at once."""

    async def one(check: Check) -> dict[str, Any]:
        try:
            await asyncio.wait_for(check.run(), CHECK_TIMEOUT)
        except Exception as error:
            return {"ok": False, "required": check.required, "error": _describe(error)}
        return {"ok": True, "required": check.required}

    results = await asyncio.gather(*(one(check) for check in checks))
    body = {check.name: result for check, result in zip(checks, results, strict=True)}
    ready = all(result["ok"] for result in results if result["required"])
    return (200 if ready else 503), {"status": "ready" if ready else "unready", "checks": body}


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT:.0f} s"
    first = str(error).strip().splitlines()
    return f"{type(error).__name__}: {first[0][:200] if first else ''}".rstrip(": ")


Refresher = Callable[[], Awaitable[None]]


async def metrics_text(refreshers: Sequence[Refresher], sdk_address: str | None = None) -> bytes:
    """Accord's metrics after refreshing the scrape-time gauges, then the SDK's."""
    for refresh in refreshers:
        try:
            await asyncio.wait_for(refresh(), CHECK_TIMEOUT)
        except Exception as error:
            log.warning("metrics: a gauge could not be refreshed: %s", _describe(error))
    body = generate_latest(REGISTRY)
    if sdk_address is not None:
        body += await _fetch_sdk_metrics(sdk_address)
    return body


async def _fetch_sdk_metrics(address: str) -> bytes:
    host, _, port = address.rpartition(":")
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, int(port)), CHECK_TIMEOUT
        )
    except (OSError, TimeoutError) as error:
        log.warning("metrics: the SDK exporter at %s did not answer: %s", address, error)
        return b""
    try:
        writer.write(f"GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), CHECK_TIMEOUT)
    finally:
        writer.close()
    _, _, body = response.partition(b"\r\n\r\n")
    return body


class CachedRefresher:
    """A scrape-time source run at most every `seconds` (Temporal visibility counts)."""

    def __init__(self, refresh: Refresher, seconds: float) -> None:
        self._refresh = refresh
        self._seconds = seconds
        self._last: float | None = None

    async def __call__(self) -> None:
        now = time.monotonic()
        if self._last is not None and now - self._last < self._seconds:
            return
        await self._refresh()
        self._last = now


class MonitorError(RuntimeError):
    """The metrics and health server could not start (one line naming the setting)."""


class MonitorServer:
    """The worker's HTTP server for /metrics, /healthz and /readyz (HTTP/1.0, GET only)."""

    def __init__(
        self,
        address: str,
        *,
        checks: Sequence[Check],
        refreshers: Sequence[Refresher] = (),
        sdk_address: str | None = None,
    ) -> None:
        host, _, port = address.rpartition(":")
        self._host, self._port = host, int(port)
        self._checks = list(checks)
        self._refreshers = list(refreshers)
        self._sdk_address = sdk_address
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def __aenter__(self) -> MonitorServer:
        try:
            self._server = await asyncio.start_server(self._handle, self._host, self._port)
        except OSError as error:
            raise MonitorError(
                f"the metrics and health server cannot listen on {self._host}:{self._port}: "
                f"{error.strerror or error}; set ACCORD_METRICS__ADDRESS to a free address"
            ) from error
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 10)
            while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
                pass
            status, content_type, body = await self._respond(request)
            head = (
                f"HTTP/1.0 {status} {_REASONS.get(status, '')}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (OSError, TimeoutError, ValueError):
            pass
        finally:
            writer.close()

    async def _respond(self, request: bytes) -> tuple[int, str, bytes]:
        parts = request.decode("latin-1").split()
        if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
            return 405, "text/plain", b"GET only\n"
        path = parts[1].split("?", 1)[0]
        if path == "/metrics":
            body = await metrics_text(self._refreshers, self._sdk_address)
            return 200, CONTENT_TYPE_LATEST, body
        if path == "/healthz":
            return 200, "application/json", b'{"status": "alive"}\n'
        if path == "/readyz":
            status, report = await readiness(self._checks)
            return status, "application/json", (json.dumps(report) + "\n").encode()
        return 404, "text/plain", b"not found: /metrics, /healthz, /readyz\n"


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
