"""Tenants in the database and in recipient resolution (issue 14, point 1), on a real SQLite
file and a real SMTP server.

Both shipped directories are loaded into one database, as `scripts/run` does: they share agency
codes (SNV, UBND_TINH, BDV_TU, BCSD_UBND) and officer IDs (`dau-moi-snv`, `quan-tri-snv`, ...).
Expected officers and addresses are read from the YAML files with a plain filter here, never
through Accord's resolution.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from activity_helpers import MailServer, demo_task, notification
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from accord.cli import main
from activities.mail import MailActivities
from agreements.loader import load_directory
from agreements.models import OfficerRole, RecipientRole
from infra import db
from infra.settings import SmtpSettings

ROOT = Path(__file__).resolve().parents[2]
QB_FILE = ROOT / "agreements" / "directory" / "quang-binh.yaml"
NA_FILE = ROOT / "agreements" / "directory" / "nghe-an.yaml"


def officers_in_file(path: Path) -> list[dict[str, Any]]:
    officers: list[dict[str, Any]] = yaml.safe_load(path.read_text(encoding="utf-8"))["officers"]
    return officers


def emails(path: Path, *, agency: str | None, role: str) -> set[str]:
    return {
        o["email"]
        for o in officers_in_file(path)
        if role in o["roles"] and (agency is None or o["agency"] == agency)
    }


@pytest.fixture
def both(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Nghệ An's directory loaded first, Quảng Bình's last (the one that used to win)."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'data' / 'accord.db'}")
    db.create_schema(engine)
    sessions = db.session_factory(engine)
    with sessions() as session:
        db.upsert_directory(session, directory=load_directory(NA_FILE))
        db.upsert_directory(session, directory=load_directory(QB_FILE))
    yield sessions
    engine.dispose()


def test_the_same_ids_and_codes_resolve_within_each_tenant(both: sessionmaker[Session]) -> None:
    with both() as session:
        for tenant, domain in (
            ("nghe-an", "@nghean.example"),
            ("quang-binh", "@quangbinh.example"),
        ):
            focal = db.get_officer(session, tenant=tenant, officer_id="dau-moi-snv")
            assert focal is not None and focal.tenant == tenant
            assert focal.email == f"dau-moi.snv{domain}"
            admin = db.get_officer(session, tenant=tenant, officer_id="quan-tri-snv")
            assert admin is not None and admin.email == f"quan-tri.snv{domain}"
            snv = db.officers_for(session, tenant=tenant, agency="SNV", role=OfficerRole.HEAD)
            assert [o.email for o in snv] == [f"thu-truong.snv{domain}"]
            leaders = db.officers_for(
                session, tenant=tenant, agency=None, role=OfficerRole.PROVINCIAL_LEADERSHIP
            )
            assert leaders and all(o.email.endswith(domain) for o in leaders)
            admins = db.active_officers(
                session, tenant=tenant, roles=[OfficerRole.ADMIN], everywhere=True
            )
            assert [o.email for o, _ in admins] == [f"quan-tri.snv{domain}"]
        # The agencies' names, too, are each tenant's own.
        na_names = db.agency_names(session, tenant="nghe-an", codes={"SNV", "BAO_QB"})
        qb_names = db.agency_names(session, tenant="quang-binh", codes={"SNV", "BAO_QB"})
        assert set(na_names) == {"SNV"}  # BAO_QB is Quảng Bình's only
        assert set(qb_names) == {"SNV", "BAO_QB"}
        qb_agencies = db.agencies_by_code(session, tenant="quang-binh", codes=["SNV"])
        na_agencies = db.agencies_by_code(session, tenant="nghe-an", codes=["SNV"])
        assert qb_agencies["SNV"].province == "Quảng Bình"
        assert na_agencies["SNV"].province == "Nghệ An"
        assert db.get_officer(session, tenant="nghe-an", officer_id="dau-moi-bao-qb") is None


def test_a_directory_update_touches_only_its_own_tenant(both: sessionmaker[Session]) -> None:
    qb = load_directory(QB_FILE)
    smaller = qb.model_copy(update={"officers": [o for o in qb.officers if o.id != "dau-moi-snv"]})
    with both() as session:
        db.upsert_directory(session, directory=smaller)
    with both() as session:
        gone = db.get_officer(session, tenant="quang-binh", officer_id="dau-moi-snv")
        kept = db.get_officer(session, tenant="nghe-an", officer_id="dau-moi-snv")
        assert gone is not None and not gone.active
        assert kept is not None and kept.active
        assert kept.email == "dau-moi.snv@nghean.example"
        # Every Nghệ An officer is as its file says.
        stored = {
            o.id: (o.email, o.active)
            for o in session.scalars(select(db.OfficerRow).where(db.OfficerRow.tenant == "nghe-an"))
        }
    assert stored == {o["id"]: (o["email"], True) for o in officers_in_file(NA_FILE)}


def test_an_officer_cannot_point_at_another_tenants_agency(both: sessionmaker[Session]) -> None:
    """The officers' foreign key includes the tenant: a Nghệ An officer in BAO_QB (an agency
    only Quảng Bình has) is refused by the database itself."""
    with both() as session:
        session.add(
            db.OfficerRow(
                tenant="nghe-an",
                id="ke-gia-mao",
                name="Kẻ giả mạo",
                email="ke-gia-mao@nghean.example",
                agency_code="BAO_QB",
                roles=["admin"],
                locale="vi",
                active=True,
            )
        )
        with pytest.raises(IntegrityError):
            session.commit()


async def test_mail_of_a_task_reaches_only_its_tenants_officers(
    both: sessionmaker[Session], mail_server: MailServer, smtp_settings: SmtpSettings
) -> None:
    """One Nghệ An task and one Quảng Bình task, both owed by SNV to BDV_TU, every role: each
    reaches exactly its own directory's officers."""
    mail = MailActivities(both, smtp_settings)
    roles = [
        RecipientRole.FOCAL_POINT,
        RecipientRole.HEAD_OF_AGENCY,
        RecipientRole.AGGREGATOR,
        RecipientRole.PROVINCIAL_LEADERSHIP,
    ]
    for tenant, path in (("nghe-an", NA_FILE), ("quang-binh", QB_FILE)):
        task = demo_task(
            task_id=f"{tenant}-2026/bao-cao/SNV/2026",
            agreement_id=f"{tenant}-2026",
            tenant=tenant,
            agency="SNV",
            recipient="BDV_TU",
        )
        request = notification(roles=roles, task=task)
        result = await ActivityEnvironment().run(mail.send_notification, request)

        expected = (
            emails(path, agency="SNV", role="focal_point")
            | emails(path, agency="SNV", role="head")
            | emails(path, agency="BDV_TU", role="focal_point")
            | emails(path, agency=None, role="provincial_leadership")
        )
        received = {address for message in mail_server.received for address in message.rcpt_tos}
        assert received == expected, tenant
        assert result.sent == len(expected)
        with both() as session:
            rows = session.scalars(
                select(db.OutboxRow).where(db.OutboxRow.business_key == request.business_key)
            ).all()
        assert {row.recipient_email for row in rows} == expected
        assert {row.tenant for row in rows} == {tenant}
        mail_server.handler.received.clear()
    await mail.aclose()


