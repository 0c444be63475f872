"""The outage guard: its rule on a fake clock (the retry budget, hang detection, one probe a second), its
thread safety, and the guard, the bulkhead and the signals through the token endpoint."""
from __future__ import annotations

import random
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import responses
from conftest import TOKEN_URL, USERS, make_app
from test_client import Upstream, answer  # the scripted server on 127.0.0.1

from flask_appinbox import UpstreamUnavailable, signals
from flask_appinbox.guard import HANG_CALLS, MIN_ATTEMPTS, PROBE_EVERY, WINDOW, Guard

TIMEOUT = 1.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def changes() -> list[bool]:
    return []


@pytest.fixture
def guard(clock: Clock, changes: list[bool]) -> Guard:
    return Guard(TIMEOUT, on_change=changes.append, clock=clock)


def refused(guard: Guard) -> bool:
    """Whether admit() refuses the call (a hang); the refusal's answer is checked on the way."""
    try:
        guard.admit()
    except UpstreamUnavailable as exc:
        assert (exc.retry_after, exc.status, exc.error, exc.attempts) == (1, 503, "upstream_unavailable", 0)
        return True
    return False


def timeouts(guard: Guard, count: int, attempts: int = 3) -> None:
    for _ in range(count):
        guard.record(attempts, False, True)


def hang(guard: Guard, clock: Clock) -> None:
    """8 timed-out calls, then a 9th a timeout later: a hang from ``clock.now``."""
    timeouts(guard, HANG_CALLS)
    clock.now += TIMEOUT
    timeouts(guard, 1)
    assert guard.hung


def test_the_rule_s_constants() -> None:
    assert (WINDOW, MIN_ATTEMPTS, HANG_CALLS, PROBE_EVERY) == (2.0, 3, 8, 1.0)


# -- the retry budget ---------------------------------------------------------------------------

def test_retries_are_allowed_while_fewer_than_3_attempts_were_seen(guard: Guard) -> None:
    assert guard.admit() is True
    guard.record(1, False)
    guard.record(1, False)
    assert guard.admit() is True  # 2 attempts, none succeeded: too few to judge
    guard.record(1, False)
    assert guard.admit() is False  # 3


def test_after_a_quiet_window_the_first_call_that_timed_out_stops_the_retries(guard: Guard, clock: Clock) -> None:
    """4 threads stuck in a hang come back together, a whole call (3 attempts) later: the healthy calls
    before it have left the 2 s window, so the first thread's 3 timed-out attempts already stop the
    retries of every thread's next call (which then ends a timeout later: the second wave)."""
    for _ in range(40):
        guard.record(1, True)
    clock.now += 3.3
    for _ in range(4):
        guard.record(3, False, timed_out=True)
        assert guard.admit() is False
    clock.now += TIMEOUT
    for _ in range(4):
        guard.record(1, False, timed_out=True)
    assert guard.hung


def test_retries_follow_the_share_of_attempts_that_succeeded(clock: Clock) -> None:
    def share(ok: int, failed: int) -> bool:
        guard = Guard(TIMEOUT, clock=clock)
        for _ in range(ok):
            guard.record(1, True)
        for _ in range(failed):
            guard.record(1, False)
        return guard.admit()

    assert share(3, 7) is True  # 30 %
    assert share(3, 9) is True  # 25 % exactly
    assert share(6, 19) is False  # 24 %
    assert share(2, 8) is False  # 20 %
    assert share(0, 50) is False
    assert share(50, 0) is True


def test_the_share_is_of_attempts_not_of_calls(guard: Guard) -> None:
    for _ in range(2):
        guard.record(3, True)  # a call that succeeded on its third attempt: 1 success in 3 attempts
        guard.record(3, False)
    assert guard.admit() is False  # 2 successes in 12 attempts, though half the calls succeeded


