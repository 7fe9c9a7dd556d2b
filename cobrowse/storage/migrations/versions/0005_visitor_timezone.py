"""chat_conversations: visitor_timezone, so the visitor's transcript shows their own clock

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 00:30:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN with a default (SQLite and PostgreSQL both have it): no table copy.
    op.add_column("chat_conversations",
                  sa.Column("visitor_timezone", sa.String(64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("chat_conversations") as batch:
        batch.drop_column("visitor_timezone")
