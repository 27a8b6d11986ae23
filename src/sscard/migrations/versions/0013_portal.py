"""portal: the proof of insurance (参保证明) certificates, and whether a query password is phone-typable

Revision ID: 0010_portal
Revises: 0010_window
"""

import sqlalchemy as sa
from alembic import op

import sscard.models.base

revision = "0010_portal"
down_revision = "0010_window"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # in place, not a batch copy: SQLite refuses to rebuild `persons` once other tables reference its rows
    op.add_column("persons", sa.Column("query_pw_phone_ok", sa.Boolean(), nullable=True))
    op.create_table(
        "insurance_certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_digest", sa.String(length=64), nullable=False),
        sa.Column("code_tail", sa.String(length=4), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("issued_at", sscard.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("period_from", sa.String(length=7), nullable=False),
        sa.Column("period_to", sa.String(length=7), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"],
                                name=op.f("fk_insurance_certificates_person_id_persons")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insurance_certificates")),
        sa.UniqueConstraint("code_digest", name=op.f("uq_insurance_certificates_code_digest")),
    )
    op.create_index("ix_insurance_certificates_person", "insurance_certificates", ["person_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_insurance_certificates_person", table_name="insurance_certificates")
    op.drop_table("insurance_certificates")
    op.drop_column("persons", "query_pw_phone_ok")  # SQLite 3.35+ drops a column in place
