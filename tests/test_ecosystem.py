"""The CLI, signals, Flask-Babel, tenants, shared caches and the testing helper."""
from __future__ import annotations

import types
from typing import Any

import pytest
import requests
import responses
from conftest import API_KEY, SITE_ID, USERS, make_app
from flask import Flask, render_template_string
from flask_login import login_user

import flask_appinbox
from flask_appinbox import ConfigurationError, EsputnikClient, UpstreamError, signals
from flask_appinbox.client import DEFAULT_API_URL, TOKEN_PATH
from flask_appinbox.testing import FAULTS, FakeEsputnik


def test_the_package_exports_its_public_names() -> None:
    # `from flask_appinbox import *` gives the classes and functions it imports, not its modules.
    public = {name for name, value in vars(flask_appinbox).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert sorted(flask_appinbox.__all__) == sorted(public | {"__version__"})
    assert all(getattr(flask_appinbox, name) is not None for name in flask_appinbox.__all__)


# -- the testing helper ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_fake_esputnik_faults(kind: str) -> None:
    app = make_app({"APPINBOX_RETRIES": 0})
    with FakeEsputnik() as esputnik:
        esputnik.fault(kind)
        response = app.test_client(user=USERS["1"]).post("/appinbox/token")
    assert (response.status_code, response.json["error"]) == FAULTS[kind]
    assert esputnik.token_requests == [{"email": "alice@example.com"}]


def test_fake_esputnik_token_unknown_and_created() -> None:
    app = make_app({"APPINBOX_CREATE_CONTACTS": True})
    client = app.test_client(user=USERS["1"])
    with FakeEsputnik() as esputnik:
        assert client.post("/appinbox/token").json == {"token": "test-token"}
        esputnik.token("tok-2")
        assert client.post("/appinbox/token").json == {"token": "tok-2"}
        esputnik.unknown_contact()
        assert client.post("/appinbox/token").json == {"token": "created-token"}
        assert esputnik.contact_requests == [{"channels": [{"type": "email", "value": "alice@example.com"}]}]
        esputnik.fault("rate_limited", retry_after=40)
        response = client.post("/appinbox/token")
        assert response.headers["Retry-After"] == "40"
    with pytest.raises(ValueError):
        esputnik.fault("meteor")


def test_fake_esputnik_faults_are_what_they_say() -> None:
    # "connection" and "garbage" both answer 502 upstream_error at the endpoint: the client tells them apart.
    client = EsputnikClient(API_KEY, retries=0)
    with FakeEsputnik() as esputnik:
        esputnik.fault("connection")
        with pytest.raises(UpstreamError) as refused:
            client.contact_token({"email": "alice@example.com"})
        esputnik.fault("garbage")
        with pytest.raises(UpstreamError) as garbage:
            client.contact_token({"email": "alice@example.com"})
        esputnik.fault("rate_limited")
        plain_429 = requests.post(DEFAULT_API_URL + TOKEN_PATH, json={"email": "alice@example.com"}, timeout=1)
    assert (str(refused.value), refused.value.status_code) == ("cannot reach eSputnik: ConnectionError", None)
    assert (str(garbage.value), garbage.value.status_code) == ("eSputnik's answer is not JSON", 200)
    assert plain_429.status_code == 429 and "Retry-After" not in plain_429.headers  # none unless one is given
    client.close()


def test_fake_esputnik_shares_a_mock(upstream: responses.RequestsMock) -> None:
    app = make_app({"APPINBOX_API_URL": "https://eu.example/api"})
    esputnik = FakeEsputnik("https://eu.example/api", mock=upstream)
    esputnik.token("eu")
    assert app.test_client(user=USERS["1"]).post("/appinbox/token").json == {"token": "eu"}


# -- signals --------------------------------------------------------------------------------

def test_signals_with_real_receivers() -> None:
    app = make_app({"APPINBOX_CREATE_CONTACTS": True, "APPINBOX_TOKEN_CACHE_TTL": 60})
    other = make_app()
    seen: list[tuple[str, Any, dict[str, Any]]] = []

    def receiver(name: str) -> Any:
        def receive(sender: Any, **kwargs: Any) -> None:
            seen.append((name, sender, kwargs))
        return receive

    issued, failed, created = receiver("issued"), receiver("failed"), receiver("created")
    signals.token_issued.connect(issued, app)
    signals.token_failed.connect(failed, app)
    signals.contact_created.connect(created, app)
    try:
        client = app.test_client(user=USERS["1"])
        with FakeEsputnik() as esputnik:
            esputnik.unknown_contact()
            client.post("/appinbox/token")
            client.post("/appinbox/token")
            esputnik.fault("timeout")
            client.post("/appinbox/token", json={"renew": True})
            app.test_client(user=USERS["3"]).post("/appinbox/token")
            other.test_client(user=USERS["1"]).post("/appinbox/token")  # another app: not seen
    finally:
        signals.token_issued.disconnect(issued, app)
        signals.token_failed.disconnect(failed, app)
        signals.contact_created.disconnect(created, app)
    names = [name for name, _, _ in seen]
    assert names == ["created", "issued", "issued", "failed", "failed"]
    assert all(sender is app for _, sender, _ in seen)
    contact = seen[0][2]["contact"]
    assert contact.email == "alice@example.com"
    assert seen[1][2] == {"user": USERS["1"], "contact": contact, "renew": False, "cached": False}
    assert seen[2][2]["cached"] is True
    assert seen[3][2]["error"] == "upstream_timeout" and seen[3][2]["contact"] == contact
    assert seen[3][2]["exception"].error == "upstream_timeout"
    assert seen[4][2]["error"] == "contact_not_found" and seen[4][2]["contact"] is None
    for _, _, kwargs in seen:
        assert API_KEY not in repr(kwargs) and "created-token" not in repr(kwargs)


# -- the CLI ----------------------------------------------------------------------------------

def test_cli_check_found() -> None:
    app = make_app()
    with FakeEsputnik() as esputnik:
        esputnik.token("secret-token-value")
        result = app.test_cli_runner().invoke(args=["appinbox", "check", "--email", "alice@example.com"])
    assert result.exit_code == 0, result.output
    assert "configuration: OK (API: https://esputnik.com/api;" in result.output and "contact found" in result.output
    assert "a***@example.com" in result.output
    assert "secret-token-value" not in result.output and API_KEY not in result.output


@pytest.mark.parametrize("kind,code,text", [
    (None, 3, "contact not found"),
    ("rejected", 1, "upstream_rejected"),
    ("timeout", 1, "upstream_timeout"),
])
def test_cli_check_failures(kind: str | None, code: int, text: str) -> None:
    app = make_app({"APPINBOX_RETRIES": 0})
    with FakeEsputnik() as esputnik:
        if kind is None:
            esputnik.unknown_contact()
        else:
            esputnik.fault(kind)
        result = app.test_cli_runner().invoke(args=["appinbox", "check", "--phone", "+380 50 123 45 67"])
    assert result.exit_code == code, result.output
    assert text in result.output and API_KEY not in result.output
    assert esputnik.token_requests == [{"phone": "380501234567"}]


def test_cli_check_needs_a_contact() -> None:
    runner = make_app().test_cli_runner()
    assert runner.invoke(args=["appinbox", "check"]).exit_code == 2
    bad = runner.invoke(args=["appinbox", "check", "--email", "nope"])
    assert bad.exit_code == 2 and "email" in bad.output


def test_cli_check_against_the_sandbox() -> None:
    app = Flask(__name__)
    app.config["APPINBOX_SANDBOX"] = True
    from flask_appinbox import FlaskAppInbox

    FlaskAppInbox(app)
    result = app.test_cli_runner().invoke(args=["appinbox", "check", "--external-id", "42"])
    assert result.exit_code == 0, result.output
    assert "the sandbox issued a token" in result.output
    assert "eSputnik issued" not in result.output and "not eSputnik" in result.output


@pytest.mark.parametrize("software,warned", [("gunicorn/23.0.0", True), (None, False)])
def test_a_per_process_token_cache_in_a_multi_process_server_is_warned(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, software: str | None,
        warned: bool) -> None:
    if software is None:
        monkeypatch.delenv("SERVER_SOFTWARE", raising=False)
    else:
        monkeypatch.setenv("SERVER_SOFTWARE", software)
    make_app({"APPINBOX_TOKEN_CACHE_TTL": 60})
    assert ("APPINBOX_TOKEN_CACHE" in caplog.text and "per process" in caplog.text) == warned


def test_no_token_cache_is_not_warned(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SERVER_SOFTWARE", "gunicorn/23.0.0")
    make_app({"APPINBOX_TOKEN_CACHE_TTL": 0})
    assert "per process" not in caplog.text


def test_a_shared_token_cache_is_not_warned(monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    from cachelib import SimpleCache

    monkeypatch.setenv("SERVER_SOFTWARE", "gunicorn/23.0.0")
    make_app({"APPINBOX_TOKEN_CACHE_TTL": 60, "APPINBOX_TOKEN_CACHE": SimpleCache()})
    assert "per process" not in caplog.text


def test_cli_snippet() -> None:
    app = make_app({"APPINBOX_RECOMS": True})
    runner = app.test_cli_runner()
    logged_in = runner.invoke(args=["appinbox", "snippet", "--nonce", "abc", "--language", "de"])
    assert logged_in.exit_code == 0
    assert logged_in.output.count('<script nonce="abc">') == 2
    assert "eS('init', {\"APP_INBOX\": true, \"RECOMS\": true}, {getAuthTokenCallback" in logged_in.output
    assert 'language: "de"' in logged_in.output and f"{SITE_ID}.js" in logged_in.output
    anonymous = runner.invoke(args=["appinbox", "snippet", "--anonymous"])
    assert "<script>eS('init', {\"RECOMS\": true});</script>" in anonymous.output
    bad = runner.invoke(args=["appinbox", "snippet", "--language", "klingon"])
    assert bad.exit_code == 1 and "ISO 639-1" in bad.output


def test_cli_snippet_names_a_bad_key_of_a_tenant() -> None:
    app = make_app({"APPINBOX_API_KEY": lambda: " bad key "})
    result = app.test_cli_runner().invoke(args=["appinbox", "snippet"])
    assert result.exit_code == 1 and "Error: APPINBOX_API_KEY: must be a non-empty string" in result.output
    assert "bad key" not in result.output


def test_cli_snippet_takes_no_per_request_nonce() -> None:
    # A printed snippet goes into a static page: Flask-Talisman's one-time nonce must not be in it.
    app = make_app()
    app.jinja_env.globals["csp_nonce"] = lambda: "one-time"
    output = app.test_cli_runner().invoke(args=["appinbox", "snippet"]).output
    assert "<script>" in output and "one-time" not in output and 'nonce="' not in output


# -- Flask-Babel ------------------------------------------------------------------------------

def test_language_follows_flask_babel() -> None:
    from flask_babel import Babel

    locale = ["pt_BR"]
    fresh = Flask(__name__)
    fresh.config.update(SECRET_KEY="s", APPINBOX_API_KEY=API_KEY, APPINBOX_SITE_ID=SITE_ID)
    from flask_login import LoginManager

    from flask_appinbox import FlaskAppInbox

    LoginManager(fresh).user_loader(USERS.get)
    Babel(fresh, locale_selector=lambda: locale[0])
    FlaskAppInbox(fresh)
    with fresh.test_request_context("/"):
        login_user(USERS["1"])
        assert 'language: "pt"' in render_template_string("{{ appinbox_script() }}")
    locale[0] = "uk"
    with fresh.test_request_context("/"):
        login_user(USERS["1"])
        assert 'language: "uk"' in render_template_string("{{ appinbox_script() }}")


def test_explicit_language_wins_over_flask_babel() -> None:
    from flask_babel import Babel

    app = make_app({"APPINBOX_LANGUAGE": "fr"})
    Babel(app, locale_selector=lambda: "de")
    with app.test_request_context("/"):
        login_user(USERS["1"])
        assert 'language: "fr"' in render_template_string("{{ appinbox_script() }}")


def test_without_flask_babel_the_default_is_en() -> None:
    fresh = Flask(__name__)
    fresh.config.update(SECRET_KEY="s", APPINBOX_API_KEY=API_KEY, APPINBOX_SITE_ID=SITE_ID)
    from flask_login import LoginManager

    from flask_appinbox import FlaskAppInbox

    LoginManager(fresh).user_loader(USERS.get)
    FlaskAppInbox(fresh)
    assert fresh.config["APPINBOX_LANGUAGE"] is None  # the configuration does not say "en" while Babel says "de"
    with fresh.test_request_context("/"):
        login_user(USERS["1"])
        assert 'language: "en"' in render_template_string("{{ appinbox_script() }}")


@pytest.mark.parametrize("locale", ["fil", "ckb", "yue"])
def test_a_babel_locale_without_a_two_letter_code_falls_back_to_en(locale: str,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    from flask_babel import Babel

    app = make_app()
    Babel(app, locale_selector=lambda: locale)
    for _ in range(3):
        with app.test_request_context("/"):
            login_user(USERS["1"])
            assert 'language: "en"' in render_template_string("{{ appinbox_script() }}")
    assert len([r for r in caplog.records if "falls back to" in r.getMessage()]) == 1


# -- tenants ----------------------------------------------------------------------------------

TENANTS = {
    "shop-a.example": ("key-a", "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"),
    "shop-b.example": ("key-b", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
    "shop-c.example": (None, None),  # no App Inbox for this one
}


def tenant_app() -> Flask:
    from flask import request

    return make_app({
        "APPINBOX_API_KEY": lambda: TENANTS[request.headers["X-Shop"]][0],
        "APPINBOX_SITE_ID": lambda: TENANTS[request.headers["X-Shop"]][1],
        "APPINBOX_TOKEN_CACHE_TTL": 60,
    })


def test_two_tenants_in_one_app(upstream: responses.RequestsMock) -> None:
    import requests

    app = tenant_app()
    fake = FakeEsputnik(mock=upstream)
    fake.token("same-contact-token")
    for host, (key, site) in TENANTS.items():
        client = app.test_client(user=USERS["1"])
        response = client.post("/appinbox/token", headers={"X-Shop": host})
        with app.test_request_context("/", headers={"X-Shop": host}):
            login_user(USERS["1"])
            html = render_template_string("{{ appinbox_script() }}")
            bell = render_template_string("{{ appinbox_bell() }}")
        if key is None:
            assert response.status_code == 404 and html == "" and bell == ""
        else:
            assert response.json == {"token": "same-contact-token"}
            assert f"/scripts/{site}.js" in html and bell == '<div id="appinbox-bell"></div>'
    assert fake.auth_headers == [requests.auth._basic_auth_str("flask-appinbox", k) for k in ("key-a", "key-b")]
    # The cache keeps accounts apart: a second round is served from it, per tenant.
    for host in ("shop-a.example", "shop-b.example"):
        app.test_client(user=USERS["1"]).post("/appinbox/token", headers={"X-Shop": host})
    assert len(fake.token_requests) == 2
    state = app.extensions["appinbox"]
    assert state.client_for.cache_info().currsize == 2


def test_tenants_clients_beyond_256_are_dropped_least_recently_used_first() -> None:
    state = tenant_app().extensions["appinbox"]
    first, second = state.client_for("key-0"), state.client_for("key-1")
    for n in range(2, 257):  # 257 accounts
        state.client_for(f"key-{n}")
    assert state.client_for.cache_info().currsize == 256
    assert state.client_for("key-1") is second
    assert state.client_for("key-0") is not first  # dropped, made again
    first.close()


def test_tenant_with_a_malformed_key_is_503_not_500(upstream: responses.RequestsMock,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    app = make_app({"APPINBOX_API_KEY": lambda: " bad key "})
    response = app.test_client(user=USERS["1"]).post("/appinbox/token")
    assert (response.status_code, response.json) == (503, {"error": "configuration_error"})
    assert "APPINBOX_API_KEY" in caplog.text and "bad key" not in caplog.text
    with app.test_request_context("/"):
        login_user(USERS["1"])
        assert render_template_string("{{ appinbox_script() }}") == ""  # the page renders (issue 24)


# -- shared token caches ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["simple", "filesystem"])
def test_shared_cache_across_two_app_instances(kind: str, tmp_path: Any, upstream: responses.RequestsMock) -> None:
    from cachelib import FileSystemCache, SimpleCache

    cache = SimpleCache() if kind == "simple" else FileSystemCache(str(tmp_path))
    one = make_app({"APPINBOX_TOKEN_CACHE": cache, "APPINBOX_TOKEN_CACHE_TTL": 60})
    if kind == "filesystem":
        cache = FileSystemCache(str(tmp_path))  # another process would open its own
    two = make_app({"APPINBOX_TOKEN_CACHE": cache, "APPINBOX_TOKEN_CACHE_TTL": 60})
    fake = FakeEsputnik(mock=upstream)
    fake.token("shared")
    assert one.test_client(user=USERS["1"]).post("/appinbox/token").json == {"token": "shared"}
    assert two.test_client(user=USERS["1"]).post("/appinbox/token").json == {"token": "shared"}
    assert len(fake.token_requests) == 1
    fake.token("renewed")
    assert two.test_client(user=USERS["1"]).post("/appinbox/token", json={"renew": True}).json == {"token": "renewed"}
    assert one.test_client(user=USERS["1"]).post("/appinbox/token").json == {"token": "renewed"}
    assert len(fake.token_requests) == 2
    # The one entry is stored under a digest of the account and the contact, not under the email.
    import re
    from pathlib import Path

    from flask_appinbox import Contact

    alice = Contact(email="alice@example.com")
    key = one.extensions["appinbox"].cache_key(alice, API_KEY)
    assert re.fullmatch(r"appinbox:[0-9a-f]{64}", key)
    # Another account's token for the same contact is another entry.
    assert one.extensions["appinbox"].cache_key(alice, API_KEY + "-other") != key
    assert cache.get(key) == "renewed"
    if kind == "simple":
        assert list(cache._cache) == [key]
    else:
        count_file = Path(cache._get_filename(cache._fs_count_file)).name  # cachelib's own bookkeeping
        assert {p.name for p in tmp_path.iterdir()} - {count_file} == {Path(cache._get_filename(key)).name}


def test_shared_cache_needs_a_ttl_and_the_right_shape() -> None:
    from cachelib import SimpleCache

    with pytest.raises(ConfigurationError, match="APPINBOX_TOKEN_CACHE"):
        make_app({"APPINBOX_TOKEN_CACHE": SimpleCache()})
    with pytest.raises(ConfigurationError, match="APPINBOX_TOKEN_CACHE"):
        make_app({"APPINBOX_TOKEN_CACHE": {"not": "a cache"}, "APPINBOX_TOKEN_CACHE_TTL": 5})


def test_fake_esputnik_can_be_entered_again() -> None:
    import requests

    fake = FakeEsputnik()
    for token in ("one", "two"):
        with fake:
            fake.token(token)
            answer = requests.post("https://esputnik.com/api/v1/auth/contact/token", json={"email": "a@b.cc"},
                                   timeout=5)
        assert answer.json() == {"token": token}
    assert fake.token_requests == [{"email": "a@b.cc"}] * 2


@pytest.mark.parametrize("propagate", [None, False])
def test_a_failing_receiver_reaches_the_test_as_a_views_exception_would(upstream: responses.RequestsMock,
                                                                        propagate: bool | None) -> None:
    app = make_app({"PROPAGATE_EXCEPTIONS": propagate})
    upstream.post("https://esputnik.com/api/v1/auth/contact/token", json={"token": "t"})

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("the site's receiver is broken")

    signals.token_issued.connect(broken, app)
    try:
        client = app.test_client(user=USERS["1"])
        if propagate is None:  # TESTING: Flask raises it into the test, as Flask-Login's signals do
            with pytest.raises(RuntimeError, match="receiver is broken"):
                client.post("/appinbox/token")
        else:  # production: Flask logs it, and the endpoint still answers no 500
            response = client.post("/appinbox/token")
            assert (response.status_code, response.json) == (503, {"error": "internal_error"})
    finally:
        signals.token_issued.disconnect(broken, app)
