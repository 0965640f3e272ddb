"""The relational store: the agency directory, submissions, the mail outbox and the audit log.

One schema for SQLite (a file in the data folder, the default) and PostgreSQL (by URL).
Datetimes are stored in UTC and always come back timezone-aware, whatever the backend.

Repository functions take the session first and everything else by keyword. They run in the
caller's session; `upsert_directory` commits because it is a complete unit of work on its own.

Infrastructure: it imports only SQLAlchemy and the domain's models, never activities,
workflows or the entry points, and opens no engine at import time (`worker.py` does).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Engine,
    ForeignKey,
    Insert,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    cast,
    create_engine,
    event,
    insert,
    make_url,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from agreements.models import Directory, OfficerRole


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC.

    SQLite has no time zone type and hands back naive values; converting to UTC on the way in
    and marking UTC on the way out keeps instants exact on every backend.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: Accord stores aware datetimes only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        date: Date(),
        list[str]: JSON(),
        dict[str, Any]: JSON(),
    }


class AgencyRow(Base):
    __tablename__ = "agencies"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    province: Mapped[str] = mapped_column(String(300), index=True)
    name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(40))
    groups: Mapped[list[str]] = mapped_column(default=list)
    parent: Mapped[str | None] = mapped_column(String(40))
    active_until: Mapped[date | None]
    successor: Mapped[str | None] = mapped_column(String(40))


class OfficerRow(Base):
    __tablename__ = "officers"

    id: Mapped[str] = mapped_column(String(60), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    email: Mapped[str] = mapped_column(String(254))
    agency_code: Mapped[str] = mapped_column(String(40), ForeignKey("agencies.code"), index=True)
    roles: Mapped[list[str]] = mapped_column(default=list)
    locale: Mapped[str] = mapped_column(String(5), default="vi")
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    def has_role(self, role: OfficerRole) -> bool:
        return role.value in self.roles


class SubmissionRow(Base):
    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(300), unique=True)
    agreement_id: Mapped[str] = mapped_column(String(100), index=True)
    agency: Mapped[str] = mapped_column(String(40))
    officer_id: Mapped[str] = mapped_column(String(60))
    submitted_at: Mapped[datetime]
    late: Mapped[bool] = mapped_column(Boolean)
    summary: Mapped[str] = mapped_column(Text)
    indicators: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attachments: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime]


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    ABANDONED = "abandoned"
    """Written by an attempt that was cut short (a worker killed mid-activity) for a notice the
    task, re-run on another worker, then did not send (its report had arrived meanwhile); set
    when the task closes, so no row stays pending for ever."""


class OutboxRow(Base):
    """One e-mail to one recipient. The unique business key makes a retried send idempotent:
    the row is written before the SMTP conversation and marked sent right after it."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("business_key", "recipient_email", name="uq_outbox_key_recipient"),
        CheckConstraint(
            "status IN (" + ", ".join(f"'{status}'" for status in OutboxStatus) + ")",
            name="ck_outbox_status",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    business_key: Mapped[str] = mapped_column(String(400), index=True)
    recipient_email: Mapped[str] = mapped_column(String(254))
    recipient_officer_id: Mapped[str] = mapped_column(String(60))
    kind: Mapped[str] = mapped_column(String(40))
    task_id: Mapped[str] = mapped_column(String(300), index=True)
    agreement_id: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(400))
    status: Mapped[str] = mapped_column(String(10), default=OutboxStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class AuditRow(Base):
    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_key: Mapped[str] = mapped_column(String(500), unique=True)
    at: Mapped[datetime]
    agreement_id: Mapped[str] = mapped_column(String(100), index=True)
    task_id: Mapped[str | None] = mapped_column(String(300), index=True)
    actor: Mapped[str | None] = mapped_column(String(60))
    action: Mapped[str] = mapped_column(String(100))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


# The tables themselves, for the hot paths that write with one Core statement and no ORM
# unit of work (marking an outbox row sent, writing audit rows once).
OUTBOX_TABLE: Table = Base.metadata.tables[OutboxRow.__tablename__]
AUDIT_TABLE: Table = Base.metadata.tables[AuditRow.__tablename__]


# --------------------------------------------------------------------------------------------
# Engine and sessions


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets the CLI read while a worker writes; the busy timeout turns short lock waits
        # into waiting instead of "database is locked".
        journal_mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(journal_mode).lower() == "wal":
            # In WAL mode NORMAL syncs the log at checkpoints, not at every commit. Trade-off:
            # a power loss or OS crash (not a crash of the process) can roll back the last
            # commits, but never corrupts the file. For the outbox that means a row marked sent
            # just before the power went can come back pending and its message be sent again,
            # with the same Message-ID: the at-least-once that SMTP allows anyway. Worth it:
            # the commit marking a row sent is the window in which a crash causes a duplicate,
            # and without an fsync it is a fraction of the time.
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for a SQLAlchemy URL; for a SQLite file, its folder is created if missing."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        _private_sqlite_file(Path(database).expanduser())
    engine = create_engine(parsed)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _private_sqlite_file(path: Path) -> None:
    """Create a new SQLite file (and its folder) readable by its owner only: 0600 in a 0700
    folder. SQLite gives its -wal and -shm files the database file's permissions."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def shown_url(url: str) -> str:
    """A database URL fit to print: its password hidden (`***`)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(a database URL that cannot be read)"


class DatabaseUnavailable(RuntimeError):
    """The database could not be opened; the message is one line, without the password."""


def open_engine(url: str) -> Engine:
    """`make_engine` and the schema, or `DatabaseUnavailable` with a one-line reason that names
    the URL with its password hidden. Nothing of the original error is chained: a driver's
    message or a traceback printed further up must not carry the URL."""
    try:
        engine = make_engine(url)
        create_schema(engine)
    except (SQLAlchemyError, ImportError, ValueError) as error:
        cause = error.orig if isinstance(error, DBAPIError) and error.orig else error
        reason = " ".join(str(cause).split("\n")[0].split()) or type(cause).__name__
        password = _password(url)
        if password:
            reason = reason.replace(password, "***")
        message = f"cannot open the database {shown_url(url)}: {reason}"
        raise DatabaseUnavailable(message) from None
    return engine


def _password(url: str) -> str | None:
    try:
        return make_url(url).password
    except (ArgumentError, ValueError):
        return None


def create_schema(engine: Engine) -> None:
    Base.metadata.create_all(engine)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # Rows handed to callers stay readable after commit without another round trip.
    return sessionmaker(engine, expire_on_commit=False)


# --------------------------------------------------------------------------------------------
# Directory repository


def upsert_directory(session: Session, *, directory: Directory) -> None:
    """Make the stored agencies and officers of `directory.province` match the file, and commit.

    Officers of that province who are no longer in the file are deactivated, not deleted, so
    that outbox and audit rows keep pointing at someone. Agencies are never deleted either:
    `active_until` and `successor` describe agencies that ceased to exist.
    """
    for agency in directory.agencies:
        row = session.get(AgencyRow, agency.code)
        if row is None:
            row = AgencyRow(code=agency.code)
            session.add(row)
        row.province = directory.province
        row.name = agency.name
        row.kind = agency.kind.value
        row.groups = list(agency.groups)
        row.parent = agency.parent
        row.active_until = agency.active_until
        row.successor = agency.successor
    session.flush()

    in_file = {officer.id for officer in directory.officers}
    for officer in directory.officers:
        officer_row = session.get(OfficerRow, officer.id)
        if officer_row is None:
            officer_row = OfficerRow(id=officer.id)
            session.add(officer_row)
        officer_row.name = officer.name
        officer_row.email = officer.email
        officer_row.agency_code = officer.agency
        officer_row.roles = [role.value for role in officer.roles]
        officer_row.locale = officer.locale
        officer_row.active = True
    session.flush()

    province_agencies = select(AgencyRow.code).where(AgencyRow.province == directory.province)
    gone = session.scalars(
        select(OfficerRow).where(
            OfficerRow.agency_code.in_(province_agencies),
            OfficerRow.active.is_(True),
        )
    ).all()
    for officer_row in gone:
        if officer_row.id not in in_file:
            officer_row.active = False
    session.commit()


def officers_for(session: Session, *, agency: str | None, role: OfficerRole) -> list[OfficerRow]:
    """Active officers holding `role`, in one agency or (agency None) in any, ordered by ID."""
    query = select(OfficerRow).where(OfficerRow.active.is_(True)).order_by(OfficerRow.id)
    if agency is not None:
        query = query.where(OfficerRow.agency_code == agency)
    # Roles are a JSON list; filtering in Python keeps one query for SQLite and PostgreSQL.
    return [row for row in session.scalars(query) if row.has_role(role)]


def get_officer(session: Session, *, officer_id: str) -> OfficerRow | None:
    return session.get(OfficerRow, officer_id)


def agency_names(session: Session, *, codes: set[str]) -> dict[str, str]:
    """Names of the given agency codes; unknown codes are left out."""
    if not codes:
        return {}
    rows = session.execute(select(AgencyRow.code, AgencyRow.name).where(AgencyRow.code.in_(codes)))
    return {code: name for code, name in rows}


def agencies_by_code(session: Session, *, codes: Collection[str]) -> dict[str, AgencyRow]:
    """The stored agencies among `codes`, by code; unknown codes are left out."""
    if not codes:
        return {}
    return {
        row.code: row for row in session.scalars(select(AgencyRow).where(AgencyRow.code.in_(codes)))
    }


def active_officers(
    session: Session,
    *,
    roles: Collection[OfficerRole],
    agencies: Collection[str] = (),
    provinces: Collection[str] = (),
    everywhere: bool = False,
) -> list[tuple[OfficerRow, str]]:
    """Active officers holding any of `roles` in `agencies` or in any agency of `provinces`
    (of any agency at all with `everywhere`), each with their agency's province, ordered by ID.

    One query whatever the mix, so that a notice to several roles of several agencies costs
    one round trip. The caller picks who holds which role where.
    """
    if not roles or not (agencies or provinces or everywhere):
        return []
    query = (
        select(OfficerRow, AgencyRow.province)
        .join(AgencyRow, OfficerRow.agency_code == AgencyRow.code)
        .where(OfficerRow.active.is_(True))
        .order_by(OfficerRow.id)
    )
    if not everywhere:
        scope = []
        if agencies:
            scope.append(OfficerRow.agency_code.in_(agencies))
        if provinces:
            scope.append(AgencyRow.province.in_(provinces))
        query = query.where(or_(*scope))
    # Roles are a JSON list. Its text always holds a held role as `"role"`, on SQLite and
    # PostgreSQL alike, so a text match leaves most officers unread; has_role decides.
    roles_text = cast(OfficerRow.roles, Text)
    query = query.where(
        or_(*(roles_text.contains(f'"{role.value}"', autoescape=True) for role in roles))
    )
    return [
        (officer, province)
        for officer, province in session.execute(query)
        if any(officer.has_role(role) for role in roles)
    ]


# --------------------------------------------------------------------------------------------
# Audit log


def add_audit_rows(session: Session, *, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert audit rows (column values by name), each at most once by event key: a key that
    is stored already, or repeated in `rows`, is skipped. Does not commit.

    On SQLite and PostgreSQL this is one `INSERT ... ON CONFLICT (event_key) DO NOTHING`, so a
    retried activity neither reads first nor fails on a key an earlier attempt wrote.
    """
    unique: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        unique.setdefault(row["event_key"], row)
    if not unique:
        return
    table = AUDIT_TABLE
    match session.get_bind().dialect.name:
        case "sqlite":
            statement: Insert = sqlite_insert(table).on_conflict_do_nothing(
                index_elements=[table.c.event_key]
            )
        case "postgresql":
            statement = postgresql_insert(table).on_conflict_do_nothing(
                index_elements=[table.c.event_key]
            )
        case _:
            stored = set(
                session.scalars(select(table.c.event_key).where(table.c.event_key.in_(unique)))
            )
            for key in stored:
                del unique[key]
            if not unique:
                return
            statement = insert(table)
    session.execute(statement, list(unique.values()))
