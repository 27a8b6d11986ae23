"""audit agency: a center supervisor reads the agency's side of the audit log, and an operation may name the
bank of the object its record is about.

- ix_audit_records_agency: a partial index on audit_records (id) over the agency's records
  (models.foundation.AGENCY_RECORDS: no bank made them, and they are not a money movement on a bank's
  account), which a center supervisor's read walks newest first (services/audit.py, `records_in_scope`)
  instead of walking back through the city's card payments. On PostgreSQL it is created on the partitioned
  table, which creates it on every monthly partition (those made later too).
- the log's insert trigger (services/audit_chain.py, `insert_trigger`) keeps an `object_bank_id` the
  inserted record already has (Op.audit's, from the operation: a replacement's new card, whose row a
  group-committed batch writes after the record) and derives it as before otherwise.
"""

import sqlalchemy as sa
from alembic import op

from sscard.models.foundation import AGENCY_RECORDS

revision = "0026_audit_agency"
down_revision = "0025_idempotency_retention"

# the object's bank as migration 0021's trigger derived it, whatever the record said
_OBJECT_BANK_BEFORE = (
    "CASE NEW.object_type"
    " WHEN 'bank_account' THEN (SELECT a.bank_id FROM bank_accounts a WHERE a.pan = NEW.object_id)"
    " WHEN 'card' THEN (SELECT c.bank_id FROM cards c WHERE c.card_number = NEW.object_id) END")


def _trigger(columns: dict[str, str] | None) -> None:
    from sscard.services.audit_chain import insert_trigger

    dialect = op.get_bind().dialect.name
    for statement in insert_trigger(dialect)[1] + insert_trigger(dialect, columns)[0]:
        op.execute(statement)


def upgrade() -> None:
    where = sa.text(AGENCY_RECORDS)
    op.create_index("ix_audit_records_agency", "audit_records", ["id"], postgresql_where=where, sqlite_where=where)
    _trigger(None)


def downgrade() -> None:
    from sscard.services.audit_chain import BANK_COLUMNS

    _trigger({**BANK_COLUMNS, "object_bank_id": _OBJECT_BANK_BEFORE})
    op.drop_index("ix_audit_records_agency", table_name="audit_records")
