"""ledger: double-entry accounts, immutable transfers (post/void/expire of pending ones), daily limit usage"""

from alembic import op

from sscard.migrations.helpers import (
    BIG,
    BOOL,
    DATE,
    ID,
    INT,
    TS,
    columns,
    create_table,
    drop_tables,
    null,
    s,
)

revision = "0002_ledger"
down_revision = "0001_foundation"

_PG_IMMUTABLE = (
    "CREATE OR REPLACE FUNCTION ledger_transfers_immutable() RETURNS trigger AS $$ BEGIN "
    "RAISE EXCEPTION 'ledger transfers are immutable: post a correcting transfer instead'; END; "
    "$$ LANGUAGE plpgsql",
    "CREATE TRIGGER ledger_transfers_no_update BEFORE UPDATE OR DELETE ON ledger_transfers "
    "FOR EACH ROW EXECUTE FUNCTION ledger_transfers_immutable()",
)

_SQLITE_IMMUTABLE = (
    "CREATE TRIGGER ledger_transfers_no_update BEFORE UPDATE ON ledger_transfers BEGIN "
    "SELECT RAISE(ABORT, 'ledger transfers are immutable: post a correcting transfer instead'); END",
    "CREATE TRIGGER ledger_transfers_no_delete BEFORE DELETE ON ledger_transfers BEGIN "
    "SELECT RAISE(ABORT, 'ledger transfers are immutable: post a correcting transfer instead'); END",
)


def upgrade() -> None:
    create_table(
        "ledger_accounts",
        columns(id=ID, kind=s(16), name=null(s(64)), bank_id=null(INT), bank_account_id=null(INT),
                no_overdraft=BOOL, closed=BOOL, debits_posted=BIG, credits_posted=BIG, debits_pending=BIG,
                credits_pending=BIG, created_at=TS),
        checks={"no_overdraft": "NOT no_overdraft OR credits_posted >= debits_posted + debits_pending",
                "sums_not_negative": "debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0 "
                                     "AND credits_pending >= 0"},
        fks={"bank_account_id": "bank_accounts", "bank_id": "banks"},
        unique=["bank_account_id", "name"],
    )
    create_table(
        "ledger_limit_usage",
        columns(ledger_account_id=ID, day=DATE, kind=s(16), used_fen=BIG),
        pk=("ledger_account_id", "day", "kind"),
        fks={"ledger_account_id": "ledger_accounts"},
    )
    create_table(
        "ledger_transfers",
        columns(id=ID, transfer_id=s(64), kind=s(8), debit_account_id=ID, credit_account_id=ID, amount=BIG,
                pending_id=null(ID), timeout_at=null(TS), code=s(24), ref=s(64), chain=s(64),
                limit_kind=null(s(16)), day=DATE, created_at=TS),
        checks={"amount_positive": "amount > 0"},
        fks={"credit_account_id": "ledger_accounts", "debit_account_id": "ledger_accounts",
             "pending_id": "ledger_transfers"},
        unique=["pending_id", "transfer_id"],
        indexes={"ix_ledger_transfers_credit": ["credit_account_id", "id"],
                 "ix_ledger_transfers_debit": ["debit_account_id", "id"],
                 "ix_ledger_transfers_kind_timeout": ["kind", "timeout_at"]},
    )
    statements = _PG_IMMUTABLE if op.get_bind().dialect.name == "postgresql" else _SQLITE_IMMUTABLE
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_transfers_no_update ON ledger_transfers")
        op.execute("DROP FUNCTION IF EXISTS ledger_transfers_immutable()")
    drop_tables("ledger_limit_usage", "ledger_transfers", "ledger_accounts")
