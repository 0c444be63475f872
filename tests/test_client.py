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
import urllib3

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
from flask_appinbox._guard import FAILED, OK, TIMEOUT, Guard
from flask_appinbox._version import __version__
from flask_appinbox.client import (
    DEFAULT_RETRY_AFTER,
    MAX_BODY,
    MAX_RETRY_AFTER,
    USER_AGENT,
    parse_retry_after,
)

KEY = "sk-test-key-0123456789SECRET"
BASE = "https://esputnik.test/api"
TOKEN = BASE + "/v1/auth/contact/token"
CONTACT = BASE + "/v1/contact"
ALICE = Contact(email="alice@example.com")
TRICKLE_EVERY = 0.05  # seconds between two trickled bytes
LIFETIME = 10.0  # the longest a hang or a trickle lasts: far beyond any budget here, so a test fails, never hangs
URLLIB3_2 = int(urllib3.__version__.split(".")[0]) >= 2
READ1 = hasattr(urllib3.response.HTTPResponse, "read1")  # urllib3 2.2 and later: a trickled body is cut at the budget


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


def trickle_body_for(seconds: float) -> Action:
    """Headers at once, then the body one byte per TRICKLE_EVERY for ``seconds``; then the connection closes,
    short of the Content-Length."""
    def act(server: Upstream, conn: socket.socket) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
        until = time.monotonic() + seconds
        while not server.stopped.wait(TRICKLE_EVERY) and time.monotonic() < until:
            conn.sendall(b" ")
        return False
    return act


trickle_body = trickle_body_for(LIFETIME)  # for as long as the test runs


