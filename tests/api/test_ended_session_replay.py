"""A retry of a write that ended its caller's own credential gets the first answer, byte for byte.

Found (session 23's integrator): a cardholder's change of the query password through the API (with an
Idempotency-Key) ends the token it was made with; a retry of the same request with the same key (the
client's network dropped the first answer) got 401, because the token was checked before the key's stored
answer was looked up. The rule is the frame's (services.operation, `ends_session`): an ended credential gets
the stored answer of the keyed call that ended that very credential, and nothing else; its stored answer
carries no secret. This walks every operation declared `ends_session`."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import func, select

from sscard.models.foundation import AuditRecord, IdempotencyRecord
from sscard.services import access, passwords
from sscard.services.access import DECLARATIONS, Declaration
from tests.portal.helpers import NEW_QUERY_PASSWORD
from tests.support import bearer

pytestmark = pytest.mark.keys_required  # the keys sent are exactly those written here

OTHER = "79135024"
THIRD = "35792468"


def _login(client, card, password: str) -> str:
    answer = client.post("/api/v1/cardholder/login", json={"login": card.citizen_id, "password": password})
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


def _query_password_change(app, city, client):
    """A cardholder with two API tokens under the same password; the change is made with the first."""
    card = city.issued_card()
    passwords.change_query_password(app, city.cardholder(card), card.card_number[-6:], NEW_QUERY_PASSWORD,
                                    NEW_QUERY_PASSWORD)
    mine = _login(client, card, NEW_QUERY_PASSWORD)
    app.clock.advance(seconds=2)  # (a token signed in the same second with the same claim is the same token)
    twin = _login(client, card, NEW_QUERY_PASSWORD)
    assert twin != mine
    body = {"old": NEW_QUERY_PASSWORD, "new": OTHER, "new_again": OTHER}
    other_body = {"old": NEW_QUERY_PASSWORD, "new": THIRD, "new_again": THIRD}
    return {"path": "/api/v1/cardholder/query-password/change", "token": mine, "twin": twin, "body": body,
            "other_body": other_body, "elsewhere": f"/api/v1/persons/{card.person_id}/cards",
            "secrets": [NEW_QUERY_PASSWORD, OTHER, mine, twin], "person_id": card.person_id}


SCENARIOS = {"query_password.change": _query_password_change}
"""Every operation declared `ends_session`, and how to make a caller whose credential it ends."""


def test_every_operation_that_ends_its_callers_session_is_walked():
    assert {d.name for d in DECLARATIONS.values() if d.ends_session} == set(SCENARIOS)


def _unauthenticated(answer) -> bool:
    return answer.status_code == 401 and answer.json()["code"] == "unauthenticated"


def _audit_count(app) -> int:
    with app.db.session() as s:
        return s.scalar(select(func.count()).select_from(AuditRecord))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_retry_with_the_ended_token_gets_the_first_answer_byte_identical(app, city, client, name):
    sc = SCENARIOS[name](app, city, client)
    first = client.post(sc["path"], headers=bearer(sc["token"], "end-1"), json=sc["body"])
    assert first.status_code == 200, first.text
    assert _unauthenticated(client.get(sc["elsewhere"], headers=bearer(sc["token"])))  # the token is ended
    records = _audit_count(app)
    for _ in range(2):
        again = client.post(sc["path"], headers=bearer(sc["token"], "end-1"), json=sc["body"])
        assert again.status_code == first.status_code and again.content == first.content
    assert _audit_count(app) == records  # a replay runs nothing, writes nothing
    # still ended for everything else
    assert _unauthenticated(client.get(sc["elsewhere"], headers=bearer(sc["token"])))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_an_ended_token_gets_nothing_new_from_a_guessed_key_another_body_or_another_token(app, city, client, name):
    """A thief holding an ended token: a guessed key, the right key with another body, no key, or a token
    ended by the same change but not the one that made it, are all 401 as the ended token is everywhere
    (not idempotency_key_reused, which would confirm the key exists); nothing is run."""
    sc = SCENARIOS[name](app, city, client)
    assert client.post(sc["path"], headers=bearer(sc["token"], "end-1"), json=sc["body"]).status_code == 200
    records = _audit_count(app)
    assert _unauthenticated(client.post(sc["path"], headers=bearer(sc["token"], "guessed"), json=sc["body"]))
    assert _unauthenticated(client.post(sc["path"], headers=bearer(sc["token"], "end-1"), json=sc["other_body"]))
    assert _unauthenticated(client.post(sc["path"], headers=bearer(sc["token"]), json=sc["body"]))
    assert _unauthenticated(client.post(sc["path"], headers=bearer(sc["twin"], "end-1"), json=sc["body"]))
    assert _audit_count(app) == records


def test_a_token_ended_earlier_gets_nothing_from_a_later_changes_key(app, city, client):
    """An unrelated ended token (ended by an earlier change) stays 401 under a later change's key and body."""
    sc = _query_password_change(app, city, client)
    old = sc["token"]
    first = client.post(sc["path"], headers=bearer(old, "end-1"), json=sc["body"])
    assert first.status_code == 200
    fresh = client.post("/api/v1/cardholder/login", json={"login": _citizen(app, sc["person_id"]), "password": OTHER})
    token = fresh.json()["token"]
    later = {"old": OTHER, "new": THIRD, "new_again": THIRD}
    assert client.post(sc["path"], headers=bearer(token, "end-2"), json=later).status_code == 200
    assert _unauthenticated(client.post(sc["path"], headers=bearer(old, "end-2"), json=later))
    assert client.post(sc["path"], headers=bearer(token, "end-2"), json=later).status_code == 200


def _citizen(app, person_id: int) -> str:
    from sscard.models.foundation import Person

    with app.db.session() as s:
        return s.get(Person, person_id).citizen_id


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_stored_answer_replayed_to_an_ended_token_carries_no_secret(app, city, client, name):
    sc = SCENARIOS[name](app, city, client)
    assert client.post(sc["path"], headers=bearer(sc["token"], "end-1"), json=sc["body"]).status_code == 200
    with app.db.session() as s:
        stored = [r.response for r in s.scalars(select(IdempotencyRecord).where(IdempotencyRecord.key == "end-1"))]
    assert stored and not any(secret in text for text in stored for secret in sc["secrets"])
    from sscard.services.operation import _refuse_secret_in_answer

    with pytest.raises(RuntimeError, match="no secret"):
        _refuse_secret_in_answer(DECLARATIONS[name], {"changed": True, "next": {"token": "ch.x"}})


def test_an_operation_that_ends_its_callers_credential_undeclared_fails(app, city, monkeypatch):
    """The declaration is not remembered route by route: an operation that ends its own caller's credential
    (`Op.ends_sessions_of`) without being declared `ends_session` fails in the frame."""
    card = city.issued_card()
    fn = passwords.change_query_password
    undeclared: Declaration = replace(fn.declaration, ends_session=False)
    monkeypatch.setattr(fn, "declaration", undeclared)
    monkeypatch.setitem(access.DECLARATIONS, undeclared.name, undeclared)
    with pytest.raises(RuntimeError, match="ends_session"):
        fn(app, city.cardholder(card), card.card_number[-6:], NEW_QUERY_PASSWORD, NEW_QUERY_PASSWORD)
