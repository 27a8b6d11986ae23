"""idempotency retention: an index on idempotency_records.created_at, for the nightly prune of keys past
the policy's `api.idempotency_keep_days` (services/retention.py). The table grew with every keyed request
ever answered (a city's year of payments: about a billion rows, each with its answer), and nothing read a
record after its client's retries were over.
"""

from alembic import op

revision = "0025_idempotency_retention"
down_revision = "0024_audit_seals_immutable"


def upgrade() -> None:
    op.create_index("ix_idempotency_records_created_at", "idempotency_records", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_records_created_at", table_name="idempotency_records")
