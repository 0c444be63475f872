"""The outage guard (bulkhead + circuit breaker) under open-loop load: does it cost
tokens when eSputnik is merely flaky, does it stop the retries when eSputnik is
down, does it keep the site up when eSputnik hangs, and what does it leave of the
endpoint's capacity?

The benchmark site runs under gunicorn against the fake eSputnik with
APPINBOX_TIMEOUT=1 and APPINBOX_RETRIES=2. The load is open loop (``_harness.open_loop``:
call i is due at start + i / rate whatever the earlier calls are doing; a call that
starts late keeps its due time, and the lateness is printed), in load processes of
their own, users cycling over 500. A client gives up 2 s after the endpoint's time
budget ``3 * timeout + 2 * backoff_cap`` (7 s): a later answer counts as none.
Where a comparison is asked, each case runs twice, each time with a fresh fake and
server: the package's defaults ("defaults"), and the breaker off ("off":
APPINBOX_BREAKER_THRESHOLD=0, APPINBOX_MAX_CONCURRENT=1000).

a. flaky: gunicorn 2 workers x ``--flaky-threads`` threads (16), 100 token calls/s for ``--duration`` s;
   each upstream attempt fails with probability p (half 5xx, a quarter reset, a
   quarter "slow": a token after 1.5 s, past the 1 s timeout), p in 0.1, 0.2, 0.3
   (quick: 0.2, 0.3). The share of calls that got a token. Target, p = 0.2 and 0.3:
   defaults >= off - 2 points. Why 16 threads: at p = 0.3 a call needs ~1.4 attempts,
   7.5 % of attempts hold a thread for the whole 1 s timeout and the backoffs hold
   it too: ~17 thread-seconds a second. With 2 x 4 threads the offered load is
   twice what the server can do, with or without the guard: the queue grows until
   clients give up, and what is served is noise. This measures the guard, not overload.
b. total 5xx outage: every attempt gets a 5xx, 100 calls/s for ``--duration`` s.
   Upstream attempts per token call issued, after a reaction period of 3 s.
   Target: defaults <= 1.2. Breaker off is printed: 3 attempts for every call a
   thread works on, but three attempts and two backoffs hold a thread ~0.25 s, so
   8 threads work on ~33 of the 100 calls/s and the rest time out in the queue:
   per call issued it comes to about 1. The attempts per call that used up its
   attempts (the package's "failed after N attempt(s)" warnings in gunicorn's log)
   show the 3.
c. hang and recovery, gthread 2 x 4: GET /const at 100/s beside token calls at 80/s;
   phase A healthy (latency 50 ms), B the fake hangs, C healthy again, ``--phase`` s
   each. Targets: the constant route's throughput (200s completed within the phase)
   B / A >= 0.90; of the token calls due 2 s or more after the fake recovered, >= 95 %
   got a token. Defaults only.
d. capacity against a 100 ms eSputnik, closed loop on purpose (browsers): one gevent
   worker (--worker-connections 1000) with 64 clients back to back: >= 300 tokens/s,
   0 upstream_busy; gthread 2 x 4 with 16 clients: >= 0.9 x 8 threads / 0.1 s = 72/s,
   0 upstream_busy. Defaults only.
e. in every run: every answer within the contract (API.md; the constant route: 200),
   no worker crashes.

``--set KEY=VALUE`` changes a setting in every run (the breaker-off runs keep the
breaker off). ``--only a,c`` runs some of the scenarios. Exit status 1 when a target
is missed.

    python benchmarks/guard.py --quick     # CI: under 3 minutes
    python benchmarks/guard.py             # about 7 minutes
    python benchmarks/guard.py --only b --set APPINBOX_BREAKER_COOLDOWN=2
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
OFF = {"APPINBOX_BREAKER_THRESHOLD": 0, "APPINBOX_MAX_CONCURRENT": 1000}
ANY_OUTCOME = frozenset().union(*h.CONTRACT.values())
SCENARIOS = ("a", "b", "c", "d")
REACTION = 3.0  # b: seconds the guard gets before attempts are counted
RECOVERED = 2.0  # c: calls due this long after the fake recovered must get tokens
BREAKER_OPENED = "circuit breaker opened"  # the package's warnings, in gunicorn's log
GAVE_UP = " attempt(s) in "  # "eSputnik POST ... failed after N attempt(s) in ...": a call that reached eSputnik


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs and fewer fault rates, for CI")
    parser.add_argument("--duration", type=float, help="seconds of load in a, b and d (default 30, quick 10)")
    parser.add_argument("--phase", type=float, help="seconds per phase in c (default 10, quick 6)")
    parser.add_argument("--p", type=float, action="append", help="a: a fault probability (repeatable; "
                        "default 0.1, 0.2, 0.3; quick 0.2, 0.3)")
    parser.add_argument("--rate", type=float, default=100.0, help="token calls/s in a and b (100)")
    parser.add_argument("--flaky-threads", type=int, default=16, help="a: gunicorn threads per worker (16)")
    parser.add_argument("--seed", type=int, default=1, help="the fake's fault draws (1)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios to run, e.g. a,c (all)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an APPINBOX_* setting for every run (JSON value); repeatable")
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 10.0 if args.quick else 30.0
    if args.phase is None:
        args.phase = 6.0 if args.quick else 10.0
    if args.p is None:
        args.p = [0.2, 0.3] if args.quick else [0.1, 0.2, 0.3]
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {','.join(SCENARIOS)}")
    if args.duration <= REACTION + 1:
        parser.error(f"--duration must be more than {REACTION + 1:.0f} s")
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
    retries, timeout = int(settings["APPINBOX_RETRIES"]), float(settings["APPINBOX_TIMEOUT"])
    return (retries + 1) * timeout + retries * float(settings.get("APPINBOX_BACKOFF_CAP", 1.0)) + 2


def fmt(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.2f}"


def sleep_until(when: float) -> None:
    wait = when - time.monotonic()
    if wait > 0:
        time.sleep(wait)


# -- one run --------------------------------------------------------------------------------


class Run:
    """What one server run leaves: its calls' problems, no-answers, crashes, breaker openings."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: dict[str, list[h.Call]] = {}
        self.health: dict[str, Any] = {}
        self.breaker_opened = 0
        self.upstream: dict[str, Any] = {}

    def off_contract(self) -> Counter[str]:
        """Answers outside the contract (calls with no answer are counted apart)."""
        return Counter(f"{kind}: {c.problem}" for kind, calls in self.calls.items()
                       for c in calls if c.problem and c.status != 0)

    def no_answer(self) -> Counter[str]:
        return Counter(f"{kind}: {c.outcome}" for kind, calls in self.calls.items()
                       for c in calls if c.status == 0)


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


