"""The `accord` command line.

    accord validate PATH...        check agreement files (or every agreement in a folder)
    accord schema [--directory]    print the JSON Schema of an agreement (or directory) file
    accord run [--demo]            run the service: Temporal, mail, worker, agreements
    accord deploy PATH...          start the workflows of agreements (again: no change)
    accord status [--agreement ID] list tasks and their state (filters: agency, state)
    accord submit TASK ...         submit a task's report on behalf of an officer
    accord extend | decide TASK    request an extension of a deadline; decide on it
    accord waive TASK ...          release an agency from a task (admins)
    accord simulate PATH           preview every mail an agreement will cause
    accord plan PATH               the same list, worked out by the planner without a server

Each command is one function taking the parsed arguments and returning the exit code, with
one function declaring its arguments; `COMMANDS` at the bottom registers them. To add a
command, write those two functions and add a line there.

Commands that talk to the engine take every setting from `ACCORD_*` variables (see
accord/settings.py). Expected failures (server unreachable, unknown officer, a refused
request) print one message instead of a traceback: exit 1 when the action failed, 2 when the
input was wrong (`CommandError`).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import RPCError, RPCStatusCode

from accord.settings import Settings
from activities.models import Actor, IndicatorValue, Ratio
from agreements.calendar import WorkingCalendar
from agreements.loader import (
    LoadError,
    agreement_files,
    load_agreement,
    load_directory,
    looks_like_directory,
    parse_yaml,
    read_text,
)
from agreements.models import Agreement, Directory, OfficerRole
from workflows.payloads import (
    REFUSED,
    SA_AGENCY,
    SA_AGREEMENT,
    SA_DUE_AT,
    SA_ESCALATION_LEVEL,
    SA_KIND,
    SA_OBLIGATION,
    SA_PERIOD,
    SA_STATE,
    STATE_LABELS_EN,
    STATE_LABELS_VI,
    ExtensionDecision,
    ExtensionRequest,
    SubmitReport,
    TaskState,
    UpdateResult,
    Waiver,
    agreement_workflow_id,
    task_workflow_id,
)

if TYPE_CHECKING:
    from temporalio.workflow import UpdateMethodMultiParam

    from accord.simulate import ScriptedSubmission
    from workflows.obligation import ObligationWorkflow

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


# --------------------------------------------------------------------------------------------
# accord validate


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help=(
            "an agreement file, or a folder: every *.yaml agreement in it and below, except "
            "agency directories and calendars (files under directory/ or calendars/, or with "
            "agencies: and no "
            "document_number:)"
        ),
    )


def validate(args: argparse.Namespace) -> int:
    """Load every file completely; print one OK line per valid file and every problem found."""
    paths: list[Path] = args.paths
    checked = failed = 0
    empty_folder = False
    for path in paths:
        files = agreement_files(path) if path.is_dir() else [path]
        if not files:
            # Validating nothing must not pass, e.g. in CI after a folder was moved.
            print(f"{path}: no agreement files found")
            empty_folder = True
        for file in files:
            checked += 1
            failed += not check_file(file)
    if failed:
        print(f"{failed} of {checked} files have problems", file=sys.stderr)
    return 1 if failed or empty_folder else 0


def check_file(path: Path) -> bool:
    try:
        if looks_like_directory(path):  # named explicitly: check it as what it is
            directory = load_directory(path)
            print(
                f"OK {path}: agency directory of {directory.province} — "
                f"{len(directory.agencies)} agencies, {len(directory.officers)} officers"
            )
            return True
        loaded = load_agreement(path)
    except LoadError as error:
        for problem in error.problems:
            print(problem)
        return False
    agreement = loaded.agreement
    dated = sum(1 for occurrence in loaded.occurrences if occurrence.due_at is not None)
    print(
        f"OK {path}: {agreement.agreement_id} — {len(agreement.items)} items, "
        f"{len(agreement.all_obligations())} obligations, "
        f"{len(loaded.occurrences)} task occurrences ({dated} dated)"
    )
    return True


# --------------------------------------------------------------------------------------------
# accord schema


def add_schema_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--directory",
        action="store_true",
        help="print the schema of an agency directory file instead of an agreement file",
    )


def schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema, e.g. for an editor's YAML language server."""
    model: type[BaseModel] = Directory if args.directory else Agreement
    title = "Accord agency directory" if args.directory else "Accord agreement"
    document = {"$schema": JSON_SCHEMA_DIALECT, **model.model_json_schema(), "title": title}
    print(json.dumps(document, ensure_ascii=False, indent=2))
    return 0


