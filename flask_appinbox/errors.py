"""Exceptions raised by Flask-AppInbox.

A failure to get a token is an :class:`~werkzeug.exceptions.HTTPException`, as
Flask-WTF's ``CSRFError`` is: raised out of the token view, it answers the
contract's JSON by itself, and a site that wants another answer registers
``@app.errorhandler(UpstreamError)`` (or a subclass, or ``ContactNotFound``).
"""
from __future__ import annotations

import json
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response


class AppInboxError(Exception):
    """Base class of every Flask-AppInbox exception."""


class ConfigurationError(AppInboxError, ValueError):
    """A configuration key is missing or malformed; the message names the key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class _Answer(AppInboxError, HTTPException):
    """A failure that answers ``{"error": <error>}`` with ``Cache-Control: no-store``."""

    code = 502
    error = "upstream_error"

    def __init__(self, message: str = "", *, status_code: int | None = None, retry_after: int | None = None) -> None:
        HTTPException.__init__(self, description=message or None)
        self.args = (message,)
        self.status_code = status_code  # eSputnik's HTTP status, when it answered
        self.retry_after = retry_after  # seconds, for the browser's Retry-After

    def __str__(self) -> str:
        return str(self.args[0])

    def body(self) -> dict[str, Any]:
        return {"error": self.error}

    def get_response(self, environ: Any = None, scope: Any = None) -> Response:
        response = Response(json.dumps(self.body()), self.code, mimetype="application/json")
        response.headers["Cache-Control"] = "no-store"
        if self.retry_after is not None:
            response.headers["Retry-After"] = str(self.retry_after)
        return response


class ContactNotFound(_Answer):
    """eSputnik does not know the contact (it answered ``{"token": ""}``), or the user has none."""

    code = 404
    error = "contact_not_found"

    def body(self) -> dict[str, Any]:
        return {"token": "", "error": self.error}


class UpstreamError(_Answer):
    """eSputnik could not be reached or answered something unusable (502 ``upstream_error``).

    ``status_code`` is eSputnik's HTTP status when it answered; ``retry_after``
    (seconds) goes to the browser as ``Retry-After``; ``attempts``: how many
    attempts the call made (0: refused before any).
    """

    attempts = 0


class UpstreamTimeout(UpstreamError):
    """Every attempt timed out, or the call's time budget ran out (504)."""

    code = 504
    error = "upstream_timeout"


class UpstreamRejected(UpstreamError):
    """eSputnik refused the request (400, 401 or 403): not retried (502)."""

    error = "upstream_rejected"


class UpstreamRateLimited(UpstreamError):
    """eSputnik answered 429 (503); ``retry_after`` is its own value when sane, else a short default."""

    code = 503
    error = "upstream_rate_limited"


class UpstreamBusy(UpstreamError):
    """``APPINBOX_MAX_CONCURRENT`` calls are already in flight in this process (503)."""

    code = 503
    error = "upstream_busy"


class UpstreamUnavailable(UpstreamError):
    """The guard refuses calls while eSputnik hangs (503)."""

    code = 503
    error = "upstream_unavailable"
