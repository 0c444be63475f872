from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
import responses
from flask import Flask
from flask_login import FlaskLoginClient, LoginManager, UserMixin

from flask_appinbox import FlaskAppInbox

# Browser tests (tests/browser, tests/shapes) share one Chromium: Playwright's sync API
# allows one instance per process.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

API_KEY = "sk-live-0123456789abcdefSECRET"
SITE_ID = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
TOKEN_URL = "https://esputnik.com/api/v1/auth/contact/token"
CONTACT_URL = "https://esputnik.com/api/v1/contact"


class User(UserMixin):
    def __init__(self, id: str, email: str | None = None, phone: str | None = None,
                 external_customer_id: str | None = None) -> None:
        self.id = id
        self.email = email
        self.phone = phone
        self.external_customer_id = external_customer_id


USERS = {
    "1": User("1", email="alice@example.com"),
    "2": User("2", phone="+380 50 123 45 67"),
    "3": User("3"),
}


def make_app(config: dict[str, Any] | None = None, extension: FlaskAppInbox | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SECRET_KEY="test-secret",
        APPINBOX_API_KEY=API_KEY,
        APPINBOX_SITE_ID=SITE_ID,
    )
    app.config.update(config or {})
    app.test_client_class = FlaskLoginClient
    login = LoginManager(app)
    login.user_loader(USERS.get)
    (extension or FlaskAppInbox()).init_app(app)
    return app


@pytest.fixture
def config() -> dict[str, Any]:
    """Override in a module (or parametrize) to change the app's configuration."""
    return {}


@pytest.fixture
def app(config: dict[str, Any]) -> Flask:
    return make_app(config)


@pytest.fixture
def alice(app: Flask) -> Any:
    return app.test_client(user=USERS["1"])


@pytest.fixture
def anon(app: Flask) -> Any:
    return app.test_client()


@pytest.fixture
def upstream() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; with CI=true the browser tests may not skip", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed (pip install -r tests/requirements.txt)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
