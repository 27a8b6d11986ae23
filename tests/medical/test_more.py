"""Demo data, the CLI, another insured-grace policy and concurrent settlement of one quote."""

from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import func, select

from sscard.core.errors import SscardError
from sscard.core.roles import SYSTEM_ACTOR
from sscard.models.medical import PersonalAccount, PersonalAccountMovement
from sscard.services import medical
from tests.medical import helpers as h


def test_demo_populate_gives_designated_institutions_and_insured_people(city, app):
    from sscard.demo import medical as demo

    cards = [city.issued_card(name=n) for n in ("王芳", "李强", "赵敏")]
    out = demo.populate(app.db.engine, random.Random(7), app.clock.today(), max_people=10, always_first=2)
    assert out["institutions"] == len(demo.INSTITUTIONS) and out["personal_accounts"] == 3
    again = demo.populate(app.db.engine, random.Random(7), app.clock.today())
    assert again["institutions"] == 0 and again["personal_accounts"] == 0
    with app.db.session() as s:
        balances = s.scalar(select(func.sum(PersonalAccount.balance_fen)))
        moved = s.scalar(select(func.sum(PersonalAccountMovement.amount_fen)))
    assert balances == moved == out["balances_fen"]
    term = h.terminal(city, "MED-BJ-DC1-1")  # a level-2 hospital: deductible 500.00, 85 %
    quote = medical.pre_settle(app, term, cards[0].card_number, h.ident_code(app, cards[0].card_number),
                               h.lines(covered=150_000))
    assert quote["split"]["deductible_fen"] == 50_000 and quote["split"]["fund_fen"] == 85_000
    with pytest.raises(SscardError) as e:
        medical.pre_settle(app, h.terminal(city, "MED-BJ-MR-1"), cards[0].card_number,
                           h.ident_code(app, cards[0].card_number), h.lines(1_000))
    assert e.value.code == "institution_not_designated"


def test_without_grace_only_this_months_credit_counts(make_app):
    from tests.support import City

    app = make_app(medical={"insured_grace_months": 0})
    city = City(app)
    h.set_up(city)
    card = city.issued_card()
    h.insure(app, card.person_id, 10_000, month="2025-12")
    with pytest.raises(SscardError) as e:
        h.pay(app, h.terminal(city, "PHAR-P1-1"), card.card_number, h.lines(1_000), key="g1")
    assert e.value.code == "not_insured"
    h.insure(app, card.person_id, 10_000, month="2026-01")
    assert h.pay(app, h.terminal(city, "PHAR-P1-1"), card.card_number, h.lines(1_000), key="g2")["code"]


def test_one_quote_settled_from_four_threads_at_once_is_settled_once(city, app):
    h.set_up(city)
    card = city.issued_card()
    h.insure(app, card.person_id, 100_000)
    term = h.terminal(city, "HOSP-H3-1")
    code = h.ident_code(app, card.card_number)
    quote = medical.pre_settle(app, term, card.card_number, code, h.lines(covered=120_000))
    answers: list[str] = []

    def settle(i: int) -> None:
        try:
            medical.settle(app, term, quote["quote"], card.card_number, code, "123456", idempotency_key=f"t{i}")
            answers.append("ok")
        except SscardError as err:
            answers.append(err.code)

    threads = [threading.Thread(target=settle, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == ["ok"] + ["quote_already_settled"] * 3
    account = medical.personal_account(app, SYSTEM_ACTOR, card.person_id)
    assert account["balance_fen"] == 100_000 - quote["split"]["personal_fen"]
    assert account["fund_used_fen"] == quote["split"]["fund_fen"]


def test_cli_credits_a_month_and_policy_show_lists_the_medical_settings(city, app, db_url, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from sscard.cli import _register_area_commands
    from sscard.cli import app as cli

    card = city.issued_card()
    monkeypatch.setenv("SSCARD_DATABASE_URL", db_url)
    monkeypatch.setenv("SSCARD_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("SSCARD_SECRET_KEY", "00" * 32)
    if not any(g.name == "medical" for g in cli.registered_groups):
        _register_area_commands()
    runner = CliRunner()
    out = runner.invoke(cli, ["medical", "credit", "--month", "2026-01", "--amount", "123.45"])
    assert out.exit_code == 0, out.output
    assert medical.personal_account(app, SYSTEM_ACTOR, card.person_id)["balance_fen"] == 12_345
    again = runner.invoke(cli, ["medical", "credit", "--month", "2026-01", "--amount", "123.45"])
    assert "credited 0" in again.output
    shown = runner.invoke(cli, ["policy", "show", "--json"])
    assert '"medical.ratio_level3_pct": 80' in shown.output
    assert '"medical.annual_cap_fen": 30000000' in shown.output
