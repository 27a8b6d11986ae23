"""credentials: persons.query_pw_generation, counted up by every change or reset of the query password; a
cardholder's API token carries the value it was issued under and is refused once it differs (api.sessions)"""

import sqlalchemy as sa
from alembic import op

revision = "0017_credentials"
down_revision = "0016_commit_markers"


def upgrade() -> None:
    # in place, not a batch copy: SQLite refuses to rebuild `persons` once other tables reference its rows;
    # the server default fills the rows already there (and PostgreSQL 11+ adds it without a rewrite)
    op.add_column("persons", sa.Column("query_pw_generation", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("persons", "query_pw_generation")  # SQLite 3.35+ drops a column in place