# --------------------------------------------------------------------------------------------
# Talking to the engine (Temporal, the database): shared by the commands below.
#
# Engine modules (worker, deploy, simulate, the database layer) are imported inside the
# commands that need them: `accord validate` and `accord schema` stay fast and keep working
# without a Temporal installation.

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the Temporal server to answer."""
ACCEPT_TIMEOUT = 30.0
"""Seconds to wait for a worker to accept (or refuse) a request."""
RESULT_TIMEOUT = 60.0
"""Seconds to wait for an accepted request to finish (it records and sends mail)."""
QUERY_TIMEOUT = timedelta(seconds=10)

LOCAL_ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
"""Every Vietnamese province keeps this time; dates are shown in it."""

AGREEMENT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")
AGENCY_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,39}")
TASK_PREFIX = task_workflow_id("")


class CommandError(Exception):
    """An expected failure: `main` prints the message, without a traceback, and exits with
    `code` (1: the action failed; 2: the input was wrong)."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}"
            for e in error.errors(include_url=False)
        )
        raise CommandError(f"invalid ACCORD_* settings: {problems}", EXIT_BAD_INPUT) from error


def temporal_address(settings: Settings) -> str:
    return settings.temporal.address or f"127.0.0.1:{settings.temporal.dev_port}"


async def connect(settings: Settings) -> Client:
    import worker

    address = temporal_address(settings)
    try:
        return await asyncio.wait_for(worker.connect(settings), CONNECT_TIMEOUT)
    except (RuntimeError, TimeoutError, OSError) as error:
        reason = _connect_failure(error)
        raise CommandError(
            f"cannot reach Temporal at {address} (namespace {settings.temporal.namespace}): "
            f"{reason}. Is `accord run` running? Otherwise point ACCORD_TEMPORAL__ADDRESS at "
            "your Temporal server."
        ) from error


def _connect_failure(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT:.0f} s"
    if isinstance(error, OSError) and error.filename:
        return f"cannot read {error.filename}: {error.strerror}"
    text = str(error)
    # The Rust core's message ends in a debug dump; its human part is in `message: "…"`.
    found = re.search(r'message: "([^"]+)"', text)
    return found.group(1).lower() if found else text


@functools.cache
def _cli_runtime() -> Runtime:
    """A Temporal runtime whose core log lines (written to stdout by default, where they would
    corrupt `--json` output) go through Python logging to stderr instead."""
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
            )
        )
    )


def use_cli_runtime() -> None:
    Runtime.set_default(_cli_runtime(), error_if_already_set=False)


def run_engine_command(command: Coroutine[Any, Any, int]) -> int:
    """Run an async command; losing the server midway is a message, not a traceback."""
    use_cli_runtime()
    try:
        return asyncio.run(command)
    except RPCError as error:
        if error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise CommandError(f"Temporal did not answer: {error.message}") from error
        raise


def local_due_text(due_at: datetime | None, locale: str = "vi") -> str:
    """'trước 27/12/2026' ('before 27/12/2026'): a due instant is the first late moment, as
    in the mail subjects."""
    before = "before" if locale == "en" else "trước"
    if due_at is None:
        return "no due date" if locale == "en" else "không có hạn"
    local = due_at.astimezone(LOCAL_ZONE)
    if local.hour == 0 and local.minute == 0:
        return f"{before} {local:%d/%m/%Y}"
    return f"{before} {local:%H:%M} {local:%d/%m/%Y}"


