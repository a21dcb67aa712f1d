"""case desk: handlers (分拨对象) and their people, handler chats, an appeal's handler and deadlines

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 14:00:00

Written by hand to match bot/db/models exactly: ``alembic check`` after upgrading reports no difference
(tests/staff/test_migration.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_APPEAL_TIMES = (
    "assigned_at",
    "resolution_due_at",
    "resolved_at",
    "response_reminded_at",
    "resolution_reminded_at",
    "resolution_overdue_at",
)


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "handler",
        sa.Column("id", BigId, nullable=False),
        sa.Column("community_id", BigId, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("sees_contact", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["community.id"],
            name=op.f("fk_handler_community_id_community"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handler")),
        sa.UniqueConstraint("community_id", "code", name=op.f("uq_handler_community_id_code")),
    )
    with op.batch_alter_table("handler", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_handler_community_id"), ["community_id"], unique=False)
    op.create_table(
        "handler_member",
        sa.Column("id", BigId, nullable=False),
        sa.Column("handler_id", BigId, nullable=False),
        sa.Column("person_id", BigId, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["handler_id"],
            ["handler.id"],
            name=op.f("fk_handler_member_handler_id_handler"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["person.id"],
            name=op.f("fk_handler_member_person_id_person"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handler_member")),
        sa.UniqueConstraint("handler_id", "person_id", name=op.f("uq_handler_member_handler_id_person_id")),
    )
    with op.batch_alter_table("handler_member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_handler_member_handler_id"), ["handler_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_handler_member_person_id"), ["person_id"], unique=False)
    with op.batch_alter_table("appeal", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handler_id", BigId, nullable=True))
        batch_op.add_column(
            sa.Column("destination", sa.String(length=16), server_default="community", nullable=False)
        )
        for column in _APPEAL_TIMES:
            batch_op.add_column(sa.Column(column, sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_appeal_handler_id"), ["handler_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_appeal_handler_id_handler"), "handler", ["handler_id"], ["id"], ondelete="SET NULL"
        )
    with op.batch_alter_table("chat", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handler_id", BigId, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_chat_handler_id_handler"), "handler", ["handler_id"], ["id"], ondelete="SET NULL"
        )
    # Appeals filed before the case desk went to the city whenever a backend took them.
    op.execute("UPDATE appeal SET destination = 'city' WHERE backend IS NOT NULL")


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("chat", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_chat_handler_id_handler"), type_="foreignkey")
        batch_op.drop_column("handler_id")
    with op.batch_alter_table("appeal", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_appeal_handler_id_handler"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_appeal_handler_id"))
        for column in reversed(_APPEAL_TIMES):
            batch_op.drop_column(column)
        batch_op.drop_column("destination")
        batch_op.drop_column("handler_id")
    op.drop_table("handler_member")
    op.drop_table("handler")
