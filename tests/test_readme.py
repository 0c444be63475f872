"""The README's commands and quickstart work as written."""
from __future__ import annotations

import importlib
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from flask_appinbox.testing import FakeEsputnik

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.rst").read_text()


def python_blocks(text: str = README) -> list[str]:
    """The ``.. code-block:: python`` blocks of a reStructuredText page, dedented."""
    blocks = re.findall(r"^( *)\.\. code-block:: python\n\n((?:\1 +.*\n|\n)+)", text, flags=re.M)
    return [textwrap.dedent(block) for _, block in blocks]


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


@pytest.mark.build  # a nested pytest: CI's own step
def test_testing_your_app_passes_against_the_quickstart(tmp_path: Path) -> None:
    import subprocess
    import sys

    testing = (ROOT / "docs" / "testing.rst").read_text()  # "Testing your app"
    example = next(b for b in python_blocks(testing) if "def test_inbox_token" in b)
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


def _quickstart_app(monkeypatch: pytest.MonkeyPatch, secret_key: str | None = None) -> Any:
    monkeypatch.setenv("FLASK_APPINBOX_SANDBOX", "true")
    if secret_key is None:
        monkeypatch.delenv("FLASK_SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("FLASK_SECRET_KEY", secret_key)
    namespace: dict[str, Any] = {"__name__": "quickstart"}
    exec(compile((ROOT / "examples" / "quickstart.py").read_text(), "quickstart.py", "exec"), namespace)  # noqa: S102
    return namespace["create_app"]()


def test_the_quickstart_keeps_you_logged_in_across_a_reload(monkeypatch: pytest.MonkeyPatch) -> None:
    """``flask --debug run`` builds a new app on each reload: the session cookie must still be good."""
    before = _quickstart_app(monkeypatch).test_client()
    before.post("/login")
    cookie = before.get_cookie("session")
    assert cookie is not None
    after = _quickstart_app(monkeypatch).test_client()
    after.set_cookie("session", cookie.value)
    assert "Log out" in after.get("/").text


def test_the_quickstart_takes_its_secret_key_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    default = _quickstart_app(monkeypatch).config["SECRET_KEY"]
    assert _quickstart_app(monkeypatch).config["SECRET_KEY"] == default  # the same on every start
    assert _quickstart_app(monkeypatch, "from-the-shell").config["SECRET_KEY"] == "from-the-shell" != default


def test_the_quickstart_page_fits_a_phone(monkeypatch: pytest.MonkeyPatch) -> None:
    page = _quickstart_app(monkeypatch).test_client().get("/").text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page


def test_the_newest_changelog_entry_is_the_package_version() -> None:
    from flask_appinbox import __version__

    versions = re.findall(r"^(\d+\.\d+\.\d+)\b.*\n-{3,}$", (ROOT / "CHANGES.rst").read_text(), flags=re.M)
    assert versions, "no version heading in CHANGES.rst"
    assert versions[0] == __version__


def test_the_readme_is_a_front_door() -> None:
    """About a page, as Flask-Login's: the rest is in docs/."""
    assert ".. image:: docs/demo.png" in README and (ROOT / "docs" / "demo.png").is_file()
    assert "python -m sphinx -W -b html docs docs/_build/html" in README


def test_the_readme_installs_what_works_today() -> None:
    """Not published yet: the install shown works from a checkout; the PyPI line is for after a release."""
    install = README.split("\nInstall\n-------\n", 1)[1].split("\nQuickstart\n", 1)[0]
    commands = re.findall(r"^\s*\$ (pip install .*)$", install, flags=re.M)
    assert commands and all(re.match(r"pip install (-e )?\./", c) for c in commands), commands
    assert "git+" not in README and "<owner>" not in README
    before, _, after = install.partition("pip install Flask-AppInbox")
    assert after and "after a release" in before.lower()[-80:]


def test_what_the_api_reference_documents_is_exported() -> None:
    # Bare names are flask_appinbox's (``.. module:: flask_appinbox``); dotted ones name their module.
    text = (ROOT / "docs" / "api.rst").read_text()
    names = re.findall(r"^\.\. auto(?:class|function|exception|data):: ([\w.]+)", text, flags=re.M)
    assert len(names) >= 15
    for name in names:
        module_name, _, attribute = name.rpartition(".") if "." in name else ("flask_appinbox", "", name)
        module = importlib.import_module(module_name)
        assert attribute in module.__all__, name
