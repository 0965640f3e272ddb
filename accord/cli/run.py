"""`accord run [--demo]`: the whole service in one process, until Ctrl+C or SIGTERM.

A thin shell over `accord.service.serve`: what runs is the service's business, how the worker is
composed `worker.py`'s. It composes nothing itself: no settings beyond loading them, no client,
no worker.
"""

from __future__ import annotations

import argparse
import asyncio

from accord.cli.engine import (
    EXIT_BAD_INPUT,
    CommandError,
    load_settings,
)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--demo",
        action="store_true",
        help="also start a demo agreement whose deadlines are a few minutes away",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the task queue (the servers and the portal run once)",
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
    from accord.embedded import EmbeddedError
    from accord.service import serve
    from activities.templates import MailTemplateError
    from infra.claim_keys import ClaimKeyError
    from infra.db import DatabaseUnavailable
    from infra.observe import MonitorError
    from worker import TemporalUnreachable, setup_process

    settings = load_settings()
    if not 1 <= args.workers <= 32:
        raise CommandError("--workers: give a number from 1 to 32", EXIT_BAD_INPUT)
    sdk_address = setup_process(settings)
    try:
        asyncio.run(
            serve(
                settings,
                demo=args.demo,
                deploy=args.deploy,
                sdk_address=sdk_address,
                workers=args.workers,
            )
        )
    except EmbeddedError as error:
        raise CommandError(str(error)) from error
    except ClaimKeyError as error:
        raise CommandError(str(error), EXIT_BAD_INPUT) from error
    except MailTemplateError as error:
        raise CommandError(f"mail template: {error}", EXIT_BAD_INPUT) from error
    except (DatabaseUnavailable, MonitorError, TemporalUnreachable) as error:
        raise CommandError(str(error)) from None
    return 0