def finish(run: Run, server: h.Server, fake: h.Fake | None = None) -> None:
    run.health = server.health()
    run.breaker_opened = server.log().count(BREAKER_OPENED)
    if fake is not None and not run.upstream:
        run.upstream = fake.stats()


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
          f"{sum(missing.values())}, breaker opened {run.breaker_opened}x, worker crashes {health.get('crashes')}"
          + (f" ({health})" if health.get("crashes") else ""))
    for problem, n in problems.most_common(6):
        print(f"      {n:>6}  {problem}")
    if run.upstream:
        up = run.upstream
        print(f"    upstream: {up['requests']} requests on {up['connections']} connections; "
              + ", ".join(f"{k} {v}" for k, v in sorted(up["outcomes"].items())))


# -- the scenarios ---------------------------------------------------------------------------


def flaky(p: float, variant: str, settings: dict[str, Any], args: argparse.Namespace,
          loads: h.LoadProcesses) -> tuple[Run, float]:
    """a: the share of token calls that got a token against an eSputnik failing attempts with probability p."""
    run = Run(f"a p={p} {variant}")
    timeout = client_timeout(settings)
    rates = {"5xx": p / 2, "reset": p / 4, "slow": p / 4}
    with h.fake_esputnik(seed=args.seed, slow_for=1.5) as fake, \
            h.gunicorn(h.appinbox_env(fake.api_url, **settings), workers=2, threads=args.flaky_threads) as server:
        warm_up(server, loads, {"token": args.rate}, timeout, run)
        fake.configure(rates=rates, seed=args.seed)
        fake.reset()
        calls = loads.run_open(open_load(server, "token", args.rate, args.duration, timeout))["token"]
        run.calls["token"] = calls
        finish(run, server, fake)
    served = sum(1 for c in calls if c.status == 200) / len(calls) if calls else 0.0
    print(f"  a. p={p} {variant}: {served:.1%} of the calls got a token")
    describe_calls("token", calls, args.duration)
    describe_run(run)
    return run, served


