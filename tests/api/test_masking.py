"""R2.8 by construction: every API answer masks the numbers it names, whatever its service hands back."""

from __future__ import annotations

from datetime import date

from sscard.api import responses
from sscard.core.identifiers import make_citizen_id, mask_card_number, mask_citizen_id, mask_pan
from tests.foundation.helpers import headers


def test_an_answer_masks_its_numbers_at_any_depth_and_in_keys_no_model_declares():
    class Inner(responses.Out):
        pan: str

    class Answer(responses.Out):
        card_number: str
        inner: Inner
        rows: list[Inner]

    pan, number, cid = "6222020000000001234", "A12345678", make_citizen_id("110105", date(1980, 5, 17), 1)
    dumped = Answer(card_number=number, inner=Inner(pan=pan), rows=[{"pan": pan}],
                    undeclared={"citizen_id": cid, "name": "欧阳秘测", "list": [{"old_card_number": number}]},
                    bank={"name": "工商银行", "code": "GSB"},
                    queue=[{"person_id": 7, "name": "阎伟"}],
                    later={"to_pan": pan, "replaced_card_number": number, "holder_citizen_id": cid,
                           "pan_last4": pan[-4:]}).model_dump(mode="json")
    assert dumped == {"card_number": mask_card_number(number), "inner": {"pan": mask_pan(pan)},
                      "rows": [{"pan": mask_pan(pan)}],
                      "undeclared": {"citizen_id": mask_citizen_id(cid), "name": "欧***",
                                     "list": [{"old_card_number": mask_card_number(number)}]},
                      "bank": {"name": "工商银行", "code": "GSB"},  # a bank's name is no person's
                      "queue": [{"person_id": 7, "name": "阎*"}],
                      "later": {"to_pan": mask_pan(pan), "replaced_card_number": mask_card_number(number),
                                "holder_citizen_id": mask_citizen_id(cid), "pan_last4": pan[-4:]}}  # by their names
    assert Answer.model_validate(dumped).model_dump(mode="json") == dumped  # masking a masked number: the same


def test_the_number_of_a_card_a_request_issued_is_answered_in_full_to_its_issuer_and_masked_ever_after(city, client):
    """The answers that only echoed a number the caller sent (collection, a password check) or read it
    (the card's status) mask it; the first card's application answers it in full: the client addresses the
    new card by it (session 21's integrator)."""
    clerk = city.token("clerk")
    cid = make_citizen_id("330106", date(1990, 2, 3), 21)
    person = client.post("/api/v1/persons", json={"citizen_id": cid, "name": "陈明"}, headers=headers(clerk)).json()
    assert (person["citizen_id"], person["name"]) == (mask_citizen_id(cid), "陈*")  # a person's name beside their ID
    applied = client.post("/api/v1/cards", json={"person_id": person["id"], "bank_code": "GSB", "center_code": "C01"},
                          headers=headers(clerk))
    number = applied.json()["card_number"]
    assert applied.status_code == 201 and "*" not in number
    batch = client.post("/api/v1/production-batches", json={"center_code": "C01"}, headers=headers(clerk)).json()
    client.post(f"/api/v1/production-batches/{batch['batch']}/complete", headers=headers(clerk))
    collected = client.post(f"/api/v1/cards/{number}/collect", json={"presented_citizen_id": cid},
                            headers=headers(clerk))
    assert collected.status_code == 200 and collected.json()["card_number"] == mask_card_number(number)
    assert "*" in collected.json()["pan"]
    verified = client.post(f"/api/v1/terminal/cards/{number}/ss-password/verify", json={"password": "123456"},
                           headers=headers(city.token(terminal="KIOSK-1")))
    assert verified.status_code == 200 and verified.json()["card_number"] == mask_card_number(number)
    for answer in (collected, verified, client.get(f"/api/v1/cards/{number}", headers=headers(clerk))):
        assert number not in answer.text and cid not in answer.text


def test_the_collection_queue_over_the_api_masks_the_names_the_console_calls_out(city, client):
    """Session 22's contract probe: GET /counter/queue answered full names (R2.8: the API's lists stay
    masked; the console shows them to the clerk who calls them out, each view recorded)."""
    from tests.console.helpers import ready_replacement

    ready_replacement(city, city.issued_card("蒋文"))
    rows = client.get("/api/v1/counter/queue", headers=headers(city.token("clerk"))).json()["ready"]
    assert [r["name"] for r in rows] == ["蒋*"]
