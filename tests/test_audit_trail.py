"""The audit trail cannot be rewritten unnoticed: triggers refuse UPDATE and DELETE, and
`accord audit verify` finds what an attacker who dropped them changed, removed or reordered.

Everything runs on a real SQLite file; `accord audit verify` runs as a subprocess, as an
operator would run it. Expectations (which entry, which number) come from what each test did
to the table, read back with plain `sqlite3`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from accord.cli import main
from activities.models import AuditBatch, AuditEntry
from activities.store import StoreActivities
from infra import migrations
from infra.db import (
    AuditRow,
    add_audit_rows,
    make_engine,
    session_factory,
    verify_audit,
)

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
TENANT = "nghe-an"


def entry(n: int, tenant: str | None = TENANT, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "event_key": f"{tenant or 'x'}/task-{n}/submitted",
        "at": T0 + timedelta(minutes=n),
        "agreement_id": "kh-01",
        "task_id": f"kh-01/bao-cao/SNV/2026-q{n}",
        "actor": "snv-dau-moi",
        "action": "submitted",
        "detail": {"late": "false", "n": str(n)},
        "tenant": tenant,
        "roles": ["focal_point"],
        "channel": "cli",
        "request_id": f"req-{n}",
        "operator": "quan-tri-snv",
    }
    values.update(changes)
    return values


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def sessions(data_dir: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{data_dir / 'accord.db'}")
    migrations.upgrade(engine)
    yield session_factory(engine)
    engine.dispose()


def append(sessions: sessionmaker[Session], rows: list[dict[str, Any]]) -> list[str]:
    with sessions() as session:
        appended = add_audit_rows(session, rows=rows)
        session.commit()
    return appended


@pytest.fixture
def trail(sessions: sessionmaker[Session], data_dir: Path) -> Path:
    """Five entries of Nghệ An and two of no tenant; the database file."""
    for n in range(1, 6):
        append(sessions, [entry(n)])
    append(sessions, [entry(1, tenant=None), entry(2, tenant=None)])
    return data_dir / "accord.db"


def verify(data_dir: Path, *args: str, locale: str = "en") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ACCORD_DATA_DIR": str(data_dir),
        "ACCORD_LOCALE": locale,
    }
    env.pop("ACCORD_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "accord.cli", "audit", "verify", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=data_dir.parent,
        timeout=120,
        check=False,
    )


def attacker(database: Path) -> sqlite3.Connection:
    """A plain connection of someone with DDL rights, who drops the append-only triggers."""
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("DROP TRIGGER audit_no_update")
    connection.execute("DROP TRIGGER audit_no_delete")
    return connection


def row_of(connection: sqlite3.Connection, event_key: str) -> tuple[int, int]:
    """(id, seq) of an entry."""
    found = connection.execute(
        "SELECT id, seq FROM audit WHERE event_key = ?", (event_key,)
    ).fetchone()
    assert found is not None
    return found[0], found[1]


# --------------------------------------------------------------------------------------------
# Append-only: the triggers


def snapshot(database: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT * FROM audit ORDER BY id").fetchall()


def test_update_and_delete_are_refused_and_nothing_changes(
    sessions: sessionmaker[Session], trail: Path
) -> None:
    before = snapshot(trail)
    attempts = [
        update(AuditRow).where(AuditRow.seq == 3).values(actor="ke-gia-mao"),
        update(AuditRow).values(detail={}),
        delete(AuditRow).where(AuditRow.seq == 3),
        delete(AuditRow),
    ]
    for attempt in attempts:
        with sessions() as session, pytest.raises(DBAPIError, match="append-only"):
            session.execute(attempt)
            session.commit()
    # Through the ORM as well: a changed attribute, a deleted object.
    with sessions() as session, pytest.raises(DBAPIError, match="UPDATE refused"):
        row = session.scalars(
            select(AuditRow).where(AuditRow.tenant == TENANT, AuditRow.seq == 2)
        ).one()
        row.action = "waived"
        session.commit()
    with sessions() as session, pytest.raises(DBAPIError, match="DELETE refused"):
        session.delete(
            session.scalars(
                select(AuditRow).where(AuditRow.tenant == TENANT, AuditRow.seq == 2)
            ).one()
        )
        session.commit()
    # And with plain SQL.
    with sqlite3.connect(trail) as connection, pytest.raises(sqlite3.DatabaseError):
        connection.execute("UPDATE audit SET actor = 'ke-gia-mao'")
    assert snapshot(trail) == before
    assert verify(trail.parent).returncode == 0


# --------------------------------------------------------------------------------------------
# The chain, checked by `accord audit verify`


def test_an_intact_trail_verifies(trail: Path) -> None:
    result = verify(trail.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "7 entries, chain intact"
    with sqlite3.connect(trail) as connection:
        (last_hash,) = connection.execute(
            "SELECT hash FROM audit WHERE tenant = ? AND seq = 5", (TENANT,)
        ).fetchone()
    assert f"tenant {TENANT}: 5 entries, intact, last #5 {last_hash}" in result.stdout

    one = verify(trail.parent, "--tenant", TENANT, locale="vi")
    assert one.returncode == 0, one.stdout + one.stderr
    assert one.stdout.splitlines()[-1] == "5 mục, chuỗi nguyên vẹn"


def test_a_changed_detail_is_found(trail: Path) -> None:
    with attacker(trail) as connection:
        entry_id, _ = row_of(connection, f"{TENANT}/task-3/submitted")
        connection.execute(
            "UPDATE audit SET detail = ? WHERE id = ?",
            (json.dumps({"late": "true", "n": "3"}), entry_id),
        )
    result = verify(trail.parent)
    assert result.returncode == 1
    assert (
        f"audit entry id {entry_id} (event key {TENANT}/task-3/submitted, tenant {TENANT}, #3): "
        "changed: its content no longer matches its hash"
    ) in result.stdout
    assert "Audit trail broken." in result.stdout
    # The other tenant's chain is untouched, and verified alone it is intact.
    assert verify(trail.parent, "--tenant", "").returncode == 0


def test_a_changed_actor_with_its_hash_recomputed_is_found(trail: Path) -> None:
    """The hash has no key: an attacker can recompute the changed entry's own hash, but then
    the next entry no longer names it."""
    with attacker(trail) as connection:
        entry_id, _ = row_of(connection, f"{TENANT}/task-3/submitted")
        connection.execute("UPDATE audit SET actor = 'ke-gia-mao' WHERE id = ?", (entry_id,))
        connection.execute(
            "UPDATE audit SET hash = ? WHERE id = ?", (hash_of(connection, entry_id), entry_id)
        )
        next_id, _ = row_of(connection, f"{TENANT}/task-4/submitted")
    result = verify(trail.parent, locale="vi")
    assert result.returncode == 1
    assert (
        f"mục nhật ký id {next_id} (khóa sự kiện {TENANT}/task-4/submitted, tenant {TENANT}, "
        "#4): không nối tiếp mục lưu trước nó (prev_hash khác)"
    ) in result.stdout


def test_a_removed_entry_is_found(trail: Path) -> None:
    with attacker(trail) as connection:
        removed_id, _ = row_of(connection, f"{TENANT}/task-3/submitted")
        connection.execute("DELETE FROM audit WHERE id = ?", (removed_id,))
        next_id, _ = row_of(connection, f"{TENANT}/task-4/submitted")
    result = verify(trail.parent)
    assert result.returncode == 1
    assert (
        f"audit entry id {next_id} (event key {TENANT}/task-4/submitted, tenant {TENANT}, #4): "
        "entries removed before it: #3 missing"
    ) in result.stdout


def test_two_swapped_entries_are_found(trail: Path) -> None:
    """Entries 2 and 4 exchange every column but the storage ID: each still matches its hash
    and names its predecessor's, but they are stored out of order."""
    columns = [
        name
        for _, name, *_ in sqlite3.connect(trail).execute("PRAGMA table_info(audit)")
        if name != "id"
    ]
    with attacker(trail) as connection:
        second, _ = row_of(connection, f"{TENANT}/task-2/submitted")
        fourth, _ = row_of(connection, f"{TENANT}/task-4/submitted")
        rows = {
            row_id: connection.execute(
                f"SELECT {', '.join(columns)} FROM audit WHERE id = ?", (row_id,)
            ).fetchone()
            for row_id in (second, fourth)
        }
        # The unique keys would refuse the intermediate state: park one row first.
        connection.execute(
            "UPDATE audit SET event_key = 'parked', seq = -1, hash = 'parked' WHERE id = ?",
            (second,),
        )
        assignments = ", ".join(f"{name} = ?" for name in columns)
        for target, source in ((fourth, second), (second, fourth)):
            connection.execute(
                f"UPDATE audit SET {assignments} WHERE id = ?", (*rows[source], target)
            )
    result = verify(trail.parent)
    assert result.returncode == 1
    assert (
        f"audit entry id {second} (event key {TENANT}/task-4/submitted, tenant {TENANT}, #4): "
        "reordered: stored where #2 belongs"
    ) in result.stdout


