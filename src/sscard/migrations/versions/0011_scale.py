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

from alembic import op
from sqlalchemy import text

from sscard.services.partitions import TABLES, rebuild

revision = "0010_scale"
down_revision = "0010_lifecycle"

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


_SCALE = [spec for spec in TABLES if spec.table in _PRIMARY_KEYS]  # this revision's five (0023 adds audit_seals)


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return  # SQLite: plain tables
    for spec in _SCALE:
        fk = _SELF_FKS.get(spec.table)
        if fk:
            conn.execute(text(f'ALTER TABLE "{spec.table}" DROP CONSTRAINT "{fk[0]}"'))
        rebuild(conn, spec, _PRIMARY_KEYS[spec.table], partitioned=True)
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
    for spec in _SCALE:
        rebuild(conn, spec, _PRIMARY_KEYS[spec.table], partitioned=False)
        fk = _SELF_FKS.get(spec.table)
        if fk:
            conn.execute(text(f'ALTER TABLE "{spec.table}" ADD CONSTRAINT "{fk[0]}" FOREIGN KEY ({fk[1]}) '
                              f'REFERENCES "{spec.table}" (id)'))
