"""`accord amend`, `accord suspend`, `accord resume`: change a running agreement (issue 17).

    accord amend AGREEMENT NEW_FILE --document "số …, ngày …" [--yes] --as OFFICER
    accord suspend AGREEMENT [--item N | --obligation ID] --document … --reason … [--id ID]
    accord resume AGREEMENT --id ID --document … --reason … (--shift-deadlines |
                  --keep-deadlines)

Amend loads and checks NEW_FILE exactly as `accord deploy` does (`accord.deploy.build_input`),
asks the running agreement for its plan (`current_plan`) and tasks (`facts`), prints what
would change (`workflows.amendment.plan_diff` and `task_diff`, the functions the workflow's
`amend` update applies), asks for confirmation, then sends the update. Its amendment ID is a
hash of the document and the new plan and tasks, so the same file and document again change
nothing. Suspend's default ID is a hash of the scope and the document, printed so that
`accord resume` can name it. Every request is signed with the operator's credential for the
officer named by `--as`; the workflow's validators check that they are an admin of the
agreement's tenant.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio.client import (
    Client,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from accord.cli.engine import (
    ACCEPT_TIMEOUT,
    EXIT_BAD_INPUT,
    QUERY_TIMEOUT,
    CommandError,
    connect,
    load_settings,
    local_due_text,
    operator_credential,
    refusal_text,
    run_engine_command,
)
from accord.cli.tasks import add_officer_argument, checked, find_actor
from accord.deploy import amendment_id
from accord.identity import Credential, signed
from workflows.payloads import (
    AgreementInput,
    AgreementPlan,
    AmendmentRequest,
    AmendmentResult,
    ChangeResult,
    ChangeScope,
    PlannedTask,
    ResumptionRequest,
    SuspensionRequest,
    agreement_workflow_id,
)

if TYPE_CHECKING:
    from activities.models import AgreementFacts
    from workflows.amendment import TaskDiff


def _add_document_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--document",
        required=True,
        metavar='"số …, ngày …"',
        help=f"the document that decides the {what} (number and date), named in the mails",
    )


def add_amend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("agreement", metavar="AGREEMENT", help="the running agreement's ID")
    parser.add_argument(
        "new_file", type=Path, metavar="NEW_FILE", help="the agreement file's new version"
    )
    _add_document_argument(parser, "amendment")
    parser.add_argument(
        "--yes",
        action="store_true",
        help="apply without asking (scripts); without it, a terminal asks to confirm",
    )
    add_officer_argument(parser)


def add_suspend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("agreement", metavar="AGREEMENT", help="the running agreement's ID")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--item", metavar="N", help="suspend one item (its number, e.g. III.3)")
    scope.add_argument("--obligation", metavar="ID", help="suspend one obligation")
    _add_document_argument(parser, "suspension")
    parser.add_argument("--reason", required=True, help="why (named in the mails)")
    parser.add_argument(
        "--id",
        dest="suspension_id",
        metavar="ID",
        help="the suspension's ID, for `accord resume` (default: a short hash of the scope and "
        "the document, printed)",
    )
    add_officer_argument(parser)


def add_resume_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("agreement", metavar="AGREEMENT", help="the running agreement's ID")
    parser.add_argument(
        "--id",
        dest="suspension_id",
        required=True,
        metavar="ID",
        help="the suspension to lift (printed by `accord suspend`, shown by `accord status`)",
    )
    _add_document_argument(parser, "resumption")
    parser.add_argument("--reason", required=True, help="why (named in the mails)")
    deadlines = parser.add_mutually_exclusive_group(required=True)
    deadlines.add_argument(
        "--shift-deadlines",
        dest="shift",
        action="store_true",
        default=None,
        help="the suspended tasks' deadlines move by the time they were suspended",
    )
    deadlines.add_argument(
        "--keep-deadlines",
        dest="shift",
        action="store_false",
        help="the deadlines stay as they were",
    )
    add_officer_argument(parser)


# --------------------------------------------------------------------------------------------
# Stable IDs


def suspension_id(scope: ChangeScope, document: str) -> str:
    """A short stable hash of the scope and the document."""
    digest = hashlib.sha256(f"{scope.key}\n{document}".encode()).hexdigest()
    return "td-" + digest[:10]


# --------------------------------------------------------------------------------------------
# accord amend


def amend(args: argparse.Namespace) -> int:
    """Preview an amendment of a running agreement, then apply it once confirmed."""
    new_input = _load_new_version(args.new_file, args.agreement)
    settings = load_settings()
    credential = operator_credential(settings)
    actor = find_actor(settings, args.officer, args.agreement)
    en = settings.locale == "en"

    async def run() -> int:
        from workflows.agreement import AgreementWorkflow

        client = await connect(settings)
        handle = client.get_workflow_handle_for(
            AgreementWorkflow.run, agreement_workflow_id(args.agreement)
        )
        try:
            current = await handle.query(AgreementWorkflow.current_plan, rpc_timeout=QUERY_TIMEOUT)
            facts = await handle.query(AgreementWorkflow.facts, rpc_timeout=QUERY_TIMEOUT)
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                raise _not_running(args.agreement) from error
            raise
        except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as error:
            raise CommandError(
                f"{args.agreement}: the running agreement did not say its plan ({error}); is "
                "its worker up to date?"
            ) from error
        if current.tenant != new_input.plan.tenant:
            raise CommandError(
                f"{args.new_file}: the file's tenant {new_input.plan.tenant!r} is not the "
                f"running agreement's ({current.tenant!r})",
                EXIT_BAD_INPUT,
            )
        plan = new_input.plan.model_copy(update={"digest": current.digest})
        tasks = new_input.waiting
        lines, diff = preview(current, plan, tasks, facts, now=datetime.now(UTC))
        if not lines and diff.empty:
            print(
                "Nothing changes: the file is the version in force."
                if en
                else "Không có gì thay đổi: tệp trùng với phiên bản đang có hiệu lực."
            )
            return 0
        old_due = {fact.task_id: fact.due_at for fact in facts.tasks}
        print_preview(args.agreement, args.document, lines, diff, old_due, en=en)
        if not _confirmed(args.yes, en=en):
            print("Not applied." if en else "Chưa áp dụng.")
            return 1
        request = checked(
            AmendmentRequest,
            actor=actor,
            amendment_id=amendment_id(args.document, plan, tasks),
            document=args.document,
            plan=plan,
            tasks=tasks,
            summary=lines,
        )
        result = await send_change(
            client, args.agreement, AgreementWorkflow.amend, request, credential, en=en
        )
        assert isinstance(result, AmendmentResult)
        print_amendment_result(result, en=en)
        return 0

    return run_engine_command(run())


def _load_new_version(path: Path, agreement_id: str) -> AgreementInput:
    """NEW_FILE loaded and expanded as `accord deploy` does; one line if it is another
    agreement."""
    from accord.deploy import build_input
    from agreements.loader import LoadError, load_agreement

    try:
        loaded = load_agreement(path)
    except LoadError as error:
        raise CommandError(
            f"{path}: invalid, nothing applied:\n" + "\n".join(f"  {p}" for p in error.problems),
            EXIT_BAD_INPUT,
        ) from None
    built = build_input(loaded, digest=True)
    if built.plan.agreement_id != agreement_id:
        raise CommandError(
            f"{path}: this file is agreement {built.plan.agreement_id!r}, not {agreement_id!r}; "
            "an amendment keeps the agreement's `id:`",
            EXIT_BAD_INPUT,
        )
    return built


def preview(
    current: AgreementPlan,
    plan: AgreementPlan,
    tasks: list[PlannedTask],
    facts: AgreementFacts,
    *,
    now: datetime,
) -> tuple[list[str], TaskDiff]:
    """What the amendment changes: `plan_diff` lines and the `task_diff` of the tasks the
    running agreement knows (its `facts`) against the new version's."""
    from workflows.amendment import KnownTask, event_obligations, plan_diff, task_diff

    known = [
        KnownTask(
            task_id=fact.task_id,
            due_at=fact.due_at,
            written_due_at=fact.written_due_at,
            state=fact.state,
            closed=fact.closed,
        )
        for fact in facts.tasks
    ]
    return plan_diff(current, plan), task_diff(known, tasks, now, event_obligations(plan))


