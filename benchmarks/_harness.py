"""What the benchmarks share: the fake and gunicorn as child processes, a load
generator, the token endpoint's contract, percentiles and printing.

Every process started here is stopped by the ``with`` block that started it,
and every load loop has a deadline.
"""
from __future__ import annotations

import functools
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
TOKEN_PATH = "/appinbox/token"  # noqa: S105 - a path
USER_HEADER = "X-Bench-User"
API_KEY = "bench-api-key-7f3a9c0e51d2SECRET"  # as in _app.py; must never reach an answer or a log line


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that ``finally`` blocks stop the children."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


# -- the fake ---------------------------------------------------------------------


class Fake:
    """The fake eSputnik in a process of its own, driven over its control port."""

    def __init__(self, proc: subprocess.Popen[str], api_url: str, control_url: str) -> None:
        self.proc = proc
        self.api_url = api_url
        self.control_url = control_url
        self._http = requests.Session()
        self._http.trust_env = False

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self._post("/config", changes)

    def reset(self) -> dict[str, Any]:
        return self._post("/reset", {})

    def stats(self) -> dict[str, Any]:
        response = self._http.get(self.control_url + "/stats", timeout=10)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._http.post(self.control_url + path, json=body, timeout=10)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


@contextmanager
def fake_esputnik(*, tls: tuple[str, str] | None = None, **config: Any) -> Iterator[Fake]:
    """The fake in a child process; ``tls=(cert, key)`` serves its API over https."""
    proc = subprocess.Popen(
        [PYTHON, str(HERE / "fake_esputnik.py"), "--port", "0", "--control-port", "0", "--config", json.dumps(config),
         *(["--tls", *tls] if tls else [])],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = _readline(proc.stdout, 15)
        urls = json.loads(line)
        fake = Fake(proc, urls["api"], urls["control"])
        yield fake
    finally:
        _stop(proc)
        if proc.stdout is not None:
            proc.stdout.close()


def _readline(stream: Any, timeout: float) -> str:
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not found or not found[0]:
        raise RuntimeError("the fake did not start")
    return found[0]


def _stop(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL to the process group of a child started with ``start_new_session``."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers in the group (gunicorn's workers)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait(5)


# -- gunicorn -------------------------------------------------------------------------


# What each server's log says when a worker starts (its pid), and when one crashes.
BOOT_LINES = {
    "gunicorn": r"Booting worker with pid: (\d+)",
    "uwsgi": r"(?:spawned uWSGI worker \d+ \(pid|Respawned uWSGI worker \d+ \(new pid): (\d+)",
}  # waitress: one process, no workers
CRASH_LINES: dict[str, dict[str, str]] = {  # name -> a line counted as a crash
    "gunicorn": {"exits": "Worker exiting", "timeouts": "WORKER TIMEOUT"},
    "uwsgi": {"deaths": r"DAMN ! worker", "harakiri": "HARAKIRI"},
    "waitress": {},
}


class Server:
    """A running server (gunicorn, waitress or uWSGI) with the benchmark site."""

    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path, workers: int, kind: str = "gunicorn") -> None:
        self.proc = proc
        self.log_path = log_path
        self.workers = workers
        self.kind = kind
        self.url = ""
        self.worker_pids: list[int] = []

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:  # the server has not opened it yet
            return ""

    def booted_pids(self) -> list[int]:
        if self.kind == "waitress":
            return [self.proc.pid]
        return [int(pid) for pid in re.findall(BOOT_LINES[self.kind], self.log())]

    def health(self) -> dict[str, Any]:
        """Worker crashes since start: new boots, exits, timeouts, and the first workers still alive."""
        text = self.log()
        boots = self.booted_pids()
        alive = [pid for pid in self.worker_pids if _alive(pid)]
        found = {name: len(re.findall(line, text)) for name, line in CRASH_LINES[self.kind].items()}
        return {
            "boots": len(boots),
            "reboots": max(0, len(boots) - self.workers),
            **found,
            "signalled": len(re.findall(r"Worker \(pid:\d+\) was sent", text)),
            "tracebacks": text.count("Traceback (most recent call last)"),
            "first_workers_alive": f"{len(alive)}/{len(self.worker_pids)}",
            "crashes": max(0, len(boots) - self.workers) + sum(found.values()) + len(self.worker_pids) - len(alive),
        }

    def cpu_seconds(self) -> float:
        """User + system CPU of the workers alive now."""
        return sum(cpu_seconds(pid) for pid in self.worker_pids)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def memory_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` (now) and ``VmHWM`` (the peak so far) of a process, in KiB, from ``/proc/<pid>/status``."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    found[name] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return found


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().split(") ", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


# A CA bundle from the environment makes requests stat() it on every call (a
# site's own settings would not); proxies must not see the local fake.
SERVER_ENV_DROPPED = {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"}


@contextmanager
def gunicorn(env: dict[str, str], *, workers: int = 2, threads: int = 4, app: str = "_app:create_server()",
             worker_class: str = "gthread", preload: bool = False, args: Sequence[str] = (),
             ready_timeout: float = 30.0) -> Iterator[Server]:
    """gunicorn on 127.0.0.1 and a port of its choosing; waits until every worker answers.

    ``threads`` is gthread's threads or gevent's and eventlet's ``--worker-connections``.
    """
    per_worker = ["--threads", str(threads)] if worker_class == "gthread" else ["--worker-connections", str(threads)]
    with _server_dir() as workdir:
        log_path = workdir / "server.log"
        cmd = [PYTHON, "-m", "gunicorn", "-w", str(workers), "-k", worker_class, *per_worker, "-b", "127.0.0.1:0",
               "--pythonpath", str(HERE), "--error-logfile", str(log_path), "--capture-output",
               "--log-level", "info", "--graceful-timeout", "3", "--keep-alive", "5",
               *(["--preload"] if preload else []), *_no_control_socket(), *args, app]
        # With --preload the app is built once, in the arbiter, before the fork.
        with _served(cmd, env, workdir, Server(_NOT_STARTED, log_path, workers), r"Listening at: (http://127\.0\.0\.1:\d+)",
                     ready_timeout, builders="arbiter" if preload else "workers") as server:
            yield server


@contextmanager
def waitress(env: dict[str, str], *, args: Sequence[str] = (), app: str = "_app:create_server",
             ready_timeout: float = 30.0) -> Iterator[Server]:
    """waitress (one process; its defaults: 4 threads) on 127.0.0.1 and a port of its choosing."""
    with _server_dir() as workdir:
        log_path = workdir / "server.log"
        cmd = [PYTHON, "-m", "waitress", "--listen=127.0.0.1:0", *args, "--call", app]
        with _served(cmd, env, workdir, Server(_NOT_STARTED, log_path, 1, "waitress"),
                     r"Serving on (http://127\.0\.0\.1:\d+)", ready_timeout, builders="arbiter") as server:
            yield server


@contextmanager
def uwsgi(env: dict[str, str], *, processes: int = 3, args: Sequence[str] = (), app: str = "_app:create_server()",
          ready_timeout: float = 30.0) -> Iterator[Server]:
    """uWSGI with ``processes`` worker processes (no threads, no ``--enable-threads``) and a master that loads
    the app before the fork (its default), on 127.0.0.1 and a port of its choosing."""
    binary = shutil.which("uwsgi", path=str(Path(PYTHON).parent)) or shutil.which("uwsgi")
    if binary is None:
        raise RuntimeError("uwsgi is not installed (pip install uwsgi)")
    with _server_dir() as workdir:
        log_path = workdir / "server.log"
        cmd = [binary, "--http-socket", "127.0.0.1:0", "--processes", str(processes), "--master", "--die-on-term",
               "--home", sys.prefix, "--pythonpath", str(HERE), "--logto", str(log_path), "--module", app, *args]
        with _served(cmd, env, workdir, Server(_NOT_STARTED, log_path, processes, "uwsgi"),
                     r"bound to TCP address (127\.0\.0\.1:\d+)", ready_timeout, builders="arbiter") as server:
            yield server


_NOT_STARTED: Any = None


@contextmanager
def _server_dir() -> Iterator[Path]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-server-"))
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def _served(cmd: list[str], env: dict[str, str], workdir: Path, server: Server, listening: str,
            ready_timeout: float, builders: str) -> Iterator[Server]:
    """Start ``cmd`` (its output to ``server.log_path``) with the environment of the benchmark site; wait
    until the ``listening`` line names its URL, every worker has booted and built the app (``builders``:
    ``"workers"``, or ``"arbiter"`` when the first process builds it) and ``/ping`` answers; stop it after."""
    ready_dir = workdir / "ready"
    ready_dir.mkdir()
    child_env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV_DROPPED
                 and not k.startswith(("FLASK_", "BENCH_")) and not k.lower().endswith("_proxy")}
    child_env.update(env)
    child_env["BENCH_READY_DIR"] = str(ready_dir)
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), child_env.get("PYTHONPATH")]))
    with open(server.log_path, "ab") as log:
        server.proc = proc = subprocess.Popen(cmd, env=child_env, stdin=subprocess.DEVNULL, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{server.kind} exited with {proc.returncode}:\n{server.log()[-3000:]}")
            found = re.search(listening, server.log())
            if found and len(server.booted_pids()) >= server.workers:
                server.url = found.group(1) if found.group(1).startswith("http") else "http://" + found.group(1)
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{server.kind} did not start in {ready_timeout} s:\n{server.log()[-3000:]}")
        server.worker_pids = server.booted_pids()[:server.workers]
        _wait_for_workers(server, ready_dir, deadline, [proc.pid] if builders == "arbiter" else server.worker_pids)
        yield server
    finally:
        _stop(proc)


@functools.cache
def _no_control_socket() -> list[str]:
    """gunicorn 24+ opens a control socket at one fixed path: two servers at once would share it."""
    text = subprocess.run([PYTHON, "-m", "gunicorn", "--help"], capture_output=True, text=True, timeout=30).stdout
    return ["--no-control-socket"] if "--no-control-socket" in text else []


def _wait_for_workers(server: Server, ready_dir: Path, deadline: float, builders: list[int]) -> None:
    """Until every builder of the app has left its pid in ``ready_dir`` and ``/ping`` answers."""
    wanted = {str(pid) for pid in builders}
    while not wanted <= {p.name for p in ready_dir.iterdir()}:
        if time.monotonic() > deadline or server.proc.poll() is not None:
            raise RuntimeError(f"{server.kind}: the workers did not build the app:\n{server.log()[-3000:]}")
        time.sleep(0.05)
    while True:
        try:
            with session_for("", server.url) as s:
                if s.get(server.url + "/ping", timeout=2).status_code == 200:
                    return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.kind} does not answer:\n{server.log()[-3000:]}")
        time.sleep(0.05)


def appinbox_env(api_url: str, **config: Any) -> dict[str, str]:
    """``FLASK_*`` variables for ``from_prefixed_env()``: ``APPINBOX_TIMEOUT=1`` -> ``FLASK_APPINBOX_TIMEOUT=1``."""
    env = {"FLASK_APPINBOX_API_URL": api_url}
    for key, value in config.items():
        env[key if key.startswith("BENCH_") else f"FLASK_{key}"] = (
            value if isinstance(value, str) else json.dumps(value))
    return env


# -- load -------------------------------------------------------------------------------


@dataclass
class Call:
    """One answer as the client saw it."""

    variant: str
    start: float  # time.monotonic() at the start
    latency: float  # seconds
    status: int  # 0: no HTTP answer
    outcome: str  # "ok", the answer's error code, or the transport error's name
    problem: str | None = None  # why the answer is outside the contract
    server_elapsed: float | None = None
    pid: str | None = None
    due: float | None = None  # open loop: when the call was due (``start - due``: how late it started)


def session_for(user: int | str, base_url: str) -> requests.Session:
    """A browser-like client of one logged-in user (same-origin fetch)."""
    session = requests.Session()
    session.trust_env = False  # no proxy or CA lookups from the environment on every call
    session.headers.update({USER_HEADER: str(user), "Sec-Fetch-Site": "same-origin", "Origin": base_url})
    return session


def request_call(session: requests.Session, variant: str, method: str, url: str, *,
                 json_body: Any = None, timeout: float = 30.0,
                 check: Callable[[requests.Response], str | None] | None = None) -> Call:
    t0 = time.monotonic()
    try:
        response = session.request(method, url, json=json_body, timeout=timeout)
    except requests.RequestException as exc:
        return Call(variant, t0, time.monotonic() - t0, 0, type(exc).__name__, f"no answer: {type(exc).__name__}")
    latency = time.monotonic() - t0
    outcome = "ok"
    if response.status_code != 200:
        try:
            outcome = str(response.json().get("error"))
        except (ValueError, AttributeError):
            outcome = f"http_{response.status_code}"
    problem = check(response) if check is not None else (
        None if response.status_code == 200 else f"HTTP {response.status_code}")
    elapsed = response.headers.get("X-Bench-Elapsed")
    return Call(variant, t0, latency, response.status_code, outcome, problem,
                float(elapsed) if elapsed else None, response.headers.get("X-Bench-Pid"))


def run_load(clients: int, call: Callable[[requests.Session, int], Call], *, duration: float,
             max_calls: int | None = None, pace: float | None = None,
             session: Callable[[int], requests.Session]) -> list[Call]:
    """``clients`` threads, each with its own session, calling until ``duration`` seconds
    have passed or ``max_calls`` calls have started. ``pace``: each client starts at most
    one call per ``pace`` seconds (otherwise back to back)."""
    deadline = time.monotonic() + duration
    results: list[list[Call]] = [[] for _ in range(clients)]
    lock = threading.Lock()
    started = [0]

    def take() -> bool:
        if max_calls is None:
            return True
        with lock:
            if started[0] >= max_calls:
                return False
            started[0] += 1
            return True

    def client(index: int) -> None:
        with session(index) as s:
            mine = results[index]
            next_start = time.monotonic()
            while time.monotonic() < deadline and take():
                mine.append(call(s, index))
                if pace is not None:
                    next_start += pace
                    wait = min(next_start, deadline) - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    else:
                        next_start = time.monotonic()

    threads = [threading.Thread(target=client, args=(i,), daemon=True, name=f"load-{i}") for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 60)
    if any(thread.is_alive() for thread in threads):
        raise RuntimeError("a load client is still running 60 s after the deadline")
    return [c for mine in results for c in mine]


@dataclass(frozen=True)
class Load:
    """One kind of client: ``clients`` logged-in users calling ``method url`` for ``duration``
    seconds (or until ``max_calls`` calls have started). ``allowed``: the token endpoint's
    outcomes this run accepts (the contract is checked); ``None``: anything but a 200 is a problem."""

    variant: str
    method: str
    url: str
    clients: int
    duration: float
    json_body: Any = None
    pace: float | None = None
    max_calls: int | None = None
    first_user: int = 1
    allowed: frozenset[str] | None = None
    timeout: float = 30.0
    origin: str = ""
    reconnect_every: int | None = None  # new connection every N calls: spreads clients over the workers

    def split(self, parts: int) -> list[Load]:
        """The same load shared by ``parts`` processes (clients and calls divided)."""
        parts = max(1, min(parts, self.clients))
        out = []
        for i in range(parts):
            clients = self.clients // parts + (i < self.clients % parts)
            calls = None if self.max_calls is None else self.max_calls // parts + (i < self.max_calls % parts)
            first = self.first_user + sum(self.clients // parts + (j < self.clients % parts) for j in range(i))
            out.append(replace(self, clients=clients, max_calls=calls, first_user=first))
        return out


def _run_load_here(load: Load, start_at: float) -> list[Call]:
    """A ``Load`` in this process (a load process runs this)."""
    wait = start_at - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    check = token_checker(set(load.allowed)) if load.allowed is not None else None

    counts = [0] * load.clients

    def call(session: requests.Session, index: int) -> Call:
        counts[index] += 1
        if load.reconnect_every and counts[index] % load.reconnect_every == 0:
            session.close()  # the pool reconnects; gunicorn may hand it to another worker
        return request_call(session, load.variant, load.method, load.url, json_body=load.json_body,
                            timeout=load.timeout, check=check)

    return run_load(load.clients, call, duration=load.duration, max_calls=load.max_calls, pace=load.pace,
                    session=lambda i: session_for(load.first_user + i, load.origin))


class LoadProcesses:
    """Load generators in processes of their own, so that the clients of one kind do not
    share a GIL with those of another (or with the fake and gunicorn)."""

    def __init__(self, processes: int = 2) -> None:
        self.processes = processes
        self._pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
        list(self._pool.map(_noop, range(processes)))  # start them now, not in a measurement

    def __enter__(self) -> LoadProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def cpu_seconds(self) -> float:
        """User + system CPU of the load processes."""
        return sum(cpu_seconds(pid) for pid in getattr(self._pool, "_processes", {}) or {})

    def run(self, *loads: Load, split: int = 1) -> dict[str, list[Call]]:
        """Run ``loads`` at once (each over ``split`` processes); the calls by variant."""
        start_at = time.monotonic() + 0.2
        futures = [(load.variant, self._pool.submit(_run_load_here, part, start_at))
                   for load in loads for part in load.split(split)]
        out: dict[str, list[Call]] = {load.variant: [] for load in loads}
        for variant, future in futures:
            out[variant].extend(future.result())
        return out

    def run_open(self, *loads: OpenLoad, split: int = 1, during: Callable[[float], None] | None = None,
                 lead: float = 0.3) -> dict[str, list[Call]]:
        """Run open loops at once (each over ``split`` processes, one part per process); the
        calls by variant. ``during(start_at)`` runs here while they do (to change the fake on
        a schedule); ``start_at`` is the ``time.monotonic()`` at which call 0 is due."""
        parts = [part for load in loads for part in load.split(split)]
        if len(parts) > self.processes:
            raise ValueError(f"{len(parts)} open-loop parts need as many load processes, not {self.processes}")
        start_at = time.monotonic() + lead
        futures = [(part.variant, self._pool.submit(_run_open_load_here, part, start_at)) for part in parts]
        if during is not None:
            during(start_at)
        out: dict[str, list[Call]] = {load.variant: [] for load in loads}
        for variant, future in futures:
            out[variant].extend(future.result())
        for calls in out.values():
            calls.sort(key=lambda c: c.due if c.due is not None else c.start)
        return out


def _noop(_: int) -> None:
    pass


# -- open loop ---------------------------------------------------------------------------


def open_loop(rate: float, duration: float, call: Callable[[requests.Session, int], Call], *,
              workers: int = 256, timeout: float = 30.0, origin: str = "",
              user: Callable[[int], int | str] | None = None, start_at: float | None = None,
              grace: float = 3.0, variant: str = "", count: int | None = None) -> list[Call]:
    """A true open loop: call ``i`` is due at ``start_at + i / rate`` (``i < rate * duration``)
    whether or not the calls before it have finished.

    A dispatcher thread hands each call, when it is due, to a pool of ``workers`` threads,
    each with a session of its own (:func:`session_for` with ``origin``); ``user(i)``, when
    given, is the logged-in user of call ``i``. ``call(session, i)`` makes the call (with
    ``timeout`` as its client timeout) and returns its :class:`Call`, which gets ``due``:
    when every pool thread is busy, a call starts late, and ``start - due`` says by how much.

    Bounded: nothing is issued after ``duration``, and calls in flight get at most
    ``timeout + grace`` seconds more. Calls the pool had not started by then come back as
    ``not_started``, calls still running as ``unfinished`` (status 0, with a problem).
    ``count``: this many calls instead of ``rate * duration`` (all due within ``duration``).
    """
    t0 = time.monotonic() if start_at is None else start_at
    total = max(0, math.floor(rate * duration + 1e-9) if count is None else count)
    local = threading.local()
    sessions: list[requests.Session] = []
    started: dict[int, float] = {}
    lock = threading.Lock()
    stop = threading.Event()
    issued: list[tuple[int, float, Future[Call]]] = []

    def one(i: int, due: float) -> Call:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = session_for("", origin)
            with lock:
                sessions.append(session)
        if user is not None:
            session.headers[USER_HEADER] = str(user(i))
        started[i] = time.monotonic()
        result = call(session, i)
        result.due = due
        return result

    pool = ThreadPoolExecutor(workers, thread_name_prefix="open-loop")

    def dispatch() -> None:
        for i in range(total):
            due = t0 + i / rate
            wait = due - time.monotonic()
            if wait > 0 and stop.wait(wait):
                return
            issued.append((i, due, pool.submit(one, i, due)))

    dispatcher = threading.Thread(target=dispatch, name="open-loop-dispatch", daemon=True)
    try:
        dispatcher.start()
        dispatcher.join(max(0.0, t0 + duration - time.monotonic()) + 5)
        stop.set()
        dispatcher.join(5)
        deadline = max(t0 + duration, time.monotonic()) + timeout + grace
        wait_for_futures([f for _, _, f in issued], timeout=max(0.0, deadline - time.monotonic()))
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
    calls: list[Call] = []
    now = time.monotonic()
    for i, due, future in issued:
        if future.done() and not future.cancelled():
            calls.append(future.result())
        elif i in started:
            calls.append(Call(variant, started[i], now - started[i], 0, "unfinished",
                              f"no answer {timeout + grace:.0f} s after the last call was due", due=due))
        else:
            calls.append(Call(variant, due, 0.0, 0, "not_started",
                              "the load generator did not start it in time", due=due))
    if all(f.done() for _, _, f in issued):
        for session in sessions:
            session.close()
    return calls


def lateness(calls: Sequence[Call]) -> list[float]:
    """Seconds each open-loop call started after it was due (calls that started)."""
    return [c.start - c.due for c in calls if c.due is not None and c.outcome != "not_started"]


def offered_rate(calls: Sequence[Call], duration: float) -> float:
    """Open-loop calls that actually started within ``duration`` seconds of the first due time, per second."""
    dues = [c.due for c in calls if c.due is not None]
    if not dues or duration <= 0:
        return 0.0
    end = min(dues) + duration
    return sum(1 for c in calls if c.due is not None and c.outcome != "not_started" and c.start < end) / duration


@dataclass(frozen=True)
class OpenLoad:
    """An open loop for a load process: ``rate`` calls per second of ``method url`` for
    ``duration`` seconds, call ``i`` as user ``first_user + i % users``. ``allowed`` as in
    :class:`Load`. ``part``/``parts``: this process's share of the calls (every
    ``parts``-th one, starting at ``part``), so that the parts together are the whole loop."""

    variant: str
    method: str
    url: str
    rate: float
    duration: float
    json_body: Any = None
    users: int = 500
    first_user: int = 1
    allowed: frozenset[str] | None = None
    timeout: float = 30.0
    origin: str = ""
    workers: int = 256
    part: int = 0
    parts: int = 1

    def split(self, parts: int) -> list[OpenLoad]:
        """The same loop shared by ``parts`` processes: interleaved calls, the threads divided."""
        parts = max(1, parts)
        return [replace(self, part=i, parts=parts, workers=max(1, self.workers // parts)) for i in range(parts)]


def _run_open_load_here(load: OpenLoad, start_at: float) -> list[Call]:
    """An ``OpenLoad`` part in this process (a load process runs this)."""
    check = token_checker(set(load.allowed)) if load.allowed is not None else None

    def call(session: requests.Session, _: int) -> Call:
        return request_call(session, load.variant, load.method, load.url, json_body=load.json_body,
                            timeout=load.timeout, check=check)

    # This part's call i is call part + i * parts of the whole loop.
    total = math.floor(load.rate * load.duration + 1e-9)
    return open_loop(load.rate / load.parts, load.duration, call, count=len(range(load.part, total, load.parts)),
                     workers=load.workers, timeout=load.timeout, origin=load.origin,
                     user=lambda i: load.first_user + (load.part + i * load.parts) % load.users,
                     start_at=start_at + load.part / load.rate, variant=load.variant)


# -- the token endpoint's contract (API.md) ---------------------------------------------

# status -> the error codes API.md allows with it
CONTRACT: dict[int, set[str]] = {
    200: {"ok"},
    404: {"contact_not_found"},
    502: {"upstream_error", "upstream_rejected"},
    503: {"upstream_busy", "upstream_unavailable", "upstream_rate_limited"},
    504: {"upstream_timeout"},
}
NEEDS_RETRY_AFTER = {"upstream_busy", "upstream_unavailable", "upstream_rate_limited"}


def sane_retry_after(value: str | None) -> bool:
    """A ``Retry-After`` a browser can use: ASCII digits, 0 to 86,400 seconds (``"²"`` is not a digit here)."""
    return value is not None and re.fullmatch(r"[0-9]{1,5}", value) is not None and int(value) <= 86_400


def token_checker(allowed: set[str]) -> Callable[[requests.Response], str | None]:
    """A check for one token answer: the contract's status/error pairs, limited to ``allowed`` outcomes."""

    def check(response: requests.Response) -> str | None:
        status = response.status_code
        if response.headers.get("Cache-Control") != "no-store":
            return f"{status} without Cache-Control: no-store"
        if not response.headers.get("Content-Type", "").startswith("application/json"):
            return f"{status} is not JSON"
        if API_KEY in response.text or any(API_KEY in v for v in response.headers.values()):
            return f"{status} contains the API key"
        try:
            body = response.json()
        except ValueError:
            return f"{status} with a body that is not JSON"
        if not isinstance(body, dict):
            return f"{status} with a JSON body that is not an object"
        outcome: Any
        if status == 200:
            token = body.get("token")
            if not isinstance(token, str) or not token:
                return "200 without a token"
            outcome = "ok"
        else:
            outcome = body.get("error")
            if outcome not in CONTRACT.get(status, set()):
                return f"{status} {outcome!r} is not in the contract"
            if status == 404 and body.get("token") != "":
                return "404 without token: ''"
        if outcome in NEEDS_RETRY_AFTER and not sane_retry_after(response.headers.get("Retry-After")):
            return f"{status} {outcome} without a Retry-After of 0..86400 seconds"
        if outcome not in allowed:
            return f"{status} {outcome} was not expected in this run"
        return None

    return check


# -- figures ------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile; ``nan`` for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def latency_summary(calls: Sequence[Call]) -> str:
    ms = [c.latency * 1000 for c in calls]
    if not ms:
        return "no calls"
    return (f"p50 {percentile(ms, 50):.1f} ms, p90 {percentile(ms, 90):.1f} ms, "
            f"p99 {percentile(ms, 99):.1f} ms, max {max(ms):.1f} ms")


def by_status(calls: Sequence[Call]) -> Counter[str]:
    return Counter(f"{c.status} {c.outcome}" for c in calls)


def print_counts(title: str, counts: Counter[str], indent: str = "  ") -> None:
    print(f"{indent}{title}")
    for key, n in sorted(counts.items()):
        print(f"{indent}  {key:<34} {n:>7}")


@dataclass
class Check:
    """Targets a run is held to; ``ok`` is False once any fails."""

    results: list[tuple[bool, str]] = field(default_factory=list)

    def expect(self, passed: bool, text: str) -> bool:
        self.results.append((passed, text))
        return passed

    @property
    def ok(self) -> bool:
        return all(passed for passed, _ in self.results)

    def report(self) -> int:
        print("\nTargets")
        for passed, text in self.results:
            print(f"  [{'PASS' if passed else 'FAIL'}] {text}")
        print("RESULT:", "PASS" if self.ok else "FAIL")
        return 0 if self.ok else 1
