"""init_app validates every key and names the one that is wrong."""
from __future__ import annotations

from typing import Any

import pytest
from conftest import make_app
from flask import Flask

from flask_appinbox import ConfigurationError


@pytest.mark.parametrize("key,value", [
    ("APPINBOX_API_KEY", None),
    ("APPINBOX_API_KEY", ""),
    ("APPINBOX_API_KEY", " padded "),
    ("APPINBOX_API_KEY", "line\nbreak"),
    ("APPINBOX_API_KEY", ["x"]),
    ("APPINBOX_API_KEY", "sk-\u20ac-euro-sign"),
    ("APPINBOX_SITE_ID", None),
    ("APPINBOX_SITE_ID", ""),
    ("APPINBOX_SITE_ID", "not-hex-zzzz"),
    ("APPINBOX_SITE_ID", "0" * 31),
    ("APPINBOX_SITE_ID", "0" * 33),
    ("APPINBOX_SITE_ID", "<script>"),
    ("APPINBOX_LANGUAGE", "english"),
    ("APPINBOX_LANGUAGE", "xx"),
    ("APPINBOX_LANGUAGE", ""),
    ("APPINBOX_LANGUAGE", "e"),
    ("APPINBOX_LANGUAGE", "en'</script>"),
    ("APPINBOX_LANGUAGE", 12),
    ("APPINBOX_RECOMS", "maybe"),
    ("APPINBOX_RECOMS", 2),
    ("APPINBOX_TRACKING", "null"),
    ("APPINBOX_API_URL", "esputnik.com/api"),
    ("APPINBOX_API_URL", "ftp://esputnik.com/api"),
    ("APPINBOX_API_URL", "https://esputnik.com/api?x=1"),
    ("APPINBOX_SCRIPT_URL", "https://x.example/{site}.js"),
    ("APPINBOX_SCRIPT_URL", "javascript:alert(1)"),
    ("APPINBOX_SCRIPT_URL", "//cdn.example/x.js"),
    ("APPINBOX_SCRIPT_URL", ""),
    ("APPINBOX_SCRIPT_URL", "/\\evil.example/x.js"),
    ("APPINBOX_SCRIPT_URL", "https://cdn.example\\@evil.example/x.js"),
    ("APPINBOX_URL_PREFIX", "appinbox"),
    ("APPINBOX_URL_PREFIX", "/app inbox"),
    ("APPINBOX_URL_PREFIX", "/a/../b"),
    ("APPINBOX_URL_PREFIX", "/.."),
    ("APPINBOX_URL_PREFIX", "/./appinbox"),
    ("APPINBOX_TRUSTED_ORIGINS", "*"),
    ("APPINBOX_TRUSTED_ORIGINS", ["https://shop.example/path"]),
    ("APPINBOX_TRUSTED_ORIGINS", ["shop.example"]),
    ("APPINBOX_TRUSTED_ORIGINS", ["https://user@shop.example"]),
    ("APPINBOX_TRUSTED_ORIGINS", ["ftp://shop.example"]),
    ("APPINBOX_TRUSTED_ORIGINS", [None]),
    ("APPINBOX_TRUSTED_ORIGINS", 1),
    ("APPINBOX_TRUSTED_ORIGINS", [("https", "shop.example", 443)]),
    ("APPINBOX_TIMEOUT", 0),
    ("APPINBOX_TIMEOUT", -1),
    ("APPINBOX_TIMEOUT", "5"),
    ("APPINBOX_TIMEOUT", True),
    ("APPINBOX_TIMEOUT", float("nan")),
    ("APPINBOX_TIMEOUT", 1000),
    ("APPINBOX_TIMEOUT", (1, 0)),
    ("APPINBOX_TIMEOUT", [1, 2, 3]),
    ("APPINBOX_RETRIES", -1),
    ("APPINBOX_RETRIES", 1.5),
    ("APPINBOX_RETRIES", 50),
    ("APPINBOX_GUARD", "sometimes"),
    ("APPINBOX_MAX_CONCURRENT", 0),
    ("APPINBOX_ENABLED", "nope"),
    ("APPINBOX_SANDBOX", 2),
    ("APPINBOX_SANDBOX", "enabled"),
    ("APPINBOX_CREATE_CONTACTS", "y"),
    ("APPINBOX_TOKEN_CACHE_TTL", -5),
    ("APPINBOX_TOKEN_CACHE_TTL", "60"),
    ("APPINBOX_TOKEN_CACHE_TTL", 86401),
    ("APPINBOX_MAX_CONCURRENT", 0),
    ("APPINBOX_SANDBOX_CONTACTS", "a@b.c"),
    ("APPINBOX_MAX_CONCURRENT", 100_001),
])
def test_bad_values_name_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_app({key: value})
    assert info.value.key == key
    assert str(info.value).startswith(key)


