"""Accord's benchmark: what a province and a whole country cost on one machine (issue 6).

    .venv/bin/python bench/run.py            # full run, about 15 minutes on 2 cores
    .venv/bin/python bench/run.py --quick    # every section with small N, under 2 minutes

Writes `bench/results/results.json` and `bench/results/results.md` (`bench/results/quick/`
for --quick). Every workload is synthetic (agreement IDs `synthetic-bench-…`, `*.example`
addresses). See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import lateness
import mailpath
import memory
import simulated
import throughput
from common import BENCH_DIR, ROOT, TRANSCRIPT, Verdict, load_average, machine, now_text, say
from profiling import py_spy
from report import render


def _floor_note(s2: dict[str, Any]) -> str:
    floor = s2.get("floor_bare_reminders")
    if not floor:
        return ""
    return (
        f"floor on this machine: {floor['lateness_s']['p99']:.2f} s p99 for as many bare "
        "reminders (timer + one plain message)"
    )


SECTIONS = ("throughput", "lateness", "memory", "simulated", "mail")


@dataclass(frozen=True)
class Sizes:
    baseline: int
    on_time: int
    escalating: int
    lifecycle: throughput.Lifecycle
    reminders: int
    reminders_lead_s: float
    open_obligations: int
    big_cache: int
    agencies: int
    programme_years: int
    provinces: int
    mail_recipients: int


FULL = Sizes(
    baseline=600,
    on_time=250,
    escalating=250,
    lifecycle=throughput.FULL_LIFECYCLE,
    reminders=1000,
    reminders_lead_s=60,
    open_obligations=10_000,
    big_cache=10_100,
    agencies=115,
    programme_years=5,
    provinces=2,
    mail_recipients=200,
)
QUICK = Sizes(
    baseline=50,
    on_time=15,
    escalating=15,
    lifecycle=throughput.QUICK_LIFECYCLE,
    reminders=50,
    reminders_lead_s=10,
    open_obligations=300,
    big_cache=1_000,
    agencies=8,
    programme_years=1,
    provinces=2,
    mail_recipients=20,
)


class LoadSampler:
    """Load average every 10 s while the benchmark runs (the machine may be shared)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while True:
            self.samples.append(load_average()[0])
            await asyncio.sleep(10)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    def stop(self) -> dict[str, float]:
        if self._task is not None:
            self._task.cancel()
        if not self.samples:
            return {}
        return {
            "min": min(self.samples),
            "mean": round(statistics.fmean(self.samples), 2),
            "max": max(self.samples),
        }


def verdicts(results: dict[str, Any]) -> list[Verdict]:
    found: list[Verdict] = []
    s1 = results.get("throughput")
    s4 = results.get("simulated")
    if s1:
        found.append(
            Verdict(
                "Accord's history events/s ÷ bare baseline's, same server",
                s1["ratio"],
                0.8,
                higher_is_better=True,
                unit="×",
            )
        )
        found.append(
            Verdict(
                "history events per obligation completed on time",
                s1["accord"]["events_on_time"]["median"],
                25,
                higher_is_better=False,
                unit="events",
                note="dev server, no parent agreement",
            )
        )
        closing = s4.get("s1_escalation_through_close") if s4 else None
        if closing:
            measured = closing["events_through_close"]
            note = "through close, time-skipping server (same input as section 1)"
        else:
            measured = s1["accord"]["events_escalating_to_step3"]["median"]
            note = "up to the third step only (close not reached): a lower bound"
        found.append(
            Verdict(
                "history events per obligation with a full three-step escalation",
                measured,
                45,
                higher_is_better=False,
                unit="events",
                note=note,
            )
        )
    s2 = results.get("lateness")
    if s2:
        found.append(
            Verdict(
                f"reminder lateness p99 at {s2['reminders']} simultaneous reminders",
                s2["lateness_s"]["p99"],
                2.0,
                higher_is_better=False,
                unit="s",
                note=_floor_note(s2),
            )
        )
    s3 = results.get("memory")
    if s3:
        found.append(
            Verdict(
                f"worker memory per open obligation ({s3['open_obligations']} parked, all cached)",
                s3["large_cache"]["bytes_per_open_obligation"] / 1024,
                64,
                higher_is_better=False,
                unit="KiB",
            )
        )
        default = s3.get("default_cache")
        if default:
            found.append(
                Verdict(
                    f"worker memory per open obligation ({s3['open_obligations']} open, the "
                    "worker as shipped: cache of 1,000)",
                    default["bytes_per_open_obligation"] / 1024,
                    64,
                    higher_is_better=False,
                    unit="KiB",
                )
            )
    if s4:
        programme = s4["programme"]
        found.append(
            Verdict(
                f"{programme['years']}-year programme of {s4['agencies_per_province']} agencies "
                "simulated",
                programme["wall_s"],
                60,
                higher_is_better=False,
                unit="s",
            )
        )
        largest = max(programme["largest_run_events"], s4["country_year"]["largest_run_events"])
        found.append(
            Verdict(
                "history events in the largest workflow run",
                largest,
                10_240,
                higher_is_better=False,
                unit="events",
            )
        )
    return found


