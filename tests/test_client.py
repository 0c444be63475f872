"""EsputnikClient on its own: the request, the answers, urllib3's retries, the time budget, the guard and
the bulkhead it is given.

``responses`` mocks requests at the adapter: it applies urllib3's ``Retry`` to 5xx answers only (never to
timeouts or connection errors), does not sleep the backoff and leaves ``resp.raw.retries.history`` empty.
So it serves the status-level cases; retries, timeouts, hangs, trickles and connections are tested against
:class:`Upstream`, a real HTTP/1.1 server on 127.0.0.1 scripted per request.
"""
from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
import requests
import responses

from flask_appinbox import (
    Contact,
    EsputnikClient,
    UpstreamBusy,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from flask_appinbox._version import __version__
from flask_appinbox.client import (
    BACKOFF,
    BACKOFF_MAX,
    DEFAULT_RETRY_AFTER,
    MAX_BODY,
    MAX_RETRY_AFTER,
    USER_AGENT,
    parse_retry_after,
    time_budget,
)
from flask_appinbox.guard import HANG_CALLS, Guard

KEY = "sk-test-key-0123456789SECRET"
BASE = "https://esputnik.test/api"
TOKEN = BASE + "/v1/auth/contact/token"
CONTACT = BASE + "/v1/contact"
ALICE = Contact(email="alice@example.com")
TRICKLE_EVERY = 0.05  # seconds between two trickled bytes
SLACK = 1.5  # what a bound on a call's duration allows for a loaded machine
LIFETIME = 10.0  # the longest a hang or a trickle lasts: far beyond any budget here, so a test fails, never hangs


# -- a real upstream on 127.0.0.1 -----------------------------------------------------------------

Action = Callable[["Upstream", socket.socket], bool]  # True: keep the connection for the next request


def answer(status: int = 200, body: bytes = b'{"token":"t"}', headers: dict[str, str] | None = None) -> Action:
    def act(server: Upstream, conn: socket.socket) -> bool:
        head = [f"HTTP/1.1 {status} X", "Content-Type: application/json", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        conn.sendall("\r\n".join(head).encode() + b"\r\n\r\n" + body)
        return True
    return act


def hang(server: Upstream, conn: socket.socket) -> bool:
    """Read the request, answer nothing (until the test ends, LIFETIME at most)."""
    server.stopped.wait(LIFETIME)
    return False


def reset(server: Upstream, conn: socket.socket) -> bool:
    """Read the request, then reset the connection (RST, not FIN)."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return False


def trickle_headers(count: int) -> Action:
    """The status line, then ``count`` header bytes one per TRICKLE_EVERY, then nothing."""
    def act(server: Upstream, conn: socket.socket) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for byte in (b"X-Slow: " + b"1" * count)[:count]:
            if server.stopped.wait(TRICKLE_EVERY):
                return False
            conn.sendall(bytes([byte]))
        return hang(server, conn)
    return act


def trickle_body(server: Upstream, conn: socket.socket) -> bool:
    """Headers at once, then the body one byte per TRICKLE_EVERY for as long as the test runs (LIFETIME at most)."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
    until = time.monotonic() + LIFETIME
    while not server.stopped.wait(TRICKLE_EVERY) and time.monotonic() < until:
        conn.sendall(b" ")
    return False


def cut_body(server: Upstream, conn: socket.socket) -> bool:
    """Headers promising 100 bytes, 10 of them, then the connection closes."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"token\":")
    return False


def stall_body(server: Upstream, conn: socket.socket) -> bool:
    """Headers promising 100 bytes, 10 of them, then nothing."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"token\":")
    return hang(server, conn)


class Upstream:
    """An HTTP/1.1 server on 127.0.0.1: request n (from 1, over all connections) gets ``script[n - 1]``,
    the last action repeating. Counts connections and requests; keeps the request bodies. Its threads
    stop by themselves after 60 s; ``close`` stops them at once."""

    def __init__(self, *script: Action) -> None:
        self.script = script or (answer(),)
        self.connections = self.requests = 0
        self.bodies: list[bytes] = []
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/api"
        self._start(self._accept)

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        until = time.monotonic() + 60
        while not self.stopped.is_set() and time.monotonic() < until:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # the accept timeout, or the socket closed
                continue
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
            self._start(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        buffered = b""
        try:
            while not self.stopped.is_set():
                while b"\r\n\r\n" not in buffered:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffered += data
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buffered) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffered += data
                with self._lock:
                    self.requests += 1
                    self.bodies.append(buffered[:length])
                    action = self.script[min(self.requests, len(self.script)) - 1]
                buffered = buffered[length:]
                if not action(self, conn):
                    return
        except OSError:  # the client went away
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for thread in self._threads:
            thread.join(5)
        self._sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Upstream]]:
    servers: list[Upstream] = []

    def start(*script: Action) -> Upstream:
        servers.append(Upstream(*script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def make_client() -> Iterator[Callable[..., EsputnikClient]]:
    clients: list[EsputnikClient] = []

    def make(base_url: str = BASE, **kwargs: Any) -> EsputnikClient:
        clients.append(EsputnikClient(KEY, base_url, **kwargs))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., EsputnikClient]) -> EsputnikClient:
    return make_client(timeout=1.0, retries=2)


