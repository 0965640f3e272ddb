"""The audit trail on PostgreSQL: the application's role set up by
`deploy/postgresql-grants.sql` cannot UPDATE, DELETE or TRUNCATE it, the triggers refuse the
owner too, and two processes writing at once leave one valid chain.

A throwaway cluster is started on loopback in a temporary folder with the PostgreSQL server
binaries found on the machine (Debian's `postgresql-15` puts them in
/usr/lib/postgresql/15/bin) and the `psycopg` driver (`pip install 'psycopg[binary]'`, the
`postgres` extra). Without either the test is skipped, saying which is missing; with
ACCORD_REQUIRE_POSTGRES=1 (CI) it fails instead. As root, the cluster runs as the `postgres`
user, since initdb refuses root.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from infra.db import add_audit_rows, create_schema, make_engine, session_factory, verify_audit

ROOT = Path(__file__).resolve().parents[1]
GRANTS = ROOT / "deploy" / "postgresql-grants.sql"


def _missing(reason: str) -> None:
    if os.environ.get("ACCORD_REQUIRE_POSTGRES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _server_binaries() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.insert(0, Path(on_path).parent)
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres", "psql")):
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Cluster:
    bin: Path
    port: int

    def url(self, role: str, database: str = "accord") -> str:
        return f"postgresql+psycopg://{role}@127.0.0.1:{self.port}/{database}"

    def psql(self, role: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(self.bin / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                f"postgresql://{role}@127.0.0.1:{self.port}/accord",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if importlib.util.find_spec("psycopg") is None:
        _missing("psycopg is not installed (pip install 'psycopg[binary]', the postgres extra)")
    binaries = _server_binaries()
    if binaries is None:
        _missing("no PostgreSQL server binaries (initdb, pg_ctl, postgres, psql) on this machine")
    assert binaries is not None
    folder = Path(tempfile.mkdtemp(prefix="accord-pg-"))
    data = folder / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses root: the cluster belongs to the postgres user.
        if shutil.which("runuser") is None:
            _missing("running as root without runuser: cannot start PostgreSQL as another user")
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*command: str) -> None:
        done = subprocess.run(
            [*as_user, *command], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stdout}{done.stderr}")

    try:
        run(
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        )
        run(
            str(binaries / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(folder / "server.log"),
            "-w",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off",
            "start",
        )
        server = Cluster(binaries, port)
        setup = subprocess.run(
            [
                str(binaries / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                f"postgresql://postgres@127.0.0.1:{port}/postgres",
                "-c",
                "CREATE ROLE accord_owner LOGIN",
                "-c",
                "CREATE ROLE accord_app LOGIN",
                "-c",
                "CREATE DATABASE accord OWNER accord_owner",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert setup.returncode == 0, setup.stderr
        yield server
    finally:
        subprocess.run(
            [*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def engines(cluster: Cluster) -> Iterator[tuple[Engine, Engine]]:
    """(owner, application): the owner created the schema and ran the grants file."""
    owner = make_engine(cluster.url("accord_owner"))
    create_schema(owner)
    granted = cluster.psql("accord_owner", "-v", "app_role=accord_app", "-f", str(GRANTS))
    assert granted.returncode == 0, granted.stderr
    app = make_engine(cluster.url("accord_app"))
    # The application starts as the worker does (create_schema), without DDL rights.
    create_schema(app)
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
    url = cluster.url("accord_app")
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
