"""Five-year programmes through the agreement workflow, on the time-skipping server: every run
of its continue-as-new chain stays below the server's 10,240-event warning, and each run hands
the next one the agreement's state intact. Also the history budget itself: with a small budget
a run continues-as-new within a year, and how far past the budget a run can get.

"Intact" is checked against the history, not against the workflow's own bookkeeping: each
run's ledger is rebuilt from the input it received, the tasks it started and the `task_changed`
signals it was sent (in history order), and must equal the ledger the next run received; the
last run's result must agree with what every task's own workflow returned.

Once a report completes a task whose starting run has since continued-as-new, the
time-skipping test server (1.40) leaks a time-skipping lock (the parent run that should release
it is closed; compare temporalio/sdk-java#1540); `accord.simulation` releases it, and
tests/test_cli_engine.py scripts such a report.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TypeVar

import pytest
from harness import ROOT, ZONE
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

import accord.simulation
import worker
import workflows.agreement
from accord.simulation import (
    ScriptedSubmission,
    SimulationReport,
    SimulationStalled,
    simulate,
    start_test_server,
)
from agreements.loader import LoadedAgreement, load_agreement
from infra.settings import SmtpSettings
from workflows import claims
from workflows.payloads import (
    TASK_CHANGED_SIGNAL,
    AgreementInput,
    AgreementSummary,
    LedgerEntry,
    TaskChange,
    TaskOutcome,
    TaskState,
    agreement_workflow_id,
    task_workflow_id,
)

sys.path.append(str(ROOT / "bench"))
from synthetic import write_agreement  # bench/ is a folder of scripts, not a package

SERVER_WARNING = 10_240
"""The server warns at this many events in one run (TEMPORAL_NOTES.md)."""
NGHE_AN = ROOT / "agreements" / "nghe-an-2021-2026-chuong-trinh.yaml"
PROGRAMME_AGENCIES = 20
"""Synthetic five-year programme: 20 agencies × 2 reports a year × 5 years = 200 tasks
(≈ 45 s on a 2-core machine; 115 agencies take ≈ 280 s, bench/results)."""
SIMULATION_TIMEOUT = 300
"""Seconds: a simulation still running after this has stalled (see the module docstring)."""
SMALL_BUDGET = 200
YEAR_AGENCIES = 15
"""One year of 15 agencies × 2 reports makes ≈ 500 agreement events: at least one run more
within the year under SMALL_BUDGET."""
# How far past its budget a run can get. The loop checks the budget on each pass, after
# starting the tasks whose window opened and before it waits; it wakes for the next opening,
# a new year or a task that closed, not for any other change a task reports. Between two checks
# the history therefore grows by: every non-closing signal of the year's tasks (each task
# reports its first view, overdue and three escalation steps: 5), each with at most one
# workflow task of its own; one batch of starts (at most MAX_STARTS_PER_WAKE, here one
# half-year's tasks); and the wake-up itself with the continue-as-new, whose workflow task may
# fail once on a signal that arrived meanwhile and be retried.
NON_CLOSING_SIGNALS_PER_TASK = 5
EVENTS_PER_SIGNAL = 4  # signaled, workflow task scheduled, started, completed
EVENTS_PER_START = 5  # initiated, child started, workflow task scheduled, started, completed
WAKE_AND_CONTINUE = 12  # timer fired, 2 workflow tasks (one failed), continued-as-new
OVERSHOOT = (
    2 * YEAR_AGENCIES * NON_CLOSING_SIGNALS_PER_TASK * EVENTS_PER_SIGNAL
    + YEAR_AGENCIES * EVENTS_PER_START
    + WAKE_AND_CONTINUE
)

M = TypeVar("M")


def _decode(payload: Payload, type_: type[M]) -> M:
    value = pydantic_data_converter.payload_converter.from_payload(payload, type_)
    assert isinstance(value, type_)
    return value


def _local(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime(tzinfo=UTC).astimezone(ZONE)


@dataclass(frozen=True)
class Run:
    """One run of the agreement's continue-as-new chain."""

    number: int
    input: AgreementInput
    events: Sequence[HistoryEvent]

    @property
    def year(self) -> int:
        """Local year the run started in."""
        return _local(self.events[0]).year

    @property
    def carried(self) -> AgreementInput | None:
        """The input this run handed the next one (None: the run did not continue-as-new)."""
        last = self.events[-1]
        if not last.HasField("workflow_execution_continued_as_new_event_attributes"):
            return None
        attributes = last.workflow_execution_continued_as_new_event_attributes
        return _decode(attributes.input.payloads[0], AgreementInput)

    @property
    def summary(self) -> AgreementSummary:
        last = self.events[-1]
        assert last.HasField("workflow_execution_completed_event_attributes"), (
            f"run {self.number} ended with {last.event_type}"
        )
        attributes = last.workflow_execution_completed_event_attributes
        return _decode(attributes.result.payloads[0], AgreementSummary)

    def decided_at(self, index: int) -> tuple[int, bool]:
        """History length the workflow saw when it produced event `index` (the id of the
        workflow task it ran in), and whether the server suggested continue-as-new then."""
        for event in reversed(self.events[:index]):
            if event.HasField("workflow_task_started_event_attributes"):
                attributes = event.workflow_task_started_event_attributes
                return event.event_id, attributes.suggest_continue_as_new
        raise AssertionError(f"run {self.number}: event {index} has no workflow task before it")

    def replay_ledger(self) -> tuple[dict[str, LedgerEntry], list[str]]:
        """The ledger this run must hold at its end, rebuilt from its input and history: a
        pending entry for every task it started, then every `task_changed` signal in order,
        none of which may change an entry once it is closed. Also the tasks it started."""
        waiting = {t.task_id: t for t in self.input.waiting}
        ledger = dict(self.input.ledger)
        started: list[str] = []
        for event in self.events:
            assert not event.HasField("start_child_workflow_execution_failed_event_attributes"), (
                f"run {self.number}: a task was started twice: {event}"
            )
            if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
                workflow_id = (
                    event.start_child_workflow_execution_initiated_event_attributes.workflow_id
                )
                task_id = workflow_id.removeprefix("task:")
                assert workflow_id == task_workflow_id(task_id)
                assert task_id in waiting, f"run {self.number} started {task_id}, not waiting"
                assert task_id not in ledger, f"run {self.number} started {task_id} again"
                planned = waiting[task_id]
                ledger[task_id] = LedgerEntry(
                    state=TaskState.PENDING,
                    due_at=planned.due_at,
                    written_due_at=planned.written_due_at or planned.due_at,
                )
                started.append(task_id)
            elif event.HasField("workflow_execution_signaled_event_attributes"):
                signal = event.workflow_execution_signaled_event_attributes
                assert signal.signal_name == TASK_CHANGED_SIGNAL, (
                    f"run {self.number}: unexpected signal {signal.signal_name}"
                )
                change = _decode(signal.input.payloads[0], TaskChange)
                previous = ledger.get(change.task_id)
                assert previous is not None, (
                    f"run {self.number}: signal from {change.task_id}, which it never started"
                )
                if not previous.closed:
                    ledger[change.task_id] = LedgerEntry(
                        state=change.state,
                        due_at=change.due_at,
                        escalation_level=change.escalation_level,
                        closed=change.closed,
                        agency=change.agency or previous.agency,
                        written_due_at=previous.written_due_at,
                    )
        return ledger, started


