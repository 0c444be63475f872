"""The sandbox: its token API, its message calls, its page, and how the client reaches it."""
from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pytest
import responses
from conftest import make_app
from flask import Flask, request
from flask_login import UserMixin, logout_user

from flask_appinbox import Contact
from flask_appinbox.sandbox import SANDBOX_ORIGIN
from flask_appinbox.sandbox.store import identifiers

API = "/appinbox/sandbox/api"
MESSAGES = f"{API}/v1/appinbox/messages"
LOADER = Path(__file__).resolve().parents[1] / "flask_appinbox" / "sandbox" / "static" / "loader.js"


@pytest.fixture
def config() -> dict[str, Any]:
    return {"APPINBOX_SANDBOX": True}


def basic(password: str, user: str = "anyone") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def auth(client: Any) -> dict[str, str]:
    """The sandbox's credential: random per app, known to the in-process client only."""
    return basic(client.application.extensions["appinbox_sandbox"].api_key)


class _Id(UserMixin):
    """Logs the test client in as the conftest user with this id."""

    def __init__(self, id: str) -> None:
        self.id = id


def client_for(app: Flask, user_id: str) -> Any:
    return app.test_client(user=_Id(user_id))


def token_for(client: Any, renew: bool = False) -> str:
    response = client.post("/appinbox/token", json={"renew": renew})
    assert response.status_code == 200, response.json
    return response.json["token"]  # type: ignore[no-any-return]


# -- on and off ----------------------------------------------------------------------------


@pytest.mark.parametrize("config", [{}])
def test_off_by_default(app: Flask, anon: Any) -> None:
    assert "appinbox_sandbox" not in app.extensions
    assert anon.post(f"{API}/v1/auth/contact/token", json={"email": "a@b.c"}, headers=basic("x")).status_code == 404
    assert anon.get("/appinbox/sandbox/loader.js").status_code == 404


def test_on_logs_a_warning_and_points_the_snippet_here(app: Flask, alice: Any,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    assert any(r.levelno == logging.WARNING and "SANDBOX" in r.getMessage()
               for r in caplog.get_records("setup"))
    html = app.jinja_env.from_string("{{ appinbox_script() }}")
    with app.test_request_context():
        assert html.render() == ""  # a visitor
    response = alice.get("/appinbox/sandbox/loader.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.get_data() == LOADER.read_bytes()
    response.close()


def test_sandbox_keys_are_optional() -> None:
    app = Flask(__name__)
    app.config.update(APPINBOX_SANDBOX=True)
    from flask_appinbox import FlaskAppInbox

    FlaskAppInbox(app)
    assert app.extensions["appinbox"].client.base_url == f"{SANDBOX_ORIGIN}/appinbox/sandbox/api"


# -- the token API -----------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, basic("wrong"), basic(""), basic("sandbox-api-key"),
                                     {"Authorization": "Bearer sandbox-api-key"}])
def test_token_api_needs_basic_auth(anon: Any, headers: dict[str, str]) -> None:
    response = anon.post(f"{API}/v1/auth/contact/token", json={"email": "alice@example.com"}, headers=headers)
    assert response.status_code == 401
    assert response.json == {"error": "unauthorized"}


def test_token_api(anon: Any) -> None:
    response = anon.post(f"{API}/v1/auth/contact/token", json={"email": "Alice@Example.com"}, headers=auth(anon))
    assert response.status_code == 200
    assert response.json["token"].startswith("sbx_")
    assert response.headers["Cache-Control"] == "no-store"
    for body in ({}, {"email": "not an email"}, [], {"phone": "12"}):
        assert anon.post(f"{API}/v1/auth/contact/token", json=body, headers=auth(anon)).status_code == 400


@pytest.mark.parametrize("config", [{"APPINBOX_SANDBOX": True,
                                     "APPINBOX_SANDBOX_CONTACTS": ["ALICE@example.com", "+380 50 123 45 67"]}])
