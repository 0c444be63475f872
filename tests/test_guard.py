"""The outage guard: its rule on a fake clock (the retry budget, hang detection by time without an
answer, probes spaced from when the previous one ended), a sync worker's view, its thread safety,
and the guard, the bulkhead and the signals through the token endpoint."""
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
from flask_appinbox._guard import FAILED, HANG_CALLS, OK, TIMEOUT, Guard

READ = 3.0  # the read timeout
BUDGET = 7.0  # the longest a call can take


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
    return Guard(READ, BUDGET, on_change=changes.append, clock=clock)


def refused(guard: Guard) -> bool:
    """Whether admit() refuses the call; the refusal's answer is checked on the way. A call admitted
    here ends at once as a fast failure would not: it is ended with ``None`` (counted nowhere)."""
    try:
        call, _ = guard.admit()
    except UpstreamUnavailable as exc:
        assert exc.status == 503 and exc.error == "upstream_unavailable" and exc.attempts == 0
        assert exc.retry_after is not None and exc.retry_after >= 1
        return True
    guard.done(call, 0, None)
    return False


def call(guard: Guard, clock: Clock, outcome: str | None, lasts: float = 0.0, attempts: int = 1) -> bool:
    """One call alone: admitted, lasting ``lasts`` seconds, ended with ``outcome``; whether it might retry."""
    ticket, may_retry = guard.admit()
    clock.now += lasts
    guard.done(ticket, attempts, outcome)
    return may_retry


def may_retry(guard: Guard) -> bool:
    ticket, allowed = guard.admit()
    guard.done(ticket, 0, None)
    return allowed


def hang(guard: Guard, clock: Clock) -> None:
    """A call alone that timed out, nothing answered during it: a hang from ``clock.now``."""
    call(guard, clock, TIMEOUT, lasts=READ)
    assert guard.hung


# -- the retry budget ---------------------------------------------------------------------------

def test_retries_are_allowed_while_fewer_than_3_attempts_were_seen(guard: Guard, clock: Clock) -> None:
    assert call(guard, clock, FAILED) is True
    assert call(guard, clock, FAILED) is True  # 1 attempt seen
    assert may_retry(guard) is True  # 2 attempts, none succeeded: too few to judge
    call(guard, clock, FAILED)
    assert may_retry(guard) is False  # 3


def test_retries_follow_the_share_of_attempts_that_succeeded(clock: Clock) -> None:
    def share(ok: int, failed: int) -> bool:
        guard = Guard(READ, BUDGET, clock=clock)
        for _ in range(ok):
            call(guard, clock, OK)
        for _ in range(failed):
            call(guard, clock, FAILED)
        return may_retry(guard)

    assert share(3, 7) is True  # 30 %
    assert share(3, 9) is True  # 25 % exactly
    assert share(6, 19) is False  # 24 %
    assert share(0, 50) is False
    assert share(50, 0) is True


def test_the_share_is_of_attempts_not_of_calls(guard: Guard, clock: Clock) -> None:
    for _ in range(2):
        call(guard, clock, OK, attempts=3)  # succeeded on its third attempt: 1 success in 3 attempts
        call(guard, clock, FAILED, attempts=3)
    assert may_retry(guard) is False  # 2 successes in 12 attempts, though half the calls succeeded


def test_retries_come_back_as_the_window_moves_on(guard: Guard, clock: Clock) -> None:
    for _ in range(20):
        call(guard, clock, FAILED)
    assert may_retry(guard) is False
    clock.now += 1.9
    assert may_retry(guard) is False  # still within the 2 s window
    clock.now += 0.2
    assert may_retry(guard) is True  # those failures are forgotten


def test_an_error_of_ours_is_not_counted(guard: Guard, clock: Clock, changes: list[bool]) -> None:
    """A bug below the client (outcome None) says nothing of eSputnik: no failure, no timeout, no hang."""
    for _ in range(20):
        call(guard, clock, None, lasts=READ)
    assert may_retry(guard) is True and not guard.hung and changes == []
    assert guard._in_flight == {}  # and every call left the in-flight set


# -- hangs: time without an answer ----------------------------------------------------------------

