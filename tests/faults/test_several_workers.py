"""Several workers (issue 18, point 7): `python worker.py` processes on one task queue share the
work, and nothing is sent twice.

The fault suite's world (200 tasks, deadlines seconds apart, the counting SMTP server) with two
worker processes and no fault. Who did what is read from the workflows' histories, as the
server recorded it: each workflow task completed and each activity started carries the
identity of the worker that ran it (`<pid>@<host>`, the SDK's default), and a local activity
(the mail's first tries) is recorded in a marker of the workflow task that ran it.

Slow (about 3 minutes): marked `faults`, run by `.ci/run` with the fault suite.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from fault_harness import FaultWorld, fault_world, table
from temporalio.api.history.v1 import HistoryEvent

from workflows.payloads import task_workflow_id

pytestmark = pytest.mark.faults


async def work_by_worker(world: FaultWorld) -> tuple[Counter[str], Counter[str]]:
    """(workflow tasks completed, activities run) per worker identity, over every task."""
    tasks: Counter[str] = Counter()
    activities: Counter[str] = Counter()
    semaphore = asyncio.Semaphore(16)

    async def one(task_id: str) -> None:
        async with semaphore:
            handle = world.client.get_workflow_handle(task_workflow_id(task_id))
            events: list[HistoryEvent] = [e async for e in handle.fetch_history_events()]
        completed_by = {
            e.event_id: e.workflow_task_completed_event_attributes.identity
            for e in events
            if e.HasField("workflow_task_completed_event_attributes")
        }
        tasks.update(completed_by.values())
        for e in events:
            if e.HasField("activity_task_started_event_attributes"):
                activities[e.activity_task_started_event_attributes.identity] += 1
            elif e.HasField("marker_recorded_event_attributes"):
                marker = e.marker_recorded_event_attributes
                activities[completed_by[marker.workflow_task_completed_event_id]] += 1

    await asyncio.gather(*(one(task.task_id) for task in world.plan.tasks))
    return tasks, activities


async def test_two_worker_processes_share_the_queue_and_send_each_message_once(
    tmp_path: Path,
) -> None:
    async with fault_world("7 two workers", tmp_path) as world:
        for name in ("a", "b"):
            await world.start_worker(name)
        # Two more minutes before the first reminder: the 200 tasks must all have started then,
        # and this test runs beside the others in CI.
        await world.deploy(first_due=timedelta(minutes=2))
        await world.settle(timedelta(minutes=5))
        figures = await world.figures()
        tasks, activities = await work_by_worker(world)
        pids = {name: worker.pid for name, worker in world.workers.items()}

    print(table([figures]))
    print(f"workflow tasks per worker: {dict(tasks)}; activities per worker: {dict(activities)}")
    by_pid = {identity.split("@")[0]: identity for identity in tasks | activities}
    for name, pid in pids.items():
        identity = by_pid.get(str(pid))
        assert identity is not None, f"worker {name} (pid {pid}) did no work: {dict(tasks)}"
        assert tasks[identity] > 0 and activities[identity] > 0, (name, dict(activities))
    # Nothing else ran these tasks, and every message owed arrived exactly once.
    assert len(tasks) == 2, dict(tasks)
    assert figures.duplicated == 0 and figures.lost == 0 and figures.unexpected == 0
    assert figures.clean, "\n".join([table([figures]), *figures.evidence[:40]])
