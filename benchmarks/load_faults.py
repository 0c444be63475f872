"""The token endpoint under load against a faulty eSputnik (issue 4).

The benchmark site runs under gunicorn (2 workers x 8 threads; APPINBOX_TIMEOUT=1,
APPINBOX_RETRIES=2, the rest the package's defaults) against the fake eSputnik,
which answers a share of the requests with a fault instead of a token:

    delay 5 % (0 to 1.5 s, so a third of them outlast the 1 s timeout), reset 3 %
    (before or in the middle of the answer), 5xx 5 %, 429 4 % (Retry-After 0, 1 or 3 s),
    garbage 3 % (HTML, cut JSON, no token, a token that is not a string, 70 KB)

8 logged-in clients (two load processes) make ``--calls`` token calls (10,000;
2,000 with ``--quick``), bounded by ``--max-seconds``. With 8 threads per worker
no call waits for a thread, so a client sees the endpoint's own time.

It fails (exit status 1) when: an answer is outside the contract (API.md), a
worker crashed (gunicorn's log: boots beyond the first, exits, timeouts; the
first workers' pids must still be alive), the API key shows in an answer or the
log, the slowest answer exceeds the package's time budget
(``flask_appinbox.client.time_budget``: every attempt's timeout and the backoffs
between them, 3.3 s here) plus ``--allowance`` seconds, or not every call ran
before the deadline.

Then, on the same server, hostile requests (issue 17), each answer held to its
expected status, and the gunicorn log's "Traceback" lines counted per case:

- chunked flood: a logged-in client POSTs a ``--flood-mib`` (64) MiB body with
  ``Transfer-Encoding: chunked``, generated as it goes, and stops sending as soon as the
  server answers or closes: a 400, and no worker's memory (VmRSS sampled every 10 ms,
  and VmHWM, from ``/proc/<pid>/status``) grows by more than ``--max-growth-mib`` (10) MiB;
- nested JSON under the 1 KiB limit (``[`` x 1000, ``[`` x 1024, ``{"a":`` x 204, a
  list nested 500 deep), and ``{"a":`` x 1000 (5,000 bytes, over it): 400 each;
- a malformed ``Retry-After`` on every 429 of the fake (``"²"``, 5,000 digits, an HTTP
  date, ``"-1"``, ``"1e9"``): 503 ``upstream_rate_limited`` with a ``Retry-After`` of
  0 to 86,400 seconds in ASCII digits.

    python benchmarks/load_faults.py            # 10,000 calls, about two minutes
    python benchmarks/load_faults.py --quick    # 2,000 calls
    python benchmarks/load_faults.py --calls 0  # the hostile requests only
"""
from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

from flask_appinbox.client import time_budget  # noqa: E402

RATES = {"delay": 0.05, "reset": 0.03, "5xx": 0.05, "429": 0.04, "garbage": 0.03}
ALLOWED = frozenset({"ok", "upstream_error", "upstream_timeout", "upstream_rate_limited",
                     "upstream_busy", "upstream_unavailable"})
