"""More WSGI servers: waitress (threads) and gunicorn's eventlet worker, each serving the
benchmark site (``benchmarks/_app.py``) against the fake eSputnik in a process of its own.

Healthy: every one of ``CALLS`` concurrent token calls gets a token. Hanging and trickling:
every answer is one of the endpoint's answers in API.md for a stuck eSputnik, and no call
spends longer in the app than the time budget plus ``SLACK``. Afterwards the site recovers
and every worker is still the one that started, without a traceback in the server's log.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import _harness
import pytest

from .conftest import BENCHMARKS, free_port, running

TIMEOUT, RETRIES = 1.0, 1
# The budget is every attempt's timeout plus the backoff between them; the backoff
# cap is at most 1 s (0.2's default; not configurable after 0.2).
BUDGET = (RETRIES + 1) * TIMEOUT + RETRIES * 1.0
SLACK = 0.5  # every call ends within budget + 0.5 s
CALLS = 8
#: What a hanging or trickling eSputnik may produce (API.md): a timeout, or the guard's refusals.
STUCK = {"upstream_timeout", "upstream_unavailable", "upstream_busy"}
RECOVERY = 60.0  # seconds to wait for the guard to let calls through again (no timed assertion)


class Waitress:
    """waitress-serve with the benchmark site, as a child process."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log_path = log

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def waitress(env: dict[str, str], threads: int) -> Iterator[Waitress]:
    workdir = Path(tempfile.mkdtemp(prefix="shapes-waitress-"))
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


def crowd(url: str, first_user: int, allowed: set[str]) -> list[_harness.Call]:
    """``CALLS`` token calls at once, each as its own user, checked against the contract."""
    check = _harness.token_checker(allowed)

    def one(i: int) -> _harness.Call:
        with _harness.session_for(first_user + i, url) as session:
            return _harness.request_call(session, "token", "POST", url + _harness.TOKEN_PATH,
                                         json_body={"renew": False}, timeout=BUDGET + 60, check=check)

    with ThreadPoolExecutor(CALLS) as pool:
        return list(pool.map(one, range(CALLS)))


def recovered(url: str, user: int) -> bool:
    """Once eSputnik is healthy again, a token call gets a token (the guard may refuse a while)."""
    deadline = time.monotonic() + RECOVERY
    with _harness.session_for(user, url) as session:
        while time.monotonic() < deadline:
            response = session.post(url + _harness.TOKEN_PATH, json={"renew": False}, timeout=BUDGET + 60)
            if response.status_code == 200:
                return True
            assert response.json().get("error") in STUCK, (response.status_code, response.text)
            time.sleep(0.2)
    return False


def faults(url: str, fake: _harness.Fake, server: str) -> None:
    """Healthy, hanging, trickling, healthy again: the checks of the module's docstring."""
    healthy = crowd(url, 0, {"ok"})
    assert [(c.status, c.problem) for c in healthy] == [(200, None)] * CALLS, healthy

    for round_, mode in enumerate(("hang", "trickle"), start=1):
        fake.configure(mode=mode)
        try:
            stuck = crowd(url, 100 * round_, STUCK)
        finally:
            fake.configure(mode="healthy")
        assert [c.problem for c in stuck] == [None] * CALLS, stuck
        # Time spent in the app (the server's own queueing left out): within the budget.
        spent = [c.server_elapsed for c in stuck]
        assert None not in spent, stuck
        assert max(s for s in spent if s is not None) <= BUDGET + SLACK, (mode, stuck)
        assert fake.stats()["outcomes"].get(mode, 0) >= 1, fake.stats()  # the fake really held calls
        print(f"\n{server}, eSputnik {mode}: {CALLS} calls, {dict(_harness.by_status(stuck))}, slowest in the app "
              f"{max(s for s in spent if s is not None):.2f} s, as seen by the client "
              f"{max(c.latency for c in stuck):.2f} s (budget {BUDGET:.1f} s)")
        assert recovered(url, 100 * round_ + 50), f"no token {RECOVERY:.0f} s after eSputnik {mode} ended"

    again = crowd(url, 300, {"ok"})
    assert [(c.status, c.problem) for c in again] == [(200, None)] * CALLS, again


def settings(api_url: str) -> dict[str, str]:
    return _harness.appinbox_env(api_url, APPINBOX_TIMEOUT=TIMEOUT, APPINBOX_RETRIES=RETRIES)


def test_waitress() -> None:
    pytest.importorskip("waitress")  # part of the dev extra
    with _harness.fake_esputnik(trickle_every=0.1) as fake, waitress(settings(fake.api_url), threads=16) as server:
        faults(server.url, fake, "waitress")
        log = server.log()
    assert "Traceback" not in log and "internal_error" not in log, log[-3000:]


def test_gunicorn_eventlet_worker() -> None:
    pytest.importorskip("eventlet")  # part of the dev extra
    with _harness.fake_esputnik(trickle_every=0.1) as fake, \
            _harness.gunicorn(settings(fake.api_url), workers=1, threads=100, worker_class="eventlet") as server:
        faults(server.url, fake, "gunicorn -k eventlet")
        health = server.health()
        log = server.log()
    assert health["crashes"] == 0 and health["tracebacks"] == 0, (health, log[-3000:])
    assert "internal_error" not in log
