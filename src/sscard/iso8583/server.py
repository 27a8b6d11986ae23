"""The gateway's TCP server: each message framed by a two-byte big-endian length (as most acquirers'
hosts and ATMs frame ISO 8583), answered in order on its connection; many terminals, one connection each."""

from __future__ import annotations

import asyncio
import logging
import resource
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
BACKLOG = 100  # connections the kernel queues for accept(); asyncio accepts up to this many in one go, each a
#               file, before the handlers that close those past the bound have run
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


async def start(app: Any, host: str, port: int, max_connections: int = MAX_CONNECTIONS) -> asyncio.Server:
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
    slots = Slots(max_connections)

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not slots.admit(writer, asyncio.get_running_loop().time()):
            writer.transport.abort()
            return
        try:
            await _connection(app, reader, writer, slots)
        finally:
            slots.release(writer)

    return await asyncio.start_server(accept, host, port, backlog=BACKLOG)


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
