"""The audit trail on PostgreSQL: the application's role set up by
`deploy/postgresql-grants.sql` cannot UPDATE, DELETE or TRUNCATE it, the triggers refuse the
owner too, and two processes writing at once leave one valid chain.

The cluster is a throwaway one (`tests/postgres.py`: skipped without PostgreSQL's binaries or
psycopg, failed instead under ACCORD_REQUIRE_POSTGRES=1).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from postgres import Cluster, throwaway_cluster
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from infra import migrations
from infra.db import add_audit_rows, make_engine, open_engine, session_factory, verify_audit

ROOT = Path(__file__).resolve().parents[1]
GRANTS = ROOT / "deploy" / "postgresql-grants.sql"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A throwaway cluster with an owner role, an application role and their database."""
    with throwaway_cluster() as server:
        setup = server.psql(
            "postgres",
            "postgres",
            "-c",
            "CREATE ROLE accord_owner LOGIN",
            "-c",
            "CREATE ROLE accord_app LOGIN",
            "-c",
            "CREATE DATABASE accord OWNER accord_owner",
        )
        assert setup.returncode == 0, setup.stderr
        yield server


@pytest.fixture(scope="module")
def engines(cluster: Cluster) -> Iterator[tuple[Engine, Engine]]:
    """(owner, application): the owner created the schema and ran the grants file."""
    owner = make_engine(cluster.url("accord_owner", "accord"))
    migrations.upgrade(owner)  # `accord db upgrade`, as the owner
    granted = cluster.psql("accord_owner", "accord", "-v", "app_role=accord_app", "-f", str(GRANTS))
    assert granted.returncode == 0, granted.stderr
    # The application starts as the worker does (the schema checked), without DDL rights.
    app = open_engine(cluster.url("accord_app", "accord"))
    yield owner, app
    owner.dispose()
    app.dispose()


def rows_of(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text("SELECT * FROM audit ORDER BY id"))]


def test_the_application_role_can_append_but_not_rewrite(engines: tuple[Engine, Engine]) -> None:
    owner, app = engines
    sessions = session_factory(app)
    with sessions() as session:
        appended = add_audit_rows(
            session,
            rows=[
                {
                    "event_key": f"pg/{n}",
                    "at": datetime(2026, 3, 2, 1, n, tzinfo=UTC),
                    "agreement_id": "kh-01",
                    "action": "submitted",
                    "actor": "snv-dau-moi",
                    "tenant": "nghe-an",
                    "channel": "cli",
                }
                for n in range(3)
            ],
        )
        session.commit()
    assert appended == ["pg/0", "pg/1", "pg/2"]
    before = rows_of(owner)
    assert [row[0] for row in before] == sorted(row[0] for row in before)

    for statement in (
        "UPDATE audit SET actor = 'ke-gia-mao'",
        "DELETE FROM audit WHERE event_key = 'pg/1'",
        "TRUNCATE audit",
    ):
        # The application's role: no such privilege.
        with app.connect() as connection, pytest.raises(DBAPIError, match="permission denied"):
            connection.execute(text(statement))
        # The owner holds every privilege: the trigger refuses.
        with owner.connect() as connection, pytest.raises(DBAPIError, match="append-only"):
            connection.execute(text(statement))
    assert rows_of(owner) == before
    with session_factory(app)() as session:
        assert [(c.tenant, c.entries, c.problem) for c in verify_audit(session)] == [
            ("nghe-an", 3, None)
        ]


WRITER = """
import sys
from datetime import UTC, datetime
from infra.db import add_audit_rows, make_engine, session_factory

url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
sessions = session_factory(make_engine(url))
for n in range(count):
    with sessions() as session:
        add_audit_rows(session, rows=[
            {"event_key": f"{name}/{n}/{part}", "at": datetime.now(UTC), "agreement_id": "kh-01",
             "action": "test", "tenant": ("nghe-an", "quang-binh")[n % 2]}
            for part in "ab"
        ])
        session.commit()
"""


def test_two_concurrent_writers_leave_one_valid_chain(
    cluster: Cluster, engines: tuple[Engine, Engine], tmp_path: Path
) -> None:
    owner, _ = engines
    with owner.connect() as connection:
        before: dict[str, int] = dict(
            connection.execute(text("SELECT tenant, count(*) FROM audit GROUP BY tenant")).all()
        )
    url = cluster.url("accord_app", "accord")
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, f"w{i}", "60"],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for writer in writers:
        _, stderr = writer.communicate(timeout=180)
        assert writer.returncode == 0, stderr

    # 2 writers x 60 batches x 2 entries, alternating tenants: 120 more in each.
    with owner.connect() as connection:
        after: dict[str, int] = dict(
            connection.execute(text("SELECT tenant, count(*) FROM audit GROUP BY tenant")).all()
        )
        assert after == {
            "nghe-an": before.get("nghe-an", 0) + 120,
            "quang-binh": before.get("quang-binh", 0) + 120,
        }
        for tenant, count in after.items():
            seqs = connection.scalars(
                text("SELECT seq FROM audit WHERE tenant = :t ORDER BY id"), {"t": tenant}
            ).all()
            assert seqs == list(range(1, count + 1))

    # `accord audit verify` as the application's role.
    env = {
        **os.environ,
        "ACCORD_DATABASE_URL": url,
        "ACCORD_DATA_DIR": str(tmp_path),
        "ACCORD_LOCALE": "en",
    }
    result = subprocess.run(
        [sys.executable, "-m", "accord.cli", "audit", "verify"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    total = sum(after.values())
    assert result.stdout.splitlines()[-1] == f"{total} entries, chain intact"


def test_the_application_role_runs_the_stores_operations_without_ddl(
    engines: tuple[Engine, Engine],
) -> None:
    """Under exactly the grants of deploy/postgresql-grants.sql (no DDL): the directory, an
    agreement, a report, mail in the outbox, a purge by age, the audit; and no DDL at all."""
    from datetime import timedelta

    from harness import QUANG_BINH

    from agreements.loader import load_directory
    from infra import db
    from infra.retention import purge

    _owner, app = engines
    sessions = session_factory(app)
    migrations.require_current(app)
    with sessions() as session:
        db.upsert_directory(session, directory=load_directory(QUANG_BINH))
        db.register_agreement(session, agreement_id="kh-grants", tenant="quang-binh")
        session.add(
            db.OutboxRow(
                business_key="kh-grants/t/reminder/1",
                recipient_email="a@quangbinh.example",
                recipient_officer_id="a",
                kind="reminder",
                task_id="kh-grants/t",
                agreement_id="kh-grants",
                tenant="quang-binh",
                subject="Nhắc hạn",
                status="sent",
                attempts=1,
                created_at=datetime(2020, 1, 1, tzinfo=UTC),
            )
        )
        session.commit()
    now = datetime.now(UTC)
    with sessions() as session:
        counts = purge(session, before=now - timedelta(days=30), now=now, operator=None, apply=True)
    assert counts.outbox["quang-binh"] == 1
    with app.connect() as connection, pytest.raises(DBAPIError, match="permission denied"):
        connection.execute(text("CREATE TABLE khong_duoc (id integer)"))
