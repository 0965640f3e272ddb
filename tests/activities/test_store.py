"""Submissions, audit entries and the directory, written to a real SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from activity_helpers import (
    ADMIN,
    AGGREGATOR,
    FOCAL,
    HEAD,
    LEADER,
    TENANT,
    ZONE,
    demo_directory,
    demo_task,
    other_province_directory,
)
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.models import AuditBatch, AuditEntry, Ratio, RecordSubmission
from activities.store import StoreActivities
from agreements.models import Officer, OfficerRole
from infra.db import (
    AuditRow,
    OutboxRow,
    OutboxStatus,
    SubmissionRow,
    active_officers,
    add_audit_rows,
    get_officer,
    make_engine,
    officers_for,
    session_factory,
    upsert_directory,
)


def submission(**changes: object) -> RecordSubmission:
    request = RecordSubmission(
        task=demo_task(),
        officer_id=FOCAL.id,
        submitted_at=datetime(2025, 5, 14, 16, 30, tzinfo=ZONE),
        late=False,
        summary="Đã tiếp 1.901 lượt công dân; giải quyết 29/39 đơn thư.",
        indicators={
            "cong-dan-duoc-tiep": 1901,
            "don-thu-giai-quyet": Ratio(done=29, total=39),
            "mo-hinh-dan-van-kheo": {"Văn hóa – xã hội": 185, "Kinh tế": 86},
            "ghi-chu": "Số liệu đến 14/5",
        },
        attachments=["bao-cao-6-thang.pdf"],
    )
    return request.model_copy(update=changes)


async def test_submission_is_stored_once(sessions: sessionmaker[Session]) -> None:
    store = StoreActivities(sessions)
    env = ActivityEnvironment()

    first = await env.run(store.record_submission, submission())
    retry = await env.run(store.record_submission, submission())

    assert first.created
    assert not retry.created
    assert retry.submission_id == first.submission_id
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(SubmissionRow)) == 1
        row = session.get_one(SubmissionRow, first.submission_id)
    assert row.task_id == "289-kh-ubnd-2025/bao-cao-6-thang/STP/2025-6t"
    assert row.agency == "STP"
    assert row.officer_id == "stp-dau-moi"
    # SQLite gives back naive datetimes: the store hands back the same instant, aware, in UTC.
    assert row.submitted_at == datetime(2025, 5, 14, 9, 30, tzinfo=UTC)
    assert row.submitted_at.tzinfo is UTC
    assert row.created_at.tzinfo is UTC
    assert row.summary.startswith("Đã tiếp 1.901 lượt công dân")
    assert row.indicators == {
        "cong-dan-duoc-tiep": 1901,
        "don-thu-giai-quyet": {"done": 29, "total": 39},
        "mo-hinh-dan-van-kheo": {"Văn hóa – xã hội": 185, "Kinh tế": 86},
        "ghi-chu": "Số liệu đến 14/5",
    }
    assert row.attachments == ["bao-cao-6-thang.pdf"]


async def test_audit_entry_is_stored_once(sessions: sessionmaker[Session]) -> None:
    store = StoreActivities(sessions)
    env = ActivityEnvironment()
    entry = AuditEntry(
        event_key="289-kh-ubnd-2025/bao-cao-6-thang/STP/2025-6t/extension/1",
        at=datetime(2025, 5, 10, 9, 0, tzinfo=ZONE),
        agreement_id="289-kh-ubnd-2025",
        task_id="289-kh-ubnd-2025/bao-cao-6-thang/STP/2025-6t",
        actor="snv-dau-moi",
        action="extension_approved",
        detail={"new_due": "2025-05-25"},
    )

    first = await env.run(store.record_audit, entry)
    retry = await env.run(store.record_audit, entry)

    assert first.created
    assert not retry.created
    with sessions() as session:
        rows = session.scalars(select(AuditRow)).all()
    assert len(rows) == 1
    assert rows[0].at == datetime(2025, 5, 10, 2, 0, tzinfo=UTC)
    assert rows[0].detail == {"new_due": "2025-05-25"}
    assert rows[0].actor == "snv-dau-moi"


async def test_database_errors_propagate_for_temporal_to_retry(tmp_path: Path) -> None:
    # A database whose schema is not there yet: the activity must fail (and be retried by
    # Temporal), not report success.
    engine = make_engine(f"sqlite:///{tmp_path / 'empty' / 'accord.db'}")
    store = StoreActivities(session_factory(engine))
    with pytest.raises(OperationalError):
        await ActivityEnvironment().run(store.record_submission, submission())
    engine.dispose()


def test_make_engine_prepares_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "folder" / "accord.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    assert path.parent.is_dir()
    engine.dispose()


def test_directory_upsert_deactivates_missing_officers(sessions: sessionmaker[Session]) -> None:
    successor = Officer(
        id="stp-dau-moi-moi",
        name="Võ Thị Lan",
        email="lan.vt@stp.quangbinh.example",
        agency="STP",
        roles=[OfficerRole.FOCAL_POINT],
        locale="en",
    )
    with sessions() as session:
        upsert_directory(
            session,
            directory=demo_directory(
                [successor, HEAD, AGGREGATOR, LEADER], stp_name="Sở Tư pháp tỉnh Quảng Bình"
            ),
        )

    with sessions() as session:
        focal_points = officers_for(
            session, tenant=TENANT, agency="STP", role=OfficerRole.FOCAL_POINT
        )
        assert [o.id for o in focal_points] == ["stp-dau-moi-moi"]
        assert focal_points[0].locale == "en"
        former = get_officer(session, tenant=TENANT, officer_id="stp-dau-moi")
        assert former is not None
        assert not former.active
        leaders = officers_for(
            session, tenant=TENANT, agency=None, role=OfficerRole.PROVINCIAL_LEADERSHIP
        )
        assert [o.id for o in leaders] == ["ubnd-pho-chu-tich"]
        assert (
            officers_for(session, tenant=TENANT, agency="STP", role=OfficerRole.HEAD)[0].id
            == "stp-giam-doc"
        )
        assert get_officer(session, tenant=TENANT, officer_id="nobody") is None

    # Back in the file: active again.
    with sessions() as session:
        upsert_directory(session, directory=demo_directory())
    with sessions() as session:
        officer = get_officer(session, tenant=TENANT, officer_id="stp-dau-moi")
        assert officer is not None
        assert officer.active


def test_sqlite_in_wal_mode_syncs_at_checkpoints(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'accord.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    engine.dispose()
    # Not in WAL mode (an in-memory database): the safe default stays.
    memory = make_engine("sqlite://")
    with memory.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "memory"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    memory.dispose()


def test_audit_rows_are_added_once_by_event_key(sessions: sessionmaker[Session]) -> None:
    def row(key: str, action: str) -> dict[str, object]:
        return {
            "event_key": key,
            "at": datetime(2025, 5, 15, 0, 0, tzinfo=ZONE),
            "agreement_id": "289-kh-ubnd-2025",
            "task_id": None,
            "actor": "system",
            "action": action,
            "detail": {"k": "v"},
        }

    with sessions() as session:
        add_audit_rows(session, rows=[row("a", "first"), row("a", "repeated in the batch")])
        session.commit()
    with sessions() as session:
        add_audit_rows(session, rows=[row("a", "stored already"), row("b", "new")])
        add_audit_rows(session, rows=[])
        session.commit()

    with sessions() as session:
        stored = {r.event_key: r for r in session.scalars(select(AuditRow))}
    assert {key: r.action for key, r in stored.items()} == {"a": "first", "b": "new"}
    assert stored["a"].at == datetime(2025, 5, 14, 17, 0, tzinfo=UTC)
    assert stored["a"].detail == {"k": "v"}


def test_active_officers_by_agency_province_and_role(sessions: sessionmaker[Session]) -> None:
    deputy = Officer(
        id="stp-pho-giam-doc",
        name="Đặng Văn Phúc",
        email="phuc.dv@stp.quangbinh.example",
        agency="STP",
        roles=[OfficerRole.DEPUTY_HEAD],
    )
    with sessions() as session:
        upsert_directory(
            session, directory=demo_directory([FOCAL, HEAD, deputy, AGGREGATOR, LEADER, ADMIN])
        )
        upsert_directory(session, directory=other_province_directory())

    def ids(tenant: str = TENANT, **scope: Any) -> list[tuple[str, str]]:
        with sessions() as session:
            return [
                (o.id, province) for o, province in active_officers(session, tenant=tenant, **scope)
            ]

    # "head" is not matched by "deputy_head".
    assert ids(roles=[OfficerRole.HEAD], agencies=["STP"]) == [("stp-giam-doc", "Quảng Bình")]
    assert ids(roles=[OfficerRole.DEPUTY_HEAD], agencies=["STP"]) == [
        ("stp-pho-giam-doc", "Quảng Bình")
    ]
    assert ids(roles=[OfficerRole.ADMIN], provinces=["Quảng Bình"]) == [
        ("snv-quan-tri", "Quảng Bình")
    ]
    # Everywhere means everywhere in the tenant: the other tenant's admin is not there.
    assert ids(roles=[OfficerRole.ADMIN], everywhere=True) == [("snv-quan-tri", "Quảng Bình")]
    assert ids("nghe-an", roles=[OfficerRole.ADMIN], everywhere=True) == [
        ("na-quan-tri", "Nghệ An")
    ]
    assert ids(
        roles=[OfficerRole.FOCAL_POINT, OfficerRole.PROVINCIAL_LEADERSHIP],
        agencies=["STP"],
        provinces=["Nghệ An"],
    ) == [("stp-dau-moi", "Quảng Bình")]
    assert ids(roles=[OfficerRole.HEAD]) == []


async def test_closing_write_abandons_only_the_tasks_pending_rows(
    sessions: sessionmaker[Session],
) -> None:
    """A row left pending by a cut-short attempt is marked abandoned when its task closes;
    sent rows, and other tasks' pending rows, are left alone."""
    task = demo_task()
    now = datetime.now(UTC)

    def row(key: str, status: OutboxStatus, task_id: str = task.task_id) -> OutboxRow:
        return OutboxRow(
            business_key=key,
            recipient_email=FOCAL.email,
            recipient_officer_id=FOCAL.id,
            kind="reminder",
            task_id=task_id,
            agreement_id=task.agreement_id,
            tenant=task.tenant,
            subject="s",
            status=status.value,
            attempts=0,
            created_at=now,
        )

    with sessions() as session:
        session.add_all(
            [
                row(f"{task.task_id}/reminder/1/x", OutboxStatus.PENDING),
                row(f"{task.task_id}/reminder/2/x", OutboxStatus.SENT),
                row("other/task/reminder/1/x", OutboxStatus.PENDING, task_id="other/task"),
            ]
        )
        session.commit()
    entry = AuditEntry(
        event_key=f"{task.task_id}/closed/0/0",
        at=now,
        agreement_id=task.agreement_id,
        task_id=task.task_id,
        action="closed",
    )
    store = StoreActivities(sessions)
    await ActivityEnvironment().run(
        store.record_audits, AuditBatch(entries=[entry], abandon_pending_of=task.task_id)
    )
    with sessions() as session:
        statuses = {r.business_key: r.status for r in session.scalars(select(OutboxRow))}
        closed = session.scalar(select(func.count()).where(AuditRow.action == "closed"))
    assert statuses == {
        f"{task.task_id}/reminder/1/x": OutboxStatus.ABANDONED.value,
        f"{task.task_id}/reminder/2/x": OutboxStatus.SENT.value,
        "other/task/reminder/1/x": OutboxStatus.PENDING.value,
    }
    assert closed == 1
