"""audit reads: the audit log's filters each walk an index that ends with the id (newest first, stopping at
the page), and two derived columns say which bank a record belongs to, so that a bank supervisor's read
walks an index instead of testing every record against the bank's outlets, terminals, staff, accounts and
cards (services/audit.py).

- audit_records.maker_bank_id, object_bank_id: nullable, added without rewriting the table (PostgreSQL adds
  them to every monthly partition). The sealer fills them for the records it seals from now on; the records
  already sealed get them here, from the same expressions (services/audit_chain.py, set_banks). Records not
  yet sealed keep NULL: a bank supervisor's read tests those against the bank as before.
- the single-column indexes on operation, channel, object_id and person_id become (column, id); new ones
  on on_behalf_of, actor_id, result and the two bank columns, each (column, id); those of the columns that
  are often empty (person_id, on_behalf_of, the banks) only over the records that have one, so an insert
  without them does not touch them. On PostgreSQL each is created on every partition.
- staff_users: an index on the id written as text (what an audit record's actor_id holds).
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_audit_reads"
down_revision = "0018_transfer_chain"

_REPLACED = ("operation", "channel", "object_id", "person_id")
_NEW = ("on_behalf_of", "actor_id", "result", "maker_bank_id", "object_bank_id")
_SPARSE = ("person_id", "on_behalf_of", "maker_bank_id", "object_bank_id")  # only the records that have one


def upgrade() -> None:
    from sscard.services.audit_chain import set_banks

    op.add_column("audit_records", sa.Column("maker_bank_id", sa.Integer(), nullable=True))
    op.add_column("audit_records", sa.Column("object_bank_id", sa.Integer(), nullable=True))
    # before the back-fill, which finds each staff record's bank through it (not a scan of the staff a record)
    op.create_index("ix_staff_users_id_text", "staff_users", [sa.text("CAST(id AS VARCHAR(32))")])
    op.execute(f"UPDATE audit_records SET {set_banks('audit_records')} WHERE seal_seq IS NOT NULL")  # noqa: S608 (fixed text)
    for column in _REPLACED:
        op.drop_index(f"ix_audit_records_{column}", table_name="audit_records")
    for column in (*_REPLACED, *_NEW):
        where = sa.text(f"{column} IS NOT NULL") if column in _SPARSE else None
        op.create_index(f"ix_audit_records_{column}", "audit_records", [column, "id"], postgresql_where=where,
                        sqlite_where=where)


def downgrade() -> None:
    op.drop_index("ix_staff_users_id_text", table_name="staff_users")
    for column in (*_REPLACED, *_NEW):
        op.drop_index(f"ix_audit_records_{column}", table_name="audit_records")
    for column in _REPLACED:
        op.create_index(f"ix_audit_records_{column}", "audit_records", [column])
    op.drop_column("audit_records", "object_bank_id")
    op.drop_column("audit_records", "maker_bank_id")
