"""Experiment (not Accord's configuration, not part of `run.py`): what the workflow sandbox
costs section 4's five-year programme. The same `accord.simulation.simulate` run twice on fresh
time-skipping servers, once with the worker as shipped (sandboxed, Accord's packages shared)
and once with the worker's sandbox replaced by Temporal's `UnsandboxedWorkflowRunner`.

    .venv/bin/python bench/experiment_sandbox.py [--agencies 115] [--years 5]

Prints the two wall times. Accord keeps the sandbox: it is what stops a non-deterministic call
in workflow code; this only measures its price for the simulation."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from temporalio.worker import UnsandboxedWorkflowRunner

import worker
from accord.simulation import simulate, start_test_server
from agreements.loader import load_agreement

from synthetic import write_agreement


async def _once(path: Path, folder: Path) -> tuple[float, int]:
    env = await start_test_server()
    try:
        began = time.monotonic()
        report = await simulate(load_agreement(path), env=env, workdir=folder)
        return time.monotonic() - began, len(report.mails)
    finally:
        await env.shutdown()


def _unsandboxed(restrictions: Any = None) -> UnsandboxedWorkflowRunner:
    return UnsandboxedWorkflowRunner()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agencies", type=int, default=115)
    parser.add_argument("--years", type=int, default=5)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="accord-bench-sandbox-") as tmp:
        folder = Path(tmp)
        path = write_agreement(
            folder / "programme",
            number=1,
            agencies=arguments.agencies,
            start=date(2027, 1, 1),
            end=date(2026 + arguments.years, 12, 31),
            label=f"{arguments.years}y",
        )
        shipped, mails = await _once(path, folder / "sandboxed")
        print(f"sandboxed (as shipped): {shipped:.0f} s, {mails} messages", flush=True)
        # build_worker looks the runner class up in its module when called: swap it there.
        vars(worker)["SandboxedWorkflowRunner"] = _unsandboxed
        bare, mails = await _once(path, folder / "unsandboxed")
        print(f"unsandboxed (experiment): {bare:.0f} s, {mails} messages", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