def test_retries_come_back_as_the_window_moves_on(guard: Guard, clock: Clock) -> None:
    for _ in range(20):
        guard.record(1, False)
    assert guard.admit() is False
    clock.now += WINDOW - 0.05
    assert guard.admit() is False  # still within the window
    clock.now += 0.1
    assert guard.admit() is True  # those failures are forgotten


def test_the_window_forgets_successes_too(guard: Guard, clock: Clock) -> None:
    for _ in range(10):
        guard.record(1, True)
    clock.now += 1.0
    for _ in range(30):
        guard.record(1, False)
    assert guard.admit() is True  # 10 of 40: 25 %
    clock.now += 1.5  # the successes leave the window, the failures stay
    assert guard.admit() is False
    clock.now += 1.0
    assert guard.admit() is True


def test_a_flaky_esputnik_keeps_its_retries_and_never_hangs(guard: Guard, clock: Clock,
                                                           changes: list[bool]) -> None:
    """Half the calls fail (a quarter of those failures are timeouts), 100 calls a second, for 200 s."""
    rng = random.Random(7)
    allowed = 0
    for _ in range(20_000):
        allowed += guard.admit()
        r = rng.random()
        guard.record(1, r >= 0.5, r < 0.125)
        clock.now += 0.01
    assert allowed >= 0.99 * 20_000  # the window's share stays near 50 %, far above 25 %
    assert changes == [] and not guard.hung


# -- hangs ----------------------------------------------------------------------------------------

def test_8_timeouts_at_one_instant_are_no_hang(guard: Guard, clock: Clock, changes: list[bool]) -> None:
    """Every thread of a worker stuck on the same slow stretch times out together: that spans no timeout."""
    timeouts(guard, 20)
    assert not guard.hung and not refused(guard)
    clock.now += TIMEOUT - 0.25
    timeouts(guard, 1)
    assert not guard.hung and not refused(guard)
    clock.now += 0.25  # a whole timeout since the run began, still nothing but timeouts
    timeouts(guard, 1)
    assert guard.hung and refused(guard)
    assert changes == [True]


def test_a_hang_needs_8_calls_in_a_row(guard: Guard, clock: Clock) -> None:
    for _ in range(HANG_CALLS - 1):
        timeouts(guard, 1)
        clock.now += TIMEOUT
    assert not guard.hung and not refused(guard)  # 7 calls over 7 timeouts
    timeouts(guard, 1)
    assert guard.hung and refused(guard)


@pytest.mark.parametrize("outcome", [(1, True, False), (3, False, False), (1, False, False)],
                         ids=["success", "5xx-after-retries", "fast-failure"])
def test_an_answer_or_a_fast_failure_ends_a_run(guard: Guard, clock: Clock,
                                                outcome: tuple[int, bool, bool]) -> None:
    timeouts(guard, HANG_CALLS - 1)
    clock.now += TIMEOUT
    guard.record(*outcome)
    timeouts(guard, HANG_CALLS - 1)  # 7 + 7 timeouts around it, spanning a timeout: no run of 8
    assert not guard.hung
    clock.now += TIMEOUT
    timeouts(guard, 1)  # the new run is 8 long, but began a timeout ago at its first timeout
    assert guard.hung


def test_a_new_run_is_timed_from_its_own_first_timeout(guard: Guard, clock: Clock) -> None:
    timeouts(guard, 3)
    guard.record(1, True)
    clock.now += 10 * TIMEOUT
    timeouts(guard, HANG_CALLS + 5)  # all at one instant, long after the first run began
    assert not guard.hung


def test_one_probe_a_second_during_a_hang(guard: Guard, clock: Clock) -> None:
    hang(guard, clock)
    began = clock.now
    assert refused(guard)
    clock.now = began + PROBE_EVERY - 0.01
    assert refused(guard)
    clock.now = began + PROBE_EVERY
    assert guard.admit() is False  # the probe, without retries
    assert refused(guard) and refused(guard)  # the same second: refused again
    clock.now = began + PROBE_EVERY + 0.5
    assert refused(guard)
    clock.now = began + 2 * PROBE_EVERY
    assert guard.admit() is False
    clock.now = began + 10 * PROBE_EVERY
    assert guard.admit() is False  # seconds without a caller make one probe, not several
    assert refused(guard)