def state_label(state: TaskState | str | None) -> str:
    try:
        return STATE_LABELS_VI[TaskState(state)] if state else "—"
    except ValueError:
        return str(state)


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


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def _task_id(text: str) -> str:
    task_id = text.removeprefix(TASK_PREFIX)
    if not task_id or any(c.isspace() for c in task_id):
        raise argparse.ArgumentTypeError(f"{text!r} is not a task ID (see `accord status`)")
    return task_id


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


# --------------------------------------------------------------------------------------------
# accord run


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--demo",
        action="store_true",
        help="also start a demo agreement whose deadlines are a few minutes away",
    )
    parser.add_argument(
        "--no-deploy",
        dest="deploy",
        action="store_false",
        help="do not deploy the agreements folder (ACCORD_AGREEMENTS_DIR) at start-up",
    )


def run_service(args: argparse.Namespace) -> int:
    """Run Temporal (embedded unless configured), the mail sink, the worker and the agreements
    until Ctrl+C or SIGTERM."""
    import worker
    from accord.embedded import EmbeddedError

    settings = load_settings()
    try:
        asyncio.run(worker.serve(settings, demo=args.demo, deploy=args.deploy))
    except EmbeddedError as error:
        raise CommandError(str(error)) from error
    return 0


# --------------------------------------------------------------------------------------------
# accord deploy


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
    import worker
    from accord.deploy import deploy_paths

    settings = load_settings()
    client = await connect(settings)
    lines, ok = await deploy_paths(
        client,
        paths,
        session_factory=worker.open_database(settings),
        task_queue=settings.temporal.task_queue,
    )
    for line in lines:
        print(line)
    return 0 if ok else EXIT_FAILED


# --------------------------------------------------------------------------------------------
# accord calendar


def add_calendar_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("year", type=int, metavar="YEAR", help="the year to print, e.g. 2026")
    parser.add_argument(
        "--lang", choices=("vi", "en"), default="vi", help="language of the listing (vi)"
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help=(
            "after printing, send the calendar (built from the holidays package and "
            "agreements/calendars/vn-overrides.yaml) to every running task and agreement, "
            "which recompute their deadlines and timers"
        ),
    )
    parser.add_argument("--note", default="", help="why the calendar changed (with --publish)")


def calendar(args: argparse.Namespace) -> int:
    """Print the Vietnamese working calendar of a year: days off and make-up working days."""
    from agreements.calendar import load_calendar, render_year

    year: int = args.year
    if not 2001 <= year <= 2099:
        raise CommandError(f"year {year} is outside 2001..2099")
    try:
        working = load_calendar(range(year - 1, year + 7))
    except LoadError as error:
        for problem in error.problems:
            print(problem)
        return EXIT_FAILED
    print(render_year(working, year, args.lang))
    if args.publish:
        return run_engine_command(_publish(working, args.note))
    return 0


