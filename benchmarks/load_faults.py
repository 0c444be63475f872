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
log, the slowest answer exceeds the time budget
``(retries + 1) * timeout + retries * backoff_cap`` plus ``--allowance``
seconds, or not every call ran before the deadline.

    python benchmarks/load_faults.py            # 10,000 calls, about two minutes
    python benchmarks/load_faults.py --quick    # 2,000 calls
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

RATES = {"delay": 0.05, "reset": 0.03, "5xx": 0.05, "429": 0.04, "garbage": 0.03}
ALLOWED = frozenset({"ok", "upstream_error", "upstream_timeout", "upstream_rate_limited",
                     "upstream_busy", "upstream_unavailable"})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 calls, for CI")
    parser.add_argument("--calls", type=int, help="token calls in all (default 10,000; quick 2,000)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker (2 workers)")
    parser.add_argument("--rates", default=json.dumps(RATES), help="the fake's fault rates, JSON")
    parser.add_argument("--delay-max", type=float, default=1.5, help="longest injected delay, seconds")
    parser.add_argument("--allowance", type=float, default=0.5,
                        help="seconds over the time budget allowed for server and client overhead")
    parser.add_argument("--max-seconds", type=float, help="the run's deadline (default 600; quick 180)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an APPINBOX_* setting (JSON value); repeatable")
    args = parser.parse_args(argv)
    if args.calls is None:
        args.calls = 2000 if args.quick else 10_000
    if args.max_seconds is None:
        args.max_seconds = 180.0 if args.quick else 600.0
    return args


def main(argv: list[str] | None = None) -> int:
    h.stop_on_sigterm()
    args = parse_args(argv)
    settings: dict[str, object] = {"APPINBOX_TIMEOUT": 1, "APPINBOX_RETRIES": 2}
    for pair in args.set:
        key, _, value = pair.partition("=")
        settings[key] = json.loads(value)
    timeout = float(settings["APPINBOX_TIMEOUT"])  # type: ignore[arg-type]
    retries = int(settings["APPINBOX_RETRIES"])  # type: ignore[call-overload]
    backoff_cap = float(settings.get("APPINBOX_BACKOFF_CAP", 1.0))  # type: ignore[arg-type]
    budget = (retries + 1) * timeout + retries * backoff_cap
    rates = json.loads(args.rates)
    print(f"{args.calls} token calls, {args.clients} clients, gunicorn 2 workers x {args.threads} threads; "
          + ", ".join(f"{k}={v}" for k, v in settings.items()))
    print("fault rates: " + ", ".join(f"{k} {v:.0%}" for k, v in rates.items())
          + f"; delays up to {args.delay_max} s; time budget {budget:.1f} s")

    started = time.monotonic()
    with h.fake_esputnik(rates=rates, delay_max=args.delay_max, seed=args.seed) as fake, \
            h.LoadProcesses(2) as loads:
        with h.gunicorn(h.appinbox_env(fake.api_url, **settings), workers=2, threads=args.threads) as server:
            load = h.Load("token", "POST", server.url + h.TOKEN_PATH, args.clients, args.max_seconds,
                          json_body={"renew": False}, max_calls=args.calls, allowed=ALLOWED, origin=server.url,
                          timeout=budget + 30)
            calls = loads.run(load, split=2)["token"]
            upstream = fake.stats()
            health = server.health()
            log = server.log()
    elapsed = time.monotonic() - started

    statuses = h.by_status(calls)
    problems = Counter(c.problem for c in calls if c.problem)
    slowest = max(calls, key=lambda c: c.latency)
    server_times = [c.server_elapsed for c in calls if c.server_elapsed is not None]
    key_in_log = h.API_KEY in log
    key_log_lines = sum(1 for line in log.splitlines() if h.API_KEY in line)

    print(f"\n{len(calls)} calls in {elapsed:.1f} s ({len(calls) / elapsed:.0f}/s)")
    h.print_counts("answers by status:", statuses, indent="")
    print(f"answers outside the contract: {sum(problems.values())}")
    for problem, n in problems.most_common(10):
        print(f"  {n:>6}  {problem}")
    print(f"latency (client): {h.latency_summary(calls)}")
    print(f"slowest answer: {slowest.latency:.3f} s (client), {max(server_times, default=0):.3f} s (in the app); "
          f"budget {budget:.1f} s + allowance {args.allowance} s")
    print(f"upstream: {upstream['requests']} requests on {upstream['connections']} connections; "
          + ", ".join(f"{k} {v}" for k, v in sorted(upstream["outcomes"].items())))
    print(f"workers: {health}")
    print(f"log: {len(log.splitlines())} lines, the API key in {key_log_lines}")

    check = h.Check()
    check.expect(len(calls) == args.calls, f"{len(calls)} of {args.calls} calls ran before the deadline")
    check.expect(not problems, f"{sum(problems.values())} answers outside the contract (0)")
    check.expect(health["crashes"] == 0, f"{health['crashes']} worker crashes (0)")
    check.expect(health["tracebacks"] == 0, f"{health['tracebacks']} tracebacks in the log (0)")
    check.expect(not key_in_log, f"the API key in {key_log_lines} log lines (0)")
    check.expect(slowest.latency <= budget + args.allowance,
                 f"slowest answer {slowest.latency:.3f} s <= budget {budget:.1f} s + {args.allowance} s")
    check.expect(statuses.get("200 ok", 0) > 0, f"{statuses.get('200 ok', 0)} tokens issued (> 0)")
    return check.report()


if __name__ == "__main__":
    sys.exit(main())
