"""POST <prefix>/token: every answer of the contract."""
from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import requests
import responses
from conftest import API_KEY, CONTACT_URL, TOKEN_URL, USERS, make_app
from flask_login import LoginManager

from flask_appinbox import Contact, FlaskAppInbox


def post(client: Any, **kwargs: Any) -> Any:
    return client.post("/appinbox/token", **kwargs)


def assert_json_no_store(response: Any) -> None:
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.status_code != 500


def test_success(alice: Any, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN_URL, json={"token": "tok-1"})
    response = post(alice, json={"renew": False})
    assert response.status_code == 200
    assert response.json == {"token": "tok-1"}
    assert_json_no_store(response)
    (call,) = upstream.calls
    assert call.request.headers["Content-Type"] == "application/json"
    assert call.request.headers["Accept"] == "application/json"
    assert call.request.headers["User-Agent"].startswith("Flask-AppInbox/")
    assert call.request.body == b'{"email":"alice@example.com"}' or call.request.body == '{"email":"alice@example.com"}'
    auth = requests.auth._basic_auth_str("flask-appinbox", API_KEY)
    assert call.request.headers["Authorization"] == auth


def test_body_is_optional(alice: Any, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN_URL, json={"token": "tok-1"})
    assert post(alice).json == {"token": "tok-1"}


def test_phone_is_sent_as_digits(app: Any, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN_URL, json={"token": "t"},
                  match=[responses.matchers.json_params_matcher({"phone": "380501234567"})])
    assert post(app.test_client(user=USERS["2"])).status_code == 200


def test_anonymous_is_401_even_with_a_login_view(app: Any, upstream: responses.RequestsMock) -> None:
    app.login_manager.login_view = "login"
    response = post(app.test_client())
    assert response.status_code == 401
    assert response.json == {"error": "unauthenticated"}
    assert_json_no_store(response)
    assert not upstream.calls


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD", "PROPFIND"])
def test_other_methods_get_flasks_405(alice: Any, upstream: responses.RequestsMock, method: str) -> None:
    response = alice.open("/appinbox/token", method=method)
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert not upstream.calls


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Sec-Fetch-Site": "none"},
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://localhost:8080"},
    {"Origin": "https://localhost:8443"},
    {"Origin": "http://localhost.evil.example"},
    {"Origin": "ftp://localhost"},
    {"Origin": "garbage"},
    {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost"},
])
def test_cross_site_is_403(alice: Any, upstream: responses.RequestsMock, headers: dict[str, str]) -> None:
    response = post(alice, headers=headers)
    assert response.status_code == 403
    assert response.json == {"error": "cross_site_request"}
    assert_json_no_store(response)
    assert not upstream.calls


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "same-origin"},
    {"Origin": "http://localhost"},
    {"Origin": "http://LOCALHOST:80"},
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
    # TLS ended at a proxy without ProxyFix: the app sees http, the browser's page was https.
    {"Origin": "https://localhost"},
    {"Origin": "https://localhost:443"},
    # A browser's own word decides (a proxy may rewrite the host the app sees, never this header).
    {"Sec-Fetch-Site": "same-origin", "Origin": "https://shop.example"},
])
def test_same_origin_is_served(alice: Any, upstream: responses.RequestsMock, headers: dict[str, str]) -> None:
    upstream.post(TOKEN_URL, json={"token": "t"})
    assert post(alice, headers=headers).status_code == 200


@pytest.mark.parametrize("host", ["[1:2]", "[:::1]:8080"])
def test_an_unparseable_host_is_cross_site(app: Any, upstream: responses.RequestsMock, host: str) -> None:
    # Werkzeug passes these Hosts on (its check is by character); urlsplit finds no IPv6 address in them.
    # The page's Origin cannot be compared with such a Host: refused (before the login is looked at).
    # Straight through WSGI: the test client cannot build its own URL from such a Host.
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder("/appinbox/token", method="POST",
                             headers={"Origin": "http://localhost", "Host": host}).get_environ()
    status: list[str] = []
    body = b"".join(app(environ, lambda line, headers, exc_info=None: status.append(line)))
    assert (status, json.loads(body)) == (["403 FORBIDDEN"], {"error": "cross_site_request"})
    assert not upstream.calls


