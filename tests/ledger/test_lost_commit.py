"""A COMMIT whose answer never reaches sscard (the connection broke, the primary died in a failover) is
resolved, never run again blindly: a keyed request by its idempotency record, any other by the commit
marker its transaction wrote (db.Database.mark_commit / committed). On PostgreSQL, through a proxy on the
wire that lets the COMMIT reach the server and be applied, then cuts the connection before its answer
(or cuts it before the COMMIT is sent): what the client sees is what psycopg raises when the server is gone."""

from __future__ import annotations

import dataclasses
import socket
import struct
import threading
import time

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url

from sscard.core.roles import CLI_OPERATOR
from sscard.models.foundation import AuditRecord, CommitMarker
from sscard.models.ledger import LedgerTransfer
from sscard.services import banking, batching
from sscard.services.batching import _Request
from sscard.services.operation import Request, one_by_one

from .helpers import PIN, activated, balance_of, invariants, terminal


class WireCutter:
    """A TCP proxy in front of PostgreSQL. Armed (`arm("after" | "before")`), it cuts the first connection
    that sends a COMMIT after writing to ledger_transfers: "after" forwards the COMMIT, waits for the server's
    CommandComplete of it (the transaction is committed) and closes both sides without forwarding any
    answer; "before" closes both sides instead of forwarding the COMMIT (the server rolls back)."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.mode: str | None = None
        self.cut = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, mode: str) -> None:
        self.cut.clear()
        self.mode = mode

    def close(self) -> None:
        self.mode = None
        self._listener.close()
        for sock in list(self._open):
            _close(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._open += [client, server]
            state = {"writing": False, "committing": False}
            threading.Thread(target=self._upstream, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._downstream, args=(client, server, state), daemon=True).start()

    def _fire(self) -> bool:
        """This connection is the one to cut (once per arming)."""
        with self._lock:
            if self.mode is None or self.cut.is_set():
                return False
            return True

    def _upstream(self, client: socket.socket, server: socket.socket, state: dict) -> None:
        buffer, started = b"", False
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                buffer += data
                out = b""
                while True:
                    if not started:  # the startup message: its length first, no type byte
                        if len(buffer) < 4:
                            break
                        size = struct.unpack("!I", buffer[:4])[0]
                        kind, end = b"", size
                    else:
                        if len(buffer) < 5:
                            break
                        kind, end = buffer[:1], 1 + struct.unpack("!I", buffer[1:5])[0]
                    if len(buffer) < end:
                        break
                    message, buffer = buffer[:end], buffer[end:]
                    started = True
                    query = _query(kind, message)
                    if query is not None and self._fire():
                        if query.startswith(b"INSERT INTO ledger_transfers"):
                            state["writing"] = True
                        elif state["writing"] and query.startswith(b"COMMIT"):
                            if self.mode == "before":
                                server.sendall(out)  # the transaction's writes, never its COMMIT
                                self.cut.set()
                                _close(server)
                                _close(client)
                                return
                            state["committing"] = True
                    out += message
                if out:
                    server.sendall(out)
        except OSError:
            pass
        finally:
            _close(server)

    def _downstream(self, client: socket.socket, server: socket.socket, state: dict) -> None:
        buffer = b""
        try:
            while True:
                data = server.recv(65536)
                if not data:
                    break
                buffer += data
                out = b""
                while len(buffer) >= 5:  # (every message of the server is typed: no TLS, no GSS)
                    end = 1 + struct.unpack("!I", buffer[1:5])[0]
                    if len(buffer) < end:
                        break
                    message, buffer = buffer[:end], buffer[end:]
                    if not state["committing"]:
                        out += message
                    elif message[:1] == b"C" and message[5:].startswith(b"COMMIT\x00"):  # applied
                        self.cut.set()
                        _close(client)
                        _close(server)
                        return
                    # (else, committing: held back, the client gets none of it)
                if out:
                    client.sendall(out)
        except OSError:
            pass
        finally:
            _close(client)


def _query(kind: bytes, message: bytes) -> bytes | None:
    """The SQL of a Parse ('P': name, query) or simple Query ('Q') message."""
    if kind == b"Q":
        return message[5:]
    if kind == b"P":
        return message[5:].split(b"\x00", 2)[1]
    return None


def _close(sock: socket.socket) -> None:
    """Closed at once, also for the other thread blocked reading it (a close alone would not wake it)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@pytest.fixture
def proxy(backend):
    """PostgreSQL: the proxy every connection of the test's App goes through; SQLite: None."""
    if backend.name != "postgres":
        yield None
        return
    url = make_url(backend.url)
    found = WireCutter(url.host or "127.0.0.1", url.port or 5432)
    yield found
    found.close()