TRACEBACK = "Traceback (most recent call last)"
NESTED = {  # name: body; all but the last under the endpoint's 1 KiB limit
    "[ x 1000": b"[" * 1000,
    "[ x 1024": b"[" * 1024,
    '{"a": x 204': b'{"a":' * 204,
    "a list 500 deep": b"[" * 500 + b"]" * 500,
    '{"a": x 1000 (5,000 B)': b'{"a":' * 1000,
}
RETRY_AFTER = {  # name: what the fake sends in Retry-After on every 429
    '"²"': "²",
    "5,000 digits": "9" * 5000,
    "an HTTP date (past)": "Wed, 21 Oct 2015 07:28:00 GMT",
    "an HTTP date (in a year)": None,  # filled in when run
    '"-1"': "-1",
    '"1e9"': "1e9",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 calls, for CI")
    parser.add_argument("--calls", type=int, help="token calls in all (default 10,000; quick 2,000; 0: none)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker (2 workers)")
    parser.add_argument("--rates", default=json.dumps(RATES), help="the fake's fault rates, JSON")
    parser.add_argument("--delay-max", type=float, default=1.5, help="longest injected delay, seconds")
    parser.add_argument("--allowance", type=float, default=0.5,
                        help="seconds over the time budget allowed for server and client overhead")
    parser.add_argument("--max-seconds", type=float, help="the run's deadline (default 600; quick 180)")
    parser.add_argument("--flood-mib", type=int, default=64, help="size of the chunked body, MiB (64)")
    parser.add_argument("--floods", type=int, default=3, help="chunked floods, one after the other (3)")
    parser.add_argument("--max-growth-mib", type=float, default=10.0,
                        help="most a worker's memory may grow in a flood, MiB (10)")
    parser.add_argument("--repeat", type=int, default=10, help="calls per nested body and Retry-After value (10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an APPINBOX_* setting (JSON value); repeatable")
    args = parser.parse_args(argv)
    if args.calls is None:
        args.calls = 2000 if args.quick else 10_000
    if args.max_seconds is None:
        args.max_seconds = 180.0 if args.quick else 600.0
    return args


# -- hostile requests -----------------------------------------------------------------------


class Case:
    """One kind of hostile request: its answers, the problems among them, the tracebacks it left."""

    def __init__(self, group: str, name: str) -> None:
        self.group = group
        self.name = name
        self.answers: Counter[str] = Counter()
        self.problems: Counter[str] = Counter()
        self.tracebacks = 0
        self.note = ""
        self.growth_mib = 0.0  # the chunked flood: the most one worker's memory grew

    def add(self, answer: str, problem: str | None) -> None:
        self.answers[answer] += 1
        if problem:
            self.problems[problem] += 1


def answer_problem(status: int, headers: dict[str, str], body: bytes, expected: int,
                   error: str | None = None) -> str | None:
    """Why an answer is not the expected one (API.md), or ``None``."""
    if status != expected:
        return f"HTTP {status or 'none'}, not {expected}"
    if headers.get("cache-control") != "no-store":
        return f"{status} without Cache-Control: no-store"
    if not headers.get("content-type", "").startswith("application/json"):
        return f"{status} is not JSON"
    if h.API_KEY.encode() in body or any(h.API_KEY in v for v in headers.values()):
        return f"{status} contains the API key"
    try:
        decoded = json.loads(body)
    except ValueError:
        return f"{status} with a body that is not JSON"
    if not isinstance(decoded, dict):
        return f"{status} with a JSON body that is not an object"
    if error is not None and decoded.get("error") != error:
        return f"{status} {decoded.get('error')!r}, not {error!r}"
    return None


def describe(status: int, body: bytes) -> str:
    try:
        decoded = json.loads(body)
        error = decoded.get("error") if isinstance(decoded, dict) else None
    except ValueError:
        error = None
    return f"{status or 'no answer'}" + (f" {error}" if error else "")


def read_answer(sock: socket.socket, deadline: float) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer from ``sock``: status (0: none), headers (lower-case names), body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = _recv(sock, deadline)
        if not chunk:
            return 0, {}, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return 0, {}, data
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    while len(body) < length:
        chunk = _recv(sock, deadline)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def _recv(sock: socket.socket, deadline: float) -> bytes:
    sock.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def chunked_flood(url: str, user: str, total: int, chunk: int = 64 * 1024,
                  timeout: float = 60.0) -> tuple[int, dict[str, str], bytes, int]:
    """POST ``total`` bytes to ``url`` with ``Transfer-Encoding: chunked``, generated as it goes;
    stops sending once the server answers or closes. (status, headers, body, bytes sent)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    origin = f"{parts.scheme}://{parts.netloc}"
    head = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{h.USER_HEADER}: {user}\r\n"
            f"Sec-Fetch-Site: same-origin\r\nOrigin: {origin}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    first = b'{"renew": false, "pad": "' + b"x" * (chunk - 25)
    rest = b"x" * chunk
    deadline = time.monotonic() + timeout
    sent = 0
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(head)
        while sent < total and time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break  # an answer, or the server closed
            data = first if sent == 0 else rest
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))
            except OSError:
                break
            sent += len(data)
        else:
            try:
                sock.sendall(b"0\r\n\r\n")
            except OSError:
                pass
        status, headers, body = read_answer(sock, deadline)
    return status, headers, body, sent


class MemoryWatch:
    """Samples the workers' VmRSS every ``every`` seconds in a thread; the peak growth per worker."""

    def __init__(self, pids: list[int], every: float = 0.01) -> None:
        self.pids = pids
        self.every = every
        self.before = {pid: h.memory_kib(pid) for pid in pids}
        self.peak = {pid: m.get("VmRSS", 0) for pid, m in self.before.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="memory-watch")

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.after = {pid: h.memory_kib(pid) for pid in self.pids}
        for pid, m in self.after.items():
            self.peak[pid] = max(self.peak[pid], m.get("VmRSS", 0))

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for pid in self.pids:
                self.peak[pid] = max(self.peak[pid], h.memory_kib(pid).get("VmRSS", 0))

    def growth_mib(self) -> float:
        """The largest growth of one worker: sampled RSS peak, or VmHWM, over RSS before."""
        most = 0
        for pid in self.pids:
            rss0 = self.before[pid].get("VmRSS", 0)
            hwm_grew = self.after[pid].get("VmHWM", 0) - self.before[pid].get("VmHWM", 0)
            most = max(most, self.peak[pid] - rss0, hwm_grew)
        return most / 1024

    def text(self) -> str:
        return "; ".join(
            f"pid {pid}: RSS {self.before[pid].get('VmRSS', 0) / 1024:.1f} -> peak {self.peak[pid] / 1024:.1f}"
            f" -> {self.after[pid].get('VmRSS', 0) / 1024:.1f} MiB, HWM {self.before[pid].get('VmHWM', 0) / 1024:.1f}"
            f" -> {self.after[pid].get('VmHWM', 0) / 1024:.1f} MiB" for pid in self.pids)


def counted(case: Case, server: h.Server, what: Callable[[], None]) -> Case:
    """Run ``what`` and count the tracebacks it left in the gunicorn log."""
    before = server.log().count(TRACEBACK)
    what()
    time.sleep(0.3)  # gunicorn's captured output reaches the log
    case.tracebacks = server.log().count(TRACEBACK) - before
    return case


def post(url: str, user: str, body: bytes, timeout: float) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    with h.session_for(user, f"{parts.scheme}://{parts.netloc}") as s:
        try:
            r = s.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=timeout)
        except requests.RequestException:
            return 0, {}, b""
        return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content


