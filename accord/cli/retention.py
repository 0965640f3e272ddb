"""`accord retention purge [--older-than DAYS] [--yes]`: blank the personal data of mail and
reports older than the retention age (ACCORD_RETENTION_DAYS unless given), keeping counts,
dates, digests and the audit chain (`infra.retention` says what is blanked). Without `--yes`
it only counts what it would blank.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from accord.cli.engine import EXIT_BAD_INPUT, CommandError, load_settings, open_database


def add_retention_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    purge = actions.add_parser(
        "purge",
        help="blank mail subjects and addresses and report text older than the retention age",
        description="Blank the personal data of mail and reports older than DAYS days "
        "(ACCORD_RETENTION_DAYS by default): counts, dates, digests and the audit chain stay. "
        "Without --yes, only print what would be blanked.",
    )
    purge.add_argument("--older-than", type=int, metavar="DAYS", help="the age, in days")
    purge.add_argument("--yes", action="store_true", help="blank them (else: count only)")
    purge.set_defaults(retention_action="purge")


def retention(args: argparse.Namespace) -> int:
    from infra.retention import purge

    settings = load_settings()
    days = args.older_than if args.older_than is not None else settings.retention_days
    if days < 1:
        raise CommandError(f"--older-than {days}: give a number of days ≥ 1", EXIT_BAD_INPUT)
    now = datetime.now(UTC)
    before = now - timedelta(days=days)
    en = settings.locale == "en"
    with open_database(settings)() as session:
        counts = purge(
            session, before=before, now=now, operator=settings.claims.operator, apply=args.yes
        )
    since = before.date().isoformat()
    for tenant in counts.tenants():
        outbox, reports, uploads = (
            counts.outbox[tenant],
            counts.submissions[tenant],
            counts.uploads[tenant],
        )
        print(
            f"{tenant}: {outbox} mail, {reports} reports, {uploads} uploads before {since}"
            if en
            else f"{tenant}: {outbox} thư, {reports} báo cáo, {uploads} tệp đính kèm trước {since}"
        )
    if not counts.total():
        print(f"Nothing older than {since} to purge." if en else f"Không có gì trước {since}.")
    elif args.yes:
        print("Purged; audited." if en else "Đã xoá dữ liệu cá nhân; đã ghi nhật ký kiểm toán.")
    else:
        print(
            "Nothing changed: add --yes to purge." if en else "Chưa thay đổi gì: thêm --yes để xoá."
        )
    return 0
