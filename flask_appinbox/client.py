"""eSputnik's HTTP API, as App Inbox uses it. No Flask in here."""
from __future__ import annotations

import email.utils
import json
import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ._guard import FAILED, OK, TIMEOUT, Guard
from ._version import __version__
from .contact import Contact
from .errors import UpstreamBusy, UpstreamError, UpstreamRateLimited, UpstreamRejected, UpstreamTimeout

__all__ = ["EsputnikClient", "parse_retry_after", "DEFAULT_API_URL", "DEFAULT_TIMEOUT"]

log = logging.getLogger("flask_appinbox")

DEFAULT_API_URL = "https://esputnik.com/api"
TOKEN_PATH = "/v1/auth/contact/token"  # noqa: S105 - a path, not a secret
CONTACT_PATH = "/v1/contact"
MAX_BODY = 64 * 1024
POOL_SIZE = 1000  # kept-alive connections, at most (urllib3's default, 10, drops the rest under gevent)
DEFAULT_TIMEOUT = (1.0, 3.0)  # (connect, read): a hang holds a sync worker's only thread 3 s, not 15
RETRY_STATUSES = frozenset({502, 503, 504})  # a gateway's or an overloaded server's: nothing was done
BACKOFF = 0.1  # urllib3's backoff between retries: 0, 0.2, 0.4, ... seconds
NO_RETRY = Retry(total=0, redirect=False, raise_on_status=False)
DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER = 5, 86400
USER_AGENT = f"Flask-AppInbox/{__version__} python-requests/{requests.__version__}"


