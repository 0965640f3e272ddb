"""`accord audit verify [--tenant T]` and `accord audit list`: the audit trail.

`verify` walks each tenant's hash chain (`infra.db.verify_audit`) and names the first entry
that was changed, removed or reordered, exit 1; an intact trail prints its entry count and each
chain's last hash (write it down: an entry removed from the end of a chain is found by
comparing with it), exit 0. `list` prints entries in chain order. Both only read the database
named by the settings; neither creates it, and nothing here writes.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from accord.cli.engine import EXIT_FAILED, LOCAL_ZONE, CommandError, load_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from infra.db import AuditChain, AuditProblem
    from infra.settings import Settings


def add_audit_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    verify = actions.add_parser(
        "verify",
        help="check the audit trail's hash chains; exit 1 at the first changed, removed or "
        "reordered entry",
        description="Walk the audit trail's hash chain of every tenant (or one) and report the "
        "first entry that was changed, removed or reordered (exit 1), or the number of entries "
        "and each chain's last hash (exit 0).",
    )
    verify.add_argument("--tenant", metavar="T", help="only this tenant's chain")
    verify.set_defaults(audit_action="verify")
    listing = actions.add_parser(
        "list", help="print audit entries in chain order", description="Print audit entries."
    )
    listing.add_argument("--tenant", metavar="T", help="only this tenant's entries")
    listing.add_argument("--task", metavar="TASK_ID", help="only this task's entries")
    listing.add_argument(
        "--limit", type=int, default=100, metavar="N", help="the last N entries (default 100)"
    )
    listing.set_defaults(audit_action="list")


def audit(args: argparse.Namespace) -> int:
    settings = load_settings()
    with _open(settings)() as session:
        if args.audit_action == "verify":
            return _verify(session, args.tenant, settings.locale)
        return _list(session, args, settings.locale)


def _open(settings: Settings) -> sessionmaker[Session]:
    """The settings' database, which must hold an audit table already (never created here)."""
    from sqlalchemy import inspect, make_url

    from infra import db

    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        from pathlib import Path

        if not Path(url.database).is_file():
            raise CommandError(
                f"no Accord database in {settings.data_dir}: nothing has been audited there "
                "(check ACCORD_DATA_DIR or ACCORD_DATABASE_URL)"
            )
    from sqlalchemy.exc import SQLAlchemyError

    database_url = settings.resolved_database_url
    try:
        engine = db.make_engine(database_url)
        inspector = inspect(engine)
        has_audit = inspector.has_table(db.AuditRow.__tablename__)
    except (SQLAlchemyError, ImportError, ValueError) as error:
        # A wrong URL, host or password: one line naming the setting, the password hidden.
        raise CommandError(db.unavailable(database_url, error)) from None
    if not has_audit:
        raise CommandError("the database has no audit table: is it Accord's?")
    columns = {column["name"] for column in inspector.get_columns(db.AuditRow.__tablename__)}
    if "hash" not in columns:
        raise CommandError(
            "the audit table was made by an earlier version of Accord, without the hash chain: "
            "there is nothing to verify in it"
        )
    return db.session_factory(engine)


def _tenant_name(tenant: str, locale: str) -> str:
    if tenant:
        return tenant
    return "(no tenant)" if locale == "en" else "(không thuộc tenant nào)"


def _verify(session: Session, tenant: str | None, locale: str) -> int:
    from infra.db import verify_audit

    chains = verify_audit(session, tenant=tenant)
    en = locale == "en"
    broken = [chain.problem for chain in chains if chain.problem is not None]
    for chain in chains:
        print(_chain_line(chain, locale))
    if broken:
        for problem in broken:
            print(problem_text(problem, locale))
        print("Audit trail broken." if en else "Nhật ký kiểm toán đã bị can thiệp.")
        return EXIT_FAILED
    total = sum(chain.entries for chain in chains)
    print(f"{total} entries, chain intact" if en else f"{total} mục, chuỗi nguyên vẹn")
    return 0


def _chain_line(chain: AuditChain, locale: str) -> str:
    name = _tenant_name(chain.tenant, locale)
    if locale == "en":
        state = "broken" if chain.problem else f"intact, last #{chain.head_seq} {chain.head_hash}"
        return f"tenant {name}: {chain.entries} entries, {state}"
    state = (
        "bị phá vỡ"
        if chain.problem
        else f"nguyên vẹn, mục cuối #{chain.head_seq} {chain.head_hash}"
    )
    return f"tenant {name}: {chain.entries} mục, {state}"


def problem_text(problem: AuditProblem, locale: str) -> str:
    """One line naming the entry (id, event key, tenant, number) and what is wrong with it."""
    from infra.db import AuditFault

    name = _tenant_name(problem.tenant, locale)
    expected, seq = problem.expected_seq, problem.seq
    missing = f"#{expected}" if seq - expected <= 1 else f"#{expected}–#{seq - 1}"
    if locale == "en":
        what = {
            AuditFault.CHANGED: "changed: its content no longer matches its hash",
            AuditFault.REMOVED: f"entries removed before it: {missing} missing",
            AuditFault.REORDERED: f"reordered: stored where #{expected} belongs",
            AuditFault.UNLINKED: "does not follow the entry stored before it (prev_hash differs)",
        }[problem.fault]
        return (
            f"audit entry id {problem.id} (event key {problem.event_key}, tenant {name}, "
            f"#{seq}): {what}"
        )
    what = {
        AuditFault.CHANGED: "đã bị sửa: nội dung không còn khớp với mã băm",
        AuditFault.REMOVED: f"có mục bị xóa trước mục này: thiếu {missing}",
        AuditFault.REORDERED: f"bị đảo thứ tự: nằm ở chỗ của mục #{expected}",
        AuditFault.UNLINKED: "không nối tiếp mục lưu trước nó (prev_hash khác)",
    }[problem.fault]
    return (
        f"mục nhật ký id {problem.id} (khóa sự kiện {problem.event_key}, tenant {name}, "
        f"#{seq}): {what}"
    )


def _list(session: Session, args: argparse.Namespace, locale: str) -> int:
    from sqlalchemy import select

    from infra.db import AuditRow

    if args.limit < 1:
        raise CommandError("--limit must be at least 1", 2)
    query = select(AuditRow).order_by(AuditRow.id.desc()).limit(args.limit)
    if args.tenant is not None:
        query = query.where(AuditRow.tenant == args.tenant)
    if args.task is not None:
        query = query.where(AuditRow.task_id == args.task)
    rows = list(reversed(session.scalars(query).all()))
    if not rows:
        print("no audit entries" if locale == "en" else "không có mục nhật ký nào")
        return 0
    for row in rows:
        at = row.at.astimezone(LOCAL_ZONE)
        who = row.actor or "-"
        if row.operator:
            label = "operator" if locale == "en" else "người vận hành"
            who += f" ({label} {row.operator})"
        roles = ",".join(row.roles) or "-"
        detail = " ".join(f"{key}={value}" for key, value in sorted(row.detail.items()))
        print(
            f"{_tenant_name(row.tenant, locale)} #{row.seq} {at:%Y-%m-%d %H:%M:%S} "
            f"{row.action} {who} [{roles}] {row.channel} {row.task_id or '-'} "
            f"{row.request_id or '-'} {detail}".rstrip()
        )
    return 0