def test_api_key_is_never_echoed() -> None:
    with pytest.raises(ConfigurationError) as info:
        make_app({"APPINBOX_API_KEY": "sk-has\nnewline"})
    assert "sk-has" not in str(info.value)


def test_missing_required_keys() -> None:
    from flask import Flask

    from flask_appinbox import FlaskAppInbox

    app = Flask(__name__)
    app.config["APPINBOX_SITE_ID"] = "0" * 32
    with pytest.raises(ConfigurationError, match="APPINBOX_API_KEY"):
        FlaskAppInbox(app)
    app = Flask(__name__)
    app.config["APPINBOX_API_KEY"] = "k"
    with pytest.raises(ConfigurationError, match="APPINBOX_SITE_ID"):
        FlaskAppInbox(app)


@pytest.mark.parametrize("key,value,attribute,expected", [
    ("APPINBOX_SITE_ID", "0A1B2C3D4E5F60718293A4B5C6D7E8F9", "site_id", "0A1B2C3D4E5F60718293A4B5C6D7E8F9"),
    ("APPINBOX_SITE_ID", "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9", "site_id", "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"),
    ("APPINBOX_LANGUAGE", "uk", "language", "uk"),
    ("APPINBOX_LANGUAGE", "pt_BR", "language", "pt"),
    ("APPINBOX_LANGUAGE", "pt-BR", "language", "pt"),
    ("APPINBOX_LANGUAGE", "zh-Hant-TW", "language", "zh"),
    ("APPINBOX_RECOMS", True, "recoms", True),
    ("APPINBOX_TRACKING", False, "tracking", False),
    ("APPINBOX_SCRIPT_URL", "/static/es.js", "script_url", "/static/es.js"),
    ("APPINBOX_SCRIPT_URL", "https://cdn.example/{site_id}.js", "script_url", "https://cdn.example/{site_id}.js"),
    ("APPINBOX_URL_PREFIX", "/", "url_prefix", ""),
    ("APPINBOX_URL_PREFIX", "/inbox/", "url_prefix", "/inbox"),
    ("APPINBOX_TIMEOUT", 1, "timeout", (1.0, 1.0)),
    ("APPINBOX_TIMEOUT", (0.5, 2), "timeout", (0.5, 2.0)),
    ("APPINBOX_TIMEOUT", [1, 3], "timeout", (1.0, 3.0)),
    ("APPINBOX_RETRIES", 0, "retries", 0),
    ("APPINBOX_GUARD", "false", "guard", False),
    ("APPINBOX_MAX_CONCURRENT", 16, "max_concurrent", 16),
    ("APPINBOX_MAX_CONCURRENT", 100_000, "max_concurrent", 100_000),
    ("APPINBOX_TOKEN_CACHE_TTL", 30.5, "token_cache_ttl", 30.5),
    ("APPINBOX_TOKEN_CACHE_TTL", 86400, "token_cache_ttl", 86400.0),
    ("APPINBOX_API_KEY", 1234567890, "api_key", "1234567890"),  # from_prefixed_env() makes all-digit values ints
])
def test_good_values(key: str, value: Any, attribute: str, expected: Any) -> None:
    settings = make_app({key: value}).extensions["appinbox"].settings
    assert getattr(settings, attribute) == expected
    assert type(getattr(settings, attribute)) is type(expected)


def test_a_language_callable_is_kept() -> None:
    pick = lambda: "de"  # noqa: E731
    assert make_app({"APPINBOX_LANGUAGE": pick}).extensions["appinbox"].settings.language is pick