def test_an_agreement_id_belongs_to_one_tenant(both: sessionmaker[Session]) -> None:
    with both() as session:
        db.register_agreement(session, agreement_id="ke-hoach-2026", tenant="nghe-an")
        db.register_agreement(session, agreement_id="ke-hoach-2026", tenant="nghe-an")
        with pytest.raises(db.AgreementOfOtherTenant) as refused:
            db.register_agreement(session, agreement_id="ke-hoach-2026", tenant="quang-binh")
        assert db.agreement_tenant(session, agreement_id="ke-hoach-2026") == "nghe-an"
        assert db.agreement_tenant(session, agreement_id="khong-co") is None
    assert (refused.value.agreement_id, refused.value.tenant, refused.value.other) == (
        "ke-hoach-2026",
        "quang-binh",
        "nghe-an",
    )


# --------------------------------------------------------------------------------------------
# A data folder of an earlier version

# The tables as the version before tenancy created them (SQLAlchemy's DDL on SQLite).
EARLIER_VERSION_DDL = """
CREATE TABLE agencies (
    code VARCHAR(40) NOT NULL, province VARCHAR(300) NOT NULL, name VARCHAR(300) NOT NULL,
    kind VARCHAR(40) NOT NULL, groups JSON NOT NULL, parent VARCHAR(40), active_until DATE,
    successor VARCHAR(40), PRIMARY KEY (code)
);
CREATE TABLE officers (
    id VARCHAR(60) NOT NULL, name VARCHAR(300) NOT NULL, email VARCHAR(254) NOT NULL,
    agency_code VARCHAR(40) NOT NULL, roles JSON NOT NULL, locale VARCHAR(5) NOT NULL,
    active BOOLEAN NOT NULL, PRIMARY KEY (id), FOREIGN KEY(agency_code) REFERENCES agencies (code)
);
CREATE TABLE submissions (
    id INTEGER NOT NULL, task_id VARCHAR(300) NOT NULL, agreement_id VARCHAR(100) NOT NULL,
    agency VARCHAR(40) NOT NULL, officer_id VARCHAR(60) NOT NULL, submitted_at DATETIME NOT NULL,
    late BOOLEAN NOT NULL, summary TEXT NOT NULL, indicators JSON NOT NULL,
    attachments JSON NOT NULL, created_at DATETIME NOT NULL, PRIMARY KEY (id), UNIQUE (task_id)
);
CREATE TABLE outbox (
    id INTEGER NOT NULL, business_key VARCHAR(400) NOT NULL,
    recipient_email VARCHAR(254) NOT NULL, recipient_officer_id VARCHAR(60) NOT NULL,
    kind VARCHAR(40) NOT NULL, task_id VARCHAR(300) NOT NULL, agreement_id VARCHAR(100) NOT NULL,
    subject VARCHAR(400) NOT NULL, status VARCHAR(10) NOT NULL, attempts INTEGER NOT NULL,
    last_error TEXT, message_id VARCHAR(200), created_at DATETIME NOT NULL, sent_at DATETIME,
    PRIMARY KEY (id)
);
CREATE TABLE audit (
    id INTEGER NOT NULL, event_key VARCHAR(500) NOT NULL, at DATETIME NOT NULL,
    agreement_id VARCHAR(100) NOT NULL, task_id VARCHAR(300), actor VARCHAR(60),
    action VARCHAR(100) NOT NULL, detail JSON NOT NULL, PRIMARY KEY (id), UNIQUE (event_key)
);
INSERT INTO agencies VALUES ('SNV', 'Quảng Bình', 'Sở Nội vụ', 'department', '[]', NULL, NULL,
    NULL);
INSERT INTO officers VALUES ('dau-moi-snv', 'Cán bộ đầu mối', 'dau-moi.snv@quangbinh.example',
    'SNV', '["focal_point"]', 'vi', 1);
"""


