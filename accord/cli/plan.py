"""`accord plan PATH`: the mails `accord simulate` lists, worked out without a server.

The work is `accord.plan` (the planner over every task, the directory's officers, the mail
templates' subjects); this module parses the arguments and prints what `simulate` prints, with
the same listing. It never touches a running engine, a database or a mail server.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from accord.cli.engine import EXIT_FAILED
from accord.cli.simulate import print_report, scripted_submission
from agreements.loader import LoadError, load_agreement


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, metavar="PATH", help="the agreement file")
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per mail, then a summary object, instead of the listing",
    )
    parser.add_argument(
        "--by",
        choices=("date", "agency"),
        default="date",
        help="group the listing by day (the agency on each line) or by agency (date)",
    )
    parser.add_argument(
        "--submit",
        type=scripted_submission,
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
    print_report(report, loaded, as_json=args.json, by=args.by)
    return 0