async def _chain(client: Client, workflow_id: str) -> list[Run]:
    """Every run of the chain, first run first (as tests/workflows/make_histories.py walks it)."""
    description = await client.get_workflow_handle(workflow_id).describe()
    run_id: str | None = description.raw_description.workflow_execution_info.first_run_id
    runs: list[Run] = []
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        events = list(history.events)
        started = events[0].workflow_execution_started_event_attributes
        runs.append(Run(len(runs) + 1, _decode(started.input.payloads[0], AgreementInput), events))
        attributes = events[-1].workflow_execution_continued_as_new_event_attributes
        run_id = attributes.new_execution_run_id or None
    return runs


async def _check_chain(client: Client, report: SimulationReport) -> list[Run]:
    """Assert that state survives every continue-as-new and that the result counts every task
    once, with the state its own workflow ended in. Returns the runs."""
    runs = await _chain(client, agreement_workflow_id(report.agreement_id))
    planned = {t.task_id: t for t in runs[0].input.waiting}
    assert len(planned) == len(runs[0].input.waiting), "a task is planned twice"
    assert runs[0].input.ledger == {}
    ever_started: set[str] = set()
    ledger: dict[str, LedgerEntry] = {}
    for run in runs:
        ledger, started = run.replay_ledger()
        ever_started.update(started)
        carried = run.carried
        if carried is None:  # the last run
            break
        where = f"run {run.number} → {run.number + 1}"
        assert carried.runs == run.input.runs + 1, where
        assert carried.plan == run.input.plan, where
        # (a) every task any run has started is in the ledger handed on.
        missing = sorted(ever_started - carried.ledger.keys())
        assert not missing, f"{where}: started tasks missing from the ledger: {missing}"
        # (b) waiting + ledger is the plan: no task lost, none in both, none twice.
        waiting_ids = [t.task_id for t in carried.waiting]
        assert len(waiting_ids) == len(set(waiting_ids)), f"{where}: a waiting task twice"
        both = sorted(set(waiting_ids) & carried.ledger.keys())
        assert not both, f"{where}: tasks both waiting and started: {both}"
        assert set(waiting_ids) | carried.ledger.keys() == planned.keys(), where
        assert all(t == planned[t.task_id] for t in carried.waiting), where
        # (c) a closed entry never changes again.
        for task_id, entry in run.input.ledger.items():
            if entry.closed:
                assert carried.ledger[task_id] == entry, f"{where}: closed {task_id} changed"
        # And the whole ledger is what this run was told, entry by entry.
        for task_id in sorted(ledger.keys() | carried.ledger.keys()):
            assert carried.ledger.get(task_id) == ledger.get(task_id), (
                f"{where}: {task_id}: carried {carried.ledger.get(task_id)}, "
                f"history says {ledger.get(task_id)}"
            )
    assert runs[-1].carried is None
    assert report.overview.runs == len(runs) == runs[-1].input.runs

    summary = runs[-1].summary
    assert summary == report.summary
    assert ever_started == planned.keys()
    assert ledger.keys() == planned.keys()
    assert all(entry.closed for entry in ledger.values())
    assert summary.total == len(planned) == sum(summary.counts.values())
    states = Counter(entry.state.value for entry in ledger.values())
    assert summary.counts == {state.value: states[state.value] for state in TaskState}
    outcomes = await asyncio.gather(
        *(
            client.get_workflow_handle(task_workflow_id(task_id), result_type=TaskOutcome).result()
            for task_id in sorted(planned)
        )
    )
    for outcome in outcomes:
        entry = ledger[outcome.task_id]
        assert (entry.state, entry.escalation_level) == (outcome.state, outcome.escalation_level), (
            f"{outcome.task_id}: ledger {entry}, its workflow returned {outcome}"
        )
    return runs


