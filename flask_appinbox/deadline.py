"""A hard deadline for one HTTP attempt, whatever the server trickles.

``requests`` bounds each socket operation, not a whole answer: a server that
sends one byte just within every read timeout can hold a call for ever. The
adapter here gives its connections a socket whose every read and write may
wait only until the attempt's deadline (set with :func:`limit_until`). There is no
background thread and no signal, so it works the same under threads, gevent
and eventlet (patched before or after import, with or without ``fork``), and
through an HTTP(S) proxy, whose connections are made by the same classes.

Not covered: the name lookup (``getaddrinfo`` blocks without a timeout; gevent's
resolver does the same) and a SOCKS proxy (its connections are urllib3's own).
"""
from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3 import ProxyManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["DeadlineAdapter", "limit_until"]

# A context variable, not a thread-local: each greenlet has a context of its own,
# even when this module was imported before gevent patched ``threading``.
_deadline: ContextVar[float | None] = ContextVar("appinbox_deadline", default=None)


@contextmanager
def limit_until(at: float) -> Iterator[None]:
    """Socket operations of :class:`DeadlineAdapter` connections end by ``at`` (a :func:`time.monotonic` value)."""
    token = _deadline.set(at)
    try:
        yield
    finally:
        _deadline.reset(token)


class _LimitedSocket:
    """A connected socket (plain, TLS, or gevent's and eventlet's) whose reads and writes end by the deadline."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._timeout: float | None = sock.gettimeout()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def settimeout(self, value: float | None) -> None:
        self._timeout = value
        self._sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self._timeout

    def _limit(self) -> None:
        at = _deadline.get()
        timeout = self._timeout
        if at is not None:
            left = at - time.monotonic()
            if left <= 0:
                raise TimeoutError("the attempt's deadline has passed")
            timeout = left if timeout is None else min(timeout, left)
        self._sock.settimeout(timeout)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._limit()
        return self._sock.recv_into(buffer, nbytes, flags)  # type: ignore[no-any-return]

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._limit()
        return self._sock.recv(bufsize, flags)  # type: ignore[no-any-return]

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._limit()
        self._sock.sendall(data, flags)

    def send(self, data: Any, flags: int = 0) -> int:
        self._limit()
        return self._sock.send(data, flags)  # type: ignore[no-any-return]

    def makefile(self, mode: str = "r", buffering: int | None = None, **kwargs: Any) -> Any:
        if mode != "rb":
            return self._sock.makefile(mode, buffering, **kwargs)
        # What http.client reads an answer through: its reads come back to recv_into above.
        return io.BufferedReader(socket.SocketIO(self, "rb"),  # type: ignore[arg-type]
                                 buffering if buffering and buffering > 0 else io.DEFAULT_BUFFER_SIZE)

    def _decref_socketios(self) -> None:
        """Called by ``SocketIO.close``; the reader above took no reference on the real socket."""


class _HTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = _LimitedSocket(self.sock)


class _HTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()  # the tunnel and the TLS handshake first: they need the real socket
        self.sock = _LimitedSocket(self.sock)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections, direct or through an HTTP(S) proxy, keep to :func:`limit_until`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if type(manager) is ProxyManager:  # a SOCKS manager keeps its own connections
            manager.pool_classes_by_scheme = _POOLS
        return manager
