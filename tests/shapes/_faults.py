"""What the real-server tests share: the benchmark site's settings, a crowd of token calls,
the wait for recovery, and the healthy / hanging / trickling round (``faults``)."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import _harness

TIMEOUT, RETRIES = 1.0, 1
# The budget is every attempt's timeout plus the backoff between them; the backoff
# cap is at most 1 s (0.2's default; not configurable after 0.2).
BUDGET = (RETRIES + 1) * TIMEOUT + RETRIES * 1.0
SLACK = 0.5  # every call ends within budget + 0.5 s
CALLS = 8
#: What a hanging or trickling eSputnik may produce (API.md): a timeout, or the guard's refusals.
STUCK = {"upstream_timeout", "upstream_unavailable", "upstream_busy"}
RECOVERY = 60.0  # seconds to wait for the guard to let calls through again (no timed assertion)


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
