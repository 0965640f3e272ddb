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
    ForeignKeyConstraint,
    Index,
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
    inspect,
    make_url,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
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
    """An agency of one tenant: codes are unique within a tenant, not across tenants."""

    __tablename__ = "agencies"

    tenant: Mapped[str] = mapped_column(String(60), primary_key=True)
    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    province: Mapped[str] = mapped_column(String(300), index=True)
    name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(40))
    groups: Mapped[list[str]] = mapped_column(default=list)
    parent: Mapped[str | None] = mapped_column(String(40))
    active_until: Mapped[date | None]
    successor: Mapped[str | None] = mapped_column(String(40))


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
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class OutdatedDatabase(RuntimeError):
    """The database was created by an earlier version of Accord, whose tables lack columns
    this version needs (the tenant). Raised before anything is written to it."""


TENANT_TABLES = ("agencies", "officers", "submissions", "outbox")
"""Tables whose rows belong to a tenant: an earlier version's have no `tenant` column."""


def check_schema(engine: Engine) -> None:
    """Refuse a database an earlier version created (tables without the tenant), with one
    line that says what to do. A new or current database passes."""
    inspector = inspect(engine)
    existing = set(inspector.get_table_names())
    for table in TENANT_TABLES:
        if table not in existing:
            continue
        if "tenant" not in {column["name"] for column in inspector.get_columns(table)}:
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
                f"no tenant column): {fix}. Upgrading it in place needs the migration tool, "
                "which is not there yet."
            )


def create_schema(engine: Engine) -> None:
    """Create the tables that are missing; `OutdatedDatabase` for an earlier version's."""
    check_schema(engine)
    Base.metadata.create_all(engine)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # Rows handed to callers stay readable after commit without another round trip.
    return sessionmaker(engine, expire_on_commit=False)


# --------------------------------------------------------------------------------------------
# Directory repository. Every lookup of agencies and officers names the tenant: agency codes
# and officer IDs are unique within one tenant only.


def upsert_directory(session: Session, *, directory: Directory) -> None:
    """Make the stored agencies and officers of `directory.tenant` match the file, and commit.

    Only that tenant's rows are read or changed: another tenant's agency or officer with the
    same code or ID is a different row. Officers of the tenant who are no longer in the file
    are deactivated, not deleted, so that outbox and audit rows keep pointing at someone.
    Agencies are never deleted either: `active_until` and `successor` describe agencies that
    ceased to exist.
    """
    tenant = directory.tenant
    for agency in directory.agencies:
        row = session.get(AgencyRow, (tenant, agency.code))
        if row is None:
            row = AgencyRow(tenant=tenant, code=agency.code)
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

    gone = session.scalars(
        select(OfficerRow).where(OfficerRow.tenant == tenant, OfficerRow.active.is_(True))
    ).all()
    for officer_row in gone:
        if officer_row.id not in in_file:
            officer_row.active = False
    session.commit()


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
) -> list[tuple[OfficerRow, str]]:
    """Active officers of `tenant` holding any of `roles` in `agencies` or in any agency of
    `provinces` (of any of the tenant's agencies with `everywhere`), each with their agency's
    province, ordered by ID. Never an officer of another tenant.

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
