"""english names: outlets and service centers get the English name their English pages show"""

import sqlalchemy as sa
from alembic import op

revision = "0009_english_names"
down_revision = "0008_events"


def upgrade() -> None:
    for table in ("outlets", "service_centers"):  # in place: SQLite would refuse to rebuild a referenced table
        op.add_column(table, sa.Column("name_en", sa.String(length=96), nullable=False, server_default=""))


def downgrade() -> None:
    for table in ("outlets", "service_centers"):
        op.drop_column(table, "name_en")
