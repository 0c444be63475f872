"""The outage guard under open-loop load, against the same server with the guard
off (APPINBOX_GUARD=False: retries alone, nothing refused locally), side by side
in one run: does it cost page views when eSputnik is merely flaky, does it stop
the retries when eSputnik is down, does it keep the site up when eSputnik hangs,
and what does it leave of the endpoint's capacity? (issue 18)

The benchmark site runs under gunicorn against the fake eSputnik with
APPINBOX_TIMEOUT=1 and APPINBOX_RETRIES=2, each run with a fresh fake and server.
The load is open loop (``_harness.open_loop``: call i is due at start + i / rate
whatever the earlier calls are doing; a call that starts late keeps its due time,
and the lateness is printed), in load processes of their own, users cycling over
500. A client gives up after ``3 * timeout + 2 * 1 s + 2 s`` (7 s): a later answer
counts as none. Everything is counted at the fake (upstream attempts) and from the
answers (tokens, refusals: ``upstream_busy`` and ``upstream_unavailable``), never
from the package's log.

a. flaky: 2 workers x ``--flaky-threads`` (16) threads, 100 token calls/s for
   ``--duration`` s; each upstream attempt fails with probability p (half 5xx, a
   quarter reset, a quarter "slow": a token after 1.5 s, past the 1 s timeout).
   The share of page views (calls) that got a token, guard on and off, in
   alternating order. Targets: p = 0.3: on >= off - 2 points; p = 0.5: on >= 0.9 x
   off; p = 0.7: on >= 0.5 x off (p = 0.9 printed). Why 16 threads: with 2 x 4 the
   offered load is more than the threads can carry with or without the guard, and
   what is served is the queue's noise, not the guard.
b. total 5xx outage: every attempt gets a 5xx, 100 calls/s for ``--duration`` s.
   Upstream attempts per call over the whole run, learning included (the fake's
   count of requests from the first call on / the calls issued). Target: on <= 1.2.
   Off is printed (its threads, not its rule, bound it).
c. hang and recovery, gthread 2 x 4: GET /const at 100/s beside token calls at
   80/s; phase A healthy (latency 50 ms), B the fake hangs, C healthy again,
   ``--phase`` s each. Targets: the constant route's throughput (200s completed
   within the phase) B / A >= 0.90; of the token calls due 2 s or more after the
   fake recovered, >= 95 % got a token. Guard on (off printed in the full run).
   Printed beside it: the share of the constant route's calls answered within 1 s,
   B / A (a backlog served late in the phase counts in the throughput, not here),
   and when the first token call was refused.
d. capacity against a 100 ms eSputnik, closed loop on purpose (browsers): one
   gevent worker (--worker-connections 1000) with 64 clients back to back: tokens/s
   printed, target 0 refusals; gthread 2 x 4 with 16 clients: tokens/s and its ratio
   to 8 threads / 0.1 s printed, no target beyond e. Guard on.
e. in every run: every answer within the contract (API.md; the constant route:
   200), no worker crash; with the guard off, 0 refusals.

Absolute rates are printed, never gated: what is held is correctness and ratios
measured side by side. ``--quick`` (CI: under 3 minutes, and it must pass with
other work on the machine) runs a at p = 0.5 only, b, c and d with the guard on
only, and holds what stays true on a busy machine: e, b, the recovery share of c,
and p = 0.5 (``QUICK_P05``: on >= 0.9 x off, as in the full run); the rest is printed.

``--set KEY=VALUE`` changes a setting in every run (the off runs keep the guard
off). ``--only a,c`` runs some of the scenarios. Exit status 1 when a target is
missed.

    python benchmarks/guard.py --quick     # CI: under 3 minutes
    python benchmarks/guard.py             # about 8 minutes
    python benchmarks/guard.py --only a --p 0.5 --p 0.7
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

T = TypeVar("T")
BASE = {"APPINBOX_TIMEOUT": 1, "APPINBOX_RETRIES": 2}
OFF = {"APPINBOX_GUARD": False}
ANY_OUTCOME = frozenset().union(*h.CONTRACT.values())
REFUSALS = frozenset({"upstream_busy", "upstream_unavailable"})
SCENARIOS = ("a", "b", "c", "d")
RECOVERED = 2.0  # c: calls due this long after the fake recovered must get tokens
PROMPT = 1.0  # c: a constant-route answer slower than this is printed as a stalled page view
BACKOFF_MAX = 1.0  # seconds: the longest wait between two attempts the client timeout allows for
# a: p -> (the rule, its text); on and off are shares of the calls served.
FLAKY_TARGETS: dict[float, tuple[Callable[[float, float], bool], str]] = {
    0.3: (lambda on, off: on >= off - 0.02, "on >= off - 2 points"),
    0.5: (lambda on, off: on >= 0.9 * off, "on >= 0.9 x off"),
    0.7: (lambda on, off: on >= 0.5 * off, "on >= 0.5 x off"),
}
# --quick: p = 0.5 with 10-s runs. Measured on the small core, 6 runs (4 with two CPU-bound loops beside,
# seeds 1-3): on / off 1.00-1.01; the share served varies by ~1.2 points (binomial, 1,000 calls), so 0.9 is
# ~6 standard deviations away, and a cliff (0.2's breaker: 0.16-0.75) still fails it.
QUICK_P05 = 0.9


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer cases and targets, for CI")
    parser.add_argument("--duration", type=float, help="seconds of load in a, b and d (default 20; quick 10)")
    parser.add_argument("--phase", type=float, help="seconds per phase in c (default 10, quick 6)")
    parser.add_argument("--p", type=float, action="append", help="a: a fault probability (repeatable; "
                        "default 0.3, 0.5, 0.7, 0.9; quick 0.5)")
    parser.add_argument("--rate", type=float, default=100.0, help="token calls/s in a and b (100)")
    parser.add_argument("--flaky-threads", type=int, default=16, help="a: gunicorn threads per worker (16)")
    parser.add_argument("--seed", type=int, default=1, help="the fake's fault draws (1)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios to run, e.g. a,c (all)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an APPINBOX_* setting for every run (JSON value); repeatable")
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 10.0 if args.quick else 20.0
    if args.phase is None:
        args.phase = 6.0 if args.quick else 10.0
    if args.p is None:
        args.p = [0.5] if args.quick else [0.3, 0.5, 0.7, 0.9]
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {','.join(SCENARIOS)}")
    if args.phase <= RECOVERED + 1:
        parser.error(f"--phase must be more than {RECOVERED + 1:.0f} s")
    return args


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            settings[key] = json.loads(value)
        except ValueError:
            settings[key] = value
    return settings


def client_timeout(settings: dict[str, Any]) -> float:
    """The endpoint's longest answer (every attempt times out, a second between attempts) + 2 s.
    ``APPINBOX_TIMEOUT``: a number or a (connect, read) pair."""
    retries, timeout = int(settings["APPINBOX_RETRIES"]), settings["APPINBOX_TIMEOUT"]
    per_attempt = sum(map(float, timeout)) if isinstance(timeout, (list, tuple)) else float(timeout)
    return (retries + 1) * per_attempt + retries * BACKOFF_MAX + 2


def fmt(x: float, digits: int = 2) -> str:
    return "-" if math.isnan(x) else f"{x:.{digits}f}"


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def sleep_until(when: float) -> None:
    wait = when - time.monotonic()
    if wait > 0:
        time.sleep(wait)


# -- one run --------------------------------------------------------------------------------


class Run:
    """What one server run leaves: its calls by kind, its health, the fake's counts."""

    def __init__(self, name: str, variant: str) -> None:
        self.name = name
        self.variant = variant  # "on" or "off"
        self.calls: dict[str, list[h.Call]] = {}
        self.health: dict[str, Any] = {}
        self.upstream: dict[str, Any] = {}

    def off_contract(self) -> Counter[str]:
        """Answers outside the contract (calls with no answer are counted apart)."""
        return Counter(f"{kind}: {c.problem}" for kind, calls in self.calls.items()
                       for c in calls if c.problem and c.status != 0)

    def no_answer(self) -> Counter[str]:
        return Counter(f"{kind}: {c.outcome}" for kind, calls in self.calls.items()
                       for c in calls if c.status == 0)

    def refusals(self) -> int:
        return sum(1 for calls in self.calls.values() for c in calls if c.outcome in REFUSALS)

    def crashes(self) -> int:
        return int(self.health.get("crashes", 0))


