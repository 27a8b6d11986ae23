"""`sscard demo --history-months N`: months of payments, pensions and contributions that keep the ledger
balanced, stay within every account's balance and land in their months' partitions (PostgreSQL)."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select, text

from sscard.core.roles import CLI_OPERATOR
from sscard.demo.run import run_demo
from sscard.models.foundation import AuditRecord
from sscard.models.insurance import Contribution
from sscard.services import audit_chain, banking, ledger, partitions
from tests.conftest import TEST_KEY


def test_three_months_of_history_balance_the_ledger_and_fill_each_month(app):
    report = run_demo(app, 300, seed=3, history_months=3, history_rates={"payments": 2, "insured_share": 0.5})
    history = report["areas"]["history"]
    assert history["payments"] > 300  # contributions: the insurance demo's three years already cover 300 people
    assert banking.ledger_check(app, CLI_OPERATOR)["ok"]
    months = [partitions.add_months(partitions.month_start(app.clock.today()), -n).strftime("%Y-%m") for n in (3, 2, 1)]
    assert history["months"] == [months[0], months[-1]]
    with app.db.session() as s:
        days = s.scalars(select(ledger.TRANSFERS.c.day).where(ledger.TRANSFERS.c.code == "payment")).all()
        by_month = Counter(d.strftime("%Y-%m") for d in days)
        purchases = s.scalar(select(func.count()).select_from(AuditRecord).where(AuditRecord.operation == "bank.purchase"))
        contribution_months = set(s.scalars(select(Contribution.month).distinct()).all())
        overdrawn = s.scalar(select(func.count()).select_from(ledger.ACCOUNTS).where(
            ledger.ACCOUNTS.c.no_overdraft, ledger.ACCOUNTS.c.credits_posted < ledger.ACCOUNTS.c.debits_posted))
    assert sorted(by_month) == months and purchases == history["payments"] == sum(by_month.values())
    assert set(months) <= contribution_months and overdrawn == 0
    # every record the bulk load wrote (COPY on PostgreSQL) was queued by the log's own trigger, and seals
    with app.db.session() as s:
        records = s.scalar(select(func.count()).select_from(AuditRecord))
    assert audit_chain.verify(app)["unsealed"] == records
    chain = audit_chain.verify(app, seal_first=True)
    assert chain["ok"] and chain["checked"] == records > purchases and chain["unsealed"] == 0
    if app.db.engine.dialect.name == "postgresql":
        with app.db.engine.connect() as conn:
            in_default = conn.scalar(text("SELECT count(*) FROM ledger_transfers_default WHERE code = 'payment'"))
        assert in_default == 0


def test_the_same_seed_gives_the_same_history_in_a_second_database(app, backend, settings, clock):
    from sscard.services.app import build_app

    def payments(a) -> list[tuple]:
        with a.db.session() as s:
            return s.execute(select(ledger.TRANSFERS.c.amount, ledger.TRANSFERS.c.day, ledger.TRANSFERS.c.transfer_id)
                             .where(ledger.TRANSFERS.c.code == "payment").order_by(ledger.TRANSFERS.c.id)).all()

    first = run_demo(app, 120, seed=5, history_months=2)["areas"]["history"]
    first_payments = payments(app)
    app.close()
    other = build_app(settings.__class__(database_url=backend.fresh_url(), secret_key=settings.secret_key,
                                         var_dir=settings.var_dir, fast_hashing=True), clock=clock)
    try:
        assert run_demo(other, 120, seed=5, history_months=2)["areas"]["history"] == first
        assert payments(other) == first_payments and first_payments
    finally:
        other.close()


def test_the_payments_rate_is_counted_in_tenths_and_never_a_float():
    """The history's payment code counts in integers (as it moves integer fen): a rate is whole payments
    per ten months, from an int or decimal text; a float, a finer rate or a negative one is refused."""
    from decimal import Decimal

    from sscard.demo.history import payments_per_ten_months

    assert [payments_per_ten_months(r) for r in (2, "2.5", Decimal("0.3"), "0", 100)] == [20, 25, 3, 0, 1000]
    for bad in (2.5, True, None):
        with pytest.raises(TypeError):
            payments_per_ten_months(bad)
    for bad in ("2.55", "-1", "x", "NaN", "Infinity", "101"):
        with pytest.raises(ValueError):
            payments_per_ten_months(bad)


def test_both_ways_of_loading_history_write_without_serializable_predicate_locks(app, monkeypatch, tmp_path):
    """A year of history over 50,000 cardholders once ran out of PostgreSQL's predicate-lock table (shared
    by the whole server) under the engine's SERIALIZABLE default: the history loads in READ COMMITTED, as
    the demo's other bulk loads do, from `sscard demo --history-months` and from `sscard demo-history`."""
    from typer.testing import CliRunner

    import sscard.cli as cli
    from sscard.demo import history

    levels: list[str | None] = []

    def record(engine, *args, **kwargs) -> dict:
        levels.append(engine.get_execution_options().get("isolation_level"))
        return {}

    monkeypatch.setattr(history, "populate", record)
    run_demo(app, 20, seed=3, history_months=1)
    monkeypatch.setenv("SSCARD_DATABASE_URL", app.settings.database_url)
    monkeypatch.setenv("SSCARD_SECRET_KEY", TEST_KEY.hex())
    monkeypatch.setenv("SSCARD_VAR_DIR", str(tmp_path))
    if not any(c.name == "demo-history" for c in cli.app.registered_commands):
        cli._register_area_commands()
    assert CliRunner().invoke(cli.app, ["demo-history", "--months", "1"]).exit_code == 0
    expected = "READ COMMITTED" if app.db.dialect == "postgresql" else None
    assert levels == [expected, expected]
