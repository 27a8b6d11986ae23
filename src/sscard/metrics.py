"""`/metrics` in the Prometheus text format (prometheus-client): what an operator alerts on.

- Requests by method, route TEMPLATE (`/api/v1/cards/{card_number}`, never the path itself: a path holds
  card numbers and PANs) and status, and their latency histogram. Counted by an ASGI middleware outside
  the lane, so the lane's requests are counted too (the lane sets the route it served, as the router
  does); anything no route matched is `<unmatched>`.
- The ledger writer (services/batching.py) and the retry helper (db.py), read from their own counters
  when scraped: batches, requests, batch sizes, reruns after a conflict, queue depth, retried transactions.
- On PostgreSQL: whether this node is the primary, how many standbys stream from it, replication lag.

Several workers (`sscard serve --workers N`): `serve` points SSCARD_METRICS_DIR at an empty
`var/metrics/`; each worker writes its figures there once a second (one small JSON file per process) and
whichever worker answers a scrape adds them all up (the other workers' figures are at most a second old).
Not prometheus-client's multiprocess mode: its counters are files written under a lock on every sample,
which measured 20-65 µs per request in this middleware on the terminals' hot path (whose whole event-loop
cost is ~70 µs), against a few µs for plain counters in a dict; and the figures read at scrape time (the
writer's, the retries) could not go through it anyway. Counters restart from 0 with the server, which
Prometheus' rate() expects.

Who may read it: nothing personal is in it (templates, statuses, counts). Without SSCARD_METRICS_TOKEN,
only clients on this host (127.0.0.1, ::1), e.g. a node exporter's side-car or a local Prometheus;
with it, only requests carrying `Authorization: Bearer <token>`, from anywhere.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import threading
import time
from bisect import bisect_left
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

log = logging.getLogger("sscard.metrics")

DIR_ENV = "SSCARD_METRICS_DIR"
TOKEN_ENV = "SSCARD_METRICS_TOKEN"
UNMATCHED = "<unmatched>"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
SNAPSHOT_SECONDS = 1.0

# This process's requests, kept by the middleware on the event loop (one thread: no locks):
# (method, route, status) -> count, and (method, route) -> [count per latency bucket..., +Inf, sum of seconds]
REQUESTS: dict[tuple[str, str, str], int] = {}
LATENCY: dict[tuple[str, str], list] = {}


def prepare_multiprocess(var_dir: Path) -> Path:
    """Before the workers start: an empty directory for their figures (counters start again at 0)."""
    folder = Path(var_dir) / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        if stale.suffix in (".db", ".json", ".tmp"):
            stale.unlink(missing_ok=True)
    os.environ[DIR_ENV] = str(folder)
    return folder


def _multiproc_dir() -> str | None:
    return os.environ.get(DIR_ENV) or None


# ---------------------------------------------------------------- counting requests


class RequestMetrics:
    """ASGI middleware: one count and one latency sample per HTTP request, labelled by route template."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - start
            route = _template(scope)
            key = (scope["method"], route, str(status))
            REQUESTS[key] = REQUESTS.get(key, 0) + 1
            hist = LATENCY.get(key[:2])
            if hist is None:
                hist = LATENCY[key[:2]] = [0] * (len(LATENCY_BUCKETS) + 1) + [0.0]
            hist[bisect_left(LATENCY_BUCKETS, elapsed)] += 1  # the first bucket whose bound >= elapsed
            hist[-1] += elapsed


def _template(scope) -> str:
    route = scope.get("route")  # set by the router that matched (FastAPI, Starlette mounts) or by the lane
    if route is not None:
        return getattr(route, "path", UNMATCHED)
    return UNMATCHED


# ---------------------------------------------------------------- the writer, retries, replication


