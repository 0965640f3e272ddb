"""`accord submit | extend | decide | waive TASK --as OFFICER`: one update of one task, on
behalf of one officer, by the operator whose credential is in settings.

Without an operator credential these commands refuse. The officer is looked up in the
database, within the tenant of the task's agreement (an officer ID means nothing across
tenants); the update is signed with the operator's credential (`accord.identity`); the
workflow's validators judge the rules (who may do what, when) and a refusal is printed in
the reader's language. Report files are read with the agreement loader's YAML safety. No
rule of the workflow is checked here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from accord.cli.engine import (
    EXIT_BAD_INPUT,
    TASK_PREFIX,
    CommandError,
    load_settings,
    open_database,
    operator_credential,
    run_engine_command,
    send_update,
)
from activities.models import MAX_ATTACHMENTS, Actor, AttachmentRef, IndicatorValue, Ratio
from agreements.models import OfficerRole
from agreements.yaml_files import parse_yaml, read_text
from infra.settings import Settings
from workflows.payloads import (
    ExtensionDecision,
    ExtensionRequest,
    SubmitReport,
    Waiver,
)


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
        help="the officer on whose behalf you (the operator, ACCORD_CLAIMS__OPERATOR) act, by "
        "ID in the agency directory; the engine checks the rules",
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
    credential = operator_credential(settings)
    report = load_report(args.file)
    payload = report.payload(find_actor(settings, args.officer, agreement_of(args.task)))
    return run_engine_command(
        send_update(settings, args.task, ObligationWorkflow.submit_report, payload, credential)
    )


def extend(args: argparse.Namespace) -> int:
    """Ask for a later deadline; the aggregator (or an admin) decides."""
    from workflows.obligation import ObligationWorkflow

    settings = load_settings()
    credential = operator_credential(settings)
    actor = find_actor(settings, args.officer, agreement_of(args.task))
    payload = checked(ExtensionRequest, actor=actor, new_due=args.until, reason=args.reason)

    return run_engine_command(
        send_update(settings, args.task, ObligationWorkflow.request_extension, payload, credential)
    )


def decide(args: argparse.Namespace) -> int:
    """Approve or reject the pending extension request."""
    from workflows.obligation import ObligationWorkflow

    settings = load_settings()
    credential = operator_credential(settings)
    actor = find_actor(settings, args.officer, agreement_of(args.task))
    payload = checked(
        ExtensionDecision, actor=actor, approve=args.verdict == "approve", note=args.note
    )

    return run_engine_command(
        send_update(settings, args.task, ObligationWorkflow.decide_extension, payload, credential)
    )


def waive(args: argparse.Namespace) -> int:
    """Release an agency from a task (admins only)."""
    from workflows.obligation import ObligationWorkflow

    settings = load_settings()
    credential = operator_credential(settings)
    actor = find_actor(settings, args.officer, agreement_of(args.task))
    payload = checked(Waiver, actor=actor, reason=args.reason)

    return run_engine_command(
        send_update(settings, args.task, ObligationWorkflow.waive, payload, credential)
    )


def agreement_of(task_id: str) -> str:
    """The agreement ID a task ID starts with (`AGREEMENT/obligation/agency/period`)."""
    return task_id.split("/", 1)[0]


def find_actor(settings: Settings, officer_id: str, agreement_id: str) -> Actor:
    """The officer as the directory of the agreement's tenant knows them (deploying loads
    it): an officer ID is looked up within that tenant only, never in another's."""
    from infra import db

    with open_database(settings)() as session:
        tenant = db.agreement_tenant(session, agreement_id=agreement_id)
        if tenant is None:
            raise CommandError(
                f"unknown agreement {agreement_id!r}: no agreement with that ID is deployed "
                "(see `accord status`)",
                EXIT_BAD_INPUT,
            )
        officer = db.get_officer(session, tenant=tenant, officer_id=officer_id)
    if officer is None:
        raise CommandError(
            f"unknown officer {officer_id!r}: no such ID in the agency directory of "
            f"{tenant} (the tenant of {agreement_id})",
            EXIT_BAD_INPUT,
        )
    if not officer.active:
        raise CommandError(
            f"officer {officer_id!r} is no longer in the agency directory of {tenant}",
            EXIT_BAD_INPUT,
        )
    return Actor(
        officer_id=officer.id,
        tenant=officer.tenant,
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


# --------------------------------------------------------------------------------------------
# Argument types


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
            )
        except ValidationError as error:
            problems = [
                self.describe(tuple(e["loc"]), e["msg"]) for e in error.errors(include_url=False)
            ]
            raise CommandError("\n".join(problems), EXIT_BAD_INPUT) from error


REPORT_KEYS = ("summary", "indicators", "attachments")
_ATTACHMENT: TypeAdapter[str] = TypeAdapter(AttachmentRef)


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
        if len(raw_attachments) > MAX_ATTACHMENTS:
            problems.append(
                at(
                    ("attachments",),
                    f"at most {MAX_ATTACHMENTS} attachments, not {len(raw_attachments)}",
                )
            )
        for index, item in enumerate(raw_attachments[:MAX_ATTACHMENTS]):
            if not (isinstance(item, str) and item.strip()):
                problems.append(at(("attachments", index), "must be a file name or link"))
                continue
            try:
                attachments.append(_ATTACHMENT.validate_python(item))
            except ValidationError as error:
                reason = error.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
                problems.append(at(("attachments", index), reason))
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
