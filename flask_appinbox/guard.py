"""The outage guard: refuse locally only what would cost the site.

Its rule, per process, for the calls of one :class:`~flask_appinbox.EsputnikClient`:

- **A first attempt is never refused for fast failures.** A 5xx or a refused connection
  costs the site milliseconds; refusing it turns a partly working eSputnik into a
  site-made outage (a breaker opening at 50 % failures served 13 % where eSputnik served 88 %).
- **Retries are budgeted**, as in Finagle's ``RetryBudget`` and gRPC's retry
  throttling: retries are what multiply eSputnik's load, so a call may retry
  only while at least 25 % of the attempts of the last 2 s succeeded (or fewer
  than 3 were made). A flaky eSputnik keeps its retries; one that is down gets
  about one attempt per call. Unlike client-side adaptive throttling (Google's
  SRE book), first attempts never stop, so there is no failure rate at which
  the guard refuses everything.
- **A hang is refused.** Attempts that hang hold a worker's thread for a whole
  timeout. When 8 calls in a row timed out on every attempt and that run spans
  at least one attempt timeout (nothing but timeouts came back for that long),
  calls are refused with :class:`UpstreamUnavailable` and one probe a second goes
  through, without retries; its success ends the hang. Timeouts that arrive together
  (every thread or green thread of a worker stuck on one slow stretch) span no timeout,
  so the rule does not depend on the worker's concurrency: it needs a second wave.

State: a few counters behind one lock; nothing per thread, no half-open bookkeeping.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from .errors import UpstreamUnavailable

__all__ = ["Guard"]

log = logging.getLogger("flask_appinbox")

WINDOW = 2.0  # seconds of attempts the retry budget looks at
MIN_SUCCESS = 0.25  # retries while at least this share of those attempts succeeded
MIN_ATTEMPTS = 3  # ... or while fewer attempts than this were made (no data yet)
HANG_CALLS = 8  # calls in a row that timed out on every attempt ...
PROBE_EVERY = 1.0  # ... then one probe a second


class Guard:
    """The rule above; ``on_change(hung)`` is called when a hang begins and ends."""

    def __init__(self, timeout: float, *, on_change: Callable[[bool], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.on_change = on_change
        self.clock = clock
        self._lock = threading.Lock()
        self._recent: deque[tuple[float, int, int]] = deque()  # (when, attempts, successes), one per call
        self._attempts = self._successes = 0  # sums over _recent
        self._timeouts = 0  # calls in a row that timed out
        self._run_began = self._probed = 0.0
        self.hung = False

    def admit(self) -> bool:
        """Whether the next call may retry; raises :class:`UpstreamUnavailable` during a hang but for a probe."""
        now = self.clock()
        with self._lock:
            if self.hung:
                if now - self._probed < PROBE_EVERY:
                    raise UpstreamUnavailable("eSputnik hangs: calls are refused, one probe a second", retry_after=1)
                self._probed = now
                return False
            while self._recent and self._recent[0][0] < now - WINDOW:
                _, attempts, successes = self._recent.popleft()
                self._attempts -= attempts
                self._successes -= successes
            return self._attempts < MIN_ATTEMPTS or self._successes >= MIN_SUCCESS * self._attempts

    def record(self, attempts: int, ok: bool, timed_out: bool = False) -> None:
        """One call's outcome: its attempts, whether it got an answer, whether every attempt timed out."""
        now = self.clock()
        with self._lock:
            self._recent.append((now, attempts, int(ok)))
            self._attempts += attempts
            self._successes += ok
            was = self.hung
            if not timed_out:
                self._timeouts = 0
                self.hung = False
            else:
                if self._timeouts == 0:
                    self._run_began = now
                self._timeouts += 1
                self.hung = self._timeouts >= HANG_CALLS and now - self._run_began >= self.timeout
                if self.hung and not was:
                    self._probed = now
            hung = self.hung
        if hung != was:
            log.warning("eSputnik %s", "hangs (8 calls in a row timed out): token calls are refused, one probe a "
                        "second" if hung else "answers again: token calls go through")
            if self.on_change is not None:
                self.on_change(hung)
