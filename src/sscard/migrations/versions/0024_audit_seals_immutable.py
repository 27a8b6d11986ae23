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

from sscard.services.audit_chain import immutable_trigger

revision = "0024_audit_seals_immutable"
down_revision = "0023_audit_seal_months"

MESSAGE = "audit seals are never changed or deleted"


def upgrade() -> None:
    for statement in immutable_trigger(op.get_bind().dialect.name, "audit_seals", MESSAGE)[0]:
        op.execute(statement)


def downgrade() -> None:
    for statement in immutable_trigger(op.get_bind().dialect.name, "audit_seals", MESSAGE)[1]:
        op.execute(statement)
