"""The outage guard (private): refuse locally only what would cost the site.

Its rule, per process, for the calls of one app:

- **A first attempt is never refused for fast failures.** A 5xx or a refused connection
  costs the site milliseconds; refusing it turns a partly working eSputnik into a
  site-made outage (a breaker opening at 50 % failures served 13 % where eSputnik served 88 %).
- **Retries are budgeted**, as in Finagle's ``RetryBudget`` and gRPC's retry
  throttling: a call may retry only while at least 25 % of the attempts of the
  last 2 s succeeded (or fewer than 3 were made). A flaky eSputnik keeps its
  retries; one that is down gets about one attempt per call.
- **A hang is judged by time without an answer, not by a count that assumes
  concurrency.** A sync worker sees its calls one at a time, so the rule must fire on
  one call: a call that timed out, that began with no other call in flight, and after
  whose start nothing was answered for a whole read timeout. Calls that began while
  others were in flight (a flaky eSputnik under load, where slow calls overlap) count
  only as 8 timeouts in a row with nothing answered for a timeout. A call still in
  flight past the longest a call can take (a status line trickled byte by byte, which
  no timeout of requests bounds), with nothing answered since it began, is a hang too:
  other threads see it before it ends.
- **During a hang, calls are refused** with :class:`UpstreamUnavailable`, but for one
  probe at a time, without retries. The next probe waits from when the previous one
  *ended*, at least as long as that probe held its thread (and at least 1 s), so a
  sync worker spends at most half its time probing. Any answer ends the hang.

No background thread: every decision is taken in the calling thread, so it holds in any
worker class. State: a few values behind one lock.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from .errors import UpstreamUnavailable

log = logging.getLogger("flask_appinbox")

WINDOW = 2.0  # seconds of attempts the retry budget looks at
MIN_SUCCESS = 0.25  # retries while at least this share of those attempts succeeded
MIN_ATTEMPTS = 3  # ... or while fewer attempts than this were made (no data yet)
HANG_CALLS = 8  # timeouts in a row that make a hang whatever the concurrency
PROBE_EVERY = 1.0  # the least time between the end of one probe and the start of the next

# A call's outcome, as the client reports it.
OK = "ok"  # eSputnik answered: a token, or a 4xx but 429 (its answer, not its trouble)
FAILED = "failed"  # a fast failure: 5xx, 429, refused, reset
TIMEOUT = "timeout"  # no answer within the timeout


class _Call:
    __slots__ = ("began", "alone", "probe")

    def __init__(self, began: float, alone: bool, probe: bool) -> None:
        self.began, self.alone, self.probe = began, alone, probe


class Guard:
    """The rule above. ``timeout`` is the read timeout, ``budget`` the longest a call can take;
    ``on_change(hung)`` is called (outside the lock) when a hang begins and ends."""

    def __init__(self, timeout: float, budget: float, *, on_change: Callable[[bool], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout, self.budget = timeout, budget
        self.on_change = on_change
        self.clock = clock
        self._lock = threading.Lock()
        self._recent: deque[tuple[float, int, int]] = deque()  # (when, attempts, successes), one per call
        self._attempts = self._successes = 0  # sums over _recent
        self._in_flight: dict[_Call, None] = {}  # oldest first
        self._timeouts = 0  # calls in a row that timed out
        self._answered = clock()  # when eSputnik last answered (or failed fast)
        self._probing = False
        self._next_probe = 0.0
        self.hung = False

    def admit(self) -> tuple[_Call, bool]:
        """A ticket for :meth:`done` and whether the call may retry; raises
        :class:`UpstreamUnavailable` during a hang but for a probe."""
        now = self.clock()
        with self._lock:
            began = self.hung
            oldest = next(iter(self._in_flight), None)
            if not self.hung and oldest is not None and now - oldest.began > self.budget \
                    and self._answered < oldest.began:
                self._hang(now)  # a call still in flight past its budget
            if self.hung:
                if self._probing or now < self._next_probe:
                    raise UpstreamUnavailable("eSputnik hangs: calls are refused, one probe at a time",
                                              retry_after=max(1, round(self._next_probe - now)))
                self._probing = True
                call, may_retry = _Call(now, False, True), False
            else:
                while self._recent and self._recent[0][0] < now - WINDOW:
                    _, attempts, successes = self._recent.popleft()
                    self._attempts -= attempts
                    self._successes -= successes
                may_retry = self._attempts < MIN_ATTEMPTS or self._successes >= MIN_SUCCESS * self._attempts
                call = _Call(now, not self._in_flight, False)
            self._in_flight[call] = None
            changed = self.hung != began
        if changed:
            self._changed(True)
        return call, may_retry

    def done(self, call: _Call, attempts: int, outcome: str | None) -> None:
        """The end of an admitted call: its attempts and :data:`OK`, :data:`FAILED` or :data:`TIMEOUT`;
        ``None`` when it ended in an error of ours, which says nothing of eSputnik."""
        now = self.clock()
        with self._lock:
            self._in_flight.pop(call, None)
            if call.probe:
                self._probing = False
                self._next_probe = now + max(PROBE_EVERY, now - call.began)
            was = self.hung
            if outcome is not None:
                self._recent.append((now, attempts, int(outcome == OK)))
                self._attempts += attempts
                self._successes += outcome == OK
                if outcome != TIMEOUT:
                    self._timeouts, self._answered, self.hung = 0, now, False
                else:
                    self._timeouts += 1
                    quiet = now - max(self._answered, call.began) >= self.timeout
                    if not self.hung and quiet and (call.alone or self._timeouts >= HANG_CALLS):
                        self._hang(now)
            changed = self.hung != was
        if changed:
            self._changed(self.hung)

    def _hang(self, now: float) -> None:
        self.hung = True
        self._next_probe = max(self._next_probe, now + PROBE_EVERY)

    def _changed(self, hung: bool) -> None:
        log.warning("eSputnik %s", "hangs (no answer for a whole timeout): token calls are refused, one probe at a "
                    "time" if hung else "answers again: token calls go through")
        if self.on_change is not None:
            self.on_change(hung)