def test_a_moved_entry_is_found(trail: Path) -> None:
    """Entry 3 moved to the other tenant's chain, its tenant rewritten and its hash recomputed:
    Nghệ An's chain misses it."""
    with attacker(trail) as connection:
        moved, _ = row_of(connection, f"{TENANT}/task-3/submitted")
        connection.execute("UPDATE audit SET tenant = '', seq = 3 WHERE id = ?", (moved,))
        connection.execute(
            "UPDATE audit SET hash = ? WHERE id = ?", (hash_of(connection, moved), moved)
        )
    result = verify(trail.parent, "--tenant", TENANT)
    assert result.returncode == 1
    assert "#4): entries removed before it: #3 missing" in result.stdout


def hash_of(connection: sqlite3.Connection, row_id: int) -> str:
    """An entry's hash worked out from the documented canonical form (README, "Audit trail"):
    SHA-256 of compact JSON with sorted keys of every column but id and hash, the instant as
    UTC with microseconds and a `v` of 1."""
    connection.row_factory = sqlite3.Row
    row = dict(connection.execute("SELECT * FROM audit WHERE id = ?", (row_id,)).fetchone())
    connection.row_factory = None
    del row["id"], row["hash"]
    at = datetime.fromisoformat(row["at"])
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    row["at"] = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    row["roles"] = json.loads(row["roles"])
    row["detail"] = json.loads(row["detail"])
    row["v"] = 1
    text = json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_the_stored_hash_is_the_documented_one(trail: Path) -> None:
    with sqlite3.connect(trail) as connection:
        rows = connection.execute(
            "SELECT id, seq, prev_hash, hash FROM audit WHERE tenant = ? ORDER BY id", (TENANT,)
        ).fetchall()
        assert [seq for _, seq, _, _ in rows] == [1, 2, 3, 4, 5]
        previous = "0" * 64
        for row_id, _, prev_hash, stored in rows:
            assert prev_hash == previous
            assert stored == hash_of(connection, row_id)
            previous = stored


