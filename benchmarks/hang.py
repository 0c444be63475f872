"""A hung eSputnik with every APPINBOX_* key at its default, in the servers most sites run (issue 22).

Setup: the benchmark site (``_app.py``) against the fake eSputnik, with no APPINBOX_* key
but the API key, the site ID and the API URL (the defaults), and side by side in the
same run, on a server and fake of its own, the same with ``--tuned`` (APPINBOX_TIMEOUT=1).
Shapes: gunicorn sync -w 3 (gunicorn's default worker class), gunicorn gthread 2 x 4,
waitress with its defaults (4 threads), uWSGI --processes 3 (no threads), gunicorn gevent x 2.

1. hang: open loop (``_harness.open_loop``, latency counted from when each call was due),
   logged-in token calls at 3/s and the site's other pages (``GET /const``) at 20/s; the
   fake healthy ``--healthy`` s, hanging ``--hang`` s (accepts, reads the request, never
   answers), healthy ``--after`` s. Figures: the share of other pages answered 200 within
   2 s of when they were due, hang / healthy; of the token calls due 5 s or more after the
   fake answered again, the share that got a token.
2. false hang (sync x3 and gthread 2x4): token calls at 10/s; one slow call among answered
   ones (the fake's next request answers after 30 s), then a stall shorter than one read
   timeout (0.6 of it: every request waits, then gets its token). Figure: the calls
   refused (upstream_unavailable/upstream_busy) in each, in seconds of calls.
3. worst hold: the longest one call holds its thread, per failure: a blackholed connect
   (a listening socket whose backlog is full: SYNs go unanswered; checked), a hang, a
   trickled body, a trickled status line and headers (a byte per 0.5 s, a header that
   never ends), a stream of ``100 Continue``. Measured with the EsputnikClient the
   extension builds from the configuration, and through the endpoint on one gunicorn sync
   worker (its 30 s worker timeout applies). A call still held after ``--cap`` s is cut
   by the benchmark (the fake stops the drip) and printed as ">= cap". gunicorn's own 500
   for a worker it killed past its 30 s timeout is printed with the worker timeouts, not
   held to the contract (the site's answers are).

Targets (at the defaults; the tuned setting is printed): other pages during the hang
>= 0.9 x healthy (gevent >= 0.95); tokens after the recovery >= 95 %; a false hang costs
at most about a second of calls (<= 1.5 s); a blackholed connect, a hang and a trickled
body hold a call < 10 s (the trickled head and 100 Continue are printed); in every run
every answer within the contract and no worker crash. Absolute figures are printed, never
gated. ``--quick`` (CI, under 3 minutes, passes with two CPU-bound loops beside it): sync
x3 at the defaults only, a 20 s hang, gating correctness, the ratio (>= 0.9) and the
recovery share. Exit status 1 when a target is missed.

    python benchmarks/hang.py --quick      # about a minute
    python benchmarks/hang.py              # about 10 minutes
    python benchmarks/hang.py --only hang --shape waitress
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

SHAPES: dict[str, tuple[Callable[[dict[str, str]], Any], float]] = {  # name -> (server, target ratio)
    "sync x3": (lambda env: h.gunicorn(env, workers=3, worker_class="sync"), 0.9),
    "gthread 2x4": (lambda env: h.gunicorn(env, workers=2, threads=4, worker_class="gthread"), 0.9),
    "waitress": (lambda env: h.waitress(env), 0.9),
    "uwsgi x3": (lambda env: h.uwsgi(env, processes=3), 0.9),
    "gevent x2": (lambda env: h.gunicorn(env, workers=2, threads=1000, worker_class="gevent"), 0.95),
}
FALSE_HANG_SHAPES = ("sync x3", "gthread 2x4")
RATES = {"token": 3.0, "const": 20.0}
FALSE_RATE = 10.0  # token calls/s in 2
PROMPT = 2.0  # other pages: answered 200 within this many seconds of when they were due
RECOVERED = 5.0  # token calls due this long after the fake answers again must get tokens
CLIENT_TIMEOUT = 30.0  # the load generator's: a later answer counts as none
ANY_OUTCOME = frozenset().union(*h.CONTRACT.values())
REFUSALS = frozenset({"upstream_busy", "upstream_unavailable"})
KINDS = ("connect", "hang", "trickle", "trickle_head", "continue")
KIND_TEXT = {"connect": "blackholed connect", "hang": "hang", "trickle": "trickled body",
             "trickle_head": "trickled status line + headers", "continue": "stream of 100 Continue"}
HOLD_TARGET = 10.0  # seconds: connect, hang and trickled body
FALSE_TARGET = 1.5  # seconds of calls refused: "at most about a second"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI: sync x3 at the defaults, a 20 s hang")
    parser.add_argument("--healthy", type=float, help="healthy seconds before the hang (15; quick 10)")
    parser.add_argument("--hang", type=float, help="seconds eSputnik hangs (40; quick 20)")
    parser.add_argument("--after", type=float, help="healthy seconds after it (20; quick 15)")
    parser.add_argument("--cap", type=float, default=35.0, help="3: the longest a held call is waited for (35)")
    parser.add_argument("--shape", action="append", choices=SHAPES, help="1: a shape to run (repeatable; all)")
    parser.add_argument("--only", default="hang,false,hold", help="scenarios: hang,false,hold (all)")
    parser.add_argument("--tuned", action="append", default=[], metavar="KEY=VALUE",
                        help="the tuned setting beside the defaults (APPINBOX_TIMEOUT=1); repeatable")
    args = parser.parse_args(argv)
    quick = args.quick
    args.healthy = args.healthy or (10.0 if quick else 15.0)
    args.hang = args.hang or (20.0 if quick else 40.0)
    args.after = args.after or (15.0 if quick else 20.0)
    args.shape = args.shape or (["sync x3"] if quick else list(SHAPES))
    args.only = ["hang"] if quick else [s.strip() for s in args.only.split(",") if s.strip()]
    tuned = {}
    for pair in args.tuned or ["APPINBOX_TIMEOUT=1"]:
        key, _, value = pair.partition("=")
        tuned[key] = json.loads(value)
    args.variants = {"defaults": {}} if quick else {"defaults": {}, "tuned": tuned}
    if args.after <= RECOVERED + 2:
        parser.error(f"--after must be more than {RECOVERED + 2:.0f} s")
    return args


def sleep_until(when: float) -> None:
    wait = when - time.monotonic()
    if wait > 0:
        time.sleep(wait)


def fmt(x: float, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def app_client(settings: dict[str, Any], api_url: str) -> Any:
    """The EsputnikClient the extension builds from this configuration (its guard included)."""
    import _app

    app = _app.create_app(APPINBOX_API_URL=api_url, **settings)
    return app.extensions["appinbox"].client_for(_app.API_KEY)


def read_timeout(settings: dict[str, Any]) -> float:
    timeout = app_client(settings, "http://127.0.0.1:9/api").timeout
    return float(timeout[1] if isinstance(timeout, (tuple, list)) else timeout)


def open_load(server: h.Server, variant: str, kind: str, rate: float, duration: float,
              first_user: int = 1) -> h.OpenLoad:
    workers = min(2000, max(256, math.ceil(rate * (CLIENT_TIMEOUT + 1))))
    if kind == "token":
        return h.OpenLoad(f"{variant} token", "POST", server.url + h.TOKEN_PATH, rate, duration,
                          json_body={"renew": False}, users=500, first_user=first_user, allowed=ANY_OUTCOME,
                          timeout=CLIENT_TIMEOUT, origin=server.url, workers=workers)
    return h.OpenLoad(f"{variant} const", "GET", server.url + "/const", rate, duration, users=500,
                      first_user=first_user + 1000, timeout=CLIENT_TIMEOUT, origin=server.url, workers=workers)


@contextmanager
def pairs(shape: str, variants: dict[str, dict[str, Any]]) -> Iterator[dict[str, tuple[h.Fake, h.Server]]]:
    """A fake and a server of ``shape`` per variant, started one after the other, stopped together."""
    start, _ = SHAPES[shape]
    with ExitStack() as stack:
        out = {}
        for variant, settings in variants.items():
            fake = stack.enter_context(h.fake_esputnik())
            out[variant] = (fake, stack.enter_context(start(h.appinbox_env(fake.api_url, **settings))))
        yield out


class Tally:
    """Correctness over every run: answers outside the contract, calls never answered, worker crashes."""

    def __init__(self) -> None:
        self.problems: dict[str, int] = {}
        self.crashes: dict[str, int] = {}

    def add(self, label: str, calls: list[h.Call], server: h.Server | None = None) -> None:
        bad = [c for c in calls if c.problem and c.status != 0]
        for c in bad[:3]:
            print(f"      off-contract ({label}): {c.problem}")
        self.problems[label] = self.problems.get(label, 0) + len(bad)
        if server is not None:
            health = server.health()
            self.crashes[label] = self.crashes.get(label, 0) + health["crashes"]
            if health["crashes"]:
                print(f"      worker crashes ({label}): {health}")


# -- 1. the hang ------------------------------------------------------------------------------


def hang_run(shape: str, args: argparse.Namespace, loads: h.LoadProcesses, tally: Tally) -> dict[str, dict[str, Any]]:
    marks: dict[str, float] = {}
    total = args.healthy + args.hang + args.after
    with pairs(shape, args.variants) as running:
        warm = [open_load(s, v, kind, rate, 1.0) for v, (_, s) in running.items() for kind, rate in RATES.items()]
        for variant_kind, calls in loads.run_open(*warm).items():
            tally.add(f"{shape} {variant_kind} warm-up", calls)
        for fake, _ in running.values():
            fake.reset()

        def during(start_at: float) -> None:
            marks["A"] = start_at
            sleep_until(start_at + args.healthy)
            for fake, _ in running.values():
                fake.configure(mode="hang")
            marks["B"] = time.monotonic()
            sleep_until(start_at + args.healthy + args.hang)
            for fake, _ in running.values():
                fake.configure(mode="healthy")  # also lets the hung connections go
            marks["C"] = time.monotonic()
            marks["end"] = start_at + total

        loads_now = [open_load(s, v, kind, rate, total) for v, (_, s) in running.items()
                     for kind, rate in RATES.items()]
        calls = loads.run_open(*loads_now, during=during)
        out = {}
        for variant, (fake, server) in running.items():
            for kind in RATES:
                tally.add(f"{shape} {variant} {kind}", calls[f"{variant} {kind}"])
            tally.add(f"{shape} {variant}", [], server)
            out[variant] = hang_figures(calls[f"{variant} token"], calls[f"{variant} const"], marks)
            depths = [int(x) for x in re.findall(r"Task queue depth is (\d+)", server.log())]
            out[variant]["queue"] = max(depths, default=0)
            out[variant]["upstream"] = fake.stats()
    for variant, f in out.items():
        print(f"  {shape}, {variant}: other pages within {PROMPT:.0f} s: healthy {f['prompt_a']:.1%}, hang "
              f"{f['prompt_b']:.1%} ({f['ratio']:.2f} x), after {f['prompt_c']:.1%}; not answered within "
              f"{CLIENT_TIMEOUT:.0f} s in the hang {f['lost_b']} of {f['n_b']}; latency from due in the hang: "
              f"p50 {fmt(f['p50_b'])} s, p99 {fmt(f['p99_b'])} s")
        print(f"      tokens due >= {RECOVERED:.0f} s after the recovery: {f['recovered']:.1%} of {f['n_late']}; "
              f"first token due {fmt(f['first_token'], 1)} s after it; token answers in the hang: {f['tokens_b']}; "
              f"first refusal {fmt(f['first_refusal'], 1)} s into it"
              + (f"; waitress task queue depth up to {f['queue']}" if f["queue"] else ""))
        print(f"      upstream: {f['upstream']['requests']} requests on {f['upstream']['connections']} connections")
    return out


def hang_figures(token: list[h.Call], const: list[h.Call], marks: dict[str, float]) -> dict[str, Any]:
    windows = {"a": (marks["A"], marks["B"]), "b": (marks["B"], marks["C"]), "c": (marks["C"], marks["end"])}

    def due_in(calls: list[h.Call], phase: str) -> list[h.Call]:
        lo, hi = windows[phase]
        return [c for c in calls if c.due is not None and lo <= c.due < hi]

    def from_due(c: h.Call) -> float:
        return c.start - (c.due or c.start) + c.latency

    def prompt(phase: str) -> float:
        some = due_in(const, phase)
        return sum(1 for c in some if c.status == 200 and from_due(c) <= PROMPT) / len(some) if some else math.nan

    f: dict[str, Any] = {f"prompt_{p}": prompt(p) for p in windows}
    f["ratio"] = f["prompt_b"] / f["prompt_a"] if f["prompt_a"] else math.nan
    in_b = due_in(const, "b")
    f["n_b"], f["lost_b"] = len(in_b), sum(1 for c in in_b if c.status == 0)
    answered_b = [from_due(c) for c in in_b if c.status != 0]
    f["p50_b"], f["p99_b"] = h.percentile(answered_b, 50), h.percentile(answered_b, 99)
    late = [c for c in token if c.due is not None and c.due >= marks["C"] + RECOVERED]
    f["n_late"] = len(late)
    f["recovered"] = sum(1 for c in late if c.status == 200) / len(late) if late else math.nan
    back = [c.due - marks["C"] for c in token if c.due is not None and c.due >= marks["C"] and c.status == 200]
    f["first_token"] = min(back, default=math.nan)
    f["tokens_b"] = ", ".join(f"{k} {n}" for k, n in sorted(h.by_status(due_in(token, "b")).items()))
    refused = [c.start + c.latency - marks["B"] for c in token if c.outcome in REFUSALS and c.start >= marks["B"]]
    f["first_refusal"] = min(refused, default=math.nan)
    return f


# -- 2. a false hang ----------------------------------------------------------------------------


def false_hang_run(shape: str, args: argparse.Namespace, loads: h.LoadProcesses,
                   tally: Tally) -> dict[str, dict[str, Any]]:
    """Token calls at FALSE_RATE: 4 s healthy, one slow call (10 s window), a stall of 0.6 read timeout
    (10 s window)."""
    stalls = {v: 0.6 * read_timeout(s) for v, s in args.variants.items()}
    marks: dict[str, float] = {}
    with pairs(shape, args.variants) as running:
        warm = [open_load(s, v, "token", FALSE_RATE, 1.0) for v, (_, s) in running.items()]
        for variant_kind, calls in loads.run_open(*warm).items():
            tally.add(f"false {shape} {variant_kind} warm-up", calls)

        def during(start_at: float) -> None:
            marks["slow"] = start_at + 4
            sleep_until(marks["slow"])
            for fake, _ in running.values():
                fake.configure(slow_next=1, slow_for=30.0)
            marks["stall"] = start_at + 14
            sleep_until(marks["stall"])
            for fake, _ in running.values():
                fake.configure(mode="stall")
            ends = sorted((marks["stall"] + stall, v) for v, stall in stalls.items())
            for when, variant in ends:
                sleep_until(when)
                running[variant][0].configure(mode="healthy")
            marks["end"] = start_at + 24

        calls = loads.run_open(*[open_load(s, v, "token", FALSE_RATE, 24.0) for v, (_, s) in running.items()],
                               during=during)
        out = {}
        for variant, (_, server) in running.items():
            mine = calls[f"{variant} token"]
            tally.add(f"false {shape} {variant}", mine, server)

            def refused(lo: float, hi: float, mine: list[h.Call] = mine) -> int:
                return sum(1 for c in mine if c.due is not None and lo <= c.due < hi and c.outcome in REFUSALS)

            out[variant] = {"slow": refused(marks["slow"], marks["stall"]) / FALSE_RATE,
                            "stall": refused(marks["stall"], marks["end"]) / FALSE_RATE,
                            "stall_s": stalls[variant],
                            "answers": ", ".join(f"{k} {n}" for k, n in sorted(h.by_status(mine).items()))}
    for variant, f in out.items():
        print(f"  {shape}, {variant}: one slow call: {f['slow'] * FALSE_RATE:.0f} refused ({f['slow']:.1f} s of "
              f"calls); a {f['stall_s']:.1f} s stall: {f['stall'] * FALSE_RATE:.0f} refused ({f['stall']:.1f} s); "
              f"answers: {f['answers']}")
    return out


# -- 3. the worst hold -----------------------------------------------------------------------------


@contextmanager
def blackhole() -> Iterator[str]:
    """A URL whose connects are never answered: a listening socket with a full backlog, never accepting."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):  # the accept queue holds backlog + 1; then SYNs are dropped
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        time.sleep(0.2)
        probe = socket.socket()
        probe.settimeout(1.5)
        try:
            probe.connect(("127.0.0.1", port))
            raise RuntimeError("the blackhole accepted a connection: its connects are not unanswered")
        except TimeoutError:
            pass  # as it should
        finally:
            probe.close()
        yield f"http://127.0.0.1:{port}/api"
    finally:
        for s in fillers:
            s.close()
        listener.close()


