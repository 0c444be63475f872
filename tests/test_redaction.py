"""Secrets and personal data stay out of logs, answers and headers, whatever eSputnik does.

Every log record of every level (the package's logger and the root) is
searched: message, arguments, exception text, extra attributes. The API key and
the token never appear; the contact's email and phone appear masked or not at all.
"""
from __future__ import annotations

import logging
import traceback
from typing import Any

import pytest
import requests
import responses
from conftest import API_KEY, CONTACT_URL, TOKEN_URL, USERS, make_app

from flask_appinbox import Contact, FlaskAppInbox
from flask_appinbox.contact import mask_email, mask_phone

TOKEN = "tok-Zq9x-SECRET-contact-token"
EMAIL = "Alice.Secret@Example.COM"
EMAIL_NORMAL = "alice.secret@example.com"
PHONE = "+380 50 765 43 21"
PHONE_NORMAL = "380507654321"
EMAIL_MASKED = "a***@example.com"
PHONE_MASKED = "***21"

SECRETS = [API_KEY, TOKEN, EMAIL, EMAIL_NORMAL, PHONE, PHONE_NORMAL]

# name -> (token replies in order, contact replies, config); the last token reply repeats.
Reply = dict[str, Any]
FAULTS: dict[str, tuple[list[Reply], list[Reply], dict[str, Any]]] = {
    "success": ([{"json": {"token": TOKEN}}], [], {}),
    "unknown contact": ([{"json": {"token": ""}}], [], {}),
    "create contact": ([{"json": {"token": ""}}, {"json": {"token": TOKEN}}], [{"json": {"id": 7}}],
                       {"APPINBOX_CREATE_CONTACTS": True}),
    "create contact refused": ([{"json": {"token": ""}}],
                               [{"status": 400, "json": {"error": f"bad email {EMAIL_NORMAL}", "key": API_KEY}}],
                               {"APPINBOX_CREATE_CONTACTS": True}),
    "400 echoing key and email": ([{"status": 400, "json": {"error": f"{API_KEY} / {EMAIL_NORMAL}"}}], [], {}),
    "401": ([{"status": 401, "body": f"Unauthorized: {API_KEY}"}], [], {}),
    "403": ([{"status": 403}], [], {}),
    "404": ([{"status": 404, "body": PHONE_NORMAL}], [], {}),
    "429": ([{"status": 429}], [], {}),
    "429 Retry-After 120": ([{"status": 429, "headers": {"Retry-After": "120"}}], [], {}),
    "429 Retry-After 0": ([{"status": 429, "headers": {"Retry-After": "0"}}], [], {}),
    "500 echoing the key": ([{"status": 500, "body": f"Traceback ... password={API_KEY}"}], [], {}),
    "503": ([{"status": 503}], [], {}),
    "HTML": ([{"status": 200, "body": f"<html>{API_KEY} {EMAIL_NORMAL}</html>", "content_type": "text/html"}],
             [], {}),
    "JSON without token": ([{"json": {"id": 1, "email": EMAIL_NORMAL, "echo": API_KEY}}], [], {}),
    "token not a string": ([{"json": {"token": {"value": TOKEN}}}], [], {}),
    "token a number": ([{"json": {"token": 12345}}], [], {}),
    "timeout": ([{"body": requests.exceptions.ReadTimeout(f"read timed out, auth {API_KEY}")}], [], {}),
    "connection error with the key": (
        [{"body": requests.exceptions.ConnectionError(
            f"refused: https://flask-appinbox:{API_KEY}@esputnik.com/ for {EMAIL_NORMAL}")}], [], {}),
    "redirect": ([{"status": 302, "headers": {"Location": f"https://evil.example/?k={API_KEY}"}}], [], {}),
}

ANSWERS = {
    "success": (200, "token"), "unknown contact": (404, "contact_not_found"), "create contact": (200, "token"),
    "create contact refused": (502, "upstream_rejected"), "400 echoing key and email": (502, "upstream_rejected"),
    "401": (502, "upstream_rejected"), "403": (502, "upstream_rejected"), "404": (502, "upstream_error"),
    "429": (503, "upstream_rate_limited"), "429 Retry-After 120": (503, "upstream_rate_limited"),
    "429 Retry-After 0": (503, "upstream_rate_limited"), "500 echoing the key": (502, "upstream_error"),
    "503": (502, "upstream_error"), "HTML": (502, "upstream_error"), "JSON without token": (502, "upstream_error"),
    "token not a string": (502, "upstream_error"), "token a number": (502, "upstream_error"),
    "timeout": (504, "upstream_timeout"), "connection error with the key": (502, "upstream_error"),
    "redirect": (502, "upstream_error"),
}