def test_a_sync_worker_declares_a_hang_and_probes_hold_its_thread_less_than_half_the_time(
        clock: Clock, changes: list[bool]) -> None:
    """One thread (a sync worker) gets a token call every second; eSputnik hangs for 40 s, so every call
    it lets through holds the thread a whole read timeout. The hang is seen on the first call, and the
    probes leave the thread free most of the time. (0.3's guard needed 8 timeouts in a row, 15 s each.)"""
    guard = Guard(READ, BUDGET, on_change=changes.append, clock=clock)
    start = clock.now
    probing, due, made, hung_at = 0.0, start, 0, None
    while due < start + 40:
        clock.now = max(clock.now, due)  # a call waits for the thread
        try:
            ticket, _ = guard.admit()
        except UpstreamUnavailable:
            pass
        else:
            made += 1
            clock.now += READ
            probing += READ if hung_at is not None else 0
            guard.done(ticket, 1, TIMEOUT)
            hung_at = hung_at or (clock.now if guard.hung else None)
        due += 1.0
    assert changes == [True] and hung_at == start + READ  # seen on the first call
    assert made <= 8  # the first call, then probes
    assert probing / (clock.now - hung_at) <= 0.5


def test_one_slow_call_among_answered_ones_refuses_about_a_second(guard: Guard, clock: Clock,
                                                                  changes: list[bool]) -> None:
    """The cost of a false hang: a sync worker's calls every 0.1 s are answered, one times out. The calls
    refused until a probe gets through span about a second."""
    for _ in range(10):
        call(guard, clock, OK, lasts=0.05)
        clock.now += 0.05
    call(guard, clock, TIMEOUT, lasts=READ)
    assert guard.hung
    began = clock.now
    while True:
        try:
            probe, _ = guard.admit()
            break
        except UpstreamUnavailable:
            clock.now += 0.1
    assert 0.9 <= clock.now - began <= 1.1
    guard.done(probe, 1, OK)  # the probe is answered
    assert not guard.hung and changes == [True, False]


def test_a_stall_shorter_than_a_timeout_refuses_nothing(guard: Guard, clock: Clock) -> None:
    """Four threads wait 2.5 s on a stall, then all are answered."""
    tickets = [guard.admit()[0] for _ in range(4)]
    clock.now += READ - 0.5
    for ticket in tickets:
        guard.done(ticket, 1, OK)
    assert not guard.hung and not refused(guard)


def test_a_timeout_while_others_were_answered_is_no_hang(guard: Guard, clock: Clock) -> None:
    slow, _ = guard.admit()
    clock.now += 1.0
    call(guard, clock, OK, lasts=0.1)  # answered while the slow call waits
    clock.now += READ - 1.1
    guard.done(slow, 1, TIMEOUT)
    assert not guard.hung


def test_a_timeout_among_calls_in_flight_needs_8_in_a_row(guard: Guard, clock: Clock,
                                                          changes: list[bool]) -> None:
    """Slow calls that overlap (a flaky eSputnik under load) are judged by 8 timeouts in a row, with
    nothing answered for a timeout, never by one."""
    first, _ = guard.admit()  # alone
    clock.now += 0.1
    others = [guard.admit()[0] for _ in range(HANG_CALLS - 1)]  # each began beside another
    guard.done(first, 1, OK)
    clock.now += READ
    for ticket in others[:-1]:
        guard.done(ticket, 1, TIMEOUT)
    assert not guard.hung  # 6 in a row
    late, _ = guard.admit()
    guard.done(others[-1], 1, TIMEOUT)
    assert not guard.hung  # 7
    clock.now += READ
    guard.done(late, 1, TIMEOUT)
    assert guard.hung and changes == [True]  # 8, nothing answered for a whole timeout


def test_a_call_in_flight_past_its_budget_is_a_hang(guard: Guard, clock: Clock, changes: list[bool]) -> None:
    """A status line trickled byte by byte holds a call past any timeout: other threads see it."""
    stuck, _ = guard.admit()
    clock.now += BUDGET - 0.1
    assert not refused(guard)
    clock.now += 0.2
    assert refused(guard) and guard.hung and changes == [True]
    guard.done(stuck, 1, OK)  # it ends with an answer after all
    assert not guard.hung and changes == [True, False]


def test_a_call_past_its_budget_is_no_hang_when_others_were_answered(guard: Guard, clock: Clock) -> None:
    stuck, _ = guard.admit()
    clock.now += 1
    call(guard, clock, OK)
    clock.now += BUDGET
    assert not refused(guard)
    guard.done(stuck, 1, TIMEOUT)


