"""Dates at either end of the calendar (session 12's sweep). `0001-01-01` and `9999-12-31` are valid ISO-8601
dates; a time on them with an offset (`0001-01-01T00:00:00+08:00`), or a day the service turns into its
Shanghai midnight, has no UTC time. The audit's `since`/`until` and the day report's `day` (the API and the
window's page) answered 500: the database column's type shifts a time to UTC in SQLAlchemy's bind step,
which wraps the OverflowError in a StatementError that the frame's net for input the database cannot
hold (services.app.UNSTORABLE_INPUT) did not know. The net now asks `services.app.unstorable`."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from sscard.composition import create_app
from sscard.core.roles import Channel
from sscard.services import websession
from tests.support import STAFF_PASSWORD, bearer

pytestmark = pytest.mark.keys_required

EDGE_DATES = ("0001-01-01", "0001-01-02", "9999-12-30", "9999-12-31")
EDGE_TIMES = (*EDGE_DATES, "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00+08:00", "0001-01-01T00:00:00-14:00",
              "9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59.999999-12:00", "9999-12-31T23:59:59+14:00")


@pytest.fixture
def server(app):
    with TestClient(create_app(app), raise_server_exceptions=False) as client:
        yield client


def _date_query_parameters(server) -> list[tuple[str, str, str]]:
    """(method, path, parameter) of every query parameter of the API that reads a date or a time."""
    found = []
    for path, item in server.get("/openapi.json").json()["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and '"format": "date' in repr(parameter["schema"]).replace("'", '"'):
                    found.append((method.upper(), path, parameter["name"]))
    return found


def test_a_time_at_either_end_of_the_calendar_is_refused_or_answered_never_500_by_every_query_that_reads_one(
        city, app, server):
    card = city.issued_card()
    tokens = {"/api/v1/audit": city.token("operator"), "/api/v1/counter/persons": city.token("clerk"),
              "/api/v1/counter/reports/day": city.token("csup")}
    extra = {"/api/v1/counter/persons": f"name={quote(card.name)}&"}
    walked = _date_query_parameters(server)
    assert {(p, n) for _m, p, n in walked} >= {("/api/v1/audit", "since"), ("/api/v1/audit", "until"),
                                              ("/api/v1/counter/persons", "birth_date"),
                                              ("/api/v1/counter/reports/day", "day")}
    for method, path, name in walked:
        assert path in tokens, f"a new route reads a date: give it a caller here ({method} {path})"
        for value in EDGE_TIMES:
            r = server.request(method, f"{path}?{extra.get(path, '')}{name}={quote(value)}", headers=bearer(tokens[path]))
            assert r.status_code in (200, 422), (path, name, value, r.status_code, r.text[:200])
            if r.status_code == 422:
                assert r.json()["code"] == "invalid_request"


def test_a_power_of_attorney_dated_at_either_end_of_the_calendar_is_answered_never_500(city, app, server):
    card = city.issued_card()
    clerk = city.token("clerk")
    for i, (start, end) in enumerate((("0001-01-01", "0001-01-02"), ("9999-12-30", "9999-12-31"))):
        body = {"person_id": card.person_id, "agent_name": "李四", "agent_citizen_id": "11010519491231002X",
                "scope": ["replacement.apply"], "valid_from": start, "valid_to": end, "document_ref": "edge"}
        r = server.post("/api/v1/counter/attorneys", json=body, headers=bearer(clerk, f"edge-{i}"))
        assert r.status_code in (201, 422), (start, r.status_code, r.text[:200])
    r = server.get(f"/api/v1/counter/persons/{card.person_id}/attorneys", headers=bearer(clerk))
    assert r.status_code == 200, r.text[:200]


def test_the_windows_day_report_of_a_day_at_either_end_of_the_calendar_is_a_page_never_500(city, app, server):
    web = websession.staff_login(app, "csup", STAFF_PASSWORD, Channel.WINDOW)
    server.cookies.set("sscard_staff", web.token)
    for day in EDGE_DATES:
        for path in ("/console/report", "/console/report.csv"):
            r = server.get(f"{path}?day={day}", follow_redirects=False)
            assert r.status_code in (200, 422), (path, day, r.status_code)
            if r.status_code == 422:
                assert r.headers["content-type"].startswith("text/html"), (path, day)
