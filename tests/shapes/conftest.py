"""Production shapes: real nginx, gunicorn worker classes and a forward proxy on loopback ports.

Each server is a child process on 127.0.0.1, started with a config of the test's own
and stopped by PID when the test ends. A missing program skips the test, except with
``CI=true``, where it fails (``.ci/run`` installs nginx-light, tinyproxy, openssl and
redis-server).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))  # the fake eSputnik and the gunicorn harness

import _harness  # noqa: E402


def need(program: str) -> str:
    """The path of ``program``; skips the test without it (fails with ``CI=true``)."""
    found = shutil.which(program) or next(
        (p for p in (f"/usr/sbin/{program}", f"/usr/bin/{program}") if os.access(p, os.X_OK)), None)
    if found is None:
        reason = f"{program} is not installed (apt-get install -y nginx-light tinyproxy openssl redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; with CI=true the production-shape tests may not skip", pytrace=False)
        pytest.skip(reason)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} is not listening on 127.0.0.1:{port} after {timeout} s")


@contextmanager
def running(cmd: Sequence[str], port: int, what: str, log: Path,
            env: Mapping[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """``cmd`` as a child process in a session of its own, until the block ends (then stopped by PID)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=None if env is None else dict(env))
    try:
        try:
            wait_for_port(port, proc, what)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}:\n{log.read_text(errors='replace')[-2000:]}") from None
        yield proc
    finally:
        _harness._stop(proc)
