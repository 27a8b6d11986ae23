"""The gateway's TCP server: each message framed by a two-byte big-endian length (as most acquirers'
hosts and ATMs frame ISO 8583), answered in order on its connection; many terminals, one connection each."""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any

from .gateway import MAX_MESSAGE_BYTES, answer

log = logging.getLogger("sscard.iso8583")
IDLE_SECONDS = 300.0  # a connection with no message for this long is closed (terminals send 0800 echoes)
READ_SECONDS = 10.0  # a message's bytes, once its length is read, must arrive within this; and the first
#                      message of a connection (a terminal connects to send): one that says nothing is not held
WRITE_SECONDS = 10.0  # an answer must be taken by the terminal within this: one that stops reading is cut off


async def _connection(app: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    wait = READ_SECONDS  # for the first message; IDLE_SECONDS between messages once one came
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
            out = await answer(app, raw)
            if out is None:
                return
            writer.write(struct.pack(">H", len(out)) + out)
            try:
                await asyncio.wait_for(writer.drain(), WRITE_SECONDS)
            except TimeoutError:  # it sends and never reads: its answers and the connection were held for ever
                log.info("iso8583 answers not taken within %.0f s: connection aborted", WRITE_SECONDS)
                writer.transport.abort()  # (close() would wait for the unread answers to be flushed)
                return
            except ConnectionError:
                return
    finally:
        writer.close()


async def start(app: Any, host: str, port: int) -> asyncio.Server:
    """Listen; the caller keeps the server (`async with`) and its App."""
    return await asyncio.start_server(lambda r, w: _connection(app, r, w), host, port)


def serve(app: Any, host: str, port: int) -> None:
    async def run() -> None:
        server = await start(app, host, port)
        names = ", ".join(str(s.getsockname()) for s in server.sockets)
        log.warning("iso8583 gateway listening on %s", names)
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