def test_only_configured_contacts_are_known(app: Flask, anon: Any) -> None:
    def token(body: dict[str, str]) -> str:
        return anon.post(f"{API}/v1/auth/contact/token", json=body, headers=auth(anon)).json["token"]  # type: ignore

    assert token({"email": "bob@example.com"}) == ""
    assert token({"externalCustomerId": "42"}) == ""
    assert token({"email": "alice@example.com"}).startswith("sbx_")
    assert token({"phone": "380501234567"}).startswith("sbx_")
    # Through the extension: the client sees "" and the endpoint answers 404.
    bob = client_for(app, "3")
    assert bob.post("/appinbox/token", json={}).status_code == 404
    assert client_for(app, "2").post("/appinbox/token", json={}).status_code == 200
    response = client_for(app, "1").post("/appinbox/token", json={})
    assert response.status_code == 200 and response.json["token"].startswith("sbx_")


@pytest.mark.parametrize("config", [{"APPINBOX_SANDBOX": True, "APPINBOX_SANDBOX_CONTACTS": []}])
def test_creating_a_contact_makes_it_known(anon: Any) -> None:
    body = {"email": "bob@example.com"}
    assert anon.post(f"{API}/v1/auth/contact/token", json=body, headers=auth(anon)).json == {"token": ""}
    created = {"externalCustomerId": "bob-1", "channels": [{"type": "email", "value": "Bob@example.com"}]}
    assert anon.post(f"{API}/v1/contact", json=created).status_code == 401
    assert anon.post(f"{API}/v1/contact", json={"channels": []}, headers=auth(anon)).status_code == 400
    response = anon.post(f"{API}/v1/contact", json=created, headers=auth(anon))
    assert response.status_code == 200 and isinstance(response.json["id"], int)
    assert anon.post(f"{API}/v1/auth/contact/token", json=body, headers=auth(anon)).json["token"].startswith("sbx_")
    ext = {"externalCustomerId": "bob-1"}
    assert anon.post(f"{API}/v1/auth/contact/token", json=ext, headers=auth(anon)).json["token"].startswith("sbx_")


@pytest.mark.parametrize("config", [{"APPINBOX_SANDBOX": True, "APPINBOX_SANDBOX_CONTACTS": [],
                                     "APPINBOX_CREATE_CONTACTS": True}])
def test_create_contacts_end_to_end(app: Flask, alice: Any) -> None:
    store = app.extensions["appinbox_sandbox"]
    response = alice.post("/appinbox/token", json={})
    assert response.status_code == 200 and response.json["token"].startswith("sbx_")
    assert store.created == {"email:alice@example.com"}
    assert store.token_requests == 2  # "" first, then a token after creating the contact
    assert token_for(alice, renew=True).startswith("sbx_")
    assert store.token_requests == 3  # known now: no second creation


@pytest.mark.parametrize("config", [{"APPINBOX_SANDBOX": True, "APPINBOX_SANDBOX_CONTACTS": []}])
def test_unknown_contact_without_create_contacts(app: Flask, alice: Any) -> None:
    response = alice.post("/appinbox/token", json={})
    assert (response.status_code, response.json) == (404, {"token": "", "error": "contact_not_found"})
    assert app.extensions["appinbox_sandbox"].created == set()


# -- the message calls -------------------------------------------------------------------------


def test_a_token_is_good_for_one_message_call(app: Flask, alice: Any) -> None:
    token = token_for(alice)
    first = alice.get(f"{MESSAGES}/count", headers={"ES-TOKEN": token})
    assert (first.status_code, first.json) == (200, {"count": 2})
    assert "ES-TOKEN" not in first.headers  # no successor: the next call needs a renewal,
    assert first.headers["X-Sandbox-Token"] == "spent"  # and the answer says so (no 401 in a healthy page)
    again = alice.get(f"{MESSAGES}/count", headers={"ES-TOKEN": token})
    assert (again.status_code, again.json) == (401, {"error": "invalid_token"})
    assert again.headers["Cache-Control"] == "no-store" and "X-Sandbox-Token" not in again.headers
    for headers in ({}, {"ES-TOKEN": ""}, {"ES-TOKEN": "sbx_made-up"}):
        assert alice.get(MESSAGES, headers=headers).status_code == 401
        assert alice.put(f"{MESSAGES}/status", json={"ids": [1], "status": "READ"},
                         headers=headers).status_code == 401
    # A renewal gives a working token.
    assert alice.get(f"{MESSAGES}/count", headers={"ES-TOKEN": token_for(alice, renew=True)}).status_code == 200