def test_origin_behind_a_proxy_uses_the_host_flask_sees(app: Any, upstream: responses.RequestsMock) -> None:
    from werkzeug.middleware.proxy_fix import ProxyFix

    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)  # type: ignore[method-assign]
    upstream.post(TOKEN_URL, json={"token": "t"})
    client = app.test_client(user=USERS["1"])
    headers = {"Origin": "https://shop.example", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "shop.example"}
    assert post(client, headers=headers).status_code == 200
    assert post(client, headers={"Origin": "https://shop.example"}).status_code == 403


def test_an_http_page_is_cross_site_for_an_https_app(alice: Any, upstream: responses.RequestsMock) -> None:
    response = post(alice, headers={"Origin": "http://localhost"}, base_url="https://localhost")
    assert (response.status_code, response.json) == (403, {"error": "cross_site_request"})
    upstream.post(TOKEN_URL, json={"token": "t"})
    assert post(alice, headers={"Origin": "https://localhost"}, base_url="https://localhost").status_code == 200


@pytest.mark.parametrize("config", [{"APPINBOX_TRUSTED_ORIGINS": ["https://www.shop.example", "http://localhost:5000"]}])
@pytest.mark.parametrize("headers,status", [
    ({"Origin": "https://www.shop.example"}, 200),
    ({"Origin": "https://WWW.shop.example:443", "Sec-Fetch-Site": "same-site"}, 200),
    ({"Origin": "http://localhost:5000", "Sec-Fetch-Site": "cross-site"}, 200),
    ({"Origin": "http://www.shop.example"}, 403),
    ({"Origin": "https://shop.example", "Sec-Fetch-Site": "same-site"}, 403),
    ({"Sec-Fetch-Site": "same-site"}, 403),
])
def test_trusted_origins(alice: Any, upstream: responses.RequestsMock, headers: dict[str, str], status: int) -> None:
    upstream.post(TOKEN_URL, json={"token": "t"})
    assert post(alice, headers=headers).status_code == status


def test_no_contact_field_is_404_without_calling_upstream(app: Any, upstream: responses.RequestsMock) -> None:
    response = post(app.test_client(user=USERS["3"]))
    assert response.status_code == 404
    assert response.json == {"token": "", "error": "contact_not_found"}
    assert_json_no_store(response)
    assert not upstream.calls


def test_loader_returning_none_is_404(upstream: responses.RequestsMock) -> None:
    ext = FlaskAppInbox()
    ext.contact_loader(lambda user: None)
    app = make_app(extension=ext)
    assert post(app.test_client(user=USERS["1"])).status_code == 404
    assert not upstream.calls


def test_loader_mapping_and_contact(upstream: responses.RequestsMock) -> None:
    ext = FlaskAppInbox()
    seen = []

    @ext.contact_loader
    def load(user: Any) -> Any:
        seen.append(user.id)
        return {"externalCustomerId": f"u-{user.id}", "email": " Bob@Example.COM "}

    app = make_app(extension=ext)
    upstream.post(TOKEN_URL, json={"token": "t"}, match=[
        responses.matchers.json_params_matcher({"email": "bob@example.com", "externalCustomerId": "u-1"})])
    assert post(app.test_client(user=USERS["1"])).status_code == 200
    assert seen == ["1"]

    ext.contact_loader(lambda user: Contact(external_customer_id=str(user.id)))
    upstream.post(TOKEN_URL, json={"token": "t2"},
                  match=[responses.matchers.json_params_matcher({"externalCustomerId": "1"})])
    assert post(app.test_client(user=USERS["1"])).json == {"token": "t2"}


def test_invalid_contact_is_404_and_logged(upstream: responses.RequestsMock, logs: Any) -> None:
    ext = FlaskAppInbox()
    ext.contact_loader(lambda user: {"email": "not an email"})
    app = make_app(extension=ext)
    response = post(app.test_client(user=USERS["1"]))
    assert response.status_code == 404
    assert not upstream.calls
    assert "not valid" in logs.text