@pytest.fixture
def settings(settings, proxy):
    """The test's App reaches PostgreSQL through the proxy (plain TCP: no TLS to look into)."""
    if proxy is None:
        return settings
    url = make_url(settings.database_url)
    url = url.set(host="127.0.0.1", port=proxy.port, query={**url.query, "sslmode": "disable", "gssencmode": "disable"})
    return dataclasses.replace(settings, database_url=url.render_as_string(hide_password=False))


@pytest.fixture
def cutter(proxy):
    if proxy is None:
        pytest.skip("a lost COMMIT answer is PostgreSQL's (SQLite's writer is in this process)")
    return proxy


@pytest.fixture
def atm(city):
    return terminal(city, "ATM-GSB-1")


def _batch(app, *calls) -> list:
    """These transfers as ONE batch of the group-commit writer; the answers in order."""
    reqs = [_Request(Request(app, banking.transfer, actor, args, {}, key)) for actor, args, key in calls]
    batching.batcher(app)._process(reqs)
    return [r.answer for r in reqs]


def _transfers(app) -> int:
    with app.db.session() as s:
        return s.scalar(select(func.count()).select_from(LedgerTransfer).where(LedgerTransfer.code == "transfer"))


def _audits(app) -> int:
    with app.db.session() as s:
        return s.scalar(select(func.count()).select_from(AuditRecord).where(AuditRecord.operation == "bank.transfer"))


def _markers(app) -> set[tuple[str, bool]]:
    with app.db.session() as s:
        return {tuple(r) for r in s.execute(select(CommitMarker.token, CommitMarker.claimed))}


def _claimed(new: set[tuple[str, bool]]) -> list[bool]:
    """Of the markers written meanwhile, which are the lookup's claims (True) and which transactions' own."""
    return sorted(claimed for _token, claimed in new)


def _ledger_adds_up(app) -> None:
    assert invariants(app)["ok"]
    assert banking.ledger_check(app, CLI_OPERATOR)["ok"]  # what `sscard account check` runs


@pytest.fixture
def accounts(city, app):
    a, b = activated(city, opening_fen=10_000), activated(city, opening_fen=10_000)
    writer = batching.batcher(app)
    writer.turn_idle = 60.0  # the writer thread, idle, must not let its turn go meanwhile
    return a, b


def test_an_unkeyed_transfer_batch_whose_commit_was_applied_but_never_answered_is_applied_once_and_answered(
        app, atm, accounts, cutter):
    a, b = accounts
    writer = batching.batcher(app)
    alone, markers = writer.alone, _markers(app)
    cutter.arm("after")
    answers = _batch(app, *[(atm, (a.pan, b.pan, 100 * (i + 1), PIN), None) for i in range(3)])
    assert cutter.cut.is_set()  # the COMMIT was applied, its answer never came
    assert all(isinstance(x, dict) for x in answers), answers
    assert [x["amount_fen"] for x in answers] == [100, 200, 300]
    assert _transfers(app) == 3 and _audits(app) == 3  # not 6: nothing ran again
    assert writer.unknown_commits == 1 and writer.alone == alone
    assert balance_of(app, a.pan) == 10_000 - 600 and balance_of(app, b.pan) == 10_000 + 600
    assert _claimed(_markers(app) - markers) == [False]  # the batch's own marker, found
    _ledger_adds_up(app)


def test_an_unkeyed_transfer_batch_whose_commit_never_reached_the_server_is_run_again_and_applied_once(
        app, atm, accounts, cutter):
    a, b = accounts
    writer = batching.batcher(app)
    alone, markers = writer.alone, _markers(app)
    cutter.arm("before")
    answers = _batch(app, *[(atm, (a.pan, b.pan, 100 * (i + 1), PIN), None) for i in range(3)])
    assert cutter.cut.is_set()
    assert [x["amount_fen"] for x in answers] == [100, 200, 300], answers
    assert _transfers(app) == 3 and _audits(app) == 3
    assert writer.unknown_commits == 1 and writer.alone - alone == 3  # not applied: each run again alone
    assert balance_of(app, a.pan) == 10_000 - 600 and balance_of(app, b.pan) == 10_000 + 600
    # the lookup's claim (the batch can never commit now); the requests run alone each wrote their own
    assert _claimed(_markers(app) - markers) == [False, False, False, True]
    _ledger_adds_up(app)


@pytest.mark.parametrize("mode", ["after", "before"])
def test_a_keyed_transfer_batch_whose_commit_answer_was_lost_is_answered_by_its_keys_without_a_marker(
        app, atm, accounts, cutter, mode):
    a, b = accounts
    writer = batching.batcher(app)
    alone, markers = writer.alone, _markers(app)
    cutter.arm(mode)
    answers = _batch(app, *[(atm, (a.pan, b.pan, 100 * (i + 1), PIN), f"lost-{i}") for i in range(3)])
    assert cutter.cut.is_set()
    assert [x["amount_fen"] for x in answers] == [100, 200, 300], answers
    assert _transfers(app) == 3 and _audits(app) == 3
    assert writer.unknown_commits == 0 and writer.alone - alone == 3  # each rerun alone: its key answers
    assert _markers(app) == markers  # every request had its idempotency record: no marker needed
    assert balance_of(app, a.pan) == 10_000 - 600
    _ledger_adds_up(app)