def open_load(server: h.Server, kind: str, rate: float, duration: float, timeout: float,
              first_user: int = 1) -> h.OpenLoad:
    # Enough threads that the generator does not run out while the calls in flight wait for the client timeout.
    workers = min(2000, max(256, math.ceil(rate * (timeout + 1))))
    if kind == "token":
        return h.OpenLoad("token", "POST", server.url + h.TOKEN_PATH, rate, duration, json_body={"renew": False},
                          users=500, first_user=first_user, allowed=ANY_OUTCOME, timeout=timeout,
                          origin=server.url, workers=workers)
    return h.OpenLoad("const", "GET", server.url + "/const", rate, duration, users=500, first_user=first_user,
                      timeout=timeout, origin=server.url, workers=workers)


def warm_up(server: h.Server, loads: h.LoadProcesses, rates: dict[str, float], timeout: float,
            run: Run) -> None:
    """A second of the same load against a healthy fake: connections, first requests. Its
    answers are held to the contract too."""
    calls = loads.run_open(*(open_load(server, kind, rate, 1.0, timeout, first_user=1 + 1000 * i)
                             for i, (kind, rate) in enumerate(rates.items())))
    for kind, some in calls.items():
        run.calls[f"warm-up {kind}"] = some


def served_share(calls: list[h.Call]) -> float:
    return sum(1 for c in calls if c.status == 200) / len(calls) if calls else float("nan")


