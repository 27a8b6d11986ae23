"""transfer chain: each transfer records, for each side, the day of that account's previous transfer
(ledger_transfers.debit_prev_day, credit_prev_day), so a statement walks back through the months that hold
the account's transfers, one partition per query, instead of one query over every month since it opened;
and ledger_accounts.out_of_order, set for the accounts whose transfers were not written in month order
(their statements read by months as before).

The transfers already there keep NULL prev days (unknown: a statement that reaches one reads the rest of the
account's months in one query, as before): a nullable column without a default is added without rewriting
the table (PostgreSQL adds it to every partition of the partitioned table), and the transfers are immutable
(a trigger refuses UPDATE). `out_of_order` is computed from the transfers already there: an account one of
whose transfers is dated in an earlier month than a transfer written before it (a `sscard demo-history`
backfill) keeps being read as before, so its statement does not change."""

import sqlalchemy as sa
from alembic import op

revision = "0018_transfer_chain"
down_revision = "0017_credentials"

# every transfer of an account (both sides), with the newest day among its transfers written before it
_SIDES = ("SELECT account, day, max(day) OVER (PARTITION BY account ORDER BY id"
          " ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before FROM ("
          "SELECT debit_account_id AS account, id, day FROM ledger_transfers"
          " UNION ALL SELECT credit_account_id, id, day FROM ledger_transfers) AS sides")


def upgrade() -> None:
    op.add_column("ledger_transfers", sa.Column("debit_prev_day", sa.Date(), nullable=True))
    op.add_column("ledger_transfers", sa.Column("credit_prev_day", sa.Date(), nullable=True))
    op.add_column("ledger_accounts", sa.Column("out_of_order", sa.Boolean(), nullable=False,
                                               server_default=sa.false()))
    op.execute(mark_out_of_order(op.get_bind().dialect.name))


def mark_out_of_order(dialect: str) -> str:
    """The UPDATE that marks the accounts one of whose transfers is dated in an earlier month than a
    transfer of the account written before it (in id order)."""
    month = ("date_trunc('month', {})" if dialect == "postgresql" else "strftime('%Y-%m', {})").format
    unordered = (f"SELECT DISTINCT account FROM ({_SIDES}) AS w"  # noqa: S608 (fixed text)
                 f" WHERE {month('day')} < {month('before')}")
    return f"UPDATE ledger_accounts SET out_of_order = true WHERE id IN ({unordered})"  # noqa: S608


def downgrade() -> None:
    op.drop_column("ledger_accounts", "out_of_order")
    op.drop_column("ledger_transfers", "credit_prev_day")
    op.drop_column("ledger_transfers", "debit_prev_day")