def test_a_batch_of_keyed_and_unkeyed_transfers_whose_commit_was_applied_answers_both_from_its_marker(
        app, atm, accounts, cutter):
    a, b = accounts
    cutter.arm("after")
    answers = _batch(app, (atm, (a.pan, b.pan, 100, PIN), "mixed-1"), (atm, (a.pan, b.pan, 200, PIN), None))
    assert cutter.cut.is_set()
    assert [x["amount_fen"] for x in answers] == [100, 200], answers
    assert _transfers(app) == 2 and _audits(app) == 2
    again = one_by_one(app, banking.transfer, atm, a.pan, b.pan, 100, PIN, idempotency_key="mixed-1")
    assert again == answers[0]  # the keyed one's record was committed with the batch
    assert balance_of(app, a.pan) == 10_000 - 300
    _ledger_adds_up(app)


@pytest.mark.parametrize("mode", ["after", "before"])
def test_an_unkeyed_transfer_run_alone_whose_commit_answer_was_lost_is_applied_once_and_answered(
        app, atm, accounts, cutter, mode):
    """operation.execute on its own (an unkeyed caller's transaction, or a request its batch could not
    keep): before, a lost answer was raised to the caller although the transfer had been made."""
    a, b = accounts
    markers = _markers(app)
    cutter.arm(mode)
    out = one_by_one(app, banking.transfer, atm, a.pan, b.pan, 700, PIN)
    assert cutter.cut.is_set()
    assert out["amount_fen"] == 700
    assert _transfers(app) == 1 and _audits(app) == 1
    assert balance_of(app, a.pan) == 10_000 - 700 and balance_of(app, b.pan) == 10_000 + 700
    expected = [False] if mode == "after" else [False, True]  # found; or claimed, then the rerun's own
    assert _claimed(_markers(app) - markers) == expected
    _ledger_adds_up(app)


def test_a_lookup_waits_for_a_transaction_still_committing_and_answers_what_it_came_to(app, backend):
    """The claim of a token whose transaction is still open waits for it (the unique key): committed, it
    finds it; a token claimed first can no longer be committed by its transaction."""
    if backend.name != "postgres":
        pytest.skip("commit markers are PostgreSQL's")
    with app.db.sessions() as s:
        s.connection()
        marker = app.db.mark_commit(s)  # written, not yet committed
        found: list = []
        asking = threading.Thread(target=lambda: found.append(app.db.committed(marker)))
        asking.start()
        time.sleep(0.3)
        assert not found  # waiting for the transaction
        s.commit()
    asking.join(10)
    assert found == [True]
    assert app.db.committed(marker) is True  # asked again: the same

    with app.db.sessions() as s:
        s.connection()
        claimed_first = app.db.mark_commit(s)
        s.rollback()
    assert app.db.committed(claimed_first) is False
    assert app.db.committed(claimed_first) is False  # a claim asked again finds its own row
    with app.db.sessions() as s:
        s.connection()
        from sqlalchemy.exc import IntegrityError

        with pytest.raises(IntegrityError):
            s.execute(text("INSERT INTO commit_markers (token, created_at, claimed) VALUES (:t, now(), false)"),
                      {"t": claimed_first.token})


def test_markers_are_written_only_on_postgresql_and_pruned_by_the_writer_after_ten_minutes(app, city, atm, backend):
    a, b = activated(city, opening_fen=10_000), activated(city, opening_fen=10_000)
    markers = _markers(app)
    batching.call(app, banking.transfer, atm, a.pan, b.pan, 100, PIN)
    postgres = backend.name == "postgres"
    assert len(_markers(app) - markers) == (1 if postgres else 0)  # SQLite: a commit's answer is not lost on the way
    if not postgres:
        return
    with app.db.session() as s:
        s.execute(text("UPDATE commit_markers SET created_at = now() - interval '11 minutes'"))
        s.execute(insert(CommitMarker).values(token="kept-recent", created_at=func.now(), claimed=False))
    writer = batching.batcher(app)
    writer._next_prune = 0.0  # due
    batching.call(app, banking.transfer, atm, a.pan, b.pan, 100, PIN)
    # the writer prunes after it has answered the batch: its caller may look before the DELETE is done
    deadline = time.monotonic() + 10
    while len(tokens := {t for t, _c in _markers(app)}) > 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "kept-recent" in tokens and len(tokens) == 2  # the old ones pruned, the new batch's written
