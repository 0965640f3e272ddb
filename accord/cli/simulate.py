"""`accord simulate PATH`: every mail an agreement will send, listed by date or by agency.

The simulation itself (time-skipping test server, real workflows, a mail sink) is
`accord.simulation`; this module parses the arguments, shows progress and prints the listing.

It never touches a running engine or the configured database and mail server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from accord.cli.errors import EXIT_BAD_INPUT, EXIT_FAILED, CommandError
from agreements.loader import (
    LoadedAgreement,
    LoadError,
    load_agreement,
)
from agreements.models import Agreement

if TYPE_CHECKING:
    from accord.plan import ScriptedSubmission
    from accord.simulation import ScriptedAmendment, ScriptedSuccession
    from reports.model import ReportInputs


def scripted_submission(text: str) -> ScriptedSubmission:
    """`--submit GLOB@YYYY-MM-DD` (simulate and plan)."""
    from accord.plan import ScriptedSubmission

    try:
        return ScriptedSubmission.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


REPORT_FORMATS = (".json", ".md", ".xlsx", ".docx")
"""`accord simulate --report OUT`: the report's format is OUT's suffix."""


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    add_listing_arguments(parser)
    parser.add_argument(
        "--report",
        type=Path,
        metavar="OUT",
        help=(
            "also write the consolidated report the simulated run would produce, in the "
            "agreement's own dates; the format is OUT's suffix: " + ", ".join(REPORT_FORMATS)
        ),
    )
    parser.add_argument(
        "--period",
        metavar="P",
        help="with --report: the report of one reporting period (e.g. 2025-6t), not the whole "
        "agreement",
    )
    parser.add_argument(
        "--amend",
        type=_dated_file,
        action="append",
        default=[],
        metavar="YYYY-MM-DD:NEW_FILE",
        help="at midnight that day, amend the agreement to NEW_FILE (a new version of its file, "
        "as `accord amend` would); repeatable",
    )
    parser.add_argument(
        "--succession",
        type=_dated_file,
        action="append",
        default=[],
        metavar="YYYY-MM-DD:CHANGE_FILE",
        help="at midnight that day, apply the succession file CHANGE_FILE (its directory "
        "changes and its successions, as `accord succession apply` would); repeatable",
    )


def _dated_file(text: str) -> tuple[date, Path]:
    """`YYYY-MM-DD:FILE` (--amend, --succession)."""
    day, sep, path = text.partition(":")
    try:
        if not sep or not path:
            raise ValueError
        return date.fromisoformat(day), Path(path)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD:FILE, got {text!r}") from None


def report_format(out: Path) -> str:
    """OUT's suffix if Accord writes that format; `CommandError` (bad input) otherwise."""
    suffix = out.suffix.lower()
    if suffix not in REPORT_FORMATS:
        raise CommandError(
            f"--report {out}: the file name must end in {', '.join(REPORT_FORMATS)} "
            "(the report's format)",
            EXIT_BAD_INPUT,
        )
    return suffix


def add_listing_arguments(parser: argparse.ArgumentParser) -> None:
    """What `simulate` and `plan` both take: the file, the listing's form, scripted reports."""
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
        help="group the listing by day (with the agency on each line, the default) or by agency",
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


SIMULATE_WIDTH = 100
"""The human listing of `accord simulate` fits a terminal this wide."""
PROGRESS_AFTER = 2.0
"""Seconds before `accord simulate` starts showing progress (on a terminal's stderr)."""
TEST_SERVER_WARNING = "Temporal Server 1.16.0 or newer is required"
"""The SDK's warning that the time-skipping test server lacks a newer server's capability:
true of the test server, and nothing the reader of a simulation can act on."""
WEEKDAYS_VI = ("thứ Hai", "thứ Ba", "thứ Tư", "thứ Năm", "thứ Sáu", "thứ Bảy", "Chủ nhật")


class _WithoutTestServerWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return TEST_SERVER_WARNING not in record.getMessage()


