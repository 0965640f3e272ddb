"""`accord replay HISTORY.json...`: replay exported workflow histories against this code, before
a worker running it is started (the runbook's safe upgrade).

Export a history with `temporal workflow show --workflow-id ID --output json > ID.json` (or the
Web UI's *Download*). A history this code would replay differently (a change to workflow logic
without `workflow.patched`) is named with the reason and makes the command exit 1; nothing is
sent to any server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
from pathlib import Path

from accord.cli.engine import EXIT_BAD_INPUT, EXIT_FAILED, CommandError, use_cli_runtime


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "histories", nargs="+", type=Path, metavar="HISTORY.json", help="exported histories"
    )


def replay(args: argparse.Namespace) -> int:
    use_cli_runtime()
    # The SDK logs each failing workflow task with its stack; the verdict below says it once.
    logging.getLogger("temporalio").setLevel(logging.CRITICAL)
    return asyncio.run(_replay(args.histories))


async def _replay(paths: list[Path]) -> int:
    from temporalio.client import WorkflowHistory
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Replayer

    import worker

    histories = []
    for path in paths:
        try:
            histories.append(WorkflowHistory.from_json(path.stem, path.read_text("utf-8")))
        except OSError as error:
            raise CommandError(f"{path}: {error.strerror}", EXIT_BAD_INPUT) from None
        except (ValueError, json.JSONDecodeError, KeyError) as error:
            raise CommandError(
                f"{path}: not a workflow history in JSON ({error})", EXIT_BAD_INPUT
            ) from None
    replayer = Replayer(workflows=list(worker.WORKFLOWS), data_converter=pydantic_data_converter)
    failed = 0
    for path, history in zip(paths, histories, strict=True):
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is None:
            print(f"{path}: replays")
        else:
            failed += 1
            text = str(result.replay_failure)
            found = re.search(r'message: "([^"]+)"', text)
            reason = found.group(1) if found else text.splitlines()[0]
            print(f"{path}: does NOT replay: {reason}")
    print(f"{len(paths) - failed} of {len(paths)} histories replay")
    return EXIT_FAILED if failed else 0
