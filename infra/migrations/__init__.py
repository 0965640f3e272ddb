"""The schema's migrations (Alembic): `accord db upgrade` and `accord db current`, the check
every service and command makes before using the database, and the embedded service's own
upgrade of its SQLite file.

The revisions are in `versions/`, one per change of the models in `infra.db` (see the README's
"Database migrations"). Nothing else creates or alters a table: a database whose revision is
not this version's head is refused with one line naming `accord db upgrade`.

A database created before the migrations existed (by `create_all` at start-up, no
`alembic_version` table) is adopted by `upgrade`: its tables are those of the baseline, so it is
stamped at the baseline and the later revisions bring it up to date (the first of them
rewrites the outbox's status constraint such a database may lack `abandoned` in).
"""

from __future__ import annotations

import logging
from pathlib import Path

# Alembic announces its plugins (when imported) and each step at INFO: the worker logs at INFO,
# and a check at every start-up is no news. `accord db upgrade` prints what it did itself.
logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from sqlalchemy import Connection, Engine, inspect  # noqa: E402

from infra.db import Base, OutdatedDatabase, check_schema  # noqa: E402

FOLDER = Path(__file__).resolve().parent

BASELINE = "0001"
"""The revision of the schema as it was when the migrations began."""

UPGRADE_COMMAND = "accord db upgrade"


def config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(FOLDER))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The revision this version of Accord needs."""
    revision = ScriptDirectory.from_config(config()).get_current_head()
    assert revision is not None
    return revision


def current(engine: Engine) -> str | None:
    """The database's revision; None for a database without one (empty, or created before
    the migrations)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _has_tables(connection: Connection) -> bool:
    return bool(set(inspect(connection).get_table_names()) - {"alembic_version"})


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Bring the database to `revision` (this version's head by default), in one transaction
    where the database allows DDL in one (PostgreSQL, SQLite); return (before, after).

    A database created before the migrations is adopted (stamped at the baseline) first;
    `OutdatedDatabase` if it is older than the baseline itself."""
    before = current(engine)
    with engine.begin() as connection:
        settings = config(connection)
        if before is None and _has_tables(connection):
            check_schema(engine)
            command.stamp(settings, BASELINE)
        command.upgrade(settings, revision)
    return before, current(engine) or ""


def require_current(engine: Engine) -> None:
    """`OutdatedDatabase` (one line naming `accord db upgrade`) unless the database is at this
    version's head: no schema, an earlier one, or one from a later version of Accord."""
    found = current(engine)
    wanted = head()
    if found == wanted:
        _require_columns(engine, found)
        return
    if found is None:
        tables = _has_tables_of(engine)
        if tables:
            check_schema(engine)  # older than the baseline: no upgrade in place
        state = "predates the migrations" if tables else "has no Accord schema"
        raise OutdatedDatabase(
            f"the database {state}: run `{UPGRADE_COMMAND}` (this Accord needs revision {wanted})"
        )
    scripts = ScriptDirectory.from_config(config())
    if scripts.get_revision(found) is None:
        raise OutdatedDatabase(
            f"the database is at revision {found}, unknown to this version of Accord (a later "
            f"version migrated it; this one needs {wanted}): run the later version"
        )
    raise OutdatedDatabase(
        f"the database is at revision {found}, this Accord needs {wanted}: run `{UPGRADE_COMMAND}`"
    )


def _has_tables_of(engine: Engine) -> bool:
    with engine.connect() as connection:
        return _has_tables(connection)


def _require_columns(engine: Engine, revision: str) -> None:
    """`OutdatedDatabase` if a table or column of the models is missing although the revision
    says it is there: the schema was altered by hand (a column dropped), which no upgrade
    restores."""
    inspector = inspect(engine)
    tables = set(inspector.get_table_names())
    for table in Base.metadata.sorted_tables:
        if table.name not in tables:
            missing = f"has no table {table.name!r}"
        else:
            present = {column["name"] for column in inspector.get_columns(table.name)}
            absent = [column.name for column in table.columns if column.name not in present]
            if not absent:
                continue
            missing = f"has no column {', '.join(absent)} in its table {table.name!r}"
        raise OutdatedDatabase(
            f"the database is at revision {revision} but {missing}: it was altered by hand; "
            "restore it from a backup (no upgrade puts back what was removed)"
        )
