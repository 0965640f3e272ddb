"""Real components for activity tests: an aiosmtpd SMTP server and a database (SQLite and
PostgreSQL, `database_url` in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from activity_helpers import MailServer, demo_directory, free_port
from sqlalchemy.orm import Session, sessionmaker

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
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """The demo directory in a new database: SQLite and PostgreSQL (tests/conftest.py)."""
    engine = make_engine(database_url)
    factory = session_factory(engine)
    with factory() as session:
        upsert_directory(session, directory=demo_directory())
    yield factory
    engine.dispose()
