"""newest: ledger_accounts.last_transfer_day, the day of each account's newest transfer (a statement reads
from that month back instead of probing every monthly partition since the account was opened), filled
from the transfers already there"""

import sqlalchemy as sa
from alembic import op

revision = "0015_newest"
down_revision = "0014_counter"


def upgrade() -> None:
    op.add_column("ledger_accounts", sa.Column("last_transfer_day", sa.Date(), nullable=True))
    op.execute(
        "UPDATE ledger_accounts SET last_transfer_day = ("
        "SELECT max(n.day) FROM (SELECT max(day) AS day FROM ledger_transfers t WHERE t.debit_account_id = ledger_accounts.id"
        " UNION ALL SELECT max(day) FROM ledger_transfers t WHERE t.credit_account_id = ledger_accounts.id) AS n)"
        if op.get_bind().dialect.name == "sqlite" else
        "UPDATE ledger_accounts AS a SET last_transfer_day = n.day FROM ("
        "SELECT account, max(day) AS day FROM (SELECT debit_account_id AS account, day FROM ledger_transfers"
        " UNION ALL SELECT credit_account_id, day FROM ledger_transfers) AS m GROUP BY account) AS n"
        " WHERE a.id = n.account")


def downgrade() -> None:
    op.drop_column("ledger_accounts", "last_transfer_day")
