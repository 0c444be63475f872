"""A site adds the extension before its key exists, keeps its settings in a Config class, and its tests
switch App Inbox off after create_app(): none of that breaks the site."""
from __future__ import annotations

import logging
import os
from typing import Any

import pytest
from conftest import API_KEY, SITE_ID, USERS
from flask import Flask, render_template_string
from flask_login import FlaskLoginClient, LoginManager

from flask_appinbox import ConfigurationError, FlaskAppInbox
from flask_appinbox.config import BOOLEANS
from flask_appinbox.testing import FakeEsputnik


class Config:
    """A site's settings as the Flask Mega-Tutorial keeps them: read from the environment, None when unset."""

    SECRET_KEY = "test-secret"
    TESTING = True
    APPINBOX_API_KEY = os.environ.get("APPINBOX_TEST_UNSET_API_KEY")
    APPINBOX_SITE_ID = os.environ.get("APPINBOX_TEST_UNSET_SITE_ID")
    APPINBOX_SANDBOX = os.environ.get("APPINBOX_TEST_UNSET_SANDBOX")
    APPINBOX_LANGUAGE = os.environ.get("APPINBOX_TEST_UNSET_LANGUAGE")
    APPINBOX_TIMEOUT = os.environ.get("APPINBOX_TEST_UNSET_TIMEOUT")
    APPINBOX_URL_PREFIX = os.environ.get("APPINBOX_TEST_UNSET_URL_PREFIX")


def create_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.from_object(Config)
    app.config.update(config)
    app.test_client_class = FlaskLoginClient
    LoginManager(app).user_loader(USERS.get)
    FlaskAppInbox(app)

    @app.get("/")
    def home() -> str:
        return render_template_string("<nav>{{ appinbox_bell() }}</nav>{{ appinbox_script() }}")

    return app


def test_none_means_unset_and_gives_the_default() -> None:
    assert all(getattr(Config, key) is None for key in dir(Config) if key.startswith("APPINBOX_"))
    settings = create_app(APPINBOX_API_KEY=API_KEY, APPINBOX_SITE_ID=SITE_ID).extensions["appinbox"].settings
    assert (settings.sandbox, settings.timeout, settings.url_prefix, settings.language) == (
        False, (1.0, 3.0), "/appinbox", None)


def test_without_a_key_app_inbox_is_off_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "flask_appinbox"):
        app = create_app()
    warnings = [r.getMessage() for r in caplog.records if r.name == "flask_appinbox"]
    assert len(warnings) == 1
    for name in ("APPINBOX_API_KEY", "APPINBOX_SITE_ID", "APPINBOX_SANDBOX", "APPINBOX_ENABLED"):
        assert name in warnings[0]
    alice = app.test_client(user=USERS["1"])
    assert alice.get("/").text == "<nav></nav>"
    answer = alice.post("/appinbox/token", json={"renew": False})
    assert (answer.status_code, answer.json) == (404, {"error": "disabled"})
    # Switching it on in a test after init_app cannot conjure a key: still off.
    app.config["APPINBOX_ENABLED"] = True
    assert alice.post("/appinbox/token").status_code == 404


def test_check_without_a_key_exits_non_zero_and_says_why() -> None:
    result = create_app().test_cli_runner().invoke(args=["appinbox", "check", "--email", "a@example.com"])
    assert result.exit_code == 1
    assert "configuration: OK" not in result.output
    assert "none of APPINBOX_API_KEY, APPINBOX_SITE_ID and APPINBOX_SANDBOX is set" in result.output


def test_check_on_a_switched_off_app_prints_no_ok() -> None:
    app = create_app(APPINBOX_API_KEY=API_KEY, APPINBOX_SITE_ID=SITE_ID, APPINBOX_ENABLED=False)
    result = app.test_cli_runner().invoke(args=["appinbox", "check", "--email", "a@example.com"])
    assert result.exit_code == 1
    assert "configuration: OK" not in result.output and "APPINBOX_ENABLED is False" in result.output


