"""The outage guard in one picture: docs/_static/guard.png (issue 19).

Two runs of the benchmark site (gunicorn, APPINBOX_TIMEOUT=1, APPINBOX_RETRIES=2)
against the fake eSputnik, one with the guard on (the defaults) and one with
APPINBOX_GUARD=False (retries alone), each measured the same way as
``guard.py``'s cases a and b, open loop at ``--rate`` (100) token calls/s:

1. flaky, 2 workers x 16 threads: for p = 0, 0.1, ..., 1.0, each upstream attempt
   fails with probability p (half 5xx, a quarter reset, a quarter a token after 1.5 s,
   past the timeout); ``--seconds`` s of load per p after ``--settle`` s against a
   healthy fake (so that each p starts from a guard that has seen a healthy
   eSputnik). The share of page views (calls) served a token, and the upstream
   attempts per call (counted at the fake);
2. two outage timelines, 2 workers x 4 threads: healthy 5 s, then for 10 s every
   attempt a 5xx (or: eSputnik hangs, accepting and never answering), healthy 5 s.
   Per second: tokens and refusals (``upstream_busy``/``upstream_unavailable``) by
   when the answer came, and the attempts eSputnik received (its count polled every
   0.25 s). A backlog served after the outage shows as a burst of tokens and attempts.

3. a hang at the defaults on sync workers (issue 22): gunicorn sync -w 3 with every
   APPINBOX_* key at its default (and the same with APPINBOX_GUARD=False), ``hang.py``'s
   load (token calls 3/s, the site's other pages 20/s, open loop): healthy 5 s, a hang
   of 20 s, healthy 10 s. Per second, by when the calls were due: other pages answered
   200 within 2 s, tokens, refusals.

The figure has five panels: share served vs p; attempts per call vs p; the 5xx
outage's timeline; the hang's; the hang at the defaults on sync workers. The figures
are printed too. Every answer is held to the contract; exit status 1 when one is outside it or a worker crashed (the
figure is still written).

    python benchmarks/guard_figure.py            # about 9 minutes
    python benchmarks/guard_figure.py --quick    # shorter runs, about 6 minutes
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402
import guard as g  # noqa: E402
import hang as hg  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "_static" / "guard.png"
PHASES = (("healthy", 5.0), ("outage", 10.0), ("healthy", 5.0))
OUTAGES = {"5xx": "every attempt a 5xx", "hang": "eSputnik hangs"}
COLORS = {"on": "#1f6fb4", "off": "#d9731a"}
LABELS = {"on": "guard on (default)", "off": "APPINBOX_GUARD = False"}
SYNC_PHASES = (("healthy", 5.0), ("hang", 20.0), ("healthy", 10.0))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 s per p instead of 10")
    parser.add_argument("--seconds", type=float, help="seconds of load per p (default 10; quick 4)")
    parser.add_argument("--settle", type=float, default=2.0, help="healthy seconds before each p (2)")
    parser.add_argument("--rate", type=float, default=100.0, help="token calls/s (100)")
    parser.add_argument("--p", type=float, action="append", help="a failure rate to run (repeatable; "
                        "default 0, 0.1, ..., 1.0)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT, help=f"the PNG ({OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 4.0 if args.quick else 10.0
    return args


class Tally:
    """Off-contract answers and worker crashes over every run."""

    def __init__(self) -> None:
        self.problems = 0
        self.crashes = 0
        self.calls = 0

    def add(self, calls: list[h.Call]) -> None:
        self.calls += len(calls)
        self.problems += sum(1 for c in calls if c.problem and c.status != 0)


def sweep(variant: str, settings: dict[str, Any], ps: list[float], args: argparse.Namespace,
          loads: h.LoadProcesses, tally: Tally) -> dict[float, dict[str, float]]:
    """Share served and attempts per call for each p, on one server."""
    timeout = g.client_timeout(settings)
    out: dict[float, dict[str, float]] = {}
    with h.fake_esputnik(seed=args.seed, slow_for=1.5) as fake, \
            h.gunicorn(h.appinbox_env(fake.api_url, **settings), workers=2, threads=16) as server:
        for p in ps:
            fake.configure(rates={})
            tally.add(loads.run_open(g.open_load(server, "token", args.rate, args.settle, timeout))["token"])
            fake.configure(rates=g.flaky_rates(p), seed=args.seed)
            fake.reset()
            calls = loads.run_open(g.open_load(server, "token", args.rate, args.seconds, timeout))["token"]
            tally.add(calls)
            requests = fake.stats()["requests"]
            out[p] = {"served": g.served_share(calls), "attempts": g.ratio(requests, len(calls)),
                      "refused": sum(1 for c in calls if c.outcome in g.REFUSALS) / max(1, len(calls))}
            print(f"  p={p:.1f} guard {variant}: served {out[p]['served']:.1%}, "
                  f"{out[p]['attempts']:.2f} attempts per call, refused {out[p]['refused']:.1%}", flush=True)
        tally.crashes += server.health()["crashes"]
    return out


def timeline(outage: str, variant: str, settings: dict[str, Any], args: argparse.Namespace,
             loads: h.LoadProcesses, tally: Tally) -> dict[str, list[float]]:
    """Tokens, refusals and upstream attempts per second through healthy, outage (``"5xx"`` or
    ``"hang"``), healthy."""
    timeout = g.client_timeout(settings)
    total = sum(seconds for _, seconds in PHASES)
    polls: list[tuple[float, int]] = []
    with h.fake_esputnik(seed=args.seed) as fake, \
            h.gunicorn(h.appinbox_env(fake.api_url, **settings), workers=2, threads=4) as server:
        tally.add(loads.run_open(g.open_load(server, "token", args.rate, 1.0, timeout))["token"])  # warm-up
        fake.reset()
        start = [0.0]

        def during(start_at: float) -> None:
            """Switch the fake at each phase's start; poll its request count every 0.25 s until
            the last call has had time to finish."""
            start[0] = start_at
            changes: list[tuple[float, dict[str, Any]]] = []
            at = start_at
            for name, seconds in PHASES:
                bad = name == "outage"
                changes.append((at, ({"rates": {"5xx": 1.0}} if bad else {"rates": {}}) if outage == "5xx"
                                else {"mode": "hang" if bad else "healthy"}))
                at += seconds
            end = start_at + total + timeout
            tick = start_at
            while tick < end:
                g.sleep_until(tick)  # the phases start on a tick: 0, 5 and 15 s
                while changes and changes[0][0] <= tick:
                    fake.configure(**changes.pop(0)[1])
                polls.append((tick - start_at, fake.stats()["requests"]))  # as of the tick (a few ms late)
                tick += 0.25

        calls = loads.run_open(g.open_load(server, "token", args.rate, total, timeout), during=during)["token"]
        tally.add(calls)
        tally.crashes += server.health()["crashes"]
    seconds = int(total)
    tokens = [0.0] * seconds
    refusals = [0.0] * seconds
    for c in calls:  # by when the answer came, as the attempts
        s = math.floor(c.start + c.latency - start[0])
        if 0 <= s < seconds:
            tokens[s] += c.status == 200
            refusals[s] += c.outcome in g.REFUSALS

    def count_at(t: float) -> int:
        """The fake's request count at the last poll before ``t``."""
        before = [n for when, n in polls if when <= t + 1e-6]
        return before[-1] if before else 0

    attempts = [float(count_at(s + 1) - count_at(s)) for s in range(seconds)]
    for name, values in (("tokens", tokens), ("refusals", refusals), ("upstream attempts", attempts)):
        print(f"  {outage}, guard {variant}, per second: {name} " + " ".join(f"{x:.0f}" for x in values))
    return {"tokens": tokens, "refusals": refusals, "attempts": attempts}