def describe_calls(label: str, calls: list[h.Call], duration: float, indent: str = "    ") -> None:
    late = [x * 1000 for x in h.lateness(calls)]
    answered = [c for c in calls if c.status != 0]
    print(f"{indent}{label}: {len(calls)} calls, offered {h.offered_rate(calls, duration):.1f}/s; "
          f"start lateness p50 {h.percentile(late, 50):.1f} ms, p99 {h.percentile(late, 99):.1f} ms, "
          f"max {max(late, default=float('nan')):.1f} ms")
    print(f"{indent}  latency (answered): {h.latency_summary(answered)}")
    print(f"{indent}  answers: " + ", ".join(f"{k} {n}" for k, n in sorted(h.by_status(calls).items())))


def describe_run(run: Run) -> None:
    problems, missing = run.off_contract(), run.no_answer()
    health = run.health
    print(f"    off-contract answers {sum(problems.values())}, no answer within the client timeout "
          f"{sum(missing.values())}, refusals {run.refusals()}, worker crashes {run.crashes()}"
          + (f" ({health})" if run.crashes() else ""))
    for problem, n in problems.most_common(6):
        print(f"      {n:>6}  {problem}")
    if run.upstream:
        up = run.upstream
        print(f"    upstream: {up['requests']} requests on {up['connections']} connections; "
              + ", ".join(f"{k} {v}" for k, v in sorted(up["outcomes"].items())))


# -- the scenarios ---------------------------------------------------------------------------


def flaky(p: float, variant: str, settings: dict[str, Any], args: argparse.Namespace,
          loads: h.LoadProcesses) -> tuple[Run, dict[str, float]]:
    """a: the share of token calls served, and attempts per call, against an eSputnik failing attempts with p."""
    run = Run(f"a p={p} {variant}", variant)
    timeout = client_timeout(settings)
    with h.fake_esputnik(seed=args.seed, slow_for=1.5) as fake, \
            h.gunicorn(h.appinbox_env(fake.api_url, **settings), workers=2, threads=args.flaky_threads) as server:
        warm_up(server, loads, {"token": args.rate}, timeout, run)
        fake.configure(rates=flaky_rates(p), seed=args.seed)
        fake.reset()
        calls = loads.run_open(open_load(server, "token", args.rate, args.duration, timeout))["token"]
        run.calls["token"] = calls
        run.upstream = fake.stats()
        run.health = server.health()
    figures = {"served": served_share(calls), "attempts": ratio(run.upstream["requests"], len(calls)),
               "refusals": sum(1 for c in calls if c.outcome in REFUSALS)}
    print(f"  a. p={p} guard {variant}: {figures['served']:.1%} of the calls got a token; "
          f"{figures['attempts']:.2f} upstream attempts per call; {figures['refusals']} refusals")
    describe_calls("token", calls, args.duration)
    describe_run(run)
    return run, figures


