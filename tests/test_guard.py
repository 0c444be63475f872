"""Outage isolation: the circuit breaker, the bulkhead, single-flight first calls."""
from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests
import responses
from conftest import TOKEN_URL, USERS, make_app

from flask_appinbox import UpstreamBusy, UpstreamUnavailable
from flask_appinbox.cache import SingleFlight
from flask_appinbox.guard import Bulkhead, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_states_and_timing() -> None:
    clock = Clock()
    changes: list[tuple[str, str]] = []
    breaker = CircuitBreaker(3, 30, clock=clock, on_change=lambda old, new: changes.append((old, new)))
    for _ in range(2):
        breaker.before_call()
        breaker.failure(timeout=True)
    assert breaker.state == "closed"
    breaker.success()  # a success ends the run of timeouts
    for _ in range(2):
        breaker.failure(timeout=True)
    breaker.failure()  # so does any other failure: a fast one is not a hang
    breaker.release(answered=True)  # and any answer (a 400, a 429)
    for _ in range(3):
        breaker.before_call()
        breaker.failure(timeout=True)
    assert breaker.state == "open" and changes == [("closed", "open")]
    assert breaker.reason == "3 attempts in a row timed out"
    clock.now += 10
    with pytest.raises(UpstreamUnavailable) as info:
        breaker.before_call()
    assert info.value.retry_after == 20 and info.value.status == 503
    clock.now += 20
    assert breaker.state == "half_open"
    breaker.before_call()  # the one trial call goes through
    other: list[BaseException] = []
    t = threading.Thread(target=lambda: _capture(breaker.before_call, other))
    t.start()
    t.join()
    assert isinstance(other[0], UpstreamUnavailable)  # a second caller during the trial fails fast
    breaker.failure()  # the trial failed (any failure): open again for a full cool-down
    assert breaker.state == "open"
    clock.now += 29
    with pytest.raises(UpstreamUnavailable):
        breaker.before_call()
    clock.now += 1
    breaker.before_call()
    breaker.success()
    assert breaker.state == "closed"
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "open"),
                       ("open", "half_open"), ("half_open", "closed")]


def crowd(n: int, fn: Any) -> None:
    """Run ``fn`` in ``n`` threads at once and wait for them."""
    threads = [threading.Thread(target=fn) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)


