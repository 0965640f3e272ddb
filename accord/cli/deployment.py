"""`accord deploy` and `accord status`: start agreements' workflows, and list their tasks.

Status reads Temporal's search attributes (what the Web UI shows) and, for one agreement, its
overview query; it changes nothing. Argument values that go into a visibility query are
checked against safe patterns first.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.service import RPCError, RPCStatusCode

from accord.cli.engine import (
    EXIT_FAILED,
    LOCAL_ZONE,
    QUERY_TIMEOUT,
    TASK_PREFIX,
    connect,
    load_settings,
    local_due_text,
    open_database,
    run_engine_command,
    state_label,
)
from agreements.loader import (
    agreement_files,
)
from workflows.payloads import STATE_LABELS_VI, ChangeScope, TaskState, agreement_workflow_id
from workflows.search_attributes import (
    SA_AGENCY,
    SA_AGREEMENT,
    SA_DUE_AT,
    SA_ESCALATION_LEVEL,
    SA_KIND,
    SA_OBLIGATION,
    SA_ORIGINAL_AGENCY,
    SA_PERIOD,
    SA_STATE,
    SA_TENANT,
)


def add_deploy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="an agreement file, or a folder of them (as for `accord validate`)",
    )


def deploy(args: argparse.Namespace) -> int:
    """Load each agreement's directory into the database and start its workflow; deploying
    again changes nothing. Invalid files are reported and skipped."""
    paths: list[Path] = args.paths
    code = run_engine_command(_deploy(paths))
    for path in paths:
        if path.is_dir() and not agreement_files(path):
            # Deploying nothing must not pass, e.g. in a script after a folder was moved.
            print(f"{path}: no agreement files found")
            code = EXIT_FAILED
    return code


async def _deploy(paths: list[Path]) -> int:
    from accord.deploy import deploy_paths

    settings = load_settings()
    client = await connect(settings)
    lines, ok = await deploy_paths(
        client,
        paths,
        session_factory=open_database(settings),
        task_queue=settings.temporal.task_queue,
        compare_running=True,
    )
    for line in lines:
        print(line)
    return 0 if ok else EXIT_FAILED


# --------------------------------------------------------------------------------------------
# accord status


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--agreement",
        type=_matching(AGREEMENT_ID, "an agreement ID (lower-case letters, digits, hyphens)"),
        metavar="ID",
        help="only this agreement's tasks; its overview (counts, deadlines) is printed first",
    )
    parser.add_argument(
        "--tenant",
        type=_matching(TENANT, "a tenant (lower-case letters, digits, hyphens, e.g. nghe-an)"),
        metavar="TENANT",
        help="only this tenant's tasks (the `tenant:` of the agreements' directory, e.g. "
        "quang-binh); agency codes mean something within one tenant only",
    )
    parser.add_argument(
        "--agency",
        type=_matching(AGENCY_CODE, "an agency code (e.g. SNV, UBND_LE_THUY)"),
        metavar="CODE",
        help="only tasks owed by this agency",
    )
    parser.add_argument(
        "--state",
        choices=[state.value for state in TaskState],
        help="only tasks in this state",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per task instead of the table (no overview)",
    )
    parser.add_argument(
        "--limit",
        type=_positive,
        default=1000,
        metavar="N",
        help="list at most N tasks (default 1000)",
    )


@dataclass(frozen=True)
class TaskListing:
    """One task as Temporal's visibility store shows it: no workflow is queried."""

    task_id: str
    agreement: str
    tenant: str
    agency: str
    obligation: str
    period: str
    state: str
    due_at: datetime | None
    escalation_level: int
    closed: bool
    original_agency: str | None = None
    """Set when a succession passed the task from this agency to `agency`."""

    @classmethod
    def from_execution(cls, execution: WorkflowExecution) -> TaskListing:
        attributes = execution.typed_search_attributes
        return cls(
            task_id=execution.id.removeprefix(TASK_PREFIX),
            agreement=attributes.get(SA_AGREEMENT) or "",
            tenant=attributes.get(SA_TENANT) or "",
            agency=attributes.get(SA_AGENCY) or "",
            obligation=attributes.get(SA_OBLIGATION) or "",
            period=attributes.get(SA_PERIOD) or "",
            state=attributes.get(SA_STATE) or "",
            due_at=attributes.get(SA_DUE_AT),
            escalation_level=attributes.get(SA_ESCALATION_LEVEL) or 0,
            closed=execution.status is not WorkflowExecutionStatus.RUNNING,
            original_agency=attributes.get(SA_ORIGINAL_AGENCY),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "task": self.task_id,
            "agreement": self.agreement,
            "tenant": self.tenant,
            "agency": self.agency,
            "obligation": self.obligation,
            "period": self.period,
            "state": self.state,
            "state_label": state_label(self.state),
            "due_at": self.due_at.astimezone(LOCAL_ZONE).isoformat() if self.due_at else None,
            "escalation_level": self.escalation_level,
            "closed": self.closed,
            **({"original_agency": self.original_agency} if self.original_agency else {}),
        }

    def as_row(self) -> list[str]:
        label = state_label(self.state) + (" (đã đóng)" if self.closed else "")
        agency = self.agency
        if self.original_agency and self.original_agency != self.agency:
            agency += f" (trước đây: {self.original_agency})"
        return [
            self.task_id,
            agency,
            self.period,
            label,
            local_due_text(self.due_at),
            str(self.escalation_level),
        ]


