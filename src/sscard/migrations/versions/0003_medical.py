"""medical area tables (placeholder until that area adds them; keep the revision ids: the chain is fixed)

Revision ID: 0003_medical
Revises: 0002_ledger
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import sscard.models.base  # noqa: F401

revision = "0003_medical"
down_revision = "0002_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
