"""The gateway's TCP server: each message framed by a two-byte big-endian length (as most acquirers'
hosts and ATMs frame ISO 8583), answered in order on its connection; many terminals, one connection each."""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import struct
from typing import Any

from .gateway import MAX_MESSAGE_BYTES, Authenticated, Unreadable, answer

log = logging.getLogger("sscard.iso8583")
IDLE_SECONDS = 300.0  # a connection with no message for this long is closed (terminals send 0800 echoes)
READ_SECONDS = 10.0  # a message's bytes, once its length is read, must arrive within this; and the first
#                      message of a connection (a terminal connects to send): one that says nothing is not held
WRITE_SECONDS = 10.0  # an answer must be taken by the terminal within this: one that stops reading is cut off
UNREADABLE_IN_A_ROW = 3  # messages answered 30 as undecodable, one after another, before the connection is
#                         closed: a terminal that has lost its framing or its spec sends nothing else, and
#                         without this bound kept its connection for the idle time
MAX_CONNECTIONS = 2_000  # open at once: one a terminal (a city's ATMs and POS of one bank reach a few
#                          thousand through their concentrators); past it a new connection takes the place
#                          of the oldest one no terminal has shown its MAC on, or is closed at once (Slots)
BACKLOG = 100  # connections the kernel queues for accept() (in the kernel, not files of this process: `Gateway`
#               accepts one at a time)
FILES_KEPT = 64  # open files kept for everything but connections (database, logs, the listening socket), at
#                  least, and a quarter of the process's limit, besides BACKLOG: `connection_bound`


