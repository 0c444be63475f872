"""EsputnikClient on its own: retries, backoff, Retry-After, the time budget."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
import responses

from flask_appinbox import (
    Contact,
    EsputnikClient,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
)
from flask_appinbox.client import parse_retry_after

BASE = "https://esputnik.test/api"
TOKEN = BASE + "/v1/auth/contact/token"


@pytest.fixture
def client() -> Iterator[EsputnikClient]:
    c = EsputnikClient("key-123", BASE, timeout=1.0, retries=2, backoff=0.1, backoff_cap=0.4)
    c.waits = []  # type: ignore[attr-defined]
    c.sleep = c.waits.append  # type: ignore[attr-defined]
    yield c
    c.close()


def test_token_and_payload(client: EsputnikClient, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN, json={"token": "t"}, match=[responses.matchers.json_params_matcher(
        {"email": "a@b.co", "externalCustomerId": "7"})])
    assert client.contact_token(Contact(email="A@b.co", external_customer_id="7")) == "t"
    assert client.contact_token({"email": "a@b.co", "externalCustomerId": "7"}) == "t"


def test_unknown_contact_is_empty_string(client: EsputnikClient, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN, json={"token": ""})
    assert client.contact_token(Contact(phone="380501234567")) == ""


def test_empty_contact_is_refused_before_any_call(client: EsputnikClient, upstream: responses.RequestsMock) -> None:
    with pytest.raises(ValueError):
        client.contact_token(Contact())
    assert not upstream.calls


def test_create_contact_body(client: EsputnikClient, upstream: responses.RequestsMock) -> None:
    upstream.post(BASE + "/v1/contact", json={"id": 1}, match=[responses.matchers.json_params_matcher({
        "externalCustomerId": "u1",
        "channels": [{"type": "email", "value": "a@b.co"}, {"type": "sms", "value": "380501234567"}],
    })])
    upstream.post(BASE + "/v1/contact", json={"id": 2}, match=[responses.matchers.json_params_matcher(
        {"externalCustomerId": "u2"})])
    assert client.create_contact(Contact(email="a@b.co", phone="+380501234567", external_customer_id="u1")) == {"id": 1}
    assert client.create_contact({"externalCustomerId": "u2"}) == {"id": 2}


def test_backoff_is_exponential_and_capped(upstream: responses.RequestsMock) -> None:
    c = EsputnikClient("k", BASE, timeout=1, retries=5, backoff=0.1, backoff_cap=0.3)
    waits: list[float] = []
    c.sleep = waits.append  # type: ignore[method-assign]
    upstream.post(TOKEN, status=500)
    with pytest.raises(UpstreamError) as info:
        c.contact_token(Contact(email="a@b.co"))
    assert info.value.status_code == 500
    assert len(upstream.calls) == 6 and len(waits) == 5
    highs = [0.1, 0.2, 0.3, 0.3, 0.3]
    assert all(high / 2 <= w <= high for w, high in zip(waits, highs, strict=True))


@pytest.mark.parametrize("status", [400, 401, 403])
def test_rejections_are_not_retried(client: EsputnikClient, upstream: responses.RequestsMock, status: int) -> None:
    upstream.post(TOKEN, status=status)
    with pytest.raises(UpstreamRejected) as info:
        client.contact_token(Contact(email="a@b.co"))
    assert info.value.status_code == status and info.value.status == 502
    assert len(upstream.calls) == 1


def test_retry_after_within_the_cap_is_waited(client: EsputnikClient, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN, status=429, headers={"Retry-After": "0"})
    upstream.post(TOKEN, json={"token": "t"})
    assert client.contact_token(Contact(email="a@b.co")) == "t"
    assert client.waits == [0.0]  # type: ignore[attr-defined]


def test_retry_after_beyond_the_cap_goes_back(client: EsputnikClient, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN, status=429, headers={"Retry-After": "30"})
    with pytest.raises(UpstreamRateLimited) as info:
        client.contact_token(Contact(email="a@b.co"))
    assert info.value.retry_after == 30 and info.value.status == 503
    assert len(upstream.calls) == 1 and client.waits == []  # type: ignore[attr-defined]


def test_429_without_retry_after_backs_off(client: EsputnikClient, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN, status=429)
    with pytest.raises(UpstreamRateLimited) as info:
        client.contact_token(Contact(email="a@b.co"))
    assert info.value.retry_after == 5
    assert len(upstream.calls) == 3 and len(client.waits) == 2  # type: ignore[attr-defined]


def test_parse_retry_after() -> None:
    assert parse_retry_after("12") == 12
    assert parse_retry_after(" 0 ") == 0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None
    assert parse_retry_after("999999999") == 86400
    later = datetime.now(timezone.utc) + timedelta(seconds=90)
    assert 85 <= (parse_retry_after(format_datetime(later, usegmt=True)) or 0) <= 91
    earlier = datetime.now(timezone.utc) - timedelta(seconds=90)
    assert parse_retry_after(format_datetime(earlier, usegmt=True)) == 0


def test_large_body_is_refused(client: EsputnikClient, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN, body=b'{"token": "' + b"x" * 70_000 + b'"}', content_type="application/json")
    with pytest.raises(UpstreamError, match="64 KiB"):
        client.contact_token(Contact(email="a@b.co"))
    assert len(upstream.calls) == 1


def test_repr_and_errors_hold_no_key(client: EsputnikClient, upstream: responses.RequestsMock) -> None:
    assert "key-123" not in repr(client)
    upstream.post(TOKEN, body=requests.exceptions.ConnectionError("https://flask-appinbox:key-123@x"))
    with pytest.raises(UpstreamError) as info:
        client.contact_token(Contact(email="a@b.co"))
    assert "key-123" not in str(info.value)


def test_one_connection_is_kept_alive() -> None:
    """Three calls against a real local server: one TCP connection (a session per call would open three)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from fake_esputnik import FakeEsputnik

    with FakeEsputnik() as fake:
        client = EsputnikClient("k", fake.api_url)
        try:
            for _ in range(3):
                assert client.contact_token(Contact(email="a@b.co")).startswith("esk.")
        finally:
            client.close()
        stats = fake.stats()
    assert (stats["requests"], stats["connections"]) == (3, 1)