def print_preview(
    agreement: str,
    document: str,
    lines: list[str],
    diff: TaskDiff,
    old_due: dict[str, datetime | None],
    *,
    en: bool,
) -> None:
    """The preview: the plan's changes, then the tasks added, withdrawn, moved (old → new due
    date) and skipped."""
    print(
        f"Amendment of {agreement} by {document}:"
        if en
        else f"Sửa đổi {agreement} theo {document}:"
    )
    count = len(lines)
    print(f"Changes to the agreement ({count}):" if en else f"Nội dung thay đổi ({count}):")
    for line in lines:
        print(f"  {line}")
    if not lines:
        print("  (none)" if en else "  (không có)")
    print("Tasks:" if en else "Nhiệm vụ:")
    sections: list[tuple[str, str, list[str]]] = [
        (
            "+ thêm",
            "+ added",
            [f"{t.task_id}  {local_due_text(t.due_at, 'en' if en else 'vi')}" for t in diff.added],
        ),
        (
            "- rút (đang thực hiện)",
            "- withdrawn (running)",
            list(diff.withdrawn_started),
        ),
        ("- bỏ (chưa đến kỳ)", "- dropped (not started)", list(diff.withdrawn_waiting)),
        (
            "~ đổi hạn",
            "~ moved",
            [_moved(t, old_due, en=en) for t in [*diff.moved_started, *diff.moved_waiting]],
        ),
        ("bỏ qua (hạn đã qua)", "skipped (due date already past)", list(diff.skipped)),
    ]
    printed = False
    for vi_title, en_title, entries in sections:
        for entry in entries:
            print(f"  {en_title if en else vi_title}: {entry}")
            printed = True
    if not printed:
        print("  (no task changes)" if en else "  (không nhiệm vụ nào thay đổi)")


