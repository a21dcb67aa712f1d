"""merge the case-backend (0002) and staff (0003) branches

Both features were built at the same time on branches from 0001; this revision joins them so that
``alembic upgrade head`` has one head again.

Revision ID: 0004
Revises: 0002, 0003
"""

from collections.abc import Sequence

revision: str = "0004"
down_revision: str | Sequence[str] | None = ("0002", "0003")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to change: the branches touch different tables."""


def downgrade() -> None:
    """Nothing to change."""