def _compress_profiles(folder: Path) -> None:
    for raw in folder.glob("*.raw"):
        with raw.open("rb") as source, gzip.open(f"{raw}.gz", "wb") as target:
            shutil.copyfileobj(source, target)
        raw.unlink()


def code_version() -> dict[str, Any]:
    """The commit measured, and any uncommitted change outside bench/ (the tree is shared)."""

    def git(*arguments: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(ROOT), *arguments], capture_output=True, text=True, check=False
        )
        # Not stripped: a porcelain status line starts with a meaningful space.
        return done.stdout.rstrip("\n") if done.returncode == 0 else ""

    changed = [
        line[3:]
        for line in git("status", "--porcelain").splitlines()
        if line[3:] and not line[3:].startswith("bench/")
    ]
    return {
        "root": str(ROOT),
        "commit": git("rev-parse", "HEAD") or "unknown (not a git checkout)",
        "subject": git("log", "-1", "--format=%s"),
        "uncommitted_changes_outside_bench": changed,
    }


def bytecode_cache(enabled: bool) -> dict[str, Any]:
    """Let this process and its helpers cache compiled bytecode (in a temporary folder, never
    in the source tree). A deployment runs with compiled bytecode; without it (e.g. with
    PYTHONDONTWRITEBYTECODE=1, set on some CI and sandbox machines) the worker's workflow
    sandbox compiles the workflow modules from source again for every workflow it loads."""
    setting = os.environ.get("PYTHONDONTWRITEBYTECODE")
    if not enabled:
        return {"enabled": sys.dont_write_bytecode is False, "PYTHONDONTWRITEBYTECODE": setting}
    prefix = Path(tempfile.gettempdir()) / "accord-bench-pycache"
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(prefix)
    sys.dont_write_bytecode = False
    sys.pycache_prefix = str(prefix)
    return {
        "enabled": True,
        "prefix": str(prefix),
        "PYTHONDONTWRITEBYTECODE_was": setting,
    }


@dataclass(frozen=True)
class Options:
    sizes: Sizes
    quick: bool
    sections: list[str]
    out: Path
    profiles: Path
    profile: bool
    bytecode: dict[str, Any]


