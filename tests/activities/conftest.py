"""Real components for activity tests: an aiosmtpd SMTP server and a SQLite database file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from activity_helpers import MailServer, demo_directory, free_port
from sqlalchemy.orm import Session, sessionmaker

from infra import migrations
from infra.db import make_engine, session_factory, upsert_directory
from infra.settings import SmtpSettings


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    server = MailServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp_settings(mail_server: MailServer) -> SmtpSettings:
    return SmtpSettings(
        host="127.0.0.1",
        port=mail_server.port,
        sender="Accord Quảng Bình <accord@accord.example>",
        timeout_seconds=5,
        embedded=False,
    )


# --------------------------------------------------------------------------------------------
# Database


@pytest.fixture
def database_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "accord.db"


@pytest.fixture
def sessions(database_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{database_path}")
    migrations.upgrade(engine)
    factory = session_factory(engine)
    with factory() as session:
        upsert_directory(session, directory=demo_directory())
    yield factory
    engine.dispose()
