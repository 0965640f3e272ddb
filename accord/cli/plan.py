"""`accord plan PATH`: the mails `accord simulate` lists, worked out without a server.

The work is `accord.plan` (the planner over every task, the directory's officers, the mail
templates' subjects); this module parses the arguments and prints what `simulate` prints, with
the same listing. It never touches a running engine, a database or a mail server.
"""

from __future__ import annotations

import argparse

from accord.cli.engine import EXIT_FAILED
from accord.cli.simulate import add_listing_arguments, print_report
from agreements.loader import LoadError, load_agreement


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    add_listing_arguments(parser)
    parser.add_argument(
        "--event",
        type=_previewed_event,
        action="append",
        default=[],
        metavar="EVENT=YYYY-MM-DD[:LABEL]",
        help=(
            "plan the obligations waiting for EVENT as if it were recorded on that day "
            "(`accord event record`); repeatable"
        ),
    )


def _previewed_event(text: str) -> object:
    from accord.plan import PreviewedEvent

    try:
        return PreviewedEvent.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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
    report = run_plan(loaded, submissions=args.submit, events=args.event)
    print_report(report, loaded, as_json=args.json, by=args.by)
    if not args.json:
        for line in report.awaiting:
            print(f"no task yet: {line}")
    return 0
