"""eSputnik's HTTP API, as used by App Inbox. No Flask in here."""
from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from typing import Any

import requests
import urllib3

from ._version import __version__
from .config import DEFAULT_API_URL, DEFAULT_RETRY_AFTER
from .contact import Contact
from .deadline import DeadlineAdapter, limit_until
from .errors import (
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
)
from .guard import Bulkhead, CircuitBreaker

__all__ = ["EsputnikClient", "time_budget"]

log = logging.getLogger("flask_appinbox")

TOKEN_PATH = "/v1/auth/contact/token"  # noqa: S105 - a path, not a secret
CONTACT_PATH = "/v1/contact"
MAX_BODY = 64 * 1024
POOL_SIZE = 1000  # kept-alive connections per client, at most (urllib3's default, 10, drops the rest)
MAX_RETRY_AFTER = 86400
USER_AGENT = f"Flask-AppInbox/{__version__} python-requests/{requests.__version__}"

# What one attempt can end in, for choosing the final exception.
_TIMEOUT, _RATE_LIMITED, _FAILED = "timeout", "rate_limited", "failed"


def parse_retry_after(value: str | None) -> int | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), at most a day;
    ``None`` when it is neither (``"²"``, ``"-1"``, a date without a zone, 5,000 digits)."""
    value = (value or "").strip()
    if value.isascii() and value.isdigit():
        return MAX_RETRY_AFTER if len(value.lstrip("0")) > 6 else min(int(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
        seconds = when.timestamp() - time.time()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return max(0, min(math.ceil(seconds), MAX_RETRY_AFTER))


def time_budget(timeout: float, retries: int, backoff_cap: float) -> float:
    """The longest one call may take: every attempt's timeout plus every backoff wait."""
    return (retries + 1) * timeout + retries * backoff_cap


