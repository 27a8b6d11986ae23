"""hotline area tables (placeholder until that area adds them; keep the revision ids: the chain is fixed)

Revision ID: 0006_hotline
Revises: 0005_insurance
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import sscard.models.base  # noqa: F401

revision = "0006_hotline"
down_revision = "0005_insurance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
