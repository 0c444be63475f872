"""Per-app state, and what the endpoint, the snippet, the sandbox and the CLI share:
the logged-in user, JSON answers and the same-origin check."""
from __future__ import annotations

import functools
import hashlib
import logging
import math
import threading
import weakref
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from cachelib import SimpleCache
from flask import Flask, Response, current_app, jsonify, request
from flask_login import current_user

from ._guard import Guard
from .client import EsputnikClient, time_budget
from .config import DEFAULT_PORTS, Settings, check_api_key, check_site_id, parse_bool, parse_origin
from .contact import Contact
from .errors import ContactNotFound
from .signals import contact_created, guard_closed, guard_opened

if TYPE_CHECKING:
    from .extension import FlaskAppInbox

log = logging.getLogger("flask_appinbox")

LOGGED_OUT = "-"  # what the token cache holds for a user who just logged out: never a token


def state(app: Flask | None = None) -> AppInboxState:
    """The app's :class:`AppInboxState`; a clear error before ``init_app``."""
    try:
        return (app or current_app).extensions["appinbox"]  # type: ignore[no-any-return]
    except KeyError:
        raise RuntimeError("Flask-AppInbox is not initialised on this app: call FlaskAppInbox(app) "
                           "or appinbox.init_app(app)") from None


def logged_in_user() -> Any:
    """Flask-Login's current user when logged in, else ``None`` (logged once when the app has no LoginManager)."""
    if not hasattr(current_app, "login_manager"):
        state().warn_once("no-login-manager", "Flask-AppInbox needs Flask-Login: this app has no LoginManager, so "
                          "no user is ever logged in and no page shows the inbox. Add LoginManager(app) with a "
                          "user_loader.")
        return None
    user = current_user._get_current_object()
    return user if user is not None and user.is_authenticated else None


def answer(status: int, body: Any) -> Response:
    """A JSON answer that no cache stores."""
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def is_cross_site() -> bool:
    """Whether this request comes from a page of another origin.

    ``Sec-Fetch-Site`` decides when a browser sends it: only ``same-origin`` is
    served. Without it, an ``Origin`` must name this host and port; its scheme
    may be ``https`` where the app sees ``http`` (TLS ended at a proxy without
    ProxyFix). ``APPINBOX_TRUSTED_ORIGINS`` are served either way.
    """
    origin = request.headers.get("Origin")
    theirs = parse_origin(origin.strip()) if origin is not None else None
    if theirs is not None and theirs in state().settings.trusted_origins:
        return False
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site.strip().lower() != "same-origin"
    if origin is None:
        return False  # not a browser's cross-site request: browsers send Origin with every POST
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