def test_list_and_mark_read(app: Flask, alice: Any) -> None:
    def call(method: str, path: str, **kwargs: Any) -> Any:
        return alice.open(f"{MESSAGES}{path}", method=method, headers={"ES-TOKEN": token_for(alice, True)},
                          **kwargs)

    listed = call("GET", "")
    assert listed.status_code == 200
    body = listed.json
    assert (body["page"], body["size"], body["pages"], body["total"]) == (0, 20, 1, 3)
    messages = body["messages"]
    assert [m["status"] for m in messages] == ["UNREAD", "UNREAD", "READ"]
    assert set(messages[0]) == {"id", "date", "title", "text", "link", "status"}
    assert messages[0]["date"].endswith("Z") and messages[0]["date"] > messages[1]["date"]
    assert messages[0]["link"] == "/appinbox/sandbox/"

    page = call("GET", "?page=1&size=2").json
    assert (page["pages"], len(page["messages"])) == (2, 1)
    for query in ("?size=0", "?size=101", "?page=-1", "?page=x"):
        assert call("GET", query).status_code == 400

    unread = [m["id"] for m in messages if m["status"] == "UNREAD"]
    marked = call("PUT", "/status", json={"ids": [unread[0], 99999], "status": "READ"})
    assert marked.json == {"updated": 1, "count": 1}
    marked = call("POST", "/status", json={"ids": unread, "status": "READ"})
    assert marked.json == {"updated": 1, "count": 0}
    assert call("GET", "/count").json == {"count": 0}
    assert call("PUT", "/status", json={"ids": [unread[0]], "status": "UNREAD"}).json == {"updated": 1, "count": 1}
    for bad in ({"ids": [1]}, {"ids": "1", "status": "READ"}, {"ids": [True], "status": "READ"},
                {"ids": [1], "status": "DELETED"}, []):
        assert call("PUT", "/status", json=bad).status_code == 400


def test_inboxes_are_per_contact(app: Flask, alice: Any) -> None:
    store = app.extensions["appinbox_sandbox"]
    store.add_message("alice@example.com", "For Alice")
    phone_user = client_for(app, "2")
    assert phone_user.get(f"{MESSAGES}/count", headers={"ES-TOKEN": token_for(phone_user)}).json == {"count": 2}
    assert alice.get(f"{MESSAGES}/count", headers={"ES-TOKEN": token_for(alice)}).json == {"count": 3}
    # Another contact's token reads its own inbox only.
    listed = phone_user.get(MESSAGES, headers={"ES-TOKEN": token_for(phone_user, True)}).json
    assert "For Alice" not in [m["title"] for m in listed["messages"]]


def test_logout_spends_the_users_tokens(app: Flask, alice: Any) -> None:
    def bye() -> str:
        logout_user()
        return "bye"

    app.add_url_rule("/bye", view_func=bye)
    token = token_for(alice)
    assert alice.get("/bye").status_code == 200
    assert alice.get(f"{MESSAGES}/count", headers={"ES-TOKEN": token}).status_code == 401
    assert alice.post("/appinbox/token", json={}).status_code == 401


# -- the store ---------------------------------------------------------------------------------


def test_add_message(app: Flask) -> None:
    store = app.extensions["appinbox_sandbox"]
    message = store.add_message(" Alice@Example.com ", "  Hi  ", "x" * 5000, "https://example.com/a")
    assert (message.title, len(message.text), message.link, message.read) == ("Hi", 2000, "https://example.com/a",
                                                                              False)
    assert store.inbox("alice@example.com")[0] is message
    assert store.add_message("+380 (50) 123-45-67", "By phone").id in [m.id for m in store.inbox("380501234567")]
    for to, title, link in (("alice@example.com", " ", None), ("", "Hi", None),
                            ("alice@example.com", "Hi", "javascript:alert(1)"),
                            ("alice@example.com", "Hi", "//evil.example/")):
        with pytest.raises(ValueError):
            store.add_message(to, title, "", link)


