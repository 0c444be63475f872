"""Flask-AppInbox next to the extensions a Flask site usually has: Flask-WTF, Flask-Limiter, Flask-Login."""
from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
import responses
from conftest import TOKEN_URL, USERS, make_app
from flask import Flask, jsonify, render_template_string
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user
from flask_wtf import CSRFProtect

from flask_appinbox import Contact, FlaskAppInbox
from flask_appinbox.state import LOGGED_OUT

# The rendered callback ends with its two arguments: the token URL and the headers object.
CALLBACK_ARGS = re.compile(r"headers: (\{[^{}]*\}).*\}\)\((\"[^\"]*\")\)")


def assert_json_no_store(response: Any) -> None:
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"


def with_page(app: Flask) -> Flask:
    @app.get("/page")
    def page() -> str:
        return render_template_string("<html>{{ appinbox_script() }}{{ appinbox_bell() }}</html>")

    return app


def callback_request(client: Any) -> tuple[str, dict[str, str]]:
    """The URL and headers the rendered getAuthTokenCallback sends, from a page this client loads."""
    html = client.get("/page").get_data(as_text=True)
    match = CALLBACK_ARGS.search(html)
    assert match, html
    return json.loads(match.group(2)), json.loads(match.group(1))


# -- Flask-WTF ----------------------------------------------------------------------------

class CSRFFirst(FlaskAppInbox):
    """Flask-WTF's CSRFProtect initialised before Flask-AppInbox."""

    def init_app(self, app: Flask) -> None:
        CSRFProtect(app)
        super().init_app(app)


def csrf_app(order: str, config: dict[str, Any] | None = None) -> Flask:
    if order == "csrf first":
        return with_page(make_app(config, extension=CSRFFirst()))
    app = make_app(config)
    CSRFProtect(app)
    return with_page(app)


ORDERS = ["csrf first", "csrf last"]


@pytest.fixture
def upstream() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json={"token": "tok-1"})
        yield mock


# The endpoint refuses cross-site requests itself (Origin, Sec-Fetch-Site), so Flask-AppInbox
# exempts its blueprints from CSRFProtect, in either order: no CSRF token is rendered into
# the page, and a page open for hours still renews its token.

@pytest.mark.parametrize("order", ORDERS)
def test_the_callback_works_under_csrf_protect(order: str, upstream: responses.RequestsMock) -> None:
    app = csrf_app(order)
    client = app.test_client(user=USERS["1"])
    url, headers = callback_request(client)
    assert url == "/appinbox/token"
    assert headers == {"Content-Type": "application/json", "Accept": "application/json"}
    for renew in (False, True):  # the first call and a renewal, as the browser sends them
        response = client.post(url, headers={**headers, "Origin": "http://localhost",
                                             "Sec-Fetch-Site": "same-origin"}, data=json.dumps({"renew": renew}))
        assert (response.status_code, response.json) == (200, {"token": "tok-1"})
        assert_json_no_store(response)
    assert len(upstream.calls) == 2


@pytest.mark.parametrize("order", ORDERS)
def test_the_sites_own_forms_stay_protected(order: str, upstream: responses.RequestsMock) -> None:
    app = csrf_app(order)

    @app.post("/profile")
    def profile() -> str:
        return "saved"

    client = app.test_client(user=USERS["1"])
    client.post("/appinbox/token")  # exempting the endpoint exempts nothing else
    assert client.post("/profile", data={"name": "x"}).status_code == 400


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("cross", [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                                   {"Origin": "null"}, {"Sec-Fetch-Site": "same-site"}])
@pytest.mark.parametrize("csrf", [None, "garbage"])
def test_cross_site_is_still_refused(order: str, cross: dict[str, str], csrf: str | None,
                                     upstream: responses.RequestsMock) -> None:
    app = csrf_app(order)
    client = app.test_client(user=USERS["1"])
    headers = {**cross, **({"X-CSRFToken": csrf} if csrf else {})}
    response = client.post("/appinbox/token", data='{"renew": false}', headers=headers)
    assert (response.status_code, response.json) == (403, {"error": "cross_site_request"})
    assert_json_no_store(response)
    assert not upstream.calls