def _sizes(runs: Sequence[Run]) -> list[int]:
    return [len(run.events) for run in runs]


# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Programme:
    loaded: LoadedAgreement
    submissions: list[ScriptedSubmission]
    on_time: int
    late: int


def _nghe_an(_: Path) -> Programme:
    """The real Nghệ An 2021–2026 programme: 11 tasks; one yearly plan sent on time, another
    late (simulated 28 years later, so about thirty yearly runs)."""
    tasks = "nghe-an-ctph-dan-van-2021-2026/ke-hoach-nam/SNV"
    submissions = [
        ScriptedSubmission.parse(f"{tasks}/2023@2023-03-01"),
        ScriptedSubmission.parse(f"{tasks}/2024@2024-04-10"),  # due 2/4 (31/3 a Sunday)
    ]
    return Programme(load_agreement(NGHE_AN), submissions, on_time=1, late=1)


def _synthetic(folder: Path) -> Programme:
    """A synthetic 2027–2031 programme: 20 agencies report twice a year; five send one report
    on time, three another late, nobody else ever."""
    path = write_agreement(
        folder,
        number=1,
        agencies=PROGRAMME_AGENCIES,
        start=date(2027, 1, 1),
        end=date(2031, 12, 31),
        label="5y",
    )
    tasks = "synthetic-bench-tinh01-5y/bao-cao-6-thang"
    submissions = [
        ScriptedSubmission.parse(f"{tasks}/CQ00[1-5]/2028-5@2028-05-03"),
        ScriptedSubmission.parse(f"{tasks}/CQ01[0-2]/2029-11@2029-11-21"),
    ]
    return Programme(load_agreement(path), submissions, on_time=5, late=3)


async def _simulate_once(programme: Programme, workdir: Path) -> tuple[SimulationReport, list[Run]]:
    # One test server per simulation: once an agreement completes on its last task's signal,
    # the server keeps time skipping locked (bench/README.md).
    await asyncio.to_thread(workdir.mkdir, parents=True)
    env = await start_test_server()
    try:
        began = time.monotonic()
        async with asyncio.timeout(SIMULATION_TIMEOUT):
            report = await simulate(
                programme.loaded, submissions=programme.submissions, env=env, workdir=workdir
            )
        runs = await _check_chain(env.client, report)
        print(
            f"{report.agreement_id}: {time.monotonic() - began:.1f} s, {len(runs)} runs, "
            f"events per run {_sizes(runs)}"
        )
    finally:
        await env.shutdown()
    return report, runs