def test_every_recorded_field_is_covered(sessions: sessionmaker[Session], trail: Path) -> None:
    """Changing any one column but the storage ID (then putting it back) breaks the chain at
    that entry: tenant, roles, channel, request ID and operator included."""
    changes: dict[str, Any] = {
        "event_key": "nghe-an/task-3/waived",
        "at": "2026-03-02 01:34:00.000000",
        "agreement_id": "kh-02",
        "task_id": "kh-01/bao-cao/SNV/2026-q4",
        "actor": "ke-gia-mao",
        "roles": json.dumps(["admin"]),
        "channel": "portal",
        "request_id": "req-99",
        "operator": None,
        "action": "waived",
        "detail": json.dumps({"late": "true", "n": "3"}),
        "prev_hash": "1" * 64,
        "hash": "2" * 64,
        "seq": 9,
        "tenant": "quang-binh",
    }
    with attacker(trail) as connection:
        target, _ = row_of(connection, f"{TENANT}/task-3/submitted")
        for column, value in changes.items():
            (original,) = connection.execute(
                f"SELECT {column} FROM audit WHERE id = ?", (target,)
            ).fetchone()
            connection.execute(f"UPDATE audit SET {column} = ? WHERE id = ?", (value, target))
            with sessions() as session:
                chains = verify_audit(session)
            problems = [chain.problem for chain in chains if chain.problem is not None]
            assert problems, column
            # Moved to another tenant, it leaves a gap in its chain, found at the next entry.
            if column == "tenant":
                assert (problems[0].tenant, problems[0].seq) == (TENANT, 4)
            else:
                assert problems[0].id == target, column
            connection.execute(f"UPDATE audit SET {column} = ? WHERE id = ?", (original, target))
            with sessions() as session:
                assert all(chain.problem is None for chain in verify_audit(session)), column


