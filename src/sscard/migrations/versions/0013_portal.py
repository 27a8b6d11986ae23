"""portal: the proof of insurance (参保证明) certificates, and whether a query password is phone-typable"""

import sqlalchemy as sa
from alembic import op

from sscard.migrations.helpers import INT, JSON, TS, columns, create_table, s

revision = "0010_portal"
down_revision = "0010_window"


def upgrade() -> None:
    # in place, not a batch copy: SQLite refuses to rebuild `persons` once other tables reference its rows
    op.add_column("persons", sa.Column("query_pw_phone_ok", sa.Boolean(), nullable=True))
    create_table(
        "insurance_certificates",
        columns(id=INT, code_digest=s(64), code_tail=s(4), person_id=INT, issued_at=TS, period_from=s(7),
                period_to=s(7), content=JSON),
        fks={"person_id": "persons"},
        unique=["code_digest"],
        indexes={"ix_insurance_certificates_person": ["person_id"]},
    )


def downgrade() -> None:
    op.drop_table("insurance_certificates")
    op.drop_column("persons", "query_pw_phone_ok")  # SQLite 3.35+ drops a column in place
