"""The relational store: the agency directory, submissions, the mail outbox and the audit log.

One schema for SQLite (a file in the data folder, the default) and PostgreSQL (by URL).
Datetimes are stored in UTC and always come back timezone-aware, whatever the backend.

Agency codes and officer IDs are unique within a tenant (the body that issues a directory,
e.g. a province), not across the system: their keys include the tenant, and every lookup of
them takes it. Repository functions take the session first and everything else by keyword.
They run in the caller's session; `upsert_directory` commits because it is a complete unit
of work on its own.

Infrastructure: it imports only SQLAlchemy and the domain's models, never activities,
workflows or the entry points, and opens no engine at import time (`worker.py` does).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ColumnElement,
    Date,
    DateTime,
    Dialect,
    Engine,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    bindparam,
    cast,
    create_engine,
    event,
    func,
    insert,
    inspect,
    make_url,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from agreements.models import Agency, AgencyKind, Directory, Officer, OfficerRole


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
    """An agency of one tenant: codes are unique within a tenant, not across tenants."""

    __tablename__ = "agencies"

    tenant: Mapped[str] = mapped_column(String(60), primary_key=True)
    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    province: Mapped[str] = mapped_column(String(300), index=True)
    name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(40))
    groups: Mapped[list[str]] = mapped_column(default=list)
    parent: Mapped[str | None] = mapped_column(String(40))
    active_from: Mapped[date | None]
    """First day the agency exists (nullable; issue 17: a successor created on a day)."""
    active_until: Mapped[date | None]
    successor: Mapped[str | None] = mapped_column(String(40))
    position: Mapped[int] = mapped_column(Integer, default=0)
    """The agency's place in its directory file (0 first): reports list agencies in the
    directory's order. An agency no longer in the file keeps its last place."""


class OfficerRow(Base):
    """An officer of one tenant, in an agency of the same tenant (the foreign key includes the
    tenant, so an officer can never point at another tenant's agency)."""

    __tablename__ = "officers"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant", "agency_code"],
            ["agencies.tenant", "agencies.code"],
            name="fk_officers_agency",
        ),
        Index("ix_officers_tenant_agency", "tenant", "agency_code"),
    )

    tenant: Mapped[str] = mapped_column(String(60), primary_key=True)
    id: Mapped[str] = mapped_column(String(60), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    email: Mapped[str] = mapped_column(String(254))
    agency_code: Mapped[str] = mapped_column(String(40))
    roles: Mapped[list[str]] = mapped_column(default=list)
    locale: Mapped[str] = mapped_column(String(5), default="vi")
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    def has_role(self, role: OfficerRole) -> bool:
        return role.value in self.roles


class AgreementRow(Base):
    """A deployed agreement and its tenant. Workflow and task IDs start with the agreement's
    ID, so an ID belongs to one tenant only: the primary key makes a second tenant's agreement
    with the same ID impossible (see `register_agreement`)."""

    __tablename__ = "agreements"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(60), index=True)
    deployed_at: Mapped[datetime]


