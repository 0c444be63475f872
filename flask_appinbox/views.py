"""The blueprint: ``POST <prefix>/token`` and its JSON answers."""
from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Rule

from .contact import Contact, InvalidContact
from .errors import ConfigurationError, ContactNotFound, UpstreamError, log_unexpected
from .signals import send, token_failed, token_issued
from .web import answer, is_cross_site, logged_in_user, state

log = logging.getLogger("flask_appinbox")

try:
    from flask_wtf.csrf import CSRFError
except ImportError:  # Flask-WTF is optional
    CSRFError = None

bp = Blueprint("appinbox", __name__, template_folder="templates")

MAX_BODY = 1024


class _BadBody(Exception):
    pass


def _renew() -> bool:
    """``renew`` from the optional JSON body ``{"renew": true|false}``.

    At most ``MAX_BODY`` + 1 bytes are read, whatever ``Content-Length`` says or
    when there is none (``Transfer-Encoding: chunked``).
    """
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _BadBody
    raw = request.stream.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise _BadBody
    if not raw.strip():
        return False
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # malformed, or nested deeper than the parser goes
        raise _BadBody from None
    if not isinstance(body, dict):
        raise _BadBody
    renew = body.get("renew", False)
    if not isinstance(renew, bool):
        raise _BadBody
    return renew


def token() -> Response:
    app_state = state()
    try:
        active = app_state.active()
    except ConfigurationError as exc:
        log.error("Flask-AppInbox configuration for this request is wrong: %s", exc)
        return answer(503, {"error": "configuration_error"})
    if not active:
        return answer(404, {"error": "disabled"})
    if request.method != "POST":
        response = answer(405, {"error": "method_not_allowed"})
        response.headers["Allow"] = "POST"
        return response
    if is_cross_site():
        return answer(403, {"error": "cross_site_request"})
    user = logged_in_user()
    if user is None:
        return answer(401, {"error": "unauthenticated"})
    try:
        renew = _renew()
    except _BadBody:
        response = answer(400, {"error": "bad_request"})
        response.headers["Connection"] = "close"  # the server need not read the rest of a long body
        return response
    try:
        contact = app_state.contact_for(user)
    except ValueError as exc:
        # Our own checks name the field; any other ValueError may quote the value.
        reason = str(exc) if isinstance(exc, InvalidContact) else f"{type(exc).__name__}, message withheld"
        log.warning("the contact of user %r is not valid (%s); not asking eSputnik", _user_id(user), reason)
        contact = None
    except Exception as exc:
        if _propagate():
            raise  # the site's own code: reaches the test or the debugger, as a view's exception does
        log_unexpected("the contact loader failed", exc)
        return _failed(user, None, 503, "contact_unavailable", exc)
    if not contact:
        app_state.warn_once("no-contact", "user %r has no contact, so App Inbox has no token for them (404): "
                        "the default contact loader reads the user's email, phone and external_customer_id; "
                        "write an @appinbox.contact_loader for other attributes. Logged once.", _user_id(user))
        return _failed(user, None, 404, ContactNotFound.error, None, {"token": ""})
    try:
        value, cached = app_state.issue_token(contact, renew=renew)
    except ContactNotFound as exc:
        return _failed(user, contact, 404, exc.error, exc, {"token": ""})
    except UpstreamError as exc:
        return _failed(user, contact, exc.status, exc.error, exc, retry_after=exc.retry_after)
    except Exception as exc:
        log_unexpected("issuing an App Inbox token failed", exc)
        return _failed(user, contact, 503, "internal_error", exc)
    send(token_issued, user=user, contact=contact, renew=renew, cached=cached)
    return answer(200, {"token": value})


def _failed(user: Any, contact: Contact | None, status: int, error: str, exc: Exception | None,
            extra: dict[str, Any] | None = None, retry_after: int | None = None) -> Response:
    send(token_failed, user=user, contact=contact, error=error, exception=exc)
    return answer(status, {**(extra or {}), "error": error}, retry_after)


def _propagate() -> bool:
    """Flask's rule for a view's exception: ``PROPAGATE_EXCEPTIONS``, else on when testing or debugging."""
    value = current_app.config.get("PROPAGATE_EXCEPTIONS")
    return bool(current_app.testing or current_app.debug) if value is None else bool(value)


def _user_id(user: Any) -> str:
    try:
        return str(user.get_id())
    except Exception:  # pragma: no cover - a user class without get_id
        return "?"


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    """Keep every answer under the prefix JSON, Flask-WTF's CSRF refusal included."""
    if CSRFError is not None and isinstance(exc, CSRFError):
        if is_cross_site():
            return answer(403, {"error": "cross_site_request"})
        if logged_in_user() is None:  # an expired session takes its CSRF token with it
            return answer(401, {"error": "unauthenticated"})
        return answer(403, {"error": "csrf_failed"})
    code = exc.code or 500
    if code == 413:  # a form parser (CSRFProtect's) met a large body first: the endpoint's own 400
        return answer(400, {"error": "bad_request"})
    name = (exc.name or "error").lower().replace(" ", "_")
    return answer(code if code != 500 else 503, {"error": name})


@bp.record
def _add_token_rule(setup: Any) -> None:
    # A rule without a method list, so that every method reaches the view and
    # gets a JSON 405 rather than Werkzeug's HTML one.
    setup.app.url_map.add(Rule(f"{setup.url_prefix or ''}/token", endpoint="appinbox.token"))
    setup.app.view_functions["appinbox.token"] = token
