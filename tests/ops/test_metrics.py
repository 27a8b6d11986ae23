"""/metrics: requests counted by route template and status (the terminals' lane included), never a card
number, PAN or citizen ID in a label; the writer's and the database's figures; who may read it; and with
several workers, every worker's requests in whichever worker answers the scrape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sscard import metrics
from tests.conftest import TEST_KEY
from tests.ledger.helpers import PIN, activated, terminal_token
from tests.ledger.test_crash import free_port

TOKEN = "metrics-test-token"


def scrape(client) -> dict[tuple[str, tuple], float]:
    r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_by_route_template_with_no_identifier_in_any_label(city, client, monkeypatch, backend):
    monkeypatch.setenv(metrics.TOKEN_ENV, TOKEN)
    card = activated(city, opening_fen=100_000)
    pos = {"Authorization": f"Bearer {terminal_token(city, 'POS-1')}"}
    payments = ("sscard_http_requests_total",
                dict(method="POST", route="/api/v1/terminal/payments", status="200"))
    before = scrape(client)

    for i in range(3):  # through the terminals' lane
        r = client.post("/api/v1/terminal/payments", json={"pan": card.pan, "amount_fen": 100, "pin": PIN},
                        headers={**pos, "Idempotency-Key": f"m-{i}"})
        assert r.status_code == 200, r.text
    assert client.post("/api/v1/terminal/payments", content=b"{", headers={**pos, "Idempotency-Key": "bad",
                       "Content-Type": "application/json"}).status_code == 422  # FastAPI answers this one
    assert client.get(f"/api/v1/cards/{card.card_number}").status_code == 401
    assert client.get(f"/no/such/{card.pan}/{card.citizen_id}").status_code == 404

    after = scrape(client)
    assert value(after, payments[0], **payments[1]) - value(before, payments[0], **payments[1]) == 3
    assert value(after, "sscard_http_requests_total", method="POST", route="/api/v1/terminal/payments",
                 status="422") >= 1
    assert value(after, "sscard_http_requests_total", method="GET", route="/api/v1/cards/{card_number}",
                 status="401") >= 1
    assert value(after, "sscard_http_requests_total", method="GET", route=metrics.UNMATCHED, status="404") >= 1
    assert value(after, "sscard_http_request_duration_seconds_count", method="POST",
                 route="/api/v1/terminal/payments") >= 4
    labels = {v for (_name, pairs) in after for (_k, v) in pairs}
    for secret in (card.pan, card.card_number, card.citizen_id, card.pan[-4:] + "", "/no/such"):
        assert not any(secret in label for label in labels), secret
    templates = set(client.app.openapi()["paths"]) | {"/metrics", metrics.UNMATCHED}
    routes = {dict(pairs)["route"] for (name, pairs), n in after.items()  # the routes this test's requests hit
              if name == "sscard_http_requests_total" and n > before.get((name, pairs), 0)}
    assert "/api/v1/cards/{card_number}" in routes and routes <= templates

    assert value(after, "sscard_writer_requests_total") >= 3  # the payments went through the group commit
    assert value(after, "sscard_writer_batch_size_count") >= 1
    assert value(after, "sscard_writer_queue_depth") == 0
    assert value(after, "sscard_database_up") == 1
    if backend.name == "postgres":  # the test server has no standby
        assert value(after, "sscard_db_primary") == 1
        assert value(after, "sscard_db_standbys") == 0
        assert value(after, "sscard_db_replication_lag_seconds") == 0
        assert value(after, "sscard_db_oldest_transaction_seconds") >= 0
    else:
        assert not any(name == "sscard_db_oldest_transaction_seconds" for name, _pairs in after)


def test_an_open_transaction_shows_as_the_oldest_transactions_age(app, client, monkeypatch, backend):
    """A transaction left open (here on another connection, as a bulk load or a forgotten psql session would
    leave one) holds back the clean-up of the ledger's hot rows: the operator sees its age (OPERATIONS.md)."""
    if backend.name != "postgres":
        pytest.skip("PostgreSQL's sessions")
    monkeypatch.setenv(metrics.TOKEN_ENV, TOKEN)
    with app.db.engine.connect() as conn:
        conn.exec_driver_sql("SELECT txid_current()")  # a transaction with an id, open until the block ends
        time.sleep(1.2)
        # (at least ours: another test's or another program's transaction on the server may be older)
        assert value(scrape(client), "sscard_db_oldest_transaction_seconds") >= 1.2
        conn.rollback()


def test_metrics_need_the_token_when_one_is_set_and_are_open_only_on_this_host_otherwise(client, monkeypatch):
    monkeypatch.delenv(metrics.TOKEN_ENV, raising=False)
    assert client.get("/metrics").status_code == 403  # the test client is not 127.0.0.1
    assert metrics.allowed("127.0.0.1", None) and metrics.allowed("::1", None)
    assert not metrics.allowed("10.0.0.7", None)
    monkeypatch.setenv(metrics.TOKEN_ENV, TOKEN)
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert not metrics.allowed("127.0.0.1", None)  # with a token, loopback needs it too
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


@pytest.mark.slow
def test_with_two_workers_a_scrape_adds_up_both_workers_requests(backend, db_url, tmp_path):
    if backend.name != "sqlite":
        pytest.skip("the workers' figures are kept in files, whatever the database")
    port = free_port()
    env = {**os.environ, "SSCARD_DATABASE_URL": db_url, "SSCARD_SECRET_KEY": TEST_KEY.hex(),
           "SSCARD_VAR_DIR": str(tmp_path), "SSCARD_CONFIG": "", metrics.TOKEN_ENV: TOKEN}
    env.pop(metrics.DIR_ENV, None)
    proc = subprocess.Popen([sys.executable, "-c", "from sscard.cli import main; main()", "serve", "--port",
                             str(port), "--workers", "2"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    route = "/api/v1/identifiers/check"
    try:
        deadline = time.monotonic() + 90
        pids: set[str] = set()
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + route + "?kind=citizen_id&value=11010519491231002X", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        time.sleep(3)  # let the second worker come up too
        sent = 1
        for _ in range(40):  # new connections: the kernel spreads them over both workers
            assert httpx.get(base + route + "?kind=citizen_id&value=11010519491231002X").status_code == 200
            sent += 1
        time.sleep(2 * metrics.SNAPSHOT_SECONDS + 0.5)  # each worker writes its figures once a second
        pids = {p.name for p in (tmp_path / "metrics").glob("sscard-live-*.json")}
        counts = set()
        for _ in range(6):  # whichever worker answers, it reports the same total
            r = httpx.get(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                       for f in text_string_to_metric_families(r.text) for s in f.samples}
            counts.add(value(samples, "sscard_http_requests_total", method="GET", route=route, status="200"))
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=10)
    assert counts == {sent}
    assert len(pids) >= 2  # figures kept per worker process, added up at the scrape


def test_a_scrape_and_the_snapshot_thread_writing_one_workers_figures_at_once_never_fail(app, tmp_path):
    """Both write this worker's figures file (the scrape writes it fresh before reading them all); with
    one temporary file for both, one's rename could take the other's file away: a 500 at the scrape."""
    import threading

    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(300):
                metrics.write_snapshot(app, str(tmp_path))
        except BaseException as exc:  # noqa: BLE001  reported below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:1]
    [path] = tmp_path.glob("sscard-live-*.json")
    assert json.loads(path.read_text())["pid"] == os.getpid()
