"""The table of `accord` commands, the argument parser, and `main`.

Each command is one function taking the parsed arguments and returning the exit code, with
one function declaring its arguments, both in the module of its group (see the package's
opening comment); `COMMANDS` registers them by name. To add a command, write those two
functions and add a line here. A command's module is imported only when that command runs
(`accord plan` must not pay for the Temporal client and the database other commands import).

Commands that talk to the engine take every setting from `ACCORD_*` variables (see
infra/settings.py). Expected failures (server unreachable, unknown officer, a refused
request) print one message instead of a traceback: exit 1 when the action failed, 2 when the
input was wrong (`CommandError`). No command's work is done here.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from accord.cli.errors import EXIT_FAILED, CommandError


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    module: str
    """The command group's module in this package, `agreements` for `accord.cli.agreements`:
    imported only when this command runs, so that `accord plan` does not pay for the Temporal
    client and the database that other commands need."""
    add_arguments: str
    run: str

    def function(self, name: str) -> Callable[..., Any]:
        function: Callable[..., Any] = getattr(
            importlib.import_module(f"accord.cli.{self.module}"), name
        )
        return function


COMMANDS = (
    Command(
        "validate",
        "check agreement files and the directories they name; exit 1 if any has problems",
        "agreements",
        "add_validate_arguments",
        "validate",
    ),
    Command(
        "schema",
        "print the JSON Schema of agreement (or directory) files",
        "agreements",
        "add_schema_arguments",
        "schema",
    ),
    Command(
        "run",
        "run Accord: Temporal (embedded unless configured), mail, the worker and every "
        "agreement in the agreements folder, until Ctrl+C",
        "run",
        "add_run_arguments",
        "run_service",
    ),
    Command(
        "replay",
        "replay exported workflow histories against this code (before upgrading workers); "
        "exit 1 if any would replay differently",
        "replay",
        "add_replay_arguments",
        "replay",
    ),
    Command(
        "portal",
        "serve the officer portal alone (production, behind a reverse proxy); `accord portal "
        "revoke OFFICER --tenant T` revokes an officer's links and sessions",
        "portal",
        "add_portal_arguments",
        "portal",
    ),
    Command(
        "deploy",
        "start the workflows of agreement files; deploying again changes nothing; exit 1 if "
        "any file is invalid",
        "deployment",
        "add_deploy_arguments",
        "deploy",
    ),
    Command(
        "status",
        "list tasks with their state, deadline and escalation level (from Temporal's search "
        "attributes)",
        "deployment",
        "add_status_arguments",
        "status",
    ),
    Command(
        "report",
        "the consolidated report of an agreement (or one period): compliance, indicators "
        "summed, missing reports, summaries; md, json, xlsx or docx",
        "report",
        "add_report_arguments",
        "report",
    ),
    Command(
        "submit",
        "submit a task's report on behalf of an officer",
        "tasks",
        "add_submit_arguments",
        "submit",
    ),
    Command(
        "extend",
        "ask for a later deadline for a task on behalf of an officer",
        "tasks",
        "add_extend_arguments",
        "extend",
    ),
    Command(
        "decide",
        "approve or reject a task's pending extension request (aggregator or admin)",
        "tasks",
        "add_decide_arguments",
        "decide",
    ),
    Command(
        "waive",
        "release an agency from a task (admin)",
        "tasks",
        "add_waive_arguments",
        "waive",
    ),
    Command(
        "event",
        "record that an event happened (admin): starts the tasks of the obligations due some "
        "days after it",
        "events",
        "add_event_arguments",
        "event",
    ),
    Command(
        "amend",
        "preview an amendment of a running agreement (a new version of its file), then apply "
        "it once confirmed (admin); applying it again changes nothing",
        "changes",
        "add_amend_arguments",
        "amend",
    ),
    Command(
        "suspend",
        "suspend a running agreement, one item or one obligation: no reminders or escalations "
        "until resumed (admin)",
        "changes",
        "add_suspend_arguments",
        "suspend",
    ),
    Command(
        "resume",
        "lift a suspension; deadlines move by the suspended time or stay (admin)",
        "changes",
        "add_resume_arguments",
        "resume",
    ),
    Command(
        "succession",
        "show or apply a succession file (agency A succeeded by C from a day): the directory "
        "in the database, then every running agreement of the tenant (admin)",
        "succession",
        "add_succession_arguments",
        "succession",
    ),
    Command(
        "calendar",
        "print a year's working calendar (holidays, make-up working days); --publish sends it "
        "to running workflows",
        "calendar",
        "add_calendar_arguments",
        "calendar",
    ),
    Command(
        "db",
        "the database's schema: `upgrade` migrates it to this version's (the deploy step), "
        "`current` prints its revision",
        "database",
        "add_db_arguments",
        "db",
    ),
    Command(
        "search-attributes",
        "Accord's search attributes on a cluster's namespace: `check` lists the missing ones, "
        "`register` adds them (once per namespace, before the first deploy)",
        "search_attributes",
        "add_search_attributes_arguments",
        "search_attributes",
    ),
    Command(
        "retention",
        "`purge` blanks mail bodies and personal data in reports older than the retention age, "
        "keeping counts, dates and the audit chain",
        "retention",
        "add_retention_arguments",
        "retention",
    ),
    Command(
        "audit",
        "check the audit trail's hash chains (verify) or print its entries (list)",
        "audit",
        "add_audit_arguments",
        "audit",
    ),
    Command(
        "simulate",
        "preview every mail an agreement will send, start to end, on a time-skipping server",
        "simulate",
        "add_simulate_arguments",
        "simulate",
    ),
    Command(
        "plan",
        "list every mail an agreement will send, start to end, worked out without a server "
        "(the same lines as simulate)",
        "plan",
        "add_plan_arguments",
        "plan",
    ),
)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; with `only`, of that command alone (the others listed by
    name and help, their modules not imported)."""
    parser = argparse.ArgumentParser(
        prog="accord", description="Accord: deadlines of inter-agency coordination agreements."
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        if only is None or command.name == only:
            command.function(command.add_arguments)(sub)
            sub.set_defaults(run=command.function(command.run), command_name=command.name)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # The command is the first word that is not an option (`accord` itself has only --help).
    only = next((word for word in argv if not word.startswith("-")), "")
    args = build_parser(only).parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.run
    try:
        return command(args)
    except CommandError as error:
        print(f"accord {args.command_name}: {error}", file=sys.stderr)
        return error.code
    except Exception as error:
        if not _outdated_database(error):
            raise
        # A data folder of an earlier version: one line that says what to do.
        print(f"accord {args.command_name}: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`accord validate agreements | head`): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _outdated_database(error: Exception) -> bool:
    """Whether `error` is `infra.db.OutdatedDatabase`, without importing the database layer
    (the commands that read files only never load it, so it cannot have raised there)."""
    db = sys.modules.get("infra.db")
    return db is not None and isinstance(error, db.OutdatedDatabase)


def console_main() -> NoReturn:
    """The `accord` console script and `python -m accord.cli`: `main()`, then an immediate exit.

    A process that used a Temporal client can abort in interpreter teardown, after printing
    its result, when the SDK's Rust threads call into a finalizing Python
    (temporalio/sdk-python#300): `Fatal Python error: PyGILState_Release`, exit 134. Once the
    command is done there is nothing left to tear down, so flush and leave with `os._exit`,
    keeping the command's own exit code. Tests call `main()`, which returns it.
    """
    try:
        code = main()
    except SystemExit as exit_request:  # argparse: usage errors (2) and --help (0)
        code = _exit_status(exit_request.code)
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # the reader went away, or the stream is closed
            code = code or 1
    logging.shutdown()
    os._exit(code)


def _exit_status(status: object) -> int:
    """The exit status Python would give `raise SystemExit(status)`."""
    if status is None:
        return 0
    if isinstance(status, int):
        return status
    print(status, file=sys.stderr)
    return 1
