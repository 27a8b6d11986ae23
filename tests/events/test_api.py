"""GET /api/v1/events: the feed over HTTP, scoped by the caller's token."""

from __future__ import annotations

import pytest

from sscard.core.errors import SscardError
from sscard.services import events, loss


def get(client, token, path="/api/v1/events", **params):
    return client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})


def terminal_get(client, token, **params):
    return get(client, token, "/api/v1/terminal/events", **params)


def test_the_feed_over_http_is_scoped_by_the_callers_token_and_pages_with_after(city, client):
    card = city.issued_card("郑一", bank="GSB")
    loss.report_formal_loss(city.app, city.actor("clerk"), card.card_number, card.citizen_id)
    atm = city.token(terminal="ATM-GSB-1")
    everything = terminal_get(client, atm, limit=500).json()
    assert everything["events"] and all(e["bank"] == "GSB" for e in everything["events"])
    assert everything["next_after"] == everything["events"][-1]["id"]
    first_two = terminal_get(client, atm, limit=2).json()
    rest = terminal_get(client, atm, after=first_two["next_after"]).json()
    assert first_two["events"] + rest["events"] == everything["events"]
    assert terminal_get(client, atm, after=rest["next_after"]).json() == {"events": [], "next_after": rest["next_after"]}
    assert get(client, city.token("teller"), limit=500).json() == everything  # the bank's staff: the same

    assert get(client, city.token("teller_jsb")).json()["events"] == []  # another bank's teller
    ss_only = get(client, city.token("clerk2")).json()["events"]
    assert ss_only and {e["type"] for e in ss_only} == {"card.ss_status_changed"}
    assert all(e["pan"] != card.pan for e in ss_only)

    assert terminal_get(client, city.token(terminal="KIOSK-1")).status_code == 403  # a terminal of no bank
    assert get(client, atm).status_code == 403  # a terminal's token on the staff path
    assert terminal_get(client, atm, limit=501).status_code == 422
    assert terminal_get(client, atm, after=-1).status_code == 422
    assert client.get("/api/v1/events").status_code == 401


def test_a_merchants_pos_reads_the_banks_events_with_the_pans_masked(city, client):
    """Session 22's privacy probe: a supermarket's POS read the full PAN of every card of the bank that was
    lost, frozen or closed. The bank's staff and ATMs still get them in full."""
    from sscard.core.identifiers import mask_pan

    card = city.issued_card("郑一", bank="GSB")
    loss.report_formal_loss(city.app, city.actor("clerk"), card.card_number, card.citizen_id)
    pos = terminal_get(client, city.token(terminal="POS-1"), limit=500).json()["events"]
    atm = terminal_get(client, city.token(terminal="ATM-GSB-1"), limit=500).json()["events"]
    assert [e["id"] for e in pos] == [e["id"] for e in atm] and any(e["pan"] == card.pan for e in atm)
    assert all(e["pan"] is None or e["pan"] == mask_pan(e["pan"]) for e in pos)
    assert card.pan not in str(pos)


def test_a_cardholder_may_not_read_the_feed(city):
    card = city.issued_card()
    with pytest.raises(SscardError) as refused:
        events.feed(city.app, city.cardholder(card), 0, 10)
    assert refused.value.code == "forbidden"


def test_the_feed_is_in_the_openapi_with_a_typed_response(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/api/v1/events"]["get"]
    assert op["operationId"] == "events_feed"
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/EventFeed"}