class CountingLock:
    """Stands in for a SingleFlight's lock: counts the callers that have come in, so that the
    leader's call can wait until every other caller has found its flight (no sleep as a barrier)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen = threading.Condition()
        self.entered = 0

    def __enter__(self) -> None:
        self._lock.acquire()
        with self._seen:
            self.entered += 1
            self._seen.notify_all()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def wait_for(self, n: int) -> None:
        with self._seen:
            assert self._seen.wait_for(lambda: self.entered >= n, 5), f"{self.entered} of {n} callers came in"


def _capture(fn: Any, into: list[BaseException]) -> None:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001
        into.append(exc)


def test_breaker_release_frees_the_trial() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 5, clock=clock)
    breaker.failure(timeout=True)
    clock.now += 5
    breaker.before_call()
    breaker.release()  # e.g. a 400: neither success nor failure
    errors: list[BaseException] = []
    t = threading.Thread(target=lambda: _capture(breaker.before_call, errors))
    t.start()
    t.join()
    assert errors == []  # another caller may now try


def test_breaker_threshold_zero_is_off() -> None:
    breaker = CircuitBreaker(0, 5)
    for _ in range(100):
        breaker.before_call()
        breaker.failure(timeout=True)
    assert breaker.state == "closed"


def test_breaker_opens_on_a_failure_ratio_over_its_window() -> None:
    clock = Clock()
    breaker = CircuitBreaker(4, 5, clock=clock)  # 50 % of at least 20 attempts in 5 s
    for _ in range(19):
        breaker.failure()  # fast failures: no run of timeouts
    assert breaker.state == "closed"  # fewer than 20 attempts say nothing yet
    clock.now += 6  # ... and they leave the window
    for i in range(40):
        breaker.success() if i % 2 else breaker.failure()
        clock.now += 0.05
    assert breaker.state == "open"
    assert breaker.reason.endswith("attempts failed")


def test_breaker_stays_closed_for_a_flaky_esputnik() -> None:
    """30 % failures (a quarter of them timeouts) over 100,000 attempts at 100 a second: never open."""
    import random

    rng = random.Random(7)
    clock = Clock()
    breaker = CircuitBreaker(4, 1, clock=clock)
    for _ in range(100_000):
        r = rng.random()
        if r < 0.225:
            breaker.failure()
        elif r < 0.3:
            breaker.failure(timeout=True)
        else:
            breaker.success()
        clock.now += 0.01
    assert breaker.state == "closed"


def test_recovery_forgets_the_outage() -> None:
    clock = Clock()
    breaker = CircuitBreaker(4, 1, clock=clock)
    for _ in range(30):
        breaker.failure()
    assert breaker.state == "open"
    clock.now += 1
    breaker.before_call()  # the trial
    breaker.success()
    assert breaker.state == "closed"
    breaker.failure()  # the outage's 30 failures are gone: one more opens nothing
    assert breaker.state == "closed"


def test_breaker_through_the_endpoint(upstream: responses.RequestsMock, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app({"APPINBOX_BREAKER_THRESHOLD": 3, "APPINBOX_BREAKER_COOLDOWN": 30, "APPINBOX_RETRIES": 1})
    clock = Clock()
    app.extensions["appinbox"].client.breaker.clock = clock
    client = app.test_client(user=USERS["1"])
    upstream.post(TOKEN_URL, body=requests.exceptions.ReadTimeout("hang"))
    assert client.post("/appinbox/token").status_code == 504  # two failed attempts
    response = client.post("/appinbox/token")  # the third failed attempt opens the breaker
    assert response.status_code == 503 and response.json == {"error": "upstream_unavailable"}
    assert len(upstream.calls) == 3
    assert "opened" in caplog.text
    for _ in range(5):
        response = client.post("/appinbox/token")
        assert (response.status_code, response.json) == (503, {"error": "upstream_unavailable"})
        assert response.headers["Retry-After"] == "30"
        assert response.headers["Cache-Control"] == "no-store"
    assert len(upstream.calls) == 3  # fast-failed answers never reached eSputnik
    clock.now += 30
    upstream.replace(responses.POST, TOKEN_URL, json={"token": "back"})
    assert client.post("/appinbox/token").json == {"token": "back"}
    assert "closed" in caplog.text
    assert client.post("/appinbox/token").json == {"token": "back"}


def test_rejections_and_rate_limits_do_not_open_the_breaker(upstream: responses.RequestsMock) -> None:
    app = make_app({"APPINBOX_BREAKER_THRESHOLD": 2, "APPINBOX_RETRIES": 0})
    client = app.test_client(user=USERS["1"])
    upstream.post(TOKEN_URL, status=401)
    for _ in range(5):
        assert client.post("/appinbox/token").json == {"error": "upstream_rejected"}
    upstream.replace(responses.POST, TOKEN_URL, status=429, headers={"Retry-After": "60"})
    for _ in range(5):
        assert client.post("/appinbox/token").json == {"error": "upstream_rate_limited"}
    assert app.extensions["appinbox"].client.breaker.state == "closed"


def test_bulkhead_limits_calls_in_flight() -> None:
    bulkhead = Bulkhead(2)
    inside = threading.Barrier(3)
    release = threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        with bulkhead.slot():
            inside.wait(5)
            release.wait(5)

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait(5)
    assert bulkhead.in_flight == 2
    start = time.monotonic()
    _capture(lambda: bulkhead.slot().__enter__(), errors)
    assert time.monotonic() - start < 4  # answered at once, not queued behind the holders (5 s)
    assert isinstance(errors[0], UpstreamBusy) and errors[0].retry_after == 1
    release.set()
    for t in threads:
        t.join()
    with bulkhead.slot():
        assert bulkhead.in_flight == 1


def test_bulkhead_through_the_endpoint(upstream: responses.RequestsMock) -> None:
    app = make_app({"APPINBOX_MAX_CONCURRENT": 2})
    entered = threading.Semaphore(0)
    release = threading.Event()

    def slow(request: Any) -> tuple[int, dict[str, str], str]:
        entered.release()
        release.wait(10)
        return 200, {}, '{"token": "slow"}'

    upstream.add_callback(responses.POST, TOKEN_URL, callback=slow)
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(
        app.test_client(user=USERS["1"]).post("/appinbox/token"))) for _ in range(2)]
    for t in threads:
        t.start()
    assert entered.acquire(timeout=5) and entered.acquire(timeout=5)
    busy = app.test_client(user=USERS["1"]).post("/appinbox/token")
    assert (busy.status_code, busy.json) == (503, {"error": "upstream_busy"})
    assert busy.headers["Retry-After"] == "1"
    release.set()
    for t in threads:
        t.join()
    assert [r.json for r in results] == [{"token": "slow"}] * 2
    assert len(upstream.calls) == 2


def test_single_flight_shares_one_call() -> None:
    flights = SingleFlight()
    flights._lock = lock = CountingLock()  # type: ignore[assignment]
    calls = []

    def fetch() -> str:
        calls.append(1)
        lock.wait_for(8)  # all 8 callers are in: the other 7 found this flight
        return "shared"

    results: list[str] = []
    crowd(8, lambda: results.append(flights.do("k", fetch, wait=5)))
    assert results == ["shared"] * 8 and len(calls) == 1


def test_single_flight_shares_the_failure() -> None:
    flights = SingleFlight()
    flights._lock = lock = CountingLock()  # type: ignore[assignment]
    calls = []

    def fetch() -> str:
        calls.append(1)
        lock.wait_for(4)
        raise UpstreamBusy("busy", retry_after=1)

    errors: list[BaseException] = []
    crowd(4, lambda: _capture(lambda: flights.do("k", fetch, wait=5), errors))
    assert len(calls) == 1
    assert len(errors) == 4 and all(isinstance(e, UpstreamBusy) for e in errors)
    assert len({id(e) for e in errors}) == 4  # each thread raised its own object (and traceback)
    assert {(str(e), e.retry_after) for e in errors} == {("busy", 1)}


def test_concurrent_first_calls_for_one_contact_cost_one_upstream_call(upstream: responses.RequestsMock) -> None:
    app = make_app({"APPINBOX_TOKEN_CACHE_TTL": 60})
    flights = app.extensions["appinbox"].flights
    flights._lock = lock = CountingLock()

    def slow(request: Any) -> tuple[int, dict[str, str], str]:
        lock.wait_for(6)  # every request has reached the single flight
        return 200, {}, '{"token": "one"}'

    upstream.add_callback(responses.POST, TOKEN_URL, callback=slow)
    results: list[Any] = []
    crowd(6, lambda: results.append(app.test_client(user=USERS["1"]).post("/appinbox/token").json))
    assert results == [{"token": "one"}] * 6
    assert len(upstream.calls) == 1


def test_a_listener_may_look_at_the_breaker_or_fail() -> None:
    seen: list[str] = []
    breaker = CircuitBreaker(1, 5)

    def listener(old: str, new: str) -> None:
        seen.append(breaker.state)  # would deadlock if called under the breaker's lock
        raise RuntimeError("listener bug")

    breaker.on_change = listener
    breaker.failure(timeout=True)
    assert seen == ["open"] and breaker.state == "open"


def test_failing_signal_receivers_change_no_answer(upstream: responses.RequestsMock,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    from flask_appinbox import signals

    app = make_app({"APPINBOX_BREAKER_THRESHOLD": 1, "APPINBOX_RETRIES": 0})

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug with " + USERS["1"].email)  # the value only at run time

    for signal in (signals.token_issued, signals.token_failed, signals.breaker_opened):
        signal.connect(broken, app)
    try:
        client = app.test_client(user=USERS["1"])
        upstream.post(TOKEN_URL, json={"token": "t"})
        clock = Clock()
        app.extensions["appinbox"].breaker.clock = clock
        assert client.post("/appinbox/token").json == {"token": "t"}
        clock.now += 10  # no success for longer than a timeout
        upstream.replace(responses.POST, TOKEN_URL, body=requests.exceptions.ReadTimeout("hang"))
        assert client.post("/appinbox/token").json == {"error": "upstream_timeout"}
        assert client.post("/appinbox/token").json == {"error": "upstream_unavailable"}
    finally:
        for signal in (signals.token_issued, signals.token_failed, signals.breaker_opened):
            signal.disconnect(broken, app)
    assert "receiver of appinbox.token-issued failed" in caplog.text
    assert "alice@example.com" not in caplog.text


def test_a_trial_that_ends_in_an_unexpected_error_frees_the_breaker(upstream: responses.RequestsMock) -> None:
    app = make_app({"APPINBOX_BREAKER_THRESHOLD": 1, "APPINBOX_RETRIES": 0, "APPINBOX_BREAKER_COOLDOWN": 5})
    clock = Clock()
    app.extensions["appinbox"].breaker.clock = clock
    client = app.test_client(user=USERS["1"])
    upstream.post(TOKEN_URL, body=requests.exceptions.ReadTimeout("hang"))
    assert client.post("/appinbox/token").json == {"error": "upstream_timeout"}  # opens the breaker
    assert app.extensions["appinbox"].breaker.state == "open"
    clock.now += 5
    upstream.replace(responses.POST, TOKEN_URL, body=RuntimeError("adapter bug"))
    assert client.post("/appinbox/token").json == {"error": "internal_error"}  # the trial call
    upstream.replace(responses.POST, TOKEN_URL, json={"token": "back"})
    results: list[Any] = []
    t = threading.Thread(target=lambda: results.append(app.test_client(user=USERS["1"]).post("/appinbox/token")))
    t.start()
    t.join()
    assert results[0].json == {"token": "back"}  # another thread may try: the trial was given back


def test_tenant_clients_are_evicted_least_recently_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from flask_appinbox import extension

    monkeypatch.setattr(extension, "_MAX_TENANT_CLIENTS", 3)
    state = make_app().extensions["appinbox"]
    state._clients.clear()
    first = state.client_for("key-a")
    state.client_for("key-b")
    state.client_for("key-c")
    assert state.client_for("key-a") is first  # used again: now the most recent
    state.client_for("key-d")  # full: the least recently used (b) goes
    assert list(state._clients) == ["key-c", "key-a", "key-d"]
    assert state.client_for("key-a") is first


def test_a_full_token_cache_drops_its_oldest_in_place() -> None:
    from flask_appinbox.cache import TokenCache

    clock = Clock()
    cache = TokenCache(60, max_entries=100, clock=clock)
    for i in range(100):
        cache.set(i, f"t{i}")
        clock.now += 0.01
    items = cache._items
    cache.set("new", "t")
    assert cache._items is items  # no copy of 10,000 entries on every set when full
    assert cache.get(0) is None and cache.get(1) == "t1" and cache.get("new") == "t" and len(items) == 100


def test_timeouts_in_a_row_open_only_when_nothing_succeeded_for_a_timeout() -> None:
    """A saturated but working worker: its threads' slow attempts time out together, just after a success."""
    clock = Clock()
    breaker = CircuitBreaker(4, 1, quiet=1.0, clock=clock)
    breaker.success()
    clock.now += 0.5
    for _ in range(8):
        breaker.failure(timeout=True)
    assert breaker.state == "closed"  # eSputnik answered half a second ago: not a hang
    clock.now += 0.5
    breaker.failure(timeout=True)  # a whole timeout without a success, and still timing out
    assert breaker.state == "open" and breaker.reason == "9 attempts in a row timed out"