def flaky_rates(p: float) -> dict[str, float]:
    """The fake's fault rates for an attempt failure probability ``p``."""
    return {"5xx": p / 2, "reset": p / 4, "slow": p / 4} if p > 0 else {}


def outage(variant: str, settings: dict[str, Any], args: argparse.Namespace,
           loads: h.LoadProcesses) -> tuple[Run, dict[str, float]]:
    """b: upstream attempts per token call over a whole run in which every attempt gets a 5xx."""
    run = Run(f"b {variant}", variant)
    timeout = client_timeout(settings)
    with h.fake_esputnik(seed=args.seed) as fake, \
            h.gunicorn(h.appinbox_env(fake.api_url, **settings), workers=2, threads=4) as server:
        warm_up(server, loads, {"token": args.rate}, timeout, run)
        fake.configure(rates={"5xx": 1.0})
        fake.reset()
        calls = loads.run_open(open_load(server, "token", args.rate, args.duration, timeout))["token"]
        run.calls["token"] = calls
        run.upstream = fake.stats()
        run.health = server.health()
    answered = sum(1 for c in calls if c.status != 0)
    figures = {"per_call": ratio(run.upstream["requests"], len(calls)), "refusals": run.refusals()}
    print(f"  b. guard {variant}: {figures['per_call']:.3f} upstream attempts per token call "
          f"({run.upstream['requests']} attempts for {len(calls)} calls, {answered} answered in time, "
          f"{figures['refusals']} refused)")
    describe_calls("token", calls, args.duration)
    describe_run(run)
    return run, figures


def hang(variant: str, settings: dict[str, Any], args: argparse.Namespace,
         loads: h.LoadProcesses) -> tuple[Run, dict[str, Any]]:
    """c: the constant route through a hang, and the tokens after the recovery."""
    run = Run(f"c {variant}", variant)
    timeout = client_timeout(settings)
    marks: dict[str, float] = {}
    rates = {"token": 80.0, "const": 100.0}
    with h.fake_esputnik(latency=0.05, seed=args.seed) as fake, \
            h.gunicorn(h.appinbox_env(fake.api_url, **settings), workers=2, threads=4) as server:
        warm_up(server, loads, rates, timeout, run)
        fake.reset()

        def during(start_at: float) -> None:
            marks["A"] = start_at
            sleep_until(start_at + args.phase)
            fake.configure(mode="hang")
            marks["B"] = time.monotonic()
            sleep_until(start_at + 2 * args.phase)
            fake.configure(mode="healthy")  # also lets the hung connections go
            marks["C"] = time.monotonic()
            marks["end"] = start_at + 3 * args.phase

        calls = loads.run_open(open_load(server, "token", rates["token"], 3 * args.phase, timeout),
                               open_load(server, "const", rates["const"], 3 * args.phase, timeout, first_user=1001),
                               during=during)
        run.calls.update(calls)
        run.upstream = fake.stats()
        run.health = server.health()

    windows = {"A": (marks["A"], marks["B"]), "B": (marks["B"], marks["C"]), "C": (marks["C"], marks["end"])}

    def throughput(phase: str) -> float:
        lo, hi = windows[phase]
        return sum(1 for c in calls["const"] if c.status == 200 and lo <= c.start + c.latency < hi) / (hi - lo)

    tput = {phase: throughput(phase) for phase in windows}
    token_c = [c for c in calls["token"] if c.due is not None and c.due >= marks["C"]]
    timeline = []
    for s in range(math.ceil(marks["end"] - marks["C"])):
        some = [c for c in token_c if s <= c.due - marks["C"] < s + 1]  # type: ignore[operator]
        timeline.append(served_share(some))
    late = [c for c in token_c if c.due - marks["C"] >= RECOVERED]  # type: ignore[operator]

    def prompt(phase: str) -> float:
        """The share of the constant route's calls due in the phase answered within PROMPT seconds."""
        lo, hi = windows[phase]
        some = [c for c in calls["const"] if c.due is not None and lo <= c.due < hi]
        return sum(1 for c in some if c.status == 200 and c.latency <= PROMPT) / len(some) if some else math.nan

    refused = [c.start + c.latency for c in calls["token"] if c.outcome in REFUSALS and c.start >= marks["B"]]
    figures = {"ratio": ratio(tput["B"], tput["A"]), "recovered": served_share(late), "late": len(late),
               "prompt": ratio(prompt("B"), prompt("A")),
               "first_refusal": min(refused) - marks["B"] if refused else math.nan}
    print(f"  c. guard {variant}: constant route {tput['A']:.1f} -> {tput['B']:.1f} -> {tput['C']:.1f} answers/s "
          f"(A, B, C); B / A {figures['ratio']:.3f}")
    print("     token calls due in C, share with a token per second after the recovery: "
          + " ".join(fmt(x) for x in timeline))
    print(f"     due >= {RECOVERED:.0f} s after it: {figures['recovered']:.1%} of {len(late)} got a token")
    print(f"     constant route answered within {PROMPT:.0f} s: A {prompt('A'):.1%}, B {prompt('B'):.1%}, "
          f"C {prompt('C'):.1%}; first refusal {fmt(figures['first_refusal'])} s after the hang began")
    for phase, (lo, hi) in windows.items():
        for kind in ("const", "token"):
            some = [c for c in calls[kind] if c.due is not None and lo <= c.due < hi]
            describe_calls(f"phase {phase} {kind}", some, hi - lo)
    describe_run(run)
    return run, figures


