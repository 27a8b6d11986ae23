"""audit seal months: the audit chain's seals partitioned by their record's month on PostgreSQL

`audit_seals` (migration 0021) gets one row per audit record, for as long as the log is kept: the only
append-only table of the log left unpartitioned. It becomes `PARTITION BY RANGE (record_at)` with the same
monthly bounds as `audit_records` (a seal sits in the month of its record) and a DEFAULT partition; the
partitions job (services/partitions.py, TABLES) makes the coming months ahead as for the other tables.

Its keys carry the partition key, as PostgreSQL requires (docs/SCALE.md, "Partitioning"):
- primary key (seal_seq, record_at): one sealer at a time hands out seal_seq under its advisory lock, and
  `sscard audit verify` finds any gap or repeat in it;
- unique (record_id, record_at): a record's id and time are its whole key in the log, so a record is still
  sealed at most once (and the sealer's dequeue checks it under the lock).
SQLite keeps the plain table of the models.
"""

from alembic import op

from sscard.services.partitions import TABLES, rebuild

revision = "0023_audit_seal_months"
down_revision = "0022_audit_immutable"

_SEALS = next(spec for spec in TABLES if spec.table == "audit_seals")
_PRIMARY_KEY = ("seal_seq",)  # the model's, without the partition key


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        rebuild(conn, _SEALS, _PRIMARY_KEY, partitioned=True)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        rebuild(conn, _SEALS, _PRIMARY_KEY, partitioned=False)
