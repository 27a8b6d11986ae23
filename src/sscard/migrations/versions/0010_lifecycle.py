"""lifecycle: a card records the power of attorney of the agent who collected it

The collection receipt used to find the agent by reading the audit table; the card now keeps it, set
at collection. Cards collected before this revision take it from their collection's audit record
(the newest successful `counter.collect` / `card.collect` of the card).

Revision ID: 0010_lifecycle
Revises: 0009_english_names
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_lifecycle"
down_revision = "0009_english_names"
branch_labels = None
depends_on = None

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
    with op.batch_alter_table("cards") as batch:
        batch.add_column(sa.Column("collecting_attorney_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_cards_collecting_attorney_id_powers_of_attorney", "powers_of_attorney",
                                 ["collecting_attorney_id"], ["id"])
    op.execute(_FROM_AUDIT)


def downgrade() -> None:
    with op.batch_alter_table("cards") as batch:
        batch.drop_constraint("fk_cards_collecting_attorney_id_powers_of_attorney", type_="foreignkey")
        batch.drop_column("collecting_attorney_id")
