"""scale: the append-only tables partitioned by month on PostgreSQL (plain tables on SQLite)

ledger_transfers (by `day`, the Shanghai day), audit_records (by `at`), insurance_contributions and
medical_contribution_credits (by `month`, 'YYYY-MM') and medical_settlements (by `at`) become
`PARTITION BY RANGE` tables with one partition per Shanghai calendar month, from the oldest row's month to
three months ahead, and a DEFAULT partition (services/partitions.py creates later months ahead).

PostgreSQL requires every primary key and unique index of a partitioned table to include the partition
key. What that changes, and what keeps each guarantee (docs/SCALE.md, "Partitioning"):
- primary keys become (id, key); ids still come from the same sequence, so they stay unique;
- ledger_transfers: unique (transfer_id, day) and (pending_id, day); the self foreign key of pending_id is
  dropped. A transfer id or a pending transfer is unique across months because the ledger reads before it
  writes (book.transfer_exists, ledger._unresolved) inside SERIALIZABLE transactions or under the
  group-commit writer's lock, and `sscard account check` checks that each pending_id names a pending
  transfer;
- audit_records: unique (seal_seq, at); one sealer under a lock hands out seal_seq, and `sscard audit
  verify` finds any gap or repeat (the partial index on the unsealed records is kept, per partition);
- insurance_contributions and medical_contribution_credits: their keys already hold `month`, unchanged;
- medical_settlements: `code`, `quote_nonce` (a quote settles once) and `reverses_id` (a settlement is
  refunded once) must stay unique across months, and the medical service relies on the unique index alone
  (no read first). A row trigger puts each value into `medical_settlement_keys` (a small plain table with a
  primary key, each row naming its settlement by id and time), so a second one fails with the same unique
  violation, in the same savepoint, as before. (No foreign key to the settlement: PostgreSQL would refuse
  the partitions job's move of settlements out of DEFAULT; a TRUNCATE trigger empties the keys with them.)
  The self foreign key of reverses_id is dropped (a refund is made from the settlement it reads).
"""

import re
from dataclasses import replace
from datetime import date, datetime

from alembic import op
from sqlalchemy import text

from sscard.core.clock import SHANGHAI
from sscard.services.partitions import TABLES, Partitioned, add_months, create_partition, month_start

revision = "0010_scale"
down_revision = "0010_lifecycle"

MONTHS_AHEAD = 3
_PRIMARY_KEYS = {  # before partitioning; the partition key is added to them
    "ledger_transfers": ("id",),
    "audit_records": ("id",),
    "insurance_contributions": ("id",),
    "medical_contribution_credits": ("person_id", "month"),
    "medical_settlements": ("id",),
}
_SELF_FKS = {  # dropped when partitioned, restored on downgrade
    "ledger_transfers": ("fk_ledger_transfers_pending_id_ledger_transfers", "pending_id"),
    "medical_settlements": ("fk_medical_settlements_reverses_id_medical_settlements", "reverses_id"),
}
_GUARD = (
    "CREATE TABLE medical_settlement_keys (kind varchar(8) NOT NULL, value varchar(40) NOT NULL, "
    "settlement_id integer NOT NULL, settlement_at timestamptz NOT NULL, "
    "CONSTRAINT pk_medical_settlement_keys PRIMARY KEY (kind, value))",
    "CREATE FUNCTION medical_settlement_keys_claim() RETURNS trigger AS $$ BEGIN "
    "INSERT INTO medical_settlement_keys VALUES ('code', NEW.code, NEW.id, NEW.at); "
    "IF NEW.quote_nonce IS NOT NULL THEN "
    "INSERT INTO medical_settlement_keys VALUES ('quote', NEW.quote_nonce, NEW.id, NEW.at); END IF; "
    "IF NEW.reverses_id IS NOT NULL THEN "
    "INSERT INTO medical_settlement_keys VALUES ('reverses', NEW.reverses_id::text, NEW.id, NEW.at); END IF; "
    "RETURN NULL; END; $$ LANGUAGE plpgsql",
    "CREATE TRIGGER medical_settlements_keys AFTER INSERT ON medical_settlements "
    "FOR EACH ROW EXECUTE FUNCTION medical_settlement_keys_claim()",
    # settlements are never deleted; a TRUNCATE (tests, a scratch database) empties the keys with them
    "CREATE FUNCTION medical_settlement_keys_clear() RETURNS trigger AS $$ BEGIN "
    "TRUNCATE medical_settlement_keys; RETURN NULL; END; $$ LANGUAGE plpgsql",
    "CREATE TRIGGER medical_settlements_keys_truncate AFTER TRUNCATE ON medical_settlements "
    "FOR EACH STATEMENT EXECUTE FUNCTION medical_settlement_keys_clear()",
    "INSERT INTO medical_settlement_keys SELECT 'code', code, id, at FROM medical_settlements "
    "UNION ALL SELECT 'quote', quote_nonce, id, at FROM medical_settlements WHERE quote_nonce IS NOT NULL "
    "UNION ALL SELECT 'reverses', reverses_id::text, id, at FROM medical_settlements WHERE reverses_id IS NOT NULL",
)