def test_from_prefixed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from flask import Flask

    from flask_appinbox import FlaskAppInbox

    monkeypatch.setenv("FLASK_APPINBOX_API_KEY", "env-key")
    monkeypatch.setenv("FLASK_APPINBOX_SITE_ID", "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9")
    monkeypatch.setenv("FLASK_APPINBOX_TIMEOUT", "2.5")
    monkeypatch.setenv("FLASK_APPINBOX_RECOMS", "true")
    app = Flask(__name__)
    app.config.from_prefixed_env()
    FlaskAppInbox(app)
    settings = app.extensions["appinbox"].settings
    assert (settings.timeout, settings.recoms) == ((2.5, 2.5), True)


def test_sandbox_makes_key_and_site_optional() -> None:
    from flask import Flask

    from flask_appinbox import FlaskAppInbox

    app = Flask(__name__)
    app.config["APPINBOX_SANDBOX"] = True
    FlaskAppInbox(app)
    assert app.extensions["appinbox"].settings.sandbox


def test_the_timeout_pair_reaches_the_client() -> None:
    app = make_app({"APPINBOX_TIMEOUT": [0.5, 2]})  # a JSON list, as from_prefixed_env() gives
    assert app.extensions["appinbox"].client.timeout == (0.5, 2.0)
    assert make_app().extensions["appinbox"].client.timeout == (1.0, 3.0)


@pytest.mark.parametrize("value", [
    "https://www.shop.example http://localhost:5000",  # FLASK_APPINBOX_TRUSTED_ORIGINS from the shell
    "https://www.shop.example,http://localhost:5000",
    ["https://WWW.shop.example:443/", "http://localhost:5000"],
])
def test_trusted_origins_forms(value: Any) -> None:
    settings = make_app({"APPINBOX_TRUSTED_ORIGINS": value}).extensions["appinbox"].settings
    assert settings.trusted_origins == {("https", "www.shop.example", 443), ("http", "localhost", 5000)}


@pytest.mark.parametrize("value,expected", [
    ("True", True), ("true", True), ("1", True), (1, True), (True, True),
    ("False", False), ("false", False), ("0", False), (0, False), (False, False),
])
def test_booleans_as_the_shell_writes_them(monkeypatch: pytest.MonkeyPatch, value: Any, expected: bool) -> None:
    settings = make_app({"APPINBOX_CREATE_CONTACTS": value, "APPINBOX_RECOMS": value}).extensions["appinbox"].settings
    assert settings.create_contacts is expected and settings.recoms is expected
    # What export FLASK_APPINBOX_SANDBOX=... gives: the text, or what from_prefixed_env() parses it to.
    monkeypatch.setenv("FLASK_APPINBOX_SANDBOX", str(value).lower() if isinstance(value, bool) else str(value))
    monkeypatch.setenv("FLASK_APPINBOX_API_KEY", "key")
    monkeypatch.setenv("FLASK_APPINBOX_SITE_ID", "0" * 32)
    from flask import Flask

    app = Flask(__name__)
    app.config.from_prefixed_env()
    from flask_appinbox import FlaskAppInbox

    FlaskAppInbox(app)
    assert app.extensions["appinbox"].settings.sandbox is expected


def test_a_bad_boolean_says_how_to_fix_it() -> None:
    with pytest.raises(ConfigurationError) as info:
        make_app({"APPINBOX_SANDBOX": "sure"})
    assert "export FLASK_APPINBOX_SANDBOX=true" in str(info.value)
    assert "app.config['APPINBOX_SANDBOX'] = True" in str(info.value)


def test_a_missing_key_says_how_to_set_it_and_how_to_try_the_sandbox() -> None:
    with pytest.raises(ConfigurationError) as info:
        make_app({"APPINBOX_API_KEY": None})
    assert "FLASK_APPINBOX_API_KEY" in str(info.value) and "export FLASK_APPINBOX_SANDBOX=true" in str(info.value)


