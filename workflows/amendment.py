"""Amendments (issue 17): what a new version of an agreement changes, as pure functions.

`plan_diff` compares two plans (items, obligations, owners, dates, policies) for people;
`task_diff` compares the tasks a running agreement knows with the tasks the new version plans,
for the engine. Both the CLI's preview (`accord amend`, `accord simulate --amend`) and the
agreement workflow's `amend` update call them, so what the preview shows is what is applied.
Pure (imported by the workflow, so it lives in `workflows`): no I/O, no clock (the caller
passes `now`), deterministic order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from workflows.payloads import AgreementPlan, PlannedTask, TaskState


@dataclass(frozen=True)
class KnownTask:
    """A task the running agreement knows: started (state not None) or still waiting."""

    task_id: str
    due_at: datetime | None
    written_due_at: datetime | None
    state: TaskState | None
    closed: bool = False


@dataclass(frozen=True)
class TaskDiff:
    added: list[PlannedTask] = field(default_factory=list)
    """New tasks to plan (or start now when their window is open)."""
    withdrawn_started: list[str] = field(default_factory=list)
    """Started open tasks the new version no longer plans: ordered to withdraw."""
    withdrawn_waiting: list[str] = field(default_factory=list)
    """Tasks not started yet that the new version no longer plans: dropped."""
    moved_started: list[PlannedTask] = field(default_factory=list)
    """Started open tasks whose written due instant changed: ordered to move_due."""
    moved_waiting: list[PlannedTask] = field(default_factory=list)
    """Waiting tasks replaced by their new version (dates, owners)."""
    skipped: list[str] = field(default_factory=list)
    """New tasks not added because their due instant is before `now` (said in the preview)."""

    @property
    def empty(self) -> bool:
        return not (
            self.added
            or self.withdrawn_started
            or self.withdrawn_waiting
            or self.moved_started
            or self.moved_waiting
        )


def plan_diff(old: AgreementPlan, new: AgreementPlan) -> list[str]:
    """What changes, one English line per change, in a stable order (items, obligations,
    owners, dates, policies; each added, removed or changed)."""
    raise NotImplementedError


def task_diff(known: list[KnownTask], new: list[PlannedTask], now: datetime) -> TaskDiff:
    """Closed tasks are never touched; see TaskDiff's fields."""
    raise NotImplementedError