def test_inboxes_are_keyed_by_field_and_value(app: Flask) -> None:
    """Alice's external id and Mallory's phone have the same digits: two contacts, two inboxes."""
    store = app.extensions["appinbox_sandbox"]
    alice = store.issue(identifiers({"externalCustomerId": "380501234567"}))
    mallory = store.issue(identifiers({"phone": "+380 50 123 45 67"}))
    alice_key, mallory_key = store.redeem(alice), store.redeem(mallory)
    assert alice_key != mallory_key
    store.add_message(alice_key, "Alice's own note")
    assert "Alice's own note" not in [m.title for m in store.inbox(mallory_key)]
    assert store.inbox(alice_key)[0].title == "Alice's own note"


def test_another_user_s_phone_in_a_profile_captures_no_inbox(app: Flask) -> None:
    """Eve types Carol's phone into her own profile and asks for a token first: Carol's inbox stays Carol's."""
    store = app.extensions["appinbox_sandbox"]
    eve = store.redeem(store.issue(identifiers({"email": "eve@example.com", "phone": "+380671112233"})))
    carol = store.redeem(store.issue(identifiers({"email": "carol@example.com", "phone": "+380671112233"})))
    store.add_message(carol, "Carol's note to herself")
    assert "Carol's note to herself" not in [m.title for m in store.inbox(eve)]
    assert store.inbox(carol)[0].title == "Carol's note to herself"
    assert (eve, carol) == ("email:eve@example.com", "email:carol@example.com")


# -- the sandbox page --------------------------------------------------------------------------


def test_page_fills_in_the_users_contact(app: Flask, alice: Any) -> None:
    html = alice.get("/appinbox/sandbox/").get_data(as_text=True)
    assert 'name="to" value="alice@example.com"' in html


def test_page_is_for_logged_in_users_only(app: Flask, alice: Any, anon: Any) -> None:
    store = app.extensions["appinbox_sandbox"]
    token_for(alice)  # alice's inbox now exists
    store.inbox(store.key_for("alice@example.com"))
    page = anon.get("/appinbox/sandbox/")
    assert page.status_code == 401
    assert "alice" not in page.get_data(as_text=True)
    form = {"to": "alice@example.com", "title": "Win", "text": "x", "link": "https://evil.example/"}
    sent = anon.post("/appinbox/sandbox/", data=form, headers={"Sec-Fetch-Site": "same-origin"})
    assert sent.status_code == 401
    assert all(m.title != "Win" for m in store.inbox("alice@example.com"))


def test_page_sends_anonymous_visitors_to_the_login_page(app: Flask, anon: Any) -> None:
    app.add_url_rule("/login", "login", lambda: "log in")
    app.login_manager.login_view = "login"
    page = anon.get("/appinbox/sandbox/")
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/login")


def test_page_shows_and_sends_to_the_users_own_inbox_only(app: Flask, alice: Any) -> None:
    store = app.extensions["appinbox_sandbox"]
    store.add_message("bob@example.com", "For Bob")
    html = alice.get("/appinbox/sandbox/").get_data(as_text=True)
    assert "bob@example.com" not in html
    refused = alice.post("/appinbox/sandbox/", data={"to": "bob@example.com", "title": "Hi Bob"},
                         headers={"Sec-Fetch-Site": "same-origin"})
    assert refused.status_code == 400
    assert [m.title for m in store.inbox("bob@example.com")][0] == "For Bob"


