"""`accord portal revoke`: an admin revokes an officer's links and sessions, recorded in the
audit trail; a link opened afterwards is refused."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from accord.cli import main
from agreements.loader import load_directory
from infra import db, links, migrations

ROOT = Path(__file__).resolve().parents[2]
KEY = b"k" * 32


def test_revoke_ends_links_and_sessions_and_is_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'accord.db'}")
    migrations.upgrade(engine)
    sessions = db.session_factory(engine)
    now = datetime.now(UTC)
    with sessions() as session:
        db.upsert_directory(
            session, directory=load_directory(ROOT / "agreements/directory/quang-binh.yaml")
        )
        tokens = [
            links.issue_link(
                session, tenant="quang-binh", officer_id="dau-moi-stp", key=KEY, now=now, days=30
            )
            for _ in range(2)
        ]
        other = links.issue_link(
            session, tenant="quang-binh", officer_id="dau-moi-snv", key=KEY, now=now, days=30
        )
        grant = links.check_link(session, tokens[0], key=KEY, now=now)
        assert isinstance(grant, links.LinkGrant)
        session_id, _ = links.open_session(session, grant, now=now, hours=12)
        session.commit()
    monkeypatch.setenv("ACCORD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ACCORD_CLAIMS__OPERATOR", "quan-tri-vien")
    monkeypatch.delenv("ACCORD_DATABASE_URL", raising=False)

    assert main(["portal", "revoke", "dau-moi-stp", "--tenant", "quang-binh"]) == 0
    assert capsys.readouterr().out == "quang-binh/dau-moi-stp: 2 link(s) revoked, sessions ended\n"

    later = datetime.now(UTC)
    with sessions() as session:
        assert [links.check_link(session, t, key=KEY, now=later) for t in tokens] == [
            links.LinkRefusal("revoked"),
            links.LinkRefusal("revoked"),
        ]
        assert links.find_session(session, session_id, now=later) is None
        # Another officer's link still works.
        assert isinstance(links.check_link(session, other, key=KEY, now=later), links.LinkGrant)
        entry = session.scalars(
            select(db.AuditRow).where(db.AuditRow.action == "portal_links_revoked")
        ).one()
    assert (entry.tenant, entry.actor, entry.channel, entry.operator, entry.detail) == (
        "quang-binh",
        "dau-moi-stp",
        "cli",
        "quan-tri-vien",
        {"links": "2"},
    )

    # An unknown officer: refused, nothing recorded.
    assert main(["portal", "revoke", "khong-co", "--tenant", "quang-binh"]) == 2
    assert "unknown officer 'khong-co' in the directory of quang-binh" in capsys.readouterr().err