class AppInboxState:
    """Everything Flask-AppInbox keeps for one app, at ``app.extensions["appinbox"]``."""

    def __init__(self, extension: FlaskAppInbox, app: Flask, settings: Settings) -> None:
        self.extension = extension
        self.settings = s = settings
        self._warned: dict[str, set[str]] = {}  # per kind (the first word), each capped: user input fills its own
        self.token_path = f"{s.url_prefix}/token"
        self.per_request = callable(s.api_key) or callable(s.site_id)  # tenants
        #: No API key and no sandbox: off whatever APPINBOX_ENABLED says (init_app has warned).
        self.unconfigured = s.api_key is None and not s.sandbox
        self.cache: Any = s.token_cache
        if self.cache is None and s.token_cache_ttl > 0:
            self.cache = SimpleCache(threshold=10_000)
        self._ttl = max(1, math.ceil(s.token_cache_ttl))
        budget = time_budget(s.timeout, s.retries)
        self._logged_out_for = max(1, math.ceil(2 * budget))  # longer than any call
        # One guard and one bulkhead per process, whichever account a call is for.
        app_ref = weakref.ref(app)
        self.guard = Guard(s.timeout[1], budget, on_change=lambda hung: _guard_changed(app_ref(), hung)) \
            if s.guard else None
        self.bulkhead = threading.BoundedSemaphore(s.max_concurrent) if s.guard and s.max_concurrent else None
        self._sandbox: tuple[str, str, requests.Session] | None = None
        if s.sandbox:
            from .sandbox import install

            self._sandbox = install(app, settings)
            log.warning("Flask-AppInbox runs on its SANDBOX: no token comes from eSputnik. "
                        "Never turn APPINBOX_SANDBOX on in production.")
        # Tenants' clients, the least recently used dropped beyond 256 (its connections close when it is collected).
        self.client_for = functools.lru_cache(maxsize=256)(self._new_client)
        if isinstance(s.api_key, str) or s.sandbox:
            self.client_for(self.api_key())  # built now, not on the first request

    def warn_once(self, what: str, message: str, *args: Any) -> None:
        """Log a misconfiguration once per app, not on every request; at most 100 per kind (the first word
        of ``what``), so that values a user types (languages) cannot silence other warnings."""
        kind = what.split(" ", 1)[0]  # "language 'xx'": one kind, many values
        seen = self._warned.setdefault(kind, set())
        if what not in seen and len(seen) < 100:
            seen.add(what)
            log.warning(message, *args)

    # -- per request: which account --------------------------------------------------------

    def api_key(self) -> str | None:
        """This request's API key (``None``: App Inbox is off for this request's tenant)."""
        value = None if self.settings.sandbox else self.settings.api_key
        return check_api_key(value(), required=False) if callable(value) else value

    def site_id(self) -> str | None:
        value = self.settings.site_id
        return check_site_id(value(), required=False) if callable(value) else value

    def enabled(self) -> bool:
        """``APPINBOX_ENABLED`` as the app's config says now (a test may switch it after ``init_app``);
        always ``False`` without an account or the sandbox."""
        if self.unconfigured:
            return False
        value = current_app.config.get("APPINBOX_ENABLED")
        try:
            return self.settings.enabled if value is None else parse_bool(value)
        except ValueError:
            self.warn_once("enabled", "APPINBOX_ENABLED was changed to a value that is not a boolean; "
                           "App Inbox keeps the value init_app read (%s)", self.settings.enabled)
            return self.settings.enabled

    def active(self) -> bool:
        """Whether App Inbox serves this request: enabled, and (with tenants) configured for this one."""
        if not self.enabled():
            return False
        if self.settings.sandbox or not self.per_request:
            return True  # a fixed key and site ID were checked by init_app
        return self.api_key() is not None and self.site_id() is not None

    def script_src(self, script_root: str, site_id: str | None) -> str:
        if self.settings.sandbox:
            return f"{script_root}{self.settings.url_prefix}/sandbox/loader.js"
        src = self.settings.script_url.format(site_id=site_id or "")
        return script_root + src if src.startswith("/") else src

    def _new_client(self, api_key: str | None) -> EsputnikClient:
        s = self.settings
        key, url, session = self._sandbox or (api_key or "", s.api_url, None)
        client = EsputnikClient(key, url, timeout=s.timeout, retries=s.retries, session=session)
        client._guard, client._bulkhead = self.guard, self.bulkhead
        return client

    @property
    def client(self) -> EsputnikClient:
        """The client for this request's account."""
        return self.client_for(self.api_key())

    # -- contacts and tokens -------------------------------------------------------------------

    def contact_for(self, user: Any) -> Contact | None:
        """The loader's contact for ``user``; ``ValueError`` when a value is malformed."""
        return Contact.from_value(self.extension._contact_loader(user))

    def cache_key(self, contact: Contact, api_key: str | None) -> str:
        """A key that names neither the contact nor the account: a digest of both."""
        material = "\0".join([api_key or "sandbox", contact.email or "", contact.phone or "",
                              contact.external_customer_id or ""])
        return "appinbox:" + hashlib.sha256(material.encode()).hexdigest()

    def issue_token(self, contact: Contact, *, renew: bool = False) -> tuple[str, bool]:
        """A token for ``contact`` and whether it came from the cache; a renewal never does.

        Raises :class:`ContactNotFound` or an :class:`UpstreamError`.
        """
        api_key = self.api_key()
        client = self.client_for(api_key)
        if self.cache is None:
            return self._fetch(client, contact), False
        key = self.cache_key(contact, api_key)
        cached = self.cache.get(key)
        if not renew and isinstance(cached, str) and cached and cached != LOGGED_OUT:
            return cached, True
        token = self._fetch(client, contact)
        if renew and cached != LOGGED_OUT:
            self.cache.set(key, token, timeout=self._ttl)
        else:  # add, not set: a logout while this call was in flight left LOGGED_OUT, which stays
            self.cache.add(key, token, timeout=self._ttl)
        return token, False

    def _fetch(self, client: EsputnikClient, contact: Contact) -> str:
        token = client.contact_token(contact)
        if not token and self.settings.create_contacts:
            client.create_contact(contact)
            log.info("created contact %r in eSputnik", contact)
            contact_created.send(current_app._get_current_object(), contact=contact)  # type: ignore[attr-defined]
            token = client.contact_token(contact)
        if not token:
            raise ContactNotFound("eSputnik does not know this contact")
        return token

    def forget(self, user: Any) -> None:
        """On logout: the user's cached token is replaced by :data:`LOGGED_OUT` for longer than any call
        in flight, in this process or (with a shared cache) in every one."""
        if self.cache is None:
            return
        try:
            contact, api_key = self.contact_for(user), self.api_key()
        except Exception as exc:  # the message may hold personal data: its type only
            log.error("on logout, the contact loader failed (%s): the user's cached token stays until it expires "
                      "(at most %d s)", type(exc).__name__, self._ttl)
            return
        if contact:
            self.cache.set(self.cache_key(contact, api_key), LOGGED_OUT, timeout=self._logged_out_for)


def _guard_changed(app: Flask | None, hung: bool) -> None:
    if app is not None:
        (guard_opened if hung else guard_closed).send(app)