def _moved(task: PlannedTask, old_due: dict[str, datetime | None], *, en: bool) -> str:
    locale = "en" if en else "vi"
    old = local_due_text(old_due.get(task.task_id), locale)
    return f"{task.task_id}  {old} → {local_due_text(task.due_at, locale)}"


def _confirmed(yes: bool, *, en: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise CommandError(
            "not applied: no terminal to confirm on; add --yes to apply from a script",
            EXIT_BAD_INPUT,
        )
    try:
        answer = input("Apply? [y/N] " if en else "Áp dụng? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes", "c", "có", "co")


def print_amendment_result(result: AmendmentResult, *, en: bool) -> None:
    print(result.message_en if en else result.message)
    if not result.applied:
        return
    for title_vi, title_en, ids in (
        ("thêm", "added", result.added),
        ("rút", "withdrawn", result.withdrawn),
        ("đổi hạn", "moved", result.moved),
    ):
        for task_id in ids:
            print(f"  {title_en if en else title_vi}: {task_id}")


# --------------------------------------------------------------------------------------------
# accord suspend, accord resume


def suspend(args: argparse.Namespace) -> int:
    """Suspend the agreement, an item or an obligation (admins)."""
    settings = load_settings()
    credential = operator_credential(settings)
    actor = find_actor(settings, args.officer, args.agreement)
    en = settings.locale == "en"
    scope = ChangeScope(item=args.item, obligation_id=args.obligation)
    change_id = args.suspension_id or suspension_id(scope, args.document)
    request = checked(
        SuspensionRequest,
        actor=actor,
        suspension_id=change_id,
        scope=scope,
        document=args.document,
        reason=args.reason,
    )

    async def run() -> int:
        from workflows.agreement import AgreementWorkflow

        client = await connect(settings)
        result = await send_change(
            client, args.agreement, AgreementWorkflow.suspend, request, credential, en=en
        )
        assert isinstance(result, ChangeResult)
        print_change_result(result, en=en)
        print(
            f"Suspension ID: {change_id} (accord resume {args.agreement} --id {change_id} …)"
            if en
            else f"Mã tạm dừng: {change_id} (accord resume {args.agreement} --id {change_id} …)"
        )
        return 0

    return run_engine_command(run())


def resume(args: argparse.Namespace) -> int:
    """Lift a suspension; deadlines move by the suspended time or stay (admins)."""
    settings = load_settings()
    credential = operator_credential(settings)
    actor = find_actor(settings, args.officer, args.agreement)
    en = settings.locale == "en"
    request = checked(
        ResumptionRequest,
        actor=actor,
        suspension_id=args.suspension_id,
        document=args.document,
        reason=args.reason,
        shift_deadlines=args.shift,
    )

    async def run() -> int:
        from workflows.agreement import AgreementWorkflow

        client = await connect(settings)
        result = await send_change(
            client, args.agreement, AgreementWorkflow.resume, request, credential, en=en
        )
        assert isinstance(result, ChangeResult)
        print_change_result(result, en=en)
        return 0

    return run_engine_command(run())


def print_change_result(result: ChangeResult, *, en: bool) -> None:
    print(result.message_en if en else result.message)
    for task_id in result.tasks:
        print(f"  {task_id}")


# --------------------------------------------------------------------------------------------
# Sending


def _not_running(agreement_id: str) -> CommandError:
    return CommandError(
        f"no running agreement {agreement_id!r}: check its ID with `accord status` (deploy it "
        "with `accord deploy`)"
    )


async def send_change(
    client: Client,
    agreement_id: str,
    update: Any,
    payload: Any,
    credential: Credential,
    *,
    en: bool,
    received_at: datetime | None = None,
) -> Any:
    """One of the agreement workflow's change updates (amend, suspend, resume, succeed),
    signed by the operator's credential; a refusal is one line in the reader's language."""
    from workflows.agreement import AgreementWorkflow

    workflow_id = agreement_workflow_id(agreement_id)
    handle = client.get_workflow_handle_for(AgreementWorkflow.run, workflow_id)
    payload = signed(
        credential, payload, update=update, workflow_id=workflow_id, received_at=received_at
    )
    try:
        return await asyncio.wait_for(handle.execute_update(update, payload), ACCEPT_TIMEOUT * 2)
    except TimeoutError:
        raise CommandError(
            f"{agreement_id}: no Accord worker answered within {ACCEPT_TIMEOUT * 2:.0f} s; "
            "is `accord run` running?"
        ) from None
    except WorkflowUpdateFailedError as error:
        word = "refused" if en else "bị từ chối"
        raise CommandError(
            f"{agreement_id}: {word}: {refusal_text(error, 'en' if en else 'vi')}"
        ) from error
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise _not_running(agreement_id) from error
        raise