def test_list_prints_a_tenants_last_entries(
    trail: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(trail.parent.parent)
    monkeypatch.setenv("ACCORD_DATA_DIR", str(trail.parent))
    monkeypatch.setenv("ACCORD_LOCALE", "en")
    monkeypatch.delenv("ACCORD_DATABASE_URL", raising=False)
    assert main(["audit", "list", "--tenant", TENANT, "--limit", "2"]) == 0
    # Entries 4 and 5: T0 (01:30 UTC) + 4 and 5 minutes, shown in Vietnam's time (UTC+7).
    assert capsys.readouterr().out.splitlines() == [
        f"{TENANT} #4 2026-03-02 08:34:00 submitted snv-dau-moi (operator quan-tri-snv) "
        "[focal_point] cli kh-01/bao-cao/SNV/2026-q4 req-4 late=false n=4",
        f"{TENANT} #5 2026-03-02 08:35:00 submitted snv-dau-moi (operator quan-tri-snv) "
        "[focal_point] cli kh-01/bao-cao/SNV/2026-q5 req-5 late=false n=5",
    ]


def test_verify_refuses_a_database_without_the_chain(tmp_path: Path) -> None:
    """An audit table from before the hash chain: a clear message, not a traceback."""
    data_dir = tmp_path / "old"
    data_dir.mkdir()
    with sqlite3.connect(data_dir / "accord.db") as connection:
        connection.execute(
            "CREATE TABLE audit (id INTEGER PRIMARY KEY, event_key VARCHAR(500), at DATETIME, "
            "agreement_id VARCHAR(100), task_id VARCHAR(300), actor VARCHAR(60), "
            "action VARCHAR(100), detail JSON)"
        )
    result = verify(data_dir)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "accord audit: the audit table was made by an earlier version of Accord, without the "
        "hash chain: there is nothing to verify in it"
    )
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------------------------
# Writing: idempotent, and one chain whatever the concurrency


def test_a_repeated_event_key_takes_no_place_in_the_chain(
    sessions: sessionmaker[Session], data_dir: Path
) -> None:
    assert append(sessions, [entry(1), entry(2)]) == [
        f"{TENANT}/task-1/submitted",
        entry(2)["event_key"],
    ]
    # A retry of the same entries, one new among them, and one repeated inside the batch.
    assert append(sessions, [entry(2), entry(3), entry(3, action="other")]) == [
        f"{TENANT}/task-3/submitted"
    ]
    assert append(sessions, [entry(1)]) == []
    with sqlite3.connect(data_dir / "accord.db") as connection:
        rows = connection.execute("SELECT event_key, seq, action FROM audit ORDER BY id").fetchall()
    assert rows == [
        (f"{TENANT}/task-1/submitted", 1, "submitted"),
        (f"{TENANT}/task-2/submitted", 2, "submitted"),
        (f"{TENANT}/task-3/submitted", 3, "submitted"),
    ]
    result = verify(data_dir)
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-1] == "3 entries, chain intact"