def failure(call: Callable[[], Any]) -> tuple[UpstreamError, float]:
    """The UpstreamError ``call`` raised and how long it took."""
    started = time.monotonic()
    with pytest.raises(UpstreamError) as info:
        call()
    return info.value, time.monotonic() - started


class RecordingGuard(Guard):
    """A real guard that also keeps what the client told it."""

    def __init__(self, timeout: float = 1.0) -> None:
        super().__init__(timeout, clock=lambda: 1000.0)
        self.admitted = 0
        self.outcomes: list[tuple[int, bool, bool]] = []

    def admit(self) -> bool:
        self.admitted += 1
        return super().admit()

    def record(self, attempts: int, ok: bool, timed_out: bool = False) -> None:
        self.outcomes.append((attempts, ok, timed_out))
        super().record(attempts, ok, timed_out)


# -- the request and the answer (responses) -------------------------------------------------------

def test_token_payload_and_headers(client: EsputnikClient, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN, json={"token": "t"}, match=[responses.matchers.json_params_matcher(
        {"email": "a@b.co", "externalCustomerId": "7"})])
    assert client.contact_token(Contact(email="A@b.co", external_customer_id="7")) == "t"
    assert client.contact_token({"email": "a@b.co", "externalCustomerId": "7"}) == "t"
    request = upstream.calls[0].request
    assert request.headers["Authorization"] == requests.auth._basic_auth_str("flask-appinbox", KEY)
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith(f"Flask-AppInbox/{__version__} python-requests/")
    body = request.body.decode() if isinstance(request.body, bytes) else request.body
    assert body == '{"email":"a@b.co","externalCustomerId":"7"}'
    assert len(upstream.calls) == 2


def test_unknown_contact_is_empty_string(client: EsputnikClient, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN, json={"token": ""})
    assert client.contact_token(Contact(phone="380501234567")) == ""


def test_empty_contact_is_refused_before_any_call(client: EsputnikClient, upstream: responses.RequestsMock) -> None:
    for empty in (Contact(), {}, {"email": ""}):
        with pytest.raises(ValueError):
            client.contact_token(empty)
    with pytest.raises(ValueError):
        client.create_contact(Contact())
    assert not upstream.calls


def test_an_api_key_is_required() -> None:
    with pytest.raises(ValueError):
        EsputnikClient("", BASE)