@pytest.mark.parametrize("config,key", [
    ({"APPINBOX_API_KEY": API_KEY}, "APPINBOX_SITE_ID"),  # half an account
    ({"APPINBOX_SITE_ID": SITE_ID}, "APPINBOX_API_KEY"),
    ({"APPINBOX_SITE_ID": SITE_ID, "APPINBOX_ENABLED": False}, "APPINBOX_API_KEY"),  # ...even when off
    ({"APPINBOX_ENABLED": True}, "APPINBOX_API_KEY"),  # switched on by the site, with no key
    ({"APPINBOX_ENABLED": "yes"}, "APPINBOX_API_KEY"),
    ({"APPINBOX_API_KEY": " padded ", "APPINBOX_SITE_ID": SITE_ID}, "APPINBOX_API_KEY"),  # malformed
    ({"APPINBOX_API_KEY": API_KEY, "APPINBOX_SITE_ID": "123"}, "APPINBOX_SITE_ID"),
])
def test_what_stays_an_error(config: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        create_app(**config)
    assert info.value.key == key


def test_switched_off_by_the_site_gives_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "flask_appinbox"):
        create_app(APPINBOX_ENABLED="false")
    assert not [r for r in caplog.records if r.name == "flask_appinbox"]


def test_the_sandbox_alone_is_enough() -> None:
    app = create_app(APPINBOX_SANDBOX="yes")
    page = app.test_client(user=USERS["1"]).get("/").text
    assert '<div id="appinbox-bell"></div>' in page and "sandbox/loader.js" in page


@pytest.mark.parametrize("spelling", sorted(BOOLEANS) + [s.upper() for s in BOOLEANS] + [" On ", True, False, 1, 0])
def test_every_boolean_key_takes_the_documented_spellings(spelling: Any) -> None:
    expected = BOOLEANS[spelling.strip().lower()] if isinstance(spelling, str) else bool(spelling)
    keys = ["APPINBOX_RECOMS", "APPINBOX_TRACKING", "APPINBOX_CREATE_CONTACTS", "APPINBOX_GUARD", "APPINBOX_SANDBOX"]
    app = create_app(APPINBOX_API_KEY=API_KEY, APPINBOX_SITE_ID=SITE_ID, APPINBOX_ENABLED=spelling,
                     **{key: spelling for key in keys})
    s = app.extensions["appinbox"].settings
    assert [s.recoms, s.tracking, s.create_contacts, s.guard, s.sandbox, s.enabled] == [expected] * 6


def test_the_configuration_page_lists_the_spellings() -> None:
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "configuration.rst").read_text()
    assert all(f"``{spelling}``" in page for spelling in BOOLEANS)


def test_enabled_is_read_at_use() -> None:
    app = create_app(APPINBOX_API_KEY=API_KEY, APPINBOX_SITE_ID=SITE_ID)
    alice = app.test_client(user=USERS["1"])
    with FakeEsputnik() as esputnik:
        esputnik.token("tok-1")
        assert alice.post("/appinbox/token").json == {"token": "tok-1"}
        app.config["APPINBOX_ENABLED"] = False  # a test fixture, after create_app()
        answer = alice.post("/appinbox/token")
        assert (answer.status_code, answer.json) == (404, {"error": "disabled"})
        assert alice.get("/").text == "<nav></nav>"
        result = app.test_cli_runner().invoke(args=["appinbox", "snippet"])
        assert result.output.strip() == "<!-- App Inbox is disabled -->"
        app.config["APPINBOX_ENABLED"] = "on"  # and back
        assert alice.post("/appinbox/token").json == {"token": "tok-1"}
        assert "appinbox-bell" in alice.get("/").text


def test_a_bad_enabled_at_use_keeps_the_value_init_app_read(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(APPINBOX_API_KEY=API_KEY, APPINBOX_SITE_ID=SITE_ID)
    app.config["APPINBOX_ENABLED"] = "perhaps"
    with FakeEsputnik() as esputnik:
        esputnik.token("tok-1")
        assert app.test_client(user=USERS["1"]).post("/appinbox/token").json == {"token": "tok-1"}
    assert "APPINBOX_ENABLED was changed to a value that is not a boolean" in caplog.text