class _SimulationProgress:
    """'mô phỏng …: 08/05/2025 (35 %)' on one line of a terminal's stderr, rewritten in place,
    from PROGRESS_AFTER seconds on; nothing when stderr is not a terminal."""

    def __init__(self, agreement: Agreement) -> None:
        zone = agreement.zone
        self._name = agreement.agreement_id
        self._start = datetime.combine(agreement.period.start, datetime.min.time(), tzinfo=zone)
        self._end = datetime.combine(
            agreement.period.end + timedelta(days=1), datetime.min.time(), tzinfo=zone
        )
        self._shown_from = time.monotonic() + PROGRESS_AFTER
        self._enabled = sys.stderr.isatty()
        self._width = 0

    def __call__(self, at: datetime) -> None:
        if not self._enabled or time.monotonic() < self._shown_from:
            return
        if at < self._start:
            where = "đang chuẩn bị"
        else:
            done = min(1.0, (at - self._start) / (self._end - self._start))
            where = f"{at:%d/%m/%Y} ({done:.0%})"
        line = f"mô phỏng {self._name}: {where}"[: SIMULATE_WIDTH - 1]
        sys.stderr.write("\r" + line.ljust(self._width))
        sys.stderr.flush()
        self._width = len(line)

    def clear(self) -> None:
        if self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            sys.stderr.flush()
            self._width = 0


def simulate(args: argparse.Namespace) -> int:
    """Run the agreement from start to end on Temporal's time-skipping test server, with the
    real workflows, and print every mail it would send."""
    from temporalio.service import RPCError

    from accord.cli.engine import use_cli_runtime
    from accord.embedded import EmbeddedError
    from accord.simulation import SimulationStalled
    from accord.simulation import simulate as run_simulation

    out: Path | None = args.report
    if out is None and args.period is not None:
        raise CommandError("--period needs --report OUT", EXIT_BAD_INPUT)
    suffix = report_format(out) if out is not None else None
    try:
        loaded = load_agreement(args.path)
    except LoadError as error:
        for problem in error.problems:
            print(problem)
        return EXIT_FAILED
    if args.period is not None:
        periods = sorted({o.period_label for o in loaded.occurrences})
        if args.period not in periods:
            raise CommandError(
                f"--period {args.period}: not a period of {loaded.agreement.agreement_id} "
                f"(its periods: {', '.join(periods)})",
                EXIT_BAD_INPUT,
            )
    amendments, successions = scripted_changes(loaded, args.amend, args.succession)
    use_cli_runtime()
    logging.getLogger("temporalio.core").addFilter(_WithoutTestServerWarning())
    progress = _SimulationProgress(loaded.agreement)
    try:
        report = asyncio.run(
            run_simulation(
                loaded,
                submissions=args.submit,
                progress=progress,
                report=out is not None,
                amendments=amendments,
                successions=successions,
            )
        )
    except (EmbeddedError, SimulationStalled) as error:
        raise CommandError(str(error)) from error
    except RPCError as error:
        raise CommandError(f"the time-skipping test server failed: {error.message}") from error
    finally:
        progress.clear()
    print_report(report, loaded, as_json=args.json, by=args.by)
    if report.shift_years and not args.json:
        print(
            f"(run {report.shift_years} years later on the test server, as weekdays repeat;\n"
            " dates are shown as in the agreement)"
        )
    if out is not None and suffix is not None:
        assert report.report_inputs is not None
        write_report(report.report_inputs, out, suffix, period=args.period)
        # With --json, stdout is JSON lines: where the report went is said on stderr.
        print(f"report: {out}", file=sys.stderr if args.json else sys.stdout)
    return 0


