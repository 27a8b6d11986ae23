"""`sscard demo` and `sscard sweep` as a tester runs them: a real process on the test's database."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url

from sscard.demo.run import REPORT_KEYS
from sscard.models.foundation import Card, Person
from tests.conftest import PG_URL, TEST_KEY

SSCARD = str(Path(sys.executable).with_name("sscard"))


def sscard(db_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SSCARD_DATABASE_URL=db_url, SSCARD_SECRET_KEY=TEST_KEY.hex(),
               SSCARD_VAR_DIR=str(tmp_path / "var"), COLUMNS="200")
    return subprocess.run([SSCARD, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def people(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(Person))
    finally:
        engine.dispose()


def test_demo_writes_the_json_file_with_the_documented_keys_and_if_empty_leaves_it_alone(db_url, tmp_path):
    out_file = tmp_path / "demo.json"
    run = sscard(db_url, tmp_path, "demo", "--people", "150", "--seed", "3", "--json", str(out_file))
    assert run.returncode == 0, run.stderr
    report = json.loads(out_file.read_text(encoding="utf-8"))
    assert set(REPORT_KEYS) <= set(report)
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600  # passwords and tokens inside
    assert report["counts"]["persons"] == 150 == people(db_url)
    # stdout names the file but shows no token, password or unmasked number
    assert str(out_file) in run.stdout
    assert report["terminals"][0]["token"] not in run.stdout
    assert report["sample_cardholders"][0]["citizen_id"] not in run.stdout + run.stderr

    again = sscard(db_url, tmp_path, "demo", "--people", "40", "--seed", "4", "--if-empty",
                   "--json", str(tmp_path / "other.json"))
    assert again.returncode == 0, again.stderr
    assert "already has 150 people" in again.stdout
    assert not (tmp_path / "other.json").exists()
    assert people(db_url) == 150

    refused = sscard(db_url, tmp_path, "demo", "--people", "40", "--seed", "4")
    assert refused.returncode == 1 and "already has 150 people" in refused.stderr
    assert people(db_url) == 150


def test_demo_prints_logins_to_stdout_and_the_sweep_records_lapsed_losses_as_the_system(db_url, tmp_path):
    demo = sscard(db_url, tmp_path, "demo", "--people", "400", "--seed", "2")
    assert demo.returncode == 0, demo.stderr
    for needle in ("clerk01", "teller_gsb1", "bsup_jsb", "csup01", "admin", "sscard-demo-2026", "ATM-GSB-001",
                   "HOSP-001", "PHARM-001", "KIOSK-C01", "POS-JSB-001", "query password", "PAN"):
        assert needle in demo.stdout
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            lapsed = conn.scalar(text("SELECT count(*) FROM cards WHERE ss_status = 'temporary_loss' "
                                      "AND loss_expires_at <= :now"), {"now": _now_for(db_url)})
            before = conn.scalar(select(func.count()).select_from(Card).where(Card.ss_status == "temporary_loss"))
        run = sscard(db_url, tmp_path, "sweep")
        assert run.returncode == 0, run.stderr
        assert f"lapsed temporary SS losses recorded: {lapsed};" in run.stdout
        assert "idempotency records older than 7 days removed: 0" in run.stdout  # the demo's are new
        with engine.connect() as conn:
            sweeps = conn.execute(text("SELECT actor_role, channel FROM audit_records "
                                       "WHERE operation = 'loss.sweep_lapsed'")).all()
            left = conn.scalar(select(func.count()).select_from(Card).where(Card.ss_status == "temporary_loss"))
    finally:
        engine.dispose()
    assert [tuple(r) for r in sweeps] == [("system", "system")]
    assert lapsed > 0 and left == before - lapsed


def _now_for(db_url: str):
    from sscard.core.clock import Clock

    now = Clock().now()
    return now.replace(tzinfo=None).isoformat(sep=" ") if db_url.startswith("sqlite") else now


def test_demo_builds_a_missing_schema_first(backend, tmp_path):
    if backend.name == "sqlite":
        url, drop = f"sqlite:///{tmp_path / 'empty.db'}", None
    else:
        name = f"sscard_demo_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

        def drop():
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    try:
        run = sscard(url, tmp_path, "demo", "--people", "30", "--seed", "1", "--json", str(tmp_path / "d.json"))
        assert run.returncode == 0, run.stderr
        assert json.loads((tmp_path / "d.json").read_text())["schema_created"] is True
        engine = create_engine(url)
        assert inspect(engine).has_table("persons") and inspect(engine).has_table("alembic_version")
        engine.dispose()
        assert people(url) == 30
    finally:
        if drop:
            drop()


def test_the_nightly_sweep_seals_the_cards_left_uncollected_past_the_policys_days(app, city, db_url, tmp_path):
    """RULES §3 (docs/RULES.md R3.2): a ready card not collected within card.uncollected_seal_days is sealed,
    and the nightly sweep records it. `sscard sweep` never ran card.seal_uncollected (session 25's rules
    probe): such a card stayed `ready` in the database, listed in the window's queue of cards to hand over
    and counted in its day report as awaiting collection, though collecting it was refused card_sealed."""
    from datetime import timedelta

    from sscard.core.clock import Clock
    from sscard.services import enrolment, production, window

    pid, _cid = city.new_person()
    clerk = city.actor("clerk")
    number = enrolment.apply_first_card(app, clerk, pid, "GSB", "C01")["card_number"]
    fresh = enrolment.apply_first_card(app, clerk, city.new_person("李四")[0], "GSB", "C01")["card_number"]
    production.complete_batch(app, clerk, production.start_batch(app, clerk, "C01")["batch"])
    long_ago = Clock().now() - timedelta(days=app.policy.card.uncollected_seal_days + 1)
    with app.db.session() as s:
        s.execute(text("UPDATE cards SET ready_at = :t WHERE card_number = :n"), {"t": long_ago, "n": number})
        s.execute(text("UPDATE cards SET ready_at = :t WHERE card_number = :n"),  # the sweep runs on the wall clock
                  {"t": Clock().now() - timedelta(days=1), "n": fresh})
    run = sscard(db_url, tmp_path, "sweep")
    assert run.returncode == 0, run.stderr
    assert "uncollected cards sealed: 1;" in run.stdout
    with app.db.session() as s:
        states = dict(s.execute(select(Card.card_number, Card.ss_status)
                                .where(Card.card_number.in_([number, fresh]))).all())
    assert states == {number: "sealed", fresh: "ready"}
    listed = [c["card_number"] for c in window.queue(app, clerk)["ready"]]
    assert len(listed) == 1 and listed[0][-2:] == fresh[-2:]
