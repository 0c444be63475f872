"""eSputnik's HTTP API, as App Inbox uses it. No Flask in here."""
from __future__ import annotations

import email.utils
import json
import logging
import math
import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ._version import __version__
from .contact import Contact
from .errors import UpstreamBusy, UpstreamError, UpstreamRateLimited, UpstreamRejected, UpstreamTimeout
from .guard import Guard

__all__ = ["EsputnikClient", "parse_retry_after", "time_budget", "DEFAULT_API_URL"]

log = logging.getLogger("flask_appinbox")

DEFAULT_API_URL = "https://esputnik.com/api"
TOKEN_PATH = "/v1/auth/contact/token"  # noqa: S105 - a path, not a secret
CONTACT_PATH = "/v1/contact"
MAX_BODY = 64 * 1024
POOL_SIZE = 1000  # kept-alive connections, at most (urllib3's default, 10, drops the rest under gevent)
BACKOFF, BACKOFF_MAX = 0.1, 1.0  # urllib3's backoff between retries: 0, 0.2, 0.4, ... seconds, at most 1
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


def time_budget(timeout: float, retries: int) -> float:
    """The longest a call takes against a server that answers slowly but steadily: every attempt's
    timeout and every backoff (urllib3's: none before the first retry, then 0.2 s, 0.4 s, ... at most
    1 s, each with up to 0.1 s of jitter). A server that trickles its headers holds an attempt up to
    ``timeout`` per byte (requests' timeouts are per socket operation); the body is cut at the budget."""
    backoffs = sum(min(BACKOFF_MAX, BACKOFF * 2.0**n + BACKOFF) for n in range(1, retries))
    return (retries + 1) * timeout + backoffs


def _session(retries: int) -> requests.Session:
    """A session whose adapter retries connection errors, timeouts and 5xx answers (urllib3's ``Retry``).

    A 429 is not retried: its ``Retry-After`` goes back to the browser instead of being waited out.
    """
    session = requests.Session()
    retry = Retry(total=retries, allowed_methods={"POST"}, status_forcelist=range(500, 600), redirect=False,
                  backoff_factor=BACKOFF, backoff_max=BACKOFF_MAX, backoff_jitter=BACKOFF,
                  raise_on_status=False, respect_retry_after_header=False)
    session.mount("http://", HTTPAdapter(max_retries=retry, pool_maxsize=POOL_SIZE))
    session.mount("https://", HTTPAdapter(max_retries=retry, pool_maxsize=POOL_SIZE))
    return session


