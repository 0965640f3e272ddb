"""The schema's migrations, on SQLite and PostgreSQL (`database_url`, tests/conftest.py):
`accord db upgrade` keeps the data of a database created before the migrations and fixes its
outbox constraint; the models and the migrations agree; a database not at the head, or not
reachable, stops a command, the service and the worker with one line; the pool fits the
worker's concurrent activities; `accord retention purge` blanks old personal data only."""

from __future__ import annotations

import inspect as python_inspect
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from postgres import Cluster
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.exc import IntegrityError

import worker
from accord.cli.commands import main
from infra import migrations
from infra.db import (
    AUDIT_TABLE,
    Base,
    OutboxRow,
    SubmissionRow,
    UploadRow,
    add_audit_rows,
    make_engine,
    session_factory,
    verify_audit,
)
from infra.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def use_database(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("ACCORD_DATABASE_URL", database_url)
    monkeypatch.setenv("ACCORD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ACCORD_ENV_FILE", "/dev/null")
    monkeypatch.setenv("ACCORD_LOCALE", "en")
    return database_url


def outbox_row(n: int, *, status: str = "sent", created: datetime | None = None) -> dict[str, Any]:
    return {
        "business_key": f"kh-01/bao-cao/SNV/2026/reminder/{n}",
        "recipient_email": f"can-bo-{n}@nghean.gov.vn",
        "recipient_officer_id": f"can-bo-{n}",
        "kind": "reminder",
        "task_id": "kh-01/bao-cao/SNV/2026",
        "agreement_id": "kh-01",
        "tenant": "nghe-an",
        "subject": f"Nhắc hạn báo cáo {n}",
        "status": status,
        "attempts": 1,
        "last_error": None,
        "message_id": f"<{n}@accord>",
        "created_at": created or datetime(2026, 3, 2, 1, n, tzinfo=UTC),
        "sent_at": None,
    }


def audit_entry(n: int) -> dict[str, Any]:
    return {
        "event_key": f"kh-01/e/{n}",
        "at": datetime(2026, 3, 2, 2, n, tzinfo=UTC),
        "agreement_id": "kh-01",
        "action": "submitted",
        "actor": "snv-dau-moi",
        "tenant": "nghe-an",
        "channel": "cli",
    }


def table_rows(engine: Engine, table: str) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        result = connection.execute(text(f"SELECT * FROM {table} ORDER BY 1"))
        return [dict(row._mapping) for row in result]


def kept(rows: list[dict[str, Any]], like: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` cut to the columns `like`'s rows have (later revisions add columns)."""
    return [{column: row[column] for column in old} for row, old in zip(rows, like, strict=True)]


def test_upgrade_keeps_the_data_of_a_database_from_before_the_migrations(
    use_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database as `create_all` made it before the outbox's `abandoned` status (the
    baseline's tables, the old constraint, no revision table), holding data: `accord db upgrade`
    adopts it, keeps every row and lets the outbox take `abandoned`."""
    engine = make_engine(use_database)
    with engine.begin() as connection:
        command.downgrade(migrations.config(connection), "0001")  # the old constraint
        connection.execute(text("DROP TABLE alembic_version"))
        connection.execute(
            text(
                "INSERT INTO agencies (tenant, code, province, name, kind, groups, position) "
                "VALUES ('nghe-an', 'SNV', 'Nghệ An', 'Sở Nội vụ', 'so', '[]', 0)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO officers (tenant, id, name, email, agency_code, roles, locale, "
                "active) VALUES ('nghe-an', 'snv-dau-moi', 'Nguyễn Văn A', 'a@nghean.gov.vn', "
                "'SNV', '[\"focal\"]', 'vi', true)"
            )
        )
        connection.execute(insert(OutboxRow), [outbox_row(1), outbox_row(2)])
    with session_factory(engine)() as session:
        add_audit_rows(session, rows=[audit_entry(n) for n in range(3)])
        session.commit()
    # The premise: this database refuses an abandoned row.
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert(OutboxRow), [outbox_row(3, status="abandoned")])
    before = {t: table_rows(engine, t) for t in ("agencies", "officers", "outbox", "audit")}
    assert [len(rows) for rows in before.values()] == [1, 1, 2, 3]
    assert main(["db", "current"]) == 1
    assert "revision none; this version needs" in capsys.readouterr().out

    assert main(["db", "upgrade"]) == 0
    assert f"upgraded from nothing to {migrations.head()}" in capsys.readouterr().out

    assert {t: kept(table_rows(engine, t), before[t]) for t in before} == before
    with engine.begin() as connection:
        connection.execute(insert(OutboxRow), [outbox_row(3, status="abandoned")])
    migrations.require_current(engine)
    assert main(["db", "current"]) == 0
    assert main(["audit", "verify"]) == 0
    engine.dispose()


def test_the_models_and_the_migrations_agree(database_url: str) -> None:
    """Autogenerate finds nothing to change in a database built by the migrations alone."""
    engine = make_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_a_database_without_the_schema_is_refused_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACCORD_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setenv("ACCORD_ENV_FILE", "/dev/null")
    monkeypatch.setenv("ACCORD_CLAIMS__OPERATOR", "van-hanh")
    monkeypatch.setenv("ACCORD_CLAIMS__KEY", "k" * 40)
    assert main(["retention", "purge"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "accord retention: the database has no Accord schema: run `accord db upgrade` "
        f"(this Accord needs revision {migrations.head()})\n"
    )


def test_the_pool_fits_the_workers_concurrent_activities(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite keeps one connection per thread, no pool size to set")
    default = python_inspect.signature(worker.build_worker).parameters["max_concurrent_activities"]
    assert default.default == 50
    sessions = worker.open_database(Settings(database_url=database_url))
    engine = sessions.kw["bind"]
    assert engine.pool.size() == 50
    assert engine.pool._max_overflow == 5  # the portal and the start-up deploy beside them
    engine.dispose()


def run_entry_point(args: list[str], url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ACCORD_DATABASE_URL": url,
        "ACCORD_DATA_DIR": str(tmp_path / "data"),
        "ACCORD_ENV_FILE": "/dev/null",
        "ACCORD_TEMPORAL__ADDRESS": "127.0.0.1:1",
        "ACCORD_CLAIMS__KEY": "k" * 40,
    }
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT
    )


@pytest.mark.parametrize(
    "entry_point",
    [
        ["-m", "accord.cli", "db", "upgrade"],
        ["-m", "accord.cli", "run", "--no-deploy"],
        ["worker.py"],
        ["-m", "accord.cli", "audit", "verify"],
    ],
    ids=["db-upgrade", "run", "worker", "audit"],
)
def test_a_wrong_database_url_or_password_is_one_line(
    entry_point: list[str], postgres_cluster: Cluster, tmp_path: Path
) -> None:
    """A refused password, an unreachable host and a database that does not exist: one line
    naming the setting, never the password, no traceback."""
    wrong = [
        # trust cluster: a role that does not exist is refused like a wrong password
        f"postgresql+psycopg://nobody:Mat-khau-9@127.0.0.1:{postgres_cluster.port}/postgres",
        "postgresql+psycopg://accord:Mat-khau-9@127.0.0.1:1/accord",
        f"postgresql+psycopg://postgres:Mat-khau-9@127.0.0.1:{postgres_cluster.port}/khong-co",
    ]
    for url in wrong:
        done = run_entry_point(entry_point, url, tmp_path)
        assert done.returncode == 1, done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert "ACCORD_DATABASE_URL" in done.stderr
        assert "Mat-khau-9" not in done.stderr + done.stdout
        assert "Traceback" not in done.stderr


def test_retention_purge_blanks_old_personal_data_only(
    use_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    old, young = now - timedelta(days=400), now - timedelta(days=100)
    engine = make_engine(use_database)
    with engine.begin() as connection:
        connection.execute(
            insert(OutboxRow),
            [
                outbox_row(1, created=old) | {"last_error": "550 a@b.vn unknown"},
                outbox_row(2, created=young),
                outbox_row(3, created=old, status="pending"),
            ],
        )
        for n, at in ((1, old), (2, young)):
            connection.execute(
                insert(SubmissionRow),
                {
                    "task_id": f"kh-01/bao-cao/SNV/{n}",
                    "agreement_id": "kh-01",
                    "tenant": "nghe-an",
                    "agency": "SNV",
                    "officer_id": "snv-dau-moi",
                    "submitted_at": at,
                    "handled_at": at,
                    "late": False,
                    "summary": "Ông Nguyễn Văn B khiếu nại",
                    "indicators": {"so-don": 3, "ti-le": {"done": 1, "total": 2}, "ghi-chu": "B"},
                    "attachments": ["sha256:" + "a" * 64, "don-cua-ong-B.pdf"],
                    "created_at": at,
                },
            )
            connection.execute(
                insert(UploadRow),
                {
                    "sha256": "a" * 64,
                    "size": 10,
                    "content_type": "application/pdf",
                    "name": f"don-{n}.pdf",
                    "tenant": "nghe-an",
                    "officer_id": "snv-dau-moi",
                    "task_id": f"kh-01/bao-cao/SNV/{n}",
                    "at": at,
                },
            )
    with session_factory(engine)() as session:
        add_audit_rows(session, rows=[audit_entry(n) for n in range(2)])
        session.commit()
    young_before = {
        "outbox": [
            r for r in table_rows(engine, "outbox") if r["business_key"].endswith(("/2", "/3"))
        ],
    }

    # Without --yes nothing changes.
    assert main(["retention", "purge", "--older-than", "365"]) == 0
    assert "nghe-an: 1 mail, 1 reports, 1 uploads" in capsys.readouterr().out
    assert main(["retention", "purge", "--older-than", "365", "--yes"]) == 0
    assert "Purged" in capsys.readouterr().out

    with session_factory(engine)() as session:
        mail = {row.recipient_officer_id: row for row in session.scalars(select(OutboxRow))}
        assert len(mail) == 3
        assert mail["can-bo-1"].subject == ""
        assert mail["can-bo-1"].last_error is None
        assert mail["can-bo-1"].recipient_email == (
            "purged:" + __import__("hashlib").sha256(b"can-bo-1@nghean.gov.vn").hexdigest()
        )
        assert mail["can-bo-1"].status == "sent" and mail["can-bo-1"].message_id == "<1@accord>"
        reports = {row.task_id[-1]: row for row in session.scalars(select(SubmissionRow))}
        assert reports["1"].summary == ""
        assert reports["1"].indicators == {
            "so-don": 3,
            "ti-le": {"done": 1, "total": 2},
            "ghi-chu": "",
        }
        assert reports["1"].attachments == ["sha256:" + "a" * 64, "purged"]
        assert reports["2"].summary == "Ông Nguyễn Văn B khiếu nại"
        assert reports["2"].attachments[1] == "don-cua-ong-B.pdf"
        names = sorted(row.name for row in session.scalars(select(UploadRow)))
        assert names == ["", "don-2.pdf"]
        purged = session.execute(
            select(AUDIT_TABLE.c.action, AUDIT_TABLE.c.detail).where(
                AUDIT_TABLE.c.action == "retention_purged"
            )
        ).all()
        assert [(a, d["outbox"], d["submissions"], d["uploads"]) for a, d in purged] == [
            ("retention_purged", 1, 1, 1)
        ]
        assert [(c.tenant, c.entries, c.problem) for c in verify_audit(session)] == [
            ("nghe-an", 3, None)
        ]
    # The young and the pending rows are untouched.
    assert [
        r for r in table_rows(engine, "outbox") if r["business_key"].endswith(("/2", "/3"))
    ] == (young_before["outbox"])
    assert main(["audit", "verify"]) == 0
    # Again: nothing left to purge.
    capsys.readouterr()
    assert main(["retention", "purge", "--older-than", "365", "--yes"]) == 0
    assert "Nothing older than" in capsys.readouterr().out
    engine.dispose()


def test_a_column_dropped_by_hand_is_refused_with_one_line(
    use_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The revision says head, the table says otherwise: no upgrade restores a dropped column,
    so the commands stop and say so instead of failing later on a missing column."""
    engine = make_engine(use_database)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE outbox DROP COLUMN message_id"))
    engine.dispose()
    assert main(["db", "upgrade"]) == 0
    assert f"already at revision {migrations.head()}" in capsys.readouterr().out
    assert main(["retention", "purge"]) == 1
    assert capsys.readouterr().err == (
        f"accord retention: the database is at revision {migrations.head()} but has no column "
        "message_id in "
        "its table 'outbox': it was altered by hand; restore it from a backup (no upgrade puts "
        "back what was removed)\n"
    )