def test_create_contact_body(client: EsputnikClient, upstream: responses.RequestsMock) -> None:
    upstream.post(CONTACT, json={"id": 1}, match=[responses.matchers.json_params_matcher({
        "externalCustomerId": "u1",
        "channels": [{"type": "email", "value": "a@b.co"}, {"type": "sms", "value": "380501234567"}],
    })])
    upstream.post(CONTACT, json={"id": 2}, match=[responses.matchers.json_params_matcher(
        {"externalCustomerId": "u2"})])
    upstream.post(CONTACT, json={"id": 3}, match=[responses.matchers.json_params_matcher(
        {"channels": [{"type": "sms", "value": "380501234567"}]})])
    assert client.create_contact(Contact(email="a@b.co", phone="+380501234567", external_customer_id="u1")) == {"id": 1}
    assert client.create_contact({"externalCustomerId": "u2"}) == {"id": 2}
    assert client.create_contact(Contact(phone="+380 50 123 45 67")) == {"id": 3}
    assert len(upstream.calls) == 3


@pytest.mark.parametrize("status", [400, 401, 403])
def test_rejections_are_not_retried(client: EsputnikClient, upstream: responses.RequestsMock, status: int) -> None:
    upstream.post(TOKEN, status=status)
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamRejected
    assert (exc.status_code, exc.status, exc.error, exc.attempts) == (status, 502, "upstream_rejected", 1)
    assert len(upstream.calls) == 1


def test_other_4xx_are_upstream_errors_not_retried(client: EsputnikClient, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN, status=404)
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamError and (exc.status_code, exc.status, exc.error) == (404, 502, "upstream_error")
    assert len(upstream.calls) == 1


def test_a_redirect_is_not_followed(client: EsputnikClient, upstream: responses.RequestsMock) -> None:
    """The key goes to eSputnik's API only: a 3xx is a failure, wherever it points."""
    upstream.post(TOKEN, status=307, headers={"Location": BASE + "/elsewhere"})
    upstream.post(BASE + "/elsewhere", json={"token": "t"})
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamError and exc.status_code == 307
    assert [call.request.url for call in upstream.calls] == [TOKEN]


@pytest.mark.parametrize("header,expected", [({"Retry-After": "30"}, 30), ({}, DEFAULT_RETRY_AFTER),
                                             ({"Retry-After": "soon"}, DEFAULT_RETRY_AFTER)])
def test_429_is_not_retried_and_passes_retry_after_on(client: EsputnikClient, upstream: responses.RequestsMock,
                                                      header: dict[str, str], expected: int) -> None:
    upstream.post(TOKEN, status=429, headers=header)
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamRateLimited
    assert (exc.retry_after, exc.status_code, exc.status, exc.error) == (expected, 429, 503, "upstream_rate_limited")
    assert exc.retry_after == expected
    assert len(upstream.calls) == 1


def test_5xx_is_retried_by_the_adapter(client: EsputnikClient, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN, status=503)
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamError and exc.status_code == 503 and exc.status == 502
    assert len(upstream.calls) == 3


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after("0") == 0
    assert parse_retry_after(" 7 ") == 7
    assert parse_retry_after("0000000000000000000001") == 1  # leading zeros are no magnitude
    assert parse_retry_after("86400") == MAX_RETRY_AFTER
    assert parse_retry_after("86401") == MAX_RETRY_AFTER
    assert parse_retry_after("999999999") == MAX_RETRY_AFTER
    assert parse_retry_after("9" * 5000) == MAX_RETRY_AFTER
    for garbage in (None, "", "soon", "-1", "1.5", "²", "١٢", "Wed, 21 Oct 2015 07:28:00", "Mon, 99 Foo 0 0:0:0 GMT"):
        assert parse_retry_after(garbage) == DEFAULT_RETRY_AFTER, garbage
    later = datetime.now(timezone.utc) + timedelta(seconds=90)
    assert 85 <= parse_retry_after(format_datetime(later, usegmt=True)) <= 91
    assert parse_retry_after(format_datetime(later + timedelta(days=3), usegmt=True)) == MAX_RETRY_AFTER
    earlier = datetime.now(timezone.utc) - timedelta(seconds=90)
    assert parse_retry_after(format_datetime(earlier, usegmt=True)) == 0
    assert (DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER) == (5, 86400)


