"""``FlaskAppInbox``: ``init_app`` and the contact loader."""
from __future__ import annotations

import ipaddress
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask_login import user_logged_out

from .cli import appinbox_cli
from .config import load, unknown_keys
from .contact import Contact
from .errors import _Answer
from .snippet import appinbox_bell, appinbox_script
from .state import AppInboxState
from .views import bp, failure_answer

__all__ = ["FlaskAppInbox", "default_contact_loader"]

log = logging.getLogger("flask_appinbox")

ContactLoader = Callable[[Any], "Contact | Mapping[str, Any] | None"]

_USER_ATTRIBUTES = {"email": "email", "phone": "phone", "external_customer_id": "externalCustomerId"}


def default_contact_loader(user: Any) -> dict[str, Any]:
    """The user's ``email``, ``phone`` and ``external_customer_id`` attributes, when present and non-empty."""
    found = {field: getattr(user, attribute, None) for attribute, field in _USER_ATTRIBUTES.items()}
    return {field: value for field, value in found.items() if value is not None and value != ""}


class FlaskAppInbox:
    """eSputnik App Inbox for a Flask + Flask-Login site.

    ``FlaskAppInbox(app)``, or ``appinbox = FlaskAppInbox()`` and later
    ``appinbox.init_app(app)`` in an app factory. One object can serve many
    apps: all per-app state is in ``app.extensions["appinbox"]``.
    """

    def __init__(self, app: Flask | None = None) -> None:
        self._contact_loader: ContactLoader = default_contact_loader
        if app is not None:
            self.init_app(app)

    def contact_loader(self, loader: ContactLoader) -> ContactLoader:
        """Decorator: ``loader(user)`` returns a :class:`Contact`, a mapping with the API's
        field names (``email``, ``phone``, ``externalCustomerId``) or ``None``."""
        self._contact_loader = loader
        return loader

    def init_app(self, app: Flask) -> None:
        if "appinbox" in app.extensions:
            raise RuntimeError("Flask-AppInbox is already initialised on this app")
        for name in sorted(os.environ):
            if name.startswith("APPINBOX_") and name not in app.config:
                log.warning("the environment variable %s is not read: Flask's app.config.from_prefixed_env() reads "
                            "FLASK_%s", name, name)
        settings = load(app.config)
        if _in_clear(settings.api_url) and not settings.sandbox:
            log.warning("APPINBOX_API_URL is plain http to a host that is not this machine: the API key would travel "
                        "in clear. Use https.")
        for key, near in unknown_keys(app.config):
            log.warning("%s is not a Flask-AppInbox setting: did you mean %s?", key, near)
        if settings.token_cache_ttl > 0 and settings.token_cache is None and _looks_multi_process():
            log.warning("APPINBOX_TOKEN_CACHE_TTL is set with the token cache kept per process, and this server "
                        "runs workers in several processes: a logout drops the user's token in the process that "
                        "handled it only. Set APPINBOX_TOKEN_CACHE to a shared cache such as "
                        "cachelib.RedisCache(...).")
        app.extensions["appinbox"] = app_state = AppInboxState(self, app, settings)
        if app_state.unconfigured and settings.enabled:
            log.warning("Flask-AppInbox is off: none of APPINBOX_API_KEY, APPINBOX_SITE_ID and APPINBOX_SANDBOX is "
                        "set. Set APPINBOX_API_KEY and APPINBOX_SITE_ID (or APPINBOX_SANDBOX = True to try it "
                        "without an account); APPINBOX_ENABLED = False switches it off without this warning.")
        app.register_blueprint(bp, url_prefix=settings.url_prefix)
        app.register_error_handler(_Answer, failure_answer)  # a site's own handler is always more specific
        app.add_template_global(appinbox_script)
        app.add_template_global(appinbox_bell)
        app.cli.add_command(appinbox_cli)
        user_logged_out.connect(_on_logout, app, weak=False)


def _in_clear(url: str) -> bool:
    """Whether ``url`` is plain http to a host other than a loopback one (127.0.0.0/8, ::1, localhost)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "http" or host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def _looks_multi_process() -> bool:
    """Whether a server that forks workers runs this app: gunicorn (which sets SERVER_SOFTWARE in the
    environment of its processes) or uwsgi. An app cannot know its worker count: one gunicorn worker
    gets the warning too."""
    return os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/") or "uwsgi" in sys.modules


def _on_logout(app: Flask, user: Any = None, **_: Any) -> None:
    state = app.extensions.get("appinbox")
    if state is not None and user is not None:
        state.forget(user)

