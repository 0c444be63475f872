"""The demo end to end in Chromium: login, token, script, renewal, bell, logout."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_appinbox.sandbox.store import Message

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails with CI=true)
    expect = None

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "demo.png"
TOKEN_PATH = "/appinbox/token"
MESSAGE_API = "/appinbox/sandbox/api/v1/appinbox/messages"
BADGE = "#appinbox-bell [data-appinbox=badge]"
BUTTON = "#appinbox-bell [data-appinbox=button]"
MESSAGES = "#appinbox-bell [data-appinbox=message]"


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch, demo_module: Any) -> Flask:
    for key in list(os.environ):
        if key.startswith(("APPINBOX_", "FLASK_APPINBOX_")):
            monkeypatch.delenv(key)
    app: Flask = demo_module.create_app()
    assert app.config["APPINBOX_SANDBOX"] is True  # no APPINBOX_* settings: the sandbox
    return app


@pytest.fixture
def page(browser: Any, demo: Flask, served: Callable[[Flask], str]) -> Iterator[Any]:
    context = browser.new_context(base_url=served(demo), viewport={"width": 960, "height": 600})
    try:
        yield context.new_page()
    finally:
        context.close()


def log_in(page: Any) -> None:
    page.goto("/login")
    expect(page.locator("main")).to_contain_text("demo@example.com")  # the demo account is shown
    page.fill("input[name=email]", "demo@example.com")
    page.fill("input[name=password]", "demo")
    page.click("form.login button[type=submit]")
    page.wait_for_url("**/")


def token_bodies(page: Any) -> list[Any]:
    """The JSON body of every request to the token endpoint, as it happens."""
    bodies: list[Any] = []
    page.on("request", lambda r: bodies.append(r.post_data_json) if r.url.endswith(TOKEN_PATH) else None)
    return bodies


def message_statuses(page: Any) -> list[int]:
    statuses: list[int] = []
    page.on("response", lambda r: statuses.append(r.status) if MESSAGE_API in r.url else None)
    return statuses


def test_login_count_list_and_renewal(page: Any, watch: Any) -> None:
    console = watch(page)
    bodies = token_bodies(page)
    statuses = message_statuses(page)
    log_in(page)

    badge = page.locator(BADGE)
    expect(badge).to_have_text("2")  # two of the three seeded messages are unread
    expect(page.locator(BUTTON)).to_have_attribute("aria-label", "Notifications, 2 unread")
    assert bodies == [{"renew": False}]

    page.click(BUTTON)
    messages = page.locator(MESSAGES)
    expect(messages).to_have_count(3)
    expect(messages.first).to_contain_text("Send yourself a message")
    expect(page.locator(f"{MESSAGES}[data-status=UNREAD]")).to_have_count(2)
    expect(badge).to_be_hidden()  # marked read: the count is 0

    # A sandbox token is good for one call, and each answer says it is spent: before the list and
    # before the status call the script asked for a new token, and no call was refused.
    assert bodies == [{"renew": False}, {"renew": True}, {"renew": True}]
    assert statuses == [200, 200, 200]

    page.keyboard.press("Escape")
    expect(page.locator("#appinbox-bell [data-appinbox=panel]")).to_be_hidden()
    page.reload()
    expect(page.locator(BUTTON)).to_be_visible()
    expect(badge).to_be_hidden()  # still read after a reload
    assert console.errors() == []


def test_logout_leaves_no_working_token(page: Any) -> None:
    log_in(page)
    expect(page.locator(BADGE)).to_have_text("2")
    fetch_token = """() => fetch('/appinbox/token', {method: 'POST', credentials: 'same-origin',
        headers: {'Content-Type': 'application/json'}, body: '{"renew": true}'})
        .then(r => r.json().then(body => [r.status, body]))"""
    status, body = page.evaluate(fetch_token)
    assert status == 200 and body["token"]
    unused = body["token"]

    page.click("header form button[type=submit]")  # Log out
    page.wait_for_url("**/login")
    expect(page.locator("#appinbox-bell")).to_have_count(0)
    assert page.evaluate("typeof window.eS") == "undefined"  # no App Inbox script for a visitor

    status, body = page.evaluate(fetch_token)
    assert (status, body) == (401, {"error": "unauthenticated"})
    # The token fetched before logout was spent by the sandbox on logout.
    count = page.evaluate(
        "([url, t]) => fetch(url, {headers: {'ES-TOKEN': t}}).then(r => r.status)", [f"{MESSAGE_API}/count", unused])
    assert count == 401


def test_sandbox_page_adds_a_message(page: Any, demo: Flask) -> None:
    log_in(page)
    expect(page.locator(BADGE)).to_have_text("2")

    page.click("nav >> text=Sandbox")
    expect(page.locator("input[name=to]")).to_have_value("demo@example.com")  # filled in for the user
    page.fill("input[name=title]", "Your order has shipped")
    page.fill("textarea[name=text]", "It arrives on Thursday.")
    page.click("main form button[type=submit]")
    expect(page.locator("[role=status]")).to_contain_text("Sent to demo@example.com")
    expect(page.locator("table")).to_contain_text("demo@example.com")

    page.goto("/")
    expect(page.locator(BADGE)).to_have_text("3")

    # The bell asks again when its page is shown again.
    demo.extensions["appinbox_sandbox"].add_message("demo@example.com", "Another one")
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    expect(page.locator(BADGE)).to_have_text("4")
    page.click(BUTTON)
    expect(page.locator(MESSAGES).first).to_contain_text("Another one")
    expect(page.locator(MESSAGES).nth(1)).to_contain_text("It arrives on Thursday.")


def test_message_data_is_text_never_markup(page: Any, demo: Flask, watch: Any) -> None:
    store = demo.extensions["appinbox_sandbox"]
    with store.lock:
        store.inbox("demo@example.com").insert(0, Message(
            10_000, datetime.now(timezone.utc), '<img src="x" onerror="window.__pwned = 1">',
            "</li><script>window.__pwned = 2</script>", "javascript:window.__pwned = 3"))
    console = watch(page)
    log_in(page)
    page.click(BUTTON)
    first = page.locator(MESSAGES).first
    expect(first).to_contain_text('<img src="x" onerror="window.__pwned = 1">')
    expect(first).to_contain_text("<script>")
    assert page.locator("#appinbox-bell img, #appinbox-bell script").count() == 0
    assert first.locator("a").count() == 0  # a javascript: link is dropped
    expect(page.locator(MESSAGES).nth(1).locator("a")).to_have_attribute(
        "href", page.url.rstrip("/") + "/appinbox/sandbox/")
    assert page.evaluate("window.__pwned") is None
    assert console.errors() == []


def test_screenshot(page: Any, tmp_path: Path) -> None:
    """The demo with the bell open, the unread messages still counted: written to
    docs/demo.png with APPINBOX_SCREENSHOT=1, else to a temporary file (CI keeps the tree clean)."""
    target = SCREENSHOT if os.environ.get("APPINBOX_SCREENSHOT") == "1" else tmp_path / "demo.png"
    held: list[Any] = []
    page.route(f"**{MESSAGE_API}/status", lambda route: held.append(route))  # mark read after the picture
    log_in(page)
    expect(page.locator(BADGE)).to_have_text("2")
    page.click(BUTTON)
    expect(page.locator(MESSAGES)).to_have_count(3)
    page.mouse.move(0, 300)
    page.wait_for_timeout(100)
    page.screenshot(path=str(target))
    for route in held:
        route.continue_()
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and target.stat().st_size > 10_000


SITE_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"


@pytest.mark.parametrize("env, sandbox", [
    ({}, True),
    ({"APPINBOX_LANGUAGE": "de"}, True),
    ({"APPINBOX_API_KEY": "demo-key", "APPINBOX_SITE_ID": SITE_ID}, False),
    ({"FLASK_APPINBOX_API_KEY": "demo-key", "FLASK_APPINBOX_SITE_ID": SITE_ID}, False),
    ({"APPINBOX_API_KEY": "demo-key", "APPINBOX_SITE_ID": SITE_ID, "APPINBOX_SANDBOX": "true"}, True),
])
def test_demo_runs_on_the_sandbox_unless_given_esputnik_credentials(
        monkeypatch: pytest.MonkeyPatch, demo_module: Any, env: dict[str, str], sandbox: bool) -> None:
    for key in list(os.environ):
        if key.startswith(("APPINBOX_", "FLASK_APPINBOX_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    app = demo_module.create_app()
    assert app.config["APPINBOX_SANDBOX"] is sandbox
    assert ("appinbox_sandbox" in app.extensions) is sandbox