def _definitions(conn, table: str) -> dict:
    """What must be re-made on the new table: indexes (but the primary key), foreign keys, user triggers."""
    oid = conn.scalar(text("SELECT CAST(:t AS regclass)::oid"), {"t": table})
    indexes = conn.execute(text(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisunique FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = :o AND NOT i.indisprimary "
        "ORDER BY c.relname"), {"o": oid}).all()
    fks = conn.execute(text("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                            "WHERE conrelid = :o AND contype = 'f' AND confrelid <> :o ORDER BY conname"),
                       {"o": oid}).all()
    referenced = conn.execute(text("SELECT conname, conrelid::regclass::text FROM pg_constraint "
                                   "WHERE confrelid = :o AND conrelid <> :o AND contype = 'f'"), {"o": oid}).all()
    if referenced:  # none today: a new one needs a decision, not a silent drop
        raise RuntimeError(f"{table} is referenced by foreign keys {referenced}: decide before partitioning")
    triggers = conn.execute(text("SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
                                 "WHERE tgrelid = :o AND NOT tgisinternal ORDER BY tgname"), {"o": oid}).all()
    sequence = conn.scalar(text("SELECT pg_get_serial_sequence(:t, 'id') FROM pg_attribute "
                                "WHERE attrelid = :o AND attname = 'id'"), {"t": table, "o": oid})
    return {"indexes": indexes, "fks": fks, "triggers": triggers, "sequence": sequence}


def _with_key(indexdef: str, key: str) -> str:
    """A unique index of a partitioned table must hold the partition key: add it as the last column."""
    if " WHERE " in indexdef or not indexdef.endswith(")"):
        raise RuntimeError(f"cannot add the partition key to {indexdef}")
    columns = indexdef[indexdef.rindex("(") + 1 : -1]
    if key in [c.strip() for c in columns.split(",")]:
        return indexdef
    return indexdef[:-1] + f", {key})"


def _without_key(indexdef: str, key: str) -> str:
    return re.sub(rf", {re.escape(key)}\)$", ")", indexdef)


def _rebuild(conn, spec: Partitioned, *, partitioned: bool) -> None:
    """Re-make a table as a partitioned (or again a plain) table with the same rows, columns, defaults, checks,
    indexes, foreign keys and triggers."""
    table, key = spec.table, spec.key
    defs = _definitions(conn, table)
    new = f"{table}_new"
    clause = f' PARTITION BY RANGE ("{key}")' if partitioned else ""
    conn.execute(text(f'CREATE TABLE "{new}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS){clause}'))
    if partitioned:
        conn.execute(text(f'CREATE TABLE "{table}_default" PARTITION OF "{new}" DEFAULT'))
        now = month_start(conn.scalar(text("SELECT (now() AT TIME ZONE 'Asia/Shanghai')::date")))
        span = [_month_of(v) for v in conn.execute(text(f'SELECT min("{key}"), max("{key}") FROM "{table}"')).one()  # noqa: S608 (names from the fixed table list)
                if v is not None]
        month, last = min(span + [now]), add_months(max(span + [now]), MONTHS_AHEAD)
        building = replace(spec, table=new)
        while month <= last:
            create_partition(conn, building, month)
            month = add_months(month, 1)
    conn.execute(text(f'INSERT INTO "{new}" SELECT * FROM "{table}"'))  # noqa: S608 (names from the fixed table list)
    if defs["sequence"]:
        conn.execute(text(f"ALTER SEQUENCE {defs['sequence']} OWNED BY NONE"))
    conn.execute(text(f'DROP TABLE "{table}"'))
    conn.execute(text(f'ALTER TABLE "{new}" RENAME TO "{table}"'))
    for (name,) in conn.execute(text("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                     "WHERE i.inhparent = CAST(:t AS regclass)"), {"t": table}).all():
        if name.startswith(new):  # the partitions were named after the table being built
            conn.execute(text(f'ALTER TABLE "{name}" RENAME TO "{table}{name[len(new):]}"'))
    if defs["sequence"]:
        conn.execute(text(f'ALTER SEQUENCE {defs["sequence"]} OWNED BY "{table}".id'))
    columns = list(_PRIMARY_KEYS[table]) + ([key] if partitioned and key not in _PRIMARY_KEYS[table] else [])
    conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "pk_{table}" PRIMARY KEY ({", ".join(columns)})'))
    for _name, indexdef, unique in defs["indexes"]:
        if unique:
            indexdef = _with_key(indexdef, key) if partitioned else _without_key(indexdef, key)
        conn.execute(text(indexdef))
    for name, definition in defs["fks"]:
        conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}'))
    for _name, definition in defs["triggers"]:
        conn.execute(text(definition))


def _month_of(value) -> date:
    if isinstance(value, str):  # 'YYYY-MM'
        return date(int(value[:4]), int(value[5:7]), 1)
    if isinstance(value, datetime):
        return month_start(value.astimezone(SHANGHAI).date())
    return month_start(value)


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return  # SQLite: plain tables
    for spec in TABLES:
        fk = _SELF_FKS.get(spec.table)
        if fk:
            conn.execute(text(f'ALTER TABLE "{spec.table}" DROP CONSTRAINT "{fk[0]}"'))
        _rebuild(conn, spec, partitioned=True)
    for statement in _GUARD:
        conn.execute(text(statement))


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    conn.execute(text("DROP TRIGGER IF EXISTS medical_settlements_keys ON medical_settlements"))
    conn.execute(text("DROP FUNCTION IF EXISTS medical_settlement_keys_claim()"))
    conn.execute(text("DROP TRIGGER IF EXISTS medical_settlements_keys_truncate ON medical_settlements"))
    conn.execute(text("DROP FUNCTION IF EXISTS medical_settlement_keys_clear()"))
    conn.execute(text("DROP TABLE IF EXISTS medical_settlement_keys"))
    for spec in TABLES:
        _rebuild(conn, spec, partitioned=False)
        fk = _SELF_FKS.get(spec.table)
        if fk:
            conn.execute(text(f'ALTER TABLE "{spec.table}" ADD CONSTRAINT "{fk[0]}" FOREIGN KEY ({fk[1]}) '
                              f'REFERENCES "{spec.table}" (id)'))
