"""Section 1: throughput and efficiency on the embedded dev server (SQLite file, WAL).

In one run on one server: bare one-activity workflows (the baseline), then synthetic
obligations through two lifecycles at once, then the baseline again (the two baselines bracket
Accord's phase, so a change in the machine's load shows as a difference between them).

- on time: start → reminder (90 s before the due instant) → report submitted by update once
  every reminder of the batch has been accepted by the SMTP server → receipt → closed;
- escalation: start → reminder (45 s before) → overdue → three escalation steps, 45, 90 and
  135 s after the due instant (Accord's 1d/5d/10d ladder compressed). Such a task then
  waits a day for its closing timer; its close is counted on the time-skipping server
  (section 4), where that day passes instantly.

All reminders of both sets are due at the same instant, a little after the last start.

The events-per-second figures count every history event of every workflow of the phase and
divide by the time the server was busy writing them: the sum of the gaps between consecutive
events (all workflows together) shorter than one second. Deliberate waits for timers, when the
server has nothing to do, are not counted; the baseline is measured the same way.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

from infra import db, migrations
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from accord.identity import signed
from activities.models import Actor
from agreements.loader import load_directory
from agreements.models import OfficerRole, Offset
from workflows.obligation import ObligationWorkflow
from workflows.payloads import ObligationInput, SubmitReport, task_workflow_id

from baseline import BareWorkflow
from common import (
    BENCH_CREDENTIAL,
    QUANG_BINH,
    CpuMeter,
    connect,
    dev_server,
    event_mix,
    event_name,
    event_rate,
    event_seconds,
    fetch_events,
    gather_limited,
    say,
    sink_process,
    spread,
    worker_process,
)
from profiling import Sampler
from synthetic import ESCALATION_LADDER, obligation_input, start_attributes

ACCORD_QUEUE = "bench-accord"
BARE_QUEUE = "bench-bare"


@dataclass(frozen=True)
class Lifecycle:
    """Reminder offsets (the due instant is that far after the common reminder instant) and
    the escalation ladder of the two sets."""

    on_time_reminder: str
    escalation_reminders: tuple[str, ...]
    ladder: tuple[tuple[str, tuple[str, ...]], ...]

    def describe(self) -> str:
        ladder = "/".join(after for after, _ in self.ladder)
        reminders = "/".join(self.escalation_reminders) or "none"
        return (
            f"on time: reminder {self.on_time_reminder} before due, report after it; "
            f"escalation: reminder {reminders}, ladder {ladder} after due"
        )


FULL_LIFECYCLE = Lifecycle(
    "90s",
    ("45s",),
    tuple(
        (after, roles)
        for after, (_, roles) in zip(("45s", "90s", "135s"), ESCALATION_LADDER, strict=True)
    ),
)
"""45 s between steps: several times what a burst of 250 takes on 2 cores, so no timer is
ever skipped (the min = max event counts prove it), in 3 minutes instead of 4."""
QUICK_LIFECYCLE = Lifecycle(
    "15s",
    ("5s",),
    tuple(
        (after, roles)
        for after, (_, roles) in zip(("5s", "10s", "15s"), ESCALATION_LADDER, strict=True)
    ),
)
"""Smoke check only: the same shape in seconds (offsets in seconds exist since df8e2f1)."""


@dataclass(frozen=True)
class ThroughputSize:
    baseline: int
    on_time: int
    escalating: int
    lifecycle: Lifecycle = FULL_LIFECYCLE


def _counts(histories: dict[str, list[HistoryEvent]]) -> dict[str, Any]:
    counts = [len(events) for events in histories.values()]
    if not counts:
        return {}
    return {
        "workflows": len(counts),
        "min": min(counts),
        "median": median(counts),
        "max": max(counts),
    }


async def _baseline(client: Client, n: int, tag: str, meter: CpuMeter) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    ids = [f"bench-bare-{tag}-{run}-{i:05d}" for i in range(n)]
    meter.start()
    began = time.monotonic()

    async def start(workflow_id: str) -> Any:
        return await client.start_workflow(
            BareWorkflow.run, workflow_id, id=workflow_id, task_queue=BARE_QUEUE
        )

    handles = await gather_limited(ids, start, limit=50)
    started = time.monotonic() - began
    await gather_limited(handles, lambda h: h.result(), limit=100)
    wall = time.monotonic() - began
    cpu = meter.stop()
    histories = await fetch_events(client, ids)
    rate = event_rate(histories.values())
    result = {
        "workflows": n,
        "start_s": round(started, 2),
        "wall_s": round(wall, 2),
        "workflows_per_s": round(n / wall, 1),
        "events_per_workflow": _counts(histories),
        **rate,
        "cpu": cpu,
    }
    say(
        f"  baseline {tag}: {n} bare workflows in {wall:.1f} s = {n / wall:.1f}/s; "
        f"{rate['events_per_active_s']:.0f} history events/s "
        f"(server {cpu['cpu_cores'].get('server', 0):.2f} cores, "
        f"worker {cpu['cpu_cores'].get('worker', 0):.2f})"
    )
    return result


def _focal_actors() -> dict[str, Actor]:
    directory = load_directory(QUANG_BINH)
    actors: dict[str, Actor] = {}
    for officer in directory.officers:
        if OfficerRole.FOCAL_POINT in officer.roles and officer.agency not in actors:
            actors[officer.agency] = Actor(
                officer_id=officer.id,
                tenant=directory.tenant,
                agency=officer.agency,
                roles=list(officer.roles),
            )
    return actors


async def _wait_for(what: str, check: Any, *, within: float, every: float = 1.0) -> float:
    """Poll `check()` (async, returns bool) until true; seconds waited."""
    began = time.monotonic()
    while not await check():
        if time.monotonic() - began > within:
            raise TimeoutError(f"{what}: not reached within {within:.0f} s")
        await asyncio.sleep(every)
    return time.monotonic() - began


async def _accord(
    client: Client,
    size: ThroughputSize,
    *,
    lead: float,
    sink: Any,
    meter: CpuMeter,
    sampler: Sampler,
) -> dict[str, Any]:
    run = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    reminder_at = (datetime.now(UTC) + timedelta(seconds=lead)).replace(microsecond=0)
    life = size.lifecycle
    on_time = [
        obligation_input(
            run=f"s1-ontime-{run}",
            index=i,
            due_at=reminder_at + Offset.model_validate(life.on_time_reminder).duration,
            reminders=[life.on_time_reminder],
        )
        for i in range(size.on_time)
    ]
    escalation_lead = max(
        (Offset.model_validate(o).duration for o in life.escalation_reminders),
        default=timedelta(0),
    )
    escalating = [
        obligation_input(
            run=f"s1-escalation-{run}",
            index=i,
            due_at=reminder_at + escalation_lead,
            reminders=list(life.escalation_reminders),
            escalation=life.ladder,
        )
        for i in range(size.escalating)
    ]
    everything = on_time + escalating
    actors = _focal_actors()

    async def start(input: ObligationInput) -> Any:
        return await client.start_workflow(
            ObligationWorkflow.run,
            input,
            id=task_workflow_id(input.task.task_id),
            search_attributes=start_attributes(input),
            task_queue=ACCORD_QUEUE,
        )

    meter.start()
    began = time.monotonic()
    async with sampler:
        handles = await gather_limited(everything, start, limit=50)
        started = time.monotonic() - began
        slack = (reminder_at - datetime.now(UTC)).total_seconds()
        say(
            f"  started {len(everything)} obligations in {started:.1f} s; reminders due in "
            f"{slack:.0f} s"
        )
        reminders = len(on_time) + (len(escalating) if life.escalation_reminders else 0)

        async def reminders_accepted() -> bool:
            stats = await sink.ask("stats")
            return int(stats["by_kind"].get("reminder", 0)) >= reminders

        await asyncio.sleep(max(0.0, slack))
        waited = await _wait_for("reminders accepted", reminders_accepted, within=600)
        say(f"  all {reminders} reminders accepted {waited:.1f} s after their due instant")

        async def submit(pair: tuple[Any, ObligationInput]) -> float:
            handle, input = pair
            sent = time.monotonic()
            report = SubmitReport(
                actor=actors[input.task.agency],
                summary="Báo cáo tổng hợp để đo hiệu năng (dữ liệu tổng hợp).",
            )
            await handle.execute_update(
                ObligationWorkflow.submit_report,
                signed(
                    BENCH_CREDENTIAL,
                    report,
                    update=ObligationWorkflow.submit_report,
                    workflow_id=handle.id,
                ),
            )
            return time.monotonic() - sent

        submit_began = time.monotonic()
        pairs = list(zip(handles[: len(on_time)], on_time, strict=True))
        latencies = await gather_limited(pairs, submit, limit=100)
        submitted = time.monotonic() - submit_began
        await gather_limited(handles[: len(on_time)], lambda h: h.result(), limit=100)
        on_time_done = time.monotonic() - began
        say(f"  {len(on_time)} reports submitted in {submitted:.1f} s; on-time set closed")

        agreement = escalating[0].task.agreement_id if escalating else ""

        async def ladder_done() -> bool:
            query = f"AccordAgreement = '{agreement}' AND AccordEscalationLevel = 3"
            return (await client.count_workflows(query)).count >= len(escalating)

        if escalating:
            await _wait_for("third escalation step", ladder_done, within=900, every=2.0)
        escalation_done = time.monotonic() - began
    cpu = meter.stop()
    say(f"  escalation set reached its third step {escalation_done:.0f} s after the first start")

    histories = await fetch_events(client, [task_workflow_id(i.task.task_id) for i in everything])
    on_time_ids = {task_workflow_id(i.task.task_id) for i in on_time}
    on_time_histories = {k: v for k, v in histories.items() if k in on_time_ids}
    escalating_histories = {k: v for k, v in histories.items() if k not in on_time_ids}
    rate = event_rate(histories.values())
    lateness = [
        next(event_seconds(e) for e in events if event_name(e) == "TIMER_FIRED")
        - reminder_at.timestamp()
        for events in histories.values()
        if any(event_name(e) == "TIMER_FIRED" for e in events)
    ]
    sample_on_time = next(iter(on_time_histories.values()), [])
    sample_escalating = next(iter(escalating_histories.values()), [])
    active = rate["active_s"] or 1.0
    return {
        "on_time": size.on_time,
        "escalating": size.escalating,
        "start_s": round(started, 2),
        "reminders_due_after_start_s": round(lead, 1),
        "reminders_accepted_after_due_s": round(waited, 2),
        "submit_s": round(submitted, 2),
        "submit_latency_s": spread(latencies),
        "on_time_closed_after_s": round(on_time_done, 1),
        "escalation_step3_after_s": round(escalation_done, 1),
        "events_on_time": _counts(on_time_histories),
        "events_escalating_to_step3": _counts(escalating_histories),
        "event_mix_on_time": event_mix(sample_on_time),
        "event_mix_escalating_to_step3": event_mix(sample_escalating),
        "event_sequence_on_time": [event_name(e) for e in sample_on_time],
        "event_sequence_escalating_to_step3": [event_name(e) for e in sample_escalating],
        "first_timer_fired_after_due_s": spread(lateness),
        **rate,
        "obligations_per_active_s": round(len(everything) / active, 2),
        "cpu": cpu,
    }


async def run(size: ThroughputSize, *, profile: bool, profiles: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="accord-bench-s1-") as tmp:
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
                task_queue=ACCORD_QUEUE,
                database_url=database_url,
                smtp_port=int(sink.ready["port"]),
                baseline_task_queue=BARE_QUEUE,
            )
            async with worker:
                client = await connect(server.address)
                processes = {
                    "server": server_pid,
                    "worker": worker.pid,
                    "smtp": sink.pid,
                }
                meter = CpuMeter(processes)
                say("  (bench process drives the client; worker, SMTP sink, server separate)")
                before = await _baseline(client, size.baseline, "before", meter)
                lead = max(20.0, (size.on_time + size.escalating) / 15)
                sampler = Sampler(worker.pid, profiles / "s1-worker.raw", enabled=profile)
                accord = await _accord(
                    client, size, lead=lead, sink=sink, meter=meter, sampler=sampler
                )
                summary = sampler.summary()
                after = await _baseline(client, size.baseline, "after", meter)
    baseline_rate = (before["events_per_active_s"] + after["events_per_active_s"]) / 2
    ratio = accord["events_per_active_s"] / baseline_rate if baseline_rate else 0.0
    say(
        f"  Accord {accord['events_per_active_s']:.0f} events/s vs baseline "
        f"{baseline_rate:.0f} events/s: ratio {ratio:.2f}"
    )
    return {
        "baseline_before": before,
        "accord": accord,
        "baseline_after": after,
        "baseline_events_per_active_s": round(baseline_rate, 1),
        "ratio": round(ratio, 3),
        "profile": summary.as_json() if summary else None,
    }
