"""${message}"""
from alembic import op
import sqlalchemy as sa
import sscard.models.base
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
# Written by hand, new tables are shorter with sscard/migrations/helpers.py (create_table, columns, types).


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
