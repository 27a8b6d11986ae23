"""medical: designated institutions, personal accounts, contribution credits, annual usage, settlements"""

from alembic import op

from sscard.migrations.helpers import (
    BIG,
    BOOL,
    ID,
    INT,
    JSON,
    TS,
    columns,
    create_table,
    drop_tables,
    null,
    s,
)

revision = "0003_medical"
down_revision = "0002_ledger"


def upgrade() -> None:
    create_table(
        "medical_annual_usage",
        columns(person_id=INT, year=INT, deductible_used_fen=BIG, fund_used_fen=BIG),
        pk=("person_id", "year"),
        fks={"person_id": "persons"},
    )
    create_table(
        "medical_contribution_credits",
        columns(person_id=INT, month=s(7), amount_fen=BIG, credited_at=TS),
        pk=("person_id", "month"),
        fks={"person_id": "persons"},
    )
    create_table(
        "medical_institutions",
        columns(id=INT, code=s(16), name=s(64), kind=s(16), level=null(INT), designated=BOOL, area_code=s(6),
                settlement_bank_id=null(INT), settlement_account_no=s(32), ledger_account_id=null(BIG),
                created_at=TS),
        fks={"settlement_bank_id": "banks"},
        unique=["code"],
    )
    create_table(
        "medical_personal_accounts",
        columns(person_id=INT, balance_fen=BIG, opened_at=TS, version=INT),
        pk="person_id",
        fks={"person_id": "persons"},
    )
    create_table(
        "medical_settlements",
        columns(id=INT, code=s(24), kind=s(12), reverses_id=null(INT), quote_nonce=null(s(32)), person_id=INT,
                card_id=INT, institution_id=INT, terminal_id=INT, at=TS, year=INT, total_fen=BIG,
                covered_fen=BIG, uncovered_fen=BIG, deductible_fen=BIG, copay_fen=BIG, fund_fen=BIG,
                personal_fen=BIG, self_pay_fen=BIG, self_pay_method=s(8), bank_reference=null(s(64)),
                personal_balance_after_fen=BIG, lines=JSON, reason=s(64)),
        fks={"card_id": "cards", "institution_id": "medical_institutions", "person_id": "persons",
             "reverses_id": "medical_settlements", "terminal_id": "terminals"},
        unique=["code", "quote_nonce", "reverses_id"],
        indexes={"ix_medical_settlements_institution_at": ["institution_id", "at"],
                 "ix_medical_settlements_person_at": ["person_id", "at"]},
    )
    create_table(
        "medical_account_movements",
        columns(id=ID, person_id=INT, kind=s(12), amount_fen=BIG, balance_after_fen=BIG, month=null(s(7)),
                settlement_id=null(INT), at=TS),
        fks={"person_id": "persons"},
        indexes={"ix_medical_account_movements_person_id": ["person_id", "id"]},
    )
    if op.get_bind().dialect.name == "postgresql":
        # Room on each page for HOT updates of balances and year-to-date usage: an update that must add
        # an index entry would, under SERIALIZABLE, conflict with every neighbour's read of that index page.
        for table in ("medical_personal_accounts", "medical_annual_usage"):
            op.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")


def downgrade() -> None:
    drop_tables("medical_account_movements", "medical_settlements", "medical_personal_accounts",
                "medical_institutions", "medical_contribution_credits", "medical_annual_usage")
