"""ledger: double-entry accounts, immutable transfers (post/void/expire of pending ones), daily limit usage

Revision ID: 0002_ledger
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

import sscard.models.base

revision = "0002_ledger"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

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
    op.create_table('ledger_accounts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=True),
    sa.Column('bank_id', sa.Integer(), nullable=True),
    sa.Column('bank_account_id', sa.Integer(), nullable=True),
    sa.Column('no_overdraft', sa.Boolean(), nullable=False),
    sa.Column('closed', sa.Boolean(), nullable=False),
    sa.Column('debits_posted', sa.BigInteger(), nullable=False),
    sa.Column('credits_posted', sa.BigInteger(), nullable=False),
    sa.Column('debits_pending', sa.BigInteger(), nullable=False),
    sa.Column('credits_pending', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sscard.models.base.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('NOT no_overdraft OR credits_posted >= debits_posted + debits_pending', name=op.f('ck_ledger_accounts_no_overdraft')),
    sa.CheckConstraint('debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0 AND credits_pending >= 0', name=op.f('ck_ledger_accounts_sums_not_negative')),
    sa.ForeignKeyConstraint(['bank_account_id'], ['bank_accounts.id'], name=op.f('fk_ledger_accounts_bank_account_id_bank_accounts')),
    sa.ForeignKeyConstraint(['bank_id'], ['banks.id'], name=op.f('fk_ledger_accounts_bank_id_banks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_accounts')),
    sa.UniqueConstraint('bank_account_id', name=op.f('uq_ledger_accounts_bank_account_id')),
    sa.UniqueConstraint('name', name=op.f('uq_ledger_accounts_name'))
    )
    op.create_table('ledger_limit_usage',
    sa.Column('ledger_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('used_fen', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['ledger_account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_limit_usage_ledger_account_id_ledger_accounts')),
    sa.PrimaryKeyConstraint('ledger_account_id', 'day', 'kind', name=op.f('pk_ledger_limit_usage'))
    )
    op.create_table('ledger_transfers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('transfer_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('debit_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('credit_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('pending_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('timeout_at', sscard.models.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('code', sa.String(length=24), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('chain', sa.String(length=64), nullable=False),
    sa.Column('limit_kind', sa.String(length=16), nullable=True),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('created_at', sscard.models.base.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_ledger_transfers_amount_positive')),
    sa.ForeignKeyConstraint(['credit_account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_transfers_credit_account_id_ledger_accounts')),
    sa.ForeignKeyConstraint(['debit_account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_transfers_debit_account_id_ledger_accounts')),
    sa.ForeignKeyConstraint(['pending_id'], ['ledger_transfers.id'], name=op.f('fk_ledger_transfers_pending_id_ledger_transfers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_transfers')),
    sa.UniqueConstraint('pending_id', name=op.f('uq_ledger_transfers_pending_id')),
    sa.UniqueConstraint('transfer_id', name=op.f('uq_ledger_transfers_transfer_id'))
    )
    op.create_index('ix_ledger_transfers_credit', 'ledger_transfers', ['credit_account_id', 'id'], unique=False)
    op.create_index('ix_ledger_transfers_debit', 'ledger_transfers', ['debit_account_id', 'id'], unique=False)
    op.create_index('ix_ledger_transfers_kind_timeout', 'ledger_transfers', ['kind', 'timeout_at'], unique=False)
    statements = _PG_IMMUTABLE if op.get_bind().dialect.name == "postgresql" else _SQLITE_IMMUTABLE
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_transfers_no_update ON ledger_transfers")
        op.execute("DROP FUNCTION IF EXISTS ledger_transfers_immutable()")
    op.drop_table("ledger_limit_usage")
    op.drop_index("ix_ledger_transfers_kind_timeout", table_name="ledger_transfers")
    op.drop_index("ix_ledger_transfers_debit", table_name="ledger_transfers")
    op.drop_index("ix_ledger_transfers_credit", table_name="ledger_transfers")
    op.drop_table("ledger_transfers")
    op.drop_table("ledger_accounts")