def test_probes_one_at_a_time_spaced_from_when_the_last_ended(guard: Guard, clock: Clock) -> None:
    hang(guard, clock)
    began = clock.now
    clock.now = began + 0.99
    assert refused(guard)
    clock.now = began + 1.0
    probe, retries = guard.admit()
    assert retries is False  # a probe never retries
    clock.now += 2.0
    assert refused(guard)  # one probe at a time, however long it takes
    clock.now += 1.0
    guard.done(probe, 1, TIMEOUT)  # held its thread 3 s: the next waits as long
    ended = clock.now
    clock.now = ended + 2.9
    assert refused(guard)
    clock.now = ended + 3.0
    probe, _ = guard.admit()
    clock.now += 0.5
    guard.done(probe, 1, FAILED)  # a fast answer (a 5xx, a refusal) ends the hang
    assert not guard.hung and not refused(guard)


def test_a_probe_that_ends_in_an_error_of_ours_frees_the_next_probe(guard: Guard, clock: Clock) -> None:
    hang(guard, clock)
    clock.now += 1.0
    probe, _ = guard.admit()
    guard.done(probe, 0, None)
    assert guard.hung
    clock.now += 1.0
    probe, _ = guard.admit()
    guard.done(probe, 1, OK)
    assert not guard.hung


def test_a_flaky_esputnik_under_load_never_hangs(guard: Guard, clock: Clock, changes: list[bool]) -> None:
    """Half the attempts fail, a quarter of those slow past the timeout; 100 calls a second over 16
    threads, for 200 s: slow calls overlap, answers keep coming."""
    rng = random.Random(7)
    running: list[tuple[float, Any, str]] = []
    allowed = 0
    for _ in range(20_000):
        clock.now += 0.01
        for item in [r for r in running if r[0] <= clock.now]:
            running.remove(item)
            guard.done(item[1], 1, item[2])
        ticket, retry = guard.admit()
        allowed += retry
        r = rng.random()
        running.append((clock.now + (READ if r < 0.125 else 0.05), ticket, TIMEOUT if r < 0.125 else
                        FAILED if r < 0.5 else OK))
    assert allowed >= 0.99 * 20_000
    assert changes == [] and not guard.hung


def test_on_change_is_called_once_each_way(guard: Guard, clock: Clock, changes: list[bool]) -> None:
    hang(guard, clock)
    for _ in range(5):  # failed probes
        clock.now += READ
        call(guard, clock, TIMEOUT, lasts=READ)
    assert changes == [True]
    clock.now += READ
    call(guard, clock, OK)
    call(guard, clock, OK)
    assert changes == [True, False]


