"""``FlaskAppInbox``: configuration, per-app state and the contact loader."""
from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import requests
from flask import Flask
from flask_login import user_logged_out

from .cache import SingleFlight, TokenCache
from .client import EsputnikClient
from .config import DEFAULTS, Settings
from .contact import Contact
from .errors import ContactNotFound
from .guard import Bulkhead, CircuitBreaker
from .snippet import Snippet, appinbox_bell, appinbox_script
from .views import bp

__all__ = ["FlaskAppInbox", "default_contact_loader"]

log = logging.getLogger("flask_appinbox")

ContactLoader = Callable[[Any], "Contact | Mapping[str, Any] | None"]

_USER_ATTRIBUTES = {"email": "email", "phone": "phone", "external_customer_id": "externalCustomerId"}


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

    def __init__(self, extension: FlaskAppInbox, settings: Settings, client: EsputnikClient) -> None:
        self.extension = extension
        self.settings = settings
        self.client = client
        self.cache = TokenCache(settings.token_cache_ttl) if settings.token_cache_ttl > 0 else None
        self.flights = SingleFlight()
        prefix = settings.url_prefix
        if settings.sandbox:
            script_src = f"{prefix}/sandbox/loader.js"
        else:
            script_src = settings.script_url.format(site_id=settings.site_id)
        self.snippet = Snippet(settings, f"{prefix}/token", script_src)

    def contact_for(self, user: Any) -> Contact | None:
        """The loader's contact for ``user``; ``ValueError`` when a value is malformed."""
        return Contact.from_value(self.extension._contact_loader(user))

    def cache_key(self, contact: Contact) -> Hashable:
        return (contact.email, contact.phone, contact.external_customer_id)

    def issue_token(self, contact: Contact, *, renew: bool = False) -> str:
        """A token for ``contact``: from the cache on a first call when allowed, else from eSputnik.

        Raises :class:`ContactNotFound` or an :class:`UpstreamError`.
        """
        if self.cache is None:
            return self._fetch(contact)
        key = self.cache_key(contact)
        if renew:
            return self._fetch(contact, key)
        cached = self.cache.get(key)
        if cached:
            return cached
        # Concurrent first calls for one contact share one upstream call.
        return self.flights.do(key, lambda: self._fetch(contact, key), wait=self.settings.time_budget * 3)

    def _fetch(self, contact: Contact, key: Hashable | None = None) -> str:
        client = self.client
        deadline = client.clock() + client.time_budget
        token = client.contact_token(contact, deadline=deadline)
        if not token and self.settings.create_contacts:
            client.create_contact(contact, deadline=deadline)
            log.info("created contact %r in eSputnik", contact)
            token = client.contact_token(contact, deadline=deadline)
        if not token:
            raise ContactNotFound("eSputnik does not know this contact")
        if self.cache is not None and key is not None:
            self.cache.set(key, token)
        return token

    def forget(self, user: Any) -> None:
        """Drop any cached token of ``user`` (on logout)."""
        if self.cache is None:
            return
        try:
            contact = self.contact_for(user)
        except Exception:
            return
        if contact:
            self.cache.delete(self.cache_key(contact))


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
        settings = Settings.from_config(app.config)
        session = requests.Session()
        if settings.sandbox:
            from .sandbox import install

            api_key, api_url = install(app, settings, session)
            log.warning("Flask-AppInbox runs on its SANDBOX: no token comes from eSputnik. "
                        "Never turn APPINBOX_SANDBOX on in production.")
        else:
            assert settings.api_key is not None
            api_key, api_url = settings.api_key, settings.api_url
        client = EsputnikClient(
            api_key,
            api_url,
            timeout=settings.timeout,
            retries=settings.retries,
            backoff_cap=settings.backoff_cap,
            session=session,
            bulkhead=Bulkhead(settings.max_concurrent),
            breaker=CircuitBreaker(settings.breaker_threshold, settings.breaker_cooldown),
        )
        state = AppInboxState(self, settings, client)
        app.extensions["appinbox"] = state
        app.register_blueprint(bp, url_prefix=settings.url_prefix)
        app.add_template_global(appinbox_script)
        app.add_template_global(appinbox_bell)
        user_logged_out.connect(_on_logout, app, weak=False)


def _on_logout(app: Flask, user: Any = None, **_: Any) -> None:
    state = app.extensions.get("appinbox")
    if state is not None and user is not None:
        state.forget(user)
