"""`sscard account statement/check` and the demo's opening balances."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from sscard.core.roles import SYSTEM_ACTOR
from sscard.demo import ledger as demo_ledger
from sscard.models.foundation import BankAccount
from sscard.models.ledger import LedgerTransfer
from sscard.services import banking, batching
from tests.conftest import TEST_KEY

from .helpers import PIN, activated, invariants, terminal


@pytest.fixture
def cli(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SSCARD_DATABASE_URL", db_url)
    monkeypatch.setenv("SSCARD_SECRET_KEY", TEST_KEY.hex())
    monkeypatch.setenv("SSCARD_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("SSCARD_CONFIG", "")
    monkeypatch.setenv("COLUMNS", "200")
    from sscard import cli as cli_pkg

    if not any(g.name == "account" for g in cli_pkg.app.registered_groups):
        cli_pkg._register_area_commands()
    return lambda *args: CliRunner().invoke(cli_pkg.app, list(args))


def test_account_statement_and_check_on_the_command_line(city, app, cli):
    card = activated(city, opening_fen=12_345)
    banking.deposit(app, city.actor("teller"), card.pan, 55)
    out = cli("account", "statement", card.pan)
    assert out.exit_code == 0, out.output
    assert "124.00" in out.output and "pension_payer" in out.output and "cash:GSB-001" in out.output
    assert card.pan not in out.output  # masked
    out = cli("account", "check")
    assert out.exit_code == 0 and '"ok": true' in out.output
    out = cli("account", "statement", "6222020000000000000")
    assert out.exit_code == 1


def test_demo_opening_balances_keep_the_ledger_balanced(city, app):
    already = activated(city, name="已启用", opening_fen=500)  # has its ledger account: left alone
    waiting = [city.issued_card(name=f"未启用{i}") for i in range(5)]  # collected, in the window
    out = demo_ledger.populate(app.db.engine, random.Random(7), app.clock.today(), activate_share=1.0,
                               secret_key=TEST_KEY)
    assert out["activated"] == 5 and out["ledger_accounts"] == 5
    collected = waiting[0]
    report = invariants(app)
    assert report["ok"] and report["transfers"] == out["transfers"] + 1
    with app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(BankAccount)
                        .where(BankAccount.ledger_account_id.is_(None))) == 0
        assert s.scalar(select(func.count()).select_from(LedgerTransfer)) == out["transfers"] + 1
    # the demo PIN of the account it activated works through the services
    from sscard.demo.people import demo_pin

    banking.deposit(app, city.actor("teller"), collected.pan, 1_000)
    banking.withdraw(app, city.actor("teller"), collected.pan, 500, demo_pin(collected.citizen_id))
    assert demo_ledger.populate(app.db.engine, random.Random(7), app.clock.today())["ledger_accounts"] == 0
    assert invariants(app)["ok"] and banking.statement(app, city.actor("teller"), already.pan)["balance_fen"] == 500


def test_a_closed_batcher_hands_calls_to_the_ordinary_frame(city, app):
    card = activated(city, opening_fen=1_000)
    pos = terminal(city, "POS-1")
    first = batching.call(app, banking.purchase, pos, card.pan, 50, PIN, idempotency_key="before-close")
    batching.batcher(app).close()
    # a key stored by a batch is answered the same by the ordinary frame (same keyed request hash)
    assert batching.call(app, banking.purchase, pos, card.pan, 50, PIN, idempotency_key="before-close") == first
    assert banking.purchase(app, pos, card.pan, 50, PIN, idempotency_key="before-close") == first
    out = batching.call(app, banking.purchase, pos, card.pan, 100, PIN, idempotency_key="after-close")
    assert out["balance_fen"] == 850
    assert batching.call(app, banking.purchase, pos, card.pan, 100, PIN, idempotency_key="after-close") == out
    banking.credit_pension(app, SYSTEM_ACTOR, card.pan, 1)


def test_the_pension_payers_file_credits_each_line_once_however_often_it_runs(city, app, cli, tmp_path):
    """Pensions enter by the pension payer's batch job only (`sscard account pension FILE`): each line keyed by
    month and PAN, so a second run credits nothing; a bad line is refused by number and the rest go on."""
    first, second = activated(city, name="张三"), activated(city, name="李四")
    listing = tmp_path / "2026-11.csv"
    mistyped = first.pan[:-1] + ("1" if first.pan.endswith("0") else "0")  # (a PAN ending in 0 was repeated)
    listing.write_text(f"pan,amount\n{first.pan},2345.60\n{second.pan},１０００\n{mistyped},1.00\n"
                       f"{second.pan},-5\n", encoding="utf-8")
    for _run in range(2):
        out = cli("account", "pension", str(listing), "--period", "2026-11", "--json")
        assert out.exit_code == 1, out.output  # two lines refused, each run
        assert '"line": 4' in out.output and '"line": 5' in out.output and '"credited": 2' in out.output
    assert banking.statement(app, city.actor("teller"), first.pan)["balance_fen"] == 234_560
    assert banking.statement(app, city.actor("teller"), second.pan)["balance_fen"] == 100_000
    assert cli("account", "pension", str(listing), "--period", "2026-13").exit_code == 2
    invariants(app)


def test_no_persons_credential_credits_a_pension(city, app, client):
    """Session 25's probe: an operator's API token credited 1,000,000 yuan to a customer through
    POST /bank-accounts/{pan}/pension. RULES §1 gives an operator no money: the operation admits the system's
    batch job only, and the route (deprecated, kept in v1) refuses every token, recorded."""
    from sscard.core.errors import SscardError
    from sscard.core.roles import CLI_OPERATOR

    card = activated(city)
    for who in ("operator", "teller", "bsup"):
        answer = client.post(f"/api/v1/bank-accounts/{card.pan}/pension", json={"amount_fen": 100_000_000},
                             headers={"Authorization": f"Bearer {city.token(who)}", "Idempotency-Key": f"k-{who}"})
        assert answer.status_code == 403 and answer.json()["code"] == "forbidden", (who, answer.text)
    for actor in (CLI_OPERATOR, city.actor("operator"), city.actor("bsup")):
        with pytest.raises(SscardError) as refused:
            banking.credit_pension(app, actor, card.pan, 100_000_000, "2026-11")
        assert refused.value.code == "forbidden"
    assert banking.statement(app, city.actor("teller"), card.pan)["balance_fen"] == 0


def test_a_pension_file_naming_a_pan_twice_or_in_full_width_digits_credits_the_month_once_and_says_so(
        city, app, cli, tmp_path):
    """Session 26: each line was keyed by the PAN as typed, so the same card in full-width digits on another line
    (or in another run) was credited the month a second time; the same line twice was reported credited twice
    (200 fen) while 100 moved; two amounts for one PAN answered `idempotency_key_reused`. A PAN on more than one
    line is refused on each (`pan_repeated`), the others credited; the key is the PAN the ledger reads."""
    twice, other, alone = activated(city, name="张三"), activated(city, name="李四"), activated(city, name="王五")
    wide = "".join(chr(ord(c) + 0xFEE0) for c in twice.pan)
    listing = tmp_path / "2026-11.csv"
    listing.write_text(f"{twice.pan},50.00\r\n{wide},50.00\r\n{other.pan},1.00\r\n{other.pan},1.00\r\n"
                       f"{alone.pan},3.00\r\n", encoding="utf-8")
    out = cli("account", "pension", str(listing), "--period", "2026-11", "--json")
    assert out.exit_code == 1, out.output
    report = __import__("json").loads(out.output)
    assert (report["credited"], report["credited_fen"]) == (1, 300)
    assert report["refused"] == [{"line": n, "code": "pan_repeated"} for n in (1, 2, 3, 4)]
    balances = [banking.statement(app, city.actor("teller"), c.pan)["balance_fen"] for c in (twice, other, alone)]
    assert balances == [0, 0, 300]
    # the payer's corrected file: one line a card, either way of writing it, credited once however often run
    listing.write_text(f"{wide},50.00\n{other.pan},1.00\n{alone.pan},3.00\n", encoding="utf-8")
    fixed = tmp_path / "fixed-again.csv"
    fixed.write_text(f"{twice.pan},50.00\n", encoding="utf-8")
    assert cli("account", "pension", str(listing), "--period", "2026-11").exit_code == 0
    assert cli("account", "pension", str(fixed), "--period", "2026-11").exit_code == 0
    balances = [banking.statement(app, city.actor("teller"), c.pan)["balance_fen"] for c in (twice, other, alone)]
    assert balances == [5_000, 100, 300]
    assert invariants(app)["ok"]


def test_a_pension_file_not_in_utf8_is_refused_whole_naming_the_line_with_no_traceback(city, app, cli, tmp_path):
    """Session 26: a payer's file saved in GBK (a Chinese header) ended in a Python traceback."""
    card = activated(city)
    listing = tmp_path / "gbk.csv"
    listing.write_bytes(f"{card.pan},1.00\n卡号,金额\n".encode("gbk"))
    out = cli("account", "pension", str(listing), "--period", "2026-11")
    assert out.exit_code == 2, out.output
    assert "line 2 is not UTF-8" in out.output and "Traceback" not in out.output
    assert not isinstance(out.exception, UnicodeDecodeError)
    assert banking.statement(app, city.actor("teller"), card.pan)["balance_fen"] == 0
