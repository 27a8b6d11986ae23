"""staff accounts an operator can run: staff_users.must_change_password.

A staff password reset by the operator or a supervisor (`staff.reset_password`, services/staff.py) is a one-time
password the resetter has seen: the account is marked must-change, and its next sign-in opens only the change page
(the frame's rule for an initial password, services/access.py: BEFORE_FIRST_CHANGE) until its owner sets their own.
"""

import sqlalchemy as sa
from alembic import op

revision = "0035_staff_accounts"
down_revision = "0033_staff_login_lock"


def upgrade() -> None:
    op.add_column("staff_users", sa.Column("must_change_password", sa.Boolean(), nullable=False,
                                           server_default=sa.false()))


def downgrade() -> None:
    # in place (SQLite 3.35+), as 0033's: no batch copy of a table the audit log's trigger may read
    op.drop_column("staff_users", "must_change_password")
