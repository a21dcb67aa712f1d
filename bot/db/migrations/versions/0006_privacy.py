"""privacy: consent and erasure of a person, withdrawal and removal of personal data of an appeal, the
deployment's instance id

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 21:00:00

Written by hand to match bot/db/models exactly: ``alembic check`` after upgrading reports no difference
(tests/staff/test_migration.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "instance_setting",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_instance_setting")),
    )
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.add_column(sa.Column("consent_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("appeal", schema=None) as batch_op:
        batch_op.add_column(sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("personal_data_removed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_appeal_personal_data_removed_at"), ["personal_data_removed_at"], unique=False
        )
    # Residents who left a phone number before the notice existed gave it for the same purpose the
    # notice now states; their numbers stay usable.
    op.execute("UPDATE person SET consent_at = created_at WHERE phone IS NOT NULL")


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("appeal", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appeal_personal_data_removed_at"))
        batch_op.drop_column("personal_data_removed_at")
        batch_op.drop_column("withdrawn_at")
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.drop_column("erased_at")
        batch_op.drop_column("consent_at")
    op.drop_table("instance_setting")
