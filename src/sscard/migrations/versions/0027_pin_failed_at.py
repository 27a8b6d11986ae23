"""pin failed at: bank_accounts.pin_failed_at, the time of the account's last wrong PIN.

With `bank_pin.lock` = `next_day` a wrong PIN counts toward the day's limit (当日连续): the first wrong PIN of
a new Asia/Shanghai day starts the count from one (core/passwords.py, `after_failure`); the count of wrong
PINs below the limit was kept across days before (docs/RULES.md, gap 15). Rows from before this migration
have no time: their count is taken as today's, as it was read before.
"""

import sqlalchemy as sa
from alembic import op

from sscard.migrations.helpers import TS

revision = "0027_pin_failed_at"
down_revision = "0026_audit_agency"


def upgrade() -> None:
    op.add_column("bank_accounts", sa.Column("pin_failed_at", TS, nullable=True))


def downgrade() -> None:
    # in place (SQLite 3.35+): a batch copy of the table would drop it while the audit log's insert trigger,
    # which reads bank_accounts, still names it (test_migration_0010's downgrade found that)
    op.drop_column("bank_accounts", "pin_failed_at")
