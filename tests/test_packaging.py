"""The wheel as users get it: its license, its dependencies and its extras."""
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


def test_the_wheel_ships_the_license_and_declares_what_it_imports(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = email.message_from_bytes(zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))))
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "flask_appinbox/py.typed" in names
    requires = metadata.get_all("Requires-Dist") or []
    plain = sorted(r.split(">")[0] for r in requires if "extra ==" not in r)
    assert plain == ["blinker", "flask", "flask-login", "requests"]
    # A site's own tests need only responses (for FakeEsputnik); the toolchain is this project's "dev".
    test_extra = sorted(r.split(">")[0] for r in requires if 'extra == "test"' in r)
    assert test_extra == ["responses"]


def test_the_documentation_builds_without_a_warning(tmp_path: Path) -> None:
    """Sphinx (docs/: the README's guides, the API reference from the docstrings, the changelog), -W."""
    pytest.importorskip("sphinx")  # in the dev extra
    done = subprocess.run([sys.executable, "-m", "sphinx", "-q", "-E", "-W", "-b", "html", str(ROOT / "docs"),
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "api.html").read_text()
    assert "contact_token" in api and "init_app" in api


def test_the_lowest_versions_run_uses_the_declared_floors() -> None:
    import configparser
    import re

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    declared = cfg["options"]["install_requires"].split() + cfg["options.extras_require"]["dev"].split()
    floors = {}
    for item in declared:
        found = re.fullmatch(r"([\w.-]+)>=([\w.]+)", item)
        if found:
            floors[found.group(1)] = found.group(2)
    pinned = dict(line.split("==") for line in (ROOT / ".ci" / "lowest.txt").read_text().split()
                  if "==" in line and not line.startswith("#"))
    for name, version in pinned.items():
        if name != "werkzeug":
            assert floors.get(name) is not None and version.startswith(floors[name]), (name, version, floors.get(name))
