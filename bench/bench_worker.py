"""The benchmark's worker process: Accord's real worker (`worker.build_worker`), optionally
beside a worker for the bare baseline, in a process of its own so that its memory (VmRSS) and
CPU are its own and py-spy can sample it.

Speaks JSON lines: prints `{"ready": …}` once polling, then answers `rss` with its memory;
closing stdin stops it gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tracemalloc
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from infra import db
from infra.settings import SmtpSettings
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from worker import build_worker

from baseline import BareMail, BareReminderWorkflow, BareWorkflow, echo
from common import BENCH_CREDENTIAL


def memory() -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) of this process, in KiB."""
    values: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def accord_worker(client: Client, arguments: argparse.Namespace) -> Worker:
    engine = db.make_engine(arguments.database_url)
    sessions = db.session_factory(engine)
    smtp = SmtpSettings(host="127.0.0.1", port=arguments.smtp_port, embedded=False)
    return build_worker(
        client,
        task_queue=arguments.task_queue,
        session_factory=sessions,
        smtp=smtp,
        max_cached_workflows=arguments.max_cached_workflows or 1000,
        # Experiment: the strict sandbox the tests use (Accord's modules re-imported per run).
        share_accord_modules=not arguments.strict_sandbox,
        claim_keys={BENCH_CREDENTIAL.key.key_id: BENCH_CREDENTIAL.key.secret},
    )


class AllocationTracer:
    """tracemalloc between `mark` and `top`: allocated bytes and objects by source file."""

    def __init__(self) -> None:
        self._mark: tracemalloc.Snapshot | None = None

    def mark(self) -> None:
        gc.collect()
        self._mark = tracemalloc.take_snapshot()

    def top(self, per: int, limit: int = 12) -> dict[str, Any]:
        gc.collect()
        assert self._mark is not None, "mark first"
        stats = tracemalloc.take_snapshot().compare_to(self._mark, "filename")
        total = sum(s.size_diff for s in stats)
        root = str(Path(__file__).resolve().parents[1]) + "/"
        stdlib = f"python{sys.version_info.major}.{sys.version_info.minor}/"
        rows = [
            {
                "file": s.traceback[0]
                .filename.replace(root, "")
                .split("site-packages/")[-1]
                .split(stdlib)[-1],
                "bytes_per": round(s.size_diff / per),
                "objects_per": round(s.count_diff / per, 1),
            }
            for s in stats[:limit]
        ]
        return {"traced_bytes_per": round(total / per), "by_file": rows}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--smtp-port", type=int, required=True)
    parser.add_argument("--baseline-task-queue")
    parser.add_argument("--max-cached-workflows", type=int)
    parser.add_argument("--strict-sandbox", action="store_true")
    parser.add_argument("--tracemalloc", action="store_true")
    arguments = parser.parse_args()
    tracer = AllocationTracer()
    if arguments.tracemalloc:
        tracemalloc.start(1)

    client = await Client.connect(arguments.address, data_converter=pydantic_data_converter)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(accord_worker(client, arguments))
        if arguments.baseline_task_queue:
            # The baselines' module is shared with the sandbox, as Accord's worker shares
            # Accord's (worker.build_worker): both sides pay the same for their workflow code.
            restrictions = SandboxRestrictions.default.with_passthrough_modules("baseline")
            baseline = Worker(
                client,
                task_queue=arguments.baseline_task_queue,
                workflows=[BareWorkflow, BareReminderWorkflow],
                activities=[echo, BareMail(arguments.smtp_port).send],
                workflow_runner=SandboxedWorkflowRunner(restrictions=restrictions),
            )
            await stack.enter_async_context(baseline)
        reply({"ready": True, "pid": os.getpid(), **memory()})
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            command = line.decode().strip()
            if command == "rss":
                reply(memory())
            elif command == "gc":
                gc.collect()
                reply(memory())
            elif command == "mark":
                tracer.mark()
                reply(memory())
            elif command.startswith("top "):
                reply(tracer.top(int(command.split()[1])))
            else:
                reply({"error": f"unknown command {command!r}"})


if __name__ == "__main__":
    asyncio.run(main())
