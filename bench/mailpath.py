"""Section 5: messages per second through the mail activity, with and without connection reuse.

`MailActivities.send_notification` opens one SMTP connection per call and sends every
recipient of that notification over it. So:

- with reuse: one call for a notification whose role is held by M officers of one agency
  (M messages over one connection; outbox rows, message building and marking sent are still
  per message);
- without reuse: M calls for M agencies with one officer each (M connections), one after the
  other, and also 50 at a time (the worker runs up to 50 activities at once).

The activity runs in this process under `temporalio.testing.ActivityEnvironment` (no Temporal
server: this is the mail path alone) against a SQLite database of synthetic officers, and the
SMTP server is a separate process: Accord's MailSink (one fsynced .eml file per message, as in
`accord run`), then a server that accepts and discards (the activity's own cost), then, as an
experiment, the discarding server with the database opened with `PRAGMA synchronous=NORMAL`
(WAL without an fsync per commit), to show what the outbox's commits cost.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from accord import db
from accord.settings import SmtpSettings
from activities.mail import MailActivities
from activities.models import NotificationKind, NotificationRequest, TaskRef
from agreements.models import (
    Agency,
    AgencyKind,
    Deliverable,
    Directory,
    Officer,
    OfficerRole,
    RecipientRole,
)

from common import CpuMeter, gather_limited, say, sink_process
from profiling import Sampler
from synthetic import ZONE

BULK = "BULK"


def _directory(m: int) -> Directory:
    agencies = [
        Agency(
            code="UBND_TINH",
            name="Ủy ban nhân dân tỉnh (tổng hợp)",
            kind=AgencyKind.PEOPLES_COMMITTEE,
        ),
        Agency(code="SNV", name="Sở Nội vụ (tổng hợp)", kind=AgencyKind.DEPARTMENT),
        Agency(code=BULK, name="Cơ quan nhiều đầu mối (tổng hợp)", kind=AgencyKind.DEPARTMENT),
    ]
    officers = [
        Officer(
            id=f"bulk-{i:04d}",
            name=f"Đầu mối số {i} (tổng hợp)",
            email=f"bulk-{i:04d}@mailbench.example",
            agency=BULK,
            roles=[OfficerRole.FOCAL_POINT],
        )
        for i in range(m)
    ]
    for i in range(m):
        code = f"ONE{i:04d}"
        agencies.append(
            Agency(code=code, name=f"Cơ quan {i} (tổng hợp)", kind=AgencyKind.DEPARTMENT)
        )
        officers.append(
            Officer(
                id=f"one-{i:04d}",
                name=f"Đầu mối cơ quan {i} (tổng hợp)",
                email=f"one-{i:04d}@mailbench.example",
                agency=code,
                roles=[OfficerRole.FOCAL_POINT],
            )
        )
    return Directory(province="Tỉnh mô phỏng gửi thư", agencies=agencies, officers=officers)


def _request(agency: str, key: str) -> NotificationRequest:
    now = datetime.now(UTC).astimezone(ZONE)
    task = TaskRef(
        task_id=f"synthetic-bench-mail/bao-cao/{agency}/{key}",
        agreement_id="synthetic-bench-mail",
        document_number="BENCH/KH-UBND",
        agreement_title="Kế hoạch tổng hợp để đo hiệu năng (dữ liệu tổng hợp)",
        item_number=None,
        obligation_id="bao-cao",
        deliverable=Deliverable.REPORT,
        title="Báo cáo tổng hợp",
        agency=agency,
        recipient="SNV",
        period_label=key,
        due_at=now,
    )
    return NotificationRequest(
        business_key=f"{task.task_id}/reminder/1",
        kind=NotificationKind.REMINDER,
        task=task,
        roles=[RecipientRole.FOCAL_POINT],
        step=1,
        offset="1d",
        scheduled_at=now,
    )


async def _measure(
    mail: MailActivities, requests: list[NotificationRequest], *, concurrency: int
) -> tuple[int, float]:
    environment = ActivityEnvironment()

    async def send(request: NotificationRequest) -> int:
        result = await environment.run(mail.send_notification, request)
        return result.sent

    began = time.monotonic()
    sent = await gather_limited(requests, send, limit=concurrency)
    return sum(sent), time.monotonic() - began


async def _one_sink(
    kind: str, m: int, sessions: sessionmaker[Session], folder: Path, *, tag: str = ""
) -> dict[str, Any]:
    tag = tag or kind
    sink = sink_process(folder, kind=kind)
    async with sink:
        smtp = SmtpSettings(host="127.0.0.1", port=int(sink.ready["port"]), embedded=False)
        mail = MailActivities(sessions, smtp)
        # A first message opens the database and imports the SMTP stack: not measured.
        await _measure(mail, [_request("ONE0000", f"{tag}-warm")], concurrency=1)
        meter = CpuMeter({"bench_with_activity": os.getpid(), "smtp": sink.pid})
        cases = {
            "with_reuse": ([_request(BULK, f"{tag}-bulk")], 1),
            "without_reuse_sequential": (
                [_request(f"ONE{i:04d}", f"{tag}-seq") for i in range(m)],
                1,
            ),
            "without_reuse_50_at_once": (
                [_request(f"ONE{i:04d}", f"{tag}-par") for i in range(m)],
                50,
            ),
        }
        figures: dict[str, Any] = {}
        for name, (requests, concurrency) in cases.items():
            meter.start()
            sent, wall = await _measure(mail, requests, concurrency=concurrency)
            cpu = meter.stop()
            figures[name] = {
                "calls": len(requests),
                "connections": len(requests),
                "messages": sent,
                "wall_s": round(wall, 2),
                "messages_per_s": round(sent / wall, 1),
                "cpu_cores": cpu["cpu_cores"],
            }
            say(f"  {tag}: {name.replace('_', ' ')}: {sent} messages, {sent / wall:.0f}/s")
        stats = await sink.ask("stats")
        figures["accepted_by_sink"] = stats["accepted"]
    return figures


async def run(m: int, *, profile: bool, profiles: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="accord-bench-s5-") as tmp:
        folder = Path(tmp)
        engine = db.make_engine(f"sqlite:///{folder / 'accord.db'}")
        db.create_schema(engine)
        sessions = db.session_factory(engine)
        with sessions() as session:
            db.upsert_directory(session, directory=_directory(m))
        sampler = Sampler(os.getpid(), profiles / "s5-mail.raw", gil=False, enabled=profile)
        async with sampler:
            eml = await _one_sink("eml", m, sessions, folder)
        summary = sampler.summary()
        null = await _one_sink("null", m, sessions, folder)
        engine.dispose()

        # Experiment (not Accord's configuration): the same database without an fsync per
        # commit (WAL with synchronous=NORMAL, as the embedded Temporal server runs its own).
        relaxed = db.make_engine(f"sqlite:///{folder / 'accord.db'}")
        event.listen(relaxed, "connect", _synchronous_normal)
        experiment = await _one_sink(
            "null", m, db.session_factory(relaxed), folder, tag="null-synchronous-normal"
        )
        relaxed.dispose()
    return {
        "recipients_per_notification": m,
        "mailsink_eml": eml,
        "discarding_sink": null,
        "experiment_discarding_sink_sqlite_synchronous_normal": experiment,
        "profile": summary.as_json() if summary else None,
    }


def _synchronous_normal(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    try:
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()