class SubmissionRow(Base):
    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(300), unique=True)
    agreement_id: Mapped[str] = mapped_column(String(100), index=True)
    tenant: Mapped[str] = mapped_column(String(60), index=True)
    agency: Mapped[str] = mapped_column(String(40))
    officer_id: Mapped[str] = mapped_column(String(60))
    submitted_at: Mapped[datetime]
    """When Accord's entry point received the report (the signed claim's time)."""
    handled_at: Mapped[datetime | None]
    """When the workflow handled it; on time or late is judged by `submitted_at`."""
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
    tenant: Mapped[str] = mapped_column(String(60), index=True)
    subject: Mapped[str] = mapped_column(String(400))
    status: Mapped[str] = mapped_column(String(10), default=OutboxStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


AUDIT_GENESIS = "0" * 64
"""The `prev_hash` of a chain's first entry."""

AUDIT_NO_TENANT = ""
"""The `tenant` of entries that belong to no tenant (system-wide ones, or written before
tenancy): they form a chain of their own."""


class AuditRow(Base):
    """One audit entry: append-only, and chained.

    Each tenant's entries form a hash chain: `seq` counts from 1 in the tenant, `prev_hash` is
    the `hash` of the tenant's entry before (`AUDIT_GENESIS` for the first), and `hash` is
    SHA-256 over the canonical encoding of every field and `prev_hash` (`audit_hash`). Only
    `add_audit_rows` writes them. Triggers refuse UPDATE and DELETE (`create_schema`); on
    PostgreSQL the application's role is also granted SELECT and INSERT only
    (`deploy/postgresql-grants.sql`). `accord audit verify` walks the chains.
    """

    __tablename__ = "audit"
    __table_args__ = (UniqueConstraint("tenant", "seq", name="uq_audit_tenant_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_key: Mapped[str] = mapped_column(String(500), unique=True)
    tenant: Mapped[str] = mapped_column(String(60), default=AUDIT_NO_TENANT)
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    agreement_id: Mapped[str] = mapped_column(String(100), index=True)
    task_id: Mapped[str | None] = mapped_column(String(300), index=True)
    actor: Mapped[str | None] = mapped_column(String(60))
    roles: Mapped[list[str]] = mapped_column(default=list)
    channel: Mapped[str] = mapped_column(String(10), default="system")
    request_id: Mapped[str | None] = mapped_column(String(100))
    operator: Mapped[str | None] = mapped_column(String(60))
    action: Mapped[str] = mapped_column(String(100))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class PortalLinkRow(Base):
    """A personal portal link mailed to an officer (`infra.links`). The token in the mail is
    the row's random ID and its HMAC; nothing personal is in it. A link stops working when it
    expires, when it is revoked, or when its officer leaves the directory."""

    __tablename__ = "portal_links"
    __table_args__ = (
        Index("ix_portal_links_officer", "tenant", "officer_id"),
        Index("ix_portal_links_business_key", "tenant", "officer_id", "business_key"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(60))
    officer_id: Mapped[str] = mapped_column(String(60))
    task_id: Mapped[str | None] = mapped_column(String(300))
    business_key: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class PortalSessionRow(Base):
    """A portal session, opened by a link. Only the SHA-256 of the session ID (the cookie's
    value) is stored: whoever reads the database cannot sign in with it."""

    __tablename__ = "portal_sessions"
    __table_args__ = (Index("ix_portal_sessions_officer", "tenant", "officer_id"),)

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(60))
    officer_id: Mapped[str] = mapped_column(String(60))
    link_id: Mapped[str | None] = mapped_column(String(40))
    locale: Mapped[str | None] = mapped_column(String(5))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class LinkRequestRow(Base):
    """One request for a new link, counted for the rate limit: `key` is a keyed hash of the
    address asked for or of the client's IP (never the address itself)."""

    __tablename__ = "link_requests"
    __table_args__ = (Index("ix_link_requests_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime]


class PortalActionRow(Base):
    """The outcome of a portal form, by its form key: a re-posted form (a double click, the
    browser's back and resend) shows the first outcome instead of acting again."""

    __tablename__ = "portal_actions"

    form_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(60))
    officer_id: Mapped[str] = mapped_column(String(60))
    task_id: Mapped[str] = mapped_column(String(300))
    update: Mapped[str] = mapped_column(String(60))
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime]


class UploadRow(Base):
    """An attachment uploaded through the portal: the file itself is kept content-addressed
    under `<data_dir>/uploads/<first two hex digits>/<sha256>`; a report refers to it as
    `sha256:<hex>`. One row per (task, digest, name): the same file sent twice is one row."""

    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_task_sha", "task_id", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(255))
    tenant: Mapped[str] = mapped_column(String(60))
    officer_id: Mapped[str] = mapped_column(String(60))
    task_id: Mapped[str] = mapped_column(String(300))
    at: Mapped[datetime]


# The tables themselves, for the hot paths that write with one Core statement and no ORM
# unit of work (marking an outbox row sent, writing audit rows once).
OUTBOX_TABLE: Table = Base.metadata.tables[OutboxRow.__tablename__]
AUDIT_TABLE: Table = Base.metadata.tables[AuditRow.__tablename__]


_APPEND_ONLY_SQLITE = (
    """CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit is append-only: DELETE refused'); END""",
)
"""The audit table refuses UPDATE and DELETE, to every connection. (Whoever can write the
SQLite file can drop them: `accord audit verify` then finds what was rewritten.)"""
_APPEND_ONLY_POSTGRESQL = (
    """CREATE OR REPLACE FUNCTION accord_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = 'audit is append-only: ' || TG_OP || ' refused', ERRCODE = '42501';
END
$$""",
    """CREATE OR REPLACE TRIGGER audit_no_update_delete BEFORE UPDATE OR DELETE ON audit
FOR EACH ROW EXECUTE FUNCTION accord_audit_append_only()""",
    """CREATE OR REPLACE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
FOR EACH STATEMENT EXECUTE FUNCTION accord_audit_append_only()""",
)
"""The same on PostgreSQL (14 or later), where TRUNCATE is refused too; repeated in
`deploy/postgresql-grants.sql` with the application role's grants."""


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


class OutdatedDatabase(RuntimeError):
    """The database was created by an earlier version of Accord, whose tables lack columns
    this version needs (the tenant). Raised before anything is written to it."""


REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "agencies": ("tenant", "position", "active_from"),
    "officers": ("tenant",),
    "submissions": ("tenant", "handled_at"),
    "outbox": ("tenant",),
    "audit": ("tenant", "hash"),
}
"""Columns an earlier version's tables lack: rows that belong to a tenant, the audit chain,
when a report was handled (beside when it was received), the agencies' directory order and
first day."""


def check_schema(engine: Engine) -> None:
    """Refuse a database an earlier version created (tables without the tenant or the audit
    chain), with one line that says what to do. A new or current database passes."""
    inspector = inspect(engine)
    existing = set(inspector.get_table_names())
    for table, required in REQUIRED_COLUMNS.items():
        if table not in existing:
            continue
        present = {column["name"] for column in inspector.get_columns(table)}
        missing = [column for column in required if column not in present]
        if missing:
            url = engine.url
            if url.get_backend_name() == "sqlite" and url.database:
                where = f"the SQLite database {url.database}"
                fix = (
                    "move its data folder aside (or delete the file) and start again; the "
                    "agreements are deployed afresh"
                )
            else:
                # Never the URL: it may hold a password.
                where = "the database"
                fix = "point ACCORD_DATABASE_URL at a new, empty database"
            raise OutdatedDatabase(
                f"{where} was created by an earlier version of Accord (its table {table!r} has "
                f"no {' or '.join(missing)} column): {fix}. Upgrading it in place needs the "
                "migration tool, which is not there yet."
            )


def create_schema(engine: Engine) -> None:
    """Create the tables that are missing, and the triggers that keep the audit table
    append-only (SQLite, PostgreSQL); `OutdatedDatabase` for an earlier version's tables."""
    check_schema(engine)
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        match engine.dialect.name:
            case "sqlite":
                for statement in _APPEND_ONLY_SQLITE:
                    connection.exec_driver_sql(statement)
            case "postgresql":
                # Only when missing: the application's role (no DDL rights on a database set
                # up with deploy/postgresql-grants.sql) must be able to start.
                present = connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'audit'::regclass "
                        "AND tgname IN ('audit_no_update_delete', 'audit_no_truncate')"
                    )
                )
                if present != 2:
                    for statement in _APPEND_ONLY_POSTGRESQL:
                        connection.exec_driver_sql(statement)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # Rows handed to callers stay readable after commit without another round trip.
    return sessionmaker(engine, expire_on_commit=False)


