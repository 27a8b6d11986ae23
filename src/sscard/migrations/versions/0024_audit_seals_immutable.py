"""audit seals immutable: the database refuses to change or delete a seal, as it does an audit record (0022).

The sealer only ever inserts seals (and migration 0023 moved them into monthly partitions): the log and its
chain are both only ever inserted into. A row trigger BEFORE UPDATE OR DELETE raises (PostgreSQL: on the
partitioned table, so on every partition, those made later included; the partitions job disables it on
DEFAULT for the one DELETE it makes, moving a month's seals into their new partition). SQLite: BEFORE
UPDATE and BEFORE DELETE.

What it stops: an application bug, or a connection of the application's, rewriting or dropping a seal.
What it does not: the tables' owner disabling the trigger; `sscard audit verify` catches what that does (a
deleted seal is a `gap`, a rewritten one a `prev_hash` or `hash` break).
"""

from alembic import op

revision = "0024_audit_seals_immutable"
down_revision = "0023_audit_seal_months"

MESSAGE = "audit seals are never changed or deleted"
_PG = (
    "CREATE FUNCTION audit_seals_immutable() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"RAISE EXCEPTION '{MESSAGE}'; END $$",
    "CREATE TRIGGER audit_seals_no_change BEFORE UPDATE OR DELETE ON audit_seals "
    "FOR EACH ROW EXECUTE FUNCTION audit_seals_immutable()",
)
_SQLITE = (
    f"CREATE TRIGGER audit_seals_no_change BEFORE UPDATE ON audit_seals BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
    f"CREATE TRIGGER audit_seals_no_delete BEFORE DELETE ON audit_seals BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
)


def upgrade() -> None:
    for statement in _PG if op.get_bind().dialect.name == "postgresql" else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_seals_no_change ON audit_seals")
        op.execute("DROP FUNCTION IF EXISTS audit_seals_immutable()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_seals_no_change")
        op.execute("DROP TRIGGER IF EXISTS audit_seals_no_delete")
