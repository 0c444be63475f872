"""Reusing tokens: a per-process TTL cache and single-flight first calls."""
from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["TokenCache", "SingleFlight"]


class TokenCache:
    """Tokens by contact for ``ttl`` seconds, in this process; safe under threads.

    It has the ``get``/``set``/``delete`` of a cachelib cache, so that
    ``APPINBOX_TOKEN_CACHE`` can be any of those instead.
    """

    def __init__(self, ttl: float, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._lock = threading.Lock()
        # Oldest first: with one TTL for all, the first item is also the first to expire.
        self._items: OrderedDict[Hashable, tuple[float, str]] = OrderedDict()

    def get(self, key: Hashable) -> str | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, token = item
        if self.clock() >= expires:
            with self._lock:
                if self._items.get(key) is item:
                    del self._items[key]
            return None
        return token

    def set(self, key: Hashable, token: str, timeout: float | None = None) -> None:
        """Keep ``token`` for ``timeout`` seconds (default: the cache's ``ttl``)."""
        now = self.clock()
        ttl = self.ttl if timeout is None else timeout
        with self._lock:
            self._items.pop(key, None)
            while len(self._items) >= self.max_entries:  # full: drop the oldest
                self._items.popitem(last=False)
            self._items[key] = (now + ttl, token)

    def delete(self, key: Hashable) -> None:
        with self._lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class _Flight:
    __slots__ = ("done", "result", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: object = None
        self.error: BaseException | None = None


def _own_copy(exc: BaseException) -> BaseException:
    """A copy of ``exc`` to raise in another thread: a shared object would share one traceback."""
    try:
        return copy.copy(exc)
    except Exception:  # pragma: no cover - an exception that cannot be copied
        return exc


class SingleFlight:
    """Concurrent calls for one key share the first caller's call and its outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight] = {}

    def do(self, key: Hashable, fn: Callable[[], T], *, wait: float) -> T:
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
        assert flight is not None
        if not leader:
            if not flight.done.wait(wait):
                return fn()  # the leader is stuck beyond its budget: go alone
            if flight.error is not None:
                raise _own_copy(flight.error) from flight.error  # one exception object per raiser
            return flight.result  # type: ignore[return-value]
        try:
            result = fn()
            flight.result = result
            return result
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
