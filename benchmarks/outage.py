"""Outage isolation (issue 7): does a hanging eSputnik take the rest of the site down?

The benchmark site runs under gunicorn (2 workers x 4 threads, APPINBOX_TIMEOUT=1,
APPINBOX_RETRIES=2) against the fake eSputnik. Two kinds of logged-in client run
at once, each kind in a load process of its own:

- token clients: 16, each calling ``POST /appinbox/token`` every 0.2 s (80 calls/s offered);
- constant-route clients: 10, each calling ``GET /const`` every 0.1 s (100 calls/s offered,
  well within what the server does under the token load, so phase A serves all of it;
  ``--closed-loop``: back to back, to measure capacity instead).

Phase A: the fake is healthy. Phase B: the fake hangs (accepts, never answers).
Each phase lasts ``--phase`` seconds (10 by default, in quick mode too: the
figure depends on the window, since the first seconds of an outage cost the most).
The constant route's throughput is measured in both.

Targets, for the guarded run: phase B keeps at least 80 % of phase A's
throughput on the constant route; every token answer in phase B is one the
contract allows for an outage (503 upstream_busy / upstream_unavailable with
Retry-After, 504 upstream_timeout, 502 upstream_error), every constant-route
answer is a 200; no worker crashes. The guarded run uses the package's
defaults (or ``--set``); a run with the guard off (APPINBOX_MAX_CONCURRENT=1000,
APPINBOX_BREAKER_THRESHOLD=0) is printed for comparison and does not decide the
exit status. Full mode repeats each run (fresh server and fake) and takes the median.

    python benchmarks/outage.py --quick        # one round, well under a minute
    python benchmarks/outage.py                # three rounds
    python benchmarks/outage.py --quick --set APPINBOX_MAX_CONCURRENT=2   # try other settings
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

OUTAGE_OUTCOMES = frozenset({"upstream_busy", "upstream_unavailable", "upstream_timeout", "upstream_error"})
ANY_OUTCOME = frozenset().union(*h.CONTRACT.values())
TARGET_RATIO = 0.8
BASE = {"APPINBOX_TIMEOUT": 1, "APPINBOX_RETRIES": 2}
UNGUARDED = {"APPINBOX_MAX_CONCURRENT": 1000, "APPINBOX_BREAKER_THRESHOLD": 0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round per run, for CI")
    parser.add_argument("--rounds", type=int, help="rounds per run (default 3, quick 1)")
    parser.add_argument("--phase", type=float, default=10.0, help="seconds per phase (10)")
    parser.add_argument("--token-clients", type=int, default=16)
    parser.add_argument("--token-pace", type=float, default=0.2, help="seconds between one token client's calls")
    parser.add_argument("--const-clients", type=int, default=10)
    parser.add_argument("--const-pace", type=float, default=0.1, help="seconds between one constant client's calls")
    parser.add_argument("--closed-loop", action="store_true", help="constant clients call back to back")
    parser.add_argument("--latency", type=float, default=0.05, help="the healthy fake's answer time (0.05 s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an APPINBOX_* setting for the guarded run (JSON value); repeatable")
    parser.add_argument("--no-compare", action="store_true", help="skip the run with the guard off")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.closed_loop:
        args.const_pace = None
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


def phase(server: h.Server, loads: h.LoadProcesses, args: argparse.Namespace, duration: float,
          allowed: frozenset[str]) -> dict[str, Any]:
    """Both kinds of client at once for ``duration`` seconds; token answers outside ``allowed`` are problems."""
    calls = loads.run(
        h.Load("token", "POST", server.url + h.TOKEN_PATH, args.token_clients, duration,
               json_body={"renew": False}, pace=args.token_pace, first_user=1, allowed=allowed, origin=server.url,
               timeout=args.client_timeout),
        h.Load("const", "GET", server.url + "/const", args.const_clients, duration, pace=args.const_pace,
               first_user=1000, origin=server.url, reconnect_every=25),
    )
    t0 = min(c.start for c in calls["const"] + calls["token"])
    done = [c for c in calls["const"] if c.start + c.latency <= t0 + duration]
    per_second = Counter(int(c.start + c.latency - t0) for c in done)
    return {
        "token": calls["token"],
        "const": calls["const"],
        "throughput": len(done) / duration,
        "timeline": [per_second.get(s, 0) for s in range(int(duration))],
    }


def one_round(settings: dict[str, Any], args: argparse.Namespace, loads: h.LoadProcesses) -> dict[str, Any]:
    # A token client gives up 2 s after the time budget: a slower answer counts as none.
    retries, timeout = settings["APPINBOX_RETRIES"], settings["APPINBOX_TIMEOUT"]
    args.client_timeout = (retries + 1) * timeout + retries * settings.get("APPINBOX_BACKOFF_CAP", 1.0) + 2
    with h.fake_esputnik(latency=args.latency) as fake:
        with h.gunicorn(h.appinbox_env(fake.api_url, **settings), workers=2, threads=4) as server:
            phase(server, loads, args, 1.0, ANY_OUTCOME)  # warm-up: connections, first requests
            a = phase(server, loads, args, args.phase, ANY_OUTCOME)
            fake.configure(mode="hang")
            fake.reset()
            b = phase(server, loads, args, args.phase, OUTAGE_OUTCOMES)
            upstream = fake.stats()
            fake.configure(mode="healthy")  # lets the hung connections go
            health = server.health()
    ratio = b["throughput"] / a["throughput"] if a["throughput"] else 0.0
    mean_a = a["throughput"]
    stalled = sum(1 for n in b["timeline"] if n < 0.5 * mean_a)
    problems: Counter[str] = Counter()
    for label, calls in (("phase A token", a["token"]), ("phase B token", b["token"]),
                         ("phase A constant", a["const"]), ("phase B constant", b["const"])):
        problems.update(f"{label}: {c.problem}" for c in calls if c.problem)
    return {"a": a, "b": b, "ratio": ratio, "stalled": stalled, "upstream": upstream, "health": health,
            "problems": problems}


def report_round(r: dict[str, Any], args: argparse.Namespace) -> None:
    a, b = r["a"], r["b"]
    print(f"  phase A (healthy): constant route {a['throughput']:7.1f} req/s   "
          f"token endpoint {len(a['token']) / args.phase:6.1f} answers/s")
    print(f"  phase B (hang)   : constant route {b['throughput']:7.1f} req/s   "
          f"token endpoint {len(b['token']) / args.phase:6.1f} answers/s")
    print(f"  ratio B/A        : {r['ratio']:.3f}   seconds of B below half of A's rate: {r['stalled']}")
    print(f"  constant route per second  A: {a['timeline']}")
    print(f"                             B: {b['timeline']}")
    print(f"  constant route latency     A: {h.latency_summary(a['const'])}")
    print(f"                             B: {h.latency_summary(b['const'])}")
    print(f"  token endpoint latency     A: {h.latency_summary(a['token'])}")
    print(f"                             B: {h.latency_summary(b['token'])}")
    print("  token answers  A: " + ", ".join(f"{k}: {n}" for k, n in sorted(h.by_status(a["token"]).items())))
    print("                 B: " + ", ".join(f"{k}: {n}" for k, n in sorted(h.by_status(b["token"]).items())))
    up = r["upstream"]
    print(f"  upstream during B: {up['connections']} connections accepted, {up['requests']} requests, none answered")
    print(f"  off-contract answers: {sum(r['problems'].values())}")
    for problem, n in r["problems"].most_common(8):
        print(f"    {n:>6}  {problem}")
    health = r["health"]
    print(f"  workers: {health['crashes']} crashes ({health['boots']} boots, {health['exits']} exits, "
          f"{health['timeouts']} timeouts, first workers alive {health['first_workers_alive']})")


def run(name: str, settings: dict[str, Any], args: argparse.Namespace, loads: h.LoadProcesses) -> dict[str, Any]:
    print(f"\n== {name}: " + ", ".join(f"{k}={v}" for k, v in settings.items()), flush=True)
    rounds = []
    for i in range(args.rounds):
        if args.rounds > 1:
            print(f" round {i + 1}/{args.rounds}")
        rounds.append(one_round(settings, args, loads))
        report_round(rounds[-1], args)
    ratios = [r["ratio"] for r in rounds]
    summary = {
        "ratio": statistics.median(ratios),
        "a": statistics.median(r["a"]["throughput"] for r in rounds),
        "b": statistics.median(r["b"]["throughput"] for r in rounds),
        "stalled": statistics.median(r["stalled"] for r in rounds),
        "problems": sum(sum(r["problems"].values()) for r in rounds),
        "crashes": sum(r["health"]["crashes"] for r in rounds),
        "busy_a": sum(1 for r in rounds for c in r["a"]["token"] if c.outcome == "upstream_busy"),
        "calls_a": sum(len(r["a"]["token"]) for r in rounds),
    }
    if args.rounds > 1:
        print(f"  median of {args.rounds} rounds: A {summary['a']:.1f} req/s, B {summary['b']:.1f} req/s, "
              f"ratio {summary['ratio']:.3f} (rounds: {', '.join(f'{x:.3f}' for x in ratios)})")
    return summary


def main(argv: list[str] | None = None) -> int:
    h.stop_on_sigterm()
    args = parse_args(argv)
    started = time.monotonic()
    guarded = {**BASE, **parse_settings(args.set)}
    with h.LoadProcesses(2) as loads:
        label = "as set" if args.set else "package defaults"
        result = run(f"guarded ({label})", guarded, args, loads)
        compare = None if args.no_compare else run("guard off (comparison)", {**BASE, **UNGUARDED}, args, loads)

    print(f"\nconstant route, phase B / phase A: guarded {result['ratio']:.3f} "
          f"({result['a']:.1f} -> {result['b']:.1f} req/s)"
          + (f"; guard off {compare['ratio']:.3f} ({compare['a']:.1f} -> {compare['b']:.1f} req/s)"
             if compare else ""))
    print(f"guarded, phase A: {result['busy_a']} of {result['calls_a']} token calls answered upstream_busy")
    print(f"elapsed {time.monotonic() - started:.0f} s")
    check = h.Check()
    check.expect(result["ratio"] >= TARGET_RATIO,
                 f"guarded: the constant route keeps {result['ratio']:.1%} of its throughput (>= {TARGET_RATIO:.0%})")
    check.expect(result["problems"] == 0, f"guarded: {result['problems']} off-contract answers (0)")
    check.expect(result["crashes"] == 0, f"guarded: {result['crashes']} worker crashes (0)")
    return check.report()


if __name__ == "__main__":
    sys.exit(main())