def sync_hang(variant: str, settings: dict[str, Any], loads: h.LoadProcesses,
              tally: Tally) -> dict[str, list[float]]:
    """3: per second, by due time, through healthy, hang, healthy on gunicorn sync -w 3: other pages
    answered 200 within 2 s, tokens and refusals."""
    total = sum(seconds for _, seconds in SYNC_PHASES)
    with h.fake_esputnik() as fake, \
            h.gunicorn(h.appinbox_env(fake.api_url, **settings), workers=3, worker_class="sync") as server:
        for calls in loads.run_open(*(hg.open_load(server, variant, kind, rate, 1.0)
                                      for kind, rate in hg.RATES.items())).values():
            tally.add(calls)  # warm-up
        start = [0.0]

        def during(start_at: float) -> None:
            start[0] = start_at
            at = start_at
            for name, seconds in SYNC_PHASES:
                g.sleep_until(at)
                fake.configure(mode="hang" if name == "hang" else "healthy")
                at += seconds

        calls = loads.run_open(*(hg.open_load(server, variant, kind, rate, total) for kind, rate in hg.RATES.items()),
                               during=during)
        for some in calls.values():
            tally.add(some)
        tally.crashes += server.health()["crashes"]
    out = {"pages": [0.0] * int(total), "tokens": [0.0] * int(total), "refusals": [0.0] * int(total)}
    for kind, some in calls.items():
        for c in some:
            s = math.floor((c.due or c.start) - start[0])
            if not 0 <= s < total:
                continue
            if kind.endswith("const"):
                out["pages"][s] += c.status == 200 and c.start - (c.due or c.start) + c.latency <= hg.PROMPT
            else:
                out["tokens"][s] += c.status == 200
                out["refusals"][s] += c.outcome in g.REFUSALS
    for name, values in out.items():
        print(f"  sync hang, guard {variant}, per second due: {name} " + " ".join(f"{x:.0f}" for x in values))
    return out


