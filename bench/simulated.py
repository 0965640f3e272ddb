"""Section 4: scale in simulated time, on the time-skipping test server.

What `accord simulate` does, on synthetic provinces: each has about 115 agencies that report
twice a year (before 15 May and 15 November) under the real agreements' policy (reminders
7d/3d/1d, escalation 1d/5d/10d) and nobody ever submits, so every task runs its whole
escalation ladder: the heaviest case. `accord.simulation.simulate` runs the agreement and its
obligation workflows with the real worker and activities, a SQLite database and MailSink.

1. One province's five-year programme (2027–2031): wall time of `simulate`.
2. One year (2027) for 34 provinces: `--provinces P` of them run concurrently (up to four at
   a time), each on its own test server, all in this one Python process (CPU-bound: see the
   CPU split); the wall time for 34 is extrapolated linearly from P unless P is 34. One
   server per province because the test server keeps time skipping locked once an agreement
   has completed on its last child's signal, which stalls every later or slower simulation
   on that server (see README).

Afterwards every history is fetched: the agreement's runs (its continue-as-new chain, walked
from the first run like tests/workflows/make_histories.py) and every obligation workflow; the
largest run is compared with the server's 10,240-event warning.

Also here: the synthetic escalation obligation of section 1 through its close (which the dev
server would reach only a day later), to count its events through the whole lifecycle.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from pathlib import Path
from statistics import median
from typing import Any

from infra import db, migrations
from infra.settings import SmtpSettings
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from accord.embedded import MailSink
from accord.simulation import SimulationReport, simulate, start_test_server
from agreements.loader import LoadedAgreement, load_agreement, load_directory
from worker import build_worker
from workflows.obligation import ObligationWorkflow
from workflows.payloads import agreement_workflow_id, task_workflow_id

from common import (
    QUANG_BINH,
    CpuMeter,
    descendants,
    event_mix,
    event_name,
    fetch_events,
    process_name,
    say,
)
from profiling import Sampler
from synthetic import ESCALATION_LADDER, obligation_input, start_attributes, write_agreement


async def _chain(client: Client, workflow_id: str) -> list[list[HistoryEvent]]:
    """The events of each run of a continue-as-new chain, first run first."""
    description = await client.get_workflow_handle(workflow_id).describe()
    run_id: str | None = description.raw_description.workflow_execution_info.first_run_id
    runs: list[list[HistoryEvent]] = []
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        runs.append(list(history.events))
        last = history.events[-1]
        attributes = last.workflow_execution_continued_as_new_event_attributes
        run_id = attributes.new_execution_run_id or None
    return runs


async def _histories(client: Client, loaded: LoadedAgreement) -> dict[str, Any]:
    runs = await _chain(client, agreement_workflow_id(loaded.agreement.agreement_id))
    tasks = await fetch_events(client, [task_workflow_id(o.task_id) for o in loaded.occurrences])
    counts = [len(events) for events in tasks.values()]
    sizes = [len(events) for events in runs]
    largest = max(runs, key=len)
    return {
        "agreement_runs": len(runs),
        "agreement_events_per_run": sizes,
        "obligations": len(counts),
        "obligation_events": {"min": min(counts), "median": median(counts), "max": max(counts)},
        "largest_run_events": max([*sizes, *counts]),
        "event_mix_largest_agreement_run": event_mix(largest),
        "event_mix_obligation": event_mix(next(iter(tasks.values()))),
    }


CONCURRENT_SERVERS = 4
"""Country year: provinces simulated at once, each on its own test server."""


async def _escalation_through_close(env: WorkflowEnvironment, folder: Path) -> dict[str, Any]:
    """Section 1's escalation input (reminder 1m before, ladder 1m/2m/3m), no parent, run to
    its close; also counted up to its last timer (the closing one), which is where the dev
    server run of section 1 stops."""
    engine = db.make_engine(f"sqlite:///{folder / 'close.db'}")
    migrations.upgrade(engine)
    sessions = db.session_factory(engine)
    with sessions() as session:
        db.upsert_directory(session, directory=load_directory(QUANG_BINH))
    queue = f"bench-close-{uuid.uuid4()}"
    now = await env.get_current_time()
    input = obligation_input(
        run=f"s4-close-{uuid.uuid4().hex[:8]}",
        index=0,
        due_at=now + timedelta(minutes=2),
        reminders=["1m"],
        escalation=ESCALATION_LADDER,
    )
    async with MailSink(folder / "close-mail", port=0) as sink:
        smtp = SmtpSettings(host="127.0.0.1", port=sink.port, embedded=False)
        async with build_worker(env.client, task_queue=queue, session_factory=sessions, smtp=smtp):
            handle = await env.client.start_workflow(
                ObligationWorkflow.run,
                input,
                id=task_workflow_id(input.task.task_id),
                search_attributes=start_attributes(input),
                task_queue=queue,
            )
            await handle.result()
            history = await handle.fetch_history()
    engine.dispose()
    names = [event_name(e) for e in history.events]
    last_timer = max(i for i, name in enumerate(names) if name == "TIMER_STARTED")
    return {
        "events_through_close": len(names),
        "events_to_closing_timer": last_timer + 1,
        "event_sequence": names,
    }


async def _province_runs(
    env: WorkflowEnvironment, paths: list[Path], folder: Path, *, within: float = 3600
) -> tuple[list[LoadedAgreement], list[SimulationReport], float]:
    loaded = [load_agreement(path) for path in paths]
    began = time.monotonic()
    runs = asyncio.gather(
        *(
            simulate(agreement, env=env, workdir=folder / f"work-{i}")
            for i, agreement in enumerate(loaded)
        )
    )
    try:
        reports = await asyncio.wait_for(runs, within)
    except TimeoutError:
        raise RuntimeError(
            f"simulation of {len(paths)} agreement(s) not finished after {within:.0f} s"
        ) from None
    return loaded, list(reports), time.monotonic() - began


@asynccontextmanager
async def _test_server() -> AsyncIterator[tuple[WorkflowEnvironment, int]]:
    """A fresh time-skipping server with its PID. One per batch of simulations: after an
    agreement completes on a child's signal, this server keeps time skipping locked (see
    README), so a later simulation on the same server would wait in real time."""
    before = set(descendants())
    env = await start_test_server()
    try:
        pids = [
            p
            for p in descendants()
            if p not in before and process_name(p).startswith("temporal-test")
        ]
        yield env, pids[0] if pids else 0
    finally:
        await env.shutdown()


async def run(
    *, agencies: int, provinces: int, years: int, profile: bool, profiles: Path
) -> dict[str, Any]:
    results: dict[str, Any] = {"agencies_per_province": agencies}
    with tempfile.TemporaryDirectory(prefix="accord-bench-s4-") as tmp:
        folder = Path(tmp)
        # Its own server: the programme must start on a server whose clock is today's.
        async with _test_server() as (env, _):
            results["s1_escalation_through_close"] = await _escalation_through_close(env, folder)
        close = results["s1_escalation_through_close"]
        say(
            f"  section 1's escalation obligation through close: "
            f"{close['events_through_close']} events"
        )
        async with _test_server() as (env, server_pid):
            path = write_agreement(
                folder / "programme",
                number=1,
                agencies=agencies,
                start=date(2027, 1, 1),
                end=date(2026 + years, 12, 31),
                label=f"{years}y",
            )
            meter = CpuMeter({"test_server": server_pid, "bench_with_worker": os.getpid()})
            meter.start()
            sampler = Sampler(os.getpid(), profiles / "s4-programme.raw", gil=True, enabled=profile)
            async with sampler:
                loaded, reports, wall = await _province_runs(env, [path], folder / "programme")
            cpu = meter.stop()
            summary = sampler.summary()
            histories = await _histories(env.client, loaded[0])
        report = reports[0]
        say(
            f"  {years}-year programme, {agencies} agencies: {len(loaded[0].occurrences)} "
            f"tasks, {len(report.mails)} messages, simulated in {wall:.0f} s; largest run "
            f"{histories['largest_run_events']} events"
        )
        results["programme"] = {
            "years": years,
            "tasks": len(loaded[0].occurrences),
            "messages": len(report.mails),
            "task_states": report.summary.counts,
            "wall_s": round(wall, 1),
            "cpu": cpu,
            **histories,
            "profile": summary.as_json() if summary else None,
        }

        paths = [
            write_agreement(
                folder / "year",
                number=n,
                agencies=agencies,
                start=date(2027, 1, 1),
                end=date(2027, 12, 31),
                label="1y",
            )
            for n in range(2, 2 + provinces)
        ]
        meter = CpuMeter({"bench_with_worker": os.getpid()})
        meter.start()
        began = time.monotonic()
        semaphore = asyncio.Semaphore(CONCURRENT_SERVERS)

        async def province(path: Path) -> tuple[LoadedAgreement, SimulationReport, dict[str, Any]]:
            async with semaphore, _test_server() as (env, _):
                (one,), (report,), _ = await _province_runs(env, [path], folder / path.stem)
                return one, report, await _histories(env.client, one)

        done = await asyncio.gather(*(province(path) for path in paths))
        wall = time.monotonic() - began
        cpu = meter.stop()
        loaded = [one for one, _, _ in done]
        reports = [report for _, report, _ in done]
        year_histories = [histories for _, _, histories in done]
        tasks = sum(len(one.occurrences) for one in loaded)
        messages = sum(len(one.mails) for one in reports)
        extrapolated = wall * 34 / provinces
        say(
            f"  one year, {provinces} of 34 provinces concurrently: {tasks} tasks, {messages} "
            f"messages in {wall:.0f} s"
            + ("" if provinces == 34 else f" (34 provinces ≈ {extrapolated:.0f} s)")
        )
        results["country_year"] = {
            "provinces_run": provinces,
            "test_servers_at_once": min(provinces, CONCURRENT_SERVERS),
            "tasks": tasks,
            "messages": messages,
            "wall_s": round(wall, 1),
            "wall_34_provinces_s": round(extrapolated, 1),
            "extrapolated": provinces != 34,
            "cpu": cpu,
            "agreement_runs_per_province": [h["agreement_runs"] for h in year_histories],
            "largest_run_events": max(h["largest_run_events"] for h in year_histories),
            "largest_agreement_run_events": max(
                max(h["agreement_events_per_run"]) for h in year_histories
            ),
            "obligation_events_max": max(h["obligation_events"]["max"] for h in year_histories),
        }
    return results