class EsputnikClient:
    """A small client for eSputnik's contact-token API; safe to share between threads.

    Every attempt has ``timeout`` seconds to connect and ``timeout`` per read;
    connection errors, timeouts and 5xx answers are retried ``retries`` times
    with urllib3's ``Retry``; 400/401/403 and 429 are not; the body is read up
    to 64 KiB and no longer than :attr:`time_budget`. Every failure raises an
    :class:`~flask_appinbox.UpstreamError`.

    ``guard``: a :class:`~flask_appinbox.guard.Guard` that budgets the retries and
    refuses calls while eSputnik hangs; ``bulkhead``: a semaphore (shared by the
    clients it bounds) without a free slot of which a call fails at once with
    :class:`~flask_appinbox.UpstreamBusy`.
    ``session``: a :class:`requests.Session` of yours, used as it is (its adapters decide the retries).
    """

    def __init__(self, api_key: str, base_url: str = DEFAULT_API_URL, *, timeout: float = 5.0, retries: int = 2,
                 session: requests.Session | None = None, guard: Guard | None = None,
                 bulkhead: threading.BoundedSemaphore | None = None) -> None:
        if not api_key:
            raise ValueError("an API key is required")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.guard = guard
        self.time_budget = time_budget(timeout, retries)
        self.session = session or _session(retries)
        # Calls the guard allows no retries (a probe, or while retries would only add load).
        self._single = session or _session(0)
        self.bulkhead = bulkhead
        self._auth = ("flask-appinbox", api_key)
        self._headers = {"Accept": "application/json", "Content-Type": "application/json", "User-Agent": USER_AGENT}

    def __repr__(self) -> str:  # never show the key
        return f"<EsputnikClient {self.base_url}>"

    def close(self) -> None:
        self.session.close()
        self._single.close()

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
        if self.bulkhead is not None and not self.bulkhead.acquire(blocking=False):
            raise UpstreamBusy("too many eSputnik calls in flight", retry_after=1)
        try:
            may_retry = self.guard.admit() if self.guard is not None else True
            started = time.monotonic()
            try:
                attempts, body = self._post(path, payload, may_retry, started + self.time_budget)
            except UpstreamError as exc:
                log.warning("eSputnik POST %s failed after %d attempt(s) in %.3f s: %s (%s)", path,
                            exc.attempts, time.monotonic() - started, exc.error, exc)
                if self.guard is not None:  # a 4xx but 429 is an answer: eSputnik is up
                    answered = exc.status_code is not None and 400 <= exc.status_code < 500 and exc.status_code != 429
                    self.guard.record(exc.attempts, answered, isinstance(exc, UpstreamTimeout))
                raise
            log.debug("eSputnik POST %s: 200 after %d attempt(s) in %.3f s", path, attempts,
                      time.monotonic() - started)
            if self.guard is not None:
                self.guard.record(attempts, True)
            return body
        finally:
            if self.bulkhead is not None:
                self.bulkhead.release()

    def _post(self, path: str, payload: dict[str, Any], may_retry: bool, deadline: float) -> tuple[int, Any]:
        """One call, retried by the adapter: (attempts made, the JSON answer)."""
        session = self.session if may_retry else self._single
        attempts = self.retries + 1 if may_retry else 1  # until the answer says how many
        data = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
        try:
            with session.post(self.base_url + path, data=data, auth=self._auth, headers=self._headers,
                              timeout=(self.timeout, self.timeout), stream=True, allow_redirects=False) as resp:
                attempts = len(getattr(getattr(resp.raw, "retries", None), "history", ())) + 1
                status = resp.status_code
                if status == 429:
                    raise _failed(UpstreamRateLimited, "eSputnik answered 429", attempts, status,
                                  parse_retry_after(resp.headers.get("Retry-After")))
                if status != 200:
                    kind = UpstreamRejected if status in (400, 401, 403) else UpstreamError
                    raise _failed(kind, f"eSputnik answered {status}", attempts, status)
                raw = _read(resp, deadline, attempts)
        except requests.exceptions.RequestException as exc:
            # requests reports a read timeout after retries as a ConnectionError around urllib3's.
            reason = getattr(exc.args[0], "reason", None) if exc.args else None
            if isinstance(exc, requests.exceptions.Timeout) or isinstance(reason, urllib3.exceptions.ReadTimeoutError):
                raise _failed(UpstreamTimeout, "eSputnik did not answer in time", attempts) from None
            # Refused, reset, DNS: the message names the exception, never the key.
            raise _failed(UpstreamError, f"cannot reach eSputnik: {type(exc).__name__}", attempts) from None
        except UpstreamError:
            raise
        except Exception as exc:  # a bug below us: its message may quote the request, so only its frames
            log.error("eSputnik POST %s: unexpected %s (message withheld)\n%s", path, type(exc).__name__,
                      "".join(traceback.format_tb(exc.__traceback__)).rstrip())
            raise _failed(UpstreamError, f"unexpected {type(exc).__name__}", attempts) from None
        try:
            return attempts, json.loads(raw)
        except ValueError:
            raise _failed(UpstreamError, "eSputnik's answer is not JSON", attempts, 200) from None


def _failed(kind: type[UpstreamError], message: str, attempts: int, status: int | None = None,
            retry_after: int | None = None) -> UpstreamError:
    exc = kind(message, status_code=status, retry_after=retry_after)
    exc.attempts = attempts
    return exc


def _read(resp: requests.Response, deadline: float, attempts: int) -> bytes:
    """The body, at most 64 KiB, read as it arrives and cut at ``deadline`` (a trickled body included)."""
    chunks, size = [], 0
    try:
        while chunk := resp.raw.read1(8192, decode_content=True):
            size += len(chunk)
            if size > MAX_BODY:
                raise _failed(UpstreamError, "eSputnik's answer is larger than 64 KiB", attempts, 200)
            if time.monotonic() > deadline:
                raise _failed(UpstreamTimeout, "eSputnik's answer did not arrive within the time budget", attempts)
            chunks.append(chunk)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        timed_out = isinstance(exc, (urllib3.exceptions.TimeoutError, TimeoutError))
        raise _failed(UpstreamTimeout if timed_out else UpstreamError,
                      f"eSputnik's answer broke off: {type(exc).__name__}", attempts) from None
    return b"".join(chunks)


def _payload(contact: Contact | Mapping[str, Any]) -> dict[str, str]:
    value = Contact.from_value(contact)
    payload = value.as_payload() if value is not None else {}
    if not payload:
        raise ValueError("the contact needs at least one of email, phone, externalCustomerId")
    return payload