def scripted_changes(
    loaded: LoadedAgreement,
    amend: Sequence[tuple[date, Path]],
    succession: Sequence[tuple[date, Path]],
) -> tuple[list[ScriptedAmendment], list[ScriptedSuccession]]:
    """The --amend and --succession files, loaded and checked before the simulation starts
    (another agreement's file, another tenant's succession, or a problem: one error)."""
    from accord.simulation import ScriptedAmendment, ScriptedSuccession
    from agreements.succession import apply_to_directory, load_succession_file

    agreement_id = loaded.agreement.agreement_id
    amendments = []
    for day, path in amend:
        try:
            new = load_agreement(path)
        except LoadError as error:
            raise _invalid(f"--amend {day}:{path}", error) from None
        if new.agreement.agreement_id != agreement_id:
            raise CommandError(
                f"--amend {day}:{path}: this file is agreement {new.agreement.agreement_id!r}, "
                f"not {agreement_id!r}",
                EXIT_BAD_INPUT,
            )
        if new.directory.tenant != loaded.directory.tenant:
            raise CommandError(
                f"--amend {day}:{path}: tenant {new.directory.tenant!r}, not "
                f"{loaded.directory.tenant!r}",
                EXIT_BAD_INPUT,
            )
        amendments.append(ScriptedAmendment(day, new, path))
    successions = []
    directory = loaded.directory
    for day, path in sorted(succession, key=lambda dated: dated[0]):
        try:
            file = load_succession_file(path, directory)
        except LoadError as error:
            raise _invalid(f"--succession {day}:{path}", error) from None
        directory = apply_to_directory(file, directory)
        successions.append(ScriptedSuccession(day, file, path))
    return amendments, successions


def _invalid(option: str, error: LoadError) -> CommandError:
    problems = "\n".join(f"  {problem}" for problem in error.problems)
    return CommandError(f"{option}: invalid:\n{problems}", EXIT_BAD_INPUT)


def write_report(inputs: ReportInputs, out: Path, suffix: str, *, period: str | None) -> None:
    """The consolidated report of `inputs` in the format of `suffix`, written to `out` whole or
    not at all (a temporary file beside it, then renamed)."""
    from reports.consolidate import UnknownPeriod, consolidate

    try:
        consolidated = consolidate(inputs, period=period)
    except UnknownPeriod as error:
        raise CommandError(str(error), EXIT_BAD_INPUT) from error
    content: bytes
    if suffix == ".json":
        content = (consolidated.model_dump_json(indent=2) + "\n").encode()
    elif suffix == ".md":
        from reports.markdown import render_markdown

        content = render_markdown(consolidated, "vi").encode()
    elif suffix == ".xlsx":
        from reports.xlsx import workbook_bytes

        content = workbook_bytes(consolidated, "vi")
    else:
        from reports.docx import document_bytes

        content = document_bytes(consolidated, "vi")
    try:
        descriptor, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as error:
        raise CommandError(f"--report {out}: cannot write there: {error.strerror}") from error
    temporary = Path(name)
    try:
        # mkstemp's file is private (0600); the report gets a new file's usual mode.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(descriptor, 0o666 & ~umask)
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
        os.replace(temporary, out)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise CommandError(f"--report {out}: cannot write: {error.strerror}") from error


class Report(Protocol):
    """What `simulate` and `plan` both produce."""

    @property
    def agreement_id(self) -> str: ...
    @property
    def mails(self) -> Sequence[ListedMail]: ...
    @property
    def warnings(self) -> list[str]: ...
    def summary_json(self) -> dict[str, Any]: ...


class ListedMail(Protocol):
    @property
    def at(self) -> datetime: ...
    @property
    def kind(self) -> str: ...
    @property
    def task(self) -> str: ...
    @property
    def agency(self) -> str: ...
    @property
    def to(self) -> list[str]: ...
    @property
    def subject(self) -> str: ...
    def as_json(self) -> dict[str, Any]: ...


def print_report(report: Report, loaded: LoadedAgreement, *, as_json: bool, by: str) -> None:
    """The mails and the summary: JSON lines, or the listing by date or by agency."""
    if as_json:
        for mail in report.mails:
            print(json.dumps(mail.as_json(), ensure_ascii=False))
        print(json.dumps(report.summary_json(), ensure_ascii=False))
        return
    from accord.cli.engine import state_label  # here, not at the top: `--json` skips its imports

    names = {agency.code: agency.name for agency in loaded.directory.agencies}
    listing = _mails_by_agency if by == "agency" else _mails_by_date
    for line in listing(report.mails, report.agreement_id, names):
        print(line)
    summary = report.summary_json()["summary"]
    kinds = ", ".join(f"{kind} {n}" for kind, n in summary["by_kind"].items())
    states = "; ".join(
        f"{n} {state_label(state)}" for state, n in summary["task_states"].items() if n
    )
    print(f"{summary['messages']} messages ({kinds or 'none'}) for {summary['tasks']} tasks")
    print(_wrapped(f"end states: {states}"))
    for warning in report.warnings:
        print(_wrapped(f"warning: {warning}"))