# -- the time budget against real sockets ---------------------------------------------------

class HangingServer:
    """Accepts connections on 127.0.0.1 and then does nothing until closed (or trickles bytes)."""

    def __init__(self, first: bytes = b"", trickle: bytes | None = None, every: float = 0.05) -> None:
        self.first = first
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.trickle = trickle
        self.every = every
        self.stop = threading.Event()
        self.accepted = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conns = []
        deadline = time.monotonic() + 30  # never outlive a test run
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
                conns.append(conn)
                self.accepted += 1
                if self.first:
                    conn.sendall(self.first)
            except OSError:
                pass
            if self.trickle is not None:
                for conn in conns:
                    try:
                        conn.sendall(self.trickle)
                    except OSError:
                        pass
                time.sleep(self.every)
        for conn in conns:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.mark.parametrize("first,trickle", [
    (b"", None),
    (b"HTTP/1.1 200 OK\r\n", b"X-Slow: 1\r\n"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", b"x"),
    (b"", b"X"),
], ids=["silent", "trickled-headers", "trickled-body", "trickled-garbage"])
def test_a_hanging_server_never_outlasts_the_budget(first: bytes, trickle: bytes | None) -> None:
    server = HangingServer(first, trickle)
    client = EsputnikClient("k", f"http://127.0.0.1:{server.port}/api", timeout=0.3, retries=2, backoff_cap=0.1)
    try:
        start = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            client.contact_token(Contact(email="a@b.co"))
        elapsed = time.monotonic() - start
    finally:
        client.close()
        server.close()
    assert client.time_budget == pytest.approx(3 * 0.3 + 2 * 0.1)
    if trickle is None:
        assert server.accepted == 3  # every attempt was made
    # A correctness bound, not a timing: without the deadline the trickling servers hold
    # a call for their whole 30 s; the slack only absorbs a loaded machine.
    assert elapsed <= client.time_budget + 1.5, elapsed


def test_connection_refused_is_an_upstream_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client = EsputnikClient("k", f"http://127.0.0.1:{port}/api", timeout=0.5, retries=1, backoff_cap=0.01)
    with pytest.raises(UpstreamError) as info:
        client.contact_token(Contact(email="a@b.co"))
    client.close()
    assert type(info.value) is UpstreamError and info.value.error == "upstream_error"


def test_deadline_shortens_the_budget(upstream: responses.RequestsMock) -> None:
    c = EsputnikClient("k", BASE, timeout=1, retries=2, backoff_cap=0.1)
    c.clock = lambda: 100.0  # type: ignore[method-assign]
    upstream.post(TOKEN, json={"token": "t"})
    with pytest.raises(UpstreamTimeout):
        c.contact_token(Contact(email="a@b.co"), deadline=99.0)
    assert not upstream.calls


def test_environment_settings_are_read_once(monkeypatch: pytest.MonkeyPatch, upstream: responses.RequestsMock) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "")
    c = EsputnikClient("k", BASE)
    assert c.session.trust_env is False  # no os.environ walk per call; read once above
    assert c._send_kwargs["proxies"] == {"https": "http://proxy.internal:3128"}
    monkeypatch.setenv("NO_PROXY", "esputnik.test")
    assert EsputnikClient("k", BASE)._send_kwargs["proxies"] == {}
