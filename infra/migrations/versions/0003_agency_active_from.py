"""Agencies get their first day (`active_from`), for successions (issue 17).

A body that a reorganisation creates (e.g. Quảng Trị's departments from 1 July 2025) exists
from that day: province-wide recipients are taken only from agencies existing on a notice's day.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 05:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agencies") as batch:
        batch.add_column(sa.Column("active_from", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agencies") as batch:
        batch.drop_column("active_from")