# --------------------------------------------------------------------------------------------
# Directory repository. Every lookup of agencies and officers names the tenant: agency codes
# and officer IDs are unique within one tenant only.


def upsert_directory(session: Session, *, directory: Directory) -> None:
    """Make the stored agencies and officers of `directory.tenant` match the file, and commit.

    Only that tenant's rows are read or changed: another tenant's agency or officer with the
    same code or ID is a different row. Officers of the file's agencies who are no longer in
    the file are deactivated, not deleted, so that outbox and audit rows keep pointing at
    someone. Agencies are never deleted either: `active_until` and `successor` describe
    agencies that ceased to exist.

    What a succession (`accord succession apply`) stored stays when the file says nothing of
    it: an agency's `active_until` and `successor` the file leaves unset, and the agencies the
    succession added (not in the file) with their officers. Deploying the unchanged directory
    file again therefore does not undo a succession.
    """
    write_directory(session, directory=directory)
    session.commit()


def write_directory(session: Session, *, directory: Directory) -> None:
    """`upsert_directory` without the commit, for a caller's transaction."""
    tenant = directory.tenant
    for position, agency in enumerate(directory.agencies):
        row = session.get(AgencyRow, (tenant, agency.code))
        if row is None:
            row = AgencyRow(tenant=tenant, code=agency.code)
            session.add(row)
        row.province = directory.province
        row.name = agency.name
        row.kind = agency.kind.value
        row.groups = list(agency.groups)
        row.parent = agency.parent
        row.active_from = agency.active_from
        if agency.active_until is not None or agency.successor is not None:
            row.active_until = agency.active_until
            row.successor = agency.successor
        row.position = position
    session.flush()

    in_file = {officer.id for officer in directory.officers}
    for officer in directory.officers:
        officer_row = session.get(OfficerRow, (tenant, officer.id))
        if officer_row is None:
            officer_row = OfficerRow(tenant=tenant, id=officer.id)
            session.add(officer_row)
        officer_row.name = officer.name
        officer_row.email = officer.email
        officer_row.agency_code = officer.agency
        officer_row.roles = [role.value for role in officer.roles]
        officer_row.locale = officer.locale
        officer_row.active = True
    session.flush()

    agencies = {agency.code for agency in directory.agencies}
    gone = session.scalars(
        select(OfficerRow).where(OfficerRow.tenant == tenant, OfficerRow.active.is_(True))
    ).all()
    for officer_row in gone:
        if officer_row.id not in in_file and officer_row.agency_code in agencies:
            officer_row.active = False


