"""window: a 12333 callback request keeps the number to call back, until it is done"""

import sqlalchemy as sa
from alembic import op

revision = "0010_window"
down_revision = "0010_scale"


def upgrade() -> None:
    op.add_column("hotline_agent_requests",
                  sa.Column("callback_number", sa.String(length=24), nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("hotline_agent_requests", "callback_number")
