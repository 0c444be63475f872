"""The sandbox: a local stand-in for eSputnik, for demos and tests (``APPINBOX_SANDBOX = True``).

Never on by default. The extension's own :class:`~flask_appinbox.EsputnikClient`
talks to it through a ``requests`` transport adapter that hands each request
to this app in-process: the client code path is the one used for eSputnik,
the configured API key is never sent, and no request header can steer it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests
from flask import Flask
from flask_login import user_logged_out

from .adapter import WSGIAdapter
from .store import SandboxStore, identifiers
from .views import sandbox_bp

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["install", "SANDBOX_ORIGIN", "SandboxStore"]

#: Where the client sends sandbox calls; only the adapter below answers there.
SANDBOX_ORIGIN = "http://appinbox-sandbox.invalid"


def install(app: Flask, settings: Settings) -> tuple[str, str, requests.Session]:
    """Serve the sandbox on ``app``; returns its API key, API base URL and a session routed to it."""
    prefix = f"{settings.url_prefix}/sandbox"
    sandbox = app.extensions["appinbox_sandbox"] = SandboxStore(settings.sandbox_contacts, page=f"{prefix}/")
    app.register_blueprint(sandbox_bp, url_prefix=prefix)
    user_logged_out.connect(_spend_tokens, app, weak=False)
    session = requests.Session()
    session.mount(SANDBOX_ORIGIN + "/", WSGIAdapter(app))
    session.trust_env = False  # no proxy or .netrc between the client and the sandbox
    return sandbox.api_key, f"{SANDBOX_ORIGIN}{prefix}/api", session


def _spend_tokens(app: Flask, user: Any = None, **_: Any) -> None:
    """On logout, spend every sandbox token of the user's contact."""
    state = app.extensions.get("appinbox")
    sandbox = app.extensions.get("appinbox_sandbox")
    if state is None or sandbox is None or user is None:
        return
    try:
        contact = state.contact_for(user)
    except Exception:
        return
    ids = identifiers(contact.as_payload()) if contact else []
    if ids:
        sandbox.forget_contact(ids[0])
