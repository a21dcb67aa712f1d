"""case backend: forwarding state, status loop, supporters, ratings, SLA flags

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 20:06:29.683108

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "appeal_supporter",
        sa.Column("id", BigId, nullable=False),
        sa.Column("appeal_id", BigId, nullable=False),
        sa.Column("person_id", BigId, nullable=False),
        sa.Column("origin_platform", sa.String(length=16), nullable=False),
        sa.Column("origin_chat", sa.String(length=128), nullable=False),
        sa.Column("origin_chat_type", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["appeal_id"],
            ["appeal.id"],
            name=op.f("fk_appeal_supporter_appeal_id_appeal"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["person.id"],
            name=op.f("fk_appeal_supporter_person_id_person"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appeal_supporter")),
        sa.UniqueConstraint("appeal_id", "person_id", name=op.f("uq_appeal_supporter_appeal_id_person_id")),
    )
    with op.batch_alter_table("appeal_supporter", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_appeal_supporter_appeal_id"), ["appeal_id"], unique=False)

    with op.batch_alter_table("appeal", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backend", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("backend_token", sa.String(length=128), nullable=True))
        # Existing rows get an empty object; the ORM supplies the default for new ones.
        batch_op.add_column(
            sa.Column("backend_state", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("first_responded_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("overdue_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("flag_reason", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("rating", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("rating_requested_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_appeal_flagged_at"), ["flagged_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_appeal_next_poll_at"), ["next_poll_at"], unique=False)

    with op.batch_alter_table("appeal_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_event_id", sa.String(length=128), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_appeal_event_source_event_id"), ["source_event_id"])

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("platform", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("failed_at")
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("platform")

    with op.batch_alter_table("appeal_event", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_appeal_event_source_event_id"), type_="unique")
        batch_op.drop_column("source_event_id")

    with op.batch_alter_table("appeal", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appeal_next_poll_at"))
        batch_op.drop_index(batch_op.f("ix_appeal_flagged_at"))
        batch_op.drop_column("rated_at")
        batch_op.drop_column("rating_requested_at")
        batch_op.drop_column("rating")
        batch_op.drop_column("flag_reason")
        batch_op.drop_column("flagged_at")
        batch_op.drop_column("overdue_at")
        batch_op.drop_column("first_responded_at")
        batch_op.drop_column("next_poll_at")
        batch_op.drop_column("backend_state")
        batch_op.drop_column("backend_token")
        batch_op.drop_column("backend")

    with op.batch_alter_table("appeal_supporter", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appeal_supporter_appeal_id"))

    op.drop_table("appeal_supporter")