def outage(variant: str, settings: dict[str, Any], args: argparse.Namespace,
           loads: h.LoadProcesses) -> tuple[Run, dict[str, float]]:
    """b: upstream attempts per token call issued while every attempt gets a 5xx, after a reaction period."""
    run = Run(f"b {variant}")
    timeout = client_timeout(settings)
    marks: dict[str, Any] = {}

    with h.fake_esputnik(seed=args.seed) as fake, \
            h.gunicorn(h.appinbox_env(fake.api_url, **settings), workers=2, threads=4) as server:
        warm_up(server, loads, {"token": args.rate}, timeout, run)
        fake.configure(rates={"5xx": 1.0})
        fake.reset()

        def during(start_at: float) -> None:
            marks["start"] = start_at
            sleep_until(start_at + REACTION)
            run.upstream = fake.reset()  # the reaction period's counts
            marks["reset"] = time.monotonic()
            marks["worked_before"] = server.log().count(GAVE_UP)
            sleep_until(start_at + args.duration)
            marks["end"] = time.monotonic()
            marks["stats"] = fake.stats()
            marks["worked"] = server.log().count(GAVE_UP) - marks["worked_before"]

        calls = loads.run_open(open_load(server, "token", args.rate, args.duration, timeout), during=during)["token"]
        run.calls["token"] = calls
        finish(run, server)
    counted = [c for c in calls if c.due is not None and marks["reset"] <= c.due < marks["end"]]
    answered = [c for c in counted if c.status != 0]
    requests, worked = marks["stats"]["requests"], marks["worked"]
    figures = {
        "per_issued": requests / len(counted) if counted else float("nan"),
        "per_worked": requests / worked if worked else float("nan"),
    }
    print(f"  b. {variant}: {figures['per_issued']:.3f} upstream attempts per token call issued "
          f"({requests} attempts for {len(counted)} calls due {REACTION:.0f} s on, "
          f"{len(answered)} of them answered in time)")
    print(f"     per call that used up its attempts (gunicorn's log, {worked} calls): {fmt(figures['per_worked'])}"
          + ("" if worked else " (the breaker stopped every call before its last attempt)"))
    describe_calls("token", calls, args.duration)
    describe_run(run)
    print(f"    upstream after the reaction period: {requests} requests; during it: "
          f"{run.upstream.get('requests')}")
    run.upstream = {}
    return run, figures


def hang(settings: dict[str, Any], args: argparse.Namespace, loads: h.LoadProcesses) -> tuple[Run, dict[str, Any]]:
    """c: the constant route through a hang, and the tokens after the recovery."""
    run = Run("c defaults")
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
        finish(run, server, fake)

    windows = {"A": (marks["A"], marks["B"]), "B": (marks["B"], marks["C"]), "C": (marks["C"], marks["end"])}

    def throughput(phase: str) -> float:
        lo, hi = windows[phase]
        return sum(1 for c in calls["const"] if c.status == 200 and lo <= c.start + c.latency < hi) / (hi - lo)

    tput = {phase: throughput(phase) for phase in windows}
    ratio = tput["B"] / tput["A"] if tput["A"] else 0.0
    token_c = [c for c in calls["token"] if c.due is not None and c.due >= marks["C"]]
    seconds = math.ceil(marks["end"] - marks["C"])
    timeline = []
    for s in range(seconds):
        some = [c for c in token_c if s <= c.due - marks["C"] < s + 1]  # type: ignore[operator]
        timeline.append(sum(1 for c in some if c.status == 200) / len(some) if some else float("nan"))
    late = [c for c in token_c if c.due - marks["C"] >= RECOVERED]  # type: ignore[operator]
    recovered = sum(1 for c in late if c.status == 200) / len(late) if late else 0.0
    print(f"  c. constant route {tput['A']:.1f} -> {tput['B']:.1f} -> {tput['C']:.1f} answers/s (A, B, C); "
          f"B / A {ratio:.3f}")
    print("     token calls due in C, share with a token per second after the recovery: "
          + " ".join(f"{x:.2f}" for x in timeline))
    print(f"     due >= {RECOVERED:.0f} s after it: {recovered:.1%} of {len(late)} got a token")
    for phase, (lo, hi) in windows.items():
        for kind in ("const", "token"):
            some = [c for c in calls[kind] if c.due is not None and lo <= c.due < hi]
            describe_calls(f"phase {phase} {kind}", some, hi - lo)
    describe_run(run)
    return run, {"ratio": ratio, "recovered": recovered, "timeline": timeline, "tput": tput}


