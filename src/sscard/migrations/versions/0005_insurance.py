"""insurance: employers and monthly contribution records of the five social insurances

Revision ID: 0005_insurance
Revises: 0004_counter
"""

import sqlalchemy as sa
from alembic import op

import sscard.models.base

revision = "0005_insurance"
down_revision = "0004_counter"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "insurance_employers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=18), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insurance_employers")),
        sa.UniqueConstraint("code", name=op.f("uq_insurance_employers_code")),
    )
    op.create_table(
        "insurance_contributions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("insurance_type", sa.String(length=16), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("employer_id", sa.Integer(), nullable=False),
        sa.Column("base_fen", sa.BigInteger(), nullable=False),
        sa.Column("employer_fen", sa.BigInteger(), nullable=False),
        sa.Column("personal_fen", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", sscard.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_insurance_contributions_person_id_persons")
        ),
        sa.ForeignKeyConstraint(
            ["employer_id"], ["insurance_employers.id"],
            name=op.f("fk_insurance_contributions_employer_id_insurance_employers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insurance_contributions")),
        sa.UniqueConstraint(
            "person_id", "insurance_type", "month", "employer_id", name="uq_insurance_contributions_key"
        ),
    )
    op.create_index(
        "ix_insurance_contributions_person_year", "insurance_contributions", ["person_id", "year"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_insurance_contributions_person_year", table_name="insurance_contributions")
    op.drop_table("insurance_contributions")
    op.drop_table("insurance_employers")