async def _publish(working: WorkingCalendar, note: str) -> int:
    from accord.calendars import publish_calendar

    client = await connect(load_settings())
    published = await publish_calendar(client, working, note)
    print(
        f"published to {published.tasks} running tasks due in {working.first_year}–"
        f"{working.last_year} and {published.agreements} running agreements"
    )
    if published.outside:
        print(
            f"{published.outside} running tasks due outside {working.first_year}–"
            f"{working.last_year} (or without a date) keep their calendar"
        )
    if published.closed_meanwhile:
        print(f"{published.closed_meanwhile} workflows had closed meanwhile (nothing to tell)")
    return 0


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
    agency: str
    obligation: str
    period: str
    state: str
    due_at: datetime | None
    escalation_level: int
    closed: bool

    @classmethod
    def from_execution(cls, execution: WorkflowExecution) -> TaskListing:
        attributes = execution.typed_search_attributes
        return cls(
            task_id=execution.id.removeprefix(TASK_PREFIX),
            agreement=attributes.get(SA_AGREEMENT) or "",
            agency=attributes.get(SA_AGENCY) or "",
            obligation=attributes.get(SA_OBLIGATION) or "",
            period=attributes.get(SA_PERIOD) or "",
            state=attributes.get(SA_STATE) or "",
            due_at=attributes.get(SA_DUE_AT),
            escalation_level=attributes.get(SA_ESCALATION_LEVEL) or 0,
            closed=execution.status is not WorkflowExecutionStatus.RUNNING,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "task": self.task_id,
            "agreement": self.agreement,
            "agency": self.agency,
            "obligation": self.obligation,
            "period": self.period,
            "state": self.state,
            "state_label": state_label(self.state),
            "due_at": self.due_at.astimezone(LOCAL_ZONE).isoformat() if self.due_at else None,
            "escalation_level": self.escalation_level,
            "closed": self.closed,
        }

    def as_row(self) -> list[str]:
        label = state_label(self.state) + (" (đã đóng)" if self.closed else "")
        return [
            self.task_id,
            self.agency,
            self.period,
            label,
            local_due_text(self.due_at),
            str(self.escalation_level),
        ]


def status_query(agreement: str | None, agency: str | None, state: str | None) -> str:
    """The visibility query; the values were checked against safe patterns by argparse."""
    clauses = [f"{SA_KIND.name} = 'task'"]
    for key, value in ((SA_AGREEMENT, agreement), (SA_AGENCY, agency), (SA_STATE, state)):
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
    query = status_query(args.agreement, args.agency, args.state)
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
# accord submit, extend, decide, waive: updates of one task, on behalf of one officer


def add_task_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "task", type=_task_id, metavar="TASK", help="task ID, as `accord status` lists it"
    )


def add_officer_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--as",
        dest="officer",
        required=True,
        metavar="OFFICER_ID",
        help="the officer acting, by ID in the agency directory; the engine checks the rules",
    )


def add_submit_arguments(parser: argparse.ArgumentParser) -> None:
    add_task_arguments(parser)
    parser.add_argument(
        "--file",
        type=Path,
        required=True,
        metavar="REPORT.yaml",
        help=(
            "the report: summary: (text), indicators: (code: number | {done, total} | "
            "{category: number} | text), attachments: (list of file names or links)"
        ),
    )
    add_officer_argument(parser)


def add_extend_arguments(parser: argparse.ArgumentParser) -> None:
    add_task_arguments(parser)
    parser.add_argument(
        "--until",
        type=_iso_date,
        required=True,
        metavar="YYYY-MM-DD",
        help="the new deadline: due before this day (as `before:` in agreement files)",
    )
    parser.add_argument("--reason", required=True, help="why the extension is needed")
    add_officer_argument(parser)


def add_decide_arguments(parser: argparse.ArgumentParser) -> None:
    add_task_arguments(parser)
    parser.add_argument(
        "verdict", choices=["approve", "reject"], help="the decision on the pending request"
    )
    parser.add_argument("--note", help="a note for the agency")
    add_officer_argument(parser)


def add_waive_arguments(parser: argparse.ArgumentParser) -> None:
    add_task_arguments(parser)
    parser.add_argument("--reason", required=True, help="why the task is waived")
    add_officer_argument(parser)


def submit(args: argparse.Namespace) -> int:
    """Submit a report; the task closes, done on time or late."""
    from workflows.obligation import ObligationWorkflow

    settings = load_settings()
    report = load_report(args.file)
    payload = report.payload(find_actor(settings, args.officer))
    return run_engine_command(
        send_update(settings, args.task, ObligationWorkflow.submit_report, payload)
    )


def extend(args: argparse.Namespace) -> int:
    """Ask for a later deadline; the aggregator (or an admin) decides."""
    from workflows.obligation import ObligationWorkflow

    settings = load_settings()
    actor = find_actor(settings, args.officer)
    payload = checked(ExtensionRequest, actor=actor, new_due=args.until, reason=args.reason)

    return run_engine_command(
        send_update(settings, args.task, ObligationWorkflow.request_extension, payload)
    )


