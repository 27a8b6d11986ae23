"""Session 27's money probe: a month's pension is credited once per account, whatever became of the keys."""

from __future__ import annotations

import pytest

from sscard.core.errors import SscardError
from sscard.core.roles import SYSTEM_ACTOR
from sscard.services import banking, ledger


def test_a_months_pension_file_run_again_after_its_keys_were_swept_credits_nothing_twice(city, app, clock, tmp_path):
    """`sscard account pension FILE --period M` promised "a file run again credits nothing twice", by each line's
    Idempotency-Key alone; the nightly sweep removes keys after api.idempotency_keep_days (7), and the same file
    run again after that credited the whole month a second time (money out of nothing, to every pensioner).
    A pension is credited once per account and period, whatever became of the key: refused
    `pension_already_credited`, nothing moved."""
    from datetime import timedelta

    from sscard.cli.ledger import credit_pension_file
    from sscard.services import retention

    from .helpers import activated, balance_of

    first, second = activated(city, name="张三"), activated(city, name="李四")
    listing = tmp_path / "2026-11.csv"
    listing.write_text(f"pan,amount\n{first.pan},2345.60\n{second.pan},1000\n", encoding="utf-8")
    assert credit_pension_file(app, listing, "2026-11")["credited_fen"] == 334_560
    clock.advance(timedelta(days=app.policy.api.idempotency_keep_days + 1))
    assert retention.prune_all(app, SYSTEM_ACTOR) > 0  # the nightly sweep: the month's keys are gone
    again = credit_pension_file(app, listing, "2026-11")
    assert again["credited_fen"] == 0
    assert again["refused"] == [{"line": 2, "code": "pension_already_credited"},
                                {"line": 3, "code": "pension_already_credited"}]
    assert (balance_of(app, first.pan), balance_of(app, second.pan)) == (234_560, 100_000)
    # another month is another credit; the same month by another way in (no file, another key) is not
    assert credit_pension_file(app, listing, "2026-12")["credited_fen"] == 334_560
    with pytest.raises(SscardError) as err:
        banking.credit_pension(app, SYSTEM_ACTOR, first.pan, 1, "2026-12", idempotency_key="another-key")
    assert err.value.code == "pension_already_credited"
    with app.db.session() as s:
        assert ledger.check_invariants(s)["ok"]


def test_the_same_accounts_pension_for_one_period_sent_at_once_under_two_keys_is_credited_once(city, app):
    """Two runs of a month's file at the same moment (two crons), each line under its own key: one credit."""
    import threading

    from sscard.services import batching

    from .helpers import activated, balance_of

    card = activated(city)
    answers: list[object] = []

    def credit(key: str) -> None:
        try:
            answers.append(batching.call(app, banking.credit_pension, SYSTEM_ACTOR, card.pan, 150_000, "2026-11",
                                         idempotency_key=key)["amount_fen"])
        except SscardError as err:
            answers.append(err.code)

    threads = [threading.Thread(target=credit, args=(f"run-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(str, answers)) == ["150000"] + ["pension_already_credited"] * 3
    assert balance_of(app, card.pan) == 150_000


def test_no_terminal_can_take_an_accounts_pension_id_ahead_of_the_payer(city, app):
    """Transfer ids are one namespace and a POS chooses its own (`transfer_id` on a payment): were a pension's
    id guessable, a POS paying with that id first would have the account's month refused as already credited.
    The id is keyed with the server's secret: nobody outside the server can name it."""
    from sscard.services import batching

    from .helpers import PIN, activated, balance_of, terminal

    victim, payer = activated(city, name="张三"), activated(city, name="李四", opening_fen=10_000)
    pos = terminal(city, "POS-1")
    with app.db.session() as s:
        from sqlalchemy import select

        from sscard.models.foundation import BankAccount

        victim_id = s.scalar(select(BankAccount.id).where(BankAccount.pan == victim.pan))
    for guess in (f"pension-2026-11-{victim_id}", f"pension_2026-11_{victim_id}", f"pension-202611-{victim_id}"):
        batching.call(app, banking.purchase, pos, payer.pan, 1, PIN, transfer_id=guess, idempotency_key=guess)
    banking.credit_pension(app, SYSTEM_ACTOR, victim.pan, 150_000, "2026-11")  # (was: pension_already_credited)
    assert balance_of(app, victim.pan) == 150_000
    with app.db.session() as s:
        assert ledger.check_invariants(s)["ok"]