def mark_phases(axes: Any, phases: Any, shaded: str) -> float:
    """Name each phase above ``axes`` and shade the ``shaded`` one; returns where the last one ends."""
    at = 0.0
    for name, seconds in phases:
        if name == shaded:
            axes.axvspan(at, at + seconds, color="#c0392b", alpha=0.08)
        axes.text(at + seconds / 2, 1.02, name, transform=axes.get_xaxis_transform(), ha="center", fontsize=8)
        at += seconds
    return at


def draw(ps: list[float], sweeps: dict[str, dict[float, dict[str, float]]],
         lines: dict[str, dict[str, dict[str, list[float]]]], sync: dict[str, dict[str, list[float]]],
         args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(9.6, 12.4), dpi=110, layout="constrained")
    grid = fig.add_gridspec(3, 2, height_ratios=(1, 1, 0.9))
    served, attempts = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    for variant in ("off", "on"):
        style: dict[str, Any] = {"color": COLORS[variant], "marker": "o", "markersize": 4, "label": LABELS[variant]}
        served.plot(ps, [100 * sweeps[variant][p]["served"] for p in ps], **style)
        attempts.plot(ps, [sweeps[variant][p]["attempts"] for p in ps], **style)
    served.plot(ps, [100 * (1 - p ** 3) for p in ps], color="grey", linestyle=":", linewidth=1,
                label="1 - p³ (three attempts, no waiting)")
    served.set(title=f"Page views served a token\n(eSputnik failing a share p of attempts, {args.rate:.0f}/s)",
               xlabel="p, eSputnik's failure rate per attempt", ylabel="% of page views", ylim=(-3, 103))
    attempts.set(title="Upstream attempts per page view\n(counted at eSputnik)",
                 xlabel="p, eSputnik's failure rate per attempt", ylabel="attempts / page view", ylim=(0, None))
    for ax in (served, attempts):
        ax.grid(alpha=0.3)
        ax.set_xticks([round(0.2 * i, 1) for i in range(6)])
    served.legend(fontsize=8, loc="lower left")
    attempts.legend(fontsize=8, loc="upper left")

    first = None
    for column, (outage, title) in enumerate(OUTAGES.items()):
        line = fig.add_subplot(grid[1, column], sharey=first)
        first = first or line
        x = [s + 0.5 for s in range(len(lines[outage]["on"]["tokens"]))]
        for variant in ("off", "on"):
            color, label, data = COLORS[variant], LABELS[variant], lines[outage][variant]
            line.plot(x, data["tokens"], color=color, linewidth=2, drawstyle="steps-mid", label=f"tokens/s, {label}")
            line.plot(x, data["refusals"], color=color, linewidth=1.5, linestyle="--", drawstyle="steps-mid",
                      label=f"refusals/s, {label}")
            line.plot(x, data["attempts"], color=color, linewidth=1.2, linestyle=":", drawstyle="steps-mid",
                      label=f"upstream attempts/s, {label}")
        at = mark_phases(line, PHASES, "outage")
        line.set(xlabel="seconds (answers and attempts as they happened)", ylabel="per second", xlim=(0, at))
        line.set_title(f"{title} for 10 s ({args.rate:.0f} page views/s,\ngunicorn 2 workers × 4 threads)",
                       fontsize=10, pad=16)
        line.grid(alpha=0.3)
    assert first is not None
    first.set_ylim(bottom=0)
    handles, labels = first.get_legend_handles_labels()
    first.legend(handles, labels, fontsize=7, loc="upper left", ncol=1, framealpha=0.8)

    panel = fig.add_subplot(grid[2, :])
    x = [s + 0.5 for s in range(len(sync["on"]["pages"]))]
    for variant in ("off", "on"):
        color, label, data = COLORS[variant], LABELS[variant], sync[variant]
        panel.plot(x, data["pages"], color=color, linewidth=2, drawstyle="steps-mid",
                   label=f"other pages answered within {hg.PROMPT:.0f} s, {label}")
        panel.plot(x, data["tokens"], color=color, linewidth=1.2, linestyle=":", drawstyle="steps-mid",
                   label=f"tokens, {label}")
        panel.plot(x, data["refusals"], color=color, linewidth=1.5, linestyle="--", drawstyle="steps-mid",
                   label=f"refusals, {label}")
    at = mark_phases(panel, SYNC_PHASES, "hang")
    panel.set(xlabel="seconds (by when each call was due)", ylabel="per second", xlim=(0, at),
              ylim=(0, hg.RATES["const"] + 2))
    panel.set_title(f"eSputnik hangs for {SYNC_PHASES[1][1]:.0f} s, every APPINBOX_* key at its default: gunicorn "
                    f"sync, 3 workers\n(other pages {hg.RATES['const']:.0f}/s, token calls "
                    f"{hg.RATES['token']:.0f}/s, open loop)", fontsize=10, pad=16)
    panel.grid(alpha=0.3)
    panel.legend(fontsize=7, loc="center right", ncol=2, framealpha=0.8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    h.stop_on_sigterm()
    args = parse_args(argv)
    started = time.monotonic()
    variants = {"on": dict(g.BASE), "off": {**g.BASE, **g.OFF}}
    ps = sorted(args.p) if args.p else [round(0.1 * i, 1) for i in range(11)]
    tally = Tally()
    sweeps: dict[str, dict[float, dict[str, float]]] = {}
    lines: dict[str, dict[str, dict[str, list[float]]]] = {outage: {} for outage in OUTAGES}
    with h.LoadProcesses(2) as loads:
        for variant, settings in variants.items():
            print(f"== flaky sweep, guard {variant}, {args.seconds:.0f} s per p", flush=True)
            sweeps[variant] = g.retried(lambda: sweep(variant, settings, ps, args, loads, tally),  # noqa: B023
                                        f"sweep {variant}")
        for outage in OUTAGES:
            for variant, settings in variants.items():
                print(f"== {outage} timeline, guard {variant}", flush=True)
                lines[outage][variant] = g.retried(
                    lambda: timeline(outage, variant, settings, args, loads, tally),  # noqa: B023
                    f"{outage} timeline {variant}")
        sync: dict[str, dict[str, list[float]]] = {}
        for variant, settings in {"on": {}, "off": dict(g.OFF)}.items():
            print(f"== hang at the defaults on sync workers, guard {variant}", flush=True)
            sync[variant] = g.retried(lambda: sync_hang(variant, settings, loads, tally),  # noqa: B023
                                      f"sync hang {variant}")
    print("\n   p   served on  served off   attempts on  attempts off")
    for p in ps:
        on, off = sweeps["on"][p], sweeps["off"][p]
        print(f"  {p:.1f}  {on['served']:9.1%}  {off['served']:10.1%}  {on['attempts']:12.2f}  "
              f"{off['attempts']:12.2f}")
    draw(ps, sweeps, lines, sync, args)
    print(f"\nwrote {args.out}; {tally.calls} calls, {tally.problems} off-contract answers, "
          f"{tally.crashes} worker crashes; elapsed {time.monotonic() - started:.0f} s")
    return 0 if tally.problems == 0 and tally.crashes == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
