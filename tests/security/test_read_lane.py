"""The lane's GET routes (api/terminal_lane.py: every API GET route whose endpoint calls a declared read,
`@query`) answer exactly as FastAPI's own dispatch of the same routes, for every actor.

Every GET route of the API is walked as in test_route_actor_table.py (the same world, the same requests,
every kind of actor: cardholders, staff of both banks and both centers, terminals, nobody, forged
tokens), and each request is sent twice: to the app as it runs (the lane answers the lane's routes) and
to the same app without the lane (FastAPI answers). Status, headers and body must be the same, and so
must the audit records each wrote (a staff read's `viewed` record, a refusal's record). The allow/deny
table itself is checked through the lane by test_route_actor_table.py."""

from __future__ import annotations

import itertools
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from sscard.api import terminal_lane
from sscard.api.terminal_lane import TerminalLane, lane_routes
from sscard.composition import create_app
from sscard.models.foundation import AuditRecord
from tests.support import in_fresh_loop

from .test_route_actor_table import ACTORS, _requests, world  # noqa: F401  (world: the walker's fixture)

pytestmark = pytest.mark.keys_required

# The staff lookups of docs/SCALE.md's million (by citizen ID, card number and PAN) must be lane routes.
LOOKUPS = {"/api/v1/persons", "/api/v1/cards/{card_number}", "/api/v1/bank-accounts/{pan}/statement"}


def _headers(response) -> dict:
    return {k: v for k, v in response.headers.items() if k not in ("x-request-id", "date", "content-length")}


def _record(r: AuditRecord) -> tuple:
    return (r.operation, r.result, r.actor_kind, r.actor_id, r.actor_role, r.channel, r.place, r.object_type,
            r.object_id, r.person_id, r.idempotency_key, r.detail)


def _with_and_without_lane(app):
    """The API as it runs (the lane answers its routes) and the same API without the lane (FastAPI answers),
    each with a client that answers a 500 like any answer, to compare."""
    lane_api = create_app(app)
    plain_api = create_app(app)
    plain_api.user_middleware = [m for m in plain_api.user_middleware if m.cls is not TerminalLane]
    return lane_api, *(TestClient(api, raise_server_exceptions=False) for api in (lane_api, plain_api))


def test_the_lane_answers_every_api_read_as_fastapi_does(app, world, monkeypatch):  # noqa: F811
    served: list[str] = []
    monkeypatch.setattr(terminal_lane, "_served", served.append)
    lane_api, lane_client, plain_client = _with_and_without_lane(app)
    reads, skipped = lane_routes(lane_api, "GET")
    assert skipped == {}
    paths = {r.path for r in reads}
    assert LOOKUPS <= paths
    assert all(r.competitors == [] for r in reads)
    api_gets = {route.split(" ", 1)[1] for route, method, *_ in _requests(lane_client.get("/openapi.json").json(),
                                                                          world["values"]) if method == "GET"}
    assert paths <= api_gets

    def last_audit() -> int:
        with app.db.session() as s:
            return s.scalar(select(AuditRecord.id).order_by(AuditRecord.id.desc()).limit(1)) or 0

    def written(after: int, upto: int | None = None) -> list[tuple]:
        with app.db.session() as s:
            q = select(AuditRecord).where(AuditRecord.id > after).order_by(AuditRecord.id)
            if upto is not None:
                q = q.where(AuditRecord.id <= upto)
            return [_record(r) for r in s.scalars(q)]

    seq = itertools.count()
    compared = 0
    for route, method, url, query, _body, _form in _requests(lane_client.get("/openapi.json").json(), world["values"]):
        template = route.split(" ", 1)[1]
        if method != "GET" or template not in paths:
            continue
        for actor in ACTORS:
            headers = {"Idempotency-Key": f"lane-read-{next(seq)}", "Accept-Language": "en" if compared % 2 else "zh"}
            token = world["tokens"].get(actor)
            if token:
                headers["Authorization"] = f"Bearer {token}"
            before = last_audit()
            count = len(served)
            a = lane_client.get(url, params=query, headers=headers)
            assert served[count:] == [template], (route, actor)
            middle = last_audit()
            b = plain_client.get(url, params=query, headers=headers)
            assert len(served) == count + 1, (route, actor)  # the plain app's request did not go through the lane
            where = (route, actor, a.text[:300], b.text[:300])
            assert a.status_code == b.status_code, where
            assert _headers(a) == _headers(b), where
            if "pdf" in a.headers.get("content-type", ""):
                assert a.content[:5] == b.content[:5] == b"%PDF-", where  # (a PDF's own timestamps may differ)
            elif template == "/api/v1/audit" and a.status_code == 200:
                # the audit log, newest first: the second answer also lists the first request's own record
                older = [[r for r in x.json()["records"] if r["id"] <= before] for x in (a, b)]
                n = min(map(len, older))
                assert older[0][:n] == older[1][:n] and n > 0, where
                assert {k: v for k, v in a.json().items() if k != "records"} == \
                    {k: v for k, v in b.json().items() if k != "records"}, where
            else:
                assert a.content == b.content, where
            assert written(before, middle) == written(middle), where
            compared += 1
    assert set(served) == paths  # every lane read was served by the lane at least once
    assert compared == len(paths) * len(ACTORS)


