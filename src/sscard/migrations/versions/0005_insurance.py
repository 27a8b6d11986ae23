"""insurance area tables (placeholder until that area adds them; keep the revision ids: the chain is fixed)

Revision ID: 0005_insurance
Revises: 0004_counter
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import sscard.models.base  # noqa: F401

revision = "0005_insurance"
down_revision = "0004_counter"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