def hostile(server: h.Server, fake: h.Fake, args: argparse.Namespace, budget: float) -> list[Case]:
    url = server.url + h.TOKEN_PATH
    cases: list[Case] = []

    # a. chunked floods, one at a time, each watched
    flood = Case("a. chunked flood", f"{args.flood_mib} MiB, Transfer-Encoding: chunked")
    growths: list[float] = []
    notes: list[str] = []

    def floods() -> None:
        for i in range(args.floods):
            with MemoryWatch(server.worker_pids) as watch:
                t0 = time.monotonic()
                status, headers, body, sent = chunked_flood(url, f"flood-{i}", args.flood_mib << 20)
                took = time.monotonic() - t0
                time.sleep(0.2)  # a worker still reading the body would grow now
            growths.append(watch.growth_mib())
            flood.add(describe(status, body), answer_problem(status, headers, body, 400))
            notes.append(f"flood {i + 1}: {describe(status, body)} after {sent / 2**20:.2f} MiB sent, "
                         f"{took:.2f} s; {watch.text()}")

    cases.append(counted(flood, server, floods))
    flood.note = "\n".join(notes)
    flood.growth_mib = max(growths, default=0.0)

    # b. nested JSON
    for name, body in NESTED.items():
        case = Case("b. nested JSON", f"{name}, {len(body)} B")

        def nested(case: Case = case, body: bytes = body) -> None:
            for i in range(args.repeat):
                status, headers, text = post(url, f"nested-{i}", body, budget + 30)
                case.add(describe(status, text), answer_problem(status, headers, text, 400))

        cases.append(counted(case, server, nested))

    # c. malformed Retry-After on every 429
    in_a_year = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 365 * 86400))
    for name, value in RETRY_AFTER.items():
        value = value if value is not None else in_a_year
        case = Case("c. malformed Retry-After", name)
        fake.configure(rates={"429": 1.0}, retry_after=[value])
        seen: Counter[str] = Counter()

        def limited(case: Case = case, seen: Counter[str] = seen) -> None:
            for i in range(args.repeat):
                status, headers, text = post(url, f"retry-after-{i}", b'{"renew": false}', budget + 30)
                problem = answer_problem(status, headers, text, 503, "upstream_rate_limited")
                retry_after = headers.get("retry-after")
                if problem is None and not h.sane_retry_after(retry_after):
                    problem = f"503 upstream_rate_limited with Retry-After {(retry_after or '')[:20]!r}"
                case.add(describe(status, text), problem)
                seen[(retry_after or "none")[:12]] += 1

        cases.append(counted(case, server, limited))
        case.note = "the answers' Retry-After: " + ", ".join(f"{k!r} x{n}" for k, n in seen.items())
    fake.configure(rates={}, retry_after=["0", "1", "3"])
    return cases