def test_page_adds_a_message_from_this_site_only(app: Flask, alice: Any) -> None:
    store = app.extensions["appinbox_sandbox"]
    form = {"to": "alice@example.com", "title": "<b>Hello</b>", "text": "From the form"}
    assert alice.post("/appinbox/sandbox/", data=form).status_code == 403  # no Origin, no Sec-Fetch-Site
    assert alice.post("/appinbox/sandbox/", data=form, headers={"Origin": "https://evil.example"}).status_code == 403
    assert alice.post("/appinbox/sandbox/", data=form, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert alice.post("/appinbox/sandbox/", data=form, headers={"Origin": "null"}).status_code == 403
    assert "alice@example.com" not in store.inboxes

    response = alice.post("/appinbox/sandbox/", data=form, headers={"Origin": "http://localhost"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/appinbox/sandbox/?sent=1"
    assert store.inbox("alice@example.com")[0].title == "<b>Hello</b>"
    page = alice.get(response.headers["Location"]).get_data(as_text=True)
    assert "Sent to alice@example.com" in page
    assert "<td>email:alice@example.com</td><td>3</td><td>4</td>" in page

    bad = alice.post("/appinbox/sandbox/", data={**form, "link": "javascript:alert(1)"},
                     headers={"Sec-Fetch-Site": "same-origin"})
    assert bad.status_code == 400
    assert "a link must be" in bad.get_data(as_text=True)
    assert "&lt;b&gt;Hello&lt;/b&gt;" in bad.get_data(as_text=True)  # the form is filled in again, escaped


# -- how the client reaches the sandbox --------------------------------------------------------


def _record_api_calls(app: Flask) -> list[tuple[dict[str, str], bytes]]:
    seen: list[tuple[dict[str, str], bytes]] = []

    @app.before_request
    def record() -> None:
        if request.path.startswith(API):
            seen.append((dict(request.headers), request.get_data()))

    return seen


@pytest.mark.parametrize("config", [{"APPINBOX_SANDBOX": True, "APPINBOX_CREATE_CONTACTS": True,
                                     "APPINBOX_SANDBOX_CONTACTS": []}])
def test_configured_api_key_is_never_sent(app: Flask, alice: Any, upstream: responses.RequestsMock) -> None:
    api_key = app.config["APPINBOX_API_KEY"]
    seen = _record_api_calls(app)
    response = alice.post("/appinbox/token", json={})
    assert response.status_code == 200
    sandbox_key = app.extensions["appinbox_sandbox"].api_key
    assert [h["Authorization"] for h, _ in seen] == [basic(sandbox_key, "flask-appinbox")["Authorization"]] * 3
    for headers, body in seen:
        assert api_key not in repr(headers) and api_key.encode() not in body
    assert api_key not in response.get_data(as_text=True)
    assert len(upstream.calls) == 0  # nothing went to the network


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1:1"])
def test_hostile_host_header_cannot_steer_the_client(app: Flask, alice: Any, upstream: responses.RequestsMock,
                                                     host: str) -> None:
    seen = _record_api_calls(app)
    session = alice.get_cookie(app.config["SESSION_COOKIE_NAME"])
    alice.set_cookie(session.key, session.value, domain=host.split(":")[0])  # logged in on that host too
    response = alice.post("/appinbox/token", json={}, headers={"Host": host, "X-Forwarded-Host": host},
                          base_url=f"http://{host}")
    assert response.status_code == 200 and response.json["token"].startswith("sbx_")
    assert [h["Host"] for h, _ in seen] == [SANDBOX_ORIGIN.split("//")[1]]
    assert len(upstream.calls) == 0
    assert app.extensions["appinbox"].client.base_url.startswith(SANDBOX_ORIGIN + "/")


def test_client_used_on_its_own(app: Flask) -> None:
    client = app.extensions["appinbox"].client
    with app.app_context():
        assert client.contact_token(Contact(email="carol@example.com")).startswith("sbx_")


# -- the script --------------------------------------------------------------------------------


def test_loader_builds_no_markup_from_strings() -> None:
    source = LOADER.read_text()
    for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                   'setAttribute("style"', "cssText"):
        assert banned not in source, banned


def test_the_sandbox_credential_is_random_per_app() -> None:
    keys = {make_app({"APPINBOX_SANDBOX": True}).extensions["appinbox_sandbox"].api_key for _ in range(3)}
    assert len(keys) == 3 and all(len(k) >= 32 for k in keys)


def test_unused_tokens_are_bounded(app: Flask, alice: Any) -> None:
    store = app.extensions["appinbox_sandbox"]
    tokens = [token_for(alice, renew=True) for _ in range(50)]
    assert len(store.tokens) == 10  # per contact: the newest ten
    assert alice.get(f"{MESSAGES}/count", headers={"ES-TOKEN": tokens[-1]}).status_code == 200
    assert alice.get(f"{MESSAGES}/count", headers={"ES-TOKEN": tokens[0]}).status_code == 401
    for i in range(1200):
        store.issue([f"user{i}@example.com"])
    assert len(store.tokens) == 1000  # in all
