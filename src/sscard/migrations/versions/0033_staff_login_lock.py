"""staff login lock: staff_users.pw_failures and pw_locked_until, the account's own count of wrong passwords.

A staff member's password had no lock of its own: only the per-address login throttle (services/throttle.py)
slowed a guesser, which does nothing against many addresses, and a wrong staff password left no audit record
(session 27's authorization probe). `staff.login` (services/staff.py) now counts wrong passwords per account
and locks it for policy `login.staff_lock_minutes` after `login.staff_max_failures` in a row.
"""

import sqlalchemy as sa
from alembic import op

from sscard.migrations.helpers import TS

revision = "0033_staff_login_lock"
down_revision = "0031_reversals"


def upgrade() -> None:
    op.add_column("staff_users", sa.Column("pw_failures", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("staff_users", sa.Column("pw_locked_until", TS, nullable=True))


def downgrade() -> None:
    # in place (SQLite 3.35+), as 0027's: no batch copy of a table the audit log's trigger may read
    op.drop_column("staff_users", "pw_locked_until")
    op.drop_column("staff_users", "pw_failures")
