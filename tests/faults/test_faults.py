"""Fault injection (issue 5): crashes, restarts, a mail outage and a locked database while 200
obligations with deadlines seconds apart run on the dev server and real worker processes.

Each scenario prints one row of figures and, at the end of the module, the whole table;
a failing scenario prints the evidence (which message, which task, what its history shows).
`FAULTS_SEED` fixes the random crash moments of scenario 1; `FAULTS_LOG` names a file that
receives the table, the events and the evidence of every scenario.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fault_harness import Behaviour, FaultWorld, Figures, fault_world, table

pytestmark = pytest.mark.faults

RESULTS: list[Figures] = []


@pytest.fixture(scope="module", autouse=True)
def figures_table(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not RESULTS:
        return
    text = table(RESULTS)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", "fault-injection figures")
        reporter.write_line(text)
    _log("\n" + text + "\n")


def _log(text: str) -> None:
    path = os.environ.get("FAULTS_LOG")
    if path:
        with Path(path).open("a", encoding="utf-8") as log:
            log.write(text + "\n")


Faults = Callable[[FaultWorld], Awaitable[None]]


async def run_scenario(
    name: str,
    folder: Path,
    faults: Faults,
    *,
    budget: timedelta,
    workers: tuple[str, ...] = ("a",),
    refused: Callable[[FaultWorld], set[str]] = lambda world: set(),
) -> Figures:
    async with fault_world(name, folder) as world:
        for worker in workers:
            await world.start_worker(worker)
        plan = await world.deploy()
        refused_addresses = refused(world)
        for address in refused_addresses:
            world.smtp.reject(address)
        await faults(world)
        await world.settle(budget)
        figures = await world.figures(refused=refused_addresses)
        alive = [f"{w.name}: {'alive' if w.alive else 'dead'}" for w in world.workers.values()]
        figures.notes.append(
            f"{len(plan.tasks)} tasks; workers at the end: {', '.join(alive)}; "
            f"worker starts: {sum(w.incarnation for w in world.workers.values())}"
        )
        figures.notes.extend(world.events)
    RESULTS.append(figures)
    report = "\n".join(
        [
            table([figures]),
            *(f"  note: {n}" for n in figures.notes),
            *(f"  evidence: {e}" for e in figures.evidence),
        ]
    )
    _log(report)
    print(report)
    return figures


def assert_clean(figures: Figures) -> None:
    evidence = "\n".join(figures.evidence[:40])
    assert figures.clean, f"{table([figures])}\n{evidence}"


# --------------------------------------------------------------------------------------------


async def test_control_without_faults(tmp_path: Path) -> None:
    """The same run with nothing going wrong: the baseline for the others."""

    async def nothing(world: FaultWorld) -> None:
        return None

    assert_clean(await run_scenario("0 control", tmp_path, nothing, budget=timedelta(minutes=3)))


async def test_worker_killed_repeatedly(tmp_path: Path) -> None:
    """1. kill -9 the worker at random moments, twelve times, restarting it each time."""
    seed = int(os.environ.get("FAULTS_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)

    async def crashes(world: FaultWorld) -> None:
        world.note(f"random seed {seed} (FAULTS_SEED={seed} repeats these moments)")
        for index in range(12):
            await world.sleep_until(25 + index * 9.5 + rng.uniform(0, 6))
            await world.crash_worker("a")

    figures = await run_scenario(
        "1 worker kill -9 ×12", tmp_path, crashes, budget=timedelta(minutes=7)
    )
    assert_clean(figures)


async def test_server_restarted(tmp_path: Path) -> None:
    """2. Stop and restart the dev server on the same database file, twice, while the worker
    process keeps running; the figures' notes say whether it survived."""

    async def restarts(world: FaultWorld) -> None:
        for at in (50, 105):
            await world.sleep_until(at)
            await world.restart_server(down_for=5)
            worker = world.workers["a"]
            await world.sleep_until(at + 12)
            world.note(
                f"worker process after the restart: "
                f"{'alive' if worker.alive else f'exited ({worker.returncode})'}"
            )
            if not worker.alive:
                await world.start_worker("a")
                world.note("worker restarted by the harness")

    figures = await run_scenario(
        "2 server restart ×2", tmp_path, restarts, budget=timedelta(minutes=5)
    )
    assert_clean(figures)


def _head_of_a_never_reporting_agency(world: FaultWorld) -> set[str]:
    task = next(t for t in world.plan.tasks if t.behaviour is Behaviour.NEVER)
    return {world.plan.officers.head[task.agency]}


async def test_mail_outage(tmp_path: Path) -> None:
    """3. Connections refused for 20 s, then 451 for 20 s, then recovery; all along, one
    head of agency's address is refused with 550."""

    async def outage(world: FaultWorld) -> None:
        await world.sleep_until(48)
        world.smtp.refuse_connections()
        world.note(f"SMTP refuses connections at +{world.since_deploy():.1f}s")
        await world.sleep_until(68)
        world.smtp.defer_everyone(True)
        world.smtp.accept_connections()
        world.note(f"SMTP answers 451 to every recipient at +{world.since_deploy():.1f}s")
        await world.sleep_until(88)
        world.smtp.defer_everyone(False)
        world.note(f"SMTP accepts again at +{world.since_deploy():.1f}s")

    figures = await run_scenario(
        "3 mail outage (refused 20s, 451 20s) + 550",
        tmp_path,
        outage,
        budget=timedelta(minutes=5),
        refused=_head_of_a_never_reporting_agency,
    )
    assert_clean(figures)


async def test_database_locked(tmp_path: Path) -> None:
    """4. Another connection holds the Accord database's write lock for 15 s (within the
    engine's 30 s busy timeout: writers wait), then for 40 s (beyond it: writes fail with
    'database is locked' and the activities retry)."""

    async def locks(world: FaultWorld) -> None:
        await world.sleep_until(50)
        await world.lock_database(15)
        await world.sleep_until(85)
        await world.lock_database(40)

    figures = await run_scenario(
        "4 accord.db locked 15s, then 40s", tmp_path, locks, budget=timedelta(minutes=5)
    )
    assert_clean(figures)


async def test_two_workers_one_killed(tmp_path: Path) -> None:
    """5. Two worker processes on one task queue; one is killed mid-run and stays dead."""

    async def kill_one(world: FaultWorld) -> None:
        await world.sleep_until(85)
        await world.crash_worker("a", restart=False)

    figures = await run_scenario(
        "5 two workers, one kill -9",
        tmp_path,
        kill_one,
        budget=timedelta(minutes=6),
        workers=("a", "b"),
    )
    assert figures.notes and "b: alive" in " ".join(figures.notes)
    assert_clean(figures)
