"""Reminder lateness with one and with two worker processes on one task queue (issue 18).

For each worker count, a fresh dev server, MailSink process and database: N synthetic
obligations, each with one reminder, all due at the same whole second (their due instants an
hour later). Lateness = MailSink's acceptance of the message (the `.eml` file's modification
time, as in `lateness.py`) minus the reminder's instant. The histories tell which worker
process ran each reminder (the identity on the workflow task that completed it), so the
figures also say how the work was shared.

    .venv/bin/python bench/workers.py [--reminders N] [--lead SECONDS]

About 2 minutes with the defaults (N = 400) on 2 cores. It prints the figures; they are not
written to bench/results.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from infra import db, migrations
from temporalio.api.history.v1 import HistoryEvent

from agreements.loader import load_directory
from workflows.obligation import ObligationWorkflow
from workflows.payloads import ObligationInput, task_workflow_id

from common import (
    QUANG_BINH,
    connect,
    dev_server,
    fetch_events,
    gather_limited,
    say,
    sink_process,
    spread,
    worker_process,
)
from lateness import _accepted_times, _wait_for
from synthetic import obligation_input, start_attributes

QUEUE = "bench-workers"


def _worker_of_reminder(events: list[HistoryEvent]) -> str | None:
    """Identity of the worker whose workflow task sent the reminder (its local activity's
    marker, or the activity's start)."""
    completed = {
        e.event_id: e.workflow_task_completed_event_attributes.identity
        for e in events
        if e.HasField("workflow_task_completed_event_attributes")
    }
    for e in events:
        if e.HasField("activity_task_started_event_attributes"):
            return e.activity_task_started_event_attributes.identity
        if e.HasField("marker_recorded_event_attributes"):
            return completed.get(
                e.marker_recorded_event_attributes.workflow_task_completed_event_id
            )
    return None


async def run_once(workers: int, n: int, lead: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="accord-bench-workers-") as tmp:
        folder = Path(tmp)
        database_url = f"sqlite:///{folder / 'accord.db'}"
        engine = db.make_engine(database_url)
        migrations.upgrade(engine)
        with db.session_factory(engine)() as session:
            db.upsert_directory(session, directory=load_directory(QUANG_BINH))
        engine.dispose()
        sink = sink_process(folder, kind="eml")
        async with sink, dev_server(folder / "temporal") as (server, _), AsyncExitStack() as stack:
            for index in range(workers):
                own = folder / f"worker-{index}"
                own.mkdir()
                await stack.enter_async_context(
                    worker_process(
                        own,
                        address=server.address,
                        task_queue=QUEUE,
                        database_url=database_url,
                        smtp_port=int(sink.ready["port"]),
                    )
                )
            client = await connect(server.address)
            run_id = f"w{workers}-{datetime.now(UTC):%Y%m%d%H%M%S}"
            due_instant = (datetime.now(UTC) + timedelta(seconds=lead)).replace(microsecond=0)
            inputs = [
                obligation_input(
                    run=run_id, index=i, due_at=due_instant + timedelta(hours=1), reminders=["60m"]
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
            if slack < 1:
                raise RuntimeError(f"the starts took {started:.0f} s: raise --lead")
            await _wait_for(sink, "reminder", n)
            accepted = _accepted_times(folder / "mail-eml")
            ids = [task_workflow_id(i.task.task_id) for i in inputs]
            histories = await fetch_events(client, ids)
    due = due_instant.timestamp()
    lateness = []
    shares: Counter[str] = Counter()
    for input in inputs:
        key = next((k for k in accepted if k.startswith(f"{input.task.task_id}/reminder/")), None)
        if key is not None:
            lateness.append(accepted[key] - due)
        shares[_worker_of_reminder(histories[task_workflow_id(input.task.task_id)]) or "?"] += 1
    stats = spread(lateness)
    say(
        f"{workers} worker process(es): {len(lateness)} reminders, lateness p50 "
        f"{stats['p50']:.2f} s, p99 {stats['p99']:.2f} s, max {stats['max']:.2f} s; "
        f"reminders per worker {sorted(shares.values(), reverse=True)}"
    )
    return {"workers": workers, "lateness_s": stats, "per_worker": dict(shares)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reminders", type=int, default=400)
    parser.add_argument("--lead", type=float, default=25.0)
    args = parser.parse_args()
    for workers in (1, 2):
        await run_once(workers, args.reminders, args.lead)


if __name__ == "__main__":
    asyncio.run(main())