def test_a_body_over_64_kib_is_refused(client: EsputnikClient, upstream: responses.RequestsMock) -> None:
    filler = b'{"token":"t","x":"' + b"x" * MAX_BODY + b'"}'
    upstream.post(TOKEN, body=filler[:MAX_BODY - 2] + b'"}', content_type="application/json")
    assert client.contact_token(ALICE) == "t"  # exactly 64 KiB is read
    upstream.replace(responses.POST, TOKEN, body=filler[:MAX_BODY - 1] + b'"}', content_type="application/json")
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamError and "64 KiB" in str(exc) and exc.status_code == 200
    assert len(upstream.calls) == 2
    assert MAX_BODY == 64 * 1024


@pytest.mark.parametrize("body", [b"<html>busy</html>", b"", b'{"token": 5}', b'["t"]', b'{"tok": "t"}', b"\xff\xfe"])
def test_garbage_answers_are_upstream_errors(client: EsputnikClient, upstream: responses.RequestsMock,
                                             body: bytes) -> None:
    upstream.post(TOKEN, body=body, content_type="application/json")
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamError and exc.status_code == 200 and exc.status == 502
    assert len(upstream.calls) == 1


@pytest.mark.parametrize("error,kind", [
    (requests.exceptions.ReadTimeout, UpstreamTimeout),
    (requests.exceptions.ConnectTimeout, UpstreamTimeout),
    (requests.exceptions.ConnectionError, UpstreamError),
    (requests.exceptions.ChunkedEncodingError, UpstreamError),
])
def test_requests_exceptions_map_to_upstream_errors(client: EsputnikClient, upstream: responses.RequestsMock,
                                                    error: type[Exception], kind: type[UpstreamError]) -> None:
    upstream.post(TOKEN, body=error("boom"))
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is kind and exc.status_code is None
    assert exc.status == (504 if kind is UpstreamTimeout else 502)


# -- retries, timeouts and connections (a real server) ----------------------------------------------

def test_time_budget() -> None:
    # Every attempt's timeout, and every backoff at its longest: none before the first retry, then
    # 0.2 s, 0.4 s, ... capped at 1 s, each with up to 0.1 s of jitter.
    assert (BACKOFF, BACKOFF_MAX) == (0.1, 1.0)
    assert time_budget(1.0, 0) == pytest.approx(1.0)
    assert time_budget(1.0, 1) == pytest.approx(2.0)
    assert time_budget(0.3, 2) == pytest.approx(0.9 + 0.3)
    assert time_budget(1.0, 5) == pytest.approx(6.0 + 0.3 + 0.5 + 0.9 + 1.0)