def decide(args: argparse.Namespace) -> int:
    """Approve or reject the pending extension request."""
    from workflows.obligation import ObligationWorkflow

    settings = load_settings()
    actor = find_actor(settings, args.officer)
    payload = checked(
        ExtensionDecision, actor=actor, approve=args.verdict == "approve", note=args.note
    )

    return run_engine_command(
        send_update(settings, args.task, ObligationWorkflow.decide_extension, payload)
    )


def waive(args: argparse.Namespace) -> int:
    """Release an agency from a task (admins only)."""
    from workflows.obligation import ObligationWorkflow

    settings = load_settings()
    actor = find_actor(settings, args.officer)
    payload = checked(Waiver, actor=actor, reason=args.reason)

    return run_engine_command(send_update(settings, args.task, ObligationWorkflow.waive, payload))


def find_actor(settings: Settings, officer_id: str) -> Actor:
    """The officer as the directory in the database knows them (deploying loads it)."""
    import worker
    from accord import db

    with worker.open_database(settings)() as session:
        officer = db.get_officer(session, officer_id=officer_id)
    if officer is None:
        raise CommandError(
            f"unknown officer {officer_id!r}: no such ID in the agency directory of any "
            "deployed agreement",
            EXIT_BAD_INPUT,
        )
    if not officer.active:
        raise CommandError(
            f"officer {officer_id!r} is no longer in the agency directory", EXIT_BAD_INPUT
        )
    return Actor(
        officer_id=officer.id,
        agency=officer.agency_code,
        roles=[OfficerRole(role) for role in officer.roles],
    )


P = TypeVar("P", bound=BaseModel)


def checked(model: type[P], **fields: Any) -> P:
    try:
        return model(**fields)
    except ValidationError as error:
        problems = "; ".join(
            f"--{e['loc'][0]}: {e['msg']}" if e["loc"] else e["msg"]
            for e in error.errors(include_url=False)
        )
        raise CommandError(problems, EXIT_BAD_INPUT) from error


async def send_update(
    settings: Settings,
    task_id: str,
    update: UpdateMethodMultiParam[[ObligationWorkflow, P], UpdateResult],
    payload: P,
) -> int:
    """Run one update of a task's workflow and print its outcome. A refusal by the workflow's
    validator names the rule that was broken."""
    client = await connect(settings)
    try:
        result = await _run_update(client, settings, task_id, update, payload)
    except WorkflowUpdateFailedError as error:
        word = "refused" if settings.locale == "en" else "bị từ chối"
        raise CommandError(f"{task_id}: {word}: {refusal_text(error, settings.locale)}") from error
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise CommandError(await _missing_task(client, task_id)) from error
        raise
    if result is None:
        print(
            f"{task_id}: accepted, still being processed (a notification may be waiting for "
            "the mail server); `accord status` shows the outcome"
        )
        return 0
    due = local_due_text(result.due_at, settings.locale)
    if settings.locale == "en":
        deadline = f"due {due}" if result.due_at else due
        message, label = result.message_en or result.message, STATE_LABELS_EN[result.state]
    else:
        deadline = f"hạn {due}" if result.due_at else due
        message, label = result.message, STATE_LABELS_VI[result.state]
    print(f"{message}: {result.task_id} — {label}, {deadline}")
    return 0


def refusal_text(error: WorkflowUpdateFailedError, locale: str) -> str:
    """Why the workflow refused an update, in the reader's language when the rule gave both
    (see `workflows.payloads.refusal`); a malformed payload's English field list otherwise."""
    cause = error.cause
    if not isinstance(cause, FailureError):
        return str(error)
    if isinstance(cause, ApplicationError) and cause.type == REFUSED and cause.details:
        texts = cause.details[0]
        if isinstance(texts, dict) and isinstance(texts.get(locale), str):
            return str(texts[locale])
    return cause.message