def stored_directory(session: Session, *, tenant: str) -> Directory | None:
    """The tenant's directory as the database holds it (its agencies in their order, its
    active officers); None when nothing of the tenant is stored."""
    rows = directory_agencies(session, tenant=tenant)
    if not rows:
        return None
    officers = session.scalars(
        select(OfficerRow)
        .where(OfficerRow.tenant == tenant, OfficerRow.active.is_(True))
        .order_by(OfficerRow.id)
    ).all()
    return Directory(
        tenant=tenant,
        province=rows[0].province,
        agencies=[
            Agency(
                code=row.code,
                name=row.name,
                kind=AgencyKind(row.kind),
                groups=list(row.groups),
                parent=row.parent,
                active_from=row.active_from,
                active_until=row.active_until,
                successor=row.successor,
            )
            for row in rows
        ],
        officers=[
            Officer(
                id=row.id,
                name=row.name,
                email=row.email,
                agency=row.agency_code,
                roles=[OfficerRole(role) for role in row.roles],
                locale="en" if row.locale == "en" else "vi",
            )
            for row in officers
        ],
    )


class AgreementOfOtherTenant(Exception):
    """An agreement ID that is registered for another tenant already."""

    def __init__(self, agreement_id: str, tenant: str, other: str) -> None:
        super().__init__(f"agreement {agreement_id!r} is {other!r}'s, not {tenant!r}'s")
        self.agreement_id = agreement_id
        self.tenant = tenant
        self.other = other


def register_agreement(session: Session, *, agreement_id: str, tenant: str) -> None:
    """Record that `agreement_id` is `tenant`'s, and commit; again for the same tenant changes
    nothing. `AgreementOfOtherTenant` if another tenant holds the ID."""
    row = session.get(AgreementRow, agreement_id)
    if row is None:
        session.add(AgreementRow(id=agreement_id, tenant=tenant, deployed_at=datetime.now(UTC)))
        try:
            session.commit()
        except IntegrityError:
            # Another deploy registered it meanwhile: judge by what it stored.
            session.rollback()
            row = session.get(AgreementRow, agreement_id)
            if row is None:
                raise
    if row is not None and row.tenant != tenant:
        raise AgreementOfOtherTenant(agreement_id, tenant, row.tenant)


