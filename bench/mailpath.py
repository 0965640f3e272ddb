"""Section 5: messages per second through the mail activity, with and without kept sessions.

`MailActivities.send_notification` sends every recipient of a notification over one SMTP
session, borrowed from the worker's kept sessions (`infra/smtp.py`) and given back. So:

- one notification to all: one call whose role 200 officers of one agency hold: 200
  messages over one session (outbox rows, message building and "sent" marks are still per
  message);
- 200 notifications to 200 agencies with one officer each, one after the other and 50 at a
  time (as the worker runs up to 50 activities), with sessions kept (as shipped) and with
  `idle_connections=0` (a new session, greeting and QUIT for every notification).

The activity runs in this process under `temporalio.testing.ActivityEnvironment` (no Temporal
server: this is the mail path alone) against a SQLite database of synthetic officers, and the
SMTP server is a separate process: Accord's MailSink (one fsynced .eml file per message, as in
`accord run`), then a server that accepts and discards (the activity's own cost).
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra import db, migrations
from infra.settings import SmtpSettings
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

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
    return Directory(
        tenant="mo-phong", province="Tỉnh mô phỏng gửi thư", agencies=agencies, officers=officers
    )


def _request(agency: str, key: str) -> NotificationRequest:
    now = datetime.now(UTC).astimezone(ZONE)
    task = TaskRef(
        task_id=f"synthetic-bench-mail/bao-cao/{agency}/{key}",
        agreement_id="synthetic-bench-mail",
        tenant="mo-phong",
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
        kept = MailActivities(sessions, smtp)
        fresh = MailActivities(sessions, smtp.model_copy(update={"idle_connections": 0}))
        for mail in (kept, fresh):
            await _measure(mail, [_request("ONE0000", f"{tag}-warm")], concurrency=1)
        meter = CpuMeter({"bench_with_activity": os.getpid(), "smtp": sink.pid})
        every = [f"ONE{i:04d}" for i in range(m)]
        cases = {
            "one_notification_to_all": (kept, [_request(BULK, f"{tag}-bulk")], 1),
            "sequential_sessions_kept": (kept, [_request(a, f"{tag}-seq") for a in every], 1),
            "50_at_once_sessions_kept": (kept, [_request(a, f"{tag}-par") for a in every], 50),
            "sequential_session_each": (fresh, [_request(a, f"{tag}-seq0") for a in every], 1),
            "50_at_once_session_each": (fresh, [_request(a, f"{tag}-par0") for a in every], 50),
        }
        figures: dict[str, Any] = {}
        for name, (mail, requests, concurrency) in cases.items():
            meter.start()
            sent, wall = await _measure(mail, requests, concurrency=concurrency)
            cpu = meter.stop()
            figures[name] = {
                "calls": len(requests),
                "concurrency": concurrency,
                "messages": sent,
                "wall_s": round(wall, 2),
                "messages_per_s": round(sent / wall, 1),
                "cpu_cores": cpu["cpu_cores"],
                "activity_cpu_ms_per_message": round(
                    1000 * cpu["cpu_s"]["bench_with_activity"] / max(sent, 1), 2
                ),
            }
            say(f"  {tag}: {name.replace('_', ' ')}: {sent} messages, {sent / wall:.0f}/s")
        await kept.aclose()
        stats = await sink.ask("stats")
        figures["accepted_by_sink"] = stats["accepted"]
    return figures


async def run(m: int, *, profile: bool, profiles: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="accord-bench-s5-") as tmp:
        folder = Path(tmp)
        engine = db.make_engine(f"sqlite:///{folder / 'accord.db'}")
        migrations.upgrade(engine)
        sessions = db.session_factory(engine)
        with sessions() as session:
            db.upsert_directory(session, directory=_directory(m))
        sampler = Sampler(os.getpid(), profiles / "s5-mail.raw", gil=False, enabled=profile)
        async with sampler:
            eml = await _one_sink("eml", m, sessions, folder)
        summary = sampler.summary()
        null = await _one_sink("null", m, sessions, folder)
        engine.dispose()
    return {
        "recipients_per_notification": m,
        "mailsink_eml": eml,
        "discarding_sink": null,
        "profile": summary.as_json() if summary else None,
    }
