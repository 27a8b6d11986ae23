"""A client generated from the live OpenAPI by openapi-python-client drives the API as an integrator would."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sscard.api import snapshot
from tests.medical import helpers as med

from ..ledger.helpers import PIN, activated, terminal_token

GENERATOR = Path(sys.executable).parent / "openapi-python-client"


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> dict:
    """Generated once per session (about 8 s), on first use, from the first test app's schema."""
    return {"root": tmp_path_factory.mktemp("client"), "package": None}


@pytest.fixture
def sdk(generated, client):
    if generated["package"] is None:
        root = generated["root"]
        (root / "openapi.json").write_text(snapshot.dump(client.app.openapi()), encoding="utf-8")
        (root / "config.json").write_text(json.dumps({"post_hooks": []}), encoding="utf-8")
        done = subprocess.run(
            [str(GENERATOR), "generate", "--path", str(root / "openapi.json"), "--meta", "none",
             "--config", str(root / "config.json"), "--output-path", str(root / "sscard_generated")],
            capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "will not be generated" not in done.stdout + done.stderr, done.stdout + done.stderr
        sys.path.insert(0, str(root))
        generated["package"] = "sscard_generated"
    return lambda name: importlib.import_module(f"{generated['package']}.{name}")


def _as(sdk, client, token: str):
    """The generated AuthenticatedClient, its transport the test app (TestClient is an httpx.Client)."""
    api = sdk("client").AuthenticatedClient(base_url="http://testserver", token=token)
    api.set_httpx_client(TestClient(client.app, headers={"Authorization": f"Bearer {token}"}))
    return api


def test_a_pos_payment_through_the_generated_client(sdk, city, client):
    card = activated(city, opening_fen=10_000)
    pos = _as(sdk, client, terminal_token(city, "POS-1"))
    purchase = sdk("api.bank_account.bank_purchase")
    body = sdk("models").Purchase(pan=card.pan, amount_fen=2_550, pin=PIN)
    paid = purchase.sync(client=pos, body=body, idempotency_key="gen-pay-1")
    assert type(paid).__name__ == "BankPurchaseOut", paid
    assert paid.amount_fen == 2_550 and paid.balance_fen == 7_450 and paid.transfer_id
    again = purchase.sync(client=pos, body=body, idempotency_key="gen-pay-1")
    assert again.transfer_id == paid.transfer_id and again.balance_fen == 7_450  # the replayed answer


def test_a_medical_pre_settlement_through_the_generated_client(sdk, city, client):
    med.set_up(city)
    card = city.issued_card()
    med.insure(city.app, card.person_id, 60_000)
    hospital = _as(sdk, client, med.token(city, "HOSP-H3-1"))
    body = sdk("models").PreSettle.from_dict({
        "card_number": card.card_number, "ident_code": med.ident_code(city.app, card.card_number),
        "lines": med.lines(covered=12_000, uncovered=3_000),
    })
    quote = sdk("api.medical.medical_pre_settle").sync(client=hospital, body=body, idempotency_key="gen-q-1")
    assert type(quote).__name__ == "MedicalPreSettleOut", quote
    assert quote.split.total_fen == 15_000 and quote.split.uncovered_fen == 3_000 and quote.quote


def test_a_card_lookup_by_staff_through_the_generated_client(sdk, city, client):
    card = city.issued_card()
    teller = _as(sdk, client, city.token("teller"))
    view = sdk("api.cards.card_status").sync(card_number=card.card_number, client=teller)
    assert type(view).__name__ == "CardView", view
    assert view.card_number[-2:] == card.card_number[-2:] and view.ss_status == "normal"
    assert view.bank.code == "GSB" and view.bank.status == "not_activated"
    assert "*" in view.person.citizen_id  # masked
