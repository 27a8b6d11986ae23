"""medical: designated institutions, personal accounts, contribution credits, annual usage, settlements

Revision ID: 0003_medical
Revises: 0002_ledger
"""

import sqlalchemy as sa
from alembic import op

import sscard.models.base

revision = "0003_medical"
down_revision = "0002_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('medical_annual_usage',
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('deductible_used_fen', sa.BigInteger(), nullable=False),
    sa.Column('fund_used_fen', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_medical_annual_usage_person_id_persons')),
    sa.PrimaryKeyConstraint('person_id', 'year', name=op.f('pk_medical_annual_usage'))
    )
    op.create_table('medical_contribution_credits',
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('credited_at', sscard.models.base.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_medical_contribution_credits_person_id_persons')),
    sa.PrimaryKeyConstraint('person_id', 'month', name=op.f('pk_medical_contribution_credits'))
    )
    op.create_table('medical_institutions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('level', sa.Integer(), nullable=True),
    sa.Column('designated', sa.Boolean(), nullable=False),
    sa.Column('area_code', sa.String(length=6), nullable=False),
    sa.Column('settlement_bank_id', sa.Integer(), nullable=True),
    sa.Column('settlement_account_no', sa.String(length=32), nullable=False),
    sa.Column('ledger_account_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sscard.models.base.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['settlement_bank_id'], ['banks.id'], name=op.f('fk_medical_institutions_settlement_bank_id_banks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_medical_institutions')),
    sa.UniqueConstraint('code', name=op.f('uq_medical_institutions_code'))
    )
    op.create_table('medical_personal_accounts',
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('balance_fen', sa.BigInteger(), nullable=False),
    sa.Column('opened_at', sscard.models.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_medical_personal_accounts_person_id_persons')),
    sa.PrimaryKeyConstraint('person_id', name=op.f('pk_medical_personal_accounts'))
    )
    op.create_table('medical_settlements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=24), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('reverses_id', sa.Integer(), nullable=True),
    sa.Column('quote_nonce', sa.String(length=32), nullable=True),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('card_id', sa.Integer(), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.Column('terminal_id', sa.Integer(), nullable=False),
    sa.Column('at', sscard.models.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('total_fen', sa.BigInteger(), nullable=False),
    sa.Column('covered_fen', sa.BigInteger(), nullable=False),
    sa.Column('uncovered_fen', sa.BigInteger(), nullable=False),
    sa.Column('deductible_fen', sa.BigInteger(), nullable=False),
    sa.Column('copay_fen', sa.BigInteger(), nullable=False),
    sa.Column('fund_fen', sa.BigInteger(), nullable=False),
    sa.Column('personal_fen', sa.BigInteger(), nullable=False),
    sa.Column('self_pay_fen', sa.BigInteger(), nullable=False),
    sa.Column('self_pay_method', sa.String(length=8), nullable=False),
    sa.Column('bank_reference', sa.String(length=64), nullable=True),
    sa.Column('personal_balance_after_fen', sa.BigInteger(), nullable=False),
    sa.Column('lines', sa.JSON(), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['card_id'], ['cards.id'], name=op.f('fk_medical_settlements_card_id_cards')),
    sa.ForeignKeyConstraint(['institution_id'], ['medical_institutions.id'], name=op.f('fk_medical_settlements_institution_id_medical_institutions')),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_medical_settlements_person_id_persons')),
    sa.ForeignKeyConstraint(['reverses_id'], ['medical_settlements.id'], name=op.f('fk_medical_settlements_reverses_id_medical_settlements')),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminals.id'], name=op.f('fk_medical_settlements_terminal_id_terminals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_medical_settlements')),
    sa.UniqueConstraint('code', name=op.f('uq_medical_settlements_code')),
    sa.UniqueConstraint('quote_nonce', name=op.f('uq_medical_settlements_quote_nonce')),
    sa.UniqueConstraint('reverses_id', name=op.f('uq_medical_settlements_reverses_id'))
    )
    op.create_index('ix_medical_settlements_institution_at', 'medical_settlements', ['institution_id', 'at'], unique=False)
    op.create_index('ix_medical_settlements_person_at', 'medical_settlements', ['person_id', 'at'], unique=False)
    op.create_table('medical_account_movements',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('balance_after_fen', sa.BigInteger(), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=True),
    sa.Column('settlement_id', sa.Integer(), nullable=True),
    sa.Column('at', sscard.models.base.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_medical_account_movements_person_id_persons')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_medical_account_movements'))
    )
    op.create_index('ix_medical_account_movements_person_id', 'medical_account_movements', ['person_id', 'id'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # Room on each page for HOT updates of balances and year-to-date usage: an update that must add
        # an index entry would, under SERIALIZABLE, conflict with every neighbour's read of that index page.
        for table in ("medical_personal_accounts", "medical_annual_usage"):
            op.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")


def downgrade() -> None:
    op.drop_index('ix_medical_account_movements_person_id', table_name='medical_account_movements')
    op.drop_table('medical_account_movements')
    op.drop_index('ix_medical_settlements_person_at', table_name='medical_settlements')
    op.drop_index('ix_medical_settlements_institution_at', table_name='medical_settlements')
    op.drop_table('medical_settlements')
    op.drop_table('medical_personal_accounts')
    op.drop_table('medical_institutions')
    op.drop_table('medical_contribution_credits')
    op.drop_table('medical_annual_usage')
