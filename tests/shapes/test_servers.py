"""More WSGI servers: waitress (threads) and gunicorn's eventlet worker, each serving the
benchmark site (``benchmarks/_app.py``) against the fake eSputnik in a process of its own.

Healthy: every one of ``CALLS`` concurrent token calls gets a token. Hanging and trickling:
every answer is one of the endpoint's answers in API.md for a stuck eSputnik, and no call
spends longer in the app than the time budget plus ``SLACK``. Afterwards the site recovers,
with no worker crashed and no traceback in the server's log.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import _harness
import pytest

from ._faults import faults, settings
from .conftest import BENCHMARKS, free_port, running


class Waitress:
    """waitress-serve with the benchmark site, as a child process."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log_path = log

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def waitress(env: dict[str, str], threads: int, workdir: Path) -> Iterator[Waitress]:
    """waitress on a free loopback port with the benchmark site; waits until the site is built."""
    ready_dir = workdir / "ready"
    ready_dir.mkdir()
    port = free_port()
    child_env = {k: v for k, v in os.environ.items() if k not in _harness.SERVER_ENV_DROPPED
                 and not k.startswith(("FLASK_", "BENCH_")) and not k.lower().endswith("_proxy")}
    child_env.update(env, BENCH_READY_DIR=str(ready_dir), PYTHONPATH=str(BENCHMARKS))
    cmd = [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}", f"--threads={threads}",
           "--call", "_app:create_server"]
    log = workdir / "waitress.log"
    with running(cmd, port, "waitress", log, env=child_env) as proc:
        server = Waitress(f"http://127.0.0.1:{port}", log)
        deadline = time.monotonic() + 30
        while not (ready_dir / str(proc.pid)).exists():
            assert proc.poll() is None and time.monotonic() < deadline, server.log()[-3000:]
            time.sleep(0.05)
        yield server


def test_waitress(tmp_path: Path) -> None:
    pytest.importorskip("waitress")  # in tests/requirements.txt
    with _harness.fake_esputnik(trickle_every=0.1) as fake, \
            waitress(settings(fake.api_url), threads=16, workdir=tmp_path) as server:
        faults(server.url, fake, "waitress")
        log = server.log()
    assert "Traceback" not in log and "internal_error" not in log, log[-3000:]


def test_gunicorn_eventlet_worker() -> None:
    pytest.importorskip("eventlet")  # in tests/requirements.txt
    with _harness.fake_esputnik(trickle_every=0.1) as fake, \
            _harness.gunicorn(settings(fake.api_url), workers=1, threads=100, worker_class="eventlet") as server:
        faults(server.url, fake, "gunicorn -k eventlet")
        health = server.health()
        log = server.log()
    assert health["crashes"] == 0 and health["tracebacks"] == 0, (health, log[-3000:])
    assert "internal_error" not in log