def live_figures(app) -> dict:
    """This process's writer and retry counters (plain numbers, JSON-ready)."""
    writer = app.extras.get("ledger_batcher")
    queue = getattr(writer, "_queue", None)
    return {
        "pid": os.getpid(),
        "batches": getattr(writer, "batches", 0),
        "requests": getattr(writer, "requests", 0),
        "conflicts": getattr(writer, "conflicts", 0),
        "reruns_for_keys": getattr(writer, "reruns_for_keys", 0),
        "queue": queue.qsize() if queue is not None else 0,
        "sizes": {str(k): v for k, v in dict(getattr(writer, "sizes", {})).items()},
        "db_retries": getattr(app.db, "retries", 0),
        "http": [[*key, n] for key, n in list(REQUESTS.items())],
        "latency": [[*key, list(hist)] for key, hist in list(LATENCY.items())],
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _snapshot_path(folder: str, pid: int) -> Path:
    return Path(folder) / f"sscard-live-{pid}.json"


def write_snapshot(app, folder: str) -> None:
    figures = live_figures(app)
    path = _snapshot_path(folder, figures["pid"])
    # a temporary file of this thread's own: the worker's snapshot thread and a scrape write the same
    # worker's figures; with one name for both, one's rename took the other's file away and the scrape
    # answered 500 (seen in CI with two workers under load)
    tmp = path.with_name(f"{path.name}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(figures))
    tmp.replace(path)


def _all_figures(app) -> list[dict]:
    folder = _multiproc_dir()
    if folder is None:
        return [live_figures(app)]
    write_snapshot(app, folder)  # this worker's, fresh; the others' are at most a second old
    found = []
    for path in Path(folder).glob("sscard-live-*.json"):
        with contextlib.suppress(OSError, ValueError):
            found.append(json.loads(path.read_text()))
    return found


def database_state(app) -> dict | None:
    """PostgreSQL: primary or standby, standbys streaming, lag in seconds, and on the primary the age of
    the oldest transaction open on the server; {} on SQLite, None when the database does not answer (then
    sscard_database_up is 0)."""
    if app.db.dialect != "postgresql":
        return {}
    from sqlalchemy import text

    try:
        with app.db.read_committed() as s:
            standby = bool(s.execute(text("SELECT pg_is_in_recovery()")).scalar())
            if standby:
                lag = s.execute(text("SELECT COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)"
                                     )).scalar()
                return {"primary": 0, "standbys": 0, "lag": float(lag or 0)}
            count, lag = s.execute(text("SELECT count(*), COALESCE(MAX(EXTRACT(EPOCH FROM replay_lag)), 0) "
                                        "FROM pg_stat_replication")).one()
            oldest = s.execute(text(_OLDEST_TRANSACTION)).scalar()
            return {"primary": 1, "standbys": int(count), "lag": float(lag or 0), "oldest": float(oldest or 0)}
    except Exception as exc:  # noqa: BLE001  a scrape must answer even when the database does not
        log.warning("metrics: the database did not answer (%s)", type(exc).__name__)
        return None


# The oldest transaction open on the server, in any database, this scrape's own left out. Its snapshot holds
# back the clean-up of every row updated since it began, in every database of the server (a snapshot's
# xmin is the oldest transaction running anywhere): the ledger's busiest rows (a drawer's cash account,
# the fee income, a merchant) then carry chains of dead versions that every batch walks (session 30: one
# session idle in a transaction in another database took `sscard bench --only b` from 629-675 transfers a
# second to 374-506). Seeing other roles' sessions takes pg_monitor (or a superuser).
_OLDEST_TRANSACTION = (
    "SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(xact_start)), 0) FROM pg_stat_activity "
    "WHERE xact_start IS NOT NULL AND backend_type = 'client backend' AND pid <> pg_backend_pid()")


class AppCollector:
    """Reads the live counters when scraped (nothing on the request path)."""

    def __init__(self, app) -> None:
        self.app = app

    def collect(self):
        figures = _all_figures(self.app)
        yield from _http_families(figures)
        for name, key, text in (
            ("sscard_writer_batches", "batches", "Group-commit batches committed by the ledger writer"),
            ("sscard_writer_requests", "requests", "Requests committed in group-commit batches"),
            ("sscard_writer_conflicts", "conflicts", "Batches run again after a serialization failure or deadlock"),
            ("sscard_writer_reruns_for_keys", "reruns_for_keys",
             "Batches run again because a request's Idempotency-Key was stored already (a retry not expected)"),
            ("sscard_db_retries", "db_retries", "Transactions run again after a serialization failure or deadlock"),
        ):
            counter = CounterMetricFamily(name, text)
            counter.add_metric([], sum(f.get(key, 0) for f in figures))
            yield counter
        queue = GaugeMetricFamily("sscard_writer_queue_depth", "Requests waiting for the ledger writer")
        queue.add_metric([], sum(f.get("queue", 0) for f in figures if f.get("pid") == os.getpid() or _alive(f["pid"])))
        yield queue
        sizes: dict[int, int] = {}
        for f in figures:
            for size, n in f.get("sizes", {}).items():
                sizes[int(size)] = sizes.get(int(size), 0) + n
        buckets, running = [], 0
        for bound in BATCH_BUCKETS:
            running = sum(n for size, n in sizes.items() if size <= bound)
            buckets.append((str(bound), running))
        buckets.append(("+Inf", sum(sizes.values())))
        hist = HistogramMetricFamily("sscard_writer_batch_size", "Requests per group-commit batch")
        hist.add_metric([], buckets, sum_value=sum(size * n for size, n in sizes.items()))
        yield hist
        repl = database_state(self.app)
        up = GaugeMetricFamily("sscard_database_up", "1 when the database answered this scrape")
        up.add_metric([], 0 if repl is None else 1)
        yield up
        if repl:
            for name, key, text in (
                ("sscard_db_primary", "primary", "1 on the primary (read-write), 0 on a standby"),
                ("sscard_db_standbys", "standbys", "Standbys streaming from this primary (pg_stat_replication)"),
                ("sscard_db_replication_lag_seconds", "lag",
                 "Primary: the slowest standby's replay lag; standby: time since the last replayed transaction"),
                ("sscard_db_oldest_transaction_seconds", "oldest",
                 "Primary: age of the oldest transaction open on the server (it holds back the clean-up of hot rows)"),
            ):
                if key in repl:
                    gauge = GaugeMetricFamily(name, text)
                    gauge.add_metric([], repl[key])
                    yield gauge


def _http_families(figures: list[dict]):
    counts: dict[tuple, int] = {}
    hists: dict[tuple, list] = {}
    for f in figures:
        for method, route, status, n in f.get("http", ()):
            counts[method, route, status] = counts.get((method, route, status), 0) + n
        for method, route, hist in f.get("latency", ()):
            total = hists.setdefault((method, route), [0] * len(hist))
            for i, v in enumerate(hist):
                total[i] += v
    requests = CounterMetricFamily("sscard_http_requests", "HTTP requests answered, by route template and status",
                                   labels=["method", "route", "status"])
    for key, n in sorted(counts.items()):
        requests.add_metric(list(key), n)
    yield requests
    latency = HistogramMetricFamily("sscard_http_request_duration_seconds", "Time to answer, by route template",
                                    labels=["method", "route"])
    for key, hist in sorted(hists.items()):
        running, buckets = 0, []
        for bound, n in zip((*map(str, LATENCY_BUCKETS), "+Inf"), hist[:-1], strict=True):
            running += n
            buckets.append((bound, running))
        latency.add_metric(list(key), buckets, sum_value=hist[-1])
    yield latency


def exposition(app) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AppCollector(app))
    return generate_latest(registry)


def allowed(client_host: str | None, authorization: str | None) -> bool:
    token = os.environ.get(TOKEN_ENV)
    if token:
        given = (authorization or "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), token.encode())
    return client_host in ("127.0.0.1", "::1", "localhost")


def _snapshots(app, folder: str) -> None:
    while True:
        time.sleep(SNAPSHOT_SECONDS)
        try:
            write_snapshot(app, folder)
        except OSError:
            log.warning("metrics: could not write this worker's figures", exc_info=True)


def install(api) -> None:
    """Add GET /metrics and the request counter (outermost: it sees the terminals' lane too)."""
    @api.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        if not allowed(request.client.host if request.client else None, request.headers.get("authorization")):
            return PlainTextResponse("forbidden\n", status_code=403)
        return Response(exposition(request.app.state.sscard), media_type=CONTENT_TYPE_LATEST)

    api.add_middleware(RequestMetrics)
    folder = _multiproc_dir()
    if folder is not None:
        threading.Thread(target=_snapshots, args=(api.state.sscard, folder), name="sscard-metrics",
                         daemon=True).start()
