"""lifecycle: a card records the power of attorney of the agent who collected it

The collection receipt used to find the agent by reading the audit table; the card now keeps it, set
at collection. Cards collected before this revision take it from their collection's audit record
(the newest successful `counter.collect` / `card.collect` of the card).
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_lifecycle"
down_revision = "0009_english_names"

_FROM_AUDIT = sa.text("""
    UPDATE cards SET collecting_attorney_id = (
        SELECT a.attorney_id FROM audit_records a
        WHERE a.object_type = 'card' AND a.object_id = cards.card_number AND a.result = 'ok'
          AND a.operation IN ('counter.collect', 'card.collect')
          AND a.attorney_id IN (SELECT id FROM powers_of_attorney)
        ORDER BY a.id DESC LIMIT 1)
    WHERE collected_at IS NOT NULL
""")


def upgrade() -> None:
    # A plain column, like audit_records.attorney_id (powers of attorney are never deleted): a foreign key
    # would make SQLite rebuild `cards` (a batch copy), which the tables that reference it refuse once they hold
    # rows; a plain column is added and dropped in place on both databases.
    op.add_column("cards", sa.Column("collecting_attorney_id", sa.Integer(), nullable=True))
    op.execute(_FROM_AUDIT)


def downgrade() -> None:
    op.drop_column("cards", "collecting_attorney_id")  # SQLite 3.35+ drops a column in place
