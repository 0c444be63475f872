"""``FlaskAppInbox``: configuration, per-app state and the contact loader."""
from __future__ import annotations

import hashlib
import logging
import math
import os
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import requests
from flask import Flask, current_app
from flask_login import user_logged_out

from .cache import SingleFlight, TokenCache
from .cli import appinbox_cli
from .client import EsputnikClient, time_budget
from .config import DEFAULTS, Settings, check_api_key, check_site_id, unread_environment
from .contact import Contact
from .errors import ContactNotFound, log_unexpected
from .guard import Bulkhead, CircuitBreaker
from .signals import breaker_closed, breaker_opened, contact_created, send
from .snippet import Snippet, appinbox_bell, appinbox_script
from .views import bp

__all__ = ["FlaskAppInbox", "AppInboxState", "default_contact_loader"]

log = logging.getLogger("flask_appinbox")

ContactLoader = Callable[[Any], "Contact | Mapping[str, Any] | None"]

_USER_ATTRIBUTES = {"email": "email", "phone": "phone", "external_customer_id": "externalCustomerId"}
_MAX_TENANT_CLIENTS = 256


def default_contact_loader(user: Any) -> dict[str, Any]:
    """The user's ``email``, ``phone`` and ``external_customer_id`` attributes, when present and non-empty."""
    found = {}
    for attribute, field in _USER_ATTRIBUTES.items():
        value = getattr(user, attribute, None)
        if value is not None and value != "":
            found[field] = value
    return found


class AppInboxState:
    """Everything Flask-AppInbox keeps for one app, at ``app.extensions["appinbox"]``."""

    def __init__(self, extension: FlaskAppInbox, app: Flask, settings: Settings) -> None:
        self.extension = extension
        self.settings = settings
        self.flights = SingleFlight()
        self._warned: set[str] = set()
        self.warned_languages: set[str] = set()
        self._forgotten: dict[str, float] = {}  # cache key -> when its user logged out
        # Longer than any call in flight at a logout.
        self._forget_for = 2 * time_budget(settings.timeout, settings.retries, settings.backoff_cap) + 1
        self.cache: Any = None
        if settings.token_cache is not None:
            self.cache = settings.token_cache
        elif settings.token_cache_ttl > 0:
            self.cache = TokenCache(settings.token_cache_ttl)
        self._cache_timeout = max(1, math.ceil(settings.token_cache_ttl))
        # Accounts resolved per request (tenants), or fixed at start-up.
        self.per_request = callable(settings.api_key) or callable(settings.site_id)
        # One bulkhead and one breaker per process, whichever account a call is for.
        app_ref = weakref.ref(app)
        self.bulkhead = Bulkhead(settings.max_concurrent) if settings.max_concurrent else None
        self.breaker = CircuitBreaker(settings.breaker_threshold, settings.breaker_cooldown, quiet=settings.timeout,
                                      on_change=lambda old, new: _breaker_changed(app_ref, self, new))
        self._clients: OrderedDict[str | None, EsputnikClient] = OrderedDict()
        self._clients_lock = threading.Lock()
        self._sandbox_session: requests.Session | None = None
        self._sandbox_key = self._sandbox_url = ""
        if settings.sandbox:
            from .sandbox import install

            self._sandbox_session = requests.Session()
            self._sandbox_key, self._sandbox_url = install(app, settings, self._sandbox_session)
            log.warning("Flask-AppInbox runs on its SANDBOX: no token comes from eSputnik. "
                        "Never turn APPINBOX_SANDBOX on in production.")
        elif isinstance(settings.api_key, str):
            self.client_for(settings.api_key)  # built now, not on the first request
        prefix = settings.url_prefix
        if settings.sandbox:
            script_src = f"{prefix}/sandbox/loader.js"
        elif isinstance(settings.site_id, str):
            script_src = settings.script_url.format(site_id=settings.site_id)
        else:
            script_src = settings.script_url  # formatted per request
        self.snippet = Snippet(f"{prefix}/token", script_src)

    def warn_once(self, what: str, message: str, *args: Any) -> None:
        """Log a misconfiguration once per app, not on every request."""
        if what not in self._warned:
            self._warned.add(what)
            log.warning(message, *args)

    # -- per request: which account -----------------------------------------------------

    def api_key(self) -> str | None:
        """This request's API key (``None``: App Inbox is off for this request's tenant)."""
        if self.settings.sandbox:
            return None
        value = self.settings.api_key
        if callable(value):
            return check_api_key(value(), required=False)
        return value

    def site_id(self) -> str | None:
        value = self.settings.site_id
        if callable(value):
            return check_site_id(value(), required=False)
        return value

    def active(self) -> bool:
        """Whether App Inbox serves this request: enabled, and (with tenants) configured for this one."""
        if not self.settings.enabled:
            return False
        if self.settings.sandbox or not self.per_request:
            return True  # a fixed key and site ID were checked by init_app
        return self.api_key() is not None and self.site_id() is not None

    def client_for(self, api_key: str | None) -> EsputnikClient:
        with self._clients_lock:
            client = self._clients.get(api_key)
            if client is not None:
                self._clients.move_to_end(api_key)  # least recently used goes first
                return client
            if len(self._clients) >= _MAX_TENANT_CLIENTS:
                self._clients.popitem(last=False)[1].close()
            client = self._clients[api_key] = self._new_client(api_key)
        return client

    def _new_client(self, api_key: str | None) -> EsputnikClient:
        s = self.settings
        if s.sandbox:
            key, url, session = self._sandbox_key, self._sandbox_url, self._sandbox_session
        else:
            if api_key is None:
                raise ValueError("no API key for this request")
            key, url, session = api_key, s.api_url, None
        return EsputnikClient(key, url, timeout=s.timeout, retries=s.retries, backoff_cap=s.backoff_cap,
                              session=session, bulkhead=self.bulkhead, breaker=self.breaker)

    @property
    def client(self) -> EsputnikClient:
        """The client for this request's account."""
        return self.client_for(self.api_key())

    # -- contacts and tokens ----------------------------------------------------------

    def contact_for(self, user: Any) -> Contact | None:
        """The loader's contact for ``user``; ``ValueError`` when a value is malformed."""
        return Contact.from_value(self.extension._contact_loader(user))

    def cache_key(self, contact: Contact, api_key: str | None) -> str:
        """A key that names neither the contact nor the account: a digest of both."""
        material = "\0".join([api_key or "sandbox", contact.email or "", contact.phone or "",
                              contact.external_customer_id or ""])
        return "appinbox:" + hashlib.sha256(material.encode()).hexdigest()

    def issue_token(self, contact: Contact, *, renew: bool = False) -> tuple[str, bool]:
        """A token for ``contact`` and whether it came from the cache.

        A first call may be served from the cache; a renewal never is. Raises
        :class:`ContactNotFound` or an :class:`UpstreamError`.
        """
        api_key = self.api_key()
        client = self.client_for(api_key)
        if self.cache is None:
            return self._fetch(client, contact, None), False
        key = self.cache_key(contact, api_key)
        if renew:
            return self._fetch(client, contact, key), False
        cached = self.cache.get(key)
        if isinstance(cached, str) and cached:
            return cached, True
        # Concurrent first calls for one contact share one upstream call.
        token = self.flights.do(key, lambda: self._fetch(client, contact, key), wait=client.time_budget * 3)
        return token, False

    def _fetch(self, client: EsputnikClient, contact: Contact, key: str | None) -> str:
        started = time.monotonic()
        deadline = client.clock() + client.time_budget
        token = client.contact_token(contact, deadline=deadline)
        if not token and self.settings.create_contacts:
            client.create_contact(contact, deadline=deadline)
            log.info("created contact %r in eSputnik", contact)
            send(contact_created, contact=contact)
            token = client.contact_token(contact, deadline=deadline)
        if not token:
            raise ContactNotFound("eSputnik does not know this contact")
        if self.cache is not None and key is not None and self._forgotten.get(key, 0.0) < started:
            self.cache.set(key, token, timeout=self._cache_timeout)  # unless the user logged out meanwhile
        return token

    def forget(self, user: Any) -> None:
        """Drop any cached token of ``user`` (on logout)."""
        if self.cache is None:
            return
        try:
            contact = self.contact_for(user)
            api_key = self.api_key()
        except Exception as exc:
            log_unexpected("on logout, the contact loader failed: the user's cached token stays until it expires "
                           f"(at most {self._cache_timeout} s)", exc)
            return
        if contact:
            key = self.cache_key(contact, api_key)
            self.cache.delete(key)
            now = time.monotonic()
            with self._clients_lock:  # a call in flight now must not cache the token again
                self._forgotten = {k: t for k, t in self._forgotten.items() if now - t < self._forget_for}
                self._forgotten[key] = now