def connection_bound(max_connections: int, open_files: int) -> int:
    """How many connections may be open at once in a process that may open `open_files` files: each holds
    one. Past the process's limit accept() fails (EMFILE): asyncio logged it with a traceback hundreds of
    times a second and accepted nothing, so a real terminal's connection waited unaccepted (session 27's
    probe: 1,100 keyless connections under the usual soft limit of 1,024, far below MAX_CONNECTIONS)."""
    kept = BACKLOG + max(FILES_KEPT, open_files // 4)
    return max(1, min(max_connections, open_files - kept))


def raise_open_files(wanted: int) -> int:
    """Raise this process's soft open-file limit toward `wanted` (never past its hard limit): the gateway's
    process, which holds a file per connection. Returns the soft limit in effect."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


class Slots:
    """The open connections, as many as `bound`. Those on which no message has yet verified under a
    terminal's MAC are unproven: when all places are taken, a new connection takes the place of the oldest
    unproven one that is not being answered; only when every place is a terminal's is the new one closed.
    Session 27's probe: 1,100 connections with no key between them, each sending one message of an unknown
    terminal (answered 03, then kept for the idle 300 s), took every place, and each real terminal that
    connected after them was closed at once for as long as they held on."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.open = 0
        self.unproven: dict[asyncio.StreamWriter, float] = {}  # -> when it was accepted
        self.busy: set[asyncio.StreamWriter] = set()  # a message of theirs is being answered

    def admit(self, writer: asyncio.StreamWriter, now: float) -> bool:
        if self.open >= self.bound:
            idle = [(at, id(w), w) for w, at in self.unproven.items() if w not in self.busy]
            if not idle:
                log.warning("iso8583: %d connections open, every one a terminal's: a new one closed", self.open)
                return False
            oldest = min(idle)[2]
            del self.unproven[oldest]
            log.warning("iso8583: %d connections open: the oldest on which no terminal's MAC was seen closed "
                        "for a new one", self.open)
            oldest.transport.abort()  # (its handler ends and gives its place back)
        self.open += 1
        self.unproven[writer] = now
        return True

    def release(self, writer: asyncio.StreamWriter) -> None:
        self.open -= 1
        self.unproven.pop(writer, None)
        self.busy.discard(writer)


async def _connection(app: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      slots: Slots | None = None) -> None:
    wait = READ_SECONDS  # for the first message; IDLE_SECONDS between messages once one came
    unreadable = 0
    try:
        while True:
            try:
                head = await asyncio.wait_for(reader.readexactly(2), wait)
                (length,) = struct.unpack(">H", head)
                if not 4 <= length <= MAX_MESSAGE_BYTES:
                    log.info("iso8583 frame of %d bytes refused: connection closed", length)
                    return
                raw = await asyncio.wait_for(reader.readexactly(length), READ_SECONDS)
            except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                return
            wait = IDLE_SECONDS
            if slots is not None:
                slots.busy.add(writer)
            try:
                out = await answer(app, raw)
            finally:
                if slots is not None:
                    slots.busy.discard(writer)
            if out is None:
                return
            if slots is not None and isinstance(out, Authenticated):
                slots.unproven.pop(writer, None)  # a terminal's connection: never closed for a new one
            unreadable = unreadable + 1 if isinstance(out, Unreadable) else 0
            writer.write(struct.pack(">H", len(out)) + out)
            try:
                await asyncio.wait_for(writer.drain(), WRITE_SECONDS)
            except TimeoutError:  # it sends and never reads: its answers and the connection were held for ever
                log.info("iso8583 answers not taken within %.0f s: connection aborted", WRITE_SECONDS)
                writer.transport.abort()  # (close() would wait for the unread answers to be flushed)
                return
            except ConnectionError:
                return
            if unreadable >= UNREADABLE_IN_A_ROW:
                log.info("iso8583 %d unreadable messages in a row: connection closed", unreadable)
                return
    finally:
        writer.close()


ACCEPT_RETRY_SECONDS = 0.5  # after accept() failed (the process's files taken by others: the database, logs)


class Gateway:
    """The listening socket and its accept loop, with the surface of asyncio.Server its callers use (`sockets`,
    `async with`, `serve_forever`, `close`, `wait_closed`). One connection is accepted at a time, and the next only
    once that one was admitted or closed (`Slots`), so the open connections never exceed the bound by more than the
    one being accepted: asyncio.start_server accepted up to its backlog (100) at each readiness of the socket,
    before any handler had run, and under a flood on a busy host several such rounds ran ahead of the handlers
    that close those past the bound; the process ran out of files (CI, session 28). A failed accept() is logged
    and tried again after ACCEPT_RETRY_SECONDS, never in a loop of tracebacks."""

    def __init__(self, sock: socket.socket, slots: Slots, app: Any) -> None:
        self.sockets = [sock]
        self._sock, self._slots, self._app = sock, slots, app
        self._accepting: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()  # (a reference each: the loop keeps only weak ones)

    def _start(self) -> None:
        self._accepting = asyncio.get_running_loop().create_task(self._accept_loop())

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _addr = await loop.sock_accept(self._sock)
            except OSError as exc:
                log.warning("iso8583: accept failed (%s): trying again in %.1f s", exc.strerror or exc,
                            ACCEPT_RETRY_SECONDS)
                await asyncio.sleep(ACCEPT_RETRY_SECONDS)
                continue
            try:
                reader, writer = await asyncio.open_connection(sock=conn)
            except OSError:
                conn.close()
                continue
            if not self._slots.admit(writer, loop.time()):
                writer.transport.abort()
                continue
            handler = loop.create_task(self._serve(reader, writer))
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _connection(self._app, reader, writer, self._slots)
        finally:
            self._slots.release(writer)

    def close(self) -> None:
        """Stop accepting (the connections open are left to their handlers, as asyncio.Server leaves them)."""
        if self._accepting is not None:
            self._accepting.cancel()
        self._sock.close()

    async def wait_closed(self) -> None:
        if self._accepting is not None:
            await asyncio.gather(self._accepting, return_exceptions=True)

    async def serve_forever(self) -> None:
        """Until `close` (then CancelledError, as asyncio.Server's)."""
        assert self._accepting is not None
        await self._accepting

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


async def start(app: Any, host: str, port: int, max_connections: int = MAX_CONNECTIONS) -> Gateway:
    """Listen; the caller keeps the server (`async with`) and its App. At most `max_connections` are open at
    once: session 24's probe held 15,000 idle connections, bounded only by the process's open files, which
    a gateway shares with its database connections and log files; past the bound a new one takes the place
    of the oldest connection no terminal has shown its MAC on, or is closed at once when every place is a
    terminal's (`Slots`; the terminals connected are still answered). The bound is kept below the process's
    open-file limit (`connection_bound`), which would otherwise be reached first."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and connection_bound(max_connections, soft) < max_connections:
        max_connections = connection_bound(max_connections, soft)
        log.warning("iso8583: at most %d connections at once (the process may open %d files)", max_connections, soft)
    family = (await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                           flags=socket.AI_PASSIVE))[0][0]
    sock = socket.create_server((host, port), family=family, backlog=BACKLOG)
    sock.setblocking(False)
    gateway = Gateway(sock, Slots(max_connections), app)
    gateway._start()
    return gateway


def serve(app: Any, host: str, port: int) -> None:
    async def run() -> None:
        raise_open_files(MAX_CONNECTIONS * 2)  # (connection_bound keeps a quarter for the rest)
        server = await start(app, host, port)
        names = ", ".join(str(s.getsockname()) for s in server.sockets)
        log.warning("iso8583 gateway listening on %s", names)
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