async def test_the_store_activity_records_who_acted_and_retries_cleanly(
    sessions: sessionmaker[Session], data_dir: Path
) -> None:
    store = StoreActivities(sessions)
    audit = AuditEntry(
        event_key="kh-01/bao-cao/SNV/2026-q1/waived",
        at=T0,
        agreement_id="kh-01",
        task_id="kh-01/bao-cao/SNV/2026-q1",
        actor="snv-dau-moi",
        action="waived",
        detail={"reason": "Sáp nhập"},
        tenant=TENANT,
        roles=["admin"],
        channel="cli",
        request_id="9f1c",
        operator="van-hanh-1",
    )
    first = await ActivityEnvironment().run(store.record_audits, AuditBatch(entries=[audit]))
    retry = await ActivityEnvironment().run(store.record_audit, audit)
    assert first.created
    assert not retry.created
    with sessions() as session:
        row = session.scalars(select(AuditRow)).one()
    assert (row.tenant, row.roles, row.channel, row.request_id, row.operator, row.seq) == (
        TENANT,
        ["admin"],
        "cli",
        "9f1c",
        "van-hanh-1",
        1,
    )
    assert verify(data_dir).returncode == 0


WRITER = """
import sys
from datetime import UTC, datetime
from infra.db import add_audit_rows, make_engine, session_factory

database, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
sessions = session_factory(make_engine(f"sqlite:///{database}"))
for n in range(count):
    tenant = ("nghe-an", "quang-binh")[n % 2]
    with sessions() as session:
        add_audit_rows(session, rows=[
            {"event_key": f"{name}/{n}/a", "at": datetime.now(UTC), "agreement_id": "kh-01",
             "action": "test", "tenant": tenant},
            {"event_key": f"{name}/{n}/b", "at": datetime.now(UTC), "agreement_id": "kh-01",
             "action": "test", "tenant": tenant},
        ])
        session.commit()
"""


def test_concurrent_processes_and_threads_leave_one_valid_chain(
    sessions: sessionmaker[Session], data_dir: Path
) -> None:
    database = data_dir / "accord.db"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(database), f"p{i}", "40"],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    # Meanwhile, threads of this process write through the store activity.
    store = StoreActivities(sessions)
    errors: list[BaseException] = []

    def thread_writer(name: str) -> None:
        try:
            for n in range(30):
                store._record_audits(
                    [
                        AuditEntry(
                            event_key=f"{name}/{n}",
                            at=datetime.now(UTC),
                            agreement_id="kh-01",
                            action="test",
                            tenant="nghe-an",
                        )
                    ]
                )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=thread_writer, args=(f"t{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    assert not errors

    # 3 processes x 40 batches x 2 entries, half in each tenant; 2 threads x 30 in Nghệ An.
    with sqlite3.connect(database) as connection:
        counts = dict(
            connection.execute("SELECT tenant, count(*) FROM audit GROUP BY tenant").fetchall()
        )
        for tenant, count in counts.items():
            seqs = [
                seq
                for (seq,) in connection.execute(
                    "SELECT seq FROM audit WHERE tenant = ? ORDER BY id", (tenant,)
                )
            ]
            assert seqs == list(range(1, count + 1))
    assert counts == {"nghe-an": 120 + 60, "quang-binh": 120}
    result = verify(data_dir)
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-1] == "300 entries, chain intact"
    with sessions() as session:
        assert all(chain.problem is None for chain in verify_audit(session))
