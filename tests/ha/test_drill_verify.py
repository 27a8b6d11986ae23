"""The failover drill's verdict, read from the ledger: an acknowledged payment missing is lost, a
transfer nobody was told about (a request applied twice) is duplicated, a refused request that
committed is caught. Built through the services, judged by the drill's own `_verify`."""

from __future__ import annotations

import pytest

from sscard.ha.drill import Outcome, Request, _longest_gap, _verify
from sscard.services import banking

from ..ledger.helpers import PIN, activated, terminal


@pytest.fixture
def paid(app, city):
    """Two keyed payments as the drill's clients make them: (outcome with both acknowledged, card, pos)."""
    card = activated(city, opening_fen=10_000)
    pos = terminal(city, "POS-1")
    outcome = Outcome(account_check_rc=0)  # `sscard account check` is the drill's other judge
    for i, amount in enumerate((100, 200)):
        key = f"drill-{i}"
        answer = banking.purchase(app, pos, card.pan, amount, PIN, idempotency_key=key)
        outcome.requests.append(Request("payment", key, {"amount_fen": amount}, status=200, answer=answer))
    return outcome, card, pos


def test_every_acknowledged_payment_found_once_is_neither_lost_nor_duplicated(app, paid):
    outcome, _card, _pos = paid
    _verify(app.db.url, outcome, 0)
    assert (outcome.acknowledged, outcome.lost, outcome.duplicated, outcome.refused_in_ledger) == (2, 0, 0, 0)
    assert outcome.ledger_ok and outcome.ok


def test_an_acknowledged_payment_missing_from_the_ledger_is_counted_lost(app, paid):
    outcome, _card, _pos = paid
    outcome.requests.append(Request("payment", "drill-ghost", {}, status=200,
                                    answer={"transfer_id": "never-committed"}))
    _verify(app.db.url, outcome, 0)
    assert (outcome.acknowledged, outcome.lost) == (3, 1)
    assert not outcome.ok


def test_two_acknowledged_requests_answered_with_one_transfer_count_one_lost(app, paid):
    outcome, _card, _pos = paid
    twin = outcome.requests[0]
    outcome.requests.append(Request("payment", "drill-twin", twin.body, status=200, answer=dict(twin.answer)))
    _verify(app.db.url, outcome, 0)
    assert (outcome.acknowledged, outcome.lost) == (3, 1)


def test_a_payment_in_the_ledger_that_no_client_was_answered_for_is_counted_duplicated(app, paid):
    outcome, card, pos = paid
    # the same request applied a second time under another key: its client only ever saw the first answer
    banking.purchase(app, pos, card.pan, 100, PIN, idempotency_key="drill-0-again")
    _verify(app.db.url, outcome, 0)
    assert (outcome.lost, outcome.duplicated) == (0, 1)
    assert not outcome.ok


def test_a_refused_answer_whose_request_committed_is_caught(app, paid):
    outcome, _card, _pos = paid
    outcome.requests[1].status, outcome.requests[1].answer = 409, {"code": "insufficient_funds"}
    _verify(app.db.url, outcome, 0)
    assert outcome.refused_in_ledger == 1
    assert not outcome.ok


def test_the_longest_unavailability_is_the_longest_time_without_a_successful_answer():
    assert _longest_gap([1.0, 1.5, 7.0, 7.2], start=0.0, end=10.0) == pytest.approx(5.5)
