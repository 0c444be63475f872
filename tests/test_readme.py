"""The README's commands and quickstart work as written."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask_login import FlaskLoginClient, UserMixin

from flask_appinbox.testing import FakeEsputnik

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.rst").read_text()


def python_blocks() -> list[str]:
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", README)
    return [re.sub(r"^    ", "", block, flags=re.M) for block in blocks]


def test_the_two_commands_come_first() -> None:
    commands = re.findall(r"::\n\n    (.+)\n", README)
    assert "flask --app examples/demo run" in commands[0]
    assert commands[1].endswith("python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text()
    lines = [line for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert lines[-1].strip() == commands[1]  # CI runs the README's test command, last: its summary closes CI


def test_quickstart_gives_a_working_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    quickstart = next(b for b in python_blocks() if "def create_app" in b)
    monkeypatch.setenv("FLASK_APPINBOX_API_KEY", "readme-key")
    monkeypatch.setenv("FLASK_APPINBOX_SITE_ID", "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9")
    monkeypatch.setenv("FLASK_SECRET_KEY", "readme-secret")
    namespace: dict[str, Any] = {"__name__": "__main__"}  # Flask(__name__) needs a module with a path
    exec(compile(quickstart, "README.rst", "exec"), namespace)  # noqa: S102 - our own README

    class User(UserMixin):
        id = 7
        email = "Reader@Example.com"

    namespace["login_manager"].user_loader(lambda user_id: User() if user_id == "7" else None)
    app = namespace["create_app"]()
    app.test_client_class = FlaskLoginClient
    with FakeEsputnik() as esputnik:
        esputnik.token("from-the-readme")
        response = app.test_client(user=User()).post("/appinbox/token")
    assert response.json == {"token": "from-the-readme"}
    assert esputnik.token_requests == [{"email": "reader@example.com", "externalCustomerId": "7"}]


@pytest.mark.parametrize("name", ["README.rst", "CHANGES.rst"])
def test_restructuredtext_is_well_formed(name: str) -> None:
    import docutils.core
    import docutils.utils

    try:
        docutils.core.publish_doctree((ROOT / name).read_text(),
                                      settings_overrides={"halt_level": 2, "report_level": 5})
    except docutils.utils.SystemMessage as exc:  # a malformed table, an unclosed literal
        pytest.fail(f"{name}: {exc}")
