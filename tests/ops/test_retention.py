"""Idempotency-Keys are kept the policy's keep days, then the nightly sweep removes their stored answers
(services/retention.py): a retry within the days gets its first answer, a request sent again after them runs
as a new one, and the table no longer holds every answer ever given."""

from __future__ import annotations

from sqlalchemy import func, select

from sscard.core.roles import SYSTEM_ACTOR
from sscard.models.foundation import AuditRecord, IdempotencyRecord
from sscard.services import banking, retention
from tests.ledger.helpers import PIN, activated, balance_of, terminal


def _keys(app) -> int:
    with app.db.session() as s:
        return s.scalar(select(func.count()).select_from(IdempotencyRecord))


def test_keys_are_answered_for_their_keep_days_then_pruned_oldest_first(city, app, clock):
    card = activated(city, opening_fen=10_000)
    atm = terminal(city, "ATM-GSB-1")
    first = banking.withdraw(app, atm, card.pan, 100, PIN, idempotency_key="old-1")
    clock.advance(days=3)
    banking.withdraw(app, atm, card.pan, 100, PIN, idempotency_key="new-1")
    stored = _keys(app)
    clock.advance(days=5)  # old-1 is 8 days old, new-1 is 5
    assert banking.withdraw(app, atm, card.pan, 100, PIN, idempotency_key="old-1") == first  # not yet pruned
    out = retention.prune_keys(app, SYSTEM_ACTOR)
    assert out["keep_days"] == 7 and out["removed"] == stored - _keys(app) >= 1
    with app.db.session() as s:
        left = set(s.scalars(select(IdempotencyRecord.key)))
        record = s.scalars(select(AuditRecord).where(AuditRecord.operation == "retention.prune_keys")).one()
    assert "new-1" in left and "old-1" not in left
    assert record.detail["removed"] == out["removed"] and record.actor_role == "system"
    # sent again after its days, the key is a new request: it runs (docs/API.md says so)
    again = banking.withdraw(app, atm, card.pan, 100, PIN, idempotency_key="old-1")
    assert again["transfer_id"] != first["transfer_id"]
    assert balance_of(app, card.pan) == 10_000 - 300


def test_the_nightly_job_prunes_in_short_transactions_until_none_is_left(city, app, clock, monkeypatch):
    card = activated(city, opening_fen=10_000)
    atm = terminal(city, "ATM-GSB-1")
    for i in range(5):
        banking.withdraw(app, atm, card.pan, 10, PIN, idempotency_key=f"k{i}")
    clock.advance(days=8)
    monkeypatch.setattr(retention, "PRUNE_LIMIT", 2)
    monkeypatch.setattr(retention, "SQLITE_PRUNE_LIMIT", 2)  # (SQLite's one writer: shorter transactions)
    assert retention.prune_all(app, SYSTEM_ACTOR) >= 5
    with app.db.session() as s:
        prunes = s.scalar(select(func.count()).select_from(AuditRecord).where(AuditRecord.operation == "retention.prune_keys"))
        keys = set(s.scalars(select(IdempotencyRecord.key)))
    assert not keys & {f"k{i}" for i in range(5)}
    assert prunes >= 3  # at most 2 a transaction, each with its record, the last removing fewer than 2


def test_the_nightly_job_on_sqlite_deletes_in_transactions_ten_times_shorter(app, monkeypatch):
    """Session 22's reliability probe: on SQLite the sweep's 20,000 deletes in a transaction held payments
    up half a second."""
    calls = []
    monkeypatch.setattr(retention, "prune_keys", lambda app_, actor, limit: calls.append(limit) or {"removed": 0})
    retention.prune_all(app, SYSTEM_ACTOR)
    assert calls == [retention.SQLITE_PRUNE_LIMIT if app.db.dialect == "sqlite" else retention.PRUNE_LIMIT]
    assert retention.SQLITE_PRUNE_LIMIT * 10 == retention.PRUNE_LIMIT
