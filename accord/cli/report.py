"""`accord report AGREEMENT [--period P] [--format md|xlsx|docx|json] [--out FILE]`.

The consolidated report (tổng hợp) of a deployed agreement: the agreement workflow's `facts`
query (its tasks as the engine knows them now), the stored submissions, waivers and approved
extensions (`activities.reporting`), the figures from `reports.consolidate`, rendered. Markdown
and JSON go to standard output unless `--out` names a file; XLSX and DOCX need `--out`. It
only reads: no operator credential is needed, and nothing is started, signalled or written
but the output file.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

from temporalio.client import WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.service import RPCError, RPCStatusCode

from accord.cli.engine import (
    EXIT_BAD_INPUT,
    QUERY_TIMEOUT,
    CommandError,
    connect,
    load_settings,
    open_database,
    run_engine_command,
)

if TYPE_CHECKING:
    from reports.model import ConsolidatedReport

FORMATS = ("md", "xlsx", "docx", "json")
BINARY_FORMATS = ("xlsx", "docx")
_AGREEMENT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("agreement", metavar="AGREEMENT", help="the agreement's ID")
    parser.add_argument(
        "--period",
        metavar="P",
        help="one reporting period's label, e.g. 2025-6t (default: the whole agreement)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="md",
        help="md (default) or json to standard output or --out; xlsx and docx need --out",
    )
    parser.add_argument("--out", metavar="FILE", type=Path, help="write the report to FILE")


def report(args: argparse.Namespace) -> int:
    """Print or write the agreement's consolidated report."""
    settings = load_settings()
    en = settings.locale == "en"
    if args.format in BINARY_FORMATS and args.out is None:
        raise CommandError(
            f"--format {args.format} writes a file: give it with --out FILE"
            if en
            else f"--format {args.format} ghi ra tệp: hãy chỉ định tệp bằng --out TỆP",
            EXIT_BAD_INPUT,
        )
    if not _AGREEMENT_ID.fullmatch(args.agreement):
        raise CommandError(
            f"{args.agreement!r} is not an agreement ID"
            if en
            else f"{args.agreement!r} không phải là mã văn bản (agreement ID)",
            EXIT_BAD_INPUT,
        )
    return run_engine_command(_report(args))


async def _report(args: argparse.Namespace) -> int:
    settings = load_settings()
    en = settings.locale == "en"
    locale = settings.locale
    consolidated = await _consolidated(args)
    output: bytes
    if args.format == "json":
        output = (consolidated.model_dump_json(indent=2) + "\n").encode()
    elif args.format == "md":
        from reports.markdown import render_markdown

        output = render_markdown(consolidated, locale).encode()
    elif args.format == "xlsx":
        from reports.xlsx import workbook_bytes

        output = workbook_bytes(consolidated, locale)
    else:
        from reports.docx import document_bytes

        output = document_bytes(consolidated, locale)
    if args.out is None:
        import sys

        sys.stdout.buffer.write(output)
        sys.stdout.flush()
        return 0
    try:
        args.out.write_bytes(output)
    except OSError as error:
        raise CommandError(
            f"cannot write {args.out}: {error.strerror}"
            if en
            else f"không ghi được {args.out}: {error.strerror}"
        ) from None
    print(f"report written to {args.out}" if en else f"Đã ghi báo cáo vào {args.out}")
    return 0


async def _consolidated(args: argparse.Namespace) -> ConsolidatedReport:
    from accord.reporting import agreement_facts
    from activities.reporting import report_inputs
    from reports.consolidate import UnknownPeriod, consolidate

    settings = load_settings()
    en = settings.locale == "en"
    client = await connect(settings)
    try:
        facts = await agreement_facts(client, args.agreement, rpc_timeout=QUERY_TIMEOUT)
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise CommandError(
                f"no agreement {args.agreement!r} is deployed: check its ID with `accord status`"
                if en
                else f"không có văn bản {args.agreement!r} nào đã triển khai: kiểm tra mã bằng "
                "`accord status`"
            ) from None
        raise
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as error:
        raise CommandError(
            f"the agreement {args.agreement!r} did not answer: {error}"
            if en
            else f"văn bản {args.agreement!r} không trả lời: {error}"
        ) from None
    # The database after the engine: an unknown agreement is said before a missing database.
    sessions = open_database(settings)
    with sessions() as session:
        inputs = report_inputs(session, facts)
    try:
        return consolidate(inputs, period=args.period)
    except UnknownPeriod as error:
        message = (
            str(error)
            if en
            else f"không có kỳ báo cáo {error.period!r}; các kỳ của văn bản: "
            + (", ".join(error.valid) or "không có")
        )
        raise CommandError(message, EXIT_BAD_INPUT) from None
