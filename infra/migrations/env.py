"""Alembic's environment for Accord's schema: the models of `infra.db` are the target.

Run in-process by `infra.migrations` (`accord db upgrade`, the embedded service, the tests),
which hands over an open connection; or by Alembic's command line with
`infra/migrations/alembic.ini`, which connects to the settings' database. Logging is left as
the caller configured it. Offline (SQL script) mode is not supported.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection

from infra.db import Base, UtcDateTime, make_engine

config = context.config


def render_item(kind: str, item: Any, autogen: AutogenContext) -> str | Literal[False]:
    """A revision names SQLAlchemy's own types, never the models' module: it must keep
    working when the models change after it."""
    if kind == "type" and isinstance(item, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite alters a table by copying it: the batch mode.
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("Accord's migrations run online only: `accord db upgrade`")

given = config.attributes.get("connection")
if given is not None:
    run_migrations(given)
else:
    from infra.settings import Settings

    engine = make_engine(Settings().resolved_database_url)
    try:
        with engine.connect() as connection:
            run_migrations(connection)
    finally:
        engine.dispose()
