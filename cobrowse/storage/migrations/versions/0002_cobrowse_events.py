"""cobrowse events: the session timeline

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 01:01:51
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cobrowse_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        # page, marker_*, control_*, command_*: no CHECK constraint, a new kind needs no migration
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["cobrowse_sessions.id"],
            name=op.f("fk_cobrowse_events_session_id_cobrowse_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["actor_id"], ["users.id"], name=op.f("fk_cobrowse_events_actor_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cobrowse_events")),
    )
    op.create_index(op.f("ix_cobrowse_events_session_id"), "cobrowse_events", ["session_id"])
    op.create_index(op.f("ix_cobrowse_events_actor_id"), "cobrowse_events", ["actor_id"])


def downgrade() -> None:
    op.drop_table("cobrowse_events")
