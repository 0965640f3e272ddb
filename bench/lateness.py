"""Section 2: reminder lateness with many reminders due at the same instant.

N synthetic obligations are started with one reminder each, all due at the same whole second
(the due instants are an hour later, so nothing else happens meanwhile). Lateness of a
reminder = the moment Accord's MailSink accepted the message minus the reminder's scheduled
instant. The acceptance moment is the modification time of the message's `.eml` file: MailSink
writes and fsyncs the file, links it into place and only then answers 250, so the figure is
at most the fsync time early. The key of each file (X-Accord-Key) names its task.

First, on the same server and worker process, the same number of bare reminders
(`baseline.BareReminderWorkflow`: a timer, then one small plain message over a new SMTP
session from a local activity, nothing else) fall due at one instant: their lateness is the
floor that the server and one Python worker put under any reminder on this machine.

The histories split the lateness into its parts: the server's timer (TimerFired minus the
instant), the workflow task that schedules the mail activity, the activity's wait in the task
queue (at most 50 run at once per worker: `max_concurrent_activities`), and the activity
itself (database, message building, SMTP) up to acceptance.
"""

from __future__ import annotations

import asyncio
import email.policy
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from infra import db, migrations
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from agreements.loader import load_directory
from workflows.obligation import ObligationWorkflow
from workflows.payloads import ObligationInput, task_workflow_id

from baseline import BARE_KIND, BareReminder, BareReminderWorkflow
from common import (
    QUANG_BINH,
    CpuMeter,
    connect,
    dev_server,
    event_name,
    event_seconds,
    fetch_events,
    gather_limited,
    say,
    sink_process,
    spread,
    worker_process,
)
from profiling import Sampler
from synthetic import obligation_input, start_attributes

QUEUE = "bench-lateness"
BARE_QUEUE = "bench-lateness-bare"
_HEADERS = BytesHeaderParser(policy=email.policy.default)


def _accepted_times(folder: Path, kind: str = "reminder") -> dict[str, float]:
    """X-Accord-Key → acceptance time (file modification time) of every message of `kind`."""
    times: dict[str, float] = {}
    for path in folder.glob("*.eml"):
        with path.open("rb") as message:
            headers = _HEADERS.parsebytes(message.read(8192))
        if str(headers.get("X-Accord-Kind")) == kind:
            times[str(headers.get("X-Accord-Key"))] = path.stat().st_mtime_ns / 1e9
    return times


async def _wait_for(sink: Any, kind: str, n: int, within: float = 600) -> None:
    deadline = time.monotonic() + within
    while True:
        stats = await sink.ask("stats")
        if int(stats["by_kind"].get(kind, 0)) >= n:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {stats} of {n} {kind} messages arrived")
        await asyncio.sleep(0.5)


async def _bare_floor(
    client: Client, sink: Any, meter: CpuMeter, folder: Path, n: int, *, lead: float, run: str
) -> dict[str, Any]:
    """n bare reminders due at one instant; their lateness (instant → SMTP accepted)."""
    instant = (datetime.now(UTC) + timedelta(seconds=lead)).replace(microsecond=0)
    reminders = [
        BareReminder(key=f"synthetic-bench-{run}/bare/{i:05d}", at=instant) for i in range(n)
    ]

    async def start(reminder: BareReminder) -> Any:
        return await client.start_workflow(
            BareReminderWorkflow.run, reminder, id=reminder.key, task_queue=BARE_QUEUE
        )

    began = time.monotonic()
    await gather_limited(reminders, start, limit=50)
    started = time.monotonic() - began
    await asyncio.sleep(max(0.0, (instant - datetime.now(UTC)).total_seconds() - 2))
    meter.start()
    await _wait_for(sink, BARE_KIND, n)
    cpu = meter.stop()
    accepted = _accepted_times(folder, BARE_KIND)
    due = instant.timestamp()
    lateness = [accepted[r.key] - due for r in reminders if r.key in accepted]
    stats = spread(lateness)
    say(
        f"  floor: {len(lateness)} bare reminders: lateness p50 {stats['p50']:.2f} s, "
        f"p99 {stats['p99']:.2f} s, max {stats['max']:.2f} s"
    )
    return {"reminders": n, "start_s": round(started, 2), "lateness_s": stats, "burst_cpu": cpu}


def _first(events: list[HistoryEvent], name: str) -> float | None:
    return next((event_seconds(e) for e in events if event_name(e) == name), None)


