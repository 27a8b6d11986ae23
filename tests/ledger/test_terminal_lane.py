"""The lane (api/terminal_lane.py) answers exactly as FastAPI's own dispatch of the same routes.

The lane's routes are derived (every POST route whose endpoint calls a group-committed operation); this
test iterates over all of them. Every request is sent twice, on two subjects in the same state (two
cardholders, two authorizations, two settlements): once to the app as it runs (the lane serves the
route itself) and once to the same app without the lane (FastAPI routes it). Status, headers and body
must be the same apart from what differs by nature (ids, PANs, times), and so must the audit records
each wrote. Malformed requests must reach FastAPI, so their 422s keep FastAPI's shape."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from sscard.api import terminal_lane
from sscard.api.terminal_lane import TerminalLane, lane_routes
from sscard.composition import create_app
from sscard.models.foundation import AuditRecord
from sscard.services import banking
from tests.medical import helpers as med

from .helpers import PIN, activated, balance_of, terminal, terminal_token

pytestmark = pytest.mark.keys_required

# Every group-committed route the app has, as the lane must serve it (a route added or lost fails here).
EXPECTED = {
    "/api/v1/terminal/withdrawal", "/api/v1/terminal/deposit", "/api/v1/terminal/balance",
    "/api/v1/terminal/payments", "/api/v1/terminal/payments/authorize",
    "/api/v1/terminal/payments/{transfer_id}/capture", "/api/v1/terminal/payments/{transfer_id}/void",
    "/api/v1/terminal/transfers", "/api/v1/terminal/reversals",
    "/api/v1/bank-accounts/{pan}/deposit", "/api/v1/bank-accounts/{pan}/withdrawal",
    "/api/v1/bank-accounts/{pan}/transfer", "/api/v1/bank-accounts/{pan}/pension",
    "/api/v1/terminal/medical/pre-settlements", "/api/v1/terminal/medical/settlements",
    "/api/v1/terminal/medical/settlements/{code}/refund",
    "/api/v1/counter/replacements", "/api/v1/counter/replacements/waived",
    "/api/v1/ledger/expire-pending", "/api/v1/medical/contributions",  # bulk: alone in the writer
}
# What differs by nature between the two subjects of a pair.
VOLATILE = {"transfer_id", "original_transfer_id", "at", "pan", "to", "from", "code", "quote", "receipt_no", "card_number", "new_card_number",
            "settlement_code", "id", "person_id", "expires_at", "created_at", "settled_at", "refunded_at", "valid_until",
            "receipt", "refund_code", "original_code", "pending_transfer_id", "quote_id",
            "person", "name", "citizen_id", "reverses", "refunded_by",
            "application_id", "old_card_number", "pan_last4"}


@pytest.fixture
def plain(app):
    """The same app with FastAPI dispatching every route (no lane)."""
    api = create_app(app)
    api.user_middleware = [m for m in api.user_middleware if m.cls is not TerminalLane]
    return TestClient(api)


@pytest.fixture
def served(monkeypatch):
    """The path templates of the requests the lane answered itself."""
    hits: list[str] = []
    monkeypatch.setattr(terminal_lane, "_served", hits.append)
    return hits


def _norm(value):
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_norm(v) for v in value]
    return value


def _side(r: AuditRecord, side: str) -> tuple:
    """An audit record without what differs by nature between the two subjects."""
    return (r.operation, r.result, r.actor_kind, r.actor_id, r.actor_role, r.channel, r.place, r.object_type,
            (r.idempotency_key or "").replace(side, "*"), sorted((r.detail or {}).keys()))


def _headers(response) -> dict:
    return {k: v for k, v in response.headers.items() if k not in ("content-length", "x-request-id", "date")}


@dataclass
class Case:
    """One lane route: its path and token for a subject, a valid body, and another body (key reuse)."""

    path: Callable[[object], str]
    body: Callable[[object], dict]
    other: Callable[[object], dict]
    token: str
    wrong_audience: str  # a valid token of the wrong kind (a staff token on a terminal route, or a terminal's)
    succeeds: bool = True  # False: no token may (the deprecated pension route): the refusal is compared


def test_the_lane_answers_as_fastapi_does_on_every_route(city, app, client, plain, served):
    lane, skipped = lane_routes(client.app)
    assert {r.path for r in lane} == EXPECTED  # every group-committed route
    assert skipped == {}
    assert all(r.competitors == [] for r in lane)  # no earlier route can take one of their paths
    with_body = {r.path: bool(r.body_params) for r in lane}
    shapes = {r.path: (tuple(d.call for d, _ in r.steps), bool(r.context.param_convertors), bool(r.body_params))
              for r in lane}
    med.set_up(city)
    pos, atm = terminal_token(city, "POS-1"), terminal_token(city, "ATM-GSB-1")
    hosp = med.token(city, "HOSP-H3-1")
    teller, operator, clerk, csup = (city.token(u) for u in ("teller", "operator", "clerk", "csup"))
    pos_actor, hosp_actor = terminal(city, "POS-1"), med.terminal(city, "HOSP-H3-1")
    atm_actor = terminal(city, "ATM-GSB-1")
    sink = activated(city, name="丙", opening_fen=0)

    def subject(name: str) -> dict:
        """One cardholder with money, an authorization, an insured person's quote and settlement."""
        card = activated(city, name=name, opening_fen=100_000)
        med.insure(app, card.person_id, 50_000)
        ident = med.ident_code(app, card.card_number)
        auths = [banking.authorize_payment(app, pos_actor, card.pan, 300, PIN, idempotency_key=f"au{name}{i}")
                 ["transfer_id"] for i in range(2)]
        quote = app_quote(card, ident)
        banking.withdraw(app, atm_actor, card.pan, 900, PIN, idempotency_key=f"wd{name}")  # to be reversed
        settled = med.pay(app, hosp_actor, card.card_number, med.lines(covered=1_000), key=f"set{name}")
        return {"card": card, "other_card": city.issued_card(name=name + "二"), "ident": ident, "capture": auths[0], "void": auths[1], "quote": quote,
                "settled": settled["code"], "reverse": f"wd{name}"}

    def app_quote(card, ident):
        from sscard.services import medical

        return medical.pre_settle(app, hosp_actor, card.card_number, ident, med.lines(covered=2_000), True)["quote"]

    sides = {"L": subject("甲"), "P": subject("乙")}
    pan = lambda s: s["card"].pan  # noqa: E731
    cases = {
        "/api/v1/terminal/withdrawal": Case(lambda s: "/api/v1/terminal/withdrawal",
                                           lambda s: {"pan": pan(s), "amount_fen": 100, "pin": PIN},
                                           lambda s: {"pan": pan(s), "amount_fen": 101, "pin": PIN}, atm, teller),
        "/api/v1/terminal/deposit": Case(lambda s: "/api/v1/terminal/deposit",
                                         lambda s: {"pan": pan(s), "amount_fen": 100},
                                         lambda s: {"pan": pan(s), "amount_fen": 102}, atm, teller),
        "/api/v1/terminal/balance": Case(lambda s: "/api/v1/terminal/balance", lambda s: {"pan": pan(s), "pin": PIN},
                                         lambda s: {"pan": pan(s), "pin": "000000"}, atm, teller),
        "/api/v1/terminal/payments": Case(lambda s: "/api/v1/terminal/payments",
                                          lambda s: {"pan": pan(s), "amount_fen": 700, "pin": PIN},
                                          lambda s: {"pan": pan(s), "amount_fen": 800, "pin": PIN}, pos, teller),
        "/api/v1/terminal/payments/authorize": Case(lambda s: "/api/v1/terminal/payments/authorize",
                                                    lambda s: {"pan": pan(s), "amount_fen": 30, "pin": PIN},
                                                    lambda s: {"pan": pan(s), "amount_fen": 31, "pin": PIN}, pos, teller),
        "/api/v1/terminal/payments/{transfer_id}/capture": Case(
            lambda s: f"/api/v1/terminal/payments/{s['capture']}/capture", lambda s: {"amount_fen": 250},
            lambda s: {"amount_fen": 200}, pos, teller),
        "/api/v1/terminal/payments/{transfer_id}/void": Case(
            lambda s: f"/api/v1/terminal/payments/{s['void']}/void", lambda s: {}, lambda s: {}, pos, teller),
        "/api/v1/terminal/transfers": Case(lambda s: "/api/v1/terminal/transfers",
                                           lambda s: {"from_pan": pan(s), "to_pan": sink.pan, "amount_fen": 50, "pin": PIN},
                                           lambda s: {"from_pan": pan(s), "to_pan": sink.pan, "amount_fen": 51, "pin": PIN},
                                           atm, teller),
        "/api/v1/terminal/reversals": Case(lambda s: "/api/v1/terminal/reversals",
                                           lambda s: {"original_idempotency_key": s["reverse"], "dispensed_fen": 100},
                                           lambda s: {"original_idempotency_key": s["reverse"], "dispensed_fen": 0},
                                           atm, teller),
        "/api/v1/bank-accounts/{pan}/deposit": Case(lambda s: f"/api/v1/bank-accounts/{pan(s)}/deposit",
                                                    lambda s: {"amount_fen": 500}, lambda s: {"amount_fen": 501},
                                                    teller, atm),
        "/api/v1/bank-accounts/{pan}/withdrawal": Case(lambda s: f"/api/v1/bank-accounts/{pan(s)}/withdrawal",
                                                       lambda s: {"amount_fen": 200, "pin": PIN},
                                                       lambda s: {"amount_fen": 201, "pin": PIN}, teller, atm),
        "/api/v1/bank-accounts/{pan}/transfer": Case(lambda s: f"/api/v1/bank-accounts/{pan(s)}/transfer",
                                                     lambda s: {"to_pan": sink.pan, "amount_fen": 60, "pin": PIN},
                                                     lambda s: {"to_pan": sink.pan, "amount_fen": 61, "pin": PIN},
                                                     teller, atm),
        "/api/v1/bank-accounts/{pan}/pension": Case(lambda s: f"/api/v1/bank-accounts/{pan(s)}/pension",
                                                    lambda s: {"amount_fen": 9_000, "period": "2026-01"},
                                                    lambda s: {"amount_fen": 9_001, "period": "2026-01"}, operator, atm,
                                                    succeeds=False),
        "/api/v1/terminal/medical/pre-settlements": Case(
            lambda s: "/api/v1/terminal/medical/pre-settlements",
            lambda s: {"card_number": s["card"].card_number, "ident_code": s["ident"], "lines": med.lines(covered=500)},
            lambda s: {"card_number": s["card"].card_number, "ident_code": s["ident"], "lines": med.lines(covered=501)},
            hosp, clerk),
        "/api/v1/terminal/medical/settlements": Case(
            lambda s: "/api/v1/terminal/medical/settlements",
            lambda s: {"quote": s["quote"], "card_number": s["card"].card_number, "ident_code": s["ident"],
                       "ss_password": "123456", "pay_with": "cash"},
            lambda s: {"quote": s["quote"], "card_number": s["card"].card_number, "ident_code": s["ident"],
                       "ss_password": "123457", "pay_with": "cash"}, hosp, clerk),
        "/api/v1/terminal/medical/settlements/{code}/refund": Case(
            lambda s: f"/api/v1/terminal/medical/settlements/{s['settled']}/refund", lambda s: {"reason": "退药"},
            lambda s: {"reason": "错收"}, hosp, clerk),
        "/api/v1/counter/replacements": Case(
            lambda s: "/api/v1/counter/replacements",
            lambda s: {"card_number": s["card"].card_number, "reason": "damaged",
                       "presented_citizen_id": s["card"].citizen_id, "payment": "cash"},
            lambda s: {"card_number": s["card"].card_number, "reason": "expiring",
                       "presented_citizen_id": s["card"].citizen_id, "payment": "cash"}, clerk, atm),
        "/api/v1/counter/replacements/waived": Case(
            lambda s: "/api/v1/counter/replacements/waived",
            lambda s: {"card_number": s["other_card"].card_number, "reason": "damaged",
                       "presented_citizen_id": s["other_card"].citizen_id, "waive_reason": "低保"},
            lambda s: {"card_number": s["other_card"].card_number, "reason": "damaged",
                       "presented_citizen_id": s["other_card"].citizen_id, "waive_reason": "特困"}, csup, atm),
        "/api/v1/ledger/expire-pending": Case(lambda s: "/api/v1/ledger/expire-pending", lambda s: {}, lambda s: {},
                                              operator, atm),
        "/api/v1/medical/contributions": Case(
            lambda s: "/api/v1/medical/contributions",
            lambda s: {"month": "2026-02", "credits": [{"person_id": s["card"].person_id, "amount_fen": 100}]},
            lambda s: {"month": "2026-02", "credits": [{"person_id": s["card"].person_id, "amount_fen": 101}]},
            operator, atm),
    }
    assert set(cases) == EXPECTED

    def last_audit() -> int:
        with app.db.session() as s:
            return s.scalar(select(AuditRecord.id).order_by(AuditRecord.id.desc()).limit(1)) or 0

    def audits(after: int, middle: int) -> tuple[list, list]:
        """The audit records written since `after`: the lane's request's (up to `middle`), FastAPI's."""
        with app.db.session() as s:
            rows = s.scalars(select(AuditRecord).where(AuditRecord.id > after).order_by(AuditRecord.id)).all()
            s.expunge_all()
        return [r for r in rows if r.id <= middle], [r for r in rows if r.id > middle]

    seen = [last_audit()]

    def both(template: str, send: Callable[[TestClient, str, dict], object]) -> object:
        a = send(client, "L", sides["L"])
        middle = last_audit()
        b = send(plain, "P", sides["P"])
        assert a.status_code == b.status_code, (template, a.text, b.text)
        assert _headers(a) == _headers(b), template
        assert _norm(a.json()) == _norm(b.json()), (template, a.text, b.text)
        lane_audit, fastapi_audit = audits(seen[0], middle)
        assert [_side(r, "L") for r in lane_audit] == [_side(r, "P") for r in fastapi_audit], template
        seen[0] = max([middle, *(r.id for r in fastapi_audit)])
        return a

    def post(case: Case, token: str | None, key: str | None, body=None, raw: bytes | None = None, **headers):
        def send(c: TestClient, side: str, s: dict):
            h = dict(headers)
            if token is not None:
                h["Authorization"] = f"Bearer {token}"
            if key is not None:
                h["Idempotency-Key"] = key.replace("*", side)
            if raw is not None:
                return c.post(case.path(s), content=raw, headers={"Content-Type": "application/json", **h})
            return c.post(case.path(s), json=(body or case.body)(s), headers=h)
        return send

    shapes_seen: set[tuple] = set()
    for template, case in cases.items():
        tag = template.split("/api/v1/")[1].replace("/", ".")
        # What the lane does with a request depends on the route's shape only (its dependencies, path
        # parameters, body); the refusals that do not reach the operation are sent to one route of each shape
        # (tests/security/test_route_actor_table.py sends every audience to every route, through the lane).
        shape = shapes[template]
        if shape not in shapes_seen:
            both(template, post(case, None, f"{tag}-n-*"))  # no token
            both(template, post(case, "not-a-token", f"{tag}-b-*", **{"Accept-Language": "en"}))
            both(template, post(case, case.wrong_audience, f"{tag}-w-*"))  # the other audience's token
        count = len(served)
        if shape not in shapes_seen:
            shapes_seen.add(shape)
            both(template, post(case, case.token, "k" * 81))  # malformed: FastAPI's own 422s (the lane hands them over)
            if with_body[template]:  # (a route without a body reads none: nothing there can be malformed)
                both(template, post(case, case.token, f"{tag}-x-*", body=lambda s, c=case: {**c.body(s), "extra": 1}))
                both(template, post(case, case.token, f"{tag}-j-*", raw=b"{not json"))
        # every route: strict money ("5" is not 5)
        money = [k for k, v in case.body(sides["L"]).items() if isinstance(v, int) and not isinstance(v, bool)]
        for k in money[:1]:
            both(template, post(case, case.token, f"{tag}-s-*", body=lambda s, c=case, k=k: {**c.body(s), k: "5"}))
        assert served[count:] == [], template
        # the first answer, its retry, another body under the key, and no key at all
        first = both(template, post(case, case.token, f"{tag}-1-*"))
        assert first.status_code in ((200, 201) if case.succeeds else (403,)), (template, first.text)
        both(template, post(case, case.token, f"{tag}-1-*"))
        both(template, post(case, case.token, f"{tag}-1-*", body=case.other))
        both(template, post(case, case.token, None, body=case.other))
        assert template in served, template
    assert set(served) == EXPECTED
    # and the subjects end the same: the same balance, the same medical account
    assert balance_of(app, sides["L"]["card"].pan) == balance_of(app, sides["P"]["card"].pan)

