"""commit markers: a random token per transaction whose commit no idempotency record would answer if its answer
were lost (an unkeyed group-committed batch or operation on PostgreSQL), looked up to tell whether it
committed (db.py, `Database.committed`); the table exists on both databases, only PostgreSQL writes it"""

from alembic import op

from sscard.migrations.helpers import BOOL, TS, columns, create_table, s

revision = "0016_commit_markers"
down_revision = "0015_newest"


def upgrade() -> None:
    create_table("commit_markers", columns(token=s(32), created_at=TS, claimed=BOOL), pk="token")


def downgrade() -> None:
    op.drop_table("commit_markers")
