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

revision = "0022_audit_immutable"
down_revision = "0021_audit_seals"

MESSAGE = "audit records are never changed or deleted"
_PG = (
    "CREATE FUNCTION audit_records_immutable() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"RAISE EXCEPTION '{MESSAGE}'; END $$",
    "CREATE TRIGGER audit_records_no_change BEFORE UPDATE OR DELETE ON audit_records "
    "FOR EACH ROW EXECUTE FUNCTION audit_records_immutable()",
)
_WRITTEN = ("id", "at", "actor_kind", "actor_id", "actor_role", "on_behalf_of", "attorney_id", "channel", "place",
            "operation", "object_type", "object_id", "person_id", "before", "after", "result", "idempotency_key",
            "detail")
_SQLITE = (
    f"CREATE TRIGGER audit_records_no_change BEFORE UPDATE OF {', '.join(_WRITTEN)} ON audit_records "
    f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
    f"CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
)


def upgrade() -> None:
    for statement in _PG if op.get_bind().dialect.name == "postgresql" else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_records_no_change ON audit_records")
        op.execute("DROP FUNCTION IF EXISTS audit_records_immutable()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_records_no_change")
        op.execute("DROP TRIGGER IF EXISTS audit_records_no_delete")
