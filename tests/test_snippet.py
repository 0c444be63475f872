"""appinbox_script() and appinbox_bell(): what reaches the page."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import Any

import pytest
from conftest import SITE_ID, USERS, make_app
from flask import Flask, render_template_string
from flask_login import login_user
from markupsafe import Markup

from flask_appinbox import appinbox_bell, appinbox_script

HOSTILE = ['</script><script>alert(1)</script>', '"\'><img src=x onerror=alert(1)>', "<!--", "]]>", "\u2028"]


def render(app: Flask, source: str = "{{ appinbox_script() }}", user: Any = USERS["1"], **ctx: Any) -> str:
    with app.test_request_context("/"):
        if user is not None:
            login_user(user)
        return render_template_string(source, **ctx)


def test_outside_a_request_the_snippet_follows_enabled_and_asks_no_tenant() -> None:
    # No request, no tenant: render_script() reads APPINBOX_ENABLED and calls neither per-request callable.
    from flask import request

    from flask_appinbox.snippet import render_script

    app = make_app({"APPINBOX_API_KEY": lambda: request.headers["X-Key"],
                    "APPINBOX_SITE_ID": lambda: request.headers["X-Site"]})
    with app.app_context():
        assert render_script(logged_in=True) == ""  # no request: no tenant's site ID, so nothing
    with make_app().app_context():
        html = render_script(logged_in=True)
    assert html.startswith("<script>") and '"/appinbox/token"' in html
    assert f"/scripts/{SITE_ID}.js" in html  # a fixed site ID is known outside a request
    with make_app({"APPINBOX_ENABLED": False}).app_context():
        assert render_script(logged_in=True) == ""


def scripts(html: str) -> list[str]:
    return re.findall(r"<script[^>]*>.*?</script>", html, flags=re.S)


def assert_no_breakout(html: str, hostile: str) -> None:
    """The hostile text never appears raw; the page has exactly the script tags we wrote."""
    if hostile not in ("]]>", "\u2028"):  # harmless inside a JSON string and an attribute
        assert hostile not in html
    assert html.count("<script") == html.count("</script>")
    for tag in scripts(html):
        body = tag[tag.index(">") + 1: -len("</script>")]
        assert "</script" not in body.lower() and "<!--" not in body


@pytest.fixture
def app() -> Flask:
    return make_app()


def test_logged_in(app: Flask) -> None:
    html = render(app)
    loader, init = scripts(html)
    assert html == loader + init
    assert "!function (t, e, c, n, o)" in loader
    assert "f.q = []; f.c = function () {f.q.push(arguments); }; t['eS'] = t['eS'] || f;" in loader
    assert f'"https://statics.esputnik.com/scripts/{SITE_ID}.js"' in loader
    assert init.startswith("<script>eS('init', {\"APP_INBOX\": true}, {getAuthTokenCallback: ")
    assert init.endswith(', language: "en"});</script>')
    assert '"/appinbox/token"' in init
    assert 'credentials: "same-origin"' in init


def test_returns_markup(app: Flask) -> None:
    with app.test_request_context("/"):
        login_user(USERS["1"])
        assert isinstance(appinbox_script(), Markup)
        assert isinstance(appinbox_bell(), Markup)


@pytest.mark.parametrize("config,expected", [
    ({"APPINBOX_RECOMS": True}, '{"APP_INBOX": true, "RECOMS": true}'),
    ({"APPINBOX_TRACKING": False}, '{"APP_INBOX": true, "TRACKING": false}'),
    ({"APPINBOX_RECOMS": True, "APPINBOX_TRACKING": False}, '{"APP_INBOX": true, "RECOMS": true, "TRACKING": false}'),
])
def test_flags_merged(config: dict[str, Any], expected: str) -> None:
    assert f"eS('init', {expected}, {{getAuthTokenCallback" in render(make_app(config))


def test_anonymous_without_flags_renders_nothing(app: Flask) -> None:
    assert render(app, user=None) == ""


@pytest.mark.parametrize("config,expected", [
    ({"APPINBOX_RECOMS": True}, '{"RECOMS": true}'),
    ({"APPINBOX_TRACKING": True, "APPINBOX_RECOMS": False}, '{"RECOMS": false, "TRACKING": true}'),
])
def test_anonymous_with_flags_tracks_only(config: dict[str, Any], expected: str) -> None:
    html = render(make_app(config), user=None)
    loader, init = scripts(html)
    assert "t['eS'] = t['eS'] || f" in loader
    assert init == f"<script>eS('init', {expected});</script>"
    assert "APP_INBOX" not in html and "getAuthTokenCallback" not in html and "/appinbox/token" not in html


def test_overrides(app: Flask) -> None:
    html = render(app, "{{ appinbox_script(recoms=True, tracking=False, language='de') }}")
    assert '{"APP_INBOX": true, "RECOMS": true, "TRACKING": false}' in html
    assert 'language: "de"' in html
    app2 = make_app({"APPINBOX_RECOMS": True})
    assert "RECOMS" not in render(app2, "{{ appinbox_script(recoms=None) }}")
    assert render(app2, "{{ appinbox_script(recoms=None) }}", user=None) == ""


def test_disabled_renders_nothing() -> None:
    app = make_app({"APPINBOX_ENABLED": False, "APPINBOX_RECOMS": True})
    assert render(app) == ""
    assert render(app, user=None) == ""
    assert render(app, "{{ appinbox_bell() }}") == ""


def test_second_call_in_a_request_renders_nothing(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    html = render(app, "{{ appinbox_script() }}@SEP@{{ appinbox_script() }}")
    first, second = html.split("@SEP@")
    assert "eS('init'" in first and second == ""
    assert "twice" in caplog.text
    assert render(app).count("eS('init'") == 1  # a new request renders again


@pytest.mark.parametrize("language,code", [("pt_BR", "pt"), ("pt-BR", "pt"), ("UK", "uk"), ("zh-Hant", "zh")])
def test_language_locales_reduce_to_the_code(language: str, code: str) -> None:
    assert f'language: "{code}"' in render(make_app({"APPINBOX_LANGUAGE": language}))


def test_language_callable_per_request() -> None:
    chosen = iter(["fr", "es_ES"])
    app = make_app({"APPINBOX_LANGUAGE": lambda: next(chosen)})
    assert 'language: "fr"' in render(app)
    assert 'language: "es"' in render(app)


@pytest.mark.parametrize("hostile", HOSTILE + ["english", "", "../", "en\r\nX: y", "fil", "ckb", "yue"])
def test_a_per_request_language_that_is_not_one_falls_back_to_en(hostile: Any,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    app, other = make_app({"APPINBOX_LANGUAGE": lambda: hostile}), make_app()
    for _ in range(2):
        assert 'language: "en"' in render(app)
        assert 'language: "en"' in render(other, "{{ appinbox_script(language=lang) }}", lang=hostile or 5)
    warnings = [r for r in caplog.records if "falls back to" in r.getMessage()]
    assert len(warnings) == 2  # once per value and app, not on every page
    assert all(r.levelname == "WARNING" for r in warnings)


def test_the_fallback_warnings_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    values = iter(range(10_000))
    app = make_app({"APPINBOX_LANGUAGE": lambda: f"x{next(values)}"})
    for _ in range(1200):
        render(app)
    assert 0 < len([r for r in caplog.records if "falls back to" in r.getMessage()]) <= 1000


def test_nonce_on_every_script(app: Flask) -> None:
    html = render(app, "{{ appinbox_script(nonce='n0nce') }}")
    tags = scripts(html)
    assert len(tags) == 2
    assert all(tag.startswith('<script nonce="n0nce">') for tag in tags)
    assert "'script', \"https://statics.esputnik.com/scripts/" in html
    assert '.js", "n0nce");' in html  # the loader gives it to the script it inserts
    anon = make_app({"APPINBOX_TRACKING": True})
    tags = scripts(render(anon, "{{ appinbox_script(nonce=n) }}", user=None, n=lambda: "abc"))
    assert len(tags) == 2 and all(t.startswith('<script nonce="abc">') for t in tags)


def test_nonce_from_talisman(app: Flask) -> None:
    from flask_talisman import Talisman

    Talisman(app, force_https=False, content_security_policy={"script-src": "'self'"},
             content_security_policy_nonce_in=["script-src"])

    @app.route("/page")
    def page() -> str:
        login_user(USERS["1"])
        return render_template_string("{{ appinbox_script() }}")

    response = app.test_client().get("/page")
    nonce = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"]).group(1)  # type: ignore[union-attr]
    tags = scripts(response.get_data(as_text=True))
    assert len(tags) == 2 and all(t.startswith(f'<script nonce="{nonce}">') for t in tags)


def test_no_nonce_attribute_without_one(app: Flask) -> None:
    assert "nonce=" not in render(app)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_nonce(app: Flask, hostile: str) -> None:
    html = render(app, "{{ appinbox_script(nonce=n) }}", n=hostile)
    assert_no_breakout(html, hostile)
    assert len(scripts(html)) == 2


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_script_url(hostile: str) -> None:
    app = make_app({"APPINBOX_SCRIPT_URL": "https://cdn.example/x.js?q=" + hostile})
    html = render(app)
    assert_no_breakout(html, hostile)
    assert len(scripts(html)) == 2


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_script_root(app: Flask, hostile: str) -> None:
    script_name = ("/shop" + hostile).encode().decode("latin1")  # WSGI strings are latin-1
    with app.test_request_context("/", environ_overrides={"SCRIPT_NAME": script_name}):
        login_user(USERS["1"])
        html = str(appinbox_script())
    assert_no_breakout(html, hostile)
    assert len(scripts(html)) == 2


def test_script_root_prefixes_the_token_url(app: Flask) -> None:
    with app.test_request_context("/", environ_overrides={"SCRIPT_NAME": "/shop"}):
        login_user(USERS["1"])
        assert '"/shop/appinbox/token"' in appinbox_script()


def test_no_csrf_token_in_the_page_under_flask_wtf() -> None:
    from flask_wtf.csrf import CSRFProtect

    app = make_app()
    CSRFProtect(app)
    html = render(app)
    assert "CSRF" not in html.upper() and html == render(make_app())


def test_includes_render_like_the_globals(app: Flask) -> None:
    assert render(app, '{% include "appinbox/script.html" %}') == render(app)
    assert render(app, '{% include "appinbox/bell.html" %}') == '<div id="appinbox-bell"></div>'


def test_works_in_a_macro_imported_without_context(app: Flask) -> None:
    from jinja2 import DictLoader

    app.jinja_env.loader = DictLoader({"m.html": "{% macro inbox() %}{{ appinbox_bell() }}{% endmacro %}"})
    assert render(app, '{% import "m.html" as m %}{{ m.inbox() }}') == '<div id="appinbox-bell"></div>'


def test_bell(app: Flask) -> None:
    assert render(app, "{{ appinbox_bell() }}") == '<div id="appinbox-bell"></div>'
    assert render(app, "{{ appinbox_bell(class_='bell big', data_role='inbox', hidden=True, title=None) }}") == \
        '<div id="appinbox-bell" class="bell big" data-role="inbox" hidden></div>'
    for hostile in HOSTILE:
        html = render(app, "{{ appinbox_bell(title=t) }}", t=hostile)
        assert "<script>" not in html and "<img" not in html and '"\'>' not in html
    with pytest.raises(ValueError):
        render(app, "{{ appinbox_bell(**{'on click': 'x'}) }}")


def test_without_the_extension_the_error_is_clear() -> None:
    app = Flask(__name__)
    with app.test_request_context():
        with pytest.raises(RuntimeError, match="not initialised"):
            appinbox_script()


NODE_HARNESS = r"""
const html = require("fs").readFileSync(0, "utf8");
const scripts = [...html.matchAll(/<script[^>]*>([\s\S]*?)<\/script>/g)].map(m => m[1]);
const inserted = [];
global.window = global;
global.document = {
  createElement: () => ({}),
  scripts: [{parentNode: {insertBefore: (s) => inserted.push(s)}}],
};
const answers = JSON.parse(process.env.ANSWERS);
const sent = [];
global.fetch = (url, opts) => {
  sent.push({url, opts});
  const [status, body] = answers.shift();
  return Promise.resolve({status, ok: status >= 200 && status < 300, json: () => Promise.resolve(body)});
};
for (const s of scripts) { eval(s); }
const entry = window.eS.q[0];
const args = entry[0];
const cb = args[2].getAuthTokenCallback;
const out = {inserted: inserted.map(s => ({src: s.src, async: s.async, nonce: s.nonce})),
             queued: window.eS.q.length, innerLength: entry.length, init: args[0], flags: args[1],
             language: args[2].language, results: []};
