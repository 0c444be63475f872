"""EsputnikClient and Guard cases that benchmarks/mutation.py found untested (issue 18)."""
from __future__ import annotations

import socket
import threading

import pytest
import requests
import responses

from flask_appinbox import Contact, EsputnikClient, UpstreamError, UpstreamTimeout

BASE = "https://esputnik.test/api"
TOKEN = BASE + "/v1/auth/contact/token"
LIFETIME = 10.0  # the longest a test waits for a connection to end


@pytest.mark.parametrize("error,kind,message", [
    (requests.exceptions.ConnectionError, UpstreamError, "cannot reach eSputnik: ConnectionError"),
    (requests.exceptions.ReadTimeout, UpstreamTimeout, "eSputnik did not answer in time"),
])
def test_a_requests_exception_without_arguments_maps_like_any_other(error: type[Exception],
                                                                    kind: type[UpstreamError], message: str) -> None:
    # requests' exceptions take any arguments, none included; the client reads args[0] only when there is one.
    client = EsputnikClient("key", BASE, retries=0)
    with responses.RequestsMock() as upstream:
        upstream.post(TOKEN, body=error())
        with pytest.raises(UpstreamError) as info:
            client.contact_token(Contact(email="alice@example.com"))
    assert type(info.value) is kind and str(info.value) == message
    assert info.value.status_code is None and info.value.attempts == 1


class KeepAlive:
    """A real HTTP/1.1 server on 127.0.0.1 that answers every request ``{"token": "t"}`` and keeps the
    connection open; ``ended`` holds one event per connection, set when the client closes it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/api"
        self.ended: list[threading.Event] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed by the test
                return
            self.ended.append(threading.Event())
            threading.Thread(target=self._serve, args=(conn, self.ended[-1]), daemon=True).start()

    def _serve(self, conn: socket.socket, ended: threading.Event) -> None:
        conn.settimeout(LIFETIME)
        pending = b""
        with conn:
            try:
                while data := conn.recv(65536):
                    pending += data
                    head, sep, rest = pending.partition(b"\r\n\r\n")
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    if sep and len(rest) >= length:
                        pending = rest[length:]
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: 13\r\n\r\n{\"token\":\"t\"}")
            except OSError:
                return  # LIFETIME passed: `ended` stays unset
        ended.set()


def test_close_closes_the_session_s_connections() -> None:
    server = KeepAlive()
    client = EsputnikClient("key", server.url, retries=2)
    try:
        assert client.contact_token(Contact(email="alice@example.com")) == "t"
        assert client.contact_token(Contact(email="alice@example.com")) == "t"
        assert len(server.ended) == 1 and not server.ended[0].is_set()  # one connection, kept alive
        client.close()
        assert server.ended[0].wait(LIFETIME)
    finally:
        server.sock.close()
