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
from typing import Any

from agreements.models import Offset
from workflows.payloads import AgreementPlan, ObligationPlan, PlannedTask, TaskState


@dataclass(frozen=True)
class KnownTask:
    """A task the running agreement knows: started (state not None) or still waiting."""

    task_id: str
    due_at: datetime | None
    written_due_at: datetime | None
    state: TaskState | None
    closed: bool = False
    planned: PlannedTask | None = None
    """A waiting task's planned version (its owners, dates and opening): compared whole with
    the new one. None: only the due instants are compared."""


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


# Fields of an obligation compared by `plan_diff`, in the order they are reported, grouped as
# the issue names them: owners, dates, policies (then what the task is).
_OBLIGATION_FIELDS: tuple[tuple[str, str], ...] = (
    ("item_number", "item"),
    ("title", "title"),
    ("deliverable", "deliverable"),
    ("owners", "owners"),
    ("jointly", "joint task"),
    ("recipient", "recipient"),
    ("copy_to", "copied to"),
    ("event", "event"),
    ("within", "due after the event"),
    ("deadline_rule", "deadline rule"),
    ("reminders", "reminders"),
    ("escalation", "escalation"),
    ("extension_approver", "extension approvers"),
    ("indicators", "indicators"),
)

_AGREEMENT_FIELDS: tuple[tuple[str, str], ...] = (
    ("document_number", "document number"),
    ("title", "title"),
    ("issuer", "issuer"),
    ("period_start", "period start"),
    ("period_end", "period end"),
    ("closes_at", "closing instant"),
    ("time_zone", "time zone"),
    ("sending_time", "sending time"),
    ("digest", "digest by mail"),
)


def _text(value: Any) -> str:
    """A compact, stable rendering of a plan value for one line of the diff."""
    if value is None:
        return "none"
    if isinstance(value, Offset):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_text(v)}" for k, v in sorted(value.items())) + "}"
    if hasattr(value, "model_dump"):
        dumped = value.model_dump(mode="json", exclude_defaults=True)
        return _text(dumped) if dumped else "default"
    if hasattr(value, "value") and isinstance(value.value, str):
        return str(value.value)
    return str(value)


def _items(plan: AgreementPlan) -> set[str]:
    return {o.item_number for o in plan.obligations.values() if o.item_number}


def _obligation_line(obligation: ObligationPlan) -> str:
    item = f" (item {obligation.item_number})" if obligation.item_number else ""
    return f"{obligation.obligation_id}{item}: {obligation.title}"


def plan_diff(old: AgreementPlan, new: AgreementPlan) -> list[str]:
    """What changes, one English line per change, in a stable order (items, obligations,
    owners, dates, policies; each added, removed or changed).

    Order: the agreement's own fields (document, period and dates), then items removed and
    added (by number), then obligations removed and added (by ID), then each obligation kept,
    by ID, field by field (item, title, owners, recipient, dates, policies). Empty: the plans
    are the same (the calendar is not compared: it has its own update)."""
    lines: list[str] = []
    for name, label in _AGREEMENT_FIELDS:
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            lines.append(f"agreement {label} changed: {_text(before)} -> {_text(after)}")
    old_items, new_items = _items(old), _items(new)
    lines += [f"item {item} removed" for item in sorted(old_items - new_items)]
    lines += [f"item {item} added" for item in sorted(new_items - old_items)]
    removed = sorted(set(old.obligations) - set(new.obligations))
    added = sorted(set(new.obligations) - set(old.obligations))
    lines += [f"obligation removed: {_obligation_line(old.obligations[k])}" for k in removed]
    lines += [f"obligation added: {_obligation_line(new.obligations[k])}" for k in added]
    for key in sorted(set(old.obligations) & set(new.obligations)):
        before_o, after_o = old.obligations[key], new.obligations[key]
        for name, label in _OBLIGATION_FIELDS:
            before, after = getattr(before_o, name), getattr(after_o, name)
            if name == "owners":
                lines += _owner_lines(key, before, after)
            elif before != after:
                lines.append(
                    f"obligation {key}: {label} changed: {_text(before)} -> {_text(after)}"
                )
    return lines


def _owner_lines(key: str, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    lines = [f"obligation {key}: owner removed: {a}" for a in sorted(set(before) - set(after))]
    lines += [f"obligation {key}: owner added: {a}" for a in sorted(set(after) - set(before))]
    lines += [
        f"obligation {key}: owner {a} dates changed: {_text(before[a])} -> {_text(after[a])}"
        for a in sorted(set(before) & set(after))
        if before[a] != after[a]
    ]
    return lines


def _written(due_at: datetime | None, written_due_at: datetime | None) -> datetime | None:
    return written_due_at if written_due_at is not None else due_at


def task_diff(
    known: list[KnownTask],
    new: list[PlannedTask],
    now: datetime,
    event_obligations: frozenset[str] = frozenset(),
) -> TaskDiff:
    """Closed tasks are never touched; see TaskDiff's fields. Every list is in task ID order.
    `event_obligations`: the new version's obligations whose tasks recorded events start (no
    file plans them): their known tasks are kept, neither withdrawn nor moved.

    A known task the new version does not plan is withdrawn (dropped when waiting); a new task
    not known is added unless it is due before `now` (skipped: a deadline already past is not
    issued by an amendment); a started open task whose written due instant changed moves; a
    waiting task whose planned version changed (or, without it, whose due instants changed) is
    replaced. A known task whose ID the new version keeps is never added again, closed or not.
    """
    by_id = {task.task_id: task for task in new}
    known_by_id = {task.task_id: task for task in known}
    diff = TaskDiff()
    for task_id in sorted(known_by_id):
        was = known_by_id[task_id]
        if was.closed:
            continue
        task = by_id.get(task_id)
        if task is None and task_id.split("/")[1:2] and task_id.split("/")[1] in event_obligations:
            continue
        if task is None:
            if was.state is None:
                diff.withdrawn_waiting.append(task_id)
            else:
                diff.withdrawn_started.append(task_id)
        elif was.state is None:
            changed = (
                was.planned != task
                if was.planned is not None
                else (was.due_at, was.written_due_at) != (task.due_at, task.written_due_at)
            )
            if changed:
                diff.moved_waiting.append(task)
        elif _written(was.due_at, was.written_due_at) != _written(task.due_at, task.written_due_at):
            diff.moved_started.append(task)
    for task_id in sorted(set(by_id) - set(known_by_id)):
        task = by_id[task_id]
        if task.due_at is not None and task.due_at < now:
            diff.skipped.append(task_id)
        else:
            diff.added.append(task)
    return diff


def event_obligations(plan: AgreementPlan) -> frozenset[str]:
    """The plan's obligations whose tasks recorded events start (`ObligationPlan.event`)."""
    return frozenset(key for key, obligation in plan.obligations.items() if obligation.event)