@pytest.mark.parametrize("bad,status,error", [
    (lambda u: 42, 503, "internal_error"),            # not a contact at all: the loader is broken
    (lambda u: {"mail": "x@y.z"}, 404, "contact_not_found"),  # no known field: no contact
    (lambda u: 1 / 0, 503, "internal_error"),
], ids=["number", "unknown-field", "raises"])
def test_broken_loader_is_never_500(upstream: responses.RequestsMock, bad: Any, status: int, error: str) -> None:
    ext = FlaskAppInbox()
    ext.contact_loader(bad)
    app = make_app({"PROPAGATE_EXCEPTIONS": False}, extension=ext)
    response = post(app.test_client(user=USERS["1"]))
    assert (response.status_code, response.json["error"]) == (status, error)
    assert_json_no_store(response)
    assert not upstream.calls


def test_unknown_contact_is_404(alice: Any, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN_URL, json={"token": ""})
    response = post(alice)
    assert response.status_code == 404
    assert response.json == {"token": "", "error": "contact_not_found"}
    assert len(upstream.calls) == 1  # an unknown contact is an answer, not a fault


@pytest.mark.parametrize("config", [{"APPINBOX_CREATE_CONTACTS": True}])
def test_create_contacts(alice: Any, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN_URL, json={"token": ""})
    upstream.post(TOKEN_URL, json={"token": "fresh"})
    upstream.post(CONTACT_URL, json={"id": 7}, match=[responses.matchers.json_params_matcher(
        {"channels": [{"type": "email", "value": "alice@example.com"}]})])
    response = post(alice)
    assert response.json == {"token": "fresh"}
    assert [c.request.url for c in upstream.calls] == [TOKEN_URL, CONTACT_URL, TOKEN_URL]


@pytest.mark.parametrize("config", [{"APPINBOX_CREATE_CONTACTS": True}])
def test_create_contacts_still_unknown_is_404(alice: Any, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN_URL, json={"token": ""})
    upstream.post(CONTACT_URL, json={"id": 7})
    assert post(alice).status_code == 404
    assert len(upstream.calls) == 3


@pytest.mark.parametrize("config", [{"APPINBOX_CREATE_CONTACTS": True}])
def test_create_contacts_failure_maps_like_any_upstream_error(alice: Any, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN_URL, json={"token": ""})
    upstream.post(CONTACT_URL, status=400)
    assert post(alice).json == {"error": "upstream_rejected"}


FAULTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("400", {"status": 400, "json": {"error": "bad"}}, 502, "upstream_rejected"),
    ("401", {"status": 401}, 502, "upstream_rejected"),
    ("403", {"status": 403}, 502, "upstream_rejected"),
    ("404", {"status": 404}, 502, "upstream_error"),
    ("500", {"status": 500}, 502, "upstream_error"),
    ("503", {"status": 503}, 502, "upstream_error"),
    ("html", {"status": 200, "body": "<html>maintenance</html>", "content_type": "text/html"}, 502, "upstream_error"),
    ("no token", {"status": 200, "json": {"id": 1}}, 502, "upstream_error"),
    ("token not a string", {"status": 200, "json": {"token": 12345}}, 502, "upstream_error"),
    ("token null", {"status": 200, "json": {"token": None}}, 502, "upstream_error"),
    ("json list", {"status": 200, "json": ["token"]}, 502, "upstream_error"),
    ("redirect", {"status": 302, "headers": {"Location": "https://evil.example/"}}, 502, "upstream_error"),
    ("timeout", {"body": requests.exceptions.ReadTimeout("slow")}, 504, "upstream_timeout"),
    ("connect timeout", {"body": requests.exceptions.ConnectTimeout("slow")}, 504, "upstream_timeout"),
    ("connection", {"body": requests.exceptions.ConnectionError("refused")}, 502, "upstream_error"),
    ("429", {"status": 429}, 503, "upstream_rate_limited"),
]


