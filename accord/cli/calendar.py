"""`accord calendar YEAR [--publish]`: print Vietnam's working calendar, and send it to the
running workflows.

Building the calendar is the domain's (`agreements.calendar`); publishing it is
`accord.calendars`. This module parses the arguments and prints.

It does not compute the calendar or tell workflows anything itself.
"""

from __future__ import annotations

import argparse

from accord.cli.engine import (
    EXIT_FAILED,
    CommandError,
    connect,
    load_settings,
    operator_credential,
    run_engine_command,
)
from accord.identity import Credential
from agreements.calendar import WorkingCalendar
from agreements.loader import (
    LoadError,
)
from infra.settings import Settings


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
    settings = load_settings() if args.publish else None
    if settings is not None:
        # Before printing: publishing needs the operator's credential, and is recorded as his.
        credential = operator_credential(settings)
    print(render_year(working, year, args.lang))
    if settings is not None:
        return run_engine_command(_publish(settings, working, args.note, credential))
    return 0


async def _publish(
    settings: Settings, working: WorkingCalendar, note: str, credential: Credential
) -> int:
    from accord.calendars import publish_calendar

    client = await connect(settings)
    published = await publish_calendar(client, working, note, credential)
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
    for refused in published.refused:
        print(f"refused by {refused}")
    return 0
