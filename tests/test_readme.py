"""The README's commands and quickstart work as written."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

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


def quickstart() -> str:
    return next(b for b in python_blocks() if "def create_app" in b)


def test_the_quickstart_is_examples_quickstart() -> None:
    assert quickstart().rstrip() == (ROOT / "examples" / "quickstart.py").read_text().rstrip()


def test_quickstart_gives_a_working_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASK_APPINBOX_API_KEY", "readme-key")
    monkeypatch.setenv("FLASK_APPINBOX_SITE_ID", "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9")
    namespace: dict[str, Any] = {"__name__": "quickstart"}
    exec(compile(quickstart(), "README.rst", "exec"), namespace)  # noqa: S102 - our own README
    app = namespace["create_app"]()
    client = app.test_client()
    assert client.post("/appinbox/token").json == {"error": "unauthenticated"}
    client.post("/login")
    page = client.get("/").text
    assert '<div id="appinbox-bell"></div>' in page and "getAuthTokenCallback" in page
    with FakeEsputnik() as esputnik:
        esputnik.token("from-the-readme")
        response = client.post("/appinbox/token", json={"renew": False})
    assert response.json == {"token": "from-the-readme"}
    assert esputnik.token_requests == [{"email": "alice@example.com", "externalCustomerId": "1"}]


def test_testing_your_app_passes_against_the_quickstart(tmp_path: Path) -> None:
    import subprocess
    import sys

    example = next(b for b in python_blocks() if "def test_inbox_token" in b)
    (tmp_path / "quickstart.py").write_text(quickstart())
    (tmp_path / "test_quickstart_inbox.py").write_text(example)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
                           "test_quickstart_inbox.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout


@pytest.mark.parametrize("name", ["README.rst", "CHANGES.rst"])
def test_restructuredtext_is_well_formed(name: str) -> None:
    import docutils.core
    import docutils.utils

    try:
        docutils.core.publish_doctree((ROOT / name).read_text(),
                                      settings_overrides={"halt_level": 2, "report_level": 5})
    except docutils.utils.SystemMessage as exc:  # a malformed table, an unclosed literal
        pytest.fail(f"{name}: {exc}")