def print_cases(cases: list[Case]) -> None:
    print("\nHostile requests")
    group = ""
    for case in cases:
        if case.group != group:
            group = case.group
            print(f"  {group}")
        print(f"    {case.name}: " + ", ".join(f"{k} x{n}" for k, n in sorted(case.answers.items()))
              + f"; off-contract {sum(case.problems.values())}, tracebacks {case.tracebacks}")
        for problem, n in case.problems.most_common(4):
            print(f"      {n:>4}  {problem}")
        for line in case.note.splitlines():
            print(f"      {line}")


# -- main -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    h.stop_on_sigterm()
    args = parse_args(argv)
    settings: dict[str, object] = {"APPINBOX_TIMEOUT": 1, "APPINBOX_RETRIES": 2}
    for pair in args.set:
        key, _, value = pair.partition("=")
        settings[key] = json.loads(value)
    value = settings["APPINBOX_TIMEOUT"]
    timeout = (float(value[0]), float(value[1])) if isinstance(value, (list, tuple)) else (float(value), float(value))  # type: ignore[arg-type]
    retries = int(settings["APPINBOX_RETRIES"])  # type: ignore[call-overload]
    budget = time_budget(timeout, retries)  # the package's own: the longest a call takes
    rates = json.loads(args.rates)
    print(f"{args.calls} token calls, {args.clients} clients, gunicorn 2 workers x {args.threads} threads; "
          + ", ".join(f"{k}={v}" for k, v in settings.items()))
    print("fault rates: " + ", ".join(f"{k} {v:.0%}" for k, v in rates.items())
          + f"; delays up to {args.delay_max} s; time budget {budget:.1f} s")

    started = time.monotonic()
    calls: list[h.Call] = []
    with h.fake_esputnik(rates=rates, delay_max=args.delay_max, seed=args.seed) as fake, \
            h.LoadProcesses(2) as loads:
        with h.gunicorn(h.appinbox_env(fake.api_url, **settings), workers=2, threads=args.threads) as server:
            if args.calls:
                load = h.Load("token", "POST", server.url + h.TOKEN_PATH, args.clients, args.max_seconds,
                              json_body={"renew": False}, max_calls=args.calls, allowed=ALLOWED,
                              origin=server.url, timeout=budget + 30)
                calls = loads.run(load, split=2)["token"]
            upstream = fake.stats()
            load_tracebacks = server.log().count(TRACEBACK)
            elapsed = time.monotonic() - started
            cases = hostile(server, fake, args, budget)
            health = server.health()
            log = server.log()

    check = h.Check()
    if calls:
        statuses = h.by_status(calls)
        problems = Counter(c.problem for c in calls if c.problem)
        slowest = max(calls, key=lambda c: c.latency)
        server_times = [c.server_elapsed for c in calls if c.server_elapsed is not None]
        print(f"\n{len(calls)} calls in {elapsed:.1f} s ({len(calls) / elapsed:.0f}/s)")
        h.print_counts("answers by status:", statuses, indent="")
        print(f"answers outside the contract: {sum(problems.values())}")
        for problem, n in problems.most_common(10):
            print(f"  {n:>6}  {problem}")
        print(f"latency (client): {h.latency_summary(calls)}")
        print(f"slowest answer: {slowest.latency:.3f} s (client), {max(server_times, default=0):.3f} s "
              f"(in the app); budget {budget:.1f} s + allowance {args.allowance} s")
        print(f"upstream: {upstream['requests']} requests on {upstream['connections']} connections; "
              + ", ".join(f"{k} {v}" for k, v in sorted(upstream["outcomes"].items())))
        print(f"tracebacks in the log during the load: {load_tracebacks}")
        check.expect(len(calls) == args.calls, f"{len(calls)} of {args.calls} calls ran before the deadline")
        check.expect(not problems, f"load: {sum(problems.values())} answers outside the contract (0)")
        check.expect(slowest.latency <= budget + args.allowance,
                     f"load: slowest answer {slowest.latency:.3f} s <= budget {budget:.1f} s + {args.allowance} s")
        check.expect(statuses.get("200 ok", 0) > 0, f"load: {statuses.get('200 ok', 0)} tokens issued (> 0)")

    print_cases(cases)
    key_log_lines = sum(1 for line in log.splitlines() if h.API_KEY in line)
    print(f"\nworkers: {health}")
    print(f"log: {len(log.splitlines())} lines, the API key in {key_log_lines}, "
          f"{log.count(TRACEBACK)} tracebacks")

    print("\nSummary of the hostile requests")
    rows = [("case", "answers", "off-contract", "tracebacks")]
    for case in cases:
        rows.append((f"{case.group[:2]} {case.name}", ", ".join(f"{k} x{n}" for k, n in sorted(case.answers.items())),
                     str(sum(case.problems.values())), str(case.tracebacks)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        cells = zip(row, widths, strict=True)
        print("  " + "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(cells)))
    flood_growth = cases[0].growth_mib
    print(f"  chunked flood: the most one worker's memory grew: {flood_growth:.1f} MiB "
          f"(<= {args.max_growth_mib:g})")

    check.expect(flood_growth <= args.max_growth_mib,
                 f"a. chunked flood: a worker's memory grew by {flood_growth:.1f} MiB at most "
                 f"(<= {args.max_growth_mib:g})")
    for group in dict.fromkeys(c.group for c in cases):
        mine = [c for c in cases if c.group == group]
        off = sum(sum(c.problems.values()) for c in mine)
        tracebacks = sum(c.tracebacks for c in mine)
        check.expect(off == 0, f"{group}: {off} off-contract answers (0)"
                     + (": " + "; ".join(f"{c.name}: {', '.join(c.problems)}" for c in mine if c.problems)
                        if off else ""))
        check.expect(tracebacks == 0, f"{group}: {tracebacks} tracebacks in the log (0)")
    check.expect(health["crashes"] == 0, f"{health['crashes']} worker crashes (0)")
    check.expect(health["tracebacks"] == 0, f"{health['tracebacks']} tracebacks in the whole log (0)")
    check.expect(key_log_lines == 0, f"the API key in {key_log_lines} log lines (0)")
    return check.report()


if __name__ == "__main__":
    sys.exit(main())
