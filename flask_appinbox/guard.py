"""Outage isolation: a bulkhead and a circuit breaker around calls to eSputnik.

Both are per process and safe under threads. Neither imports Flask.
"""
from __future__ import annotations

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
    """Stops calling eSputnik after ``threshold`` consecutive failed attempts.

    States: ``closed`` (calls go through), ``open`` (calls fail at once with
    :class:`UpstreamUnavailable` until ``cooldown`` seconds have passed), and
    ``half_open`` (one trial call goes through; its success closes the breaker,
    its failure opens it again). ``threshold = 0`` turns the breaker off.
    ``on_change(old, new)`` is called on every change of state.
    """

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

    def __init__(
        self,
        threshold: int,
        cooldown: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self.on_change = on_change
        self._lock = threading.Lock()
        self._state = self.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial: int | None = None  # thread ident of the half-open trial call
        self._changes: list[tuple[str, str]] = []

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == self.OPEN and self.clock() - self._opened_at >= self.cooldown:
                return self.HALF_OPEN
            return self._state

    def _set(self, new: str) -> None:
        """Change state; call with the lock held. ``on_change`` runs later, in :meth:`_notify`."""
        old, self._state = self._state, new
        if old != new:
            if new == self.OPEN:
                log.warning("eSputnik circuit breaker opened after %d consecutive failures; "
                            "calls fail fast for %.0f s", self._failures, self.cooldown)
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

    def success(self) -> None:
        if not self.threshold:
            return
        with self._lock:
            self._failures = 0
            self._trial = None
            self._set(self.CLOSED)
        self._notify()

    def failure(self) -> None:
        if not self.threshold:
            return
        with self._lock:
            self._failures += 1
            if self._state == self.HALF_OPEN or self._failures >= self.threshold:
                self._trial = None
                self._opened_at = self.clock()
                self._set(self.OPEN)
        self._notify()

    def release(self) -> None:
        """End a half-open trial that neither succeeded nor failed (for example a 400)."""
        with self._lock:
            if self._trial == threading.get_ident():
                self._trial = None
