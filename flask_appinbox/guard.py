"""Outage isolation: a bulkhead and a circuit breaker around calls to eSputnik.

Both are per process and safe under threads and green threads. Neither imports Flask.
"""
from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import UpstreamBusy, UpstreamUnavailable, log_unexpected

__all__ = ["Bulkhead", "CircuitBreaker"]

log = logging.getLogger("flask_appinbox")

class Bulkhead:
    """At most ``limit`` calls at once; a call beyond that fails at once with :class:`UpstreamBusy`."""

    def __init__(self, limit: int, *, retry_after: int = 1) -> None:
        if limit < 1:
            raise ValueError("a bulkhead needs a limit of at least 1")
        self.limit = limit
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self.in_flight = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._lock:
            if self.in_flight >= self.limit:
                raise UpstreamBusy(f"{self.limit} upstream calls already in flight", retry_after=self.retry_after)
            self.in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1


class CircuitBreaker:
    """Stops calling eSputnik while it is down or hanging, and finds out quickly when it is back.

    It opens on either of two signs (``threshold = 0`` turns it off):

    - ``threshold`` timed-out attempts in a row, nothing else between them, and no
      success for ``quiet`` seconds (the attempt timeout): a hang. Each timeout
      holds a worker for a whole ``APPINBOX_TIMEOUT``, so this rule has to act
      within about one timeout. A flaky but working eSputnik still answers
      something every second, even when slow attempts hold every thread of a
      worker at once and their timeouts arrive in a row;
    - at least ``failure_ratio`` of the attempts of the last ``window`` seconds
      failed (a timeout, a connection error or a 5xx), once there were
      ``min_attempts`` of them: an outage of fast failures. As in resilience4j
      and Polly, a ratio, so that ordinary trouble (30 % failures, retried) never
      opens it.

    Open, it fails calls at once with :class:`UpstreamUnavailable` for
    ``cooldown`` seconds, then lets one trial call through (``half_open``): its
    success closes the breaker and forgets the past, its failure opens it again.
    ``on_change(old, new)`` is called on every change of state.
    """

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

    def __init__(
        self,
        threshold: int,
        cooldown: float,
        *,
        quiet: float = 0.0,
        failure_ratio: float = 0.5,
        min_attempts: int = 20,
        window: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.quiet = quiet
        self.failure_ratio = failure_ratio
        self.min_attempts = min_attempts
        self._last_success = -math.inf
        self.clock = clock
        self.on_change = on_change
        self._lock = threading.Lock()
        self._state = self.CLOSED
        self._timeouts = 0  # timed-out attempts in a row
        self._slot = window / 10
        self._slots: collections.deque[list[int]] = collections.deque()  # [slot, attempts, failures]
        self._opened_at = 0.0
        self.reason = ""  # why it last opened
        self._trial: int | None = None  # thread (or greenlet) ident of the half-open trial call
        self._changes: list[tuple[str, str]] = []

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == self.OPEN and self.clock() - self._opened_at >= self.cooldown:
                return self.HALF_OPEN
            return self._state

    def _set(self, new: str, why: str = "") -> None:
        """Change state; call with the lock held. ``on_change`` runs later, in :meth:`_notify`."""
        old, self._state = self._state, new
        if old != new:
            if new == self.OPEN:
                log.warning("eSputnik circuit breaker opened (%s); calls fail fast for %.0f s", why, self.cooldown)
            elif new == self.CLOSED:
                log.warning("eSputnik circuit breaker closed: eSputnik answers again")
            self._changes.append((old, new))

    def _notify(self) -> None:
        """Tell ``on_change`` of the changes made, outside the lock (a receiver may look at the breaker)."""
        if not self._changes:
            return
        with self._lock:
            changes, self._changes = self._changes, []
        if self.on_change is not None:
            for old, new in changes:
                try:
                    self.on_change(old, new)
                except Exception as exc:
                    log_unexpected("a circuit breaker listener failed", exc)

    def before_call(self) -> None:
        """Raise :class:`UpstreamUnavailable` when no call may go to eSputnik now."""
        if not self.threshold:
            return
        with self._lock:
            if self._state == self.CLOSED:
                return
            me = threading.get_ident()
            if self._trial == me:
                return
            left = self.cooldown - (self.clock() - self._opened_at)
            if self._state == self.OPEN and left <= 0:
                self._set(self.HALF_OPEN)
            trial = self._state == self.HALF_OPEN and self._trial is None
            if trial:
                self._trial = me
            retry_after = max(1, math.ceil(left)) if left > 0 else 1
        self._notify()
        if not trial:
            raise UpstreamUnavailable("eSputnik circuit breaker is open", retry_after=retry_after)

    def _record(self, failed: bool) -> tuple[int, int]:
        """Count one attempt in the window; the window's attempts and failures. Call with the lock held."""
        slot = int(self.clock() / self._slot)
        slots = self._slots
        if not slots or slots[-1][0] != slot:
            slots.append([slot, 0, 0])
        slots[-1][1] += 1
        slots[-1][2] += failed
        while slots[0][0] <= slot - 10:
            slots.popleft()
        return sum(s[1] for s in slots), sum(s[2] for s in slots)

    def success(self) -> None:
        if not self.threshold:
            return
        with self._lock:
            self._timeouts = 0
            self._last_success = self.clock()
            if self._state == self.CLOSED:
                self._record(False)
            elif self._state == self.HALF_OPEN or self.clock() - self._opened_at >= self.cooldown:
                self._trial = None
                self._slots.clear()  # eSputnik is back: the outage's failures say nothing more
                self._set(self.CLOSED)
            # open: a call that began before it opened says nothing; the trial decides
        self._notify()

    def failure(self, timeout: bool = False) -> None:
        """A failed attempt: ``timeout`` when it timed out, else a connection error or a 5xx."""
        if not self.threshold:
            return
        with self._lock:
            self._timeouts = self._timeouts + 1 if timeout else 0
            attempts, failures = self._record(True)
            why = ""
            if self._state == self.HALF_OPEN:
                why = "the trial call failed"
            elif self._timeouts >= self.threshold and self.clock() - self._last_success >= self.quiet:
                why = f"{self._timeouts} attempts in a row timed out"
            elif attempts >= self.min_attempts and failures >= self.failure_ratio * attempts:
                why = f"{failures} of the last {attempts} attempts failed"
            if why and self._state != self.OPEN:
                self.reason = why
                self._trial = None
                self._opened_at = self.clock()
                self._set(self.OPEN, why)
        self._notify()

    def release(self, answered: bool = False) -> None:
        """End a half-open trial with no verdict. ``answered``: an attempt got an answer that is
        neither a success nor an outage (a 400, a 429, garbage), which ends a run of timeouts."""
        with self._lock:
            if answered:
                self._timeouts = 0
            if self._trial == threading.get_ident():
                self._trial = None
