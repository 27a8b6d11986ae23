"""A restart after SIGKILL must answer within 2 s, and ~0.5 s of that was importing libraries that no
request at start-up needs. These tests keep them out of the server's start-up for good; the restart
itself is timed by `sscard bench restart` (a figure, not asserted: it moves with the machine's load)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from tests.conftest import TEST_KEY

# imported on first use only: PDFs (reportlab, PIL), migrations (alembic, mako, pygments), the demo city
# (faker), test tools (hypothesis, schemathesis, pytest)
LAZY = {"reportlab", "PIL", "alembic", "mako", "pygments", "faker", "hypothesis", "schemathesis", "pytest"}


def _modules_after(code: str, tmp_path, *, whole: bool = False) -> set[str]:
    env = {**os.environ, "SSCARD_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}", "SSCARD_SECRET_KEY": TEST_KEY.hex(),
           "SSCARD_VAR_DIR": str(tmp_path), "SSCARD_CONFIG": ""}
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True)
    names = json.loads(out.stdout.splitlines()[-1])
    return set(names) if whole else {name.split(".")[0] for name in names}


def test_importing_the_server_app_leaves_pdf_migration_demo_and_test_libraries_unloaded(tmp_path):
    loaded = _modules_after("import sscard.asgi", tmp_path)
    assert "sscard" in loaded and "fastapi" in loaded
    assert loaded & LAZY == set()


def test_the_serve_command_path_leaves_them_unloaded_too(tmp_path):
    # `sscard serve` loads every area's commands and builds the app once before uvicorn imports it
    loaded = _modules_after("import sscard.cli as c\nc._register_area_commands()\nc.load_app()\nimport uvicorn.main\n"
                            "import sscard.asgi", tmp_path)
    assert loaded & LAZY == set()


def test_serve_gives_workers_a_minute_to_answer_the_supervisors_health_check(monkeypatch, tmp_path):
    import uvicorn
    from typer.testing import CliRunner

    import sscard.cli as cli

    monkeypatch.setenv("SSCARD_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("SSCARD_DATABASE_URL", f"sqlite:///{tmp_path / 's.db'}")
    monkeypatch.setenv("SSCARD_SECRET_KEY", TEST_KEY.hex())
    monkeypatch.delenv("SSCARD_METRICS_DIR", raising=False)
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    for args in (["serve"], ["serve", "--workers", "2"]):
        assert CliRunner().invoke(cli.app, args).exit_code == 0
    assert [kw["timeout_worker_healthcheck"] for kw in calls] == [60, 60]  # uvicorn's own default: 5 s
    assert os.environ.pop("SSCARD_METRICS_DIR") == str(tmp_path / "metrics")  # workers add up their figures


@pytest.mark.slow
def test_bench_restart_kills_the_server_and_times_its_first_answer(tmp_path, monkeypatch):
    from sscard.cli.ops import run_restart_bench

    monkeypatch.setenv("SSCARD_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("SSCARD_SECRET_KEY", TEST_KEY.hex())
    figures = run_restart_bench(1, 1, None)
    assert len(figures) == 1 and figures[0] > 0  # a figure, not a goal: it moves with the machine's load


@pytest.mark.slow
def test_workers_end_with_their_supervisor_killed_and_the_restart_binds_the_port(tmp_path):
    """Session 21's operator: SIGKILL of `sscard serve --workers 2` left both workers serving on the port
    (re-parented to init), and the restart a process manager makes failed, "Address already in use". The
    workers now end with their supervisor (Linux's parent-death signal), and the restart answers."""
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    env = {**os.environ, "SSCARD_VAR_DIR": str(tmp_path), "SSCARD_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}",
           "SSCARD_SECRET_KEY": TEST_KEY.hex(), "SSCARD_CONFIG": ""}
    env.pop("SSCARD_METRICS_DIR", None)
    sscard = [str(Path(sys.executable).with_name("sscard"))]
    subprocess.run([*sscard, "init"], env=env, check=True, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/v1/identifiers/check?kind=pan&value=6222020000000000000"

    def answers(within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url, timeout=1)
                return True
            except OSError as exc:
                if getattr(exc, "code", None):  # an HTTP error is an answer
                    return True
                time.sleep(0.1)
        return False

    def workers_of(pid: int) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    first = subprocess.Popen([*sscard, "serve", "--port", str(port), "--workers", "2"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    again = None
    try:
        assert answers(60)
        workers = workers_of(first.pid)
        assert workers
        first.send_signal(signal.SIGKILL)
        first.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(os.path.exists(f"/proc/{w}") and
                                                  "zombie" not in open(f"/proc/{w}/status").read().lower()
                                                  for w in workers):
            time.sleep(0.1)
        assert not [w for w in workers if os.path.exists(f"/proc/{w}")
                    and "zombie" not in open(f"/proc/{w}/status").read().lower()], "workers outlived the supervisor"
        again = subprocess.Popen([*sscard, "serve", "--port", str(port)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert answers(60), again.stderr.read(2000) if again.poll() is not None else "no answer"
    finally:
        for proc in (first, again):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


# Routes built when first needed (http.JsonRoute): FastAPI's part of the app's ~180 routes (dependants,
# parameter and response models) was ~0.3 s of every restart's CPU before its first answer.

def _unbuilt(api) -> list:
    from sscard.http import JsonRoute

    return [r for r in api.routes if isinstance(r, JsonRoute) and "_unbuilt" in r.__dict__]


def test_the_app_starts_with_no_route_built_and_a_request_builds_only_its_own(app):
    from fastapi.testclient import TestClient

    from sscard.composition import create_app
    from sscard.http import JsonRoute

    api = create_app(app)
    every = [r for r in api.routes if isinstance(r, JsonRoute)]
    assert len(every) > 150 and _unbuilt(api) == every
    with TestClient(api) as client:
        answer = client.get("/api/v1/identifiers/check", params={"kind": "citizen_id", "value": "11010519491231002X"})
        assert answer.status_code == 200 and answer.json()["valid"] is True
        assert [r.path for r in every if r not in _unbuilt(api)] == ["/api/v1/identifiers/check"]
        # a refused request is FastAPI's usual answer, from the route built for it
        assert client.get("/api/v1/identifiers/check", params={"kind": "citizen_id", "value": 7,
                                                              "x": "1"}).status_code in (200, 422)
        # the OpenAPI document reads every route: all built, and each of them passed the checks
        assert client.get("/openapi.json").status_code == 200
    assert _unbuilt(api) == []


def test_a_route_reading_a_bare_date_never_answers_whenever_it_is_built():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    import sscard.api.main  # noqa: F401  (registers the date check on every RouteBook route)
    from sscard.http import RouteBook

    book = RouteBook(prefix="/x")

    @book.get("/day")
    def day(d: date) -> dict:
        return {"d": str(d)}

    @book.get("/fine")
    def fine() -> dict:
        return {"ok": True}

    api = FastAPI()
    book.take_in(api)
    with TestClient(api, raise_server_exceptions=False) as client:  # it starts: the routes are not built yet
        assert client.get("/x/fine").json() == {"ok": True}
        for _ in range(2):  # refused each time: never built, never served
            assert client.get("/x/day", params={"d": "2026-12-07"}).status_code == 500
    with pytest.raises(TypeError, match="ISO-8601"):
        sscard.api.main.refuse_bare_dates(api)


def test_threads_reading_a_route_being_built_wait_for_it():
    import threading

    from fastapi import FastAPI

    from sscard.http import RouteBook

    book = RouteBook()
    for i in range(40):
        book.post(f"/r{i}/{{n}}")(lambda n: {"n": n})
    api = FastAPI()
    book.take_in(api)
    routes = list(api.routes)[-40:]
    seen: list = []
    failures: list = []
    start = threading.Barrier(8)

    def read() -> None:
        start.wait()
        for route in routes:
            try:
                seen.append((route.dependant.path_params[0].name, route.body_field, route.response_field))
            except AttributeError as exc:  # a half-built route would show here
                failures.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == [] and len(seen) == 8 * 40 and {s[0] for s in seen} == {"n"}
    assert _unbuilt(api) == []


def test_the_serve_command_does_not_import_every_areas_commands(tmp_path):
    """`sscard serve` is the CLI's own command: a restart (and `--workers N`'s supervisor, which serves nothing)
    does not import the areas' command modules (~0.14 s of CPU); any other command still finds them all."""
    code = ("import sys\nfrom sscard import cli\nsys.argv = ['sscard', 'serve', '--help']\n"
            "try:\n    cli.main()\nexcept SystemExit:\n    pass\n")
    loaded = _modules_after(code, tmp_path, whole=True)
    assert "sscard.cli" in loaded and not {"sscard.cli.bench", "sscard.cli.ledger", "sscard.cli.demo"} & loaded
    code = code.replace("'serve', '--help'", "'--help'")
    assert {"sscard.cli.bench", "sscard.cli.ledger", "sscard.cli.demo"} <= _modules_after(code, tmp_path, whole=True)