@pytest.mark.parametrize("order", ORDERS)
def test_other_answers_stay_json_under_csrf_protect(order: str, upstream: responses.RequestsMock) -> None:
    app = csrf_app(order)
    response = app.test_client().post("/appinbox/token", json={"renew": False})
    assert (response.status_code, response.json) == (401, {"error": "unauthenticated"})
    assert_json_no_store(response)
    client = app.test_client(user=USERS["1"])
    assert client.get("/appinbox/token").status_code == 405  # Flask's own answer
    response = client.post("/appinbox/token", data="{")
    assert (response.status_code, response.json) == (400, {"error": "bad_request"})
    big = b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n' + b"y" * 600_000 + b"\r\n--x--\r\n"
    response = client.post("/appinbox/token", data=big, content_type="multipart/form-data; boundary=x")
    assert (response.status_code, response.json) == (400, {"error": "bad_request"})
    assert_json_no_store(response)
    assert not upstream.calls


@pytest.mark.parametrize("order", ORDERS)
def test_the_sandbox_works_under_csrf_protect(order: str) -> None:
    app = csrf_app(order, {"APPINBOX_SANDBOX": True})
    client = app.test_client(user=USERS["1"])
    response = client.post("/appinbox/token", json={"renew": False})  # the client's in-process POSTs
    assert response.status_code == 200 and response.json["token"].startswith("sbx_")


def test_a_page_open_longer_than_the_csrf_time_limit(monkeypatch: pytest.MonkeyPatch, upstream: Any) -> None:
    from itsdangerous.timed import TimestampSigner

    app = csrf_app("csrf last")
    client = app.test_client(user=USERS["1"])
    url, headers = callback_request(client)
    assert client.post(url, headers=headers, data='{"renew": false}').status_code == 200
    later = int(time.time()) + 3601  # past Flask-WTF's default WTF_CSRF_TIME_LIMIT
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: later)
    response = client.post(url, headers=headers, data='{"renew": true}')
    assert (response.status_code, response.json) == (200, {"token": "tok-1"})


# -- Flask-Limiter ------------------------------------------------------------------------

def per_user() -> str:
    """The logged-in user's id, else the client address."""
    return current_user.get_id() or get_remote_address()


def limited_app(**limiter_options: Any) -> tuple[Flask, Limiter]:
    app = make_app()
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", **limiter_options)
    # Flask-AppInbox's blueprint is "appinbox"; a blueprint limit covers POST <prefix>/token.
    limiter.limit("10/minute", key_func=per_user)(app.blueprints["appinbox"])

    @app.get("/other")
    def other() -> str:
        return "ok"

    @app.errorhandler(429)  # the site's JSON answer to a limit, as docs/integrations.rst shows
    def too_many_requests(exc: Exception) -> Any:
        return jsonify(error="too_many_requests"), 429, {"Cache-Control": "no-store"}

    return app, limiter


def alice_calls(upstream: responses.RequestsMock) -> int:
    return sum(json.loads(c.request.body) == {"email": "alice@example.com"} for c in upstream.calls)


def test_a_per_user_limit_on_the_token_endpoint(upstream: responses.RequestsMock) -> None:
    app, _ = limited_app()
    alice = app.test_client(user=USERS["1"])
    for _ in range(10):
        assert alice.post("/appinbox/token").json == {"token": "tok-1"}
    response = alice.post("/appinbox/token")
    assert (response.status_code, response.json) == (429, {"error": "too_many_requests"})
    assert_json_no_store(response)
    assert alice_calls(upstream) == 10
    assert alice.post("/appinbox/token", json={"renew": True}).status_code == 429  # renewals count too
    assert alice_calls(upstream) == 10
    # Another user (another key), and the site's other routes, are not limited.
    other_user = app.test_client(user=USERS["2"])
    assert other_user.post("/appinbox/token").json == {"token": "tok-1"}
    assert all(alice.get("/other").status_code == 200 for _ in range(12))
    assert len(upstream.calls) == 11


def test_the_limit_answer_carries_retry_after_when_headers_are_on(upstream: responses.RequestsMock) -> None:
    app, _ = limited_app(headers_enabled=True)
    alice = app.test_client(user=USERS["1"])
    for _ in range(10):
        alice.post("/appinbox/token")
    response = alice.post("/appinbox/token")
    assert (response.status_code, response.json) == (429, {"error": "too_many_requests"})
    assert_json_no_store(response)
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert response.headers["X-RateLimit-Remaining"] == "0"


def test_anonymous_callers_are_limited_by_address(upstream: responses.RequestsMock) -> None:
    app, _ = limited_app()
    anon = app.test_client()
    answers = [anon.post("/appinbox/token").status_code for _ in range(11)]
    assert answers == [401] * 10 + [429]
    assert not upstream.calls


