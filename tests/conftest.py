"""Fixtures: every database test runs on SQLite and, when SSCARD_TEST_POSTGRES_URL is set, on PostgreSQL.

The schema is built only through the Alembic migrations, once per backend; each test then starts
from empty tables (a copied SQLite file, or every row deleted on PostgreSQL). When the PostgreSQL variable is
set and the server cannot be reached, the run stops with an error: CI must never skip silently.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from sscard.config import Settings
from sscard.core.clock import FixedClock
from sscard.core.policy import load_policy
from sscard.db import Database
from sscard.services.app import App, build_app

# The CLI's tables are as wide in a test worker (pytest-xdist, no terminal) as in a terminal
os.environ.setdefault("COLUMNS", "200")
PG_URL = os.environ.get("SSCARD_TEST_POSTGRES_URL")
BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])
TEST_KEY = bytes.fromhex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")


def pytest_sessionstart(session: pytest.Session) -> None:
    if PG_URL:
        try:
            engine = create_engine(PG_URL)
            with engine.connect() as conn:
                conn.execute(text("select 1"))
            engine.dispose()
        except Exception as exc:  # noqa: BLE001
            pytest.exit(f"SSCARD_TEST_POSTGRES_URL is set but PostgreSQL cannot be reached: {exc}", returncode=3)


class Backend:
    """One database server for the session, with a migrated schema and a way to empty it."""

    def __init__(self, name: str, tmp: Path):
        self.name = name
        self.tmp = tmp
        if name == "sqlite":
            self.template = tmp / "template.db"
            db = Database(f"sqlite:///{self.template}")
            db.migrate()
            db.dispose()
        else:
            base = make_url(PG_URL)
            self.dbname = f"sscard_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            self.admin = create_engine(base, isolation_level="AUTOCOMMIT")
            with self.admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.dbname}"'))
            self.url = base.set(database=self.dbname).render_as_string(hide_password=False)
            db = Database(self.url)
            db.migrate()
            with db.engine.connect() as conn:  # every table the migrations made (some are no model's)
                self.tables = list(conn.execute(text(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
                    "AND c.relname <> 'alembic_version'")).scalars())
            db.dispose()

    def fresh_url(self) -> str:
        if self.name == "sqlite":
            path = self.tmp / f"t-{uuid.uuid4().hex}.db"
            shutil.copyfile(self.template, path)
            return f"sqlite:///{path}"
        engine = create_engine(self.url)
        for attempt in range(5):  # a previous test's server may still be making next month's partitions
            try:
                with engine.begin() as conn:
                    self._empty(conn)
                break
            except OperationalError:  # deadlock detected: the DDL won; empty the tables again
                if attempt == 4:
                    raise
                time.sleep(0.2)
        engine.dispose()
        return self.url

    def _empty(self, conn) -> None:
        """Every table emptied and every sequence back at 1, as TRUNCATE ... RESTART IDENTITY would, in a
        twentieth of its time: TRUNCATE gives each of the ~70 tables and partitions new files (0.43 s a test,
        a tenth of the suite); a DELETE of the few rows a test left does not. Triggers and foreign keys are
        skipped as TRUNCATE skips them (session_replication_role; the append-only tables' triggers refuse a
        DELETE otherwise)."""
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        sequences = conn.execute(text("SELECT quote_ident(sequencename) FROM pg_sequences "
                                      "WHERE schemaname = 'public'")).scalars().all()
        conn.exec_driver_sql("; ".join([f'DELETE FROM "{t}"' for t in self.tables]  # noqa: S608 (names read from pg_class)
                                       + [f"ALTER SEQUENCE {q} RESTART" for q in sequences]))

    def close(self) -> None:
        if self.name == "postgres":
            with self.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)'))
            self.admin.dispose()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests drive the pages in Chromium on SQLite; on PostgreSQL only the lost-card story does
    (the whole seed flow, tests/story). What a page does on PostgreSQL is covered by the page tests, which
    run the same routes on both databases without a browser; a browser over the other database adds
    minutes of CI and no other code path. SSCARD_BROWSER_ON_POSTGRES=1 runs every browser test on both.
    The items left out are reported as deselected, never silently."""
    if os.environ.get("SSCARD_BROWSER_ON_POSTGRES"):
        return
    kept, left = [], []
    for item in items:
        on_postgres = getattr(item, "callspec", None) is not None and item.callspec.params.get("backend") == "postgres"
        story = item.nodeid.startswith("tests/story/")
        (left if on_postgres and item.get_closest_marker("browser") and not story else kept).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


