"""The append-only tables partitioned by month on PostgreSQL (migration 0010, services/partitions.py), plain
on SQLite; the partitions job; and the uniqueness that partitioning must not lose."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from sscard.core.roles import CLI_OPERATOR, SYSTEM_ACTOR
from sscard.models.medical import MedicalSettlement
from sscard.services import audit_chain, banking, insurance, partitions
from tests.medical import helpers as h

EMPLOYER = ("91330106MA2H000077", "杭州示例科技有限公司")


def _postgres_only(app) -> None:
    if app.db.engine.dialect.name != "postgresql":
        pytest.skip("partitions exist on PostgreSQL only")


def _partition_of(app, table: str, where: str, params: dict) -> set[str]:
    with app.db.engine.connect() as conn:
        return {r[0] for r in conn.execute(text(f"SELECT tableoid::regclass::text FROM {table} WHERE {where}"), params)}  # noqa: S608 (names from the fixed table list)


def test_append_only_tables_are_partitioned_by_month_with_a_default_on_postgres_and_plain_on_sqlite(app):
    with app.db.engine.connect() as conn:
        for spec in partitions.TABLES:
            if app.db.engine.dialect.name == "postgresql":
                assert partitions.is_partitioned(conn, spec.table), spec.table
                assert conn.scalar(text("SELECT to_regclass(:n)"), {"n": spec.default}) is not None
            else:
                kind = conn.scalar(text("SELECT type FROM sqlite_master WHERE name = :t"), {"t": spec.table})
                assert kind == "table", spec.table
    if app.db.engine.dialect.name != "postgresql":
        assert partitions.ensure(app.db.engine, app.clock.today()) == {"created": [], "existing": 0, "moved": {},
                                                                        "skipped": {}}


def test_the_job_creates_months_ahead_once_and_a_second_run_creates_nothing(app):
    _postgres_only(app)
    today = date(2031, 11, 20)  # months no test has created
    first = partitions.ensure(app.db.engine, today, months_ahead=2)
    expected = {s.partition(m) for s in partitions.TABLES for m in (date(2031, 11, 1), date(2031, 12, 1), date(2032, 1, 1))}
    assert set(first["created"]) == expected and not first["skipped"]
    second = partitions.ensure(app.db.engine, today, months_ahead=2)
    assert second["created"] == [] and second["existing"] == len(expected) and not second["skipped"]
    with app.db.engine.connect() as conn:
        bound = conn.scalar(text("SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = :n"),
                            {"n": "audit_records_p2031_12"})
    assert bound == "FOR VALUES FROM ('2031-11-30 16:00:00+00') TO ('2031-12-31 16:00:00+00')"  # Shanghai midnights


def test_rows_land_in_the_partition_of_their_shanghai_month(city, app, clock):
    _postgres_only(app)
    # 23:30 on 31 March in Shanghai
    clock.set(datetime(2026, 3, 31, 15, 30, tzinfo=UTC))
    partitions.ensure(app.db.engine, app.clock.today(), months_ahead=1, months_back=1)  # February's too
    h.set_up(city)
    card = city.issued_card()
    h.activate(city, card, opening_fen=10_000)  # a pension credit: a ledger transfer of 2026-03-31
    h.insure(app, card.person_id, 20_000, month="2026-03")
    insurance.record_month(app, SYSTEM_ACTOR, card.person_id, "2026-02", *EMPLOYER, 600_000, ["pension"])
    clock.set(datetime(2026, 3, 31, 16, 30, tzinfo=UTC))  # 00:30 on 1 April in Shanghai, still March in UTC
    h.pay(app, h.terminal(city, "HOSP-H3-1"), card.card_number, h.lines(covered=3_000), key="april")
    assert _partition_of(app, "ledger_transfers", "code = 'pension'", {}) == {"ledger_transfers_p2026_03"}
    assert _partition_of(app, "medical_contribution_credits", "person_id = :p", {"p": card.person_id}) == {
        "medical_contribution_credits_p2026_03"}
    assert _partition_of(app, "insurance_contributions", "person_id = :p", {"p": card.person_id}) == {
        "insurance_contributions_p2026_02"}
    assert _partition_of(app, "medical_settlements", "person_id = :p", {"p": card.person_id}) == {
        "medical_settlements_p2026_04"}
    assert _partition_of(app, "audit_records", "operation = 'medical.settle'", {}) == {"audit_records_p2026_04"}
    assert _partition_of(app, "audit_records", "operation = 'bank.activate'", {}) == {"audit_records_p2026_03"}
    audit_chain.seal(app)  # a seal sits in the month of its record (migration 0023)
    for operation, month in (("medical.settle", "2026_04"), ("bank.activate", "2026_03")):
        assert _partition_of(app, "audit_seals", "record_id IN (SELECT id FROM audit_records WHERE operation = :o)",
                             {"o": operation}) == {f"audit_seals_p{month}"}


def test_a_write_for_a_month_without_its_partition_lands_in_default_and_the_job_moves_it_into_its_own(
        city, app, clock):
    _postgres_only(app)
    clock.set(datetime(2033, 6, 10, 2, 0, tzinfo=UTC))  # no partition for June 2033
    h.set_up(city)
    card = city.issued_card()
    h.activate(city, card, opening_fen=10_000)  # a ledger transfer of June 2033
    h.insure(app, card.person_id, 20_000, month="2033-06")
    h.pay(app, h.terminal(city, "HOSP-H3-1"), card.card_number, h.lines(covered=3_000), key="june")
    sealed = audit_chain.seal(app)  # June's seals go to DEFAULT with their records
    assert _partition_of(app, "medical_contribution_credits", "person_id = :p", {"p": card.person_id}) == {
        "medical_contribution_credits_default"}
    in_default = {t["table"]: t["in_default"] for t in partitions.status(app.db.engine)}
    assert in_default["medical_contribution_credits"] == 1 and in_default["ledger_transfers"] == 1
    at_start = partitions.ensure(app.db.engine, app.clock.today(), months_ahead=1, move=False, current=False)
    assert at_start["created"] and all(n.endswith("2033_07") for n in at_start["created"])  # the server's start:
    assert not at_start["moved"] and not at_start["skipped"]  # months to come only, this one left to cron
    held = partitions.ensure(app.db.engine, app.clock.today(), months_ahead=0, move=False)
    assert "ledger_transfers_p2033_06" in held["skipped"] and not held["moved"]
    out = partitions.ensure(app.db.engine, app.clock.today(), months_ahead=0)
    assert out["moved"]["ledger_transfers_p2033_06"] == 1 and "medical_settlements_p2033_06" in out["moved"]
    assert not out["skipped"] and "audit_records_p2033_06" in out["created"]
    assert sealed and out["moved"]["audit_seals_p2033_06"] == out["moved"]["audit_records_p2033_06"] > 0
    assert audit_chain.verify(app)["ok"]  # the chain reads the same across the move
    with app.db.engine.connect() as conn:  # (the city's set-up of January 2026 stays in DEFAULT: no such month)
        assert {s.table: partitions._stranded(conn, s, date(2033, 6, 1)) for s in partitions.TABLES} == dict.fromkeys(
            in_default, 0)
    assert _partition_of(app, "ledger_transfers", "code = 'pension'", {}) == {"ledger_transfers_p2033_06"}
    assert _partition_of(app, "medical_settlements", "person_id = :p", {"p": card.person_id}) == {
        "medical_settlements_p2033_06"}
    with pytest.raises(Exception, match="immutable"), app.db.engine.begin() as conn:  # the trigger is back on
        conn.execute(text("UPDATE ledger_transfers SET amount = 1 WHERE code = 'pension'"))
    again = partitions.ensure(app.db.engine, app.clock.today(), months_ahead=0)
    assert again["created"] == [] and again["moved"] == {}
    assert banking.ledger_check(app, CLI_OPERATOR)["ok"]


def test_status_tells_history_older_than_the_first_month_from_a_month_the_job_did_not_make(city, app, clock, tmp_path):
    """Rows in DEFAULT older than a table's first monthly partition are history (a city's past loaded
    before its partitions, arrears): by choice, not an alert. Rows of a later month without its partition
    are what the job failed to make ahead: `in_default_late`, what `sscard partitions status` exits 1 on."""
    _postgres_only(app)
    h.set_up(city)
    clock.set(datetime(2001, 3, 10, 2, 0, tzinfo=UTC))  # older than any partition
    h.activate(city, city.issued_card(), opening_fen=10_000)
    clock.set(datetime(2034, 2, 10, 2, 0, tzinfo=UTC))
    partitions.ensure(app.db.engine, date(2034, 1, 1), months_ahead=0)  # January 2034 made, February not
    h.activate(city, city.issued_card("李四"), opening_fen=10_000)  # a transfer of February 2034: late
    transfers = next(t for t in partitions.status(app.db.engine) if t["table"] == "ledger_transfers")
    assert transfers["first_month"] is not None and "2001-03" < transfers["first_month"] < "2034-02"
    with app.db.engine.connect() as conn:
        old = conn.scalar(text("SELECT count(*) FROM ledger_transfers_default WHERE day < '2001-04-01'"))
        late = conn.scalar(text("SELECT count(*) FROM ledger_transfers_default WHERE day >= :f"),
                           {"f": date.fromisoformat(transfers["first_month"] + "-01")})
    assert old >= 1 and late >= 1
    assert (transfers["in_default_history"], transfers["in_default_late"]) == (old, late)
    assert transfers["in_default"] == old + late
    assert "the job did not run ahead" in _status_cli(app, tmp_path, exit_code=1)
    out = partitions.ensure(app.db.engine, date(2034, 2, 10), months_ahead=0)  # the job runs: late moved in
    assert out["moved"]["ledger_transfers_p2034_02"] == late
    after = next(t for t in partitions.status(app.db.engine) if t["table"] == "ledger_transfers")
    assert (after["in_default_history"], after["in_default_late"]) == (old, 0)
    if not any(t["in_default_late"] for t in partitions.status(app.db.engine)):  # (other tables: other tests' rows)
        shown = _status_cli(app, tmp_path, exit_code=0)
        assert f"{old} older than {after['first_month']}: history" in shown and "did not run ahead" not in shown


def _status_cli(app, tmp_path, exit_code: int) -> str:
    """`sscard partitions status` over the test's database, as an operator runs it: its output."""
    from typer.testing import CliRunner

    from sscard.cli import _register_area_commands
    from sscard.cli import app as cli_app

    if not any(g.name == "partitions" for g in cli_app.registered_groups):
        _register_area_commands()  # (what `main` does before the command runs)
    env = {"SSCARD_DATABASE_URL": app.db.engine.url.render_as_string(hide_password=False),
           "SSCARD_VAR_DIR": str(tmp_path), "SSCARD_CONFIG": "", "COLUMNS": "300"}
    result = CliRunner().invoke(cli_app, ["partitions", "status"], env=env)
    assert result.exit_code == exit_code, result.output
    return result.output