class _Attempt(Exception):
    """One failed attempt; ``retry`` says whether another may follow."""

    def __init__(self, kind: str, error: UpstreamError, *, retry: bool, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.kind = kind
        self.error = error
        self.retry = retry
        self.wait = wait
        # What counts toward the circuit breaker: timeouts, connection errors, 5xx.
        self.outage = kind == _TIMEOUT or (kind == _FAILED and retry)


class EsputnikClient:
    """A small client for eSputnik's contact-token API.

    One client keeps one :class:`requests.Session` (keep-alive, connection
    pooling) and is safe to share between threads. Every call has a timeout per
    attempt, retries connection errors, timeouts, 5xx and 429 answers with a
    short, capped exponential backoff, never retries 400/401/403, and never
    takes longer than :attr:`time_budget` seconds in all. Every failure raises
    an :class:`~flask_appinbox.UpstreamError`.

    ``session``: a :class:`requests.Session` of yours, used as it is and never
    changed (the hard deadline against a trickling server needs
    :class:`~flask_appinbox.deadline.DeadlineAdapter` mounted on it).
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_API_URL,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.1,
        backoff_cap: float = 1.0,
        session: requests.Session | None = None,
        bulkhead: Bulkhead | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("an API key is required")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        self.bulkhead = bulkhead
        self.breaker = breaker
        self._send_kwargs: dict[str, Any] = {}
        if session is None:
            # Our own session: connections that keep to the deadline, with room to keep one per
            # concurrent call (a gevent worker makes hundreds). requests' proxy and CA settings
            # (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, ...) are read from the environment here,
            # once, not on every call: requests walks os.environ twice a call, which cost 0.6 ms
            # of CPU per token call under gunicorn gthread (README, "Design notes").
            session = requests.Session()
            session.mount(self.base_url + "/", DeadlineAdapter(pool_maxsize=POOL_SIZE))
            env = session.merge_environment_settings(self.base_url + "/", {}, None, None, None)
            self._send_kwargs = {"proxies": env["proxies"], "verify": env["verify"]}
            session.trust_env = False
        # A session given by the caller is used as it is: the key and headers go with each request.
        self.session = session
        self._auth = ("flask-appinbox", api_key)
        self._headers = {"Accept": "application/json", "Content-Type": "application/json", "User-Agent": USER_AGENT}
        self.sleep: Callable[[float], None] = time.sleep
        self.clock: Callable[[], float] = time.monotonic

    def __repr__(self) -> str:  # never show the key
        return f"<EsputnikClient {self.base_url}>"

    @property
    def time_budget(self) -> float:
        """The longest one call may take: every attempt's timeout plus every backoff wait."""
        return time_budget(self.timeout, self.retries, self.backoff_cap)

    def close(self) -> None:
        self.session.close()

    # -- the API -----------------------------------------------------------------

    def contact_token(self, contact: Contact | Mapping[str, Any], *, deadline: float | None = None) -> str:
        """Ask eSputnik for the contact's App Inbox token; ``""`` when it does not know the contact.

        ``deadline`` (a :func:`time.monotonic` value) shortens the call's budget,
        so that several calls can share one.
        """
        payload = _payload(contact)
        body = self._call(TOKEN_PATH, payload, deadline)
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            log.warning("eSputnik POST %s answered 200 without a token string", TOKEN_PATH)
            raise UpstreamError("eSputnik's token answer has no token string", status_code=200)
        return token

    def create_contact(self, contact: Contact | Mapping[str, Any], *, deadline: float | None = None) -> Any:
        """Create (or update) the contact in eSputnik; returns eSputnik's answer."""
        payload = _payload(contact)
        body: dict[str, Any] = {}
        if "externalCustomerId" in payload:
            body["externalCustomerId"] = payload["externalCustomerId"]
        channels = []
        if "email" in payload:
            channels.append({"type": "email", "value": payload["email"]})
        if "phone" in payload:
            channels.append({"type": "sms", "value": payload["phone"]})
        if channels:
            body["channels"] = channels
        return self._call(CONTACT_PATH, body, deadline)

    # -- the mechanics -------------------------------------------------------------

    def _call(self, path: str, payload: dict[str, Any], deadline: float | None) -> Any:
        guard = self.bulkhead.slot() if self.bulkhead is not None else nullcontext()
        with guard:
            try:
                return self._call_with_retries(path, payload, deadline)
            finally:
                if self.breaker is not None:
                    self.breaker.release()  # a half-open trial that ended without a verdict

    def _call_with_retries(self, path: str, payload: dict[str, Any], limit: float | None) -> Any:
        url = self.base_url + path
        data = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
        attempts = self.retries + 1
        start = self.clock()
        deadline = start + self.time_budget if limit is None else min(limit, start + self.time_budget)
        kinds: list[str] = []
        last: _Attempt | None = None
        for attempt in range(1, attempts + 1):
            if self.breaker is not None:
                self.breaker.before_call()
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            t0 = self.clock()
            try:
                result = self._attempt(url, data, min(self.timeout, remaining), deadline)
            except _Attempt as failed:
                last = failed
                kinds.append(failed.kind)
                log.info("eSputnik POST %s attempt %d/%d failed in %.3f s: %s",
                         path, attempt, attempts, self.clock() - t0, failed.error)
                if self.breaker is not None:
                    if failed.outage:
                        self.breaker.failure(timeout=failed.kind == _TIMEOUT)
                    else:
                        self.breaker.release(answered=True)
                if not failed.retry or attempt == attempts:
                    break
                wait = self._backoff(attempt) if failed.wait is None else failed.wait
                if wait > self.backoff_cap or self.clock() + wait >= deadline:
                    break  # a longer Retry-After goes back to the browser
                self.sleep(wait)
                continue
            if self.breaker is not None:
                self.breaker.success()
            log.debug("eSputnik POST %s attempt %d/%d: 200 in %.3f s", path, attempt, attempts, self.clock() - t0)
            return result
        elapsed = self.clock() - start
        if last is None:
            raise UpstreamTimeout(f"eSputnik call ran out of its {self.time_budget:.1f} s budget")
        error = last.error
        if kinds and all(k == _TIMEOUT for k in kinds) and not isinstance(error, UpstreamTimeout):
            error = UpstreamTimeout(str(error))
        elif kinds and not all(k == kinds[-1] for k in kinds) and not isinstance(error, UpstreamRejected):
            error = UpstreamError(f"eSputnik failed on every attempt (last: {error})", status_code=error.status_code)
        log.warning("eSputnik POST %s failed after %d attempt(s) in %.3f s: %s (%s)",
                    path, len(kinds), elapsed, error.error, error)
        raise error

    def _backoff(self, attempt: int) -> float:
        delay: float = min(self.backoff_cap, self.backoff * 2.0 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)

    def _attempt(self, url: str, data: str, timeout: float, deadline: float) -> Any:
        # The attempt ends by its own timeout or the call's deadline, whichever comes
        # first, however slowly the server trickles (see deadline.py).
        ends = time.monotonic() + min(timeout, deadline - self.clock())
        try:
            with limit_until(ends), self.session.post(url, data=data, auth=self._auth, headers=self._headers,
                                                      timeout=timeout, stream=True, allow_redirects=False,
                                                      **self._send_kwargs) as resp:
                status = resp.status_code
                if status == 200:
                    raw = _read_limited(resp)
                elif status == 429:
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    wait = None if retry_after is None else float(retry_after)
                    error = UpstreamRateLimited(
                        "eSputnik answered 429", status_code=429,
                        retry_after=retry_after if retry_after is not None else DEFAULT_RETRY_AFTER)
                    raise _Attempt(_RATE_LIMITED, error, retry=True, wait=wait)
                elif status in (400, 401, 403):
                    raise _Attempt(_FAILED, UpstreamRejected(f"eSputnik answered {status}", status_code=status),
                                   retry=False)
                elif status >= 500:
                    raise _Attempt(_FAILED, UpstreamError(f"eSputnik answered {status}", status_code=status),
                                   retry=True)
                else:
                    raise _Attempt(_FAILED, UpstreamError(f"eSputnik answered {status}", status_code=status),
                                   retry=False)
        except requests.exceptions.RequestException as exc:
            if isinstance(exc, requests.exceptions.Timeout) or _timed_out(exc):
                raise _Attempt(_TIMEOUT, UpstreamTimeout("eSputnik did not answer in time"), retry=True) from None
            # Connection refused or reset, a broken chunked body, DNS: the message
            # names the host, never the key (auth never appears in it).
            raise _Attempt(_FAILED, UpstreamError(f"cannot reach eSputnik: {type(exc).__name__}"),
                           retry=True) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise _Attempt(_FAILED, UpstreamError("eSputnik's answer is not JSON", status_code=200),
                           retry=False) from None


def _timed_out(exc: BaseException) -> bool:
    """Whether a socket timeout is behind ``exc`` (requests reports a body read's timeout as a ConnectionError)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, (TimeoutError, urllib3.exceptions.ReadTimeoutError)):
            return True
        inner = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        seen = seen.__cause__ or seen.__context__ or inner
    return False


def _read_limited(resp: requests.Response) -> bytes:
    chunks = []
    size = 0
    for chunk in resp.iter_content(8192):
        size += len(chunk)
        if size > MAX_BODY:
            raise _Attempt(_FAILED, UpstreamError("eSputnik's answer is larger than 64 KiB", status_code=200),
                           retry=False)
        chunks.append(chunk)
    return b"".join(chunks)


def _payload(contact: Contact | Mapping[str, Any]) -> dict[str, str]:
    value = Contact.from_value(contact)
    payload = value.as_payload() if value is not None else {}
    if not payload:
        raise ValueError("the contact needs at least one of email, phone, externalCustomerId")
    return payload
