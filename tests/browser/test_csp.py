"""The snippet and the sandbox's script under Flask-Talisman's strict Content-Security-Policy."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, render_template_string
from flask_talisman import Talisman

from flask_appinbox import FlaskAppInbox

from .conftest import add_login

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails with CI=true)
    expect = None

# No 'unsafe-inline' anywhere: scripts and styles need the nonce or this origin.
POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
}
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CSP</title></head>
<body><header>{% if bell %}{{ appinbox_bell() }}{% endif %}</header><main>Strict CSP</main>
{{ appinbox_script() }}</body></html>"""


def make_app() -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test-secret", APPINBOX_SANDBOX=True, APPINBOX_TRACKING=True)
    add_login(app)
    Talisman(app, force_https=False, session_cookie_secure=False, content_security_policy=POLICY,
             content_security_policy_nonce_in=["script-src", "style-src"])
    FlaskAppInbox(app)

    @app.get("/")
    def index() -> str:
        return render_template_string(PAGE, bell=True)

    @app.get("/corner")
    def corner() -> str:
        return render_template_string(PAGE, bell=False)

    return app


@pytest.fixture
def app() -> Flask:
    return make_app()


@pytest.fixture
def page(browser: Any, app: Flask, served: Callable[[Flask], str]) -> Iterator[Any]:
    context = browser.new_context(base_url=served(app))
    try:
        yield context.new_page()
    finally:
        context.close()


def test_policy_is_strict(page: Any) -> None:
    response = page.goto("/login")
    policy = response.headers["content-security-policy"]
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert "script-src 'self' 'nonce-" in policy and "style-src 'self' 'nonce-" in policy


def test_bell_under_strict_csp(page: Any, watch: Any) -> None:
    console = watch(page)
    page.goto("/login")
    badge = page.locator("#appinbox-bell [data-appinbox=badge]")
    expect(badge).to_have_text("2")
    page.click("#appinbox-bell [data-appinbox=button]")
    expect(page.locator("#appinbox-bell [data-appinbox=message]")).to_have_count(3)
    expect(badge).to_be_hidden()
    # Styled through the CSSOM, which the policy allows.
    assert page.eval_on_selector("#appinbox-bell [data-appinbox=panel]",
                                 "e => getComputedStyle(e).position") == "absolute"
    assert console.violations() == []
    assert console.errors() == []


def test_corner_bell_without_placeholder(page: Any, watch: Any) -> None:
    console = watch(page)
    page.goto("/login")
    page.goto("/corner")
    root = page.locator("[data-appinbox=root]")
    expect(root.locator("[data-appinbox=badge]")).to_have_text("2")
    assert root.evaluate("e => getComputedStyle(e.parentElement).position") == "fixed"
    assert console.violations() == []
    assert console.errors() == []


def test_init_without_app_inbox_is_tracking_only(page: Any, watch: Any) -> None:
    console = watch(page)
    tokens: list[str] = []
    page.on("request", lambda r: tokens.append(r.url) if "/token" in r.url else None)
    page.goto("/")  # a visitor: the loader and init with TRACKING only
    page.wait_for_function("window.eS && window.eS.sandbox === true")  # the loader replaced the stub
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.querySelectorAll('[data-appinbox]').length") == 0
    assert tokens == []
    assert console.violations() == []
    assert console.errors() == []