def test_unprefixed_environment_variables_are_named(monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("APPINBOX_SANDBOX", "True")  # Flask reads FLASK_APPINBOX_SANDBOX, not this
    make_app()
    assert "APPINBOX_SANDBOX is not read" in caplog.text and "FLASK_APPINBOX_SANDBOX" in caplog.text


def test_an_environment_variable_the_app_read_itself_is_not_warned(monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("APPINBOX_LANGUAGE", "de")  # the demo reads plain APPINBOX_* variables itself
    make_app({"APPINBOX_LANGUAGE": "de"})
    assert "is not read" not in caplog.text


@pytest.mark.parametrize("name,near", [("APIKEY", "APPINBOX_API_KEY"), ("SANBOX", "APPINBOX_SANDBOX"),
                                       ("TIMEOUTS", "APPINBOX_TIMEOUT")])
def test_a_misspelled_key_names_the_nearest_known_one(monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture, name: str, near: str) -> None:
    monkeypatch.setenv(f"FLASK_APPINBOX_{name}", "x")
    app = Flask(__name__)
    app.config.from_prefixed_env()
    from flask_appinbox import FlaskAppInbox

    app.config["APPINBOX_SITE_ID"] = "0" * 32
    with pytest.raises(ConfigurationError) as info:  # the API key is missing: the error names the typo too
        FlaskAppInbox(app)
    assert f"APPINBOX_{name} is not a known key: did you mean {near}?" in str(info.value)
    app.config.update(APPINBOX_SANDBOX=True)
    FlaskAppInbox(app)
    assert f"APPINBOX_{name} is not a Flask-AppInbox setting: did you mean {near}?" in caplog.text


def test_switched_off_needs_no_account() -> None:
    app = make_app({"APPINBOX_ENABLED": False, "APPINBOX_API_KEY": None, "APPINBOX_SITE_ID": None})
    client = app.test_client()
    assert client.post("/appinbox/token").json == {"error": "disabled"}
    with app.test_request_context("/"):
        from flask import render_template_string

        assert render_template_string("{{ appinbox_bell() }}{{ appinbox_script() }}") == ""


# -- issue 24: no secret in any message, plain http warned ------------------------------------


def test_credentials_in_the_api_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigurationError) as info:
        make_app({"APPINBOX_API_URL": "https://user:hunter2pass@esputnik.com/api"})
    assert info.value.key == "APPINBOX_API_URL"
    assert "hunter2pass" not in str(info.value) and "user:hunter" not in str(info.value)


@pytest.mark.parametrize("url,warned", [
    ("http://esputnik.example/api", True),
    ("http://10.0.0.5:8080/api", True),
    ("http://127.0.0.1:5000/api", False),
    ("http://127.8.9.10/api", False),
    ("http://[::1]:5000/api", False),
    ("http://localhost:5000/api", False),
    ("https://esputnik.example/api", False),
])
def test_plain_http_api_url_is_warned_unless_loopback(url: str, warned: bool,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    make_app({"APPINBOX_API_URL": url})
    found = [r for r in caplog.records if "in clear" in r.getMessage()]
    assert bool(found) is warned


def test_bad_user_languages_cannot_silence_other_warnings(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(1001):  # what snippet._language logs for each bad language a user sends
        app.extensions["appinbox"].warn_once(f"language 'bad-{i}'", "language %r is not a two-letter code", i)
    assert sum("is not a two-letter" in r.getMessage() for r in caplog.records) == 100  # capped, per kind
    app.extensions["appinbox"].warn_once("no-contact", "another kind of warning")
    assert "another kind of warning" in caplog.text


@pytest.mark.parametrize("key", ["APPINBOX_SITE_ID", "APPINBOX_LANGUAGE", "APPINBOX_TRUSTED_ORIGINS",
                                 "APPINBOX_URL_PREFIX", "APPINBOX_RECOMS", "APPINBOX_TIMEOUT", "APPINBOX_RETRIES",
                                 "APPINBOX_API_URL", "APPINBOX_SCRIPT_URL", "APPINBOX_ENABLED"])
@pytest.mark.parametrize("pasted", [lambda k: k, lambda k: [k]])
def test_an_api_key_pasted_into_another_key_is_never_echoed(key: str, pasted: Any) -> None:
    secret = "sk-live-pasted-9f8e7d6c5b4a"
    with pytest.raises(ConfigurationError) as info:
        make_app({key: pasted(secret)})
    assert info.value.key == key
    assert "pasted-9f8e" not in str(info.value) and "9f8e7d" not in str(info.value)
