"""Fixtures of the ledger tests: many activated accounts at once, built through the services."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sscard.core.identifiers import make_citizen_id
from sscard.core.roles import SYSTEM_ACTOR
from sscard.services import banking, cards, enrolment, production

from .helpers import PIN, add_terminal, terminal


@dataclass
class Holder:
    pan: str
    bank: str
    citizen_id: str


def many_accounts(city, n: int, opening_fen: int, *, jsb_every: int = 5) -> list[Holder]:
    """n activated accounts (every `jsb_every`-th at the second bank), each with an opening credit."""
    from datetime import date

    app, clerk = city.app, city.actor("clerk")
    applied = []
    for i in range(n):
        bank = "JSB" if jsb_every and i % jsb_every == jsb_every - 1 else "GSB"
        cid = make_citizen_id("330106", date(1960 + i % 30, 1 + i % 12, 1 + i % 28), 500 + i)
        person = enrolment.register_person(app, clerk, cid, f"持卡人{i}")
        applied.append((enrolment.apply_first_card(app, clerk, person["id"], bank, "C01")["card_number"], bank, cid))
    batch = production.start_batch(app, clerk, "C01")
    production.complete_batch(app, clerk, batch["batch"])
    out = []
    for number, bank, cid in applied:
        cards.collect_card(app, clerk, number, cid)
        pan = city.pan_of(number)
        teller = city.actor("teller" if bank == "GSB" else "teller_jsb")
        banking.activate(app, teller, pan, cid, PIN, PIN, cardholder_in_person=True)
        if opening_fen:
            banking.credit_pension(app, SYSTEM_ACTOR, pan, opening_fen, "opening")
        out.append(Holder(pan, bank, cid))
    return out


@pytest.fixture
def terminals(city):
    """ATM and POS actors per bank."""
    add_terminal(city, "ATM-JSB-1", "atm", outlet_code="JSB-001")
    add_terminal(city, "POS-JSB-1", "pos", bank_code="JSB", merchant_name="城东药店")
    return {
        "atm": {"GSB": terminal(city, "ATM-GSB-1"), "JSB": terminal(city, "ATM-JSB-1")},
        "pos": {"GSB": terminal(city, "POS-1"), "JSB": terminal(city, "POS-JSB-1")},
    }