def timed(call: Callable[[], Any], cap: float, stop: Callable[[], None]) -> tuple[float, str]:
    """Seconds ``call`` held its thread (``cap`` when still running then: ``stop`` ends it) and its outcome."""
    found: list[str] = []

    def run() -> None:
        try:
            found.append(f"ok {str(call())[:12]}")
        except Exception as exc:  # noqa: BLE001 - the outcome is printed
            found.append(f"{type(exc).__name__}: {str(exc)[:60]}")

    t0 = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(cap)
    held = time.monotonic() - t0
    if thread.is_alive():
        stop()
        thread.join(30)
        return math.inf, f"still held at {cap:.0f} s; then {found[0] if found else '?'}"
    return held, found[0]


def hold_run(args: argparse.Namespace, tally: Tally) -> dict[tuple[str, str, str], tuple[float, str]]:
    """(where, variant, kind) -> (seconds held, outcome); where: "client" or "endpoint"."""
    out: dict[tuple[str, str, str], tuple[float, str]] = {}
    contact = {"email": "hold@example.com", "externalCustomerId": "hold"}
    with ExitStack() as stack:
        fakes = {k: stack.enter_context(h.fake_esputnik(mode=k, trickle_every=0.5)) for k in KINDS if k != "connect"}
        urls = {"connect": stack.enter_context(blackhole()), **{k: f.api_url for k, f in fakes.items()}}
        endpoint = {v: stack.enter_context(h.fake_esputnik(trickle_every=0.5)) for v in args.variants}
        servers = {v: stack.enter_context(h.gunicorn(h.appinbox_env(endpoint[v].api_url, **s), workers=1,
                                                       worker_class="sync")) for v, s in args.variants.items()}

        killed = dict.fromkeys(args.variants, 0)

        def client(variant: str, kind: str) -> None:
            c = app_client(args.variants[variant], urls[kind])
            out["client", variant, kind] = timed(lambda: c.contact_token(contact), args.cap, lambda: None)

        def through(variant: str) -> None:
            fake, server = endpoint[variant], servers[variant]
            for kind in KINDS[1:]:
                fake.configure(mode=kind)
                with h.session_for(1, server.url) as s:
                    call = h.request_call(s, "hold", "POST", server.url + h.TOKEN_PATH, json_body={},
                                          timeout=args.cap, check=h.token_checker(set(ANY_OUTCOME)))
                fake.configure(mode="healthy")
                if call.problem and call.status == 500 and "WORKER TIMEOUT" in server.log():
                    killed[variant] += 1  # gunicorn's own 500: it killed the worker held past its timeout
                else:
                    tally.add(f"hold endpoint {variant}", [call])
                held = call.latency if call.status else math.inf
                out["endpoint", variant, kind] = (held, f"{call.status} {call.outcome}")
                # The next kind starts from a site that serves tokens again (a killed worker rebooted, the
                # guard's hang ended by a probe).
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    with h.session_for(1, server.url) as s:
                        again = h.request_call(s, "hold", "POST", server.url + h.TOKEN_PATH, json_body={},
                                               timeout=args.cap, check=h.token_checker(set(ANY_OUTCOME)))
                    tally.add(f"hold endpoint {variant}", [again])
                    if again.status == 200:
                        break
                    time.sleep(0.5)

        threads = [threading.Thread(target=client, args=(v, k), daemon=True) for v in args.variants for k in KINDS]
        threads += [threading.Thread(target=through, args=(v,), daemon=True) for v in args.variants]
        for t in threads:
            t.start()
        deadline = time.monotonic() + args.cap + 10
        while any(t.is_alive() for t in threads[:-len(args.variants)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        for fake in fakes.values():
            fake.configure(mode="healthy")  # the drips end (clients still held are cut)
        for t in threads:
            t.join(5 * (args.cap + 10))
        for variant, server in servers.items():
            health = server.health()
            out["endpoint", variant, "worker"] = (float(health["timeouts"]), f"{killed[variant]} 500s")
            tally.add(f"hold endpoint {variant}", [], None)
    for (where, variant, kind), (held, outcome) in sorted(out.items()):
        if kind != "worker":
            print(f"  {where:<8} {variant:<8} {KIND_TEXT[kind]:<31} {fmt(held, 1):>6} s  {outcome}")
    return out


# -- main ---------------------------------------------------------------------------------------------


class Table:
    def __init__(self, check: h.Check, variants: list[str]) -> None:
        self.check, self.variants = check, variants
        self.rows: list[list[str]] = []

    def row(self, what: str, values: list[str], target: str = "-", passed: bool | None = None,
            text: str = "") -> None:
        if passed is not None:
            self.check.expect(passed, text)
        self.rows.append([what, *values, *[""] * (len(self.variants) - len(values)), target])

    def print(self) -> None:
        head = ["figure", *self.variants, "target (defaults)"]
        widths = [max(len(r[i]) for r in [head, *self.rows]) for i in range(len(head))]
        for r in [head, *self.rows]:
            print("  " + "  ".join(c.ljust(w) if i in (0, len(r) - 1) else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(r, widths, strict=True))))


def main(argv: list[str] | None = None) -> int:
    h.stop_on_sigterm()
    args = parse_args(argv)
    started = time.monotonic()
    names = list(args.variants)
    print("variants: " + "; ".join(f"{v}: " + (", ".join(f"{k}={x}" for k, x in s.items()) or "every APPINBOX_* "
                                                "key at its default") for v, s in args.variants.items()))
    print("read timeout: " + ", ".join(f"{v} {read_timeout(s):g} s" for v, s in args.variants.items()))
    check, tally = h.Check(), Tally()
    table = Table(check, names)

    if "hang" in args.only:
        print(f"\n== 1. hang: healthy {args.healthy:.0f} s, hang {args.hang:.0f} s, healthy {args.after:.0f} s; "
              f"token calls {RATES['token']:.0f}/s, other pages {RATES['const']:.0f}/s, open loop", flush=True)
        with h.LoadProcesses(2 * len(names)) as loads:
            for shape in args.shape:
                figs = retried(lambda: hang_run(shape, args, loads, tally), shape)  # noqa: B023
                target = SHAPES[shape][1]
                d = figs["defaults"]
                table.row(f"{shape}: other pages within {PROMPT:.0f} s, hang / healthy",
                          [fmt(figs[v]["ratio"]) for v in names], f">= {target}", d["ratio"] >= target,
                          f"{shape}: other pages answered within {PROMPT:.0f} s during the hang "
                          f"{d['ratio']:.2f} x healthy (>= {target})")
                table.row(f"{shape}:   healthy / hang / not answered",
                          [f"{figs[v]['prompt_a']:.1%} / {figs[v]['prompt_b']:.1%} / {figs[v]['lost_b']}"
                           for v in names])
                table.row(f"{shape}: tokens due >= {RECOVERED:.0f} s after recovery",
                          [f"{figs[v]['recovered']:.1%}" for v in names], ">= 95 %", d["recovered"] >= 0.95,
                          f"{shape}: {d['recovered']:.1%} of the {d['n_late']} token calls due >= "
                          f"{RECOVERED:.0f} s after the recovery got a token (>= 95 %)")
                table.row(f"{shape}:   first token, s after recovery", [fmt(figs[v]["first_token"], 1) for v in names])

    if "false" in args.only:
        print(f"\n== 2. false hang: token calls {FALSE_RATE:.0f}/s; one slow call, then a stall of 0.6 read "
              "timeout", flush=True)
        with h.LoadProcesses(len(names)) as loads:
            for shape in FALSE_HANG_SHAPES:
                figs = retried(lambda: false_hang_run(shape, args, loads, tally), shape)  # noqa: B023
                for case, label in (("slow", "one slow call"), ("stall", "a stall < 1 timeout")):
                    d = figs["defaults"][case]
                    table.row(f"{shape}: {label}, s of calls refused", [fmt(figs[v][case], 1) for v in names],
                              f"<= {FALSE_TARGET}", d <= FALSE_TARGET,
                              f"{shape}: {label} refuses {d:.1f} s of calls (<= {FALSE_TARGET})")

    if "hold" in args.only:
        print(f"\n== 3. worst hold per failure (cap {args.cap:.0f} s)", flush=True)
        holds = hold_run(args, tally)
        for kind in KINDS:
            for where in ("client", "endpoint"):
                if (where, "defaults", kind) not in holds:
                    continue
                d = holds[where, "defaults", kind][0]
                gated = kind in ("connect", "hang", "trickle")
                table.row(f"hold, {where}: {KIND_TEXT[kind]}, s",
                          [fmt(holds[where, v, kind][0], 1).replace("inf", f">= {args.cap:.0f}") for v in names],
                          f"< {HOLD_TARGET:.0f}" if gated else "printed", d < HOLD_TARGET if gated else None,
                          f"{where}: a {KIND_TEXT[kind]} holds a call {fmt(d, 1)} s (< {HOLD_TARGET:.0f})")
        table.row("hold, endpoint: gunicorn worker timeouts (its 500s)",
                  [f"{holds['endpoint', v, 'worker'][0]:.0f} ({holds['endpoint', v, 'worker'][1]})" for v in names])

    problems, crashes = sum(tally.problems.values()), sum(tally.crashes.values())
    table.row("every run: off-contract answers", [str(problems)], "0", problems == 0,
              f"{problems} answers outside the contract (0)")
    table.row("every run: worker crashes", [str(crashes)], "0", crashes == 0, f"{crashes} worker crashes (0)")
    print("\nSummary (targets hold at the defaults; the tuned column is printed)")
    table.print()
    print(f"elapsed {time.monotonic() - started:.0f} s")
    print(f"command: {shlex.join(sys.orig_argv)}")
    return check.report()


def retried(what: Callable[[], Any], label: str) -> Any:
    """Once more when a server fails to boot (a port race)."""
    try:
        return what()
    except RuntimeError as exc:
        if "did not start" not in str(exc) and "exited" not in str(exc):
            raise
        print(f"  {label}: the server did not start, once more in 5 s ({str(exc).splitlines()[0]})", flush=True)
        time.sleep(5)
        return what()


if __name__ == "__main__":
    sys.exit(main())
