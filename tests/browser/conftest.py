"""Browser tests: Playwright with Debian's Chromium, against apps served on 127.0.0.1.

Without Chromium or Playwright they skip, except with ``CI=true``, where they fail.
"""
from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, redirect
from flask.cli import prepare_import
from flask_login import LoginManager, UserMixin, login_user
from werkzeug.serving import WSGIRequestHandler, make_server

ROOT = Path(__file__).resolve().parents[2]


class BrowserUser(UserMixin):
    """The one user of the browser tests' small sites."""

    id = "1"
    email = "browser@example.com"


def add_login(app: Flask) -> Flask:
    """Flask-Login with :class:`BrowserUser`, logged in by ``GET /login`` (then sent to ``/``)."""
    LoginManager(app).user_loader(lambda user_id: BrowserUser() if user_id == "1" else None)

    @app.get("/login")
    def log_in() -> Any:
        login_user(BrowserUser())
        return redirect("/")

    return app


def sandbox_app(**config: Any) -> Flask:
    """A small site with Flask-Login (:func:`add_login`) and App Inbox on the sandbox; ``config`` on top."""
    from flask_appinbox import FlaskAppInbox

    app = Flask(__name__)
    app.config.update({"SECRET_KEY": "test-secret", "APPINBOX_SANDBOX": True, **config})
    FlaskAppInbox(add_login(app))
    return app


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 on a free port in a background thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="browser-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class Console:
    """What a page reports: console messages, uncaught errors and CSP violations."""

    def __init__(self, page: Any) -> None:
        self.messages: list[Any] = []
        self.page_errors: list[str] = []
        page.on("console", lambda message: self.messages.append(message))
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.add_init_script(
            "window.__cspViolations = [];"
            "document.addEventListener('securitypolicyviolation', function (e) {"
            " window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI); });"
        )
        self.page = page

    def errors(self) -> list[str]:
        """Console errors (a healthy sandbox page has none), less Chromium's log of a missing favicon."""
        found = []
        for message in self.messages:
            if message.type != "error":
                continue
            url = (message.location or {}).get("url", "")
            if message.text.startswith("Failed to load resource") and url.endswith("/favicon.ico"):
                continue
            found.append(f"{message.text} ({url})")
        return found + self.page_errors

    def violations(self) -> list[str]:
        return list(self.page.evaluate("window.__cspViolations || []"))


@pytest.fixture
def served() -> Iterator[Callable[[Flask], str]]:
    """``served(app)``: the base URL of ``app``, served until the test ends."""
    with ExitStack() as stack:
        yield lambda app: stack.enter_context(serve(app))


@pytest.fixture(scope="session")
def demo_module() -> Any:
    """The demo package, imported the way ``flask --app examples/demo`` imports it."""
    return importlib.import_module(prepare_import(str(ROOT / "examples" / "demo")))


@pytest.fixture
def watch() -> type[Console]:
    """``watch(page)``: a :class:`Console` recording what the page reports."""
    return Console