@pytest.mark.parametrize("name,reply,status,error", FAULTS, ids=[f[0] for f in FAULTS])
def test_faults(alice: Any, upstream: responses.RequestsMock, logs: Any,
                name: str, reply: dict[str, Any], status: int, error: str) -> None:
    upstream.post(TOKEN_URL, **reply)
    response = post(alice)
    assert response.status_code == status
    assert response.json == {"error": error}
    assert_json_no_store(response)
    # Retried: 502/503/504, a refused or reset connection, a connect timeout; not a read timeout, a 500,
    # a 4xx or an answer that is not a token (a real server in test_client.py checks the same).
    assert len(upstream.calls) == (3 if name in ("503", "connect timeout", "connection") else 1)
    if status == 503:
        assert response.headers["Retry-After"] == "5"
    assert_no_secret(response, logs)


def assert_no_secret(response: Any, logs: Any) -> None:
    assert API_KEY not in response.get_data(as_text=True)
    assert all(API_KEY not in v for v in response.headers.values())
    for record in logs.records:
        assert API_KEY not in record.getMessage()
        assert "alice@example.com" not in record.getMessage()


def test_429_retry_after_is_passed_to_the_browser(alice: Any, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN_URL, status=429, headers={"Retry-After": "120"})
    response = post(alice)
    assert response.status_code == 503
    assert response.json == {"error": "upstream_rate_limited"}
    assert response.headers["Retry-After"] == "120"
    assert len(upstream.calls) == 1  # a long Retry-After is not waited out


def test_429_is_passed_on_not_retried(alice: Any, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN_URL, status=429, headers={"Retry-After": "0"})
    upstream.post(TOKEN_URL, json={"token": "later"})
    response = post(alice)
    assert (response.status_code, response.json) == (503, {"error": "upstream_rate_limited"})
    assert response.headers["Retry-After"] == "0"
    assert len(upstream.calls) == 1
    assert post(alice).json == {"token": "later"}


def test_5xx_then_success(alice: Any, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN_URL, status=502)
    upstream.post(TOKEN_URL, status=503)
    upstream.post(TOKEN_URL, json={"token": "third"})
    assert post(alice).json == {"token": "third"}
    assert len(upstream.calls) == 3


def test_the_last_attempt_decides_the_answer(alice: Any, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN_URL, status=503)
    upstream.post(TOKEN_URL, body=requests.exceptions.ReadTimeout("slow"))
    response = post(alice)
    assert (response.status_code, response.json) == (504, {"error": "upstream_timeout"})
    assert len(upstream.calls) == 2


@pytest.mark.parametrize("config", [{"APPINBOX_RETRIES": 0}])
def test_retries_zero_means_one_attempt(alice: Any, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN_URL, status=503)
    assert post(alice).status_code == 502
    assert len(upstream.calls) == 1


