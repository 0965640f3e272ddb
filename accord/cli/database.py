"""`accord db upgrade` and `accord db current`: the schema's migrations, the deploy step.

`upgrade` brings the settings' database (ACCORD_DATABASE_URL, else the data folder's SQLite) to
this version's schema, adopting a database created before the migrations; run it as the role
that owns the tables (the only one with DDL rights), before starting the new version's workers.
`current` says which revision the database is at and whether it is this version's. Nothing else
alters the schema, except `accord run`'s embedded mode, which upgrades its own SQLite file.
"""

from __future__ import annotations

import argparse

from accord.cli.engine import EXIT_FAILED, CommandError, load_settings


def add_db_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    actions.add_parser(
        "upgrade",
        help="migrate the database to this version's schema (the deploy step)",
        description="Migrate the database named by ACCORD_DATABASE_URL (or the data folder's "
        "SQLite) to this version's schema. Run it as the role owning the tables.",
    ).set_defaults(db_action="upgrade")
    actions.add_parser(
        "current",
        help="print the database's schema revision; exit 1 unless it is this version's",
        description="Print the database's schema revision and this version's; exit 1 when "
        "they differ (run `accord db upgrade`).",
    ).set_defaults(db_action="current")


def db(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from infra import migrations
    from infra.db import OutdatedDatabase, make_engine, shown_url, unavailable

    settings = load_settings()
    url = settings.resolved_database_url
    en = settings.locale == "en"
    try:
        engine = make_engine(url)
    except (SQLAlchemyError, ImportError, ValueError) as error:
        raise CommandError(unavailable(url, error)) from None
    try:
        wanted = migrations.head()
        if args.db_action == "upgrade":
            before, after = migrations.upgrade(engine)
            if before == after:
                print(
                    f"{shown_url(url)}: already at revision {after}"
                    if en
                    else f"{shown_url(url)}: đã ở phiên bản lược đồ {after}"
                )
            else:
                print(
                    f"{shown_url(url)}: upgraded from {before or 'nothing'} to {after}"
                    if en
                    else f"{shown_url(url)}: đã nâng cấp lược đồ từ {before or 'trống'} lên {after}"
                )
            return 0
        found = migrations.current(engine)
        print(
            f"{shown_url(url)}: revision {found or 'none'}; this version needs {wanted}"
            if en
            else f"{shown_url(url)}: phiên bản lược đồ {found or 'chưa có'}; phiên bản này cần "
            f"{wanted}"
        )
        if found != wanted:
            print("Run `accord db upgrade`." if en else "Hãy chạy `accord db upgrade`.")
            return EXIT_FAILED
        return 0
    except OutdatedDatabase as error:
        raise CommandError(str(error)) from None
    except SQLAlchemyError as error:
        raise CommandError(unavailable(url, error)) from None
    finally:
        engine.dispose()
