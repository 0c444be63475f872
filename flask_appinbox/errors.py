"""Exceptions raised by Flask-AppInbox. No Flask in here.

A failure to get a token (:class:`ContactNotFound`, :class:`UpstreamError` and its
subclasses) carries the token endpoint's answer: ``status`` and ``error``. ``init_app``
answers it with the contract's JSON through an error handler on a private base class
that comes last in their method resolution order, so that a site's own
``@app.errorhandler(UpstreamError)`` (or a subclass, ``ContactNotFound``, or
``AppInboxError``) is always the more specific one and wins, as with Flask-WTF's
``CSRFError``. (HTTP exceptions would not do: Flask files an ``HTTPException``'s handler
under its status code, so a handler for ``UpstreamError``, 502, would miss
``UpstreamTimeout``, 504.)
"""
from __future__ import annotations

from typing import Any


class AppInboxError(Exception):
    """Base class of every Flask-AppInbox exception."""


class ConfigurationError(AppInboxError, ValueError):
    """A configuration key is missing or malformed; the message names the key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class _Answer(Exception):
    """A failure the token endpoint answers with ``status`` and ``{"error": <error>}``."""

    status = 502
    error = "upstream_error"
    retry_after: int | None = None

    def body(self) -> dict[str, Any]:
        return {"error": self.error}


class ContactNotFound(AppInboxError, _Answer):
    """eSputnik does not know the contact (it answered ``{"token": ""}``), or the user has none (404)."""

    status = 404
    error = "contact_not_found"

    def body(self) -> dict[str, Any]:
        return {"token": "", "error": self.error}


class UpstreamError(AppInboxError, _Answer):
    """eSputnik could not be reached or answered something unusable (502 ``upstream_error``).

    ``status_code`` is eSputnik's HTTP status when it answered; ``retry_after``
    (seconds) goes to the browser as ``Retry-After``; ``attempts``: how many
    attempts the call made (0: refused before any).
    """

    attempts = 0

    def __init__(self, message: str, *, status_code: int | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class UpstreamTimeout(UpstreamError):
    """The last attempt timed out, or the body did not arrive within the call's time budget (504)."""

    status = 504
    error = "upstream_timeout"


class UpstreamRejected(UpstreamError):
    """eSputnik refused the request (400, 401 or 403): not retried (502)."""

    error = "upstream_rejected"


class UpstreamRateLimited(UpstreamError):
    """eSputnik answered 429 (503); ``retry_after`` is its own value when sane, else a short default."""

    status = 503
    error = "upstream_rate_limited"


class UpstreamBusy(UpstreamError):
    """``APPINBOX_MAX_CONCURRENT`` calls are already in flight in this process (503)."""

    status = 503
    error = "upstream_busy"


class UpstreamUnavailable(UpstreamError):
    """The guard refuses calls while eSputnik hangs (503)."""

    status = 503
    error = "upstream_unavailable"