@pytest.fixture(autouse=True)
def _keys_where_tested(request, monkeypatch):
    """The frame refuses a keyed operation without an Idempotency-Key on the API and terminal channels
    (services.access.KEYED_CHANNELS). Tests of that rule, of the terminal API and of the security table are
    marked `keys_required` and run with it as production does, their clients sending exactly the keys they
    say. The rest, written before the rule: a service they call straight needs no key, and their HTTP
    clients (Starlette's TestClient) send a new key with every write that has none, as an SDK does; the
    server's own calls made while it answers still need theirs. That last part is what found the API login
    door's throttle record refused for want of a key (session 21): the suite had switched the rule off
    wholesale."""
    if request.node.get_closest_marker("keys_required") is None:
        import uuid

        from starlette.testclient import TestClient

        from sscard.services import access

        monkeypatch.setattr(access, "KEYED_CHANNELS", _KeyedOverHttp(access.KEYED_CHANNELS))
        send = TestClient.request

        def with_a_key(self, method, url, *, headers=None, **kwargs):
            if method.upper() in ("POST", "PUT", "PATCH", "DELETE"):
                headers = dict(headers or {})
                if not any(name.lower() == "idempotency-key" for name in headers):
                    headers["Idempotency-Key"] = f"test-{uuid.uuid4().hex}"
            return send(self, method, url, headers=headers, **kwargs)

        monkeypatch.setattr(TestClient, "request", with_a_key)


class _KeyedOverHttp:
    """KEYED_CHANNELS for the tests not marked `keys_required`: a request that came over HTTP needs its key
    as in production (and so does every call the server makes while answering it); a service called
    straight from a test does not."""

    def __init__(self, channels):
        self.channels = channels

    def __contains__(self, channel) -> bool:
        from sscard.logs import current_request

        return channel in self.channels and current_request() is not None


_MIGRATED: dict[str, Backend] = {}


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request, tmp_path_factory) -> Backend:
    """Each database migrated once per test process. pytest finalizes a parametrized session fixture whenever
    the parameter changes, and pytest-xdist's loadfile hands a worker one file at a time (its SQLite tests,
    then its PostgreSQL ones): without this cache each file migrated both databases again."""
    if request.param not in _MIGRATED:
        _MIGRATED[request.param] = Backend(request.param, tmp_path_factory.mktemp(request.param))
    return _MIGRATED[request.param]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    while _MIGRATED:
        _MIGRATED.popitem()[1].close()


@pytest.fixture
def db_url(backend: Backend) -> str:
    return backend.fresh_url()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    # cookie_secure off: TestClient talks plain http to "testserver", where a client keeps no Secure cookie
    # (tests/foundation/test_web_hardening.py checks both values); the hotline's webhooks unsigned, as the
    # tests' phone calls them (tests/hotline/test_engine.py checks the signed and the closed ones)
    return Settings(database_url=db_url, secret_key=TEST_KEY, var_dir=tmp_path, fast_hashing=True, cookie_secure=False,
                    hotline_unsigned=True)


@pytest.fixture
def make_app(settings: Settings, clock: FixedClock):
    """Build an App on this test's database with a policy of the test's choosing."""
    apps: list[App] = []

    def make(**policy_overrides) -> App:
        app = build_app(settings, clock=clock, policy=load_policy(**policy_overrides), pool_size=5)
        apps.append(app)
        return app

    yield make
    for a in apps:
        a.close()


@pytest.fixture
def app(make_app) -> App:
    return make_app()


@pytest.fixture
def city(app: App):
    from tests.support import City

    return City(app)


@pytest.fixture
def client(app: App):
    from fastapi.testclient import TestClient

    from sscard.composition import create_app

    with TestClient(create_app(app)) as c:
        yield c


from tests.browser import browser, live_server, page  # noqa: E402,F401  (shared browser fixtures)