async def run(n: int, *, lead: float, profile: bool, profiles: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="accord-bench-s2-") as tmp:
        folder = Path(tmp)
        database_url = f"sqlite:///{folder / 'accord.db'}"
        engine = db.make_engine(database_url)
        migrations.upgrade(engine)
        with db.session_factory(engine)() as session:
            db.upsert_directory(session, directory=load_directory(QUANG_BINH))
        engine.dispose()
        sink = sink_process(folder, kind="eml")
        async with sink, dev_server(folder / "temporal") as (server, server_pid):
            worker = worker_process(
                folder,
                address=server.address,
                task_queue=QUEUE,
                baseline_task_queue=BARE_QUEUE,
                database_url=database_url,
                smtp_port=int(sink.ready["port"]),
            )
            async with worker:
                client = await connect(server.address)
                run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
                meter = CpuMeter({"server": server_pid, "worker": worker.pid, "smtp": sink.pid})
                floor = await _bare_floor(
                    client, sink, meter, folder / "mail-eml", n, lead=lead, run=f"s2-{run_id}"
                )
                due_instant = (datetime.now(UTC) + timedelta(seconds=lead)).replace(microsecond=0)
                inputs = [
                    obligation_input(
                        run=f"s2-lateness-{run_id}",
                        index=i,
                        due_at=due_instant + timedelta(hours=1),
                        reminders=["60m"],
                    )
                    for i in range(n)
                ]

                async def start(input: ObligationInput) -> Any:
                    return await client.start_workflow(
                        ObligationWorkflow.run,
                        input,
                        id=task_workflow_id(input.task.task_id),
                        search_attributes=start_attributes(input),
                        task_queue=QUEUE,
                    )

                began = time.monotonic()
                await gather_limited(inputs, start, limit=50)
                started = time.monotonic() - began
                slack = (due_instant - datetime.now(UTC)).total_seconds()
                say(f"  started {n} obligations in {started:.1f} s; reminders due in {slack:.0f} s")
                await asyncio.sleep(max(0.0, slack - 2))
                meter.start()
                sampler = Sampler(worker.pid, profiles / "s2-worker.raw", enabled=profile)
                async with sampler:
                    await _wait_for(sink, "reminder", n)
                cpu = meter.stop()
                summary = sampler.summary()
                accepted = _accepted_times(folder / "mail-eml")
                ids = [task_workflow_id(i.task.task_id) for i in inputs]
                histories = await fetch_events(client, ids)
    due = due_instant.timestamp()
    lateness: list[float] = []
    timer: list[float] = []
    to_schedule: list[float] = []
    queue_wait: list[float] = []
    activity: list[float] = []
    in_workflow_task: list[float] = []
    armed_late = 0
    for input in inputs:
        events = histories[task_workflow_id(input.task.task_id)]
        key = next((k for k in accepted if k.startswith(f"{input.task.task_id}/reminder/")), None)
        timer_started = _first(events, "TIMER_STARTED")
        fired = _first(events, "TIMER_FIRED")
        scheduled = _first(events, "ACTIVITY_TASK_SCHEDULED")
        activity_started = _first(events, "ACTIVITY_TASK_STARTED")
        if timer_started is None or timer_started > due:
            armed_late += 1
        if key is None or fired is None:
            continue
        lateness.append(accepted[key] - due)
        timer.append(fired - due)
        if scheduled is None or activity_started is None:
            # Schedule 2 sends through a local activity inside the workflow task.
            in_workflow_task.append(accepted[key] - fired)
            continue
        to_schedule.append(scheduled - fired)
        queue_wait.append(activity_started - scheduled)
        activity.append(accepted[key] - activity_started)
    stats = spread(lateness)
    if not stats:
        raise RuntimeError("no reminder could be matched to its history and its mail")
    say(
        f"  {len(lateness)} reminders: lateness p50 {stats['p50']:.2f} s, "
        f"p99 {stats['p99']:.2f} s, max {stats['max']:.2f} s"
    )
    return {
        "reminders": n,
        "start_s": round(started, 2),
        "due_after_last_start_s": round(slack, 1),
        "timers_armed_after_due_instant": armed_late,
        "lateness_s": stats,
        "parts_s": {
            "timer_fired_after_due": spread(timer),
            "timer_fired_to_activity_scheduled": spread(to_schedule),
            "activity_queue_wait": spread(queue_wait),
            "activity_started_to_smtp_accepted": spread(activity),
            "timer_fired_to_smtp_accepted_local_activity": spread(in_workflow_task),
        },
        "burst_cpu": cpu,
        "floor_bare_reminders": floor,
        "profile": summary.as_json() if summary else None,
    }