def capacity(worker_class: str, settings: dict[str, Any], args: argparse.Namespace,
             loads: h.LoadProcesses) -> tuple[Run, dict[str, float]]:
    """d: tokens/s from closed-loop clients against a 100 ms eSputnik."""
    if worker_class == "gevent":
        workers, threads, clients = 1, 1000, 64
    else:
        workers, threads, clients = 2, 4, 16
    run = Run(f"d {worker_class}")
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
        finish(run, server, fake)
    t0 = min(c.start for c in calls)
    done = [c for c in calls if c.status == 200 and c.start + c.latency <= t0 + args.duration]
    figures = {"rate": len(done) / args.duration,
               "busy": sum(1 for c in calls if c.outcome == "upstream_busy"),
               "ideal": workers * threads / 0.1 if worker_class == "gthread" else clients / 0.1}
    per = 1000 / max(1, len(calls))
    print(f"  d. {worker_class} {workers}x{threads}, {clients} clients: {figures['rate']:.1f} tokens/s "
          f"({figures['busy']} upstream_busy); CPU ms per call: server {cpu[0] * per:.2f}, "
          f"fake {cpu[1] * per:.2f}, load {cpu[2] * per:.2f}")
    print(f"    latency: {h.latency_summary(calls)}")
    print("    answers: " + ", ".join(f"{k} {n}" for k, n in sorted(h.by_status(calls).items())))
    describe_run(run)
    return run, figures


# -- main --------------------------------------------------------------------------------------


def retried(what: Callable[[], T], label: str) -> T:
    """Once more when gunicorn fails to boot (a package mid-edit, a port race)."""
    try:
        return what()
    except RuntimeError as exc:
        if "gunicorn" not in str(exc):
            raise
        print(f"  {label}: gunicorn did not start, once more in 5 s ({str(exc).splitlines()[0]})", flush=True)
        time.sleep(5)
        return what()