async def _run_update(
    client: Client,
    settings: Settings,
    task_id: str,
    update: UpdateMethodMultiParam[[ObligationWorkflow, P], UpdateResult],
    payload: P,
) -> UpdateResult | None:
    """The update's result, or None if it was accepted but has not finished in time."""
    from workflows.obligation import ObligationWorkflow

    handle = client.get_workflow_handle_for(ObligationWorkflow.run, task_workflow_id(task_id))
    try:
        started = await asyncio.wait_for(
            handle.start_update(update, payload, wait_for_stage=WorkflowUpdateStage.ACCEPTED),
            ACCEPT_TIMEOUT,
        )
    except TimeoutError:
        raise CommandError(
            f"{task_id}: no Accord worker answered within {ACCEPT_TIMEOUT:.0f} s (task queue "
            f"{settings.temporal.task_queue!r}); is `accord run` running?"
        ) from None
    try:
        return await asyncio.wait_for(started.result(), RESULT_TIMEOUT)
    except TimeoutError:
        return None


async def _missing_task(client: Client, task_id: str) -> str:
    try:
        description = await client.get_workflow_handle(task_workflow_id(task_id)).describe()
    except RPCError:
        return (
            f"no task {task_id!r}: check the ID with `accord status` (a task appears some days "
            "before its first reminder)"
        )
    state = description.typed_search_attributes.get(SA_STATE)
    return f"task {task_id!r} is closed ({state_label(state)}); it takes no more requests"


# --------------------------------------------------------------------------------------------
# Report files (accord submit)


@dataclass(frozen=True)
class ReportFile:
    path: Path
    summary: str
    indicators: dict[str, IndicatorValue]
    attachments: list[str]
    describe: Callable[[tuple[str | int, ...], str], str]
    """`FILE:LINE:COL: field: message` for a problem at a location in the file."""

    def payload(self, actor: Actor) -> SubmitReport:
        try:
            return SubmitReport(
                actor=actor,
                summary=self.summary,
                indicators=self.indicators,
                attachments=self.attachments,
                # On time or late is judged by when the officer sent it, not by when a worker
                # got to it (the workflow bounds how far back it believes this clock).
                sent_at=datetime.now(UTC),
            )
        except ValidationError as error:
            problems = [
                self.describe(tuple(e["loc"]), e["msg"]) for e in error.errors(include_url=False)
            ]
            raise CommandError("\n".join(problems), EXIT_BAD_INPUT) from error


REPORT_KEYS = ("summary", "indicators", "attachments")