@pytest.mark.parametrize("body", [b"{", b"[]", b'"x"', b'{"renew": "yes"}', b'{"renew": 1}', b"x" * 5000])
def test_bad_bodies_are_400(alice: Any, upstream: responses.RequestsMock, body: bytes) -> None:
    response = post(alice, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json == {"error": "bad_request"}
    assert not upstream.calls


@pytest.mark.parametrize("config", [{"APPINBOX_ENABLED": False}])
def test_disabled_is_404(alice: Any, upstream: responses.RequestsMock) -> None:
    response = post(alice)
    assert response.status_code == 404
    assert_json_no_store(response)
    assert not upstream.calls


@pytest.mark.parametrize("config", [{"APPINBOX_URL_PREFIX": "/api/inbox/"}])
def test_url_prefix(alice: Any, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN_URL, json={"token": "t"})
    assert alice.post("/api/inbox/token").json == {"token": "t"}
    assert alice.post("/appinbox/token").status_code == 404


@pytest.mark.parametrize("config", [{"APPINBOX_API_URL": "https://eu.esputnik.example/api/"}])
def test_api_url(alice: Any, upstream: responses.RequestsMock) -> None:
    upstream.post("https://eu.esputnik.example/api/v1/auth/contact/token", json={"token": "eu"})
    assert post(alice).json == {"token": "eu"}


def test_without_login_manager_is_401_and_logged(upstream: responses.RequestsMock, logs: Any) -> None:
    from flask import Flask

    app = Flask(__name__)
    app.config.update(APPINBOX_API_KEY=API_KEY, APPINBOX_SITE_ID="0" * 32)
    FlaskAppInbox(app)
    response = app.test_client().post("/appinbox/token")
    assert response.status_code == 401
    assert "LoginManager" in logs.text


def test_two_apps_share_one_extension(upstream: responses.RequestsMock) -> None:
    ext = FlaskAppInbox()
    one = make_app({"APPINBOX_API_URL": "https://one.example/api"}, extension=ext)
    two = make_app({"APPINBOX_API_URL": "https://two.example/api", "APPINBOX_URL_PREFIX": "/inbox",
                    "APPINBOX_API_KEY": "other-key"}, extension=ext)
    assert not hasattr(ext, "app")
    assert one.extensions["appinbox"] is not two.extensions["appinbox"]
    upstream.post("https://one.example/api/v1/auth/contact/token", json={"token": "one"})
    upstream.post("https://two.example/api/v1/auth/contact/token", json={"token": "two"})
    assert one.test_client(user=USERS["1"]).post("/appinbox/token").json == {"token": "one"}
    assert two.test_client(user=USERS["1"]).post("/inbox/token").json == {"token": "two"}
    keys = [c.request.headers["Authorization"] for c in upstream.calls]
    assert keys == [requests.auth._basic_auth_str("flask-appinbox", k) for k in (API_KEY, "other-key")]


def test_init_app_twice_is_refused(app: Any) -> None:
    with pytest.raises(RuntimeError, match="already"):
        FlaskAppInbox(app)


def test_config_is_not_rewritten(upstream: responses.RequestsMock) -> None:
    app = make_app({"APPINBOX_LANGUAGE": "pt_BR", "APPINBOX_URL_PREFIX": "/x/"})
    assert app.config["APPINBOX_LANGUAGE"] == "pt_BR"
    assert app.config["APPINBOX_URL_PREFIX"] == "/x/"
    assert app.config["APPINBOX_API_KEY"] == API_KEY
    assert app.config["APPINBOX_TIMEOUT"] == (1.0, 3.0)  # defaults are filled in


# -- cache ------------------------------------------------------------------------------

@pytest.mark.parametrize("config", [{"APPINBOX_TOKEN_CACHE_TTL": 60}])
def test_cache_serves_first_calls_and_renew_bypasses_it(alice: Any, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN_URL, json={"token": "one"})
    upstream.post(TOKEN_URL, json={"token": "two"})
    assert post(alice, json={"renew": False}).json == {"token": "one"}
    assert post(alice, json={"renew": False}).json == {"token": "one"}
    assert post(alice).json == {"token": "one"}
    assert len(upstream.calls) == 1
    assert post(alice, json={"renew": True}).json == {"token": "two"}
    assert len(upstream.calls) == 2
    assert post(alice, json={"renew": False}).json == {"token": "two"}  # the renewed token is cached
    assert len(upstream.calls) == 2


@pytest.mark.parametrize("config", [{"APPINBOX_TOKEN_CACHE_TTL": 60}])
def test_cache_is_per_contact(app: Any, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN_URL, json={"token": "a"}, match=[responses.matchers.json_params_matcher(
        {"email": "alice@example.com"})])
    upstream.post(TOKEN_URL, json={"token": "b"}, match=[responses.matchers.json_params_matcher(
        {"phone": "380501234567"})])
    assert post(app.test_client(user=USERS["1"])).json == {"token": "a"}
    assert post(app.test_client(user=USERS["2"])).json == {"token": "b"}


@pytest.mark.parametrize("config", [{"APPINBOX_TOKEN_CACHE_TTL": 60}])
def test_cache_expires(app: Any, alice: Any, upstream: responses.RequestsMock,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("cachelib.simple.time", lambda: now[0])
    upstream.post(TOKEN_URL, json={"token": "one"})
    upstream.post(TOKEN_URL, json={"token": "two"})
    assert post(alice).json == {"token": "one"}
    now[0] += 59
    assert post(alice).json == {"token": "one"}
    now[0] += 2
    assert post(alice).json == {"token": "two"}


@pytest.mark.parametrize("config", [{"APPINBOX_TOKEN_CACHE_TTL": 60}])
def test_the_per_process_token_cache_is_bounded(app: Any) -> None:
    # At most 10,000 tokens a process (cachelib keeps one over its threshold until the next set).
    cache = app.extensions["appinbox"].cache
    keys = [f"appinbox:{n}" for n in range(10_002)]
    for key in keys:
        cache.set(key, "token", timeout=60)
    assert not cache.has(keys[0]) and cache.has(keys[1]) and cache.has(keys[-1])


def test_cache_off_by_default(alice: Any, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN_URL, json={"token": "one"})
    post(alice)
    post(alice)
    assert len(upstream.calls) == 2


@pytest.mark.parametrize("config", [{"APPINBOX_TOKEN_CACHE_TTL": 60}])
def test_errors_and_unknown_contacts_are_not_cached(alice: Any, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN_URL, json={"token": ""})
    upstream.post(TOKEN_URL, status=400)
    upstream.post(TOKEN_URL, json={"token": "ok"})
    assert post(alice).status_code == 404
    assert post(alice).status_code == 502
    assert post(alice).json == {"token": "ok"}


@pytest.mark.parametrize("config", [{"APPINBOX_TOKEN_CACHE_TTL": 60}])
def test_logout_drops_the_cached_token(app: Any, upstream: responses.RequestsMock) -> None:
    from flask_login import login_user, logout_user

    upstream.post(TOKEN_URL, json={"token": "one"})
    upstream.post(TOKEN_URL, json={"token": "two"})

    @app.post("/logout")
    def logout() -> str:
        logout_user()
        return "bye"

    @app.post("/login")
    def login() -> str:
        login_user(USERS["1"])
        return "hi"

    client = app.test_client()
    client.post("/login")
    assert post(client).json == {"token": "one"}
    client.post("/logout")
    assert post(client).status_code == 401
    client.post("/login")
    assert post(client).json == {"token": "two"}
    assert len(upstream.calls) == 2


@pytest.mark.parametrize("config", [{"APPINBOX_TOKEN_CACHE_TTL": 60}])
def test_logout_of_a_user_without_a_contact_writes_nothing(app: Any) -> None:
    from flask_login import login_user, logout_user

    state = app.extensions["appinbox"]
    with app.test_request_context("/"):
        login_user(USERS["3"])  # no email, phone or external id: an empty contact
        logout_user()
    assert not state.cache.has(state.cache_key(Contact(), API_KEY))
    state.extension.contact_loader(lambda user: None)
    with app.test_request_context("/"):
        login_user(USERS["1"])
        logout_user()  # the loader has no contact for this user: nothing to forget


def test_endpoint_logs_hold_no_secret_or_personal_data(alice: Any, upstream: responses.RequestsMock,
                                                        logs: Any) -> None:
    upstream.post(TOKEN_URL, json={"token": "tok-secret-value"})
    upstream.post(TOKEN_URL, status=500)
    upstream.post(TOKEN_URL, status=500)
    upstream.post(TOKEN_URL, status=500)
    post(alice)
    post(alice)
    assert logs.records, "the failure is logged"
    assert any(r.levelno == logging.WARNING for r in logs.records)
    for record in logs.records:
        text = record.getMessage()
        assert API_KEY not in text and "tok-secret-value" not in text and "alice@example.com" not in text


@pytest.mark.parametrize("propagate", [None, False])
def test_a_failing_loader_reaches_the_test_as_a_view_would(upstream: responses.RequestsMock,
                                                          propagate: bool | None) -> None:
    ext = FlaskAppInbox()
    ext.contact_loader(lambda user: (_ for _ in ()).throw(RuntimeError("db down")))
    app = make_app({"PROPAGATE_EXCEPTIONS": propagate}, extension=ext)
    assert app.testing
    if propagate is None:  # Flask's default when testing: the exception reaches the test
        with pytest.raises(RuntimeError, match="db down"):
            post(app.test_client(user=USERS["1"]))
    else:  # production: never a 500
        response = post(app.test_client(user=USERS["1"]))
        assert (response.status_code, response.json) == (503, {"error": "internal_error"})
    assert not upstream.calls


def test_login_manager_set_up_after_the_extension(upstream: responses.RequestsMock) -> None:
    from flask import Flask

    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", APPINBOX_API_KEY=API_KEY, APPINBOX_SITE_ID="0" * 32)
    FlaskAppInbox(app)
    from flask_login import FlaskLoginClient

    app.test_client_class = FlaskLoginClient
    LoginManager(app).user_loader(USERS.get)
    upstream.post(TOKEN_URL, json={"token": "t"})
    assert app.test_client(user=USERS["1"]).post("/appinbox/token").json == {"token": "t"}


@pytest.mark.parametrize("config", [{"APPINBOX_TIMEOUT": 2.5, "APPINBOX_RETRIES": 1}])
def test_every_attempt_uses_the_configured_timeout(alice: Any, upstream: responses.RequestsMock) -> None:
    upstream.post(TOKEN_URL, status=503)
    upstream.post(TOKEN_URL, json={"token": "t"})
    assert post(alice).json == {"token": "t"}
    assert [c.request.req_kwargs["timeout"] for c in upstream.calls] == [(2.5, 2.5), (2.5, 2.5)]
    assert all(c.request.req_kwargs["stream"] for c in upstream.calls)  # the body is read under the budget


# -- a site replaces failure answers the Flask way ----------------------------------------------

@pytest.mark.parametrize("registered,reply,status", [
    ("UpstreamError", {"body": requests.exceptions.ReadTimeout("slow")}, 504),   # a subclass's own code: 504
    ("UpstreamError", {"status": 401}, 502),
    ("UpstreamError", {"status": 429}, 503),
    ("UpstreamTimeout", {"body": requests.exceptions.ReadTimeout("slow")}, 504),
    ("ContactNotFound", {"json": {"token": ""}}, 404),
    ("AppInboxError", {"status": 500}, 502),
])
def test_a_sites_errorhandler_replaces_the_answer(upstream: responses.RequestsMock, registered: str,
                                                  reply: dict[str, Any], status: int) -> None:
    import flask_appinbox

    app = make_app({"APPINBOX_RETRIES": 0})
    seen: list[Exception] = []

    @app.errorhandler(getattr(flask_appinbox, registered))
    def replaced(exc: Exception) -> Any:
        seen.append(exc)
        return {"error": "inbox_unavailable", "code": exc.status}, 418  # type: ignore[attr-defined]

    upstream.post(TOKEN_URL, **reply)
    response = post(app.test_client(user=USERS["1"]))
    assert (response.status_code, response.json) == (418, {"error": "inbox_unavailable", "code": status})
    assert isinstance(seen[0], getattr(flask_appinbox, registered))


def test_without_a_handler_of_its_own_the_site_gets_the_contract_answer(upstream: responses.RequestsMock) -> None:
    from flask_appinbox import ContactNotFound

    app = make_app({"APPINBOX_RETRIES": 0})

    @app.errorhandler(ContactNotFound)  # handles one failure: the others keep their JSON
    def replaced(exc: Exception) -> Any:
        return "no inbox", 404

    @app.errorhandler(Exception)  # a site's catch-all is less specific than the package's own answers
    def everything(exc: Exception) -> Any:
        return "oops", 500

    upstream.post(TOKEN_URL, status=503)
    response = post(app.test_client(user=USERS["1"]))
    assert (response.status_code, response.json) == (502, {"error": "upstream_error"})
    assert_json_no_store(response)


def test_options_is_json_and_no_store(anon: Any) -> None:
    response = anon.options("/appinbox/token")
    assert (response.status_code, response.mimetype, response.json) == (200, "application/json", {})
    assert response.headers["Cache-Control"] == "no-store"
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"OPTIONS", "POST"}
