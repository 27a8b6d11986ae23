"""audit seals: the audit log is only ever inserted into; each record's seal is a row of its own.

The sealer used to write a record's place in the chain (seal_seq, prev_hash, hash) and the two bank
columns into the record itself: one UPDATE per record, which PostgreSQL makes a new version of the row and
of every one of its index entries (seal_seq is indexed), in the partition the requests insert into.

- audit_seals (seal_seq, record_id, record_at, prev_hash, hash): the chain, one row per sealed record,
  filled here from the records already sealed;
- audit_unsealed (record_id, record_at): the records still to seal, filled here from those not yet sealed;
- the log's insert trigger (services/audit_chain.py, `insert_trigger`): queues every new record and derives
  its bank columns (BANK_COLUMNS) as it is inserted; the records not yet sealed get them here;
- audit_records loses seal_seq, prev_hash, hash and their two indexes (unique seal_seq, the partial index
  of unsealed records).

The chain's hashes are unchanged (core/audit_chain.py hashes the same values), so a log sealed before
verifies after.
"""

import sqlalchemy as sa
from alembic import op

from sscard.models.base import UtcDateTime

revision = "0021_audit_seals"
down_revision = "0020_counter_reads"


def upgrade() -> None:
    from sscard.services.audit_chain import insert_trigger, set_banks

    op.create_table(
        "audit_seals",
        sa.Column("seal_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False,
                  nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("record_at", UtcDateTime(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seal_seq", name=op.f("pk_audit_seals")),
        sa.UniqueConstraint("record_id", name=op.f("uq_audit_seals_record_id")),
    )
    op.create_table(
        "audit_unsealed",
        sa.Column("record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False,
                  nullable=False),
        sa.Column("record_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_audit_unsealed")),
    )
    op.execute("INSERT INTO audit_seals (seal_seq, record_id, record_at, prev_hash, hash) "
               "SELECT seal_seq, id, at, prev_hash, hash FROM audit_records WHERE seal_seq IS NOT NULL")
    op.execute("INSERT INTO audit_unsealed (record_id, record_at) "
               "SELECT id, at FROM audit_records WHERE seal_seq IS NULL")
    op.execute(f"UPDATE audit_records SET {set_banks('audit_records')} WHERE seal_seq IS NULL")  # noqa: S608
    op.drop_index("ix_audit_records_unsealed", table_name="audit_records")
    op.drop_index("ix_audit_records_seal_seq", table_name="audit_records")
    for column in ("hash", "prev_hash", "seal_seq"):  # (SQLite 3.35+ drops a column in place, unindexed now)
        op.execute(f"ALTER TABLE audit_records DROP COLUMN {column}")
    for statement in insert_trigger(op.get_bind().dialect.name)[0]:
        op.execute(statement)


def downgrade() -> None:
    from sscard.services.audit_chain import insert_trigger

    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in insert_trigger(op.get_bind().dialect.name)[1]:
        op.execute(statement)
    op.add_column("audit_records", sa.Column("seal_seq", sa.BigInteger(), nullable=True))
    op.add_column("audit_records", sa.Column("prev_hash", sa.String(length=64), nullable=True))
    op.add_column("audit_records", sa.Column("hash", sa.String(length=64), nullable=True))
    op.execute("UPDATE audit_records SET seal_seq = s.seal_seq, prev_hash = s.prev_hash, hash = s.hash "
               "FROM audit_seals s WHERE s.record_id = audit_records.id AND s.record_at = audit_records.at")
    op.create_index("ix_audit_records_seal_seq", "audit_records", ["seal_seq", "at"] if postgres else ["seal_seq"],
                    unique=True)
    unsealed = sa.text("seal_seq IS NULL")
    op.create_index("ix_audit_records_unsealed", "audit_records", ["id"], sqlite_where=unsealed,
                    postgresql_where=unsealed)
    op.drop_table("audit_unsealed")
    op.drop_table("audit_seals")