def capacity(worker_class: str, settings: dict[str, Any], args: argparse.Namespace,
             loads: h.LoadProcesses) -> tuple[Run, dict[str, float]]:
    """d: tokens/s from closed-loop clients against a 100 ms eSputnik."""
    if worker_class == "gevent":
        workers, threads, clients = 1, 1000, 64
    else:
        workers, threads, clients = 2, 4, 16
    run = Run(f"d {worker_class}", "on")
    timeout = client_timeout(settings)
    with h.fake_esputnik(latency=0.1, seed=args.seed) as fake, \
            h.gunicorn(h.appinbox_env(fake.api_url, **settings), workers=workers, threads=threads,
                       worker_class=worker_class) as server:
        def load(duration: float) -> h.Load:
            return h.Load("token", "POST", server.url + h.TOKEN_PATH, clients, duration, json_body={"renew": False},
                          allowed=ANY_OUTCOME, timeout=timeout, origin=server.url)

        run.calls["warm-up token"] = loads.run(load(1.0), split=2)["token"]
        fake.reset()
        cpu0 = (server.cpu_seconds(), fake.cpu_seconds(), loads.cpu_seconds())
        calls = loads.run(load(args.duration), split=2)["token"]
        cpu1 = (server.cpu_seconds(), fake.cpu_seconds(), loads.cpu_seconds())
        cpu = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
        run.calls["token"] = calls
        run.upstream = fake.stats()
        run.health = server.health()
    t0 = min(c.start for c in calls)
    done = [c for c in calls if c.status == 200 and c.start + c.latency <= t0 + args.duration]
    ideal = workers * threads / 0.1 if worker_class == "gthread" else clients / 0.1
    figures = {"rate": len(done) / args.duration, "refusals": run.refusals(), "ideal": ideal}
    figures["of_ideal"] = figures["rate"] / ideal
    per = 1000 / max(1, len(calls))
    print(f"  d. {worker_class} {workers}x{threads}, {clients} clients: {figures['rate']:.1f} tokens/s, "
          f"{figures['of_ideal']:.2f} x {ideal:.0f}/s ({'threads' if worker_class == 'gthread' else 'clients'}"
          f" / 0.1 s); {figures['refusals']} refusals; CPU ms per call: server {cpu[0] * per:.2f}, "
          f"fake {cpu[1] * per:.2f}, load {cpu[2] * per:.2f}")
    print(f"    latency: {h.latency_summary(calls)}")
    print("    answers: " + ", ".join(f"{k} {n}" for k, n in sorted(h.by_status(calls).items())))
    describe_run(run)
    return run, figures


# -- main --------------------------------------------------------------------------------------


