"""staff: console accounts, invite codes, handoff, internal notes, canned replies, staff chats

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-22 21:00:00

An independent branch from 0001 (the case-backend branch 0002 also starts there); the app migrates to
all heads. Written by hand to match bot/db/models.py exactly: ``alembic check`` after upgrading to all
heads reports no difference (tests/staff/test_migration.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OPEN_HANDOFF = sa.text("status != 'closed'")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "staff_account",
        sa.Column("id", BigId, nullable=False),
        sa.Column("person_id", BigId, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_staff_account_person_id_person"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_account")),
        sa.UniqueConstraint("person_id", name=op.f("uq_staff_account_person_id")),
        sa.UniqueConstraint("username", name=op.f("uq_staff_account_username")),
    )
    op.create_table(
        "invite_code",
        sa.Column("id", BigId, nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("community_id", BigId, nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("buildings", sa.JSON(), nullable=False),
        sa.Column("staff_account_id", BigId, nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("redeemed_by_id", BigId, nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_invite_code_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["redeemed_by_id"], ["person.id"], name=op.f("fk_invite_code_redeemed_by_id_person")
        ),
        sa.ForeignKeyConstraint(
            ["staff_account_id"],
            ["staff_account.id"],
            name=op.f("fk_invite_code_staff_account_id_staff_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invite_code")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_invite_code_code_hash")),
    )
    op.create_index(op.f("ix_invite_code_community_id"), "invite_code", ["community_id"], unique=False)
    op.create_table(
        "handoff",
        sa.Column("id", BigId, nullable=False),
        sa.Column("conversation_id", BigId, nullable=False),
        sa.Column("community_id", BigId, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("holder_id", BigId, nullable=True),
        sa.Column("holder_chat", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("requested_by_id", BigId, nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_reason", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["community_id"], ["community.id"], name=op.f("fk_handoff_community_id_community")
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name=op.f("fk_handoff_conversation_id_conversation"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["holder_id"], ["person.id"], name=op.f("fk_handoff_holder_id_person")),
        sa.ForeignKeyConstraint(
            ["requested_by_id"], ["person.id"], name=op.f("fk_handoff_requested_by_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoff")),
    )
    op.create_index("ix_handoff_community_status", "handoff", ["community_id", "status"], unique=False)
    op.create_index(op.f("ix_handoff_conversation_id"), "handoff", ["conversation_id"], unique=False)
    op.create_index(
        "uq_handoff_open_conversation",
        "handoff",
        ["conversation_id"],
        unique=True,
        sqlite_where=OPEN_HANDOFF,
        postgresql_where=OPEN_HANDOFF,
    )
    op.create_table(
        "handoff_note",
        sa.Column("id", BigId, nullable=False),
        sa.Column("conversation_id", BigId, nullable=False),
        sa.Column("author_id", BigId, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["author_id"], ["person.id"], name=op.f("fk_handoff_note_author_id_person")),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name=op.f("fk_handoff_note_conversation_id_conversation"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoff_note")),
    )
    op.create_index(
        op.f("ix_handoff_note_conversation_id"), "handoff_note", ["conversation_id"], unique=False
    )
    op.create_table(
        "canned_reply",
        sa.Column("id", BigId, nullable=False),
        sa.Column("community_id", BigId, nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_by_id", BigId, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_canned_reply_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["person.id"], name=op.f("fk_canned_reply_created_by_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_reply")),
    )
    op.create_index(op.f("ix_canned_reply_community_id"), "canned_reply", ["community_id"], unique=False)
    with op.batch_alter_table("chat") as batch:
        batch.add_column(
            sa.Column("purpose", sa.String(length=16), server_default="residents", nullable=False)
        )
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("community_id", BigId, nullable=True))
        batch.create_index(batch.f("ix_audit_log_community_id"), ["community_id"], unique=False)
        batch.create_foreign_key(
            batch.f("fk_audit_log_community_id_community"), "community", ["community_id"], ["id"]
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint(batch.f("fk_audit_log_community_id_community"), type_="foreignkey")
        batch.drop_index(batch.f("ix_audit_log_community_id"))
        batch.drop_column("community_id")
    with op.batch_alter_table("chat") as batch:
        batch.drop_column("purpose")
    op.drop_index(op.f("ix_canned_reply_community_id"), table_name="canned_reply")
    op.drop_table("canned_reply")
    op.drop_index(op.f("ix_handoff_note_conversation_id"), table_name="handoff_note")
    op.drop_table("handoff_note")
    op.drop_index("uq_handoff_open_conversation", table_name="handoff")
    op.drop_index(op.f("ix_handoff_conversation_id"), table_name="handoff")
    op.drop_index("ix_handoff_community_status", table_name="handoff")
    op.drop_table("handoff")
    op.drop_index(op.f("ix_invite_code_community_id"), table_name="invite_code")
    op.drop_table("invite_code")
    op.drop_table("staff_account")