def _breaker_changed(app_ref: Callable[[], Flask | None], state: AppInboxState, new: str) -> None:
    app = app_ref()
    if app is None:
        return
    if new == CircuitBreaker.OPEN:
        breaker_opened.send(app, reason=state.breaker.reason, cooldown=state.breaker.cooldown)
    elif new == CircuitBreaker.CLOSED:
        breaker_closed.send(app)


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
        for key, default in DEFAULTS.items():
            app.config.setdefault(key, default)
        for name in unread_environment(os.environ):
            log.warning("the environment variable %s is not read: Flask's app.config.from_prefixed_env() reads "
                        "FLASK_%s", name, name)
        settings = Settings.from_config(app.config)
        if settings.token_cache_ttl > 0 and settings.token_cache is None and _looks_multi_process():
            log.warning("APPINBOX_TOKEN_CACHE_TTL is set with the token cache kept per process, and this server "
                        "runs workers in several processes: a logout drops the user's token in the process that "
                        "handled it only. Set APPINBOX_TOKEN_CACHE to a shared cache such as "
                        "cachelib.RedisCache(...).")
        app.extensions["appinbox"] = AppInboxState(self, app, settings)
        app.register_blueprint(bp, url_prefix=settings.url_prefix)
        app.add_template_global(appinbox_script)
        app.add_template_global(appinbox_bell)
        app.cli.add_command(appinbox_cli)
        user_logged_out.connect(_on_logout, app, weak=False)
        # Flask-WTF's CSRFProtect: the endpoints refuse cross-site requests themselves
        # (Origin and Sec-Fetch-Site). Exempt them whichever extension comes first:
        # now if CSRFProtect is already there, else before its check on each request.
        _exempt_from_csrf(app)
        app.before_request(_exempt_from_csrf)


def _looks_multi_process() -> bool:
    """Whether a server that forks workers runs this app: gunicorn (which sets SERVER_SOFTWARE in the
    environment of its processes) or uwsgi. An app cannot know its worker count; one gunicorn worker
    gets the warning too."""
    return os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/") or "uwsgi" in sys.modules


def _exempt_from_csrf(app: Flask | None = None) -> None:
    app = app or current_app
    csrf = app.extensions.get("csrf")
    if csrf is None or not hasattr(csrf, "exempt"):
        return
    csrf.exempt(bp)
    if "appinbox_sandbox" in app.blueprints:
        csrf.exempt(app.blueprints["appinbox_sandbox"])


def _on_logout(app: Flask, user: Any = None, **_: Any) -> None:
    state = app.extensions.get("appinbox")
    if state is not None and user is not None:
        state.forget(user)