def _settlement(app, city) -> MedicalSettlement:
    """A settlement made through the service, to copy a second row from."""
    h.set_up(city)
    card = city.issued_card()
    h.insure(app, card.person_id, 50_000)
    h.pay(app, h.terminal(city, "HOSP-H3-1"), card.card_number, h.lines(covered=3_000), key="first")
    with app.db.session() as s:
        return s.scalar(select(MedicalSettlement))


@pytest.mark.parametrize("column", ["quote_nonce", "code"])
def test_a_settlements_quote_or_code_used_in_one_month_is_refused_in_a_later_month(city, app, column):
    first = _settlement(app, city)
    values = {c.key: getattr(first, c.key) for c in MedicalSettlement.__table__.columns if c.key != "id"}
    values |= {"at": datetime(2026, 2, 1, 0, 0, 5, tzinfo=UTC), "code": "S-OTHER", "quote_nonce": "other-nonce"}
    values[column] = getattr(first, column)  # the one value that must stay unique across months
    with pytest.raises(IntegrityError), app.db.session() as s:
        s.add(MedicalSettlement(**values))
        s.commit()


def test_a_settlement_refunded_in_one_month_cannot_be_refunded_again_in_another(city, app):
    first = _settlement(app, city)
    base = {c.key: getattr(first, c.key) for c in MedicalSettlement.__table__.columns if c.key != "id"}
    with app.db.session() as s:
        s.add(MedicalSettlement(**(base | {"kind": "refund", "code": "R-1", "quote_nonce": None,
                                           "reverses_id": first.id, "at": datetime(2026, 1, 20, tzinfo=UTC)})))
        s.commit()
    with pytest.raises(IntegrityError), app.db.session() as s:
        s.add(MedicalSettlement(**(base | {"kind": "refund", "code": "R-2", "quote_nonce": None,
                                           "reverses_id": first.id, "at": datetime(2026, 3, 2, tzinfo=UTC)})))
        s.commit()


