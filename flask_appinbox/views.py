"""The blueprint: ``POST <prefix>/token`` and its JSON answers."""
from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import InternalServerError

from .contact import InvalidContact
from .errors import ConfigurationError, ContactNotFound, UpstreamError, _Answer
from .signals import token_failed, token_issued
from .state import answer, is_cross_site, logged_in_user, state

log = logging.getLogger("flask_appinbox")

bp = Blueprint("appinbox", __name__, template_folder="templates")

MAX_BODY = 1024


@bp.route("/token", methods=["POST", "OPTIONS"])
def token() -> Response:
    """A token for the logged-in user's contact; every answer JSON and ``no-store``.

    A failure to get one raises :class:`ContactNotFound` or an :class:`UpstreamError`:
    :func:`failure_answer` answers it unless the site has an ``errorhandler`` of its own.
    """
    if request.method == "OPTIONS":  # Flask's automatic answer, but JSON and no-store like every other
        response = answer(200, {})
        response.headers["Allow"] = "OPTIONS, POST"
        return response
    app_state = state()
    try:
        active = app_state.active()
    except ConfigurationError as exc:
        log.error("Flask-AppInbox configuration for this request is wrong: %s", exc)
        return answer(503, {"error": "configuration_error"})
    if not active:
        return answer(404, {"error": "disabled"})
    if is_cross_site():
        return answer(403, {"error": "cross_site_request"})
    user = logged_in_user()
    if user is None:
        return answer(401, {"error": "unauthenticated"})
    renew = _renew()
    if renew is None:
        return answer(400, {"error": "bad_request"})  # (no Connection: close: WSGI leaves hop-by-hop to the server)
    try:
        contact = app_state.contact_for(user)
    except ValueError as exc:
        # Our own checks name the field; any other ValueError may quote the value.
        reason = str(exc) if isinstance(exc, InvalidContact) else f"{type(exc).__name__}, message withheld"
        log.warning("the contact of user %r is not valid (%s); not asking eSputnik", user.get_id(), reason)
        contact = None
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        if not contact:
            app_state.warn_once("no-contact", "user %r has no contact, so App Inbox has no token for them (404): "
                                "the default contact loader reads the user's email, phone and external_customer_id;"
                                " write an @appinbox.contact_loader for other attributes. Logged once.",
                                user.get_id())
            raise ContactNotFound("the user has no contact")
        value, cached = app_state.issue_token(contact, renew=renew)
    except (ContactNotFound, UpstreamError) as exc:
        token_failed.send(app, user=user, contact=contact or None, error=exc.error, exception=exc)
        raise
    token_issued.send(app, user=user, contact=contact, renew=renew, cached=cached)
    return answer(200, {"token": value})


def _renew() -> bool | None:
    """``renew`` from the optional JSON body ``{"renew": true|false}``; ``None`` for a bad body.

    At most ``MAX_BODY`` + 1 bytes are read, whatever ``Content-Length`` says or when
    there is none (``Transfer-Encoding: chunked``).
    """
    if request.content_length is not None and request.content_length > MAX_BODY:
        return None
    raw = b""
    while len(raw) <= MAX_BODY and (chunk := request.stream.read(MAX_BODY + 1 - len(raw))):
        raw += chunk  # a stream may hand over less than asked for
    if len(raw) > MAX_BODY:
        return None
    if not raw.strip():
        return False
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # malformed, or nested deeper than the parser goes
        return None
    renew = body.get("renew", False) if isinstance(body, dict) else None
    return renew if isinstance(renew, bool) else None


def failure_answer(exc: _Answer) -> Response:
    """The contract's answer to a failure, registered by ``init_app`` on the failures' private base class."""
    response = answer(exc.status, exc.body())
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


@bp.errorhandler(InternalServerError)
def _unexpected(exc: InternalServerError) -> Response:
    """No answer of the endpoint is a 500: Flask has logged the error (or raised it, when testing)."""
    return answer(503, {"error": "internal_error"})


@bp.url_value_preprocessor
def exempt_from_csrf(endpoint: str | None, values: Any) -> None:
    """Flask-WTF's CSRFProtect: the endpoint refuses cross-site requests itself (Origin and
    Sec-Fetch-Site), so that a page left open for hours still renews its token. This runs on the
    blueprint's own requests only, before any ``before_request``, whichever extension came first."""
    csrf = current_app.extensions.get("csrf")
    blueprint = current_app.blueprints.get(request.blueprint or "")
    if csrf is not None and hasattr(csrf, "exempt") and blueprint is not None:
        csrf.exempt(blueprint)
