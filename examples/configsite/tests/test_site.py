"""The site as it runs before its App Inbox key exists: Config reads no APPINBOX_* variable."""
import logging
import os

import pytest
from conftest import log_in

pytestmark = pytest.mark.skipif(
    any(name.startswith("APPINBOX_") for name in os.environ),
    reason="an APPINBOX_* variable is set: these tests are about a site without one")


def test_login_page(app):
    page = app.test_client().get("/auth/login")
    assert page.status_code == 200
    assert "Sign In" in page.text


def test_index_needs_login(app):
    page = app.test_client().get("/index")
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/auth/login")


def test_log_in_and_out(app):
    client = app.test_client()
    assert "Invalid username or password" in client.post(
        "/auth/login", data={"username": "susan", "password": "dog"}, follow_redirects=True).text
    assert log_in(client).headers["Location"] == "/index"
    assert "Hi, susan!" in client.get("/index").text
    client.get("/auth/logout")
    assert client.get("/index").status_code == 302


def test_page_renders_without_app_inbox(app):
    client = app.test_client()
    log_in(client)
    page = client.get("/index").text
    assert "Hi, susan!" in page
    assert "appinbox-bell" not in page
    assert "<script" not in page


def test_token_endpoint_is_disabled(app):
    client = app.test_client()
    log_in(client)
    answer = client.post("/appinbox/token", json={"renew": False}, headers={"Sec-Fetch-Site": "same-origin"})
    assert (answer.status_code, answer.json) == (404, {"error": "disabled"})


def test_one_warning_names_what_to_set(caplog):
    from app import create_app
    from conftest import TestConfig

    with caplog.at_level(logging.WARNING):
        create_app(TestConfig)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "APPINBOX_API_KEY" in warnings[0]
    assert "APPINBOX_SITE_ID" in warnings[0]


def test_site_command(app):
    result = app.test_cli_runner().invoke(args=["users", "list"])
    assert result.exit_code == 0
    assert "susan <susan@example.com>" in result.output


def test_appinbox_check_says_it_is_off(app):
    result = app.test_cli_runner().invoke(args=["appinbox", "check", "--email", "susan@example.com"])
    assert result.exit_code == 1
    assert "App Inbox is off" in result.output
