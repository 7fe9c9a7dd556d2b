"""accounts: logins_valid_after, so logging out voids the login's cookie on the server too

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 04:52:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite and PostgreSQL both have it): no table copy.
    op.add_column("users", sa.Column("logins_valid_after", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("logins_valid_after")