def retried(what: Callable[[], T], label: str) -> T:
    """Once more when gunicorn fails to boot (a port race)."""
    try:
        return what()
    except RuntimeError as exc:
        if "gunicorn" not in str(exc):
            raise
        print(f"  {label}: gunicorn did not start, once more in 5 s ({str(exc).splitlines()[0]})", flush=True)
        time.sleep(5)
        return what()


class Table:
    """The summary: one row per figure, with its target and whether it is held in this run."""

    def __init__(self, check: h.Check) -> None:
        self.check = check
        self.rows: list[tuple[str, str, str, str, str]] = []

    def row(self, scenario: str, figure: str, on: str, off: str, target: str = "-",
            passed: bool | None = None, text: str = "") -> None:
        """``passed`` None: printed only; else a target of this run (``text`` says it in full)."""
        if passed is not None:
            self.check.expect(passed, text)
        elif target != "-":
            target += " (printed)"
        self.rows.append((scenario, figure, on, off, target))

    def print(self) -> None:
        head = ("scenario", "figure", "guard on", "guard off", "target")
        widths = [max(len(row[i]) for row in [head, *self.rows]) for i in range(5)]
        for row in [head, *self.rows]:
            cells = zip(row, widths, strict=True)
            print("  " + "  ".join(c.ljust(w) if i in (0, 1, 4) else c.rjust(w) for i, (c, w) in enumerate(cells)))