def status_query(
    agreement: str | None, agency: str | None, state: str | None, tenant: str | None = None
) -> str:
    """The visibility query; the values were checked against safe patterns by argparse."""
    clauses = [f"{SA_KIND.name} = 'task'"]
    filters = ((SA_TENANT, tenant), (SA_AGREEMENT, agreement), (SA_AGENCY, agency))
    for key, value in (*filters, (SA_STATE, state)):
        if value is not None:
            clauses.append(f"{key.name} = '{value}'")
    return " AND ".join(clauses)


def status(args: argparse.Namespace) -> int:
    """List tasks from Temporal's search attributes: what the Web UI shows, as a table."""
    return run_engine_command(_status(args))


async def _status(args: argparse.Namespace) -> int:
    settings = load_settings()
    client = await connect(settings)
    if args.agreement and not args.json:
        await _print_overview(client, args.agreement)
    query = status_query(args.agreement, args.agency, args.state, args.tenant)
    listings: dict[str, TaskListing] = {}
    async for execution in client.list_workflows(query, limit=args.limit):
        # Newest first: should a task's workflow ever run again under its ID, its latest run
        # is the one to show.
        listings.setdefault(execution.id, TaskListing.from_execution(execution))
    far_future = datetime.max.replace(tzinfo=UTC)
    tasks = sorted(listings.values(), key=lambda t: (t.due_at or far_future, t.task_id))
    if args.json:
        for listing in tasks:
            print(json.dumps(listing.as_json(), ensure_ascii=False))
        return 0
    if not tasks:
        print("Không có nhiệm vụ nào khớp (no task matches).")
        return 0
    print_table(
        ["Nhiệm vụ", "Cơ quan", "Kỳ", "Trạng thái", "Hạn", "Mức đôn đốc"],
        [listing.as_row() for listing in tasks],
    )
    counts = Counter(state_label(listing.state) for listing in tasks)
    print(f"{len(tasks)} nhiệm vụ: " + "; ".join(f"{n} {s}" for s, n in counts.most_common()))
    if len(listings) == args.limit:
        print(f"(only the first {args.limit} tasks are listed; raise --limit to see more)")
    return 0


async def _print_overview(client: Client, agreement_id: str) -> None:
    from workflows.agreement import AgreementWorkflow

    handle = client.get_workflow_handle_for(
        AgreementWorkflow.run, agreement_workflow_id(agreement_id)
    )
    try:
        overview = await handle.query(AgreementWorkflow.overview, rpc_timeout=QUERY_TIMEOUT)
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            print(f"(no workflow {handle.id}: the agreement is not deployed)\n")
        else:
            print(f"(overview of {handle.id} unavailable: {error.message})\n")
        return
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as error:
        print(f"(overview of {handle.id} unavailable: {error})\n")
        return
    finished = ", đã kết thúc" if overview.finished else ""
    print(f"{overview.document_number} ({handle.id}{finished})")
    print(
        f"Nhiệm vụ đã mở: {overview.started} ({overview.closed} đã đóng), "
        f"chưa đến kỳ: {overview.waiting}"
    )
    if overview.version is not None:
        version = overview.version
        since = version.in_force_since.astimezone(LOCAL_ZONE)
        print(
            f"Phiên bản {version.number}, có hiệu lực từ {since:%H:%M %d/%m/%Y} theo "
            f"{version.document}"
        )
    for suspended in overview.suspensions:
        since = suspended.since.astimezone(LOCAL_ZONE)
        scope = overview.suspension_scopes.get(suspended.suspension_id, ChangeScope())
        print(
            f"Tạm dừng {suspended.suspension_id} ({scope.text_vi}) từ "
            f"{since:%H:%M %d/%m/%Y} theo {suspended.document}: {suspended.reason}"
        )
    for state in TaskState:
        if overview.counts.get(state.value):
            print(f"  {STATE_LABELS_VI[state]}: {overview.counts[state.value]}")
    for title, deadlines in (
        ("Hạn sắp tới", overview.next_deadlines),
        ("Quá hạn", overview.overdue),
    ):
        if deadlines:
            print(f"{title}:")
            for d in deadlines:
                level = f"  mức đôn đốc {d.escalation_level}" if d.escalation_level else ""
                print(f"  {local_due_text(d.due_at)}  {d.agency}  {d.task_id}{level}")
    print()


# --------------------------------------------------------------------------------------------
# Argument types of accord status (their values go into a visibility query), and its table


AGREEMENT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")
AGENCY_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,39}")
TENANT = re.compile(r"[a-z0-9][a-z0-9-]{0,59}")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]
    for row in (headers, ["-" * width for width in widths], *rows):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    """An argparse type accepting only `pattern`: values go into a visibility query, so
    anything that could be query syntax is refused before it gets there."""

    def check(text: str) -> str:
        if not pattern.fullmatch(text):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return text

    return check


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value