def test_partition_names_and_bounds_follow_the_shanghai_month():
    spec = partitions.TABLES[1]
    assert spec.partition(date(2027, 1, 1)) == "audit_records_p2027_01"
    assert spec.bound(date(2027, 1, 1)) == "'2027-01-01 00:00:00+08'"
    assert replace(spec, kind="month").bound(date(2027, 1, 1)) == "'2027-01'"
    assert partitions.add_months(date(2026, 11, 1), 3) == date(2027, 2, 1)
    assert partitions.add_months(date(2026, 1, 1), -1) == date(2025, 12, 1)


def test_the_migration_goes_down_to_plain_tables_with_their_keys_and_up_again(app):
    """On a database of its own (the session's is shared): 0010 down restores the plain tables, their
    global unique keys and self foreign keys; up partitions them again."""
    _postgres_only(app)
    import uuid

    from alembic import command
    from sqlalchemy import create_engine

    from sscard.db import Database, alembic_config

    admin = create_engine(app.db.engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"sscard_test_mig_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = app.db.engine.url.set(database=name).render_as_string(hide_password=False)
    db = Database(url)
    try:
        db.migrate()
        cfg = alembic_config(url)

        def kinds() -> dict:
            with db.engine.connect() as conn:
                return dict(conn.execute(text("SELECT relname, relkind FROM pg_class WHERE relname = ANY(:t)"),
                                         {"t": [s.table for s in partitions.TABLES]}).all())

        assert set(kinds().values()) == {"p"}
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0009_english_names")
        assert set(kinds().values()) == {"r"}
        with db.engine.connect() as conn:
            unique = conn.scalar(text("SELECT pg_get_indexdef('uq_ledger_transfers_transfer_id'::regclass)"))
            fks = set(conn.scalars(text("SELECT conname FROM pg_constraint WHERE contype = 'f' AND conrelid = "
                                        "ANY(ARRAY['ledger_transfers'::regclass, 'medical_settlements'::regclass]) "
                                        "AND confrelid = conrelid")))
        assert unique.endswith("(transfer_id)")
        assert fks == {"fk_ledger_transfers_pending_id_ledger_transfers",
                       "fk_medical_settlements_reverses_id_medical_settlements"}
        db.migrate()
        assert set(kinds().values()) == {"p"}
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_the_seals_migration_goes_down_to_a_plain_table_and_up_again_keeping_the_chain(app, city):
    """Migration 0023 on a sealed chain, in the session's database: down, the seals are a plain table with
    the model's keys (seal_seq; record_id unique) and the chain verifies; up, they are partitioned by their
    records' months, each seal in its record's month, with the partition key in both keys, and the chain
    still verifies and takes new seals."""
    _postgres_only(app)
    from alembic import command

    from sscard.db import alembic_config

    city.issued_card()
    sealed = audit_chain.seal(app)
    assert sealed > 0 and audit_chain.verify(app)["ok"]
    cfg = alembic_config(app.db.engine.url.render_as_string(hide_password=False))

    def keys() -> tuple[str, set[str]]:
        with app.db.engine.connect() as conn:
            kind = conn.scalar(text("SELECT relkind FROM pg_class WHERE relname = 'audit_seals'"))
            defs = set(conn.scalars(text("SELECT pg_get_indexdef(indexrelid) FROM pg_index "
                                         "WHERE indrelid = 'audit_seals'::regclass AND indisunique")))
        return kind, {d.split(" USING btree ")[1] for d in defs}

    try:
        with app.db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0022_audit_immutable")
        assert keys() == ("r", {"(seal_seq)", "(record_id)"})
        assert audit_chain.verify(app) == {**audit_chain.verify(app), "ok": True, "checked": sealed}
    finally:
        with app.db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    assert keys() == ("p", {"(seal_seq, record_at)", "(record_id, record_at)"})
    with app.db.engine.connect() as conn:
        months = set(conn.execute(text(
            "SELECT s.tableoid::regclass::text, to_char(r.at AT TIME ZONE 'Asia/Shanghai', 'YYYY_MM') "
            "FROM audit_seals s JOIN audit_records r ON r.id = s.record_id AND r.at = s.record_at")).all())
    assert months and all(part == f"audit_seals_p{month}" for part, month in months)  # (none in DEFAULT)
    city.new_person("王五")
    assert audit_chain.seal(app) > 0
    report = audit_chain.verify(app)
    assert report["ok"] and report["checked"] > sealed


def test_status_on_sqlite_says_there_is_nothing_to_partition(app, tmp_path):
    """Session 21's operator: `sscard partitions status` on SQLite printed nothing at all and exited 0."""
    if app.db.dialect != "sqlite":
        pytest.skip("SQLite's plain tables")
    assert "SQLite: plain tables, nothing to partition" in _status_cli(app, tmp_path, 0)
