"""window: a 12333 callback request keeps the number to call back, until it is done

Revision ID: 0010_window
Revises: 0010_scale
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_window"
down_revision = "0010_scale"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("hotline_agent_requests",
                  sa.Column("callback_number", sa.String(length=24), nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("hotline_agent_requests", "callback_number")