def test_the_lane_answers_malformed_and_odd_reads_as_fastapi_does(app, world, monkeypatch):  # noqa: F811
    """What a sloppy client or a prober sends to the three lookups: a trailing slash, a repeated or empty or
    missing parameter, a NUL, spaces and encodings in the path, unknown parameters, a body on a GET, a
    token in the wrong scheme. The lane and FastAPI must give the same status, headers and body."""
    served: list[str] = []
    monkeypatch.setattr(terminal_lane, "_served", served.append)
    _, lane_client, plain_client = _with_and_without_lane(app)
    v = world["values"]
    clerk, teller = world["tokens"]["clerk"], world["tokens"]["teller"]
    cid, card, pan = v["citizen_id"], v["card_number"], v["pan"]
    odd = [
        (clerk, f"/api/v1/persons?citizen_id={cid}&citizen_id=110101199001011234", None),
        (clerk, "/api/v1/persons?citizen_id=", None),
        (clerk, "/api/v1/persons", None),
        (clerk, "/api/v1/persons?citizen_id=%00", None),
        (clerk, f"/api/v1/persons?citizen_id={cid.lower()}&x=1", None),
        (clerk, f"/api/v1/persons/?citizen_id={cid}", None),
        (clerk, f"/api/v1/cards/%20{card}", None),
        (clerk, f"/api/v1/cards/{card}%2F..", None),
        (clerk, f"/api/v1/cards/{card}/", None),
        (clerk, f"/api/v1/cards/{card}", b'{"card_number": "x"}'),
        (teller, f"/api/v1/bank-accounts/{pan}/statement?limit=0", None),
        (teller, f"/api/v1/bank-accounts/{pan}/statement?limit=abc", None),
        (teller, f"/api/v1/bank-accounts/{pan}/statement?limit=5&limit=500", None),
        (teller, f"/api/v1/bank-accounts/{pan}/statement?before_id=-1", None),
        (teller, f"/api/v1/bank-accounts/{pan[:-1]}/statement", None),
        ("Basic " + clerk, f"/api/v1/cards/{card}", None),
    ]
    for token, url, body in odd:
        auth = token if token.startswith("Basic ") else f"Bearer {token}"
        headers = {"Authorization": auth}
        a = lane_client.request("GET", url, headers=headers, content=body, follow_redirects=False)
        b = plain_client.request("GET", url, headers=headers, content=body, follow_redirects=False)
        where = (url, a.status_code, b.status_code, a.text[:200], b.text[:200])
        assert a.status_code == b.status_code, where
        assert a.status_code < 500, where
        assert _headers(a) == _headers(b), where
        assert a.content == b.content, where
    assert set(served) == LOOKUPS  # the lane itself answered odd requests of each lookup (not all fell through)


