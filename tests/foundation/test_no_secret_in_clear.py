"""RULES §4: passwords are never stored, logged or returned in clear.

A flow sets and changes an SS password, a query password and a staff password (and types wrong ones);
then every column of every table, every log record at DEBUG (SQL parameters included) and every
response body is searched for each clear value."""

from __future__ import annotations

import logging

from sqlalchemy import select

from sscard.core.roles import CLI_OPERATOR, Channel
from sscard.models import Base
from sscard.services import staff
from tests.foundation.helpers import headers

SS_NEW = "802461"
SS_RESET = "480613"
SS_WRONG = "917253"
QUERY_NEW = "80468213"
QUERY_WRONG = "Wrong-Guess-55"
STAFF_PASSWORD = "Zq-Staff-Secret-7741"
STAFF_WRONG = "Zq-Staff-Guess-3390"
SECRETS = [SS_NEW, SS_RESET, SS_WRONG, QUERY_NEW, QUERY_WRONG, STAFF_PASSWORD, STAFF_WRONG]


def test_no_password_appears_in_any_table_log_or_response(client, city, app, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # SQLAlchemy holds its loggers at WARN
    bodies: list[str] = []

    def call(method, path, token=None, **kw):
        r = client.request(method, path, headers=headers(token), **kw)
        bodies.append(r.text)
        return r

    card = city.issued_card()
    clerk = city.token("clerk")
    staff.add_user(app, CLI_OPERATOR, "newclerk", STAFF_PASSWORD, "clerk", "New Clerk", center_code="C01")
    assert staff.authenticate_staff(app, "newclerk", STAFF_PASSWORD, Channel.WINDOW) is not None
    assert staff.authenticate_staff(app, "newclerk", STAFF_WRONG, Channel.WINDOW) is None

    r = call("POST", "/api/v1/cardholder/login", json={"login": card.citizen_id, "password": card.card_number[-6:]})
    holder = r.json()["token"]  # the initial password's: only its change (RULES §4)
    q = "/api/v1/cardholder/query-password/change"
    assert call("POST", q, holder, json={"old": card.card_number[-6:], "new": QUERY_NEW, "new_again": QUERY_NEW,
                                         "extra": QUERY_NEW}).status_code == 422
    assert call("POST", q, holder,
                json={"old": card.card_number[-6:], "new": QUERY_NEW, "new_again": QUERY_NEW}).is_success
    assert call("POST", "/api/v1/cardholder/login",
                json={"login": card.citizen_id, "password": QUERY_WRONG}).status_code == 401
    assert call("POST", "/api/v1/cardholder/login", json={"login": card.citizen_id, "password": QUERY_NEW}).is_success
    holder = call("POST", "/api/v1/cardholder/login", json={"login": card.citizen_id, "password": QUERY_NEW}).json()["token"]
    ss = f"/api/v1/cards/{card.card_number}/ss-password"
    assert call("POST", f"{ss}/change", holder, json={"old": "123456", "new": SS_NEW, "new_again": SS_NEW}).is_success
    assert call("POST", f"{ss}/verify", holder, json={"password": SS_WRONG}).status_code == 401
    assert call("POST", f"{ss}/verify", holder, json={"password": SS_NEW}).is_success
    assert call("POST", f"{ss}/change", holder,
                json={"old": SS_NEW, "new": SS_RESET, "new_again": SS_RESET + "0"}).status_code == 422
    assert call("POST", f"{ss}/reset", clerk,
                json={"presented_citizen_id": card.citizen_id, "new": SS_RESET}).is_success
    assert call("POST", f"{ss}/verify", holder, json={"password": SS_RESET}).is_success

    csup = city.token("csup")
    assert call("GET", "/api/v1/audit", csup, params={"limit": 1000}).is_success

    # every column of every table
    found = []
    with app.db.session() as s:
        for table in Base.metadata.sorted_tables:
            for row in s.execute(select(table)).mappings():
                for column, value in row.items():
                    text = value if isinstance(value, str) else repr(value)
                    found += [(table.name, column, secret) for secret in SECRETS if secret in text]
    assert found == []

    # every log record, with its arguments (SQL parameters are logged at this level)
    assert any(r.name.startswith("sqlalchemy.engine") for r in caplog.records), "SQL was not logged: test is blind"
    for record in caplog.records:
        text = record.getMessage() + repr(record.args)
        assert not [secret for secret in SECRETS if secret in text], record.name

    # every response body
    assert len(bodies) == 13
    for body in bodies:
        assert not [secret for secret in SECRETS if secret in body], body