def earlier_version_database(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.executescript(EARLIER_VERSION_DDL)
    connection.close()


def test_a_database_of_an_earlier_version_is_refused_with_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "data" / "accord.db"
    earlier_version_database(path)
    engine = db.make_engine(f"sqlite:///{path}")
    with pytest.raises(db.OutdatedDatabase) as refused:
        db.create_schema(engine)
    engine.dispose()

    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"the SQLite database {path} was created by an earlier version")
    assert "move its data folder aside (or delete the file)" in message
    # Nothing was added to it: no table of this version, the old rows as they were.
    with sqlite3.connect(path) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        officers = connection.execute("SELECT id FROM officers").fetchall()
    connection.close()
    assert "agreements" not in tables
    assert officers == [("dau-moi-snv",)]


def test_a_new_or_current_database_passes_the_check(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'accord.db'}")
    db.create_schema(engine)  # new
    db.create_schema(engine)  # current: created by this version
    engine.dispose()


def test_the_cli_stops_on_an_earlier_versions_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    earlier_version_database(data / "accord.db")
    monkeypatch.setenv("ACCORD_DATA_DIR", str(data))
    monkeypatch.delenv("ACCORD_DATABASE_URL", raising=False)
    # An operator with a credential: the database is what stops the command.
    monkeypatch.setenv("ACCORD_CLAIMS__OPERATOR", "van-hanh")
    monkeypatch.setenv("ACCORD_CLAIMS__KEY", "k" * 40)
    report = tmp_path / "bao-cao.yaml"
    report.write_text("summary: Báo cáo.\n", encoding="utf-8")

    code = main(["submit", "ke-hoach/bao-cao/SNV/2026", "--file", str(report), "--as", "x"])

    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith(
        f"accord submit: the SQLite database {(data / 'accord.db').resolve()} was created by an "
        "earlier version of Accord (its table 'agencies' has no tenant or position or "
        "active_from column): "
        "move its data folder aside"
    )


def test_the_service_stops_on_an_earlier_versions_data_folder_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    earlier_version_database(data / "accord.db")
    monkeypatch.setenv("ACCORD_DATA_DIR", str(data))
    monkeypatch.delenv("ACCORD_DATABASE_URL", raising=False)
    monkeypatch.delenv("ACCORD_TEMPORAL__ADDRESS", raising=False)

    code = main(["run", "--no-deploy"])

    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""  # no server, no mail sink, no worker was started
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("accord run: the SQLite database ")
    assert "was created by an earlier version of Accord" in captured.err
    assert not (data / "temporal.db").exists() and not (data / "mail").exists()


def test_a_database_of_the_version_before_the_trust_issue_is_refused(tmp_path: Path) -> None:
    """Tables with the tenant but without a column the trust issue added (the time a report
    was handled) are an earlier version's too: one line naming the table and the column."""
    path = tmp_path / "accord.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.create_schema(engine)
    engine.dispose()
    with sqlite3.connect(path) as connection:
        connection.execute("ALTER TABLE submissions DROP COLUMN handled_at")
    connection.close()

    engine = db.make_engine(f"sqlite:///{path}")
    with pytest.raises(db.OutdatedDatabase) as refused:
        db.create_schema(engine)
    engine.dispose()
    message = str(refused.value)
    assert "\n" not in message
    assert "its table 'submissions' has no handled_at column" in message
