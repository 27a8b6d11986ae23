"""reversals: a center supervisor's reversal of a clerk's action (core.reversal, services.reversal). One row
per reversed audit record (unique), so an action is reversed at most once.
"""

import sqlalchemy as sa
from alembic import op

revision = "0031_reversals"
down_revision = "0027_pin_failed_at"


def upgrade() -> None:
    op.create_table(
        "reversals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("audit_record_id", sa.BigInteger(), nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("center_id", sa.Integer(), sa.ForeignKey("service_centers.id", name="fk_reversals_center_id_service_centers"),
                  nullable=False),
        sa.Column("reversed_by", sa.String(32), nullable=False),
        sa.Column("reversed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.UniqueConstraint("audit_record_id", name="uq_reversals_audit_record_id"),
    )
    op.create_index("ix_reversals_center_id", "reversals", ["center_id"])


def downgrade() -> None:
    op.drop_index("ix_reversals_center_id", table_name="reversals")
    op.drop_table("reversals")
