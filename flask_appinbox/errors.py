"""Exceptions raised by Flask-AppInbox.

Every exception shares :class:`AppInboxError`. Upstream failures carry the
``error`` code and HTTP status the token endpoint answers with, so the mapping
from failure to answer lives here and nowhere else.
"""
from __future__ import annotations

import logging
import traceback

log = logging.getLogger("flask_appinbox")


def log_unexpected(what: str, exc: BaseException) -> None:
    """Log an unexpected exception with its type and traceback, but not its message:
    a message from a database or a transport may hold personal data or the API key."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("%s: %s (message withheld)\nTraceback (most recent call last):\n%s",
              what, type(exc).__qualname__, frames.rstrip())


class AppInboxError(Exception):
    """Base class of every Flask-AppInbox exception."""


class ConfigurationError(AppInboxError, ValueError):
    """A configuration key is missing or malformed; the message names the key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class ContactNotFound(AppInboxError):
    """eSputnik does not know the contact (it answered ``{"token": ""}``)."""

    status = 404
    error = "contact_not_found"


class UpstreamError(AppInboxError):
    """eSputnik could not be reached or answered something unusable.

    ``status`` and ``error`` are the token endpoint's answer; ``status_code`` is
    eSputnik's HTTP status when it answered; ``retry_after`` (seconds) goes to
    the browser as ``Retry-After``.
    """

    status = 502
    error = "upstream_error"

    def __init__(self, message: str, *, status_code: int | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class UpstreamTimeout(UpstreamError):
    """Every attempt timed out (or the call's time budget ran out)."""

    status = 504
    error = "upstream_timeout"


class UpstreamRejected(UpstreamError):
    """eSputnik refused the request (400, 401 or 403): not retried."""

    error = "upstream_rejected"


class UpstreamRateLimited(UpstreamError):
    """eSputnik answered 429 on every attempt.

    ``retry_after`` is in whole seconds: eSputnik's own value when it sent one.
    """

    status = 503
    error = "upstream_rate_limited"


class UpstreamBusy(UpstreamError):
    """Too many upstream calls are already in flight in this process."""

    status = 503
    error = "upstream_busy"


class UpstreamUnavailable(UpstreamError):
    """The circuit breaker is open after repeated upstream failures."""

    status = 503
    error = "upstream_unavailable"
