"""Flask-WTF's CSRFProtect on the site: the widget still works, a cross-site POST is still refused."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, render_template_string, request
from flask_wtf import CSRFProtect

from flask_appinbox import FlaskAppInbox

from .conftest import add_login

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>CSRF</title></head>
<body>{{ appinbox_bell() }}<form method="post" action="/profile"><button id="save">Save</button></form>
{{ appinbox_script() }}</body></html>"""


def make_app(csrf_first: bool) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test-secret", APPINBOX_SANDBOX=True)
    add_login(app)
    if csrf_first:
        CSRFProtect(app)
    FlaskAppInbox(app)
    if not csrf_first:
        CSRFProtect(app)

    @app.get("/")
    def index() -> str:
        return render_template_string(PAGE)

    @app.post("/profile")
    def profile() -> str:
        return "saved"

    return app


def attacker(target: str) -> Flask:
    """Another origin whose page posts to the target's token endpoint."""
    app = Flask("attacker")

    @app.get("/")
    def form() -> str:
        return (f'<form id="f" method="post" action="{target}/appinbox/token" enctype="text/plain">'
                '<input name=\'{"renew": false, "x": "\' value=\'"}\'></form>'
                "<script>document.getElementById('f').submit();</script>")

    @app.get("/fetch")
    def fetch() -> str:
        return (f"<script>fetch({json.dumps(target + '/appinbox/token')}, {{method: 'POST', mode: 'no-cors',"
                " credentials: 'include', body: '{}'}).then(() => document.title = 'sent',"
                " (e) => document.title = 'failed: ' + e);</script>")

    return app


@pytest.mark.parametrize("csrf_first", [True, False], ids=["csrf-first", "csrf-last"])
def test_widget_works_and_cross_site_is_refused(browser: Any, served: Callable[[Flask], str], watch: Any,
                                                csrf_first: bool) -> None:
    app = make_app(csrf_first)
    answers: list[tuple[int, Any]] = []

    @app.after_request
    def record(response: Any) -> Any:
        if request.path == "/appinbox/token":
            answers.append((response.status_code, response.get_json(silent=True)))
        return response

    base = served(app)
    evil = served(attacker(base))
    context = browser.new_context()
    try:
        page = context.new_page()
        console = watch(page)
        page.goto(base + "/login")
        page.wait_for_selector("#appinbox-bell [data-appinbox=badge]", state="visible", timeout=10_000)
        assert answers and answers[0][0] == 200 and answers[0][1]["token"].startswith("sbx_")
        assert console.errors() == []
        # The site's own form is still protected by CSRFProtect.
        page.click("#save")
        assert "Bad Request" in page.content() or "CSRF" in page.content()
        # A cross-site form POST and a cross-site fetch, with the user logged in here.
        before = len(answers)
        page.goto(evil + "/")
        page.wait_for_load_state()
        assert json.loads(page.inner_text("body")) == {"error": "cross_site_request"}
        page.goto(evil + "/fetch")
        page.wait_for_function("document.title !== ''", timeout=10_000)
        assert page.title() == "sent"
        refused = answers[before:]
        assert [status for status, _ in refused] == [403, 403]
        assert all(body == {"error": "cross_site_request"} for _, body in refused)
    finally:
        context.close()
