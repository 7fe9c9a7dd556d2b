"""chat: conversations, messages, participants, files, canned replies, offline
messages, transcript mails; accounts get an email, a transcripts opt-in and departments

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 02:51:30
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("transcripts", sa.Boolean(), server_default=sa.false(), nullable=False))

    op.create_table(
        "user_departments",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_departments_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "department", name=op.f("pk_user_departments")),
    )

    op.create_table(
        "chat_conversations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("site_host", sa.String(length=255), nullable=False),
        sa.Column("visitor_id", sa.String(length=128), nullable=False),
        sa.Column("start_key", sa.String(length=64), nullable=False),
        sa.Column("visitor_name", sa.String(length=500), nullable=False),
        sa.Column("visitor_email", sa.String(length=254), nullable=False),
        sa.Column("department", sa.String(length=32), server_default="", nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        # visitor, agent, idle, system: no CHECK constraint, a new reason needs no migration
        sa.Column("ended_by", sa.String(length=16), nullable=True),
        sa.Column("next_seq", sa.Integer(), server_default="1", nullable=False),
        sa.Column("visitor_delivered", sa.Integer(), server_default="0", nullable=False),
        sa.Column("visitor_read", sa.Integer(), server_default="0", nullable=False),
        sa.Column("agent_delivered", sa.Integer(), server_default="0", nullable=False),
        sa.Column("agent_read", sa.Integer(), server_default="0", nullable=False),
        sa.Column("survey_rating", sa.Integer(), nullable=True),
        sa.Column("survey_comment", sa.Text(), nullable=True),
        sa.Column("survey_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('waiting', 'active', 'ended')", name=op.f("ck_chat_conversations_status")),
        sa.ForeignKeyConstraint(["agent_id"], ["users.id"], name=op.f("fk_chat_conversations_agent_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_conversations")),
        sa.UniqueConstraint("visitor_id", "start_key", name=op.f("uq_chat_conversations_visitor_id_start_key")),
    )
    op.create_index(op.f("ix_chat_conversations_visitor_id"), "chat_conversations", ["visitor_id"])
    op.create_index(op.f("ix_chat_conversations_agent_id"), "chat_conversations", ["agent_id"])
    op.create_index("ix_chat_conversations_status_created_at", "chat_conversations", ["status", "created_at"])

    op.create_table(
        "chat_files",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("uploader", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("uploader IN ('visitor', 'agent')", name=op.f("ck_chat_files_uploader")),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["chat_conversations.id"],
            name=op.f("fk_chat_files_conversation_id_chat_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_chat_files_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_files")),
        sa.UniqueConstraint("client_id", name=op.f("uq_chat_files_client_id")),
    )
    op.create_index(op.f("ix_chat_files_conversation_id"), "chat_files", ["conversation_id"])

    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sender", sa.String(length=16), nullable=False),
        # text, note, file, system, command, event: no CHECK constraint (like cobrowse_events.kind)
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("sender_name", sa.String(length=500), nullable=False),
        sa.Column("file_id", sa.String(length=64), nullable=True),
        sa.Column("rich", sa.JSON(), nullable=True),
        sa.CheckConstraint("sender IN ('visitor', 'agent', 'system')", name=op.f("ck_chat_messages_sender")),
        sa.ForeignKeyConstraint(["agent_id"], ["users.id"], name=op.f("fk_chat_messages_agent_id_users")),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["chat_conversations.id"],
            name=op.f("fk_chat_messages_conversation_id_chat_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["file_id"], ["chat_files.id"], name=op.f("fk_chat_messages_file_id_chat_files")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
        sa.UniqueConstraint("client_id", name=op.f("uq_chat_messages_client_id")),
        # also the index for every lookup by conversation
        sa.UniqueConstraint("conversation_id", "seq", name=op.f("uq_chat_messages_conversation_id_seq")),
    )

    op.create_table(
        "chat_participants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        # accepted, transferred, opened: no CHECK constraint
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["chat_conversations.id"],
            name=op.f("fk_chat_participants_conversation_id_chat_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_chat_participants_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_participants")),
    )
    op.create_index(op.f("ix_chat_participants_conversation_id"), "chat_participants", ["conversation_id"])
    op.create_index(op.f("ix_chat_participants_user_id"), "chat_participants", ["user_id"])

    op.create_table(
        "chat_sessions",
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["chat_conversations.id"],
            name=op.f("fk_chat_sessions_conversation_id_chat_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conversation_id", "session_id", name=op.f("pk_chat_sessions")),
    )
    op.create_index(op.f("ix_chat_sessions_session_id"), "chat_sessions", ["session_id"])

    op.create_table(
        "canned_responses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("site_host", sa.String(length=255), server_default="", nullable=False),
        sa.Column("department", sa.String(length=32), server_default="", nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.CheckConstraint("scope IN ('site', 'department', 'agent')", name=op.f("ck_canned_responses_scope")),
        sa.CheckConstraint("(scope = 'agent') = (user_id IS NOT NULL)", name=op.f("ck_canned_responses_owner")),
        sa.CheckConstraint(
            "(scope = 'department') = (department <> '')", name=op.f("ck_canned_responses_department")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_canned_responses_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_canned_responses_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_responses")),
    )
    # Names are unique per owner. NULLs never collide in a unique index, so one
    # partial index for own replies (user_id set) and one for shared ones.
    op.create_index(
        "uq_canned_responses_own_name", "canned_responses", ["user_id", "site_host", "name"], unique=True,
        sqlite_where=sa.text("user_id IS NOT NULL"), postgresql_where=sa.text("user_id IS NOT NULL"),
    )
    op.create_index(
        "uq_canned_responses_shared_name", "canned_responses", ["scope", "site_host", "department", "name"],
        unique=True, sqlite_where=sa.text("user_id IS NULL"), postgresql_where=sa.text("user_id IS NULL"),
    )

    op.create_table(
        "offline_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_host", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("department", sa.String(length=32), server_default="", nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("emailed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["resolved_by"], ["users.id"], name=op.f("fk_offline_messages_resolved_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offline_messages")),
        sa.UniqueConstraint("key", name=op.f("uq_offline_messages_key")),
    )
    op.create_index(op.f("ix_offline_messages_created_at"), "offline_messages", ["created_at"])

    op.create_table(
        "chat_transcript_mails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("audience", sa.String(length=16), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("audience IN ('agent', 'visitor')", name=op.f("ck_chat_transcript_mails_audience")),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["chat_conversations.id"],
            name=op.f("fk_chat_transcript_mails_conversation_id_chat_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_transcript_mails")),
        sa.UniqueConstraint(
            "conversation_id", "address", name=op.f("uq_chat_transcript_mails_conversation_id_address")
        ),
    )


def downgrade() -> None:
    op.drop_table("chat_transcript_mails")
    op.drop_table("offline_messages")
    op.drop_table("canned_responses")
    op.drop_table("chat_sessions")
    op.drop_table("chat_participants")
    op.drop_table("chat_messages")
    op.drop_table("chat_files")
    op.drop_table("chat_conversations")
    op.drop_table("user_departments")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("transcripts")
        batch_op.drop_column("email")