def test_a_listener_may_look_at_the_guard(clock: Clock) -> None:
    """on_change runs outside the guard's lock: a listener that calls the guard does not deadlock."""
    seen: list[tuple[bool, bool]] = []
    watched: list[Guard] = []

    def listener(hung: bool) -> None:
        seen.append((hung, refused(watched[0])))

    watched.append(Guard(READ, BUDGET, on_change=listener, clock=clock))
    worker = threading.Thread(target=hang, args=(watched[0], clock), daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "on_change was called under the guard's lock"
    assert seen == [(True, True)]


def test_a_failing_listener_leaves_the_guard_consistent(clock: Clock) -> None:
    def listener(hung: bool) -> None:
        raise RuntimeError("listener bug")

    guard = Guard(READ, BUDGET, on_change=listener, clock=clock)
    with pytest.raises(RuntimeError):
        hang(guard, clock)
    assert guard.hung and refused(guard) and guard._in_flight == {}
    clock.now += 1.0
    with pytest.raises(RuntimeError):
        call(guard, clock, OK)
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


def test_threads_at_once_leave_consistent_counts(guard: Guard, clock: Clock, changes: list[bool],
                                                 fast_switching: None) -> None:
    def work(i: int) -> None:
        for n in range(2000):
            ticket, _ = guard.admit()
            guard.done(ticket, 1 + n % 3, OK if n % 2 == 0 else FAILED)

    crowd(8, work)
    assert len(guard._recent) == 8 * 2000 and guard._in_flight == {}
    assert guard._attempts == sum(attempts for _, attempts, _ in guard._recent) == 8 * (667 * 1 + 667 * 2 + 666 * 3)
    assert guard._successes == sum(ok for _, _, ok in guard._recent) == 8 * 1000
    clock.now += 3
    assert may_retry(guard) is True
    assert (guard._attempts, guard._successes, len(guard._recent)) == (0, 0, 0)
    assert changes == []


def test_threads_during_a_hang_make_one_probe(guard: Guard, clock: Clock, changes: list[bool],
                                              fast_switching: None) -> None:
    hang(guard, clock)
    clock.now += 1.0
    probes: list[Any] = []
    refusals: list[bool] = []

    def one(i: int) -> None:
        try:
            probes.append(guard.admit()[0])
        except UpstreamUnavailable:
            refusals.append(True)

    crowd(8, one)
    assert (len(probes), len(refusals)) == (1, 7) and changes == [True]


# -- through the endpoint -------------------------------------------------------------------------

def post(client: Any) -> Any:
    return client.post("/appinbox/token")


def test_a_total_5xx_outage_costs_about_one_attempt_per_call() -> None:
    """A real server (``responses`` would count one attempt for a call that made three): once the budget has
    seen 3 failed attempts, calls are made without retries, and no first attempt is refused."""
    server = Upstream(answer(503, b"{}"))
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
    assert state.guard is None and state.client._guard is None
    assert state.bulkhead is None  # nothing is refused locally
    client = app.test_client(user=USERS["1"])
    upstream.post(TOKEN_URL, status=503)
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


def hanging(clock: Clock, seconds: float = READ) -> Callable[[Any], Any]:
    """A ``responses`` callback: the call takes ``seconds`` on the guard's clock, then times out."""
    def callback(request: Any) -> Any:
        clock.now += seconds
        raise requests.exceptions.ReadTimeout("hang")
    return callback


def test_a_hang_through_the_endpoint(upstream: responses.RequestsMock) -> None:
    """The test client serves one call at a time, as a sync worker does: one call that timed out with
    nothing answered is a hang."""
    app = make_app()
    clock = Clock()
    app.extensions["appinbox"].guard.clock = clock
    sent: list[tuple[str, Any]] = []

    def opened(sender: Any, **kwargs: Any) -> None:
        sent.append(("opened", sender))

    def closed(sender: Any, **kwargs: Any) -> None:
        sent.append(("closed", sender))

    client = app.test_client(user=USERS["1"])
    upstream.add_callback(responses.POST, TOKEN_URL, callback=hanging(clock))
    with signals.guard_opened.connected_to(opened, app), signals.guard_closed.connected_to(closed, app):
        assert post(client).json == {"error": "upstream_timeout"}
        assert len(upstream.calls) == 1  # a read timeout is not retried
        assert sent == [("opened", app)]
        for _ in range(5):
            response = post(client)
            assert (response.status_code, response.json) == (503, {"error": "upstream_unavailable"})
            assert response.headers["Retry-After"] == "1" and response.headers["Cache-Control"] == "no-store"
        assert len(upstream.calls) == 1  # refused without a call

        clock.now += 1.0
        assert post(client).status_code == 504  # the probe, still hanging, 3 s
        assert len(upstream.calls) == 2
        clock.now += 2.9
        assert post(client).status_code == 503  # the next probe waits as long as the last one held the thread

        clock.now += 0.1
        upstream.replace(responses.POST, TOKEN_URL, json={"token": "back"})
        assert post(client).json == {"token": "back"}  # the probe gets through: the hang is over
        assert sent == [("opened", app), ("closed", app)]
        for _ in range(3):
            assert post(client).json == {"token": "back"}
    assert sent == [("opened", app), ("closed", app)]
    assert len(upstream.calls) == 6


def test_an_error_of_ours_is_flask_s_and_not_eSputnik_s(upstream: responses.RequestsMock) -> None:
    """A bug below the client (here the adapter raising RuntimeError) propagates to Flask, which logs it
    (the endpoint's 503 internal_error), is no upstream_error, and is not counted by the guard: a probe
    that ends in it leaves the next probe a second later."""
    app = make_app()
    clock = Clock()
    guard = app.extensions["appinbox"].guard
    guard.clock = clock
    client = app.test_client(user=USERS["1"])
    upstream.add_callback(responses.POST, TOKEN_URL, callback=hanging(clock))
    post(client)
    assert guard.hung
    clock.now += 1.0
    upstream.replace(responses.POST, TOKEN_URL, body=RuntimeError("adapter bug"))
    with pytest.raises(RuntimeError):  # under TESTING, Flask hands it to the test
        post(client)
    app.testing = False
    clock.now += 1.0
    response = post(client)
    assert (response.status_code, response.json) == (503, {"error": "internal_error"})
    assert guard.hung and guard._in_flight == {}  # not counted, and not left in flight
    for _ in range(20):
        post(client)  # errors of ours: never a hang's end, never a failure in the budget
        clock.now += 1.0
    assert guard._attempts == 1 and guard._successes == 0
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
    assert may_retry(guard) is True  # a 401 is an answer: retries stay
    upstream.replace(responses.POST, TOKEN_URL, status=429, headers={"Retry-After": "60"})
    for _ in range(20):
        assert post(client).json == {"error": "upstream_rate_limited"}
        clock.now += 0.5
    assert not guard.hung
    assert len(upstream.calls) == 40  # neither is retried
