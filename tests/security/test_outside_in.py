"""What an outside tester sends to the running server (session 9's sweep, docs/API.md "Outside-in sweep"),
each as the request that exposed a defect, sent again; and, since each fix is in the frame, sent to every
route or channel where the defect could recur, not only the one the probe happened to try."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated

import pytest
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient

from sscard.api import schemas
from sscard.api.main import refuse_bare_dates
from sscard.api.terminal_lane import TerminalLane, lane_routes
from sscard.composition import create_app
from tests.ledger.helpers import terminal_token
from tests.security.test_route_actor_table import _requests, world  # noqa: F401  (world: the walker's fixture)

pytestmark = pytest.mark.keys_required

DEEP = b"[" * 100_000 + b"]" * 100_000  # deeper than any JSON parser's recursion


@pytest.fixture
def server(app):
    """The whole server, as `sscard serve` runs it; a 500 is answered, not raised, as a client sees it."""
    api = create_app(app)
    with TestClient(api, raise_server_exceptions=False) as client:
        client.api = api  # type: ignore[attr-defined]
        yield client


def _fill(template: str) -> str:
    return re.sub(r"{[^}]*}", "1", template)


def test_the_lane_answers_a_too_deeply_nested_body_as_fastapi_does_on_every_lane_route(app, server, world):  # noqa: F811
    """Finding 1: json.loads raised RecursionError in the lane (a 500); FastAPI answers such a body 400."""
    plain_api = create_app(app)
    plain_api.user_middleware = [m for m in plain_api.user_middleware if m.cls is not TerminalLane]
    plain = TestClient(plain_api, raise_server_exceptions=False)
    routes, _ = lane_routes(server.api, "POST")
    assert len(routes) > 10
    for route in routes:
        url = _fill(route.path)
        for body in (DEEP, b'{"amount_fen": ' + DEEP + b"}", b"\xff\xfe{}", b'{"pan": "\xed\xa0\x80"}', b"{" * 5000):
            a = server.post(url, content=body, headers={"content-type": "application/json", "Idempotency-Key": "k"})
            b = plain.post(url, content=body, headers={"content-type": "application/json", "Idempotency-Key": "k"})
            where = (url, body[:20], a.status_code, a.text[:200])
            assert a.status_code == b.status_code and a.status_code < 500, where
            assert a.json() == b.json(), where
            if route.body_params and body in (DEEP, b'{"amount_fen": ' + DEEP + b"}"):
                # no credential was sent: who may call is decided before the body (main.caller_refused)
                assert (a.status_code, a.json()["code"]) == (401, "unauthenticated"), where
                signed = {"content-type": "application/json", "Idempotency-Key": "k",
                          "Authorization": f"Bearer {world['tokens']['atm' if '/terminal/' in url else 'teller']}"}
                r = server.post(url, content=body, headers=signed)
                assert (r.status_code, r.json()["code"]) == (400, "invalid_request"), (url, r.text[:200])


def test_a_date_sent_as_a_number_or_as_epoch_text_is_refused_in_bodies_and_queries(city, app, server):
    """Finding 2: Pydantic's lax mode read 1767225600 as 2026-01-01 (a body's date) and "1700000000" as a
    time (a query's datetime). Dates are ISO-8601 text only (schemas.IsoDate, IsoDateTime)."""
    from tests.support import bearer

    card = city.issued_card()
    clerk, csup, operator = city.token("clerk"), city.token("csup"), city.token("operator")
    poa = {"person_id": card.person_id, "agent_name": "李四", "agent_citizen_id": "11010519491231002X",
           "scope": ["replacement.apply"], "valid_from": "2026-01-01", "valid_to": "2027-01-01", "document_ref": "d"}
    for field, bad in (("valid_from", 1767225600), ("valid_to", 1798761600), ("valid_from", 0),
                       ("valid_from", 1767225600.0), ("valid_from", "1767225600"), ("valid_to", True)):
        r = server.post("/api/v1/counter/attorneys", json={**poa, field: bad}, headers=bearer(clerk, f"d-{field}-{bad}"))
        assert (r.status_code, r.json()["code"]) == (422, "invalid_request"), (field, bad, r.text)
        assert r.json()["details"][0]["loc"] == ["body", field]
    assert server.post("/api/v1/counter/attorneys", json=poa, headers=bearer(clerk, "d-ok")).status_code == 201
    for url, token in (("/api/v1/audit?since=1700000000", operator), ("/api/v1/audit?until=0", operator),
                       ("/api/v1/audit?since=20260101", operator),
                       (f"/api/v1/counter/persons?name={card.name}&birth_date=0", clerk),
                       ("/api/v1/counter/reports/day?day=1767225600", csup)):
        r = server.get(url, headers=bearer(token))
        assert (r.status_code, r.json()["code"]) == (422, "invalid_request"), (url, r.text)
    for url, token in (("/api/v1/audit?since=2026-01-01T00:00:00Z&until=2027-01-01", operator),
                       (f"/api/v1/counter/persons?name={card.name}&birth_date={card.birth.isoformat()}", clerk),
                       ("/api/v1/counter/reports/day?day=2026-01-01", csup)):
        assert server.get(url, headers=bearer(token)).status_code == 200, url


def test_a_date_that_is_not_iso_text_only_stops_the_model_or_the_server_from_being_made():
    """By construction: a request model (schemas.Strict) with a plain date fails when its class is made, and a
    route reading one (a query or path parameter, `IsoDate = Query()` included: FastAPI drops its validator
    there) stops the server from starting."""
    for annotation in (date, datetime, date | None, list[date], dict[str, datetime]):
        with pytest.raises(TypeError, match="ISO-8601"):
            type("Body", (schemas.Strict,), {"__annotations__": {"day": annotation}})
    type("Fine", (schemas.Strict,), {"__annotations__": {"day": schemas.IsoDate, "at": schemas.IsoDateTime | None}})

    def plain(day: date): ...
    def dropped(day: schemas.IsoDate = Query()): ...
    def optional(at: schemas.IsoDateTime | None = None, day: Annotated[schemas.IsoDate, Query()] = date(2026, 1, 1)): ...

    for endpoint, bad in ((plain, True), (dropped, True), (optional, False)):
        api = FastAPI()
        api.get("/x")(endpoint)
        if bad:
            with pytest.raises(TypeError, match="ISO-8601"):
                refuse_bare_dates(api)
        else:
            refuse_bare_dates(api)


def _methods_by_path(api) -> dict[str, set[str]]:
    """Each route's path -> the methods of every route its address (parameters filled) reaches: a literal
    path under a parameterized one (`/console/visits/1/done` under `/console/visits/{visit_id}/{action}`)
    is answered by both."""
    from fastapi.routing import iter_route_contexts
    from starlette.routing import Route

    routes = [ctx for ctx in iter_route_contexts(api.routes) if isinstance(ctx.original_route, Route) and ctx.methods]
    paths: dict[str, set[str]] = {}
    for ctx in routes:
        url = _fill(ctx.path_format)
        paths[ctx.path_format] = set().union(*(other.methods for other in routes
                                               if other.original_route.path_regex.match(url)))
    return paths


def test_a_405_lists_in_allow_every_method_its_path_supports(server):
    """Finding 3: Starlette's 405 named only the first route's methods when several routes share a path
    (GET and POST /api/v1/persons answered DELETE with `Allow: POST`); the handler names them all."""
    paths = _methods_by_path(server.api)
    shared = {p: m for p, m in paths.items() if len(m) > 1}
    assert {"/api/v1/persons", "/api/v1/medical/institutions", "/console/login", "/bank/activate"} <= set(shared)
    for path, methods in paths.items():
        r = server.request("PATCH", _fill(path))
        if r.status_code == 404:  # a path parameter's convertor (an int) refused "1": no route matched at all
            continue
        assert r.status_code == 405, (path, r.status_code)
        assert set(r.headers["allow"].split(", ")) == methods, (path, r.headers["allow"])
        if path.startswith("/api/"):  # its own code (it was `invalid_request`: session 22's contract probe)
            assert r.json()["code"] == "method_not_allowed", path
    # the probe's finding: a mount's 405 (StaticFiles names nothing) says what it serves too
    r = server.post("/static/sscard.css")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"


ACCEPT_LANGUAGE = [  # header -> the language chosen (zh is the default)
    ("en;q=0.1, zh;q=0.9", "zh"), ("fr, en;q=0.5", "en"), ("*", "zh"), ("en", "en"), ("EN-us", "en"),
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh"), ("en-GB,en;q=0.9,zh-CN;q=0.8", "en"), ("de, fr;q=0.9", "zh"),
    ("zh;q=0, en", "en"), ("en;q=0", "zh"), ("en;q=abc, zh;q=0.2", "zh"), ("en;q=1.5, zh;q=0.1", "zh"),
    ("fr;q=0.9, *;q=0.5, en;q=0.4", "zh"), ("english", "zh"), ("", "zh"), (" , ;q=1,,en ;q=0.3", "en"),
    ("en-US;q=0.8, zh-TW;q=0.8", "en"), ("zh-TW;q=0.8, en-US;q=0.8", "zh"), ("x" * 5000 + ", en", "en"),
]


def test_the_language_is_chosen_by_the_accept_language_weights_on_every_channel(server):
    """Finding 4: `accept.startswith("en")` answered `en;q=0.1, zh;q=0.9` in English and `fr, en;q=0.5` in
    Chinese. http.language reads the weights; the API's errors and the pages both ask it."""
    for header, lang in ACCEPT_LANGUAGE:
        api = server.get("/api/v1/identifiers/check?kind=card_number&value=X", headers={"Accept-Language": header})
        assert api.status_code == 422
        english = api.json()["message"].startswith("Invalid")
        assert english == (lang == "en"), (header, api.json())
        page = server.get("/portal/login", headers={"Accept-Language": header})
        assert ('<html lang="en">' in page.text) == (lang == "en"), header
    # an explicit choice (?lang=, the lang cookie) still comes before the header; an unknown one does not count
    r = server.get("/api/v1/identifiers/check?kind=card_number&value=X&lang=en", headers={"Accept-Language": "zh"})
    assert r.json()["message"].startswith("Invalid")
    r = server.get("/api/v1/identifiers/check?kind=card_number&value=X&lang=fr", headers={"Accept-Language": "en"})
    assert r.json()["message"].startswith("Invalid")


def _credentials(app, city, world) -> dict[str, dict]:  # noqa: F811
    """Every kind of credential sscard issues, each with the channel it was issued for: API tokens of staff,
    cardholders and terminals (bearer), and the web sessions of the window console, the bank counter and
    the portal (cookies, with each session's own CSRF token so that only the channel can refuse a form)."""
    from sscard.core.roles import Channel
    from sscard.services import websession
    from tests.support import QUERY_PASSWORD, STAFF_PASSWORD

    tokens = world["tokens"]
    out = {name: {"channel": "terminal", "bearer": tokens[name]} for name in ("atm", "pos", "kiosk", "hospital")}
    out |= {name: {"channel": "api", "bearer": tokens[name]} for name in ("clerk", "teller", "operator", "cardholder")}
    for name, user, channel in (("window_session", "clerk", Channel.WINDOW), ("bank_session", "teller", Channel.BANK_OUTLET)):
        web = websession.staff_login(app, user, STAFF_PASSWORD, channel)
        out[name] = {"channel": channel.value, "cookie": ("sscard_staff", web.token), "csrf": web.csrf}
    a = world["a"]
    web = websession.cardholder_login(app, a.card_number, QUERY_PASSWORD)  # the world changed its initial one
    out["portal_session"] = {"channel": "portal", "cookie": ("sscard_portal", web.token), "csrf": web.csrf}
    return out


def _send(client, credential: dict, method: str, url: str, *, as_bearer: bool = False, **kwargs):
    client.cookies.clear()
    headers = dict(kwargs.pop("headers", {}))
    if "bearer" in credential:
        headers["Authorization"] = f"Bearer {credential['bearer']}"
    elif as_bearer:  # a session's cookie value presented as a bearer token
        headers["Authorization"] = f"Bearer {credential['cookie'][1]}"
    else:
        client.cookies.set(*credential["cookie"])
        headers["X-CSRF-Token"] = credential["csrf"]
    return client.request(method, url, headers=headers, follow_redirects=False, **kwargs)


NOT_JSON = b'{"amount_fen": 1,'  # cut short: FastAPI's JSON decoding refuses it before any dependency runs


def _body(sent, headers: dict) -> dict:
    """A request's body arguments: JSON, or the bytes of NOT_JSON sent as JSON."""
    if sent is NOT_JSON:
        return {"content": NOT_JSON, "headers": {**headers, "content-type": "application/json"}}
    return {"json": sent, "headers": headers}


def _web_channel(path: str) -> str:
    return {"console": "window", "bank": "bank_outlet", "portal": "portal"}.get(path.split("/")[1], "")


def test_no_credential_works_on_a_route_of_another_channel(city, app, world):  # noqa: F811
    """Finding 5: every route of the OpenAPI (and every web page) tried with every kind of credential issued
    for another channel: an API token of a known actor on another channel's route answers 403 `forbidden`,
    whatever its body (services.access.AUDIENCE, decided by the frame's admit_channel as soon as the caller is
    known, before the body is validated: the probe met 422s), a web session's cookie or its value as a bearer
    token is no API credential at all (401), and no page of a console or the portal opens for an API token or
    another surface's session. Never a 2xx, never a 5xx; every refused attempt leaves an audit record."""
    from tests.security.test_web_route_table import PUBLIC as WEB_PUBLIC
    from tests.security.test_web_route_table import TABLE as WEB_TABLE
    from tests.security.test_web_route_table import _routes as web_routes

    credentials = _credentials(app, city, world)
    tried = 0
    with TestClient(create_app(app), raise_server_exceptions=False) as client:
        spec = client.get("/openapi.json").json()
        for route, method, url, query, body, form in _requests(spec, world["values"]):
            path = route.split(" ", 1)[1]
            if not spec["paths"][path][method.lower()]["security"]:
                continue  # public: the cardholder login, the identifier check, the telephony webhooks
            channel = "terminal" if path.startswith("/api/v1/terminal/") else "api"
            for name, credential in credentials.items():
                if credential["channel"] == channel:
                    continue
                # the route's own request, and ones whose body is wrong or not JSON at all (the channel is
                # refused before the body: FastAPI decodes JSON before the caller is known, main.caller_refused)
                bodies = [body] + ([{"unknown": 1}, NOT_JSON] if body is not None else [])
                for as_bearer in (False, True) if "cookie" in credential else (False,):
                    for sent in bodies:
                        r = _send(client, credential, method, url, as_bearer=as_bearer, params=query,
                                  data=form, **_body(sent, {"Idempotency-Key": f"walk5-{tried}"}))
                        tried += 1
                        where = (route, name, as_bearer, sent, r.status_code, r.text[:200])
                        assert r.status_code < 500 and not 200 <= r.status_code < 300, where
                        expected = (401, "unauthenticated") if "cookie" in credential else (403, "forbidden")
                        assert (r.status_code, r.json()["code"]) == expected, where
        for key, method, path in web_routes():
            if WEB_TABLE[key] == WEB_PUBLIC:
                continue
            url = re.sub(r"{[^}]*}", "1", path)
            for name, credential in credentials.items():
                if credential["channel"] == _web_channel(path):
                    continue
                r = _send(client, credential, method, url, data={"csrf_token": credential.get("csrf", "")})
                tried += 1
                where = (key, name, r.status_code, r.headers.get("location"), r.text[:200])
                assert r.status_code < 500 and not 200 <= r.status_code < 300, where
    assert tried > 1000
    # each refused attempt of a known actor left a trace under the operation it tried (the frame's admit_channel)
    from sqlalchemy import select

    from sscard.models.foundation import AuditRecord

    with app.db.session() as s:
        traces = set(s.execute(select(AuditRecord.operation, AuditRecord.actor_role, AuditRecord.channel)
                               .where(AuditRecord.result == "forbidden")).all())
    assert ("bank.deposit", "terminal", "api") in traces  # an ATM's token on the teller's deposit
    assert ("bank.withdraw", "teller", "terminal") in traces  # a teller's token on the ATM's withdrawal


def test_a_call_of_one_hotline_is_neither_continued_nor_ended_through_another_lines_webhooks(city, app, server):
    """Finding 5 (the IVR): a call's session is its CallSid on its line. Its turns on another line's voice
    webhook were refused already (`call_not_found`, said and hung up), but the other line's status callback ended it: the call
    is found by the CallSid and the line it is on, for both webhooks (hotline.calls)."""
    from sscard.services import hotline
    from tests.hotline.phone import Phone

    phone = Phone(server, "12333")
    assert not phone.ended
    sid = phone.sid
    before = hotline.load_call(app, sid)
    r = server.post("/api/v1/hotline/bank:GSB/voice", data={"CallSid": sid, "Digits": "1"})
    assert "Call not found" in r.text and "<Hangup" in r.text  # TwiML: the telephony provider hangs up
    assert hotline.load_call(app, sid) == before
    for line in ("bank:GSB", "95588", "bank:JSB"):
        r = server.post(f"/api/v1/hotline/{line}/status", data={"CallSid": sid, "CallStatus": "completed"})
        assert r.status_code in (204, 404), (line, r.status_code)
        assert hotline.load_call(app, sid)["status"] == "active", line
    r = server.post("/api/v1/hotline/12333/status", data={"CallSid": sid, "CallStatus": "completed"})
    assert r.status_code == 204 and hotline.load_call(app, sid)["status"] == "ended"
    # the probe's finding: a status callback on a line that is none of ours answered 204 (now as its turns do)
    for line in ("%2e%2e", "bank:NOPE", "12345"):
        r = server.post(f"/api/v1/hotline/{line}/status", data={"CallSid": sid, "CallStatus": "ringing"})
        assert (r.status_code, r.json()["code"]) == (404, "hotline_not_found"), line


def test_service_busy_is_a_documented_code_of_every_operation(server):
    """Finding 6: 503 `service_busy` (the database could not take the work: api/main.py) was in no
    operation's `x-error-codes`, and no 503 answer was documented."""
    spec = server.get("/openapi.json").json()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert "service_busy" in op["x-error-codes"], (method, path)
            assert "503" in op["responses"], (method, path)
            assert op["responses"]["503"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_page_that_meets_a_busy_database_answers_an_html_page_with_retry_after(city, app, server, lang):
    """Finding 6: a browser on the portal or a console that met `service_busy` got the API's JSON body.
    Every refusal the frame answers outside /api/ (busy, not found, a method not allowed, input the
    database cannot hold, a page's malformed parameter) is a page of the site in the caller's language,
    with the same status and headers; /api/ keeps its JSON."""
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    from sscard.services import websession
    from tests.ledger.test_busy_database import _OutOfSharedMemory

    card = city.issued_card()
    web = websession.cardholder_login(app, card.card_number, card.card_number[-6:])
    server.cookies.set("sscard_portal", web.token)
    if lang == "en":
        server.cookies.set("lang", "en")

    def fail(conn):
        raise OperationalError("BEGIN", None, _OutOfSharedMemory("out of shared memory"))

    event.listen(app.db.engine, "begin", fail)
    try:
        page = server.get("/portal/card")
        api = server.get(f"/api/v1/cards/{card.card_number}", headers={"Authorization": "Bearer x"})
    finally:
        event.remove(app.db.engine, "begin", fail)
    assert page.status_code == 503 and page.headers["Retry-After"] == "1"
    assert page.headers["content-type"].startswith("text/html")
    busy = "The service is busy" if lang == "en" else "系统繁忙"
    assert busy in page.text and "<html" in page.text and "/static/sscard.css" in page.text
    assert api.status_code == 503 and api.headers["Retry-After"] == "1" and api.json()["code"] == "service_busy"
    from sscard.core.roles import Channel
    from tests.support import STAFF_PASSWORD

    server.cookies.set("sscard_staff", websession.staff_login(app, "clerk", STAFF_PASSWORD, Channel.WINDOW).token)
    for method, url, status in (("GET", "/portal/nowhere", 404), ("DELETE", "/portal/card", 405),
                                ("GET", "/console/persons/abc", 422)):
        r = server.request(method, url)
        assert r.status_code == status and r.headers["content-type"].startswith("text/html"), (url, r.text[:200])
        assert "<html" in r.text
    assert server.request("DELETE", "/portal/card").headers["allow"] == "GET"
    assert server.get("/api/v1/nowhere").json()["code"] == "not_found"


def test_a_body_over_the_limit_is_refused_413_before_it_is_read_on_every_channel(city, server):
    """The probe's finding: a 20 MiB body was read whole (into memory) by every route, then refused 422; a
    client could send any size. http.BodyLimit, around the whole app, refuses a body over MAX_BODY_BYTES
    (declared by Content-Length, or streamed in chunks) with 413 `body_too_large` before any route or the lane
    reads it: JSON on the API, a page on the web's paths."""
    from sscard.http import MAX_BODY_BYTES
    from tests.support import bearer

    over = b"9" * (MAX_BODY_BYTES + 1)
    atm = bearer(terminal_token(city, "ATM-GSB-1"), "big", **{"content-type": "application/json"})
    for url in ("/api/v1/terminal/deposit", "/api/v1/terminal/payments/1/void", "/api/v1/persons",
                "/api/v1/cardholder/login", "/api/v1/hotline/12333/voice"):
        r = server.post(url, content=over, headers=atm)
        assert (r.status_code, r.json()["code"]) == (413, "body_too_large"), (url, r.text[:200])

        def chunks():
            for _ in range(5):
                yield b"9" * (MAX_BODY_BYTES // 4)

        r = server.post(url, content=chunks(), headers=atm)  # no Content-Length: sent chunked
        assert (r.status_code, r.json()["code"]) == (413, "body_too_large"), (url, r.text[:200])
    page = server.post("/portal/login", content=over, headers={"content-type": "application/x-www-form-urlencoded"})
    assert page.status_code == 413 and page.headers["content-type"].startswith("text/html")
    # within the limit, a body is read as always (a small one chunked too)
    r = server.post("/api/v1/terminal/deposit", content=(c for c in (b'{"pan": "1", ', b'"amount_fen": 1}')), headers=atm)
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == ["body", "pan"]


def test_money_over_the_bound_or_in_foreign_digits_is_refused_on_every_channel(city, app, server):
    """The probe's finding: the API refused an amount over schemas.MAX_FEN (10^12 fen), but the bank counter's
    page deposited 999,999,999,999.99 yuan (10^14 fen), and read "٣" (an Arabic-Indic digit) as 3 yuan: the
    bound was the API schema's, not the money's. core.money holds it (MAX_FEN) for every channel: every
    amount a service takes (require_fen, which ledger.transfer calls) and every yuan a
    page reads (yuan_to_fen: ASCII digits, full-width ones from an IME read as such)."""
    from sscard.api import schemas
    from sscard.core import money
    from sscard.core.errors import SscardError
    from sscard.core.roles import Channel
    from sscard.services import banking, medical, websession
    from tests.ledger.helpers import activated, balance_of
    from tests.support import STAFF_PASSWORD, bearer

    assert schemas.MAX_FEN == money.MAX_FEN == 10**12
    card = activated(city, "张三", "GSB")
    teller = city.actor("teller")
    for amount in (money.MAX_FEN + 1, 10**14, 2**63):
        with pytest.raises(SscardError) as refused:
            banking.deposit(app, teller, card.pan, amount, idempotency_key=f"big-{amount}")
        assert refused.value.code == "invalid_amount"
        with pytest.raises(SscardError):
            money.require_fen(amount)
    with pytest.raises(SscardError) as refused:
        medical.credit_month(app, city.actor("operator"), "2026-01", [{"person_id": card.person_id,
                                                                      "amount_fen": money.MAX_FEN + 1}],
                            idempotency_key="credit-big")
    assert refused.value.code == "invalid_amount"
    r = server.post(f"/api/v1/bank-accounts/{card.pan}/deposit", json={"amount_fen": money.MAX_FEN + 1},
                    headers=bearer(city.token("teller"), "api-big"))
    assert (r.status_code, r.json()["code"]) == (422, "invalid_request")
    # the bank counter's page, as a teller types it
    for text, fen in (("１００", 10_000), ("1,000.50", 100_050), ("10000000000", money.MAX_FEN)):
        assert money.yuan_to_fen(text.replace(",", "")) == fen
    for text in ("999999999999.99", "10000000000.01", "٣", "߃", "1e3", "NaN", "Infinity", "-0", "0x10", "1_000"):
        with pytest.raises(SscardError):
            money.yuan_to_fen(text)
    web = websession.staff_login(app, "teller", STAFF_PASSWORD, Channel.BANK_OUTLET)
    server.cookies.set("sscard_staff", web.token)
    before = balance_of(app, card.pan)
    for text in ("999999999999.99", "٣"):
        r = server.post("/bank/deposit", data={"step": "confirmed", "pan": card.pan, "amount": text},
                        headers={"X-CSRF-Token": web.csrf})
        assert r.status_code == 422 and "金额无效" in r.text, text
    assert balance_of(app, card.pan) == before


def test_missing_forged_or_expired_credentials_are_401_on_every_route(city, app, clock, world):  # noqa: F811
    """Every secured route of the OpenAPI, with its own valid request, and no token, a forged one, an empty
    or oversized one, another scheme, a cardholder token past its 30 minutes or signed with another key:
    401 `unauthenticated`, never the route's answer."""
    from sscard.api.sessions import issue_cardholder_token

    expired = issue_cardholder_token(app, world["a"].person_id)
    clock.advance(minutes=31)
    fresh = issue_cardholder_token(app, world["a"].person_id)
    odd = {"none": {}, "forged": {"Authorization": "Bearer " + "x" * 43}, "empty": {"Authorization": "Bearer "},
           "long": {"Authorization": "Bearer " + "t" * 9000}, "basic": {"Authorization": "Basic YWRtaW46eA=="},
           "expired": {"Authorization": f"Bearer {expired}"},
           "tampered": {"Authorization": f"Bearer {fresh[:-4]}{'AAAA' if not fresh.endswith('AAAA') else 'BBBB'}"},
           "another payload": {"Authorization": "Bearer ch.eyJwIjoxfQ.x.y"}}
    tried = 0
    with TestClient(create_app(app), raise_server_exceptions=False) as client:
        spec = client.get("/openapi.json").json()
        for route, method, url, query, body, form in _requests(spec, world["values"]):
            if not spec["paths"][route.split(" ", 1)[1]][method.lower()]["security"]:
                continue
            for name, headers in odd.items():
                for sent in (body, NOT_JSON) if body is not None else (body,):
                    r = client.request(method, url, params=query, data=form,
                                       **_body(sent, {**headers, "Idempotency-Key": f"odd-{tried}"}))
                    tried += 1
                    where = (route, name, sent is NOT_JSON, r.text[:200])
                    assert (r.status_code, r.json()["code"]) == (401, "unauthenticated"), where
    assert tried > 500


def test_every_401_of_the_api_says_how_to_authenticate(server):
    """Session 22's contract probe: no 401 carried WWW-Authenticate (RFC 6750 §3)."""
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic eDp5"}):
        r = server.get("/api/v1/persons", params={"citizen_id": "11010519491231002X"}, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), headers
        lane = server.post("/api/v1/terminal/payments", json={"pan": "6222020000000000000", "amount_fen": 1,
                                                              "pin": "000000"}, headers={**headers, "Idempotency-Key": "k"})
        assert lane.status_code == 401 and lane.headers["www-authenticate"].startswith("Bearer"), headers


def test_head_is_answered_as_get_without_its_body_on_pages_reads_and_refusals(city, server):
    """The browser probe's finding: `curl -I` of any page answered 405 (FastAPI's routes take only the methods
    they name). http.HeadAsGet: the GET's status and headers, no body; a page that needs a login redirects as
    its GET does, and a route that takes no GET still answers 405."""
    from tests.support import bearer

    for url, headers in (("/", {}), ("/portal/login", {}), ("/console/login", {}),
                         ("/api/v1/ledger/check", bearer(city.token("operator")))):
        got, head = server.get(url, headers=headers), server.head(url, headers=headers)
        assert got.status_code == 200 and got.content, (url, got.status_code)
        assert head.status_code == 200 and head.content == b"", url
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers["content-length"] == str(len(got.content)) or url.startswith("/api/v1/ledger"), url
    redirect = server.head("/console", follow_redirects=False)
    assert redirect.status_code == server.get("/console", follow_redirects=False).status_code == 303
    assert redirect.headers["location"] == "/console/login"
    assert server.head("/api/v1/terminal/deposit").status_code == 405  # a POST route: no GET to answer
