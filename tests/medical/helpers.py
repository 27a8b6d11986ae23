"""Helpers for the medical tests: designated institutions, terminals, insured cardholders, a replacement."""

from __future__ import annotations

from sqlalchemy import select

from sscard.core.roles import CLI_OPERATOR, SYSTEM_ACTOR
from sscard.models.foundation import Card, Terminal
from sscard.services import banking, cards, lookup, loss, medical, production, staff
from sscard.services.enrolment import create_card
from sscard.services.operation import Op
from sscard.services.staff import terminal_actor

PIN = "147258"
MONTH = "2026-01"  # the FixedClock starts on 2026-01-05 (Shanghai)
INSTITUTIONS = (
    # code, name, kind, level, designated, terminal
    ("H3", "浙江大学医学院附属第一医院", "hospital", 3, True, "HOSP-H3-1"),
    ("H1", "西湖区北山街道社区卫生服务中心", "hospital", 1, True, "HOSP-H1-1"),
    ("HX", "某民营医院", "hospital", 2, False, "HOSP-HX-1"),
    ("P1", "老百姓大药房（西湖店）", "pharmacy", None, True, "PHAR-P1-1"),
)


def set_up(city) -> None:
    for code, name, kind, level, designated, terminal in INSTITUTIONS:
        medical.add_institution(city.app, CLI_OPERATOR, code, name, kind, level, designated,
                                settlement_bank_code="GSB", settlement_account_no=f"1202{code}0001")
        medical.add_terminal(city.app, CLI_OPERATOR, code, terminal)


def terminal(city, code: str):
    with city.app.db.session() as s:
        return terminal_actor(s, s.scalar(select(Terminal).where(Terminal.code == code)))


def token(city, code: str) -> str:
    return staff.issue_token(city.app, CLI_OPERATOR, terminal_code=code)["token"]


def ident_code(app, card_number: str) -> str:
    with app.db.session() as s:
        return s.scalar(select(Card.ident_code).where(Card.card_number == card_number))


def insure(app, person_id: int, amount_fen: int = 50_000, month: str = MONTH) -> dict:
    return medical.credit_month(app, SYSTEM_ACTOR, month, [{"person_id": person_id, "amount_fen": amount_fen}])


def activate(city, card, opening_fen: int = 0) -> None:
    banking.activate(city.app, city.actor("teller"), card.pan, card.citizen_id, PIN, PIN, cardholder_in_person=True)
    if opening_fen:
        banking.credit_pension(city.app, SYSTEM_ACTOR, card.pan, opening_fen, period="opening")


def lines(covered: int = 0, uncovered: int = 0) -> list[dict]:
    out = []
    if covered:
        out.append({"category": "drug", "name": "阿莫西林胶囊", "amount_fen": covered, "covered": True})
    if uncovered:
        out.append({"category": "material", "name": "自费敷料", "amount_fen": uncovered, "covered": False})
    return out


def pay(app, term, card_number: str, bill: list[dict], *, key: str, password: str = "123456",
        pay_with: str = "cash", pin: str | None = None, use_personal_account: bool = True) -> dict:
    """Pre-settle and settle at a terminal, as a hospital's system would."""
    code = ident_code(app, card_number)
    quote = medical.pre_settle(app, term, card_number, code, bill, use_personal_account)
    return medical.settle(app, term, quote["quote"], card_number, code, password, pay_with, pin,
                          idempotency_key=key)


def replace_lost_card(city, card) -> str:
    """Formal loss at the window, a replacement card made, produced and collected (which cancels the old one).

    Uses the counter area's replacement service when it is there; otherwise the foundation's pieces."""
    app, clerk = city.app, city.actor("clerk")
    loss.report_formal_loss(app, clerk, card.card_number, card.citizen_id)

    def make(session):
        op = Op(app, session, clerk, "test.replacement", None)
        old = lookup.card_by_number(session, card.card_number)
        person = lookup.person_by_id(session, old.person_id)
        from sscard.models.foundation import Bank

        new, _account = create_card(op, person, session.get(Bank, old.bank_id), clerk.center_id, "lost", replaces=old)
        return new.card_number

    new_number = app.db.run(make)
    batch = production.start_batch(app, clerk, "C01")
    production.complete_batch(app, clerk, batch["batch"])
    cards.collect_card(app, clerk, new_number, card.citizen_id)
    return new_number
