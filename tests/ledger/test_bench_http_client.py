"""The bench's HTTP client against a server that closes kept-alive connections (uvicorn closes one after
every 500, and after its keep-alive timeout): the next request goes on a new connection instead of
failing as an IndexError (an empty status line) or a ConnectionResetError counted against the server."""

from __future__ import annotations

import socket
import threading

from sscard.bench.common import HttpClient

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


class OneAnswerPerConnection:
    """A server that answers the first request of each connection, then closes it without saying so
    (no `Connection: close`), as uvicorn does after an unhandled exception; or says so when `announce`."""

    def __init__(self, announce: bool = False):
        self.announce = announce
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += conn.recv(65536)
                answer = ANSWER.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n") if self.announce else ANSWER
                conn.sendall(answer)

    def close(self) -> None:
        self.sock.close()


def test_a_request_on_a_connection_the_server_closed_after_its_last_answer_goes_on_a_new_connection():
    server = OneAnswerPerConnection()
    client = HttpClient(server.port)
    try:
        for _ in range(5):
            assert client.post(0, "/x", {"a": 1}, "t") == (200, b"{}")
            assert client.get(0, "/y", "t") == (200, b"{}")
        assert server.connections == 10
        assert client.reconnects >= 1  # the others may have seen the close in time (Connection: close unsaid)
    finally:
        client.close()
        server.close()


def test_an_answer_that_says_connection_close_closes_the_clients_connection():
    server = OneAnswerPerConnection(announce=True)
    client = HttpClient(server.port)
    try:
        for _ in range(3):
            assert client.post(0, "/x", {"a": 1}, "t") == (200, b"{}")
            assert 0 not in client.socks
        assert server.connections == 3 and client.reconnects == 0
    finally:
        client.close()
        server.close()
