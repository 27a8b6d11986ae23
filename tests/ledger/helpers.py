"""Helpers for the ledger tests: activated cards with money, built through the services."""

from __future__ import annotations

from sqlalchemy import select

from sscard.core.roles import SYSTEM_ACTOR
from sscard.models.foundation import Terminal
from sscard.services import banking, ledger, staff
from sscard.services.staff import terminal_actor

PIN = "147258"


def activated(city, name: str = "张三", bank: str = "GSB", opening_fen: int = 0, pin: str = PIN):
    """An issued card, activated at an outlet of its bank, with an opening pension credit if asked."""
    card = city.issued_card(name=name, bank=bank)
    teller = city.actor("teller" if bank == "GSB" else "teller_jsb")
    banking.activate(city.app, teller, card.pan, card.citizen_id, pin, pin, cardholder_in_person=True)
    if opening_fen:
        banking.credit_pension(city.app, SYSTEM_ACTOR, card.pan, opening_fen, period="opening")
    return card


def terminal(city, code: str):
    """The Actor of a terminal (as its bearer token would give)."""
    with city.app.db.session() as s:
        return terminal_actor(s, s.scalar(select(Terminal).where(Terminal.code == code)))


def add_terminal(city, code: str, kind: str, **where):
    from sscard.core.roles import CLI_OPERATOR
    from sscard.services import city as city_svc

    city_svc.add_terminal(city.app, CLI_OPERATOR, code, kind, code, **where)
    return terminal(city, code)


def terminal_token(city, code: str) -> str:
    from sscard.core.roles import CLI_OPERATOR

    return staff.issue_token(city.app, CLI_OPERATOR, terminal_code=code)["token"]


def invariants(app) -> dict:
    with app.db.session() as s:
        return ledger.check_invariants(s)


def balance_of(app, pan: str) -> int:
    from sscard.models.foundation import BankAccount

    with app.db.session() as s:
        lid = s.scalar(select(BankAccount.ledger_account_id).where(BankAccount.pan == pan))
        return ledger.balance(s, lid).posted
