"""What every workload shares: the clients' loop and its figures, the host calibration, scratch
databases, the uvicorn subprocess and a minimal HTTP/1.1 client."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def calibrate() -> float:
    """Milliseconds of a fixed pure-Python loop: how fast this shared host is right now."""
    start = time.perf_counter()
    total = 0
    for i in range(2_000_000):
        total += i
    return (time.perf_counter() - start) * 1000


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def figures(latencies_s: list[float], elapsed: float, errors: int, **extra) -> dict:
    return {"tps": len(latencies_s) / elapsed if elapsed else 0.0,
            "p50_ms": percentile(latencies_s, 0.50) * 1000, "p99_ms": percentile(latencies_s, 0.99) * 1000,
            "ok": len(latencies_s), "errors": errors, "seconds": round(elapsed, 2), **extra}


def drive(clients: int, seconds: float, work: Callable[[int, random.Random], bool]) -> dict:
    """N threads calling work() for S seconds; tps and latencies of the successful calls. Each client's
    first successful call (its connection, the server's first use) is not measured; a client that has
    measured nothing when the time is up goes on until it has one call (for at most 30 s more), so a
    short run on a busy host still reports latencies instead of zeros."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    kinds: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    overtime = deadline + 30.0
    start = time.perf_counter()

    def loop(c: int) -> None:
        rng = random.Random(c)
        first = True
        while (now := time.perf_counter()) < deadline or (not latencies[c] and now < overtime):
            t0 = time.perf_counter()
            try:
                ok = work(c, rng)
            except Exception as exc:  # noqa: BLE001  counted, not fatal: the run goes on
                ok = False
                kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1
            if ok and first:
                first = False
            elif ok:
                latencies[c].append(time.perf_counter() - t0)
            else:
                errors[c] += 1

    threads = [threading.Thread(target=loop, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = figures([x for lat in latencies for x in lat], time.perf_counter() - start, sum(errors))
    if kinds:
        out["exceptions"] = kinds
    return out


class Scratch:
    """A scratch database: a temporary SQLite file, or a new PostgreSQL database dropped afterwards."""

    def __init__(self, db: str, pg_url: str, name: str):
        self.db = db
        if db == "sqlite":
            self.tmp = tempfile.mkdtemp(prefix=f"sscard-bench-{name}-")
            self.path = Path(self.tmp) / "bench.db"
            self.url = f"sqlite:///{self.path}"
            return
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        base = make_url(pg_url)
        self.name = f"sscard_bench_{name}_{uuid.uuid4().hex[:6]}"
        self.admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.sa_url = base.set(database=self.name)
        self.url = self.sa_url.render_as_string(hide_password=False)

    def drop(self) -> None:
        if self.db == "sqlite":
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        from sqlalchemy import text

        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


UNTHROTTLED = {f"SSCARD_API__{kind.upper()}_REQUESTS_PER_WINDOW": str(10**8)
               for kind in ("terminal", "staff", "cardholder")}
"""A bench's servers let its callers through: a bench is a load test, each of its tokens sending hundreds of
requests a second (one POS token ~3,000 a second in the payments run), far past the per-caller limits of the
city's policy (api.*_requests_per_window: a real terminal sends one every few seconds). Its measure is the
server's throughput, not the limit's refusals; the limit's own cost (a counter per request) is still paid."""


class Server:
    """`uvicorn sscard.asgi:application` in a subprocess on a free 127.0.0.1 port, over `url`.

    Started as soon as the schema exists (it reads tokens and data per request), so its start-up
    (imports: seconds on a busy host) overlaps the city's set-up; `ready()` waits for it."""

    def __init__(self, url: str, key: bytes, workdir: Path, *, workers: int = 1, env: dict | None = None):
        self._start(url, key, workdir, ["-m", "uvicorn", "sscard.asgi:application", "--host", "127.0.0.1", "--port",
                                        "{port}", "--log-level", "warning", "--no-access-log", "--workers",
                                        str(workers)], "server.log", env)

    def _start(self, url: str, key: bytes, workdir: Path, argv: list[str], log_name: str,
               env: dict | None = None) -> None:
        """Run `python argv` (its "{port}" a free port) over `url` with the bench's key, logging to a file."""
        self.port = free_port()
        self._ready = False
        environ = {**os.environ, "SSCARD_DATABASE_URL": url, "SSCARD_SECRET_KEY": key.hex(),
                   "SSCARD_VAR_DIR": str(workdir), "SSCARD_CONFIG": "", **UNTHROTTLED,
                   **(env or {})}
        self.log = open(workdir / log_name, "w+b")  # noqa: SIM115  a file, not a pipe: a full pipe would stall the server
        self.proc = subprocess.Popen([sys.executable, *(a.replace("{port}", str(self.port)) for a in argv)],
                                     cwd=workdir, env=environ, stdout=subprocess.DEVNULL, stderr=self.log)

    def ready(self) -> Server:
        import httpx

        base = f"http://127.0.0.1:{self.port}"
        for _ in range(1200):
            if self._ready:
                return self
            try:
                # a public route that touches no database: /openapi.json would build the whole schema on
                # the event loop (seconds on a busy host), while the workload's first clients wait
                self._ready = httpx.get(base + "/api/v1/identifiers/check?kind=pan&value=6222020000000000000",
                                        timeout=1).status_code < 500
                continue
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError("uvicorn exited: " + self.log.read().decode(errors="replace")[-2000:])
            time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.seek(0)
        logged = self.log.read()
        self.log.close()
        if b"Traceback" in logged or b"ERROR" in logged:  # a 500 or a crash: keep what the server said
            kept = Path(tempfile.gettempdir()) / f"sscard-bench-server-{os.getpid()}-{self.port}.log"
            kept.write_bytes(logged)
            print(f"the server logged errors: {kept}", file=sys.stderr)


class Gateway(Server):
    """`sscard iso8583 serve` in a subprocess on a free 127.0.0.1 port, over `url` (the ISO 8583 gateway)."""

    def __init__(self, url: str, key: bytes, workdir: Path):
        self._start(url, key, workdir, ["-c", "from sscard.cli import main; main()", "iso8583", "serve", "--port",
                                        "{port}", "--log-level", "warning"], "gateway.log")

    def ready(self) -> Gateway:
        import socket

        for _ in range(1200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    self.log.seek(0)
                    raise RuntimeError("the gateway exited: "
                                       + self.log.read().decode(errors="replace")[-2000:]) from None
                time.sleep(0.1)
        raise RuntimeError("the gateway did not start")


def drive_http(client: HttpClient, clients: int, seconds: float, work: Callable[[int, random.Random], bool],
               refused: dict[str, int] | None = None) -> dict:
    """drive() through `client`, whose connections are closed after; `refused` (the refusals counted by
    code) goes into the figures when there were any."""
    try:
        out = drive(clients, seconds, work)
    finally:
        client.close()
    if refused:
        out["refused"] = refused
    if client.reconnects:
        out["reconnects"] = client.reconnects
    return out


def wrk(port: int, script: str, args: list[str], clients: int, seconds: float) -> dict:
    """`seconds` of wrk (Debian's package: a C load generator, as the ledger's baseline is the native
    pgbench) at `clients` keep-alive connections on up to 2 threads, each sending its next request when
    the last is answered, as `script` (a Lua file beside this module) writes them from `args`; its figures
    as drive() gives them (only 200 answers count as done: any other status, or a socket error, is an
    error). The script prints one line "SSCARD {json}" from its done(); what else it puts there (a count of
    its own) is passed on."""
    path = Path(__file__).with_name(script)
    done = subprocess.run(
        ["wrk", "-t", str(max(1, min(2, clients))), "-c", str(clients), "-d", f"{max(1, round(seconds))}s",
         "--timeout", "10s", "-s", str(path), f"http://127.0.0.1:{port}", "--", *args],
        capture_output=True, text=True, check=False, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("SSCARD ")), None)
    if line is None:
        raise RuntimeError(f"wrk exited {done.returncode} with no figures: {done.stdout[-500:]}{done.stderr[-500:]}")
    got = json.loads(line[len("SSCARD "):])
    elapsed = got["duration_us"] / 1e6
    errors = got["non_200"] + got["socket_errors"]
    return {"tps": (got["requests"] - got["non_200"]) / elapsed, "p50_ms": got["p50_us"] / 1000,
            "p99_ms": got["p99_us"] / 1000, "p90_ms": got["p90_us"] / 1000, "max_ms": got["max_us"] / 1000,
            "ok": got["requests"] - got["non_200"], "errors": errors, "seconds": round(elapsed, 2),
            **{k: v for k, v in got.items() if k not in _WRK_FIGURES}}  # what else the script counted


_WRK_FIGURES = {"requests", "duration_us", "p50_us", "p90_us", "p99_us", "max_us", "mean_us", "non_200", "socket_errors"}


class _Stale(Exception):
    """The connection was closed by the server before any of the answer came."""


class HttpClient:
    """One keep-alive HTTP/1.1 connection per client thread, each request written as bytes and its
    answer read by Content-Length.

    pgbench is a C program that costs the database server almost nothing; a Python load generator on
    the same 2 cores takes CPU from the server it measures (httpx ~1 ms per request, http.client
    ~0.3 ms), so this one does the least it can. A request that fails is retried by nobody: counted."""

    def __init__(self, port: int):
        self.port = port
        self.socks: dict[int, tuple[socket.socket, object]] = {}
        self.reconnects = 0  # requests sent again on a new connection: the server had closed the old one

    def post(self, client: int, path: str, body: dict, token: str, *, key: bool = True) -> tuple[int, bytes]:
        """POST (with a fresh Idempotency-Key unless key=False); the answer's status and body."""
        data = json.dumps(body).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n").encode()
        if key:
            head += b"Idempotency-Key: " + uuid.uuid4().hex.encode() + b"\r\n"
        return self._exchange(client, head + b"\r\n" + data)

    def get(self, client: int, path: str, token: str) -> tuple[int, bytes]:
        """GET; the answer's status and body."""
        return self._exchange(client, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                                      f"Authorization: Bearer {token}\r\n\r\n".encode())

    def _exchange(self, client: int, request: bytes) -> tuple[int, bytes]:
        """Send one request on the client's connection (opened on first use) and read its answer.

        A kept-alive connection the server has closed since its last answer (uvicorn closes it after any
        500, and after its keep-alive timeout) fails before a byte of the answer comes: an empty read,
        a reset, a broken pipe. That request never reached the application, so it is sent once more on
        a new connection (as http.client and urllib3 do), counted in `reconnects`, never as the
        request's failure. An answer that says `Connection: close` closes the connection after it."""
        reused = client in self.socks
        try:
            return self._send(client, request)
        except _Stale:
            if not reused:
                raise ConnectionResetError("the server closed a new connection before answering") from None
            self.reconnects += 1
            return self._send(client, request)

    def _send(self, client: int, request: bytes) -> tuple[int, bytes]:
        conn = self.socks.get(client)
        if conn is None:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = self.socks[client] = (sock, sock.makefile("rb"))
        sock, reader = conn
        try:
            try:
                sock.sendall(request)
                status_line = reader.readline()
            except (ConnectionResetError, BrokenPipeError) as exc:
                raise _Stale from exc
            if not status_line:
                raise _Stale
            status = int(status_line.split(b" ", 2)[1])
            length = None
            close = False
            while (line := reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            if length is None:
                raise OSError("answer without Content-Length")
            body = reader.read(length)
            if close:
                self.close(client)
            return status, body
        except (OSError, ValueError, IndexError, _Stale):
            self.close(client)
            raise

    def close(self, client: int | None = None) -> None:
        for c in [client] if client is not None else list(self.socks):
            found = self.socks.pop(c, None)
            if found is not None:
                found[1].close()
                found[0].close()


class Rig:
    """What a benchmark rig holds and gives back: a scratch database, an App on it, a work folder and,
    once started, a server."""

    server: Server | None = None

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        self.app.close()
        self.scratch.drop()
        shutil.rmtree(self.workdir, ignore_errors=True)