def _lookups(city) -> list[tuple[str, str]]:
    """The three staff lookups of one activated card, each with a token of staff who may make it."""
    from tests.ledger.helpers import activated

    card = activated(city)
    clerk, teller = city.token("clerk"), city.token("teller")
    return [(clerk, f"/api/v1/persons?citizen_id={card.citizen_id}"), (clerk, f"/api/v1/cards/{card.card_number}"),
            (teller, f"/api/v1/bank-accounts/{card.pan}/statement?limit=5")]


def _viewed(app) -> int:
    with app.db.session() as s:
        return len(s.scalars(select(AuditRecord.id).where(AuditRecord.result == "viewed")).all())


def test_a_lane_lookup_is_answered_once_its_viewed_record_is_committed_without_its_thread_waiting(
        city, app, monkeypatch):
    """The lane's worker thread queues the `viewed` record and returns; the event loop awaits the commit
    (batching.AwaitedViews) before it answers: even with a slow writer, the record is there when the
    answer arrives."""
    from sscard.services import batching

    lookups = _lookups(city)
    served: list[str] = []
    monkeypatch.setattr(terminal_lane, "_served", served.append)
    _, lane_client, _plain = _with_and_without_lane(app)

    def no_waiting_thread(self, req):
        raise AssertionError("a lane thread waited for the writer")

    process = batching.Batcher._process

    def slow(self, batch):
        time.sleep(0.2)
        process(self, batch)

    monkeypatch.setattr(batching.Batcher, "_wait_in_queue", no_waiting_thread)
    monkeypatch.setattr(batching.Batcher, "_process", slow)
    for token, url in lookups:
        before = _viewed(app)
        answer = lane_client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, (url, answer.text)
        assert _viewed(app) == before + 1, url
    assert set(served) == LOOKUPS


@pytest.mark.parametrize("writer", ["fails", "stops"])
def test_a_lane_lookup_answers_as_fastapi_when_the_writer_fails_or_stops(city, app, monkeypatch, writer):
    """The writer cannot commit the `viewed` record (the read is not answered: 500) or is stopping (the
    record is written in its own transaction): the lane answers as FastAPI's dispatch, which waits in the
    thread, and leaves the same records."""
    from sscard.services import batching

    lookups = _lookups(city)
    _, lane_client, plain_client = _with_and_without_lane(app)

    def process(self, batch):
        if writer == "fails":
            raise RuntimeError("disk full")
        batching._answer_all([(req, batching._ALONE) for req in batch])

    monkeypatch.setattr(batching.Batcher, "_process", process)
    for token, url in lookups:
        headers = {"Authorization": f"Bearer {token}"}
        before = _viewed(app)
        a = lane_client.get(url, headers=headers)
        middle = _viewed(app)
        b = plain_client.get(url, headers=headers)
        assert (a.status_code, a.content) == (b.status_code, b.content), url
        assert a.status_code == (500 if writer == "fails" else 200), url
        assert middle - before == _viewed(app) - middle == (0 if writer == "fails" else 1), url


def test_a_lane_read_whose_writer_stops_before_its_thread_is_done_writes_its_record_alone(city, app):
    """The record is handed to the writer only when the thread's call is over: a writer stopped by then
    (server shutdown) cannot take it, and it is written in its own transaction before the answer."""
    from sscard.services import batching, cards

    card = city.issued_card()
    clerk = city.actor("clerk")
    cards.card_status(app, clerk, card.card_number)  # the writer is up

    def read() -> dict:
        answer = cards.card_status(app, clerk, card.card_number)
        batching.batcher(app).close()
        return answer

    before = _viewed(app)
    assert in_fresh_loop(lambda: terminal_lane._in_thread(read, {}))["ss_status"]
    assert _viewed(app) == before + 1