# -- Flask-Login: logout ------------------------------------------------------------------
# (test_endpoint.py checks that logout drops the cached token and the endpoint then answers 401.)

@pytest.mark.parametrize("config", [{"APPINBOX_TOKEN_CACHE_TTL": 60}])
def test_logout_drops_only_that_users_token(config: dict[str, Any], upstream: responses.RequestsMock) -> None:
    app = make_app(config)

    @app.post("/logout")
    def logout() -> str:
        logout_user()
        return "bye"

    @app.post("/login/<user_id>")
    def login(user_id: str) -> str:
        login_user(USERS[user_id])
        return "hi"

    alice, other = app.test_client(), app.test_client()
    alice.post("/login/1")
    other.post("/login/2")
    assert alice.post("/appinbox/token").json == other.post("/appinbox/token").json == {"token": "tok-1"}
    assert len(upstream.calls) == 2
    alice.post("/logout")
    assert alice.post("/appinbox/token").status_code == 401
    assert other.post("/appinbox/token").json == {"token": "tok-1"}  # still from the cache
    assert len(upstream.calls) == 2
    alice.post("/login/1")
    assert alice.post("/appinbox/token").json == {"token": "tok-1"}
    assert len(upstream.calls) == 3  # alice's token was dropped: asked again


def test_a_logout_during_a_first_call_leaves_no_token_cached(upstream: responses.RequestsMock) -> None:
    app = make_app({"APPINBOX_TOKEN_CACHE_TTL": 60})
    state = app.extensions["appinbox"]

    def esputnik(request: Any) -> tuple[int, dict[str, str], str]:
        state.forget(USERS["1"])  # the user logs out in another tab while eSputnik answers
        return 200, {}, json.dumps({"token": "tok-late"})

    upstream.remove(responses.POST, TOKEN_URL)
    upstream.add_callback(responses.POST, TOKEN_URL, callback=esputnik)
    assert app.test_client(user=USERS["1"]).post("/appinbox/token").json == {"token": "tok-late"}
    with app.test_request_context("/"):
        key = state.cache_key(Contact(email="alice@example.com"), state.api_key())
    assert state.cache.get(key) == LOGGED_OUT  # not cached again after the logout


@pytest.mark.parametrize("config", [{"APPINBOX_TOKEN_CACHE_TTL": 60}])
def test_logout_survives_a_failing_contact_loader(config: dict[str, Any], upstream: responses.RequestsMock,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    ext = FlaskAppInbox()
    broken = [False]

    @ext.contact_loader
    def load(user: Any) -> Any:
        if broken[0]:
            raise RuntimeError("the user table is down")
        return {"email": user.email}

    app = make_app(config, extension=ext)

    @app.post("/logout")
    def logout() -> str:
        broken[0] = True
        logout_user()
        return "bye"

    client = app.test_client(user=USERS["1"])
    assert client.post("/appinbox/token").json == {"token": "tok-1"}
    state = app.extensions["appinbox"]
    with app.test_request_context("/"):
        key = state.cache_key(Contact(email="alice@example.com"), state.api_key())
    assert state.cache.get(key) == "tok-1"
    assert client.post("/logout").status_code == 200  # the failing loader does not break the logout
    assert client.post("/appinbox/token").status_code == 401
    # It could not tell whose token to drop: the token stays (until its TTL), and the log says so.
    assert state.cache.get(key) == "tok-1"
    assert "cached token stays until it expires (at most 60 s)" in caplog.text


# -- misconfigurations explain themselves, once ---------------------------------------------

def test_no_login_manager_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    from flask import Flask, render_template_string

    app = Flask(__name__)
    app.config.update(APPINBOX_SANDBOX=True, SECRET_KEY="s")
    FlaskAppInbox(app)  # and no LoginManager
    client = app.test_client()
    for _ in range(3):
        with app.test_request_context("/"):
            assert render_template_string("{{ appinbox_script() }}") == ""
        assert client.post("/appinbox/token").status_code == 401
    said = [r.getMessage() for r in caplog.records if "LoginManager" in r.getMessage()]
    assert len(said) == 1 and "no LoginManager" in said[0]


def test_a_user_with_no_contact_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app()
    client = app.test_client(user=USERS["3"])  # no email, phone or external id
    for _ in range(3):
        assert client.post("/appinbox/token").status_code == 404
    said = [r.getMessage() for r in caplog.records if "has no contact" in r.getMessage()]
    assert len(said) == 1 and "external_customer_id" in said[0] and "contact_loader" in said[0]
