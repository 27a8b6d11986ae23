"""ledger area tables (placeholder until that area adds them; keep the revision ids: the chain is fixed)

Revision ID: 0002_ledger
Revises: 0001_foundation
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import sscard.models.base  # noqa: F401

revision = "0002_ledger"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
