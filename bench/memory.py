"""Section 3: worker memory with many open obligations parked on timers.

The worker runs in a process of its own; its resident memory (VmRSS from /proc/<pid>/status)
is read before and after N obligations are parked on their first reminder timer (due in 30
days, reminders 7d/3d/1d). A warm-up of a few obligations comes first, so that one-time costs
(the sandbox's first import of the workflow modules) are not charged to the N.

1. A worker whose workflow cache holds every obligation (`max_cached_workflows` ≥ N): the
   obligations are started while it runs, so each lives in its cache, as on a server whose
   worker keeps everything in memory. Bytes per open obligation = RSS delta / N.
2. Accord's worker as `build_worker` makes it (cache of 1000, the SDK default), started
   afresh on the same open obligations; up to 3,000 of them are loaded into its cache by a
   query (a query replays the workflow into the cache exactly like a timer would). The cache
   evicts beyond 1000, so its memory stays bounded whatever N is: RSS after 1000 and after
   3000 show the plateau.
3. Why: a worker with tracemalloc on loads up to 500 of them; allocations by source file.
4. Experiment, not Accord's configuration: a worker whose sandbox passes the workflow modules
   through (instead of re-importing them for every workflow run) loads up to 2,000.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from infra import db, migrations
from temporalio.client import Client

from agreements.loader import load_directory
from workflows.obligation import ObligationWorkflow
from workflows.payloads import ObligationInput, task_workflow_id

from common import (
    QUANG_BINH,
    Helper,
    connect,
    dev_server,
    gather_limited,
    say,
    worker_process,
)
from synthetic import obligation_input, start_attributes

QUEUE = "bench-memory"
WARM_UP = 50


async def _start_all(client: Client, inputs: list[ObligationInput]) -> float:
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
    return time.monotonic() - began


async def _parked(client: Client, agreement_id: str, n: int, within: float = 900) -> float:
    """Wait until `n` obligations of the agreement have run their first workflow task (their
    state search attribute is set in it, together with the first timer)."""
    began = time.monotonic()
    query = f"AccordAgreement = '{agreement_id}' AND AccordState = 'pending'"
    while (await client.count_workflows(query)).count < n:
        if time.monotonic() - began > within:
            raise TimeoutError(f"{n} obligations not parked within {within:.0f} s")
        await asyncio.sleep(1)
    return time.monotonic() - began


async def _settled_rss(worker: Helper) -> int:
    """VmRSS in KiB once the worker is idle (two readings a second apart agree within 1 %)."""
    previous = int((await worker.ask("rss"))["VmRSS"])
    for _ in range(30):
        await asyncio.sleep(1)
        current = int((await worker.ask("rss"))["VmRSS"])
        if abs(current - previous) <= previous / 100:
            return current
        previous = current
    return previous


def _inputs(run: str, n: int, due_at: datetime) -> list[ObligationInput]:
    return [
        obligation_input(run=run, index=i, due_at=due_at, reminders=["7d", "3d", "1d"])
        for i in range(n)
    ]


async def run(n: int, *, big_cache: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="accord-bench-s3-") as tmp:
        folder = Path(tmp)
        database_url = f"sqlite:///{folder / 'accord.db'}"
        engine = db.make_engine(database_url)
        migrations.upgrade(engine)
        with db.session_factory(engine)() as session:
            db.upsert_directory(session, directory=load_directory(QUANG_BINH))
        engine.dispose()
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        due_at = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
        warm = _inputs(f"s3-warmup-{stamp}", WARM_UP, due_at)
        parked = _inputs(f"s3-parked-{stamp}", n, due_at)
        results: dict[str, Any] = {"open_obligations": n, "warm_up": WARM_UP}
        async with dev_server(folder / "temporal") as (server, _):
            client = await connect(server.address)

            def worker(
                cache: int | None, *, strict_sandbox: bool = False, trace: bool = False
            ) -> Helper:
                # Nothing is due for 30 days: no mail is sent, the SMTP port is never used.
                return worker_process(
                    folder,
                    address=server.address,
                    task_queue=QUEUE,
                    database_url=database_url,
                    smtp_port=9,
                    max_cached_workflows=cache,
                    strict_sandbox=strict_sandbox,
                    trace_allocations=trace,
                )

            big = worker(big_cache)
            async with big:
                idle = await _settled_rss(big)
                await _start_all(client, warm)
                await _parked(client, warm[0].task.agreement_id, WARM_UP)
                warmed = await _settled_rss(big)
                began = time.monotonic()
                start_s = await _start_all(client, parked)
                await _parked(client, parked[0].task.agreement_id, n)
                wall = time.monotonic() - began
                loaded = await _settled_rss(big)
                peak = int((await big.ask("rss"))["VmHWM"])
                after_gc = int((await big.ask("gc"))["VmRSS"])
            per = (loaded - warmed) * 1024 / n
            say(
                f"  cache {big_cache}: {n} parked in {wall:.0f} s ({n / wall:.0f}/s); RSS "
                f"{warmed / 1024:.0f} → {loaded / 1024:.0f} MiB = {per / 1024:.1f} KiB per "
                "open obligation"
            )
            results["large_cache"] = {
                "max_cached_workflows": big_cache,
                "rss_idle_kib": idle,
                "rss_after_warm_up_kib": warmed,
                "rss_with_open_kib": loaded,
                "rss_after_gc_kib": after_gc,
                "peak_kib": peak,
                "start_s": round(start_s, 1),
                "parked_after_s": round(wall, 1),
                "bytes_per_open_obligation": round(per),
                "bytes_per_open_obligation_after_gc": round((after_gc - warmed) * 1024 / n),
            }

            async def query(input: ObligationInput) -> Any:
                handle = client.get_workflow_handle(task_workflow_id(input.task.task_id))
                return await handle.query(ObligationWorkflow.status)

            async def load(helper: Helper, inputs: list[ObligationInput]) -> tuple[int, int]:
                """RSS after the warm-up, RSS after `inputs` were loaded by query (KiB)."""
                await gather_limited(warm, query, limit=20)
                before = await _settled_rss(helper)
                await gather_limited(inputs, query, limit=20)
                return before, await _settled_rss(helper)

            # Three times the cache shows the plateau; loading all N would only take longer.
            default = worker(None)
            first, rest = parked[:1000], parked[1000:3000]
            async with default:
                began = time.monotonic()
                warmed, at_cache = await load(default, first)
                await gather_limited(rest, query, limit=20)
                loaded = await _settled_rss(default)
                wall = time.monotonic() - began
                peak = int((await default.ask("rss"))["VmHWM"])
            cached = len(first)
            say(
                f"  default cache (1000): {len(first) + len(rest)} of the {n} loaded by query in "
                f"{wall:.0f} s; RSS {warmed / 1024:.0f} → {at_cache / 1024:.0f} MiB after "
                f"{len(first)} → {loaded / 1024:.0f} MiB after {len(first) + len(rest)} "
                f"({(loaded - warmed) * 1024 / cached / 1024:.1f} KiB per cached obligation)"
            )
            results["default_cache"] = {
                "max_cached_workflows": 1000,
                "loaded_by_query": len(first) + len(rest),
                "rss_after_warm_up_kib": warmed,
                "rss_after_1000_kib": at_cache,
                "rss_with_open_kib": loaded,
                "peak_kib": peak,
                "loaded_by_query_s": round(wall, 1),
                "cached": cached,
                "bytes_per_open_obligation": round((loaded - warmed) * 1024 / n),
                "bytes_per_cached_obligation": round((loaded - warmed) * 1024 / cached),
            }

            # Why: an allocation trace (tracemalloc) of loading some of them, by source file.
            sample = parked[: min(n, 500)]
            traced = worker(big_cache, trace=True)
            async with traced:
                await gather_limited(warm, query, limit=20)
                await traced.ask("mark")
                await gather_limited(sample, query, limit=20)
                results["allocations_by_file"] = await traced.ask(f"top {len(sample)}")
            say(
                "  traced Python allocations per cached obligation: "
                f"{results['allocations_by_file']['traced_bytes_per'] / 1024:.1f} KiB; "
                + ", ".join(
                    f"{row['file']} {row['bytes_per'] / 1024:.1f} KiB"
                    for row in results["allocations_by_file"]["by_file"][:4]
                )
            )

            # Experiment (not Accord's configuration): the sandbox passes the workflow modules
            # through instead of re-importing them for every workflow run.
            experiment = worker(big_cache, strict_sandbox=True)
            sample = parked[: min(n, 2000)]
            async with experiment:
                warmed, loaded = await load(experiment, sample)
            per = (loaded - warmed) * 1024 / len(sample)
            say(
                f"  experiment, strict sandbox (as in the tests): {per / 1024:.1f} KiB "
                f"per cached obligation ({len(sample)} loaded by query)"
            )
            results["experiment_strict_sandbox"] = {
                "loaded": len(sample),
                "rss_after_warm_up_kib": warmed,
                "rss_with_loaded_kib": loaded,
                "bytes_per_cached_obligation": round(per),
            }
    return results
