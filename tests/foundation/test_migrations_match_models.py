"""The schema the migrations build is the one the models declare: Alembic's autogenerate finds nothing to add.

On SQLite the comparison is whole (tables, columns, types, nullability, keys, unique constraints, indexes,
foreign keys). On PostgreSQL migration 0010_scale deliberately departs from the models for the tables it
partitions by month (services/partitions.TABLES): their monthly partitions, unique keys that carry the
partition key, self foreign keys dropped, and the medical_settlement_keys table that guards the settlements'
unique values. There the tables and columns are still compared for every table, and keys, indexes and
constraints for every table that is not partitioned.
"""

from __future__ import annotations

import re

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from sscard.models import Base
from sscard.services.partitions import TABLES

PARTITIONED = {spec.table for spec in TABLES}
_PARTITION = re.compile(r"_(p\d{4}_\d{2}|default)$")
_COLUMN_LEVEL = {"add_table", "remove_table", "add_column", "remove_column", "modify_type", "modify_nullable"}


def _kind_and_table(diff) -> tuple[str, str]:
    """("add_index", Index), ("add_column", schema, table, Column), [("modify_type", schema, table, ...)], ..."""
    entry = diff[0] if isinstance(diff, list) else diff
    if len(entry) > 2 and isinstance(entry[2], str):
        return entry[0], entry[2]
    obj = entry[1]
    return entry[0], obj.name if entry[0].endswith("_table") else obj.table.name


def test_migrations_build_what_the_models_declare(db_url):
    engine = create_engine(db_url)
    postgres = engine.dialect.name == "postgresql"

    def include_object(obj, name, type_, reflected, compare_to):
        if type_ == "table" and reflected and compare_to is None:
            # the monthly partitions and the settlements' unique-key guard exist only on PostgreSQL
            return not (postgres and (_PARTITION.search(name) or name == "medical_settlement_keys"))
        return True

    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                             "include_object": include_object})
            diffs = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    if postgres:
        diffs = [d for d in diffs
                 if _kind_and_table(d)[0] in _COLUMN_LEVEL or _kind_and_table(d)[1] not in PARTITIONED]
    assert diffs == []