def main(argv: list[str] | None = None) -> int:
    h.stop_on_sigterm()
    args = parse_args(argv)
    started = time.monotonic()
    own = parse_settings(args.set)
    variants = {"on": {**BASE, **own}, "off": {**BASE, **own, **OFF}}
    full = not args.quick
    print("settings: " + "; ".join(f"guard {name}: " + ", ".join(f"{k}={v}" for k, v in s.items())
                                   for name, s in variants.items()))
    print(f"load: open loop, {args.rate:.0f} token calls/s in a and b; client timeout "
          f"{client_timeout(variants['on']):.0f} s; seed {args.seed}; {'quick' if args.quick else 'full'} run",
          flush=True)
    runs: list[Run] = []
    check = h.Check()
    table = Table(check)

    with h.LoadProcesses(2) as loads:
        if "a" in args.only:
            print(f"\n== a. flaky eSputnik, {args.rate:.0f} calls/s for {args.duration:.0f} s", flush=True)
            for n, p in enumerate(args.p):
                figs: dict[str, dict[str, float]] = {}
                for variant in (("on", "off") if n % 2 == 0 else ("off", "on")):
                    run, figs[variant] = retried(partial(flaky, p, variant, variants[variant], args, loads),
                                                 f"a p={p} {variant}")
                    runs.append(run)
                on, off = figs["on"]["served"], figs["off"]["served"]
                rule, text = FLAKY_TARGETS.get(round(p, 3), (None, "-"))
                gated = rule is not None and (full or round(p, 3) == 0.5)
                if args.quick and round(p, 3) == 0.5:
                    rule, text = (lambda a, b: a >= QUICK_P05 * b), f"on >= {QUICK_P05} x off (quick)"
                table.row(f"a p={p}", "share served", f"{on:.1%}", f"{off:.1%}", text,
                          rule(on, off) if gated and rule is not None else None,
                          f"a. p={p}: guard on serves {on:.1%}, off {off:.1%}: {ratio(on, off):.2f} x ({text})")
                table.row(f"a p={p}", "on / off", fmt(ratio(on, off)), "", "-")
                table.row(f"a p={p}", "attempts / call", fmt(figs["on"]["attempts"]), fmt(figs["off"]["attempts"]))

        if "b" in args.only:
            print(f"\n== b. total 5xx outage, {args.rate:.0f} calls/s for {args.duration:.0f} s", flush=True)
            figs = {}
            for variant in ("on", "off") if full else ("on",):
                run, figs[variant] = retried(partial(outage, variant, variants[variant], args, loads), f"b {variant}")
                runs.append(run)
            per_call = figs["on"]["per_call"]
            table.row("b", "attempts / call", f"{per_call:.3f}", fmt(figs.get("off", {}).get("per_call", math.nan), 3),
                      "<= 1.2", per_call <= 1.2,
                      f"b. 5xx outage: {per_call:.3f} upstream attempts per token call, learning included (<= 1.2)")

        if "c" in args.only:
            print(f"\n== c. hang and recovery, phases of {args.phase:.0f} s", flush=True)
            figs_c: dict[str, dict[str, Any]] = {}
            for variant in ("on", "off") if full else ("on",):
                run, figs_c[variant] = retried(partial(hang, variant, variants[variant], args, loads), f"c {variant}")
                runs.append(run)
            on_c, off_c = figs_c["on"], figs_c.get("off", {})
            table.row("c", "const B / A", f"{on_c['ratio']:.3f}", fmt(off_c.get("ratio", math.nan), 3), ">= 0.90",
                      on_c["ratio"] >= 0.90 if full else None,
                      f"c. the constant route keeps {on_c['ratio']:.1%} of its throughput through the hang (>= 90 %)")
            table.row("c", f"const within {PROMPT:.0f} s, B / A", fmt(on_c["prompt"], 3),
                      fmt(off_c.get("prompt", math.nan), 3))
            table.row("c", "first refusal, s into B", fmt(on_c["first_refusal"]), "")
            table.row("c", f"tokens due >= {RECOVERED:.0f} s into C", f"{on_c['recovered']:.1%}",
                      "-" if not off_c else f"{off_c['recovered']:.1%}", ">= 95 %", on_c["recovered"] >= 0.95,
                      f"c. {on_c['recovered']:.1%} of the {on_c['late']} token calls due >= {RECOVERED:.0f} s "
                      "after the recovery got a token (>= 95 %)")

        if "d" in args.only:
            print(f"\n== d. capacity against a 100 ms eSputnik, closed loop for {args.duration:.0f} s", flush=True)
            for worker_class in ("gevent", "gthread"):
                run, fig = retried(partial(capacity, worker_class, variants["on"], args, loads), f"d {worker_class}")
                runs.append(run)
                table.row(f"d {worker_class}", "tokens/s", f"{fig['rate']:.1f}", "", "-")
                table.row(f"d {worker_class}", f"/ {fig['ideal']:.0f} per s", f"{fig['of_ideal']:.2f}", "",
                          ">= 0.85" if worker_class == "gthread" else "-")
                if worker_class == "gevent":
                    table.row("d gevent", "refusals", str(fig["refusals"]), "", "0", fig["refusals"] == 0 if full
                              else None, f"d. gevent, 64 connections: {fig['refusals']} refusals (0)")
                else:
                    table.row("d gthread", "refusals", str(fig["refusals"]), "", "-")

    # e: every run, guard off included.
    by_variant = {v: [r for r in runs if r.variant == v] for v in ("on", "off")}

    def total(count: Callable[[Run], int], variant: str) -> int:
        return sum(count(r) for r in by_variant[variant])

    problems = {v: total(lambda r: sum(r.off_contract().values()), v) for v in by_variant}
    crashes = {v: total(Run.crashes, v) for v in by_variant}
    refused_off = total(Run.refusals, "off")
    missing = {v: total(lambda r: sum(r.no_answer().values()), v) for v in by_variant}
    table.row("e all", "off-contract answers", str(problems["on"]), str(problems["off"]), "0",
              not any(problems.values()), f"e. {sum(problems.values())} off-contract answers in {len(runs)} runs (0)")
    table.row("e all", "worker crashes", str(crashes["on"]), str(crashes["off"]), "0",
              not any(crashes.values()), f"e. {sum(crashes.values())} worker crashes in {len(runs)} runs (0)")
    if by_variant["off"]:
        table.row("e all", "refusals, guard off", "", str(refused_off), "0", refused_off == 0,
                  f"e. {refused_off} refusals with APPINBOX_GUARD=False (0: nothing refused locally)")
    table.row("e all", "no answer in time", str(missing["on"]), str(missing["off"]))

    print("\nSummary (a target marked \"printed\" is not held in this run)")
    table.print()
    print(f"elapsed {time.monotonic() - started:.0f} s")
    print(f"command: {shlex.join(sys.orig_argv)}   seed {args.seed}")
    return check.report()


if __name__ == "__main__":
    sys.exit(main())