def load_report(path: Path) -> ReportFile:
    """Read a report file with the agreement loader's YAML safety (no tags, no alias bombs,
    size limit); every problem names the file, line and column."""
    text, problem = read_text(path)
    if problem is not None:
        raise CommandError(str(problem), EXIT_BAD_INPUT)
    assert text is not None
    doc = parse_yaml(text, str(path))
    problems = [str(p) for p in doc.problems]
    if not problems and not isinstance(doc.data, dict):
        problems.append(f"{path}:1:1: a report is a mapping with {', '.join(REPORT_KEYS)}")
    if problems:
        raise CommandError("\n".join(problems), EXIT_BAD_INPUT)
    data: dict[str, Any] = doc.data

    def at(loc: tuple[str | int, ...], message: str, at_key: bool = False) -> str:
        return str(doc.problem(loc, message, at_key=at_key))

    for key in data:
        if key not in REPORT_KEYS:
            problems.append(
                at(
                    (key,),
                    f"unknown key {key!r}; a report has {', '.join(REPORT_KEYS)}",
                    at_key=True,
                )
            )
    summary = data.get("summary")
    if not isinstance(summary, str):
        problems.append(at(("summary",), "required: the report's text"))
    raw_indicators = data.get("indicators") or {}
    indicators: dict[str, IndicatorValue] = {}
    if not isinstance(raw_indicators, dict):
        problems.append(at(("indicators",), "must map indicator codes to values"))
    else:
        for code, raw in raw_indicators.items():
            value = _indicator_value(raw)
            if value is None:
                problems.append(
                    at(
                        ("indicators", code),
                        "expected a whole number, {done, total}, {category: number} or text",
                    )
                )
            else:
                indicators[code] = value
    raw_attachments = data.get("attachments") or []
    attachments: list[str] = []
    if not isinstance(raw_attachments, list):
        problems.append(at(("attachments",), "must be a list of file names or links"))
    else:
        for index, item in enumerate(raw_attachments):
            if isinstance(item, str) and item.strip():
                attachments.append(item)
            else:
                problems.append(at(("attachments", index), "must be a file name or link"))
    if problems:
        raise CommandError("\n".join(problems), EXIT_BAD_INPUT)
    assert isinstance(summary, str)
    return ReportFile(
        path=path,
        summary=summary,
        indicators=indicators,
        attachments=attachments,
        describe=at,
    )


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _indicator_value(value: object) -> IndicatorValue | None:
    """The shapes a report's figure can take; whether it fits the indicator's kind is for the
    workflow to judge, which knows the obligation."""
    if isinstance(value, bool):  # YAML's yes/no: not a count
        return None
    if isinstance(value, int | str):
        return value
    if not isinstance(value, dict) or not all(_whole(v) for v in value.values()):
        return None
    if set(value) == {"done", "total"} and value["done"] >= 0 and value["total"] >= 0:
        return Ratio(done=value["done"], total=value["total"])
    return {str(category): count for category, count in value.items()}


# --------------------------------------------------------------------------------------------
# accord simulate


def _scripted_submission(text: str) -> ScriptedSubmission:
    from accord.simulate import ScriptedSubmission

    try:
        return ScriptedSubmission.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, metavar="PATH", help="the agreement file")
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per mail, then a summary object, instead of the table",
    )
    parser.add_argument(
        "--submit",
        type=_scripted_submission,
        action="append",
        default=[],
        metavar="GLOB@YYYY-MM-DD",
        help=(
            "pretend the tasks matching GLOB (task IDs, e.g. '289-kh-ubnd-2025/*') submit "
            "their report at 09:00 on that day; repeatable"
        ),
    )


def simulate(args: argparse.Namespace) -> int:
    """Run the agreement from start to end on Temporal's time-skipping test server, with the
    real workflows, and print every mail it would send."""
    from accord.embedded import EmbeddedError
    from accord.simulate import simulate as run_simulation

    try:
        loaded = load_agreement(args.path)
    except LoadError as error:
        for problem in error.problems:
            print(problem)
        return EXIT_FAILED
    use_cli_runtime()
    try:
        report = asyncio.run(run_simulation(loaded, submissions=args.submit))
    except EmbeddedError as error:
        raise CommandError(str(error)) from error
    if args.json:
        for mail in report.mails:
            print(json.dumps(mail.as_json(), ensure_ascii=False))
        print(json.dumps(report.summary_json(), ensure_ascii=False))
        return 0
    print_table(
        ["Lúc", "Loại", "Nhiệm vụ", "Gửi đến", "Tiêu đề"],
        [
            [f"{m.at:%d/%m/%Y %H:%M}", m.kind, m.task, ", ".join(m.to), m.subject]
            for m in report.mails
        ],
    )
    summary = report.summary_json()["summary"]
    kinds = ", ".join(f"{kind} {n}" for kind, n in summary["by_kind"].items())
    states = "; ".join(
        f"{n} {state_label(state)}" for state, n in summary["task_states"].items() if n
    )
    print(
        f"{summary['messages']} messages ({kinds or 'none'}) for {summary['tasks']} tasks; "
        f"end states: {states}"
    )
    if report.shift_years:
        print(
            f"(run {report.shift_years} years later on the test server, as weekdays repeat; "
            "dates are shown as in the agreement)"
        )
    for warning in report.warnings:
        print(f"warning: {warning}")
    return 0


