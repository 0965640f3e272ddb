"""`accord succession show|apply FILE`: a directory's successions applied to running agreements.

A succession file (`agreements.succession`) says that agency A (and B…) is succeeded by C from
a day. `show` prints what applying it would do; `apply` prints the same preview, then, once
confirmed (`--yes`, or an answer at the prompt):

1. updates the tenant's directory in the database (the agencies and officers the file adds;
   `active_until`, the day before `effective`, and `successor` on the agencies that cease), in
   one transaction with its audit entry. The directory's YAML file is left as it is: the
   database is what running services read, and deploying the file again keeps what the
   succession stored (`infra.db.write_directory`);
2. sends one signed `SuccessionRequest` per effective day (each transfer naming its document,
   so that a day's changes are applied together) to every running agreement of
   the tenant (the agreement workflow's `succeed` update, whose validator checks the admin and
   the tenant). Its `succession_id` is a hash of the tenant, day and transfers, so
   applying the same file again changes nothing, and says so.

The preview lists, per running agreement, the open and waiting tasks that pass (from the
agreement's `facts` query) and the obligations whose receiving agency changes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from accord.cli.engine import (
    ACCEPT_TIMEOUT,
    QUERY_TIMEOUT,
    CommandError,
    connect,
    load_settings,
    open_database,
    operator_credential,
    refusal_text,
    run_engine_command,
)
from accord.cli.errors import EXIT_BAD_INPUT, EXIT_FAILED
from accord.succession import send_succession, store_succession
from agreements.models import Directory, OfficerRole
from agreements.succession import (
    SuccessionFile,
    SuccessionGroup,
    Transfer,
    apply_to_directory,
    check_succession,
    read_succession_file,
    succession_groups,
    unknown_obligations,
)
from agreements.yaml_files import LoadError

if TYPE_CHECKING:
    from temporalio.client import Client

    from accord.identity import Credential
    from activities.models import Actor, AgreementFacts, TaskFact
    from infra.settings import Settings


def add_succession_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show",
        help="print what applying a succession file would do; changes nothing",
        description="Check a succession file against the tenant's directory (as the database "
        "holds it) and print the agencies and officers it adds, the agencies that cease, and "
        "per running agreement the tasks that pass to a successor.",
    )
    apply = actions.add_parser(
        "apply",
        help="apply a succession file: the directory in the database, then every running "
        "agreement of the tenant (admin)",
        description="Print the preview, then on confirmation update the tenant's directory in "
        "the database and send the succession to every running agreement of the tenant. "
        "Applying the same file again changes nothing.",
    )
    for sub in (show, apply):
        sub.add_argument("file", type=Path, metavar="FILE", help="the succession file (YAML)")
        sub.add_argument(
            "--tenant", help="the tenant (default: the file's `tenant:`); must be the file's"
        )
    apply.add_argument("--yes", action="store_true", help="apply without asking")
    apply.add_argument(
        "--as",
        dest="officer",
        required=True,
        metavar="OFFICER_ID",
        help="the administrator on whose behalf you (the operator, ACCORD_CLAIMS__OPERATOR) "
        "act, by ID in the tenant's directory",
    )
    parser.set_defaults(officer=None, yes=False)


# --------------------------------------------------------------------------------------------
# What would happen


@dataclass
class AgreementPreview:
    agreement_id: str
    document_number: str
    tasks: list[tuple[str, str, str]] = field(default_factory=list)
    """(task ID, from agency, to agency) of the open and waiting tasks that pass."""
    recipients: list[tuple[str, str, str]] = field(default_factory=list)
    """(obligation ID, from agency, to agency) whose receiving agency changes."""


@dataclass
class Preview:
    file: SuccessionFile
    before: Directory
    after: Directory
    groups: list[SuccessionGroup]
    agreements: list[AgreementPreview]

    @property
    def directory_changes(self) -> bool:
        return self.after != self.before

    def groups_text(self) -> str:
        return "; ".join(f"{g.effective} ({g.document})" for g in self.groups)


def passing(facts: AgreementFacts, transfers: list[Transfer]) -> AgreementPreview:
    """The tasks of one agreement a succession reaches: open or waiting tasks (closed ones keep
    their history) owed by a `from` agency (leading or jointly), only the named obligations'
    for a split; and the obligations whose recipient is a `from` agency."""
    preview = AgreementPreview(facts.agreement_id, facts.document_number)
    for task in facts.tasks:
        if task.closed:
            continue
        for transfer in transfers:
            if _reaches(task, transfer):
                preview.tasks.append((task.task_id, transfer.from_agency, transfer.to_agency))
                break
    for obligation in facts.obligations.values():
        for transfer in transfers:
            if obligation.recipient == transfer.from_agency and (
                transfer.obligations is None or obligation.obligation_id in transfer.obligations
            ):
                preview.recipients.append(
                    (obligation.obligation_id, transfer.from_agency, transfer.to_agency)
                )
                break
    return preview


def _reaches(task: TaskFact, transfer: Transfer) -> bool:
    owners = {task.agency, *task.co_owners}
    return transfer.from_agency in owners and (
        transfer.obligations is None or task.obligation_id in transfer.obligations
    )


def print_preview(preview: Preview, *, english: bool) -> None:
    file, before = preview.file, preview.before
    known = {agency.code for agency in before.agencies}
    added = [agency for agency in file.agencies if agency.code not in known]
    officer_ids = {officer.id for officer in before.officers}
    new_officers = [officer for officer in file.officers if officer.id not in officer_ids]
    names = {agency.code: agency.name for agency in preview.after.agencies}
    if english:
        print(f"Tenant {file.tenant}: {len(file.changes)} changes in {preview.groups_text()}")
        print(f"Agencies added: {len(added)}; officers added: {len(new_officers)}")
    else:
        print(f"Đơn vị {file.tenant}: {len(file.changes)} thay đổi, {preview.groups_text()}")
        print(f"Cơ quan thêm mới: {len(added)}; cán bộ thêm mới: {len(new_officers)}")
    since = "from" if english else "từ"
    for agency in added:
        print(f"  + {agency.code}  {agency.name} ({since} {agency.active_from or '—'})")
    print("Agencies ceasing:" if english else "Cơ quan chấm dứt hoạt động:")
    for change in file.changes:
        successors = ", ".join(change.successors())
        last_day = (change.effective - timedelta(days=1)).isoformat()
        for code in change.from_:
            word = "until" if english else "đến hết"
            print(f"  - {code}  {names.get(code, code)} {word} {last_day} → {successors}")
    if not preview.directory_changes:
        print(
            "The directory holds this succession already."
            if english
            else "Danh bạ đã có các thay đổi này."
        )
    for agreement in preview.agreements:
        print(f"{agreement.agreement_id} ({agreement.document_number}):")
        if not agreement.tasks and not agreement.recipients:
            print("  no open or waiting task passes" if english else "  không có nhiệm vụ nào")
        for task_id, old, new in agreement.tasks:
            print(f"  {task_id}: {old} → {new}")
        for obligation_id, old, new in agreement.recipients:
            word = "recipient" if english else "nơi nhận báo cáo"
            print(f"  {obligation_id}: {word} {old} → {new}")
    if not preview.agreements:
        print("No running agreement." if english else "Không có thỏa thuận nào đang chạy.")


# --------------------------------------------------------------------------------------------
# The commands


def succession(args: argparse.Namespace) -> int:
    """`show` (the preview) or `apply` (the preview, then the change)."""
    settings = load_settings()
    english = settings.locale == "en"
    path: Path = args.file
    try:
        file, doc = read_succession_file(path)
    except LoadError as error:
        raise CommandError("\n".join(str(p) for p in error.problems), EXIT_BAD_INPUT) from None
    if args.tenant is not None and args.tenant != file.tenant:
        raise CommandError(
            f"{path}: the file is for tenant {file.tenant!r}, not {args.tenant!r}", EXIT_BAD_INPUT
        )
    applying = args.officer is not None
    credential = operator_credential(settings) if applying else None
    sessions = open_database(settings)
    from infra import db

    with sessions() as session:
        before = db.stored_directory(session, tenant=file.tenant)
    if before is None:
        raise CommandError(
            f"{path}: no directory of tenant {file.tenant!r} in the database; deploy one of its "
            "agreements first (`accord deploy`)",
            EXIT_BAD_INPUT,
        )
    problems = check_succession(file, before, doc)
    if problems:
        raise CommandError("\n".join(str(p) for p in problems), EXIT_BAD_INPUT)
    actor = _admin(before, args.officer) if applying else None

    async def run() -> int:
        client = await connect(settings)
        facts = await running_facts(client, settings, file.tenant)
        obligations = {key for found in facts for key in found.obligations}
        missing = unknown_obligations(file, obligations)
        if missing:
            raise CommandError(
                f"{path}: a split names obligations no running agreement of {file.tenant} has: "
                f"{', '.join(missing)}",
                EXIT_BAD_INPUT,
            )
        groups = succession_groups(file)
        all_transfers = [t for group in groups for t in group.transfers]
        preview = Preview(
            file=file,
            before=before,
            after=apply_to_directory(file, before),
            groups=groups,
            agreements=[passing(found, all_transfers) for found in facts],
        )
        print_preview(preview, english=english)
        if not applying:
            return 0
        if not args.yes and not _confirmed(english):
            print("Nothing applied." if english else "Chưa áp dụng gì.")
            return 0
        assert actor is not None and credential is not None
        _store_directory(settings, preview, actor, credential.operator or "")
        failed = 0
        for group in groups:
            for found in facts:
                failed += not await _send(
                    client, settings, found.agreement_id, group, actor, credential
                )
        return EXIT_FAILED if failed else 0

    return run_engine_command(run())


def _admin(directory: Directory, officer_id: str) -> Actor:
    from activities.models import Actor

    officer = next((o for o in directory.officers if o.id == officer_id), None)
    if officer is None:
        raise CommandError(
            f"unknown officer {officer_id!r}: no active officer with that ID in the directory "
            f"of {directory.tenant}",
            EXIT_BAD_INPUT,
        )
    if OfficerRole.ADMIN not in officer.roles:
        raise CommandError(
            f"officer {officer_id!r} is not an administrator of {directory.tenant}: only an "
            "admin applies a succession",
            EXIT_BAD_INPUT,
        )
    return Actor(
        officer_id=officer.id,
        tenant=directory.tenant,
        agency=officer.agency,
        roles=list(officer.roles),
    )


def _confirmed(english: bool) -> bool:
    if not sys.stdin.isatty():
        raise CommandError(
            "not applied: confirm with --yes (no terminal to ask on)", EXIT_BAD_INPUT
        )
    answer = input("Apply? [y/N] " if english else "Áp dụng? [c/K] ")
    return answer.strip().lower() in {"y", "yes", "c", "có", "co"}


async def running_facts(client: Client, settings: Settings, tenant: str) -> list[AgreementFacts]:
    """The facts of every running agreement deployed for `tenant`, by ID."""
    from sqlalchemy import select
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError, RPCStatusCode

    from accord.reporting import agreement_facts
    from infra.db import AgreementRow
    from workflows.payloads import agreement_workflow_id

    with open_database(settings)() as session:
        ids = session.scalars(
            select(AgreementRow.id).where(AgreementRow.tenant == tenant).order_by(AgreementRow.id)
        ).all()
    found = []
    for agreement_id in ids:
        handle = client.get_workflow_handle(agreement_workflow_id(agreement_id))
        try:
            described = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
            if described.status is not WorkflowExecutionStatus.RUNNING:
                continue
            found.append(await agreement_facts(client, agreement_id, rpc_timeout=QUERY_TIMEOUT))
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
    return found


def _store_directory(settings: Settings, preview: Preview, actor: Actor, operator: str) -> None:
    """The directory after the file, and the audit entry, in one transaction; nothing when the
    database holds it already."""
    english = settings.locale == "en"
    if not store_succession(open_database(settings), preview.file, actor=actor, operator=operator):
        print("Directory: unchanged (applied before)." if english else "Danh bạ: không thay đổi.")
        return
    print("Directory: updated." if english else "Danh bạ: đã cập nhật.")


async def _send(
    client: Client,
    settings: Settings,
    agreement_id: str,
    group: SuccessionGroup,
    actor: Actor,
    credential: Credential,
) -> bool:
    """One `SuccessionRequest` to one agreement; prints its outcome in one line."""
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.service import RPCError

    try:
        result = await asyncio.wait_for(
            send_succession(client, credential, agreement_id, group, actor), ACCEPT_TIMEOUT * 2
        )
    except TimeoutError:
        print(
            f"{agreement_id}: no Accord worker answered within {ACCEPT_TIMEOUT * 2:.0f} s; is "
            "`accord run` running?",
            file=sys.stderr,
        )
        return False
    except WorkflowUpdateFailedError as error:
        word = "refused" if settings.locale == "en" else "bị từ chối"
        print(f"{agreement_id}: {word}: {refusal_text(error, settings.locale)}", file=sys.stderr)
        return False
    except RPCError as error:
        print(f"{agreement_id}: {error.message}", file=sys.stderr)
        return False
    message = result.message_en if settings.locale == "en" else result.message
    print(f"{agreement_id}: {message}")
    return True
