"""The wheel as users get it: its license, its dependencies and its extras; the docs as built.

Building the wheel and the docs is CI's own step (``pytest -m build``), not part of the unit run."""
from __future__ import annotations

import email
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    return next(out.glob("*.whl"))


@pytest.mark.build
def test_the_wheel_ships_the_license_and_declares_what_it_imports(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = email.message_from_bytes(zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))))
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "flask_appinbox/py.typed" in names
    requires = metadata.get_all("Requires-Dist") or []
    plain = sorted(r.split(">")[0] for r in requires if "extra ==" not in r)
    assert plain == ["blinker", "cachelib", "flask", "flask-login", "requests"]
    # A site's own tests need only responses (for FakeEsputnik); this project's toolchain is not published.
    test_extra = sorted(r.split(">")[0] for r in requires if 'extra == "test"' in r)
    assert test_extra == ["responses"]
    assert sorted(metadata.get_all("Provides-Extra") or []) == ["babel", "cache", "demo", "test"]


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documentation built as the README says, with -W: warnings are errors."""
    pytest.importorskip("sphinx")  # in tests/requirements.txt
    out = tmp_path_factory.mktemp("html")
    done = subprocess.run([sys.executable, "-m", "sphinx", "-q", "-E", "-W", "-b", "html", str(ROOT / "docs"),
                           str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.build
def test_the_documentation_builds_without_a_warning(docs: Path) -> None:
    """Sphinx (docs/: one topic a page, the API reference from the docstrings, the changelog), -W."""
    api = (docs / "api.html").read_text()
    assert "contact_token" in api and "init_app" in api


#: The pages a reader reaches from the index, one topic each.
PAGES = ["usage", "configuration", "endpoint", "integrations", "deploying", "guard", "testing", "security",
         "design", "api", "changes"]

#: Every configuration key (the redesign's list; the breaker's keys are gone).
KEYS = ["APPINBOX_API_KEY", "APPINBOX_SITE_ID", "APPINBOX_LANGUAGE", "APPINBOX_RECOMS", "APPINBOX_TRACKING",
        "APPINBOX_API_URL", "APPINBOX_SCRIPT_URL", "APPINBOX_URL_PREFIX", "APPINBOX_TRUSTED_ORIGINS",
        "APPINBOX_TIMEOUT", "APPINBOX_RETRIES", "APPINBOX_ENABLED", "APPINBOX_SANDBOX", "APPINBOX_SANDBOX_CONTACTS",
        "APPINBOX_CREATE_CONTACTS", "APPINBOX_GUARD", "APPINBOX_MAX_CONCURRENT", "APPINBOX_TOKEN_CACHE_TTL",
        "APPINBOX_TOKEN_CACHE"]

#: Every error code of the token endpoint's contract.
ERRORS = ["unauthenticated", "cross_site_request", "bad_request", "contact_not_found", "upstream_rejected",
          "upstream_error", "upstream_rate_limited", "upstream_timeout", "upstream_busy", "upstream_unavailable"]


@pytest.mark.build
def test_every_page_is_one_click_from_the_index(docs: Path) -> None:
    index = (docs / "index.html").read_text()
    for page in PAGES:
        assert (docs / f"{page}.html").is_file(), page
        assert f'href="{page}.html"' in index, page


@pytest.mark.build
def test_every_key_has_its_anchor_default_and_shell_form(docs: Path) -> None:
    import html
    import re

    page = (docs / "configuration.html").read_text()
    for key in KEYS:
        assert f'id="confval-{key}"' in page, key  # configuration.html#confval-APPINBOX_TIMEOUT
        entry = page.split(f'id="confval-{key}"', 1)[1].split('id="confval-', 1)[0]
        text = html.unescape(re.sub(r"<[^>]+>", "", entry))
        assert "Default:" in text, key
        if key != "APPINBOX_TOKEN_CACHE":  # an object: set in Python only, as the page says
            assert f"export FLASK_{key}=" in text, key
    for removed in ("APPINBOX_BACKOFF_CAP", "APPINBOX_BREAKER_THRESHOLD", "APPINBOX_BREAKER_COOLDOWN"):
        assert removed not in page


@pytest.mark.build
def test_every_error_code_is_in_the_endpoint_table_and_the_index(docs: Path) -> None:
    import html
    import re

    table = (docs / "endpoint.html").read_text().split("<table", 1)[1].split("</table>", 1)[0]
    cells = [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<td.*?</td>", table, re.S)]
    index = (docs / "genindex.html").read_text()
    for code in ERRORS:
        assert code in cells, code  # a cell of its own in the answers' table
        assert f"{code} (error code)" in index, code


@pytest.mark.build
def test_the_guard_page_shows_the_figure_and_how_to_make_it(docs: Path) -> None:
    page = (docs / "guard.html").read_text()
    assert "guard.png" in page and (docs / "_images" / "guard.png").is_file()
    assert "benchmarks/guard_figure.py" in page


def test_the_lowest_versions_run_uses_the_declared_floors() -> None:
    import configparser
    import re

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    toolchain = [line for line in (ROOT / "tests" / "requirements.txt").read_text().splitlines()
                 if line and not line.startswith("#")]
    declared = cfg["options"]["install_requires"].split() + cfg["options.extras_require"]["test"].split() + toolchain
    floors = {}
    for item in declared:
        found = re.fullmatch(r"([\w.-]+)>=([\w.]+)", item)
        if found:
            floors[found.group(1)] = found.group(2)
    pinned = dict(line.split("==") for line in (ROOT / ".ci" / "lowest.txt").read_text().split()
                  if "==" in line and not line.startswith("#"))
    for name, version in pinned.items():
        if name not in ("werkzeug", "urllib3"):  # not ours to declare: what Flask and requests bring
            assert floors.get(name) is not None and version.startswith(floors[name]), (name, version, floors.get(name))
