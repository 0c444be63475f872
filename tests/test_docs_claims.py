"""Claims the documentation makes that the code can be held to: each test reads the claim and checks the behaviour."""
from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import USERS, make_app

from flask_appinbox.testing import FakeEsputnik

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def confval(name: str) -> str:
    """The text of one key's entry on the configuration page, on one line."""
    page = (DOCS / "configuration.rst").read_text()
    entry = page.split(f".. confval:: {name}\n", 1)[1].split(".. confval::", 1)[0]
    return " ".join(entry.split())


@pytest.mark.parametrize("retries", [0, 2])
def test_a_429_is_not_retried(retries: int) -> None:
    assert "A 429 is not retried" in confval("APPINBOX_RETRIES")
    app = make_app({"APPINBOX_RETRIES": retries})
    alice: Any = app.test_client(user=USERS["1"])
    with FakeEsputnik() as esputnik:
        esputnik.fault("rate_limited")
        answer = alice.post("/appinbox/token")
    assert (answer.status_code, answer.json["error"]) == (503, "upstream_rate_limited")
    assert "Retry-After" in answer.headers
    assert len(esputnik.token_requests) == 1  # one attempt, whatever APPINBOX_RETRIES says


@pytest.mark.parametrize("status,attempts", [(502, 3), (503, 3), (504, 3), (500, 1)])
def test_5xx_are_retried_as_documented(status: int, attempts: int) -> None:
    entry = confval("APPINBOX_RETRIES")
    assert "a 502, 503 or 504" in entry and "a 500," in entry.split("Never after", 1)[1]
    alice: Any = make_app({"APPINBOX_RETRIES": 2}).test_client(user=USERS["1"])
    with FakeEsputnik() as esputnik:
        esputnik.fault("server_error", status=status)
        assert alice.post("/appinbox/token").status_code == 502
    assert len(esputnik.token_requests) == attempts


@pytest.mark.parametrize("fault,claim,status,attempts", [
    ("connection", "a connection refused, reset or not made within the connect timeout", 502, 3),
    ("timeout", "Never after a read timeout", 504, 1),
])
def test_connection_errors_are_retried_and_read_timeouts_not_as_documented(fault: str, claim: str, status: int,
                                                                           attempts: int) -> None:
    assert claim in confval("APPINBOX_RETRIES")
    alice: Any = make_app({"APPINBOX_RETRIES": 2}).test_client(user=USERS["1"])
    with FakeEsputnik() as esputnik:
        esputnik.fault(fault)
        assert alice.post("/appinbox/token").status_code == status
    assert len(esputnik.token_requests) == attempts


def test_the_default_timeout_is_as_documented() -> None:
    assert ":default: ``(1.0, 3.0)``" in (DOCS / "configuration.rst").read_text()
    assert make_app({}).extensions["appinbox"].client.timeout == (1.0, 3.0)


def test_the_extras_are_what_the_usage_page_says() -> None:
    usage = " ".join((DOCS / "usage.rst").read_text().split())
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    names = lambda text: {re.split(r"[<>=!~;\[ ]", line.strip())[0].lower()  # noqa: E731
                          for line in text.splitlines() if line.strip()}
    extras = {name: names(value) for name, value in cfg["options.extras_require"].items()}
    core = names(cfg["options"]["install_requires"])
    assert extras["cache"] == {"redis"} and "``cache`` (the Redis client" in usage
    assert "cachelib" in core and "cachelib itself is always installed" in usage
    assert extras["babel"] == {"flask-babel"} and "``babel`` (the widget's language from Flask-Babel)" in usage
    assert extras["test"] == {"responses"} and "``test`` (``responses``" in usage