def main(argv: list[str] | None = None) -> int:
    h.stop_on_sigterm()
    args = parse_args(argv)
    started = time.monotonic()
    own = parse_settings(args.set)
    variants = {"defaults": {**BASE, **own}, "off": {**BASE, **own, **OFF}}
    print("settings: " + "; ".join(f"{name}: " + ", ".join(f"{k}={v}" for k, v in s.items())
                                   for name, s in variants.items()))
    print(f"load: open loop, {args.rate:.0f} token calls/s in a and b; client timeout "
          f"{client_timeout(variants['defaults']):.0f} s; seed {args.seed}", flush=True)
    runs: list[Run] = []
    rows: list[tuple[str, str, str, str, str]] = []  # scenario, figure, defaults, off, target
    check = h.Check()

    with h.LoadProcesses(2) as loads:
        if "a" in args.only:
            print(f"\n== a. flaky eSputnik, {args.rate:.0f} calls/s for {args.duration:.0f} s", flush=True)
            for n, p in enumerate(args.p):
                served: dict[str, float] = {}
                order = ("defaults", "off") if n % 2 == 0 else ("off", "defaults")
                for variant in order:
                    run, served[variant] = retried(partial(flaky, p, variant, variants[variant], args, loads),
                                                   f"a p={p} {variant}")
                    runs.append(run)
                target = p >= 0.2 - 1e-9
                rows.append((f"a p={p}", "served share", f"{served['defaults']:.1%}", f"{served['off']:.1%}",
                             ">= off - 2 pt" if target else "-"))
                if target:
                    check.expect(served["defaults"] >= served["off"] - 0.02,
                                 f"a. p={p}: defaults serve {served['defaults']:.1%}, breaker off "
                                 f"{served['off']:.1%} (>= off - 2 points)")

        if "b" in args.only:
            print(f"\n== b. total 5xx outage, {args.rate:.0f} calls/s for {args.duration:.0f} s", flush=True)
            figs = {}
            for variant in ("defaults", "off"):
                run, figs[variant] = retried(partial(outage, variant, variants[variant], args, loads), f"b {variant}")
                runs.append(run)
            rows.append(("b", "attempts / call issued", f"{figs['defaults']['per_issued']:.3f}",
                         f"{figs['off']['per_issued']:.3f}", "<= 1.2"))
            rows.append(("b", "attempts / call using all", fmt(figs["defaults"]["per_worked"]),
                         fmt(figs["off"]["per_worked"]), "-"))
            check.expect(figs["defaults"]["per_issued"] <= 1.2,
                         f"b. 5xx outage: {figs['defaults']['per_issued']:.3f} upstream attempts per token call "
                         f"after {REACTION:.0f} s (<= 1.2; breaker off {figs['off']['per_issued']:.3f})")

        if "c" in args.only:
            print(f"\n== c. hang and recovery, phases of {args.phase:.0f} s", flush=True)
            run, fig = retried(partial(hang, variants["defaults"], args, loads), "c")
            runs.append(run)
            rows.append(("c", "const B / A", f"{fig['ratio']:.3f}", "", ">= 0.90"))
            rows.append(("c", f"tokens, due >= {RECOVERED:.0f} s into C", f"{fig['recovered']:.1%}", "", ">= 95 %"))
            check.expect(fig["ratio"] >= 0.90, f"c. the constant route keeps {fig['ratio']:.1%} of its "
                         f"throughput through the hang (>= 90 %)")
            check.expect(fig["recovered"] >= 0.95, f"c. {fig['recovered']:.1%} of the token calls due "
                         f">= {RECOVERED:.0f} s after the recovery got a token (>= 95 %)")

        if "d" in args.only:
            print(f"\n== d. capacity against a 100 ms eSputnik, closed loop for {args.duration:.0f} s", flush=True)
            for worker_class, target in (("gevent", 300.0), ("gthread", 72.0)):
                run, fig = retried(partial(capacity, worker_class, variants["defaults"], args, loads),
                                   f"d {worker_class}")
                runs.append(run)
                rows.append((f"d {worker_class}", "tokens/s", f"{fig['rate']:.1f}", "", f">= {target:.0f}"))
                rows.append((f"d {worker_class}", "upstream_busy", str(fig["busy"]), "", "0"))
                check.expect(fig["rate"] >= target and fig["busy"] == 0,
                             f"d. {worker_class}: {fig['rate']:.1f} tokens/s (>= {target:.0f}), "
                             f"{fig['busy']} upstream_busy (0)")

    # e: every run, breaker off included.
    problems = sum(sum(r.off_contract().values()) for r in runs)
    crashes = sum(r.health.get("crashes", 0) for r in runs)
    missing = sum(sum(r.no_answer().values()) for r in runs)
    by_variant = {v: [r for r in runs if r.name.endswith(v) or (v == "defaults" and not r.name.endswith("off"))]
                  for v in ("defaults", "off")}
    counts: list[tuple[str, Callable[[Run], int]]] = [
        ("off-contract answers", lambda r: sum(r.off_contract().values())),
        ("worker crashes", lambda r: int(r.health.get("crashes", 0))),
        ("no answer in time", lambda r: sum(r.no_answer().values())),
    ]
    for figure, count in counts:
        rows.append(("e all", figure, str(sum(count(r) for r in by_variant["defaults"])),
                     str(sum(count(r) for r in by_variant["off"])), "0" if "no answer" not in figure else "-"))
    check.expect(problems == 0, f"e. {problems} off-contract answers in {len(runs)} runs (0)")
    check.expect(crashes == 0, f"e. {crashes} worker crashes in {len(runs)} runs (0)")

    print("\nSummary")
    widths = [max(len(row[i]) for row in [("scenario", "figure", "defaults", "breaker off", "target"), *rows])
              for i in range(5)]
    for row in [("scenario", "figure", "defaults", "breaker off", "target"), *rows]:
        print("  " + "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths, strict=True))))
    print(f"  (calls with no answer within the client timeout, all runs: {missing})")
    print(f"elapsed {time.monotonic() - started:.0f} s")
    print(f"command: {shlex.join(sys.orig_argv)}   seed {args.seed}")
    return check.report()


if __name__ == "__main__":
    sys.exit(main())
