"""How long `accord plan` takes: the planner over a whole agreement, without a server.

    .venv/bin/python bench/plan.py [--repeat N] [--simulate]

For Nghệ An's five-year programme (agreements/nghe-an-2021-2026-chuong-trinh.yaml), plan
289/KH-UBND and the synthetic five-year programme of 115 agencies (`synthetic.write_agreement`,
as section 4 of `simulated.py` builds it; nobody submits), it prints:

- **in-process**: `accord.plan.plan(load_agreement(path))`, the median of N runs in this
  process after one warm-up (imports and the calendar cache already paid);
- **subprocess**: `accord plan PATH --json > /dev/null` as a user runs it, the median of N
  runs after one warm-up, interpreter start and imports included. Compiled bytecode is
  cached (in a temporary folder, as `run.py` does) as on a deployed machine, even where the
  environment sets PYTHONDONTWRITEBYTECODE=1; `--no-bytecode-cache` keeps the environment's
  setting (every module compiled from source at every run: about +0.6 s here).

The load average (1 min) is printed at the start and the end: the machine may be shared, and
then the wall-clock figures count the neighbours' work too. So each figure comes with its CPU
time (user + system; in-process: this process's), what a quiet machine would take.

Target: each under 2 s. With `--simulate`, `accord.simulate.simulate` on the same agreement
once (the time-skipping server, for comparison; minutes for the synthetic programme).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from statistics import median

from accord.plan import plan
from accord.simulation import simulate
from agreements.loader import load_agreement

from common import load_average
from synthetic import write_agreement

ROOT = Path(__file__).resolve().parents[1]
ACCORD = ROOT / ".venv" / "bin" / "accord"
TARGET_SECONDS = 2.0


def _in_process(path: Path, repeat: int) -> tuple[float, float, int]:
    """Median wall-clock and CPU seconds, and the number of messages."""
    plan(load_agreement(path))
    times, cpu = [], []
    messages = 0
    for _ in range(repeat):
        began, began_cpu = time.perf_counter(), time.process_time()
        report = plan(load_agreement(path))
        times.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
        messages = len(report.mails)
    return median(times), median(cpu), messages


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _subprocess(path: Path, repeat: int, env: dict[str, str]) -> tuple[float, float]:
    """Median wall-clock and CPU (user + system) seconds of the command."""
    times, cpu = [], []
    for run in range(repeat + 1):  # the first fills the bytecode cache, and is not counted
        began, began_cpu = time.perf_counter(), _children_cpu()
        subprocess.run(
            [str(ACCORD), "plan", str(path), "--json"],
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
        )
        if run:
            times.append(time.perf_counter() - began)
            cpu.append(_children_cpu() - began_cpu)
    return median(times), median(cpu)


def _environment(bytecode_cache: bool) -> dict[str, str]:
    env = dict(os.environ)
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "accord-bench-pycache")
    return env


def _simulated(path: Path) -> float:
    began = time.perf_counter()
    asyncio.run(simulate(load_agreement(path)))
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--simulate", action="store_true", help="also time accord simulate")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="subprocess runs keep the environment's PYTHONDONTWRITEBYTECODE",
    )
    args = parser.parse_args()
    env = _environment(not args.no_bytecode_cache)
    cached = "PYTHONDONTWRITEBYTECODE" not in env
    print(f"load average {load_average()[0]:.2f} at the start; bytecode cached: {cached}")
    with tempfile.TemporaryDirectory(prefix="accord-bench-plan-") as tmp:
        synthetic = write_agreement(
            Path(tmp),
            number=1,
            agencies=115,
            start=date(2027, 1, 1),
            end=date(2031, 12, 31),
            label="5y",
        )
        cases = {
            "Nghệ An 2021–2026": ROOT / "agreements" / "nghe-an-2021-2026-chuong-trinh.yaml",
            "289/KH-UBND 2025": ROOT / "agreements" / "quang-binh-2025-289-kh-ubnd.yaml",
            "synthetic 115 agencies, 5 years": synthetic,
        }
        header = f"{'agreement':34} {'messages':>8} {'in-process':>11} {'cpu':>6}"
        header += f" {'subprocess':>11} {'cpu':>6}"
        print(header + (f" {'simulate':>9}" if args.simulate else ""))
        worst = worst_cpu = 0.0
        for name, path in cases.items():
            inside, inside_cpu, messages = _in_process(path, args.repeat)
            outside, outside_cpu = _subprocess(path, args.repeat, env)
            worst = max(worst, inside, outside)
            worst_cpu = max(worst_cpu, inside_cpu, outside_cpu)
            line = f"{name:34} {messages:>8} {inside:>10.2f}s {inside_cpu:>5.2f}s"
            line += f" {outside:>10.2f}s {outside_cpu:>5.2f}s"
            if args.simulate:
                line += f" {_simulated(path):>8.1f}s"
            print(line, flush=True)
    verdict = "PASS" if worst < TARGET_SECONDS else "MISS"
    print(f"{verdict}: slowest {worst:.2f} s (target < {TARGET_SECONDS:.0f} s)")
    # On a shared machine the wall clock counts the neighbours' work too; CPU time does not.
    cpu_verdict = "PASS" if worst_cpu < TARGET_SECONDS else "MISS"
    print(f"CPU time: {cpu_verdict}, slowest {worst_cpu:.2f} s")
    print(f"load average {load_average()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