# --------------------------------------------------------------------------------------------
# accord plan


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, metavar="PATH", help="the agreement file")
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per mail, then a summary object, instead of the table",
    )
    parser.add_argument(
        "--submit",
        type=_scripted_submission,
        action="append",
        default=[],
        metavar="GLOB@YYYY-MM-DD",
        help=(
            "pretend the tasks matching GLOB (task IDs, e.g. '289-kh-ubnd-2025/*') submit "
            "their report at 09:00 on that day; repeatable"
        ),
    )


def plan(args: argparse.Namespace) -> int:
    """Work out every mail the agreement will send with the planner alone (no server), in
    the same lines as `accord simulate`."""
    from accord.plan import plan as run_plan

    try:
        loaded = load_agreement(args.path)
    except LoadError as error:
        for problem in error.problems:
            print(problem)
        return EXIT_FAILED
    report = run_plan(loaded, submissions=args.submit)
    if args.json:
        for mail in report.mails:
            print(json.dumps(mail.as_json(), ensure_ascii=False))
        print(json.dumps(report.summary_json(), ensure_ascii=False))
        return 0
    print_table(
        ["Lúc", "Loại", "Nhiệm vụ", "Gửi đến", "Tiêu đề"],
        [
            [f"{m.at:%d/%m/%Y %H:%M}", m.kind, m.task, ", ".join(m.to), m.subject]
            for m in report.mails
        ],
    )
    summary = report.summary_json()["summary"]
    kinds = ", ".join(f"{kind} {n}" for kind, n in summary["by_kind"].items())
    states = "; ".join(
        f"{n} {state_label(state)}" for state, n in summary["task_states"].items() if n
    )
    print(
        f"{summary['messages']} messages ({kinds or 'none'}) for {summary['tasks']} tasks; "
        f"end states: {states}"
    )
    for warning in report.warnings:
        print(f"warning: {warning}")
    return 0


# --------------------------------------------------------------------------------------------
# Registration


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS = (
    Command(
        "validate",
        "check agreement files and the directories they name; exit 1 if any has problems",
        add_validate_arguments,
        validate,
    ),
    Command(
        "schema",
        "print the JSON Schema of agreement (or directory) files",
        add_schema_arguments,
        schema,
    ),
    Command(
        "run",
        "run Accord: Temporal (embedded unless configured), mail, the worker and every "
        "agreement in the agreements folder, until Ctrl+C",
        add_run_arguments,
        run_service,
    ),
    Command(
        "deploy",
        "start the workflows of agreement files; deploying again changes nothing; exit 1 if "
        "any file is invalid",
        add_deploy_arguments,
        deploy,
    ),
    Command(
        "status",
        "list tasks with their state, deadline and escalation level (from Temporal's search "
        "attributes)",
        add_status_arguments,
        status,
    ),
    Command(
        "submit",
        "submit a task's report on behalf of an officer",
        add_submit_arguments,
        submit,
    ),
    Command(
        "extend",
        "ask for a later deadline for a task on behalf of an officer",
        add_extend_arguments,
        extend,
    ),
    Command(
        "decide",
        "approve or reject a task's pending extension request (aggregator or admin)",
        add_decide_arguments,
        decide,
    ),
    Command(
        "waive",
        "release an agency from a task (admin)",
        add_waive_arguments,
        waive,
    ),
    Command(
        "calendar",
        "print a year's working calendar (holidays, make-up working days); --publish sends it "
        "to running workflows",
        add_calendar_arguments,
        calendar,
    ),
    Command(
        "simulate",
        "preview every mail an agreement will send, start to end, on a time-skipping server",
        add_simulate_arguments,
        simulate,
    ),
    Command(
        "plan",
        "list every mail an agreement will send, start to end, worked out without a server "
        "(the same lines as simulate)",
        add_plan_arguments,
        plan,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accord", description="Accord: deadlines of inter-agency coordination agreements."
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run, command_name=command.name)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except CommandError as error:
        print(f"accord {args.command_name}: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`accord validate agreements | head`): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
