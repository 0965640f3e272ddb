"""The database every store, mail and end-to-end test runs on: SQLite and PostgreSQL.

`database_url` is parametrised: `sqlite` (a new file in the test's folder) and `postgresql` (a
new database in one throwaway cluster per test session, `tests/postgres.py`, copied from a
template that the migrations built once: `CREATE DATABASE … TEMPLATE` takes a few tens of
milliseconds). Both are migrated by the same code as `accord db upgrade`. Without PostgreSQL's
binaries or psycopg the `postgresql` cases are skipped (failed under
ACCORD_REQUIRE_POSTGRES=1, as in CI).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres import Cluster, throwaway_cluster

from infra import migrations
from infra.db import make_engine

TEMPLATE = "accord_template"
_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """One cluster for the session, holding a database migrated to head as the template."""
    with throwaway_cluster() as cluster:
        created = cluster.psql("postgres", "postgres", "-c", f"CREATE DATABASE {TEMPLATE}")
        assert created.returncode == 0, created.stderr
        engine = make_engine(cluster.url("postgres", TEMPLATE))
        migrations.upgrade(engine)
        engine.dispose()  # CREATE DATABASE … TEMPLATE needs it without connections
        yield cluster


def new_postgres_database(cluster: Cluster, *, template: str = TEMPLATE) -> str:
    """A new database copied from `template` (migrated; `template0` for an empty one): its
    URL as the superuser."""
    name = f"accord_test_{next(_numbers)}"
    created = cluster.psql(
        "postgres", "postgres", "-c", f"CREATE DATABASE {name} TEMPLATE {template}"
    )
    assert created.returncode == 0, created.stderr
    return cluster.url("postgres", name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new database at the migrations' head (empty tables)."""
    if request.param == "postgresql":
        cluster: Cluster = request.getfixturevalue("postgres_cluster")
        return new_postgres_database(cluster)
    url = f"sqlite:///{tmp_path / 'data' / 'accord.db'}"
    engine = make_engine(url)
    migrations.upgrade(engine)
    engine.dispose()
    return url
