"""audit immutable: the database refuses to change or delete an audit record, as it does a ledger transfer.

Since 0021 nothing updates an audit record (its seal is a row of audit_seals), so the database can refuse it:
a row trigger BEFORE UPDATE OR DELETE raises (PostgreSQL: on the partitioned table, so on every partition,
those made later included; the partitions job disables it on DEFAULT for the one DELETE it makes, moving a
month's rows into their new partition, as it does the ledger's). SQLite: BEFORE DELETE, and BEFORE UPDATE OF
every column but the two bank columns, which the log's insert trigger writes in the same statement there.

What it stops: an application bug, or a connection of the application's, changing the log. What it does
not: the tables' owner disabling the trigger; the hash chain catches what such a change does to a sealed
record (`sscard audit verify`).
"""

from alembic import op

from sscard.services.audit_chain import immutable_trigger

revision = "0022_audit_immutable"
down_revision = "0021_audit_seals"

MESSAGE = "audit records are never changed or deleted"
_WRITTEN = ("id", "at", "actor_kind", "actor_id", "actor_role", "on_behalf_of", "attorney_id", "channel", "place",
            "operation", "object_type", "object_id", "person_id", "before", "after", "result", "idempotency_key",
            "detail")  # SQLite: every column but the two bank columns, which the insert trigger updates there


def upgrade() -> None:
    for statement in immutable_trigger(op.get_bind().dialect.name, "audit_records", MESSAGE, _WRITTEN)[0]:
        op.execute(statement)


def downgrade() -> None:
    for statement in immutable_trigger(op.get_bind().dialect.name, "audit_records", MESSAGE, _WRITTEN)[1]:
        op.execute(statement)