(async () => {
  for (let i = 0; i < 4; i++) {
    try { out.results.push({ok: await cb()}); }
    catch (e) { out.results.push({error: e instanceof Error, message: e.message}); }
  }
  out.sent = sent.map(s => ({url: s.url, method: s.opts.method, credentials: s.opts.credentials,
                             body: s.opts.body, headers: s.opts.headers}));
  console.log(JSON.stringify(out));
})();
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_rendered_javascript_runs(app: Flask) -> None:
    """Run the snippet in Node with a stub DOM and fetch: the queue, the nonce, the callback."""
    html = render(app, "{{ appinbox_script(nonce='nn') }}")
    answers = [[200, {"token": "t1"}], [404, {"token": ""}], [502, {"error": "upstream_error"}],
               [200, {"nope": 1}]]
    env = {**os.environ, "ANSWERS": json.dumps(answers)}
    done = subprocess.run(["node", "-e", NODE_HARNESS], input=html, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["inserted"] == [{"src": f"https://statics.esputnik.com/scripts/{SITE_ID}.js", "async": 1,
                                "nonce": "nn"}]
    assert out["queued"] == 1 and out["innerLength"] == 1
    assert out["init"] == "init" and out["flags"] == {"APP_INBOX": True} and out["language"] == "en"
    assert out["results"][0] == {"ok": "t1"}
    assert out["results"][1] == {"ok": ""}
    assert out["results"][2]["error"] is True and "502" in out["results"][2]["message"]
    assert out["results"][3]["error"] is True
    bodies = [json.loads(s["body"]) for s in out["sent"]]
    assert bodies == [{"renew": False}, {"renew": True}, {"renew": True}, {"renew": True}]
    assert all(s["url"] == "/appinbox/token" and s["method"] == "POST" and s["credentials"] == "same-origin"
               for s in out["sent"])
    assert out["sent"][0]["headers"]["Content-Type"] == "application/json"


def test_the_once_per_page_flag_is_per_request_not_per_app_context(app: Flask) -> None:
    template = app.jinja_env.from_string("{{ appinbox_script() }}")
    with app.app_context():
        for _ in range(2):  # two requests inside one pushed app context: two pages
            with app.test_request_context():
                login_user(USERS["1"])
                assert "eS('init'" in template.render()


def _boom() -> str:
    raise RuntimeError("sk-live-in-the-message")


@pytest.mark.parametrize("config,expected", [
    ({"APPINBOX_SITE_ID": _boom, "APPINBOX_API_KEY": lambda: "sk-live-x"}, ""),
    ({"APPINBOX_API_KEY": _boom}, ""),
    ({"APPINBOX_API_KEY": lambda: " malformed key ", "APPINBOX_SITE_ID": lambda: SITE_ID}, ""),
    ({"APPINBOX_SITE_ID": lambda: "sk-live-not-a-site-id", "APPINBOX_API_KEY": lambda: "sk-live-x"}, ""),
    ({"APPINBOX_LANGUAGE": _boom}, 'language: "en"'),
])
def test_a_failing_per_request_callable_never_breaks_the_page(config: dict[str, Any], expected: str,
                                                                caplog: Any) -> None:
    app = make_app(config)
    app.add_url_rule("/page", "page", lambda: render_template_string(
        "<main>{{ appinbox_bell() }}{{ appinbox_script() }}</main>"))
    client = app.test_client(user=USERS["1"])
    for _ in range(2):
        response = client.get("/page")
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert (expected in html) if expected else html == "<main></main>"
    failed = [r for r in caplog.records if "per-request" in r.getMessage()]
    assert len(failed) == 1 and "sk-live" not in caplog.text