def cut_body(server: Upstream, conn: socket.socket) -> bool:
    """Headers promising 100 bytes, 10 of them, then the connection closes."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"token\":")
    return False


def reset_mid_answer(server: Upstream, conn: socket.socket) -> bool:
    """Headers promising 100 bytes, 10 of them, then a reset (RST)."""
    cut_body(server, conn)
    return reset(server, conn)


def stall_body(server: Upstream, conn: socket.socket) -> bool:
    """Headers promising 100 bytes, 10 of them, then nothing."""
    cut_body(server, conn)
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

    def make(base_url: str = BASE, *, guard: Guard | None = None, bulkhead: threading.BoundedSemaphore | None = None,
             **kwargs: Any) -> EsputnikClient:
        clients.append(EsputnikClient(KEY, base_url, **kwargs))
        clients[-1]._guard, clients[-1]._bulkhead = guard, bulkhead  # as the extension wires them
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
        super().__init__(timeout, 3 * timeout, clock=lambda: 1000.0)
        self.admitted = 0
        self.outcomes: list[tuple[int, str | None]] = []

    def admit(self) -> Any:
        self.admitted += 1
        return super().admit()

    def done(self, call: Any, attempts: int, outcome: str | None) -> None:
        self.outcomes.append((attempts, outcome))
        super().done(call, attempts, outcome)


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


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_5xx_are_retried(client: EsputnikClient, upstream: responses.RequestsMock, status: int) -> None:
    upstream.post(TOKEN, status=status)
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamError and exc.status_code == status and exc.status == 502
    assert len(upstream.calls) == 3 and exc.attempts == 3


@pytest.mark.parametrize("status", [500, 501, 505])
def test_other_5xx_are_not_retried(client: EsputnikClient, upstream: responses.RequestsMock, status: int) -> None:
    """A 500 may come after eSputnik did part of the work; the contract retries 502/503/504 only."""
    upstream.post(TOKEN, status=status)
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamError and exc.status_code == status and exc.attempts == 1
    assert len(upstream.calls) == 1


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

def test_the_default_timeout_is_1_s_to_connect_and_3_s_to_read() -> None:
    client = EsputnikClient(KEY)
    assert client.timeout == (1.0, 3.0) and client.retries == 2
    assert EsputnikClient(KEY, timeout=2).timeout == (2.0, 2.0)


def test_the_timeout_pair_reaches_requests(upstream: responses.RequestsMock) -> None:
    seen: list[Any] = []
    upstream.add_callback(responses.POST, TOKEN, callback=lambda request: (seen.append(request.req_kwargs["timeout"])
                                                                            or (200, {}, '{"token": "t"}')))
    assert EsputnikClient(KEY, BASE, timeout=(0.5, 2.5)).contact_token(ALICE) == "t"
    assert seen == [(0.5, 2.5)]


def test_5xx_is_retried_with_urllib3_backoff(serve: Callable[..., Upstream],
                                             make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(answer(503, b"{}"))
    client = make_client(server.url, timeout=1.0, retries=2)
    exc, elapsed = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamError and exc.status_code == 503
    assert server.requests == 3 and exc.attempts == 3
    assert server.connections == 1  # the 5xx answers keep the connection
    # urllib3 waits nothing before the first retry and at least 0.2 s before the second.
    assert elapsed >= 0.19


def test_a_retry_that_succeeds_counts_its_attempts(serve: Callable[..., Upstream],
                                                   make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(answer(502, b"{}"), answer(200, b'{"token":"second"}'))
    guard = RecordingGuard()
    client = make_client(server.url, timeout=1.0, retries=2, guard=guard)
    assert client.contact_token(ALICE) == "second"
    assert server.requests == 2
    assert guard.outcomes == [(2, OK)]


@pytest.mark.parametrize("retries", [0, 2])
def test_a_read_timeout_is_not_retried(serve: Callable[..., Upstream], make_client: Callable[..., EsputnikClient],
                                       retries: int) -> None:
    """Another attempt would hold the thread a whole timeout more, and eSputnik may already be working on it."""
    server = serve(hang)
    guard = RecordingGuard(0.2)
    client = make_client(server.url, timeout=(1.0, 0.2), retries=retries, guard=guard)
    exc, elapsed = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamTimeout and exc.status == 504 and exc.status_code is None
    assert server.requests == 1 and exc.attempts == 1
    assert guard.outcomes == [(1, TIMEOUT)]  # one attempt counted, not retries + 1
    assert elapsed >= 0.2


def test_a_retry_starts_only_within_one_read_timeout(serve: Callable[..., Upstream],
                                                     make_client: Callable[..., EsputnikClient]) -> None:
    """Slow 503s: retries stop when the call has run for a read timeout, before the count is spent."""
    def slow_503(server: Upstream, conn: socket.socket) -> bool:
        time.sleep(0.3)
        return answer(503, b"{}")(server, conn)

    server = serve(slow_503)
    client = make_client(server.url, timeout=(1.0, 2.0), retries=5)
    exc, elapsed = failure(lambda: client.contact_token(ALICE))
    assert exc.status_code == 503 and server.requests == exc.attempts
    assert 1 <= exc.attempts < 6  # 4 on an idle machine: 0.3 + 0.3 + 0.2 + 0.3 + 0.4 + 0.3 s, then 0.8 s of backoff
    assert elapsed >= 0.3 * exc.attempts


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
    assert guard.outcomes == [(3, FAILED)]
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
            client = make_client(f"http://127.0.0.1:{port}/api", timeout=(0.1, 1.0), retries=2)
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
    assert guard.outcomes == [(3, FAILED)]  # a failure, not a timeout


def test_a_trickled_body_is_cut_at_the_budget(serve: Callable[..., Upstream],
                                              make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(trickle_body)
    guard = RecordingGuard()
    client = make_client(server.url, timeout=0.2, retries=1, guard=guard)
    exc, elapsed = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamTimeout and exc.status == 504
    assert "time budget" in str(exc)
    # Each byte came well within the read timeout: only the call's budget ends the read (the trickle
    # itself goes on for LIFETIME).
    assert elapsed > client.time_budget
    if READ1:  # cut at the budget; older urllib3 reads on until the trickle ends (the next test)
        assert elapsed < LIFETIME / 2
    assert server.requests == 1
    assert guard.outcomes == [(1, TIMEOUT)]


def test_a_body_that_breaks_off_past_the_budget_is_a_timeout(serve: Callable[..., Upstream],
                                                             make_client: Callable[..., EsputnikClient],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib3 before 2.2 (no ``HTTPResponse.read1``: urllib3 2.1.0 is a common pin) reads a trickled body
    until it ends. When the connection then closes short of its Content-Length, past the call's budget, the
    answer is the budget's 504, not retried: not a 502 "broke off" (urllib3 2.0 and 2.1 raise then)."""
    for cls in urllib3.response.HTTPResponse.__mro__:  # urllib3 < 2.2, on any urllib3
        if "read1" in vars(cls):
            monkeypatch.delattr(cls, "read1")
    server = serve(trickle_body_for(1.0))
    guard = RecordingGuard()
    client = make_client(server.url, timeout=0.2, retries=1, guard=guard)
    exc, elapsed = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamTimeout and exc.status == 504
    assert "time budget" in str(exc)
    assert elapsed > 1.0 > client.time_budget  # read to the trickle's end, then the budget's answer
    assert server.requests == 1
    assert guard.outcomes == [(1, TIMEOUT)]


