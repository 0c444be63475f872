"""What the endpoint, the snippet, the sandbox and the CLI share: the app's state,
the logged-in user, JSON answers and the same-origin check."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, jsonify, request
from flask_login import current_user

from .config import DEFAULT_PORTS, parse_origin

if TYPE_CHECKING:
    from .extension import AppInboxState

__all__ = ["state", "logged_in_user", "answer", "is_cross_site"]

NO_LOGIN_MANAGER = ("Flask-AppInbox needs Flask-Login: this app has no LoginManager, so no user is ever logged in "
                    "and no page shows the inbox. Add LoginManager(app) with a user_loader.")


def state(app: Flask | None = None) -> AppInboxState:
    """The app's :class:`~flask_appinbox.extension.AppInboxState`; a clear error before ``init_app``."""
    try:
        found: AppInboxState = (app or current_app).extensions["appinbox"]
    except KeyError:
        raise RuntimeError("Flask-AppInbox is not initialised on this app: call FlaskAppInbox(app) "
                           "or appinbox.init_app(app)") from None
    return found


def logged_in_user() -> Any:
    """Flask-Login's current user when logged in, else ``None`` (logged once when the app has no LoginManager)."""
    if not hasattr(current_app, "login_manager"):
        state().warn_once("no-login-manager", NO_LOGIN_MANAGER)
        return None
    user = current_user._get_current_object()
    return user if user is not None and user.is_authenticated else None


def answer(status: int, body: Any, retry_after: int | None = None) -> Response:
    """A JSON answer that no cache stores."""
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def is_cross_site() -> bool:
    """Whether this request comes from a page of another origin.

    ``Sec-Fetch-Site`` decides when a browser sends it: only ``same-origin`` is
    served. Without it, an ``Origin`` must name this host and port; its scheme
    may be ``https`` where the app sees ``http`` (TLS ended at a proxy without
    ProxyFix). ``APPINBOX_TRUSTED_ORIGINS`` are served either way.
    """
    origin = request.headers.get("Origin")
    if origin is not None and parse_origin(origin.strip()) in state().settings.trusted_origins:
        return False
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site.strip().lower() != "same-origin"
    if origin is None:
        return False  # not a browser's cross-site request: browsers send Origin with every POST
    theirs = parse_origin(origin.strip())
    if theirs is None:
        return True  # "null" (a sandboxed frame, a file) or garbage
    scheme, host, port = theirs
    try:
        own = urlsplit("//" + request.host)
        own_host, own_port = (own.hostname or "").lower(), own.port
    except ValueError:
        return True
    if scheme != request.scheme and (scheme, request.scheme) != ("https", "http"):
        return True
    return host != own_host or port != (own_port or DEFAULT_PORTS[scheme])