def agreement_tenant(session: Session, *, agreement_id: str) -> str | None:
    """The tenant a deployed agreement belongs to; None if no agreement has that ID here."""
    row = session.get(AgreementRow, agreement_id)
    return row.tenant if row is not None else None


def officers_for(
    session: Session, *, tenant: str, agency: str | None, role: OfficerRole
) -> list[OfficerRow]:
    """Active officers of `tenant` holding `role`, in one agency or (agency None) in any of the
    tenant's, ordered by ID."""
    query = (
        select(OfficerRow)
        .where(OfficerRow.tenant == tenant, OfficerRow.active.is_(True))
        .order_by(OfficerRow.id)
    )
    if agency is not None:
        query = query.where(OfficerRow.agency_code == agency)
    # Roles are a JSON list; filtering in Python keeps one query for SQLite and PostgreSQL.
    return [row for row in session.scalars(query) if row.has_role(role)]


def get_officer(session: Session, *, tenant: str, officer_id: str) -> OfficerRow | None:
    """The officer `officer_id` of `tenant` (active or not); None if the tenant has none."""
    return session.get(OfficerRow, (tenant, officer_id))


def agency_names(session: Session, *, tenant: str, codes: set[str]) -> dict[str, str]:
    """Names of the given agency codes of `tenant`; unknown codes are left out."""
    if not codes:
        return {}
    rows = session.execute(
        select(AgencyRow.code, AgencyRow.name).where(
            AgencyRow.tenant == tenant, AgencyRow.code.in_(codes)
        )
    )
    return {code: name for code, name in rows}


def directory_agencies(session: Session, *, tenant: str) -> list[AgencyRow]:
    """The tenant's agencies in the directory file's order (then by code)."""
    return list(
        session.scalars(
            select(AgencyRow)
            .where(AgencyRow.tenant == tenant)
            .order_by(AgencyRow.position, AgencyRow.code)
        )
    )


def agencies_by_code(
    session: Session, *, tenant: str, codes: Collection[str]
) -> dict[str, AgencyRow]:
    """The stored agencies of `tenant` among `codes`, by code; unknown codes are left out."""
    if not codes:
        return {}
    query = select(AgencyRow).where(AgencyRow.tenant == tenant, AgencyRow.code.in_(codes))
    return {row.code: row for row in session.scalars(query)}


def active_officers(
    session: Session,
    *,
    tenant: str,
    roles: Collection[OfficerRole],
    agencies: Collection[str] = (),
    provinces: Collection[str] = (),
    everywhere: bool = False,
    on: date | None = None,
) -> list[tuple[OfficerRow, str]]:
    """Active officers of `tenant` holding any of `roles` in `agencies` or in any agency of
    `provinces` (of any of the tenant's agencies with `everywhere`), each with their agency's
    province, ordered by ID. Never an officer of another tenant.

    With `on` (the day of the notice), an agency found by province or `everywhere` counts only
    if it exists that day (`active_from`, `active_until`): after a succession (issue 17) the
    former provincial leadership is not mailed after its last day, nor the successor's before
    its first. An agency named in `agencies` always counts: the workflow chose it.

    One query whatever the mix, so that a notice to several roles of several agencies costs
    one round trip. The caller picks who holds which role where.
    """
    if not roles or not (agencies or provinces or everywhere):
        return []
    query = (
        select(OfficerRow, AgencyRow.province)
        .join(
            AgencyRow,
            (OfficerRow.tenant == AgencyRow.tenant) & (OfficerRow.agency_code == AgencyRow.code),
        )
        .where(OfficerRow.tenant == tenant, OfficerRow.active.is_(True))
        .order_by(OfficerRow.id)
    )
    if not everywhere:
        scope: list[ColumnElement[bool]] = []
        if agencies:
            scope.append(OfficerRow.agency_code.in_(agencies))
        if provinces:
            scope.append(and_(AgencyRow.province.in_(provinces), *_existing_on(on)))
        query = query.where(or_(*scope))
    elif on is not None:
        query = query.where(*_existing_on(on))
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