def _wrapped(text: str) -> str:
    return textwrap.fill(
        text, SIMULATE_WIDTH, subsequent_indent="  ", break_long_words=True, break_on_hyphens=False
    )


@dataclass(frozen=True)
class _MailLine:
    """Mails sent at the same moment about the same task for the same reason: one line."""

    at: datetime
    label: str
    agency: str
    task: str
    to: tuple[str, ...]


def _mail_lines(mails: Sequence[ListedMail], agreement_id: str) -> list[_MailLine]:
    recipients: dict[tuple[datetime, str, str, str], list[str]] = {}
    for mail in mails:
        # "[Accord] Quá hạn (bậc 2): …" says what the mail is in the reader's words.
        head, colon, _ = mail.subject.removeprefix("[Accord] ").partition(":")
        label = head if colon and len(head) <= 40 else mail.kind
        # obligation/agency/period: the agency has a column of its own.
        task = mail.task.removeprefix(f"{agreement_id}/")
        obligation, _, rest = task.partition("/")
        period = rest.partition("/")[2]
        short = f"{obligation} {period}" if period else task
        recipients.setdefault((mail.at, label, mail.agency, short), []).extend(mail.to)
    return [
        _MailLine(at, label, agency, task, tuple(to))
        for (at, label, agency, task), to in recipients.items()
    ]


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _recipients(addresses: Sequence[str], width: int) -> str:
    more = f" +{len(addresses) - 1}" if len(addresses) > 1 else ""
    return _clip(addresses[0], width - len(more)) + more if addresses else "—"


def _grouped(
    groups: Sequence[tuple[str, Sequence[_MailLine]]],
    cells: Callable[[_MailLine], list[str]],
    caps: Sequence[int],
) -> list[str]:
    """Each group's heading, then its lines indented by two: each column as wide as its widest
    cell in the whole listing (up to its cap), the recipients in what is left of
    SIMULATE_WIDTH."""
    rows = [cells(line) for _, lines in groups for line in lines]
    if not rows:
        return []
    widths = [min(cap, max(len(row[i]) for row in rows)) for i, cap in enumerate(caps)]
    left = SIMULATE_WIDTH - 2 - sum(width + 2 for width in widths)
    out: list[str] = []
    for heading, lines in groups:
        out.append(_clip(heading, SIMULATE_WIDTH))
        for line in lines:
            row = zip(cells(line), widths, strict=True)
            padded = "  ".join(_clip(cell, width).ljust(width) for cell, width in row)
            out.append(f"  {padded}  {_recipients(line.to, left)}")
    return out


def _mails_by_date(
    mails: Sequence[ListedMail], agreement_id: str, names: dict[str, str]
) -> list[str]:
    lines = _mail_lines(mails, agreement_id)
    groups = []
    for day in sorted({line.at.date() for line in lines}):
        todays = [line for line in lines if line.at.date() == day]
        count = sum(len(line.to) for line in todays)
        groups.append((f"{day:%d/%m/%Y}, {WEEKDAYS_VI[day.weekday()]} ({count} thư)", todays))
    return _grouped(groups, lambda m: [f"{m.at:%H:%M}", m.label, m.agency, m.task], [5, 18, 16, 28])


def _mails_by_agency(
    mails: Sequence[ListedMail], agreement_id: str, names: dict[str, str]
) -> list[str]:
    lines = _mail_lines(mails, agreement_id)
    groups = []
    for agency in sorted({line.agency for line in lines}):
        theirs = [line for line in lines if line.agency == agency]
        count = sum(len(line.to) for line in theirs)
        name = f" — {names[agency]}" if agency in names else ""
        groups.append((f"{agency}{name} ({count} thư)", theirs))
    return _grouped(groups, lambda m: [f"{m.at:%d/%m/%Y %H:%M}", m.label, m.task], [16, 18, 30])
