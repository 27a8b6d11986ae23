"""insurance: employers and monthly contribution records of the five social insurances"""

from sscard.migrations.helpers import BIG, ID, INT, TS, columns, create_table, drop_tables, s

revision = "0005_insurance"
down_revision = "0004_counter"


def upgrade() -> None:
    create_table(
        "insurance_employers",
        columns(id=INT, code=s(18), name=s(64)),
        unique=["code"],
    )
    create_table(
        "insurance_contributions",
        columns(id=ID, person_id=INT, insurance_type=s(16), month=s(7), year=INT, employer_id=INT,
                base_fen=BIG, employer_fen=BIG, personal_fen=BIG, recorded_at=TS),
        fks={"person_id": "persons", "employer_id": "insurance_employers"},
        unique=[("uq_insurance_contributions_key", ["person_id", "insurance_type", "month", "employer_id"])],
        indexes={"ix_insurance_contributions_person_year": ["person_id", "year"]},
    )


def downgrade() -> None:
    drop_tables("insurance_contributions", "insurance_employers")
