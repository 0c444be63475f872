"""A healthy sandbox page logs no console error, renews its token without a refused call, and speaks the page's
language where the sandbox has the words."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, render_template_string

from .conftest import sandbox_app

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails with CI=true)
    expect = None

PAGE = """<!doctype html><html lang="{{ lang }}"><head><meta charset="utf-8"><title>t</title>
<link rel="icon" href="data:,"></head>
<body><nav>Shop {{ appinbox_bell() }}</nav>{{ appinbox_script() }}</body></html>"""
BUTTON = "#appinbox-bell [data-appinbox=button]"
PANEL = "#appinbox-bell [data-appinbox=panel]"


def sandbox_site(language: str) -> Flask:
    app = sandbox_app(APPINBOX_SANDBOX="yes", APPINBOX_LANGUAGE=language)
    app.add_url_rule("/", "home", lambda: render_template_string(PAGE, lang=language))
    return app


@pytest.mark.parametrize("language,labels", [
    ("en", ("Notifications, 2 unread", "Notifications", "Open")),
    ("es", ("Notificaciones, 2 sin leer", "Notificaciones", "Abrir")),
])
def test_no_console_error_renewal_shown_and_labels(browser: Any, served: Callable[[Flask], str], watch: Any,
                                                   language: str, labels: tuple[str, str, str]) -> None:
    context = browser.new_context(base_url=served(sandbox_site(language)))
    try:
        page = context.new_page()
        console = watch(page)
        bodies: list[Any] = []
        statuses: list[int] = []
        page.on("request", lambda r: bodies.append(r.post_data_json) if r.url.endswith("/appinbox/token") else None)
        page.on("response", lambda r: statuses.append(r.status) if "/sandbox/api/" in r.url else None)
        page.goto("/login")
        button = page.locator(BUTTON)
        expect(button).to_have_attribute("aria-label", labels[0])
        page.click(BUTTON)
        expect(page.locator(f"{PANEL} [data-appinbox=message]")).to_have_count(3)
        expect(page.locator(PANEL)).to_have_attribute("aria-label", labels[1])
        expect(page.locator(PANEL).locator("a")).to_have_text(labels[2])
        expect(button).to_have_attribute("aria-label", labels[1])  # all read
        # Count, list, mark read: three calls, a renewal before each after the first, none refused.
        assert bodies == [{"renew": False}, {"renew": True}, {"renew": True}]
        assert statuses == [200, 200, 200]
        assert console.errors() == []
    finally:
        context.close()
