"""counter: an index on cards.replaces_card_id (a replacement application asks whether one of the card is
under way; without it every application scanned the whole cards table)"""

from alembic import op

revision = "0014_counter"
down_revision = "0010_portal"


def upgrade() -> None:
    op.create_index(op.f("ix_cards_replaces_card_id"), "cards", ["replaces_card_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_cards_replaces_card_id"), table_name="cards")
