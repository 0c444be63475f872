"""A new user's first minutes: the README's Quickstart, in a fresh virtual environment with the built wheel,
the sandbox switched on from the shell, ``flask run``, and Chromium showing the bell."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_readme import ROOT, quickstart

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails with CI=true)
    expect = None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with Flask-AppInbox installed from its wheel, as ``pip install`` would."""
    where = tmp_path_factory.mktemp("fresh")
    wheels = where / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    subprocess.run([sys.executable, "-m", "venv", str(where / "venv")], check=True, timeout=120)
    python = where / "venv" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(next(wheels.glob("*.whl")))],
                   check=True, capture_output=True, timeout=600)
    return where / "venv"


def test_the_quickstart_from_a_fresh_install(venv: Path, tmp_path: Path, browser: Any) -> None:
    (tmp_path / "quickstart.py").write_text(quickstart())
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "APPINBOX_"))}
    env["FLASK_APPINBOX_SANDBOX"] = "true"  # as the README says, from the shell
    log = tmp_path / "flask.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([str(venv / "bin" / "flask"), "--app", "quickstart", "run", "--port", str(port)],
                                  cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while "Running on" not in log.read_text(errors="replace"):
            assert server.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
        context = browser.new_context(base_url=f"http://127.0.0.1:{port}")
        try:
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.goto("/")
            page.click("text=Log in as alice@example.com")
            expect(page.locator("header")).to_contain_text("alice@example.com")
            expect(page.locator("#appinbox-bell [data-appinbox=badge]")).to_have_text(re.compile(r"^[1-9]"))
        finally:
            context.close()
    finally:
        server.terminate()
        server.wait(10)
    assert "SANDBOX" in log.read_text(errors="replace")  # the sandbox warned it is on