def test_a_probe_never_retries_even_when_the_budget_would_allow(guard: Guard, clock: Clock) -> None:
    hang(guard, clock)
    clock.now += WINDOW + 1  # the timeouts have left the window: the budget alone would allow retries
    assert guard.admit() is False
    assert refused(guard)


def test_a_success_ends_the_hang(guard: Guard, clock: Clock, changes: list[bool]) -> None:
    hang(guard, clock)
    clock.now += PROBE_EVERY
    assert guard.admit() is False
    guard.record(1, True)
    assert not guard.hung
    assert not refused(guard) and not refused(guard)
    assert changes == [True, False]


def test_a_fast_failure_ends_the_hang_too(guard: Guard, clock: Clock, changes: list[bool]) -> None:
    """The rule refuses what hangs: a probe answered with a 5xx (or refused) in milliseconds costs nothing."""
    hang(guard, clock)
    guard.record(1, False)
    assert not guard.hung and not refused(guard)
    assert changes == [True, False]


def test_on_change_is_called_once_each_way(guard: Guard, clock: Clock, changes: list[bool]) -> None:
    hang(guard, clock)
    for _ in range(5):  # more timeouts during the hang: stragglers and failed probes
        clock.now += PROBE_EVERY
        timeouts(guard, 2, attempts=1)
    assert changes == [True]
    guard.record(1, True)
    guard.record(1, True)
    timeouts(guard, 3)
    assert changes == [True, False]


def test_a_straggler_s_timeout_does_not_postpone_the_probe(guard: Guard, clock: Clock) -> None:
    hang(guard, clock)
    began = clock.now
    clock.now = began + 0.9
    timeouts(guard, 1)  # a call admitted before the hang times out now
    assert guard.hung
    clock.now = began + PROBE_EVERY
    assert guard.admit() is False  # the probe comes a second after the hang began, as it would have


