"""The tamper-evident audit chain: sealed records verify; an edited, deleted or late record is caught or
sealed in its turn; concurrent writers all end up sealed exactly once."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select, text, update
from typer.testing import CliRunner

from sscard.core.audit_chain import GENESIS, canonical, link
from sscard.core.identifiers import make_citizen_id
from sscard.models.foundation import AuditRecord
from sscard.services import audit_chain, enrolment, loss
from tests.conftest import TEST_KEY

AUDITS = AuditRecord.__table__


def _ids(app) -> list[int]:
    with app.db.session() as s:
        return list(s.scalars(select(AuditRecord.id).order_by(AuditRecord.id)))


def _sql(app, statement: str, **params) -> None:
    with app.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_a_sealed_chain_verifies_and_counts_what_is_not_yet_sealed(city, app):
    card = city.issued_card()
    before = audit_chain.verify(app)
    assert before["ok"] and before["checked"] == 0 and before["unsealed"] == len(_ids(app)) > 5
    assert audit_chain.seal(app) == before["unsealed"]
    loss.report_formal_loss(app, city.actor("clerk"), card.card_number, presented_citizen_id=card.citizen_id)
    out = audit_chain.verify(app)
    assert out["ok"] and out["checked"] == before["unsealed"] and out["unsealed"] == 1
    out = audit_chain.verify(app, seal_first=True)
    assert out["ok"] and out["checked"] == len(_ids(app)) and out["unsealed"] == 0
    with app.db.session() as s:
        seqs = list(s.scalars(select(AuditRecord.seal_seq).order_by(AuditRecord.id)))
        first = s.execute(select(AUDITS).where(AUDITS.c.seal_seq == 1)).mappings().one()
    assert seqs == list(range(1, len(seqs) + 1))  # one writer here: seal order is id order
    assert first["prev_hash"] == GENESIS and first["hash"] == link(GENESIS, first)
    assert out["head"]["seal_seq"] == len(seqs)
    assert audit_chain.seal(app) == 0  # nothing left: sealing again changes nothing


@pytest.mark.parametrize("column,value", [
    ("result", "'ok-but-not'"), ("actor_id", "'999'"), ("actor_role", "'teller'"), ("person_id", "424242"),
    ("object_id", "'X'"), ("idempotency_key", "'k'"), ("place", "'C02'"),
])
def test_editing_a_column_of_a_sealed_record_with_sql_makes_verify_name_that_record(city, app, column, value):
    city.issued_card()
    audit_chain.seal(app)
    ids = _ids(app)
    with app.db.session() as s:  # a clerk's record about the person, in the middle of the chain
        victim = s.scalar(select(func.max(AuditRecord.id)).where(AuditRecord.person_id.is_not(None),
                                                                 AuditRecord.place == "C01"))
    _sql(app, f"UPDATE audit_records SET {column} = {value} WHERE id = :id", id=victim)  # noqa: S608 (test constants)
    out = audit_chain.verify(app)
    assert not out["ok"] and out["broken"]["id"] == victim and out["broken"]["reason"] == "hash"
    assert out["checked"] == ids.index(victim) + 1


def test_editing_the_detail_or_the_time_of_a_sealed_record_is_caught(city, app):
    city.issued_card()
    audit_chain.seal(app)
    ids = _ids(app)
    with app.db.engine.begin() as conn:
        detail = conn.execute(select(AUDITS.c.detail).where(AUDITS.c.id == ids[2])).scalar_one()
        conn.execute(update(AUDITS).where(AUDITS.c.id == ids[2]).values(detail={**detail, "note": "x"}))
    assert audit_chain.verify(app)["broken"]["id"] == ids[2]
    with app.db.engine.begin() as conn:
        conn.execute(update(AUDITS).where(AUDITS.c.id == ids[2]).values(detail=detail))  # put it back
    assert audit_chain.verify(app)["ok"]
    with app.db.engine.begin() as conn:
        at = conn.execute(select(AUDITS.c.at).where(AUDITS.c.id == ids[1])).scalar_one()
        conn.execute(update(AUDITS).where(AUDITS.c.id == ids[1]).values(at=at.replace(microsecond=at.microsecond ^ 1)))
    assert audit_chain.verify(app)["broken"]["id"] == ids[1]


def test_deleting_a_record_in_the_middle_makes_verify_name_the_record_after_the_gap(city, app):
    city.issued_card()
    audit_chain.seal(app)
    ids = _ids(app)
    _sql(app, "DELETE FROM audit_records WHERE id = :id", id=ids[4])
    out = audit_chain.verify(app)
    assert not out["ok"] and out["broken"]["id"] == ids[5] and out["broken"]["reason"] == "gap"
    assert out["checked"] == 5


def test_a_rehashed_record_still_breaks_the_link_to_the_next_one(city, app):
    city.issued_card()
    audit_chain.seal(app)
    ids = _ids(app)
    with app.db.engine.begin() as conn:
        row = conn.execute(select(AUDITS).where(AUDITS.c.id == ids[2])).mappings().one()
        forged = {**row, "result": "forged"}
        conn.execute(update(AUDITS).where(AUDITS.c.id == ids[2])
                     .values(result="forged", hash=link(row["prev_hash"], forged)))
    out = audit_chain.verify(app)
    assert out["broken"] == {"id": ids[3], "seal_seq": 4, "reason": "prev_hash"}


def test_canonical_bytes_are_the_same_on_every_database(app):
    """A record written and read back hashes to a constant: SQLite and PostgreSQL give the same bytes."""
    at = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    with app.db.session() as s:
        s.add(AuditRecord(at=at, actor_kind="staff", actor_id="7", actor_role="clerk", on_behalf_of=None,
                          attorney_id=None, channel="window", place="", operation="x.y", object_type="card",
                          object_id="", person_id=3, before="", after="normal", result="ok", idempotency_key=None,
                          detail={"z": [1, "二"], "a": {"n": None, "t": True}}))
    audit_chain.seal(app)
    with app.db.session() as s:
        row = s.execute(select(AUDITS)).mappings().one()
    assert canonical(row) == (
        '[1,1,"2026-03-04T05:06:07.890123Z","staff","7","clerk",null,null,"window","","x.y","card","",3,"",'
        '"normal","ok",null,{"a":{"n":null,"t":true},"z":[1,"二"]}]').encode()
    assert row["hash"] == "0bf9d2e1bac7e37f5b1f991b476ef0f01102276c14aa6f25d2c4683aebbab521"


def test_a_record_committed_late_with_a_lower_id_is_sealed_after_the_others(city, app):
    if app.db.dialect != "postgresql":
        pytest.skip("SQLite has one writer: a lower id cannot commit after a higher one")
    city.issued_card()
    audit_chain.seal(app)
    with app.db.session() as late:
        late.add(AuditRecord(at=app.clock.now(), actor_kind="system", actor_id="system", actor_role="system",
                             channel="system", place="", operation="x.late", object_type="", object_id="",
                             before="", after="", result="ok", detail={}))
        late.flush()  # its id is taken now; it commits at the end of the block
        city.new_person("赵六")  # a later id, committed first
        assert audit_chain.seal(app) == 1
    assert audit_chain.seal(app) == 1
    out = audit_chain.verify(app)
    with app.db.session() as s:
        order = list(s.scalars(select(AuditRecord.operation).order_by(AuditRecord.seal_seq.desc()).limit(2)))
        ids = list(s.scalars(select(AuditRecord.id).order_by(AuditRecord.seal_seq.desc()).limit(2)))
    assert out["ok"] and out["unsealed"] == 0
    assert order == ["x.late", "person.register"] and ids[0] < ids[1]


def test_concurrent_writers_are_all_sealed_exactly_once_while_a_sealer_runs(city, app):
    clerk = city.actor("clerk")
    sealer = audit_chain.Sealer(app, every=0.02, idle=0.02)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(12):
                cid = make_citizen_id("330106", date(1970 + n, 1, 1 + i), 100 + i * 2)
                enrolment.register_person(app, clerk, cid, f"王{n}{i}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sealer.close()
    assert not errors
    out = audit_chain.verify(app, seal_first=True)
    with app.db.session() as s:
        total = s.scalar(select(func.count()).select_from(AuditRecord))
        seqs = sorted(s.scalars(select(AuditRecord.seal_seq)))
    assert out["ok"] and out["checked"] == total and out["unsealed"] == 0
    assert seqs == list(range(1, total + 1))
    assert sealer.sealed > 0  # the background sealer did part of it


def test_the_server_seals_in_the_background(client, city, app):
    import time

    city.issued_card()
    deadline = time.monotonic() + 10
    while audit_chain.verify(app)["unsealed"] and time.monotonic() < deadline:
        time.sleep(0.1)
    out = audit_chain.verify(app)
    assert out["ok"] and out["unsealed"] == 0 and out["checked"] > 5


@pytest.fixture
def cli(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SSCARD_DATABASE_URL", db_url)
    monkeypatch.setenv("SSCARD_SECRET_KEY", TEST_KEY.hex())
    monkeypatch.setenv("SSCARD_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("SSCARD_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("COLUMNS", "200")
    from sscard import cli as cli_pkg

    if not any(g.name == "audit" for g in cli_pkg.app.registered_groups):
        cli_pkg._register_area_commands()
    return lambda *args: CliRunner().invoke(cli_pkg.app, list(args))


def test_audit_verify_on_the_command_line_exits_non_zero_naming_the_broken_record(city, app, cli):
    city.issued_card()
    total = len(_ids(app))
    out = cli("audit", "verify")
    assert out.exit_code == 0, out.output
    assert f"checked 0 sealed records; {total} not yet sealed" in out.output
    out = cli("audit", "seal")
    assert out.exit_code == 0 and f"sealed {total} records in " in out.output
    city.new_person("李四")  # one more record, unsealed
    out = cli("audit", "verify", "--seal")
    assert out.exit_code == 0 and f"checked {total + 1} sealed records; 0 not yet sealed" in out.output
    victim = _ids(app)[2]
    _sql(app, "UPDATE audit_records SET actor_id = 'someone' WHERE id = :id", id=victim)
    out = cli("audit", "verify")
    assert out.exit_code == 1 and f"audit record id {victim}" in out.output


def test_a_rounds_seal_update_plans_only_the_partitions_its_records_are_in(city, app):
    """PostgreSQL: the sealer's UPDATE names its records' first and last `at`, so the planner prunes the
    monthly partitions to those (it planned and locked every one, with all its indexes, every round); and
    records of two months in one round are both sealed."""
    if app.db.dialect != "postgresql":
        pytest.skip("SQLite's audit log has no partitions")
    city.issued_card()
    audit_chain.seal(app)
    now = app.clock.now()
    with app.db.session() as s:
        parts = s.scalar(text("SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit_records'::regclass"))
        row = s.execute(select(AuditRecord.id, AuditRecord.at).order_by(AuditRecord.id.desc()).limit(1)).one()
        sql = audit_chain._SET_SEAL_PG.text
        values = {"ids": [row.id], "ats": [row.at], "seqs": [1], "prevs": ["p"], "hashes": ["h"],
                  "first_at": row.at, "last_at": row.at}
        plan = [r[0] for r in s.execute(text("EXPLAIN " + sql), values)]
        s.rollback()
    updated = [line for line in plan if line.strip().startswith("Update on audit_records_")]
    assert parts > 3 and len(updated) == 1, plan
    with app.db.session() as s:  # a record of last month and one of now, sealed in one round
        for at in (datetime(now.year - 1, 12, 15, 4, tzinfo=UTC), now):
            s.add(AuditRecord(at=at, actor_kind="system", actor_id="system", actor_role="system", channel="system",
                              place="", operation="x.months", object_type="", object_id="", before="", after="",
                              result="ok", detail={}))
    assert audit_chain.seal(app) == 2
    assert audit_chain.verify(app)["ok"]


def test_a_servers_rounds_read_recent_partitions_and_every_partition_once_in_a_while(city, app):
    """The server's sealer reads the partitions from the hour before the clock's, and all of them in its
    first round and once every FULL_EVERY seconds: a record written with an older time (a back-filled
    history) waits for that round, then is sealed, and the chain verifies. (PostgreSQL; SQLite's rounds
    always read everything, having no partitions.)"""
    from datetime import timedelta

    city.issued_card()
    rounds = audit_chain._Rounds()
    assert audit_chain._round(app, 0.1, 1.0, rounds)[0] > 0  # the first round: everything
    with app.db.session() as s:
        s.add(AuditRecord(at=app.clock.now() - timedelta(days=40), actor_kind="system", actor_id="system",
                          actor_role="system", channel="system", place="", operation="x.backfilled",
                          object_type="", object_id="", before="", after="", result="ok", detail={}))
    city.new_person("钱七")  # and a recent one
    done, _wait = audit_chain._round(app, 0.1, 1.0, rounds)
    postgres = app.db.dialect == "postgresql"
    assert done == (1 if postgres else 2)
    assert audit_chain.verify(app)["unsealed"] == (1 if postgres else 0)
    if postgres:
        rounds._full_at -= audit_chain.FULL_EVERY  # the last full round, FULL_EVERY seconds ago
        assert audit_chain._round(app, 0.1, 1.0, rounds)[0] == 1
    out = audit_chain.verify(app)
    assert out["ok"] and out["unsealed"] == 0
