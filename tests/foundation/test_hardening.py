"""Input the database cannot hold is refused as input (422), never a 500, on both databases; and
forbidden attempts by a known actor leave an audit trace."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from sscard.composition import create_app
from sscard.core.errors import SscardError
from sscard.core.roles import CLI_OPERATOR
from sscard.models.foundation import AuditRecord, Person
from sscard.services import audit, enrolment, staff
from tests.foundation.helpers import headers


def _code(fn, *args, **kwargs) -> str:
    with pytest.raises(SscardError) as info:
        fn(*args, **kwargs)
    return info.value.code


def test_register_person_refuses_fields_longer_than_their_columns(city, app):
    clerk = city.actor("clerk")
    from datetime import date

    from sscard.core.identifiers import make_citizen_id

    cid = make_citizen_id("330106", date(1970, 1, 1), 41)
    assert _code(enrolment.register_person, app, clerk, cid, "甲", phone="1" * 21) == "invalid_request"
    assert _code(enrolment.register_person, app, clerk, cid, "甲", address="路" * 129) == "invalid_request"
    assert _code(enrolment.register_person, app, clerk, cid, "甲" * 33) == "invalid_request"
    assert enrolment.register_person(app, clerk, cid, "甲", phone="1" * 20, address="路" * 128)["id"]


def test_add_user_refuses_names_longer_than_their_columns(city, app):
    assert _code(staff.add_user, app, CLI_OPERATOR, "u" * 33, "Long-enough-1", "clerk",
                 center_code="C01") == "invalid_request"
    assert _code(staff.add_user, app, CLI_OPERATOR, "shortname", "Long-enough-1", "clerk", "n" * 33,
                 center_code="C01") == "invalid_request"
    assert _code(staff.add_user, app, CLI_OPERATOR, "shortname", "Long-enough-1", "janitor") == "invalid_request"
    assert _code(staff.add_user, app, CLI_OPERATOR, "shortname", "short", "clerk", center_code="C01") == \
        "weak_password"


def test_input_the_database_refuses_is_a_422_not_a_500(app, caplog):
    api = create_app(app)

    def unbounded(value: str, number: int) -> dict:
        """A route that forgot to bound its input: a NUL byte (PostgreSQL) or a 100-bit id (SQLite)."""
        def work(session):
            session.scalar(select(Person.id).where(Person.name == value))
            session.scalar(select(Person.id).where(Person.id == number))
        app.db.run(work)
        return {}

    api.add_api_route("/api/v1/test-unbounded", unbounded, methods=["GET"])
    with TestClient(api) as client:
        r = client.get("/api/v1/test-unbounded", params={"value": "a\x00b", "number": 2**100}, headers=headers())
    assert r.status_code == 422 and r.json() == {"code": "invalid_request", "message": "The request is malformed"}
    assert any("input the database refused" in rec.getMessage() for rec in caplog.records)


def test_a_forbidden_operation_by_a_known_actor_is_audited(city, app):
    teller = city.actor("teller")
    from datetime import date

    from sscard.core.identifiers import make_citizen_id

    cid = make_citizen_id("330106", date(1970, 1, 1), 43)
    assert _code(enrolment.register_person, app, teller, cid, "甲") == "forbidden"
    with app.db.session() as s:
        rows = s.scalars(select(AuditRecord).where(AuditRecord.operation == "person.register",
                                                   AuditRecord.result == "forbidden")).all()
    assert len(rows) == 1 and rows[0].actor_role == "teller" and rows[0].place == "GSB-001"
    # and none of the person's data went anywhere
    with app.db.session() as s:
        assert s.scalar(select(Person.id).where(Person.citizen_id == cid)) is None


def test_audit_read_is_for_supervisors_and_operators_only(city, app):
    assert audit.read_audit(app, city.actor("csup"), limit=5)["limit"] == 5
    assert audit.read_audit(app, city.actor("bsup"), limit=5)["records"]
    assert _code(audit.read_audit, app, city.actor("clerk")) == "forbidden"
    assert _code(audit.read_audit, app, city.actor("teller")) == "forbidden"
    assert _code(audit.read_audit, app, None) == "unauthenticated"


def test_the_same_person_typed_in_full_width_digits_is_the_same_person(city, app):
    from datetime import date

    from sscard.core.identifiers import make_citizen_id

    clerk = city.actor("clerk")
    cid = make_citizen_id("330106", date(1970, 1, 1), 45)
    enrolment.register_person(app, clerk, cid, "甲")
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in cid)
    assert _code(enrolment.register_person, app, clerk, full_width, "甲") == "already_exists"
    with app.db.session() as s:
        assert s.scalars(select(Person.citizen_id)).all() == [cid]