def test_5xx_is_retried_with_urllib3_backoff(serve: Callable[..., Upstream],
                                             make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(answer(500, b"{}"))
    client = make_client(server.url, timeout=1.0, retries=2)
    exc, elapsed = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamError and exc.status_code == 500
    assert server.requests == 3 and exc.attempts == 3
    assert server.connections == 1  # the 5xx answers keep the connection
    # urllib3 waits nothing before the first retry and at least 0.2 s before the second.
    assert elapsed >= 0.19
    assert elapsed <= client.time_budget + SLACK


def test_a_retry_that_succeeds_counts_its_attempts(serve: Callable[..., Upstream],
                                                   make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(answer(502, b"{}"), answer(200, b'{"token":"second"}'))
    guard = RecordingGuard()
    client = make_client(server.url, timeout=1.0, retries=2, guard=guard)
    assert client.contact_token(ALICE) == "second"
    assert server.requests == 2
    assert guard.outcomes == [(2, True, False)]


@pytest.mark.parametrize("retries", [0, 2])
def test_a_hanging_server_is_retried_within_the_budget(serve: Callable[..., Upstream],
                                                       make_client: Callable[..., EsputnikClient],
                                                       retries: int) -> None:
    server = serve(hang)
    client = make_client(server.url, timeout=0.2, retries=retries)
    exc, elapsed = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamTimeout and exc.status == 504 and exc.status_code is None
    assert server.requests == retries + 1 and exc.attempts == retries + 1
    assert elapsed >= (retries + 1) * 0.2  # every attempt waited its whole read timeout
    assert elapsed <= client.time_budget + SLACK


def test_connection_refused_is_retried(make_client: Callable[..., EsputnikClient]) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    guard = RecordingGuard()
    client = make_client(f"http://127.0.0.1:{port}/api", timeout=1.0, retries=2, guard=guard)
    exc, elapsed = failure(lambda: client.contact_token(ALICE))
    # A refusal is a fast failure, not a timeout (urllib3's NewConnectionError subclasses ConnectTimeoutError),
    # and the guard must not count it towards a hang.
    assert type(exc) is UpstreamError and exc.error == "upstream_error" and exc.status_code is None
    assert exc.attempts == 3
    assert "ConnectionError" in str(exc)
    assert guard.outcomes == [(3, False, False)]
    assert elapsed >= 0.19  # a refusal is instant: only the second retry's backoff (>= 0.2 s) takes time

    single = make_client(f"http://127.0.0.1:{port}/api", timeout=1.0, retries=0)
    exc, _ = failure(lambda: single.contact_token(ALICE))
    assert type(exc) is UpstreamError and exc.attempts == 1


def test_a_connect_timeout_is_retried(make_client: Callable[..., EsputnikClient]) -> None:
    """A listener whose accept queue is full: the kernel drops the client's SYN, the connect times out."""
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            time.sleep(0.05)  # the fillers' handshakes complete into the queue
            client = make_client(f"http://127.0.0.1:{port}/api", timeout=0.1, retries=2)
            exc, elapsed = failure(lambda: client.contact_token(ALICE))
        finally:
            for filler in fillers:
                filler.close()
    assert type(exc) is UpstreamTimeout and exc.attempts == 3
    assert elapsed >= 3 * 0.1 + 0.19  # three connect timeouts and the second retry's backoff


def test_a_reset_connection_is_retried(serve: Callable[..., Upstream],
                                       make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(reset, reset, answer(200, b'{"token":"third"}'))
    client = make_client(server.url, timeout=1.0, retries=2)
    assert client.contact_token(ALICE) == "third"
    assert server.requests == 3 and server.connections == 3

    server = serve(reset)
    guard = RecordingGuard()
    client = make_client(server.url, timeout=1.0, retries=2, guard=guard)
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamError and exc.status_code is None
    assert server.requests == 3 and exc.attempts == 3
    assert guard.outcomes == [(3, False, False)]  # a failure, not a timeout


def test_a_trickled_body_is_cut_at_the_budget(serve: Callable[..., Upstream],
                                              make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(trickle_body)
    guard = RecordingGuard()
    client = make_client(server.url, timeout=0.2, retries=1, guard=guard)
    exc, elapsed = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamTimeout and exc.status == 504
    assert "time budget" in str(exc)
    # Each byte came well within the read timeout: only the call's budget ends the read.
    assert client.time_budget < elapsed <= client.time_budget + SLACK
    assert server.requests == 1
    assert guard.outcomes == [(1, False, True)]


def test_trickled_headers_are_bounded_by_the_read_timeout_per_byte(serve: Callable[..., Upstream],
                                                                    make_client: Callable[..., EsputnikClient]) -> None:
    """requests' timeouts are per socket operation: while the headers trickle, every byte restarts the read
    timeout, so the time budget does not bound them (documented in ``time_budget``). A header cannot be
    endless (http.client stops at 64 KiB a line and 100 lines), so the call still ends: at most ``timeout``
    per byte, and ``timeout`` once the bytes stop."""
    count = 8
    server = serve(trickle_headers(count))
    client = make_client(server.url, timeout=0.2, retries=0)
    exc, elapsed = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamTimeout
    assert server.requests == 1 and exc.attempts == 1
    assert elapsed <= (count + 1) * client.timeout + SLACK


def test_a_body_cut_short_is_an_upstream_error(serve: Callable[..., Upstream],
                                               make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(cut_body)
    client = make_client(server.url, timeout=1.0, retries=2)
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamError and "broke off" in str(exc)
    assert server.requests == 1  # the answer had begun: not retried


def test_a_body_that_stops_times_out(serve: Callable[..., Upstream],
                                     make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(stall_body)
    guard = RecordingGuard()
    client = make_client(server.url, timeout=0.2, retries=2, guard=guard)
    exc, elapsed = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamTimeout and "broke off" in str(exc)
    assert server.requests == 1  # the answer had begun: not retried
    assert guard.outcomes == [(1, False, True)]
    assert elapsed <= client.time_budget + SLACK


def test_a_body_over_64_kib_from_a_real_server(serve: Callable[..., Upstream],
                                               make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(answer(200, b'{"token":"' + b"x" * MAX_BODY + b'"}'))
    client = make_client(server.url, timeout=1.0, retries=2)
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamError and "64 KiB" in str(exc) and exc.status_code == 200
    assert server.requests == 1


def test_one_connection_is_kept_alive(serve: Callable[..., Upstream],
                                      make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(answer(200, b'{"token":"t"}'))
    client = make_client(server.url)
    for _ in range(5):
        assert client.contact_token(ALICE) == "t"
    assert (server.requests, server.connections) == (5, 1)
    assert server.bodies == [b'{"email":"alice@example.com"}'] * 5


# -- the guard and the bulkhead the client is given -------------------------------------------------

def hung_guard(timeout: float = 1.0) -> RecordingGuard:
    """A guard that has just seen eSputnik hang: its next probe is a second away."""
    guard = RecordingGuard(timeout)
    now = 1000.0
    guard.clock = lambda: now
    for _ in range(HANG_CALLS):
        guard.record(1, False, True)
    now += timeout
    guard.record(1, False, True)
    assert guard.hung
    guard.outcomes.clear()
    return guard


def test_a_hung_guard_refuses_before_any_request(serve: Callable[..., Upstream],
                                                 make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(answer())
    guard = hung_guard()
    client = make_client(server.url, guard=guard)
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamUnavailable and exc.retry_after == 1 and exc.status == 503
    assert exc.attempts == 0
    assert guard.admitted == 1 and guard.outcomes == []
    assert server.requests == 0 and server.connections == 0


def test_the_guard_is_consulted_and_told(serve: Callable[..., Upstream],
                                         make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(answer(200, b'{"token":"t"}'), answer(401, b"{}"), answer(429, b"{}"), answer(200, b"{}"))
    guard = RecordingGuard()
    client = make_client(server.url, guard=guard)
    assert client.contact_token(ALICE) == "t"
    for kind in (UpstreamRejected, UpstreamRateLimited, UpstreamError):
        exc, _ = failure(lambda: client.contact_token(ALICE))
        assert type(exc) is kind
    assert guard.admitted == 4
    # A 401 is an answer: eSputnik is up. A 429 is not a success. A 200 without a token is eSputnik's answer.
    assert guard.outcomes == [(1, True, False), (1, True, False), (1, False, False), (1, True, False)]


def test_no_retries_when_the_guard_says_so(serve: Callable[..., Upstream],
                                           make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(answer(500, b"{}"))
    guard = RecordingGuard()
    guard.record(10, False)  # 10 attempts, none succeeded: the retry budget is spent
    guard.outcomes.clear()
    client = make_client(server.url, retries=2, guard=guard)
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert exc.status_code == 500 and exc.attempts == 1
    assert server.requests == 1
    assert guard.outcomes == [(1, False, False)]


def test_a_probe_is_made_without_retries(serve: Callable[..., Upstream],
                                         make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(hang)
    guard = hung_guard(timeout=0.2)
    now = guard.clock() + 1.0  # the probe's second has come
    guard.clock = lambda: now
    client = make_client(server.url, timeout=0.2, retries=2, guard=guard)
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamTimeout and exc.attempts == 1
    assert server.requests == 1
    exc, _ = failure(lambda: client.contact_token(ALICE))  # the same second: refused
    assert type(exc) is UpstreamUnavailable and server.requests == 1


def test_a_full_bulkhead_refuses_at_once(serve: Callable[..., Upstream],
                                         make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(answer(200, b'{"token":"t"}'), answer(500, b"{}"), answer(200, b'{"token":"t"}'))
    bulkhead = threading.BoundedSemaphore(1)
    guard = RecordingGuard()
    client = make_client(server.url, retries=0, guard=guard, bulkhead=bulkhead)
    assert client.contact_token(ALICE) == "t"
    assert bulkhead.acquire(blocking=False)  # the call gave its slot back
    # The slot is freed a second from now: a call that waited for it would get it and reach the server.
    freeing = threading.Timer(1.0, bulkhead.release)
    freeing.start()
    try:
        exc, _ = failure(lambda: client.contact_token(ALICE))
    finally:
        freeing.cancel()
        freeing.join()
    assert server.requests == 1  # refused at once, not queued for the slot
    assert type(exc) is UpstreamBusy and exc.retry_after == 1 and exc.status == 503 and exc.attempts == 0
    assert guard.admitted == 1  # the guard did not see it either
    bulkhead.release()
    exc, _ = failure(lambda: client.contact_token(ALICE))  # a failed call gives its slot back too
    assert exc.status_code == 500
    assert bulkhead.acquire(blocking=False)
    bulkhead.release()
    assert client.contact_token(ALICE) == "t" and server.requests == 3


def test_a_bulkhead_is_shared_by_threads(upstream: responses.RequestsMock,
                                         make_client: Callable[..., EsputnikClient]) -> None:
    entered, release = threading.Semaphore(0), threading.Event()

    def slow(request: Any) -> tuple[int, dict[str, str], str]:
        entered.release()
        release.wait(10)
        return 200, {}, '{"token": "slow"}'

    upstream.add_callback(responses.POST, TOKEN, callback=slow)
    client = make_client(bulkhead=threading.BoundedSemaphore(2))
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(client.contact_token(ALICE))) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        assert entered.acquire(timeout=5) and entered.acquire(timeout=5)
        exc, _ = failure(lambda: client.contact_token(ALICE))
        assert type(exc) is UpstreamBusy
    finally:
        release.set()
        for thread in threads:
            thread.join(10)
    assert results == ["slow", "slow"] and len(upstream.calls) == 2


# -- the key --------------------------------------------------------------------------------------

def test_the_key_is_in_no_repr_message_or_log(serve: Callable[..., Upstream],
                                              make_client: Callable[..., EsputnikClient],
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[UpstreamError] = []
    client = make_client(timeout=0.2, retries=1)
    assert KEY not in repr(client) and KEY not in str(client)
    for kwargs in ({"status": 400}, {"status": 401}, {"status": 429}, {"status": 500}, {"body": "not json"},
                   {"json": {"token": None}}, {"body": "x" * (MAX_BODY + 1)},
                   {"body": requests.exceptions.ConnectionError(f"https://flask-appinbox:{KEY}@esputnik.test")},
                   {"body": requests.exceptions.ReadTimeout(f"Authorization: {KEY}")}):
        with responses.RequestsMock() as upstream:
            upstream.post(TOKEN, **kwargs)
            errors.append(failure(lambda: client.contact_token(ALICE))[0])
    for script in (hang, reset, trickle_body, cut_body):
        server = serve(script)
        errors.append(failure(lambda: make_client(server.url, timeout=0.2, retries=0).contact_token(ALICE))[0])
    errors.append(failure(lambda: make_client(BASE, guard=hung_guard()).contact_token(ALICE))[0])
    assert len(errors) == 14
    for exc in errors:
        shown = [str(exc), repr(exc), str(exc.args), str(exc.body())]
        assert not any(KEY in text for text in shown), exc
        assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)
    assert KEY not in caplog.text
    assert "failed after" in caplog.text  # the failures were logged, without the key
