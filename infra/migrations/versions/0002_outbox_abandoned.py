"""The outbox's status constraint allows `abandoned`.

A database created (by `create_all`, before the migrations) when the outbox had no
`abandoned` status refused that status with `CheckViolation … ck_outbox_status`: it is adopted
at the baseline, and this revision rewrites the constraint. On a database the baseline created
it changes nothing but the constraint's definition, which is the same.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 04:42:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("pending", "sent", "failed", "abandoned")


def _outbox(statuses: Sequence[str]) -> sa.Table:
    """The outbox as of this revision, for SQLite, which changes a constraint by copying the
    table (its indexes included)."""
    return sa.Table(
        "outbox",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("business_key", sa.String(length=400), nullable=False),
        sa.Column("recipient_email", sa.String(length=254), nullable=False),
        sa.Column("recipient_officer_id", sa.String(length=60), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("task_id", sa.String(length=300), nullable=False),
        sa.Column("agreement_id", sa.String(length=100), nullable=False),
        sa.Column("tenant", sa.String(length=60), nullable=False),
        sa.Column("subject", sa.String(length=400), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(_check(statuses), name="ck_outbox_status"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("business_key", "recipient_email", name="uq_outbox_key_recipient"),
        sa.Index("ix_outbox_business_key", "business_key"),
        sa.Index("ix_outbox_task_id", "task_id"),
        sa.Index("ix_outbox_tenant", "tenant"),
    )


def _check(statuses: Sequence[str]) -> str:
    return "status IN (" + ", ".join(f"'{status}'" for status in statuses) + ")"


def _rewrite(statuses: Sequence[str]) -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("outbox", copy_from=_outbox(statuses), recreate="always"):
            pass
        return
    op.execute("ALTER TABLE outbox DROP CONSTRAINT IF EXISTS ck_outbox_status")
    op.create_check_constraint("ck_outbox_status", "outbox", _check(statuses))


def upgrade() -> None:
    _rewrite(STATUSES)


def downgrade() -> None:
    _rewrite(STATUSES[:-1])