def test_trickled_headers_are_bounded_by_the_read_timeout_per_byte(serve: Callable[..., Upstream],
                                                                    make_client: Callable[..., EsputnikClient]) -> None:
    """requests' timeouts are per socket operation: while the headers trickle, every byte restarts the read
    timeout, so the time budget does not bound them (documented; the guard sees such a call in flight past
    its budget). A header cannot be endless (http.client stops at 64 KiB a line and 100 lines), so the call
    still ends: at most ``timeout`` per byte, and ``timeout`` once the bytes stop."""
    count = 8
    server = serve(trickle_headers(count))
    client = make_client(server.url, timeout=0.2, retries=0)
    exc, elapsed = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamTimeout
    assert server.requests == 1 and exc.attempts == 1
    assert elapsed >= count * TRICKLE_EVERY + 0.2  # past the read timeout: every byte restarted it


def test_a_body_cut_short_is_an_upstream_error(serve: Callable[..., Upstream],
                                               make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(cut_body)
    client = make_client(server.url, timeout=1.0, retries=2)
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamError and exc.status == 502
    if URLLIB3_2:  # reports the short body: a connection closed before the answer's end is retried
        assert "broke off" in str(exc) and server.requests == 3
    else:  # 1.26 hands over the 10 bytes, which are not JSON: an answer, not retried
        assert "not JSON" in str(exc) and server.requests == 1


def test_a_reset_in_the_middle_of_the_answer_is_retried(serve: Callable[..., Upstream],
                                                         make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(reset_mid_answer, answer(200, b'{"token":"second"}'))
    guard = RecordingGuard()
    client = make_client(server.url, timeout=1.0, retries=2, guard=guard)
    assert client.contact_token(ALICE) == "second"
    assert server.requests == 2 and guard.outcomes == [(2, OK)]

    server = serve(reset_mid_answer)
    guard = RecordingGuard()
    client = make_client(server.url, timeout=1.0, retries=2, guard=guard)
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamError and exc.status == 502 and "broke off" in str(exc)
    assert server.requests == 3 and guard.outcomes == [(3, FAILED)]


def test_a_body_that_stops_times_out(serve: Callable[..., Upstream],
                                     make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(stall_body)
    guard = RecordingGuard()
    client = make_client(server.url, timeout=0.2, retries=2, guard=guard)
    exc, elapsed = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamTimeout and "broke off" in str(exc)
    assert server.requests == 1  # the answer had begun: not retried
    assert guard.outcomes == [(1, TIMEOUT)]
    assert elapsed >= 0.2


def test_a_body_that_cannot_be_decoded_is_an_answer_not_retried(serve: Callable[..., Upstream],
                                                                 make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(answer(200, b"not gzip at all", {"Content-Encoding": "gzip"}))
    client = make_client(server.url, timeout=1.0, retries=2)
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert type(exc) is UpstreamError and exc.status == 502 and "cannot be decoded" in str(exc)
    assert server.requests == 1


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
    """A guard that has just seen eSputnik hang (one call alone, a whole timeout without an answer):
    its next probe is a second away."""
    guard = RecordingGuard(timeout)
    now = [1000.0]
    guard.clock = lambda: now[0]
    call, _ = guard.admit()
    now[0] += timeout
    guard.done(call, 1, TIMEOUT)
    assert guard.hung
    guard.outcomes.clear()
    guard.admitted = 0
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
    assert guard.outcomes == [(1, OK), (1, OK), (1, FAILED), (1, OK)]


def test_no_retries_when_the_guard_says_so(serve: Callable[..., Upstream],
                                           make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(answer(503, b"{}"))
    guard = RecordingGuard()
    call, _ = guard.admit()
    guard.done(call, 10, FAILED)  # 10 attempts, none succeeded: the retry budget is spent
    guard.outcomes.clear()
    client = make_client(server.url, retries=2, guard=guard)
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert exc.status_code == 503 and exc.attempts == 1
    assert server.requests == 1
    assert guard.outcomes == [(1, FAILED)]


def test_a_probe_is_made_without_retries(serve: Callable[..., Upstream],
                                         make_client: Callable[..., EsputnikClient]) -> None:
    server = serve(answer(503, b"{}"))
    guard = hung_guard(timeout=0.2)
    now = guard.clock() + 1.0  # the probe's second has come
    guard.clock = lambda: now
    client = make_client(server.url, timeout=0.2, retries=2, guard=guard)
    exc, _ = failure(lambda: client.contact_token(ALICE))
    assert exc.status_code == 503 and exc.attempts == 1  # a 503 would have been retried twice
    assert server.requests == 1


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