def _existing_on(day: date | None) -> list[ColumnElement[bool]]:
    """Conditions that an agency exists on `day` (none without a day)."""
    if day is None:
        return []
    return [
        or_(AgencyRow.active_from.is_(None), AgencyRow.active_from <= day),
        or_(AgencyRow.active_until.is_(None), AgencyRow.active_until >= day),
    ]


# --------------------------------------------------------------------------------------------
# Audit log


AUDIT_CHANNELS = ("portal", "cli", "system")

_AUDIT_HASHED = (
    "event_key",
    "tenant",
    "seq",
    "at",
    "agreement_id",
    "task_id",
    "actor",
    "roles",
    "channel",
    "request_id",
    "operator",
    "action",
    "detail",
    "prev_hash",
)
"""The fields `audit_hash` covers: every column but `id` (the storage order, checked by the
walk) and `hash` itself."""

AUDIT_LOCK_KEY = 0x41_43_43_4F_52_44_01
"""PostgreSQL advisory lock held while an entry is chained (any value; `ACCORD` and 1)."""


def audit_hash(values: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of an entry's canonical encoding: its `_AUDIT_HASHED` fields as JSON with
    sorted keys, no spaces, UTF-8, and the instant as UTC with microseconds."""
    canonical = {name: values[name] for name in _AUDIT_HASHED}
    at = values["at"]
    canonical["at"] = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    canonical["v"] = 1
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _audit_values(row: Mapping[str, Any]) -> dict[str, Any]:
    """Every column of a new entry but its place in the chain, defaults filled in."""
    channel = row.get("channel") or "system"
    if channel not in AUDIT_CHANNELS:
        raise ValueError(f"audit entry {row['event_key']!r}: unknown channel {channel!r}")
    return {
        "event_key": row["event_key"],
        "tenant": row.get("tenant") or AUDIT_NO_TENANT,
        "at": row["at"],
        "agreement_id": row["agreement_id"],
        "task_id": row.get("task_id"),
        "actor": row.get("actor"),
        "roles": list(row.get("roles") or ()),
        "channel": channel,
        "request_id": row.get("request_id"),
        "operator": row.get("operator"),
        "action": row["action"],
        "detail": dict(row.get("detail") or {}),
    }


def _lock_audit(session: Session) -> None:
    """Make this transaction the only one chaining audit entries until it ends.

    PostgreSQL: a transaction-level advisory lock. SQLite: the database's write lock. The
    driver opens a transaction only at the first write, so one already open holds that lock
    and none open is begun IMMEDIATE (taking it now, waiting up to the busy timeout): the
    chain's head is then read and extended with no other writer in between.
    """
    connection = session.connection()
    match connection.dialect.name:
        case "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
        case "sqlite":
            driver = connection.connection.dbapi_connection
            if driver is not None and not driver.in_transaction:
                driver.execute("BEGIN IMMEDIATE")


_CHAIN_HEAD = (
    select(AUDIT_TABLE.c.seq, AUDIT_TABLE.c.hash)
    .where(AUDIT_TABLE.c.tenant == bindparam("tenant"))
    .order_by(AUDIT_TABLE.c.seq.desc())
    .limit(1)
)
"""The last `(seq, hash)` of a tenant's chain (none for an empty chain)."""

_APPEND = {
    "sqlite": sqlite_insert(AUDIT_TABLE).on_conflict_do_nothing(
        index_elements=[AUDIT_TABLE.c.event_key]
    ),
    "postgresql": postgresql_insert(AUDIT_TABLE).on_conflict_do_nothing(
        index_elements=[AUDIT_TABLE.c.event_key]
    ),
}
"""One entry, skipped if its event key is stored already. Only that conflict is skipped: a
taken `seq` (a chain forked) fails the transaction."""


def add_audit_rows(session: Session, *, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Append audit entries (column values by name: event key, instant, agreement, action and
    optionally task, actor, detail, tenant, roles, channel, request ID, operator), each at most
    once by event key: a key that is stored already, or repeated in `rows`, is skipped, so a
    retried activity stores nothing twice. Does not commit. Returns the event keys appended.

    Under a lock held to the end of the caller's transaction (`_lock_audit`), each entry gets
    the next `seq` of its tenant's chain, the previous entry's hash and its own, and is
    inserted with `ON CONFLICT (event_key) DO NOTHING`, one statement per entry (which keeps
    the IDs in chain order); a skipped entry leaves the chain's head where it was.
    """
    unique: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        unique.setdefault(row["event_key"], row)
    if not unique:
        return []
    _lock_audit(session)
    connection = session.connection()
    statement = _APPEND.get(connection.dialect.name)
    heads: dict[str, tuple[int, str]] = {}
    appended: list[str] = []
    for key, row in unique.items():
        values = _audit_values(row)
        tenant = values["tenant"]
        if tenant not in heads:
            head = connection.execute(_CHAIN_HEAD, {"tenant": tenant}).first()
            heads[tenant] = (head.seq, head.hash) if head is not None else (0, AUDIT_GENESIS)
        seq, prev_hash = heads[tenant]
        values["seq"] = seq + 1
        values["prev_hash"] = prev_hash
        values["hash"] = audit_hash(values)
        if statement is None:  # another backend: look first (no ON CONFLICT)
            stored = connection.scalar(select(func.count()).where(AUDIT_TABLE.c.event_key == key))
            if stored:
                continue
            connection.execute(insert(AUDIT_TABLE), values)
        elif connection.execute(statement, values).rowcount == 0:
            continue
        heads[tenant] = (values["seq"], values["hash"])
        appended.append(key)
    return appended


class AuditFault(StrEnum):
    CHANGED = "changed"
    """The entry's content no longer gives its hash."""
    REMOVED = "removed"
    """Entries are missing before this one."""
    REORDERED = "reordered"
    """This entry is stored out of its place in the chain (or its place is taken twice)."""
    UNLINKED = "unlinked"
    """The entry does not name the hash of the one stored before it."""


@dataclass(frozen=True)
class AuditProblem:
    tenant: str
    id: int
    event_key: str
    seq: int
    fault: AuditFault
    expected_seq: int
    """The `seq` the walk expected at this place."""


@dataclass
class AuditChain:
    tenant: str
    entries: int = 0
    head_seq: int = 0
    head_hash: str = AUDIT_GENESIS
    problem: AuditProblem | None = None


def verify_audit(session: Session, *, tenant: str | None = None) -> list[AuditChain]:
    """Walk each tenant's chain (one tenant's with `tenant`) in storage order and stop at its
    first problem: an entry whose content does not give its hash (changed), a gap in `seq`
    (removed), a `seq` found later or earlier than its place (reordered), or a `prev_hash` that
    is not the previous entry's hash. Chains in tenant order."""
    table = AUDIT_TABLE
    tenants = (
        [tenant]
        if tenant is not None
        else list(session.scalars(select(table.c.tenant).distinct().order_by(table.c.tenant)))
    )
    chains: list[AuditChain] = []
    for name in tenants:
        rows = session.execute(
            select(table).where(table.c.tenant == name).order_by(table.c.id)
        ).all()
        chains.append(_walk(name, [row._asdict() for row in rows]))
    return chains


def _walk(tenant: str, rows: list[dict[str, Any]]) -> AuditChain:
    chain = AuditChain(tenant=tenant, entries=len(rows))
    present = {row["seq"] for row in rows}
    prev_hash = AUDIT_GENESIS
    for expected, row in enumerate(rows, start=1):
        fault: AuditFault | None = None
        if audit_hash(row) != row["hash"]:
            fault = AuditFault.CHANGED
        elif row["seq"] != expected:
            missing = expected not in present
            fault = AuditFault.REMOVED if missing else AuditFault.REORDERED
        elif row["prev_hash"] != prev_hash:
            fault = AuditFault.UNLINKED
        if fault is not None:
            chain.problem = AuditProblem(
                tenant=tenant,
                id=row["id"],
                event_key=row["event_key"],
                seq=row["seq"],
                fault=fault,
                expected_seq=expected,
            )
            return chain
        prev_hash = row["hash"]
        chain.head_seq, chain.head_hash = row["seq"], row["hash"]
    return chain
