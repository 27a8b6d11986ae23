"""A query password changed or reset ends the cardholder API tokens issued before it, on every channel.

Found (review of session 12's "seen and left"): a cardholder's API token (`ch.`, 30 minutes, stateless)
outlived a change of the query password (portal, API) and a reset at the window, though the change ended
every portal session: whoever had signed in with the old password kept the API for up to half an hour."""

from __future__ import annotations

from fastapi.testclient import TestClient

from sscard.composition import create_app
from sscard.services import passwords
from tests.portal.helpers import NEW_QUERY_PASSWORD, csrf, login_changed
from tests.support import bearer

OTHER_PASSWORD = "79135024"


def _token(client, card, password: str) -> str:
    answer = client.post("/api/v1/cardholder/login", json={"login": card.citizen_id, "password": password})
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


def _my_cards(client, card, token: str):
    return client.get(f"/api/v1/persons/{card.person_id}/cards", headers=bearer(token))


def _refused_unauthenticated(answer) -> bool:
    return answer.status_code == 401 and answer.json()["code"] == "unauthenticated"


def test_a_change_through_the_api_refuses_the_tokens_issued_before_and_a_new_login_works(app, city, client):
    card = city.issued_card()
    passwords.change_query_password(app, city.cardholder(card), card.card_number[-6:], NEW_QUERY_PASSWORD,
                                    NEW_QUERY_PASSWORD)
    changing, elsewhere = _token(client, card, NEW_QUERY_PASSWORD), _token(client, card, NEW_QUERY_PASSWORD)
    assert _my_cards(client, card, elsewhere).status_code == 200
    body = {"old": NEW_QUERY_PASSWORD, "new": OTHER_PASSWORD, "new_again": OTHER_PASSWORD}
    changed = client.post("/api/v1/cardholder/query-password/change", headers=bearer(changing, "qp-1"), json=body)
    assert changed.status_code == 200, changed.text
    assert _refused_unauthenticated(_my_cards(client, card, elsewhere))
    assert _refused_unauthenticated(_my_cards(client, card, changing))
    # the retried change (same key, same body) with the token it ended gets the first answer (session 23:
    # every write is idempotent under its key; tests/api/test_ended_session_replay.py), and nothing else
    retried = client.post("/api/v1/cardholder/query-password/change", headers=bearer(changing, "qp-1"), json=body)
    assert retried.status_code == 200 and retried.content == changed.content
    assert client.post("/api/v1/cardholder/login",
                       json={"login": card.citizen_id, "password": NEW_QUERY_PASSWORD}).status_code == 401
    fresh = _token(client, card, OTHER_PASSWORD)
    assert _my_cards(client, card, fresh).status_code == 200


def test_a_change_on_the_portal_refuses_the_api_tokens_issued_before(app, city, client):
    card = city.issued_card()
    with TestClient(create_app(app)) as browser:
        login_changed(browser, card)
        token = _token(client, card, NEW_QUERY_PASSWORD)
        assert _my_cards(client, card, token).status_code == 200
        page = browser.get("/portal/password")
        done = browser.post("/portal/password/query", data={
            "csrf_token": csrf(page.text), "old": NEW_QUERY_PASSWORD, "new": OTHER_PASSWORD,
            "new_again": OTHER_PASSWORD})
        assert done.status_code == 200, done.text
    assert _refused_unauthenticated(_my_cards(client, card, token))
    assert _my_cards(client, card, _token(client, card, OTHER_PASSWORD)).status_code == 200


def test_a_reset_at_the_window_refuses_the_api_tokens_issued_before_even_from_the_initial_password(app, city, client):
    """A reset back to the initial password ends the tokens too, even those of someone who signed in with the
    initial password itself (the reason for a reset: someone else knew it)."""
    card = city.issued_card()
    initial = card.card_number[-6:]
    intruder = _token(client, card, initial)
    reset = client.post("/api/v1/query-password/reset", headers=bearer(city.token("clerk"), "qp-reset"),
                        json={"person_id": card.person_id, "presented_citizen_id": card.citizen_id})
    assert reset.status_code == 200, reset.text
    assert _refused_unauthenticated(_my_cards(client, card, intruder))
    again = _token(client, card, initial)
    # the initial password again: it may read its cards (and report a loss), the rest waits for its change (R4.9)
    assert _my_cards(client, card, again).status_code == 200
    refused = client.get(f"/api/v1/bank-accounts/{card.pan}/statement", headers=bearer(again))
    assert refused.status_code == 403 and refused.json()["code"] == "password_change_required"
    # a reset by 12333's agent or the window console is the same operation: the new token ends too
    passwords.reset_query_password(app, city.actor("clerk"), card.person_id, card.citizen_id)
    assert _refused_unauthenticated(_my_cards(client, card, again))


def test_another_persons_change_leaves_a_cardholders_token_alone_and_it_never_reaches_their_cards(app, city, client):
    mine, theirs = city.issued_card("张三"), city.issued_card("李四")
    token = _token(client, mine, city.own_query_password(mine))
    passwords.reset_query_password(app, city.actor("clerk"), theirs.person_id, theirs.citizen_id)
    assert _my_cards(client, mine, token).status_code == 200
    assert _my_cards(client, theirs, token).status_code == 404  # another person's cards: as if none


def test_a_token_without_the_generation_stamp_or_with_a_forged_one_is_refused(app, city, client):
    from sscard.api import sessions

    card = city.issued_card()
    unstamped = sessions.CARDHOLDER_PREFIX + sessions._serializer(app).dumps({"p": card.person_id})
    assert _refused_unauthenticated(_my_cards(client, card, unstamped))
    city.own_query_password(card)
    stamped = sessions.issue_cardholder_token(app, card.person_id)
    forged = stamped[:-3] + ("AAA" if not stamped.endswith("AAA") else "BBB")
    assert _refused_unauthenticated(_my_cards(client, card, forged))
    assert _my_cards(client, card, stamped).status_code == 200
