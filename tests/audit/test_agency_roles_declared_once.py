"""The agency's audit records name the centers' roles in SQL (models.foundation.AGENCY_RECORDS, the read's
condition and migration 0026's partial index): the roles are core.roles' CENTER_STAFF, and the index the
database holds says the same roles, or a center supervisor's read would miss the index (or the records)."""

from __future__ import annotations

import re

from sqlalchemy import text

from sscard.core.roles import CENTER_STAFF
from sscard.models.foundation import AGENCY_RECORDS


def _roles_in(sql: str) -> set[str]:
    found = re.search(r"actor_role\)?(?:::text)?\s*(?:=\s*ANY\s*\(+ARRAY\[|IN\s*\()([^\]]*?)[\])]", sql, re.IGNORECASE)
    assert found, sql
    return set(re.findall(r"'([a-z_]+)'", found.group(1)))


def test_the_agency_records_sql_names_exactly_the_center_staff_roles():
    assert _roles_in(AGENCY_RECORDS) == {str(role) for role in CENTER_STAFF}


def test_the_migrated_agency_index_names_the_same_roles_as_the_code(app):
    with app.db.session() as s:
        if s.bind.dialect.name == "sqlite":
            sql = s.scalar(text("SELECT sql FROM sqlite_master WHERE name = 'ix_audit_records_agency'"))
            assert sql is not None and AGENCY_RECORDS in sql  # SQLite uses a partial index only for the same text
        else:
            sql = s.scalar(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_audit_records_agency'"))
            assert sql is not None
    assert _roles_in(sql) == {str(role) for role in CENTER_STAFF}