def parse_retry_after(value: str | None) -> int:
    """Seconds from eSputnik's ``Retry-After`` (delta-seconds or an HTTP date) when it is sane, else
    :data:`DEFAULT_RETRY_AFTER`; at most a day. Never raises (``"²"``, 5,000 digits, a date without a zone)."""
    value = (value or "").strip()
    if value.isascii() and value.isdigit():
        return MAX_RETRY_AFTER if len(value.lstrip("0")) > 6 else min(int(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is not None:
            return max(0, min(math.ceil(when.timestamp() - time.time()), MAX_RETRY_AFTER))
    except (TypeError, ValueError, IndexError, OverflowError):
        pass
    return DEFAULT_RETRY_AFTER


def time_budget(timeout: tuple[float, float], retries: int) -> float:
    """The longest a call takes against a server that answers, however slowly (private).

    A retry starts only within one read timeout of the call's start, so a call takes at most a read
    timeout and one whole attempt (connect and read); without retries, one attempt. The body is cut
    at this budget. A status line or headers trickled byte by byte are bounded per byte only by
    the read timeout (requests' timeouts are per socket operation): the guard sees such a call
    still in flight past its budget.
    """
    connect, read = timeout
    return connect + read + (read if retries else 0)


def _session() -> requests.Session:
    """A session whose adapters keep up to :data:`POOL_SIZE` connections and do not retry: the
    client's loop decides (urllib3's ``Retry`` counts a reset and a read timeout alike, as read errors)."""
    session = requests.Session()
    for prefix in ("http://", "https://"):
        session.mount(prefix, HTTPAdapter(pool_maxsize=POOL_SIZE))
    return session


class EsputnikClient:
    """A small client for eSputnik's contact-token API; safe to share between threads.

    ``timeout`` is requests' ``(connect, read)`` pair (a number: both). Failures that are cheap
    and safe to retry are retried ``retries`` times: a connection refused, reset or not made
    within the connect timeout, an answer whose connection is reset or closed before its end,
    and 502/503/504 answers, with urllib3's ``Retry`` counting and
    backing off (0, then 0.2 s, 0.4 s, ...). A read timeout is not retried: it would cost a whole
    timeout again, and eSputnik may already be working on the POST. Nor are 400/401/403 and 429.
    A retry starts only within one read timeout of the call's start. The body is read up to
    64 KiB and no longer than the call's time budget. Every failure of eSputnik's raises an
    :class:`~flask_appinbox.UpstreamError`.

    ``session``: a :class:`requests.Session` of yours, used as it is (its adapters should not retry:
    requests' default).
    """

    def __init__(self, api_key: str, base_url: str = DEFAULT_API_URL, *,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, retries: int = 2,
                 session: requests.Session | None = None) -> None:
        if not api_key:
            raise ValueError("an API key is required")
        self.base_url = base_url.rstrip("/")
        self.timeout = (float(timeout), float(timeout)) if isinstance(timeout, (int, float)) else \
            (float(timeout[0]), float(timeout[1]))
        self.retries = retries
        self.time_budget = time_budget(self.timeout, retries)
        self.session = session or _session()
        self._retry = Retry(total=retries, backoff_factor=BACKOFF, redirect=False, raise_on_status=False)
        self._guard: Guard | None = None  # set by the extension: one per app and process
        self._bulkhead: threading.BoundedSemaphore | None = None
        self._auth = ("flask-appinbox", api_key)
        self._headers = {"Accept": "application/json", "Content-Type": "application/json", "User-Agent": USER_AGENT}

    def __repr__(self) -> str:  # never show the key
        return f"<EsputnikClient {self.base_url}>"

    def close(self) -> None:
        self.session.close()

    def contact_token(self, contact: Contact | Mapping[str, Any]) -> str:
        """The contact's App Inbox token; ``""`` when eSputnik does not know the contact."""
        body = self._call(TOKEN_PATH, _payload(contact))
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            raise UpstreamError("eSputnik's token answer has no token string", status_code=200)
        return token

    def create_contact(self, contact: Contact | Mapping[str, Any]) -> Any:
        """Create (or update) the contact in eSputnik; returns eSputnik's answer."""
        payload = _payload(contact)
        body: dict[str, Any] = {}
        if "externalCustomerId" in payload:
            body["externalCustomerId"] = payload["externalCustomerId"]
        channels = [{"type": kind, "value": payload[field]} for field, kind in (("email", "email"), ("phone", "sms"))
                    if field in payload]
        if channels:
            body["channels"] = channels
        return self._call(CONTACT_PATH, body)

    def _call(self, path: str, payload: dict[str, Any]) -> Any:
        bulkhead, guard = self._bulkhead, self._guard
        if bulkhead is not None and not bulkhead.acquire(blocking=False):
            raise UpstreamBusy("too many eSputnik calls in flight", retry_after=1)
        try:
            call, may_retry = guard.admit() if guard is not None else (None, True)
            attempts, outcome, started = 0, None, time.monotonic()
            try:
                attempts, body = self._post(path, payload, may_retry, started)
                outcome = OK
            except UpstreamError as exc:
                attempts = exc.attempts
                answered = exc.status_code is not None and 400 <= exc.status_code < 500 and exc.status_code != 429
                outcome = TIMEOUT if isinstance(exc, UpstreamTimeout) else OK if answered else FAILED
                log.warning("eSputnik POST %s failed after %d attempt(s) in %.3f s: %s (%s)", path,
                            attempts, time.monotonic() - started, exc.error, exc)
                raise
            finally:  # an error of ours (outcome None) is Flask's to log, and says nothing of eSputnik
                if guard is not None:
                    guard.done(call, attempts, outcome)  # type: ignore[arg-type]
            log.debug("eSputnik POST %s: 200 after %d attempt(s) in %.3f s", path, attempts,
                      time.monotonic() - started)
            return body
        finally:
            if bulkhead is not None:
                bulkhead.release()

    def _post(self, path: str, payload: dict[str, Any], may_retry: bool, started: float) -> tuple[int, Any]:
        """One call: (attempts made, the JSON answer). Which failures are retried is decided here,
        since ``Retry`` cannot tell a reset from a read timeout; ``Retry`` counts and backs off."""
        url, deadline = self.base_url + path, started + self.time_budget
        data = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
        retry, attempts = self._retry if may_retry else NO_RETRY, 0
        while True:
            attempts += 1
            response = None
            try:
                with self.session.post(url, data=data, auth=self._auth, headers=self._headers, timeout=self.timeout,
                                       stream=True, allow_redirects=False) as resp:
                    status = resp.status_code
                    if status == 429:
                        raise _failed(UpstreamRateLimited, "eSputnik answered 429", attempts, status,
                                      parse_retry_after(resp.headers.get("Retry-After")))
                    kind = UpstreamRejected if status in (400, 401, 403) else UpstreamError
                    failure = _failed(kind, f"eSputnik answered {status}", attempts, status)
                    if status != 200 and status not in RETRY_STATUSES:
                        raise failure
                    raw = _read(resp, deadline, attempts)  # a 5xx's too: its connection is then kept
                    if status == 200:
                        return attempts, _json(raw, attempts)
                    response = resp.raw
            except requests.exceptions.ReadTimeout:
                raise _failed(UpstreamTimeout, "eSputnik did not answer in time", attempts) from None
            except requests.exceptions.RequestException as exc:  # refused, reset, DNS, no connection in time
                # The message names the exception, never the key.
                kind = UpstreamTimeout if isinstance(exc, requests.exceptions.ConnectTimeout) else UpstreamError
                failure = _failed(kind, f"cannot reach eSputnik: {type(exc).__name__}", attempts)
            except (urllib3.exceptions.HTTPError, OSError) as exc:  # the answer's connection reset or closed
                failure = _failed(UpstreamError, f"eSputnik's answer broke off: {type(exc).__name__}", attempts)
            if time.monotonic() + retry.get_backoff_time() - started >= self.timeout[1]:
                raise failure  # only fast failures are retried
            try:
                retry = retry.increment("POST", url, response=response)
            except urllib3.exceptions.MaxRetryError:
                raise failure from None
            retry.sleep()


def _json(raw: bytes, attempts: int) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise _failed(UpstreamError, "eSputnik's answer is not JSON", attempts, 200) from None


def _failed(kind: type[UpstreamError], message: str, attempts: int, status: int | None = None,
            retry_after: int | None = None) -> UpstreamError:
    exc = kind(message, status_code=status, retry_after=retry_after)
    exc.attempts = attempts
    return exc


def _read(resp: requests.Response, deadline: float, attempts: int) -> bytes:
    """The body, at most 64 KiB, read as it arrives and cut at ``deadline`` (a trickled body included).

    ``read1`` (urllib3 2.2 and later) returns what has arrived; older urllib3 has ``read`` only,
    which waits for the whole piece asked for, so there a trickled body is bounded per byte only.
    A reset or closed connection raises urllib3's or the socket's error, for the caller to retry;
    past ``deadline`` (older urllib3 read on until then) it is the budget's timeout."""
    chunks, size = [], 0
    read = getattr(resp.raw, "read1", resp.raw.read)
    try:
        while chunk := read(8192, decode_content=True):
            size += len(chunk)
            if size > MAX_BODY:
                raise _failed(UpstreamError, "eSputnik's answer is larger than 64 KiB", attempts, resp.status_code)
            if time.monotonic() > deadline:
                raise _failed(UpstreamTimeout, "eSputnik's answer did not arrive within the time budget", attempts)
            chunks.append(chunk)
    except (urllib3.exceptions.TimeoutError, TimeoutError) as exc:  # not retried, as a read timeout
        raise _failed(UpstreamTimeout, f"eSputnik's answer broke off: {type(exc).__name__}", attempts) from None
    except urllib3.exceptions.DecodeError:
        raise _failed(UpstreamError, "eSputnik's answer cannot be decoded", attempts, resp.status_code) from None
    except (urllib3.exceptions.HTTPError, OSError):
        if time.monotonic() > deadline:  # a trickle that broke off after the budget: not a fast failure
            raise _failed(UpstreamTimeout, "eSputnik's answer did not arrive within the time budget",
                          attempts) from None
        raise
    return b"".join(chunks)


def _payload(contact: Contact | Mapping[str, Any]) -> dict[str, str]:
    value = Contact.from_value(contact)
    payload = value.as_payload() if value is not None else {}
    if not payload:
        raise ValueError("the contact needs at least one of email, phone, externalCustomerId")
    return payload
