"""events: the outbox of events for partners and the publishers' positions

Revision ID: 0008_events
Revises: 0007_audit_chain
"""

import sqlalchemy as sa
from alembic import op

import sscard.models.base

revision = "0008_events"
down_revision = "0007_audit_chain"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str) -> sa.Column:
    return sa.Column(name, sscard.models.base.UtcDateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", ID, nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=48), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        _ts("occurred_at"),
        sa.Column("bank_id", sa.Integer(), nullable=True),
        sa.Column("center_id", sa.Integer(), nullable=True),
        sa.Column("card_number", sa.String(length=9), nullable=True),
        sa.Column("pan", sa.String(length=19), nullable=True),
        sa.Column("before", sa.String(length=16), nullable=True),
        sa.Column("after", sa.String(length=16), nullable=True),
        sa.Column("operation", sa.String(length=48), nullable=False),
        sa.Column("audit_id", ID, nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("uuid", name=op.f("uq_events_uuid")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_bank_id_id", "events", ["bank_id", "id"], unique=False)
    op.create_index("ix_events_side_id", "events", ["side", "id"], unique=False)
    op.create_table(
        "event_publications",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("last_id", ID, nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_event_publications")),
    )


def downgrade() -> None:
    op.drop_table("event_publications")
    op.drop_index("ix_events_side_id", table_name="events")
    op.drop_index("ix_events_bank_id_id", table_name="events")
    op.drop_table("events")
