"""Hostile bodies and hostile eSputnik answers that 0.2 did not survive (issue 17)."""
from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import responses
from conftest import TOKEN_URL

MiB = 1024 * 1024


class CountingBody:
    """A request body of ``size`` bytes, made as it is read; counts what the app read."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.read_bytes
        n = left if n is None or n < 0 else min(n, left)
        self.read_bytes += n
        return b"{" * n

    def readline(self, n: int = -1) -> bytes:
        return self.read(n)


def test_a_chunked_body_is_read_only_up_to_the_limit(alice: Any, upstream: responses.RequestsMock) -> None:
    body = CountingBody(64 * MiB)
    # What gunicorn, waitress and uwsgi hand over for Transfer-Encoding: chunked: no
    # Content-Length, a stream that ends where the body ends.
    response = alice.post("/appinbox/token", headers={"Transfer-Encoding": "chunked"},
                          environ_overrides={"wsgi.input": body, "wsgi.input_terminated": True})
    assert response.status_code == 400
    assert response.json == {"error": "bad_request"}
    assert body.read_bytes <= MiB
    assert not upstream.calls


def test_an_announced_large_body_is_not_read(alice: Any) -> None:
    body = CountingBody(64 * MiB)
    response = alice.post("/appinbox/token", environ_overrides={"wsgi.input": body, "CONTENT_LENGTH": str(64 * MiB)})
    assert response.status_code == 400
    assert body.read_bytes <= MiB


def test_a_body_announced_over_the_limit_is_refused_unread(alice: Any, upstream: responses.RequestsMock) -> None:
    body = CountingBody(1025)
    response = alice.post("/appinbox/token", environ_overrides={"wsgi.input": body, "CONTENT_LENGTH": "1025"})
    assert (response.status_code, response.json) == (400, {"error": "bad_request"})
    assert "Connection" not in response.headers  # hop-by-hop headers are the WSGI server's
    assert body.read_bytes == 0 and not upstream.calls


@pytest.mark.parametrize("body", [b"[" * 1000, b'{"a":' * 1000, b"[" * 100_000, b"[]", b"1", b'"x"', b"null",
                                  b"{\"renew\": 1}", b"\xff\xfe", b"{"])
def test_a_body_that_is_not_a_json_object_is_400(alice: Any, upstream: responses.RequestsMock, body: bytes,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    response = alice.post("/appinbox/token", data=body[:1024], content_type="application/json")
    assert response.status_code == 400
    assert response.json == {"error": "bad_request"}
    assert not upstream.calls
    assert not any(r.exc_info for r in caplog.records) and "Traceback" not in caplog.text


@pytest.mark.parametrize("value", ["²", "9" * 5000, "١٢", "-1", "1e9", "1.5", " ", "abc", "Wed, 21 Oct 2015",
                                   "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "99999999999"])
def test_a_malformed_retry_after_still_maps_to_upstream_rate_limited(
        alice: Any, upstream: responses.RequestsMock, value: str, caplog: pytest.LogCaptureFixture) -> None:
    upstream.post(TOKEN_URL, status=429, headers={"Retry-After": value})
    response = alice.post("/appinbox/token")
    assert response.status_code == 503
    assert response.json == {"error": "upstream_rate_limited"}
    seconds = response.headers["Retry-After"]
    assert seconds.isascii() and seconds.isdigit() and 0 <= int(seconds) <= 86400
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("value,expected", [("120", "120"), ("0", "0"), ("86401", "86400"), ("²", "5")])
def test_a_sane_retry_after_is_passed_on(alice: Any, upstream: responses.RequestsMock, value: str,
                                         expected: str) -> None:
    upstream.post(TOKEN_URL, status=429, headers={"Retry-After": value})
    assert alice.post("/appinbox/token").headers["Retry-After"] == expected


class Pieces:
    """A body that a server hands over a few bytes a read, whatever was asked for."""

    def __init__(self, *pieces: bytes) -> None:
        self.pieces = list(pieces)
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        piece = self.pieces.pop(0) if self.pieces else b""
        self.read_bytes += len(piece)
        return piece


def test_a_body_handed_over_in_pieces_is_read_whole(alice: Any, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN_URL, json={"token": "t"})
    body = Pieces(b'{"re', b'new"', b": tr", b"ue}")
    response = alice.post("/appinbox/token", headers={"Transfer-Encoding": "chunked"},
                          environ_overrides={"wsgi.input": body, "wsgi.input_terminated": True})
    assert response.json == {"token": "t"}
    assert json.loads(upstream.calls[0].request.body) == {"email": "alice@example.com"}


def test_a_body_over_the_limit_handed_over_in_pieces_is_400(alice: Any) -> None:
    body = Pieces(*[b" " * 100] * 1000)
    response = alice.post("/appinbox/token", headers={"Transfer-Encoding": "chunked"},
                          environ_overrides={"wsgi.input": body, "wsgi.input_terminated": True})
    assert response.status_code == 400
    assert body.read_bytes == 1100  # read until past the limit, no further
