"""Helpers for your own test suite: a fake eSputnik built on ``responses``.

.. code-block:: python

    from flask_appinbox.testing import FakeEsputnik

    def test_bell_token(client):
        with FakeEsputnik() as esputnik:
            esputnik.token("tok-1")
            assert client.post("/appinbox/token").json == {"token": "tok-1"}
            esputnik.fault("timeout")
            assert client.post("/appinbox/token").status_code == 504
            assert esputnik.token_requests[0] == {"email": "alice@example.com"}

Needs the ``responses`` package (in the ``test`` extra).
"""
from __future__ import annotations

import json
from types import TracebackType
from typing import Any

import requests

from .client import CONTACT_PATH, DEFAULT_API_URL, TOKEN_PATH

try:
    import responses
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("flask_appinbox.testing needs the 'responses' package: "
                      "pip install 'Flask-AppInbox[test]'") from exc

__all__ = ["FakeEsputnik", "FAULTS"]

#: What :meth:`FakeEsputnik.fault` can make eSputnik do, and the endpoint's answer to it.
FAULTS = {
    "timeout": (504, "upstream_timeout"),
    "connection": (502, "upstream_error"),
    "rejected": (502, "upstream_rejected"),
    "rate_limited": (503, "upstream_rate_limited"),
    "server_error": (502, "upstream_error"),
    "garbage": (502, "upstream_error"),
}


class FakeEsputnik:
    """A stand-in for eSputnik's token and contact API for tests, through ``responses``.

    Every call to ``<api_url>/v1/auth/contact/token`` answers what was set last
    (:meth:`token`, :meth:`unknown_contact` or :meth:`fault`; a token by
    default); ``<api_url>/v1/contact`` makes the contact known. Requests are
    recorded in :attr:`token_requests` and :attr:`contact_requests` (the JSON
    bodies). Pass ``mock`` to share an existing ``responses.RequestsMock``.
    """

    def __init__(self, api_url: str = DEFAULT_API_URL, *, mock: responses.RequestsMock | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self._own = mock is None
        self.mock = mock if mock is not None else responses.RequestsMock(assert_all_requests_are_fired=False)
        self.token_requests: list[Any] = []
        self.contact_requests: list[Any] = []
        self.auth_headers: list[str | None] = []
        self._answer: tuple[str, Any] = ("token", "test-token")
        self._created = False
        self.mock.add_callback(responses.POST, self.api_url + TOKEN_PATH, callback=self._token)
        self.mock.add_callback(responses.POST, self.api_url + CONTACT_PATH, callback=self._contact)

    def __enter__(self) -> FakeEsputnik:
        if self._own:
            self.mock.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._own:
            self.mock.stop()  # its answers stay registered: the fake can be entered again

    # -- what eSputnik answers ---------------------------------------------------------

    def token(self, token: str = "test-token") -> None:  # noqa: S107 - a fake token for tests
        """Answer ``{"token": token}``."""
        self._answer = ("token", token)

    def unknown_contact(self) -> None:
        """Answer ``{"token": ""}`` until the contact is created through ``/v1/contact``."""
        self._answer = ("unknown", None)
        self._created = False

    def fault(self, kind: str, *, retry_after: int | None = None, status: int | None = None) -> None:
        """Fail every call: one of :data:`FAULTS` (``status`` picks the 4xx/5xx code)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; choose from {sorted(FAULTS)}")
        self._answer = (kind, {"retry_after": retry_after, "status": status})

    # -- callbacks -------------------------------------------------------------------------

    def _record(self, request: requests.PreparedRequest, into: list[Any]) -> None:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        into.append(json.loads(body) if body else None)
        self.auth_headers.append(request.headers.get("Authorization"))

    def _token(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        self._record(request, self.token_requests)
        kind, value = self._answer
        if kind == "token":
            return 200, {"Content-Type": "application/json"}, json.dumps({"token": value})
        if kind == "unknown":
            token = "created-token" if self._created else ""
            return 200, {"Content-Type": "application/json"}, json.dumps({"token": token})
        if kind == "timeout":
            raise requests.exceptions.ReadTimeout("fake eSputnik did not answer")
        if kind == "connection":
            raise requests.exceptions.ConnectionError("fake eSputnik refused the connection")
        if kind == "rejected":
            return value["status"] or 401, {"Content-Type": "application/json"}, '{"error": "unauthorized"}'
        if kind == "rate_limited":
            headers = {} if value["retry_after"] is None else {"Retry-After": str(value["retry_after"])}
            return 429, headers, ""
        if kind == "server_error":
            return value["status"] or 500, {}, "server error"
        return 200, {"Content-Type": "text/html"}, "<html>maintenance</html>"  # garbage

    def _contact(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        self._record(request, self.contact_requests)
        self._created = True
        return 200, {"Content-Type": "application/json"}, json.dumps({"id": len(self.contact_requests)})