def record_text(record: logging.LogRecord) -> str:
    """Everything a handler could print: message, arguments, exception, extra attributes."""
    parts = [record.getMessage(), str(record.msg), repr(record.args), record.exc_text or "",
             record.stack_info or "", repr(record.__dict__)]
    if record.args:
        parts += [str(arg) for arg in (record.args if isinstance(record.args, tuple) else [record.args])]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


def assert_clean(text: str, where: str, allowed: tuple[str, ...] = ()) -> None:
    folded = text.lower()
    for secret in SECRETS:
        if secret not in allowed:
            assert secret.lower() not in folded, f"{secret!r} in {where}: {text[:500]!r}"


def assert_clean_records(records: list[logging.LogRecord]) -> None:
    for record in records:
        assert_clean(record_text(record), f"log record {record.name}:{record.levelname}")


@pytest.fixture
def capture(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="flask_appinbox")
    return caplog


def contact_app(config: dict[str, Any] | None = None) -> Any:
    ext = FlaskAppInbox()
    ext.contact_loader(lambda user: Contact(email=EMAIL, phone=PHONE, external_customer_id="cust-1"))
    return make_app(config, extension=ext)


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault_matrix_leaks_nothing(capture: pytest.LogCaptureFixture, name: str) -> None:
    token_replies, contact_replies, config = FAULTS[name]
    app = contact_app(config)
    client = app.test_client(user=USERS["1"])
    with responses.RequestsMock(assert_all_requests_are_fired=False) as upstream:
        for reply in token_replies:
            upstream.post(TOKEN_URL, **reply)
        for reply in contact_replies:
            upstream.post(CONTACT_URL, **reply)
        answers = [client.post("/appinbox/token", json={"renew": renew}) for renew in (False, True)]
        assert upstream.calls, "eSputnik was asked"
        for call in upstream.calls:  # the key goes in the Authorization header only
            assert API_KEY not in (call.request.url or "") and API_KEY not in str(call.request.body)
    status, error = ANSWERS[name]
    assert (answers[0].status_code, (answers[0].json.get("error") or "token")) == (status, error)
    for response in answers:
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        allowed = (TOKEN,) if response.status_code == 200 else ()
        assert_clean(response.get_data(as_text=True), f"{name} answer body", allowed)
        assert_clean(headers, f"{name} answer headers")
        assert response.headers["Cache-Control"] == "no-store"
    if status == 200:
        assert answers[0].json == {"token": TOKEN}
    assert any(r.name == "flask_appinbox" for r in capture.records), "the call left a trace to search"
    assert_clean_records(capture.records)


def test_a_hang_refused_by_the_guard_leaks_nothing(capture: pytest.LogCaptureFixture) -> None:
    app = contact_app({"APPINBOX_RETRIES": 0})
    guard = app.extensions["appinbox"].guard
    now = [0.0]
    guard.clock = lambda: now[0]
    client = app.test_client(user=USERS["1"])
    with responses.RequestsMock(assert_all_requests_are_fired=False) as upstream:
        def hang(request: Any) -> Any:
            now[0] += 3.0  # a whole read timeout, nothing answered: a hang
            raise requests.exceptions.ReadTimeout(f"timed out, auth={API_KEY}")

        upstream.add_callback(responses.POST, TOKEN_URL, callback=hang)
        answers = [client.post("/appinbox/token").json for _ in range(2)]
    assert answers == [{"error": "upstream_timeout"}, {"error": "upstream_unavailable"}]
    assert any("hangs" in r.getMessage() for r in capture.records)
    assert_clean_records(capture.records)


