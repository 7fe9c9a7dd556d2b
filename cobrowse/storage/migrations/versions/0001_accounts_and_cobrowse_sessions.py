"""accounts and co-browse sessions

Revision ID: 0001
Revises:
Create Date: 2025-11-24 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('agent', 'supervisor', 'admin')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "cobrowse_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("site_host", sa.String(length=255), nullable=False),
        sa.Column("visitor_id", sa.String(length=128), nullable=False),
        sa.Column("page_url", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cobrowse_sessions")),
    )
    op.create_index(op.f("ix_cobrowse_sessions_visitor_id"), "cobrowse_sessions", ["visitor_id"])
    op.create_index(op.f("ix_cobrowse_sessions_started_at"), "cobrowse_sessions", ["started_at"])
    op.create_table(
        "cobrowse_participants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('agent', 'supervisor')", name=op.f("ck_cobrowse_participants_role")),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["cobrowse_sessions.id"],
            name=op.f("fk_cobrowse_participants_session_id_cobrowse_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_cobrowse_participants_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cobrowse_participants")),
    )
    op.create_index(op.f("ix_cobrowse_participants_session_id"), "cobrowse_participants", ["session_id"])
    op.create_index(op.f("ix_cobrowse_participants_user_id"), "cobrowse_participants", ["user_id"])


def downgrade() -> None:
    op.drop_table("cobrowse_participants")
    op.drop_table("cobrowse_sessions")
    op.drop_table("users")
