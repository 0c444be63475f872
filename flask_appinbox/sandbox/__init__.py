"""The sandbox: a local stand-in for eSputnik, for demos and tests (``APPINBOX_SANDBOX = True``).

Never on by default. The extension's own :class:`~flask_appinbox.EsputnikClient`
talks to it through a ``requests`` transport adapter that hands each request
to this app in-process: the client code path is the one used for eSputnik,
the configured API key is never sent, and no request header can steer it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import requests
from flask import Flask

from .adapter import WSGIAdapter
from .store import SandboxStore
from .views import SANDBOX_API_KEY, sandbox_bp

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["install", "SANDBOX_API_KEY", "SANDBOX_ORIGIN", "SandboxStore"]

#: Where the client sends sandbox calls; only the adapter below answers there.
SANDBOX_ORIGIN = "http://appinbox-sandbox.invalid"


def install(app: Flask, settings: Settings, session: requests.Session) -> tuple[str, str]:
    """Serve the sandbox on ``app`` and route ``session`` to it; returns (API key, API base URL)."""
    app.extensions["appinbox_sandbox"] = SandboxStore(settings.sandbox_contacts)
    prefix = f"{settings.url_prefix}/sandbox"
    app.register_blueprint(sandbox_bp, url_prefix=prefix)
    session.mount(SANDBOX_ORIGIN + "/", WSGIAdapter(app))
    session.trust_env = False  # no proxy or .netrc between the client and the sandbox
    return SANDBOX_API_KEY, f"{SANDBOX_ORIGIN}{prefix}/api"