def test_a_listener_may_look_at_the_guard(clock: Clock) -> None:
    """on_change runs outside the guard's lock: a listener that calls the guard does not deadlock."""
    seen: list[tuple[bool, bool]] = []
    watched: list[Guard] = []

    def listener(hung: bool) -> None:
        seen.append((hung, refused(watched[0])))

    watched.append(Guard(TIMEOUT, on_change=listener, clock=clock))
    worker = threading.Thread(target=hang, args=(watched[0], clock), daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "on_change was called under the guard's lock"
    assert seen == [(True, True)]


def test_a_failing_listener_leaves_the_guard_consistent(clock: Clock) -> None:
    def listener(hung: bool) -> None:
        raise RuntimeError("listener bug")

    guard = Guard(TIMEOUT, on_change=listener, clock=clock)
    with pytest.raises(RuntimeError):
        hang(guard, clock)
    assert guard.hung and refused(guard)
    with pytest.raises(RuntimeError):
        guard.record(1, True)
    assert not guard.hung and not refused(guard)


# -- threads --------------------------------------------------------------------------------------

@pytest.fixture
def fast_switching() -> Iterator[None]:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def crowd(n: int, fn: Callable[[int], None]) -> None:
    """Run ``fn(i)`` in ``n`` threads released together, and wait for them."""
    start = threading.Barrier(n)

    def run(i: int) -> None:
        start.wait(5)
        fn(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)


def test_threads_recording_at_once_leave_consistent_counts(guard: Guard, clock: Clock, changes: list[bool],
                                                           fast_switching: None) -> None:
    def work(i: int) -> None:
        for n in range(2000):
            guard.admit()
            guard.record(1 + n % 3, n % 2 == 0)

    crowd(8, work)
    assert len(guard._recent) == 8 * 2000
    assert guard._attempts == sum(attempts for _, attempts, _ in guard._recent) == 8 * (667 * 1 + 667 * 2 + 666 * 3)
    assert guard._successes == sum(ok for _, _, ok in guard._recent) == 8 * 1000
    clock.now += WINDOW + 1
    assert guard.admit() is True
    assert (guard._attempts, guard._successes, len(guard._recent)) == (0, 0, 0)
    assert changes == []


def test_threads_timing_out_at_once_make_one_hang_and_one_probe(guard: Guard, clock: Clock, changes: list[bool],
                                                                fast_switching: None) -> None:
    crowd(8, lambda i: timeouts(guard, 100))
    assert guard._timeouts == 800 and not guard.hung  # all at one instant
    clock.now += TIMEOUT
    crowd(8, lambda i: timeouts(guard, 10))
    assert guard.hung and changes == [True]
    clock.now += PROBE_EVERY
    probes: list[bool] = []
    refusals: list[bool] = []
    crowd(8, lambda i: refusals.append(True) if refused(guard) else probes.append(True))
    assert (len(probes), len(refusals)) == (1, 7)


# -- through the endpoint -------------------------------------------------------------------------

def post(client: Any) -> Any:
    return client.post("/appinbox/token")


def test_a_total_5xx_outage_costs_about_one_attempt_per_call() -> None:
    """A real server (``responses`` would count one attempt for a call that made three): once the budget has
    seen 3 failed attempts, calls are made without retries, and no first attempt is refused."""
    server = Upstream(answer(500, b"{}"))
    try:
        app = make_app({"APPINBOX_API_URL": server.url, "APPINBOX_RETRIES": 2, "APPINBOX_TIMEOUT": 2.0})
        app.extensions["appinbox"].guard.clock = Clock()  # the window holds the whole run
        client = app.test_client(user=USERS["1"])
        answers = [post(client) for _ in range(50)]
    finally:
        server.close()
    assert {(r.status_code, r.json["error"]) for r in answers} == {(502, "upstream_error")}
    # 1 call of 3 attempts teaches the budget (3 attempts, none succeeded), then 1 attempt a call.
    assert server.requests == 3 + 49
    assert server.requests < 1.2 * 50


def test_without_the_guard_every_call_retries(upstream: responses.RequestsMock) -> None:
    app = make_app({"APPINBOX_GUARD": False, "APPINBOX_MAX_CONCURRENT": 1})
    state = app.extensions["appinbox"]
    assert state.guard is None and state.client.guard is None
    assert state.bulkhead is None  # nothing is refused locally
    client = app.test_client(user=USERS["1"])
    upstream.post(TOKEN_URL, status=500)
    for _ in range(20):
        assert post(client).json == {"error": "upstream_error"}
    assert len(upstream.calls) == 3 * 20
    upstream.replace(responses.POST, TOKEN_URL, body=requests.exceptions.ReadTimeout("hang"))
    for _ in range(3 * HANG_CALLS):  # timeouts never make a hang
        assert post(client).json == {"error": "upstream_timeout"}


def test_a_held_slot_answers_upstream_busy(upstream: responses.RequestsMock) -> None:
    app = make_app({"APPINBOX_MAX_CONCURRENT": 1})
    bulkhead = app.extensions["appinbox"].bulkhead
    client = app.test_client(user=USERS["1"])
    upstream.post(TOKEN_URL, json={"token": "t"})
    assert bulkhead.acquire(blocking=False)
    try:
        response = post(client)
    finally:
        bulkhead.release()
    assert (response.status_code, response.json) == (503, {"error": "upstream_busy"})
    assert response.headers["Retry-After"] == "1" and response.headers["Cache-Control"] == "no-store"
    assert not upstream.calls
    assert post(client).json == {"token": "t"}
    assert len(upstream.calls) == 1


def test_a_hang_through_the_endpoint(upstream: responses.RequestsMock) -> None:
    app = make_app()
    clock = Clock()
    app.extensions["appinbox"].guard.clock = clock
    timeout = app.config["APPINBOX_TIMEOUT"]
    sent: list[tuple[str, Any]] = []

    def opened(sender: Any, **kwargs: Any) -> None:
        sent.append(("opened", sender))

    def closed(sender: Any, **kwargs: Any) -> None:
        sent.append(("closed", sender))

    client = app.test_client(user=USERS["1"])
    upstream.post(TOKEN_URL, body=requests.exceptions.ReadTimeout("hang"))
    with signals.guard_opened.connected_to(opened, app), signals.guard_closed.connected_to(closed, app):
        for _ in range(HANG_CALLS):  # every thread's call timed out at once: no hang yet
            assert post(client).json == {"error": "upstream_timeout"}
        clock.now += timeout
        assert post(client).status_code == 504  # nothing but timeouts for a whole timeout: a hang
        assert sent == [("opened", app)]
        calls = len(upstream.calls)
        for _ in range(5):
            response = post(client)
            assert (response.status_code, response.json) == (503, {"error": "upstream_unavailable"})
            assert response.headers["Retry-After"] == "1" and response.headers["Cache-Control"] == "no-store"
        assert len(upstream.calls) == calls  # refused without a call

        clock.now += PROBE_EVERY
        assert post(client).status_code == 504  # the probe, still hanging
        assert len(upstream.calls) == calls + 1
        assert post(client).status_code == 503

        clock.now += PROBE_EVERY
        upstream.replace(responses.POST, TOKEN_URL, json={"token": "back"})
        assert post(client).json == {"token": "back"}  # the probe gets through: the hang is over
        assert sent == [("opened", app), ("closed", app)]
        for _ in range(3):
            assert post(client).json == {"token": "back"}
    assert sent == [("opened", app), ("closed", app)]
    assert len(upstream.calls) == calls + 5


def test_a_probe_that_ends_in_an_unexpected_error_leaves_the_guard_working(
        upstream: responses.RequestsMock) -> None:
    """A bug below the client (here the adapter raising RuntimeError) during the probe must not leave the
    guard refusing for good: a second later at most, a call goes through."""
    app = make_app()
    clock = Clock()
    guard = app.extensions["appinbox"].guard
    guard.clock = clock
    client = app.test_client(user=USERS["1"])
    upstream.post(TOKEN_URL, body=requests.exceptions.ReadTimeout("hang"))
    for _ in range(HANG_CALLS):
        post(client)
    clock.now += guard.timeout
    post(client)
    assert guard.hung
    clock.now += PROBE_EVERY
    upstream.replace(responses.POST, TOKEN_URL, body=RuntimeError("adapter bug"))
    app.testing = False  # were the error to reach Flask: logged, and the endpoint's 503
    calls = len(upstream.calls)
    response = post(client)
    assert response.status_code in (502, 503) and response.json["error"] in ("upstream_error", "internal_error")
    assert len(upstream.calls) == calls + 1  # the probe was made
    clock.now += PROBE_EVERY
    upstream.replace(responses.POST, TOKEN_URL, json={"token": "back"})
    assert post(client).json == {"token": "back"}
    assert not guard.hung


def test_rejections_and_rate_limits_make_no_hang(upstream: responses.RequestsMock) -> None:
    app = make_app()
    clock = Clock()
    guard = app.extensions["appinbox"].guard
    guard.clock = clock
    client = app.test_client(user=USERS["1"])
    upstream.post(TOKEN_URL, status=401)
    for _ in range(20):
        assert post(client).json == {"error": "upstream_rejected"}
        clock.now += 0.5
    assert guard.admit() is True  # a 401 is an answer: retries stay
    upstream.replace(responses.POST, TOKEN_URL, status=429, headers={"Retry-After": "60"})
    for _ in range(20):
        assert post(client).json == {"error": "upstream_rate_limited"}
        clock.now += 0.5
    assert not guard.hung
    assert len(upstream.calls) == 40  # neither is retried