async def _simulate_and_check(
    programme: Programme, tmp_path: Path
) -> tuple[SimulationReport, list[Run]]:
    for attempt in (1, 2):
        try:
            report, runs = await _simulate_once(programme, tmp_path / f"attempt-{attempt}")
            break
        except SimulationStalled as stalled:
            # The time-skipping test server sometimes answers a long `sleep` with "Timeout
            # expired" on a loaded 2-core machine (seen once in CI in December 2026; the
            # agreement is not at fault, the message says so). One more try on a fresh server;
            # a second stall fails the test.
            if attempt == 2 or "Timeout expired" not in str(stalled):
                raise
            warnings.warn(f"simulation retried after: {stalled}", stacklevel=1)
    assert report.warnings == []
    counts = report.summary.counts
    tasks = len(programme.loaded.occurrences)
    assert counts == {
        TaskState.PENDING: 0,
        TaskState.OVERDUE: 0,
        TaskState.DONE_ON_TIME: programme.on_time,
        TaskState.DONE_LATE: programme.late,
        TaskState.WAIVED: 0,
        TaskState.NOT_DONE: 0,
        # Closed at the end of their ladders: not done, and overdue when they closed.
        TaskState.NOT_DONE_OVERDUE: tasks - programme.on_time - programme.late,
        TaskState.SUSPENDED: 0,
        TaskState.WITHDRAWN: 0,
    }
    return report, runs


@pytest.mark.parametrize("make", [_nghe_an, _synthetic], ids=["nghe-an", "synthetic"])
async def test_five_year_programme_stays_below_the_warning_with_state_intact(
    tmp_path: Path, make: Callable[[Path], Programme]
) -> None:
    programme = make(tmp_path / "agreement")
    _, runs = await _simulate_and_check(programme, tmp_path)
    assert max(_sizes(runs)) < SERVER_WARNING
    # A run for each local year from deployment to the close (yearly continue-as-new), and no
    # more: these programmes never come near the history budget.
    years = [run.year for run in runs]
    assert years == list(range(years[0], years[-1] + 1))
    # Unfinished tasks close a month after the (simulated) period: in the next year.
    assert years[-1] == runs[-1].input.plan.period_end.year + 1


def _unsandboxed_worker(
    client: Client,
    *,
    task_queue: str,
    session_factory: sessionmaker[Session],
    smtp: SmtpSettings,
    claim_keys: Mapping[str, bytes],
) -> Worker:
    """`worker.build_worker`'s worker with workflows outside the sandbox, where they read the
    module constant this test patches (the sandbox would re-import the module)."""
    claims.install_verifying_keys(claim_keys)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(worker.WORKFLOWS),
        activities=worker.build_activities(session_factory, smtp),
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


async def test_history_budget_continues_as_new_within_a_year(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workflows.agreement, "HISTORY_EVENT_BUDGET", SMALL_BUDGET)
    monkeypatch.setattr(accord.simulation, "build_worker", _unsandboxed_worker)
    # Next year's plan (2027 when written, in December 2026): one not yet begun is simulated
    # in its own years, not 28 years later, so that its runs are that year's and the next.
    year = datetime.now(ZONE).year + 1
    path = write_agreement(
        tmp_path / "agreement",
        number=2,
        agencies=YEAR_AGENCIES,
        start=date(year, 1, 1),
        end=date(year, 12, 31),
        label="1y",
    )
    tasks = "synthetic-bench-tinh02-1y/bao-cao-6-thang"
    programme = Programme(
        load_agreement(path),
        # One report only: its closing signal is the first to wake the loop, so the task's
        # run is still current when it completes (module docstring).
        [ScriptedSubmission.parse(f"{tasks}/CQ001/{year}-5@{year}-05-04")],
        on_time=1,
        late=0,
    )
    _, runs = await _simulate_and_check(programme, tmp_path)

    # Each pass of the main loop checks the budget before it waits (a timer): no pass may
    # have chosen to wait once the history was over the budget.
    for run in runs:
        for index, event in enumerate(run.events):
            if event.HasField("timer_started_event_attributes"):
                length, _ = run.decided_at(index)
                assert length <= SMALL_BUDGET, (
                    f"run {run.number} waited with {length} events in its history"
                )
    # Every continue-as-new had a reason: the budget, a suggestion or a new year.
    within_year = []
    for run, following in itertools.pairwise(runs):
        length, suggested = run.decided_at(len(run.events) - 1)
        over = length > SMALL_BUDGET
        new_year = following.year != run.year
        assert over or suggested or new_year, f"run {run.number} continued at {length}"
        if not new_year:
            within_year.append((run.number, length))
    print(f"continued-as-new within a year: {within_year}")
    assert within_year, "the budget never made a run continue-as-new"
    assert {r.year for r in runs[1:]} == {year, year + 1}
    sizes = _sizes(runs)
    print(f"largest run {max(sizes)} events, {max(sizes) - SMALL_BUDGET} over the budget")
    assert max(sizes) <= SMALL_BUDGET + OVERSHOOT
    assert YEAR_AGENCIES <= workflows.agreement.MAX_STARTS_PER_WAKE  # one batch per opening