def test_an_unexpected_exception_is_flask_s_to_log_not_an_upstream_error(capture: pytest.LogCaptureFixture) -> None:
    """Not a requests exception: a bug of ours or of a library below us. Flask logs it (its message is
    the raising library's); the endpoint answers 503 internal_error, never 502 upstream_error, and
    nothing of ours logs the key or the contact."""
    app = contact_app()
    app.testing = False
    with responses.RequestsMock(assert_all_requests_are_fired=False) as upstream:
        upstream.post(TOKEN_URL, body=AttributeError("'HTTPResponse' object has no attribute 'x'"))
        response = app.test_client(user=USERS["1"]).post("/appinbox/token")
    assert (response.status_code, response.json) == (503, {"error": "internal_error"})
    assert any(r.levelno >= logging.ERROR and r.exc_info and r.exc_info[0] is AttributeError
               for r in capture.records)
    assert not any("upstream_error" in r.getMessage() for r in capture.records)
    assert_clean_records(capture.records)


def test_invalid_contact_is_logged_without_its_value(capture: pytest.LogCaptureFixture) -> None:
    ext = FlaskAppInbox()
    ext.contact_loader(lambda user: {"email": f"{EMAIL_NORMAL} {EMAIL_NORMAL}", "phone": f"{PHONE_NORMAL}99999"})
    app = make_app(extension=ext)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as upstream:
        response = app.test_client(user=USERS["1"]).post("/appinbox/token")
    assert response.status_code == 404 and not upstream.calls
    assert any("not valid" in r.getMessage() for r in capture.records)
    assert_clean_records(capture.records)


# -- masking ------------------------------------------------------------------------------

def test_contact_repr_is_masked() -> None:
    contact = Contact(email=EMAIL, phone=PHONE, external_customer_id="cust-1")
    assert repr(contact) == f"Contact(email={EMAIL_MASKED!r}, phone={PHONE_MASKED!r}, external_customer_id='cust-1')"
    assert str(contact) == repr(contact) == contact.masked()
    as_logged = logging.LogRecord("flask_appinbox", logging.INFO, __file__, 0, "%s|%r", (contact, contact), None)
    assert as_logged.getMessage() == f"{contact}|{contact!r}" == f"{contact.masked()}|{contact.masked()}"
    assert_clean(repr(contact), "repr(Contact)")
    assert mask_email(EMAIL_NORMAL) == EMAIL_MASKED
    assert mask_phone(PHONE_NORMAL) == PHONE_MASKED


def test_created_contact_is_logged_masked(capture: pytest.LogCaptureFixture) -> None:
    app = contact_app({"APPINBOX_CREATE_CONTACTS": True})
    with responses.RequestsMock(assert_all_requests_are_fired=False) as upstream:
        upstream.post(TOKEN_URL, json={"token": ""})
        upstream.post(TOKEN_URL, json={"token": TOKEN})
        upstream.post(CONTACT_URL, json={"id": 7})
        assert app.test_client(user=USERS["1"]).post("/appinbox/token").json == {"token": TOKEN}
    (created,) = [r for r in capture.records if r.getMessage().startswith("created contact")]
    assert created.levelno == logging.INFO and created.name == "flask_appinbox"
    message = created.getMessage()
    assert EMAIL_MASKED in message and PHONE_MASKED in message and "cust-1" in message
    assert_clean_records([created])


def test_client_repr_and_errors_hold_no_key() -> None:
    from flask_appinbox import EsputnikClient, UpstreamError

    client = EsputnikClient(API_KEY, timeout=0.5, retries=0)
    assert API_KEY not in repr(client) and API_KEY not in str(vars(client).get("base_url"))
    with responses.RequestsMock() as upstream:
        upstream.post(TOKEN_URL, body=requests.exceptions.ConnectionError(f"refused {API_KEY}"))
        with pytest.raises(UpstreamError) as caught:
            client.contact_token(Contact(email=EMAIL))
    shown = "".join(traceback.format_exception(caught.value))  # the whole chain, as a log would show it
    assert "cannot reach eSputnik: ConnectionError" in shown
    assert API_KEY not in shown and API_KEY not in repr(caught.value)
    client.close()


def test_config_and_snippet_never_show_the_key(capture: pytest.LogCaptureFixture) -> None:
    app = contact_app()

    @app.get("/page")
    def page() -> str:
        from flask import render_template_string

        return render_template_string("{{ appinbox_script() }}{{ appinbox_bell() }}")

    response = app.test_client(user=USERS["1"]).get("/page")
    assert "eS('init'" in response.get_data(as_text=True)
    assert API_KEY not in response.get_data(as_text=True)
    assert API_KEY not in repr(app.extensions["appinbox"].settings)
    assert_clean_records(capture.records)