def _write(out: Path, results: dict[str, Any], *, final: bool) -> None:
    found = verdicts(results)
    results["verdicts"] = [v.as_json() for v in found]
    (out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    if final:
        (out / "results.md").write_text(render(results, found))
        (out / "output.txt").write_text("\n".join(TRANSCRIPT) + "\n")


TITLES = {
    "throughput": "1. throughput and efficiency (dev server, SQLite)",
    "lateness": "2. reminder lateness",
    "memory": "3. worker memory with open obligations",
    "simulated": "4. scale in simulated time (time-skipping server)",
    "mail": "5. mail path",
}


async def bench(options: Options) -> None:
    sizes, profiles, profile = options.sizes, options.profiles, options.profile
    began = time.monotonic()
    load_start = load_average()
    results: dict[str, Any] = {
        "mode": "quick" if options.quick else "full",
        "started": now_text(),
        "machine": machine(),
        "code": code_version(),
        "load_average_start": load_start,
        "sizes": {
            k: v.describe() if isinstance(v, throughput.Lifecycle) else v
            for k, v in ((f.name, getattr(sizes, f.name)) for f in fields(sizes))
        },
        "profiled_with_py_spy": profile,
        "bytecode_cache": options.bytecode,
        "sections_run": options.sections,
    }
    code = results["code"]
    say(f"Accord benchmark ({results['mode']}), {results['started']}")
    say(f"code: {code['commit'][:12]} {code['subject']}")
    if code["uncommitted_changes_outside_bench"]:
        say(f"  with uncommitted changes: {', '.join(code['uncommitted_changes_outside_bench'])}")
    say(
        f"machine: {results['machine']['cpu_model']}, {results['machine']['cores']} cores; "
        f"load average {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}"
    )
    say("sizes: " + "; ".join(f"{k}={v}" for k, v in results["sizes"].items()))
    load = LoadSampler()
    load.start()

    jobs: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
        "throughput": lambda: throughput.run(
            throughput.ThroughputSize(
                sizes.baseline, sizes.on_time, sizes.escalating, sizes.lifecycle
            ),
            profile=profile,
            profiles=profiles,
        ),
        "lateness": lambda: lateness.run(
            sizes.reminders, lead=sizes.reminders_lead_s, profile=profile, profiles=profiles
        ),
        "memory": lambda: memory.run(sizes.open_obligations, big_cache=sizes.big_cache),
        "simulated": lambda: simulated.run(
            agencies=sizes.agencies,
            provinces=sizes.provinces,
            years=sizes.programme_years,
            profile=profile,
            profiles=profiles,
        ),
        "mail": lambda: mailpath.run(sizes.mail_recipients, profile=profile, profiles=profiles),
    }
    for name in options.sections:
        say(f"\n== {TITLES[name]}")
        section_began = time.monotonic()
        load_before = load_average()[0]
        results[name] = await jobs[name]()
        results[name]["section_wall_s"] = round(time.monotonic() - section_began, 1)
        results[name]["load_average_1m_at_start_and_end"] = [load_before, load_average()[0]]
        say(f"  ({results[name]['section_wall_s']:.0f} s)")
        _write(options.out, results, final=False)

    results["load_average_end"] = load_average()
    results["load_average_1m_during"] = load.stop()
    results["finished"] = now_text()
    results["wall_s"] = round(time.monotonic() - began, 1)
    say("\n== targets")
    for verdict in verdicts(results):
        say(verdict.line())
    say(f"\nwall time {results['wall_s'] / 60:.1f} min; results in {options.out}")
    _write(options.out, results, final=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Accord's benchmark (issue 6); see bench/README.md"
    )
    parser.add_argument("--quick", action="store_true", help="small N, a smoke check")
    parser.add_argument(
        "--only", choices=SECTIONS, action="append", help="run only this section (repeatable)"
    )
    parser.add_argument(
        "--provinces", type=int, help="provinces run for the country year (default 2; 34 = all)"
    )
    parser.add_argument("--no-profile", action="store_true", help="do not run py-spy")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="keep the environment's PYTHONDONTWRITEBYTECODE (default: cache bytecode in a "
        "temporary folder, as a deployment would)",
    )
    parser.add_argument("--out", type=Path, help="results folder")
    arguments = parser.parse_args()

    sizes = QUICK if arguments.quick else FULL
    if arguments.provinces:
        sizes = replace(sizes, provinces=arguments.provinces)
    out: Path = arguments.out or BENCH_DIR / "results" / ("quick" if arguments.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    profiles = out / "profiles"
    if profiles.exists():
        shutil.rmtree(profiles)
    options = Options(
        sizes=sizes,
        quick=arguments.quick,
        sections=arguments.only or list(SECTIONS),
        out=out,
        profiles=profiles,
        profile=not arguments.no_profile and py_spy() is not None,
        bytecode=bytecode_cache(not arguments.no_bytecode_cache),
    )
    asyncio.run(bench(options))
    if profiles.exists():
        _compress_profiles(profiles)


if __name__ == "__main__":
    main()
