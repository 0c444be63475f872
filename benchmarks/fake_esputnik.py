"""A local fake of eSputnik's contact-token API, for the benchmarks.

``POST /api/v1/auth/contact/token`` (HTTP Basic auth) answers ``{"token": "..."}``.
What else happens is set per run, and can change while it runs:

- ``mode``: ``"healthy"``, or ``"hang"``: accept, read the request and never
  answer (until the mode changes, the peer hangs up, or the fake stops), or
  ``"trickle"``: answer 200 with a long body and send it a byte every
  ``trickle_every`` seconds (so that no read ever times out) until the same, or
  ``"trickle_head"``: the same with the status line and headers (a header that
  never ends), or ``"continue"``: a ``100 Continue`` every ``trickle_every``
  seconds, or ``"stall"``: like ``"hang"``, but when the mode changes the
  request gets its answer (a stall eSputnik recovers from, not a dropped call);
- ``slow_next``: the next N token requests are ``slow`` (below), whatever the rates;
- ``latency``: seconds added to every answer;
- ``rates``: the share of requests that get a fault instead of a token:
  ``delay`` (an extra ``uniform(0, delay_max)`` seconds, then a token),
  ``reset`` (a TCP reset before or in the middle of the answer), ``5xx``,
  ``429`` (with a ``Retry-After`` drawn from ``retry_after``),
  ``garbage`` (a 200 whose body is not the expected JSON) and ``slow`` (a token,
  but only after ``slow_for`` seconds: 1.5 by default, longer than a 1 s timeout);
- ``seed``: the faults are drawn from one seeded generator.

It counts accepted TCP connections, requests, outcomes and token calls per contact.

As a module::

    fake = FakeEsputnik(mode="healthy").start()   # serves in a thread
    fake.api_url                                   # http://127.0.0.1:PORT/api
    fake.configure(mode="hang"); fake.stats(); fake.reset(); fake.stop()

As a command (what the benchmarks run, so that it has its own interpreter)::

    python benchmarks/fake_esputnik.py --port 0 --control-port 0 --config '{"rates": {"5xx": 0.1}}'

It prints one JSON line with ``api`` and ``control`` URLs, then serves until
SIGINT/SIGTERM. The control port takes ``GET /stats``, ``POST /config`` (JSON,
merged into the configuration) and ``POST /reset`` (counters to zero); it is a
port of its own so that control calls never show in the counts.
"""
from __future__ import annotations

import argparse
import base64
import json
import random
import select
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN_PATH = "/api/v1/auth/contact/token"  # noqa: S105 - a path
FAULTS = ("delay", "reset", "5xx", "429", "garbage", "slow")  # new ones at the end: same draws for a seed
DEFAULTS: dict[str, Any] = {
    "mode": "healthy",
    "latency": 0.0,
    "rates": {},
    "delay_max": 1.5,
    "retry_after": ["0", "1", "3"],
    "seed": 1,
    "trickle_every": 0.1,
    "slow_for": 1.5,
    "slow_next": 0,
}
HOLDING = ("hang", "trickle", "trickle_head", "continue")  # modes that hold a request until the mode changes
MODES = ("healthy", "stall", *HOLDING)
_LINGER_RST = struct.pack("ii", 1, 0)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], handler: type, fake: FakeEsputnik | None) -> None:
        super().__init__(address, handler)
        self.fake = fake

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.fake is not None:
            self.fake._count_connection()
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return  # peers hang up and resets are part of the job
        super().handle_error(request, client_address)


class _ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    # Headers and body leave in one write: two small writes on a kept-alive
    # connection meet Nagle and delayed ACKs (40 ms a call on Linux).
    wbufsize = 64 * 1024
    server_version = "FakeEsputnik/1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)  # buffered: sent with the headers in one write when the request ends

    def do_POST(self) -> None:
        fake = self.server.fake
        assert fake is not None
        body = self._body()
        fake._count("requests")
        if self.path != TOKEN_PATH:
            self._send(404, b'{"error":"not found"}')
            return
        if not (self.headers.get("Authorization") or "").startswith("Basic "):
            self._send(401, b'{"error":"unauthorized"}')
            return
        fake._count_contact(body)
        outcome, arg = fake._draw()
        fake._count(outcome)
        if outcome in HOLDING:
            self._hang(fake, outcome)
            return
        if outcome == "stall":
            while fake.config["mode"] == "stall" and not fake._stopping.is_set():
                time.sleep(0.01)
            outcome = "ok"
        if fake.config["latency"]:
            time.sleep(fake.config["latency"])
        if outcome in ("delay", "slow"):
            time.sleep(arg)
        elif outcome == "reset":
            self._reset(mid_answer=arg)
            return
        elif outcome == "5xx":
            self._send(arg, b'{"error":"internal"}')
            return
        elif outcome == "429":
            self._send(429, b'{"error":"too many requests"}', {"Retry-After": arg})
            return
        elif outcome == "garbage":
            body, content_type = arg
            self._send(200, body, content_type=content_type)
            return
        self._send(200, b'{"token":"%s"}' % fake._token())

    def do_GET(self) -> None:
        self._body()
        self.server.fake._count("requests")  # type: ignore[union-attr]
        self._send(405, b'{"error":"method not allowed"}')

    def _reset(self, mid_answer: bool) -> None:
        if mid_answer:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 200\r\n\r\n{\"token\":\"tr")
            self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        self.close_connection = True
        self.connection.close()

    def _hang(self, fake: FakeEsputnik, mode: str) -> None:
        sock = self.connection
        self.close_connection = True
        with fake._lock:
            fake._hung += 1
        try:
            # What goes out every trickle_every seconds: a byte of the body or of a header that never
            # ends (after the status line and headers, a byte at a time), or a whole 100 Continue.
            drip = {"trickle": b"x", "trickle_head": b"x", "continue": b"HTTP/1.1 100 Continue\r\n\r\n"}.get(mode)
            if mode == "trickle":
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 100000\r\n\r\n{\"token\": \"")
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Drip: " if mode == "trickle_head" else b""
            for i in range(len(head)):
                if fake.config["mode"] != mode or fake._stopping.wait(fake.config["trickle_every"]):
                    return
                try:
                    sock.sendall(head[i:i + 1])
                except OSError:
                    return
            while fake.config["mode"] == mode and not fake._stopping.is_set():
                if drip is not None:
                    try:
                        sock.sendall(drip)
                    except OSError:
                        return  # the client gave up
                readable, _, _ = select.select([sock], [], [], fake.config["trickle_every"])
                if readable:
                    try:
                        if not sock.recv(1, socket.MSG_PEEK):
                            return  # the client gave up
                    except OSError:
                        return
                    time.sleep(0.2)
        finally:
            with fake._lock:
                fake._hung -= 1


class _ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, value: Any) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        fake = self.server.fake
        assert fake is not None
        if self.path == "/stats":
            self._json(200, fake.stats())
        elif self.path == "/config":
            self._json(200, fake.config)
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        fake = self.server.fake
        assert fake is not None
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            if self.path == "/config":
                self._json(200, fake.configure(**json.loads(raw or b"{}")))
            elif self.path == "/reset":
                self._json(200, fake.reset())
            else:
                self._json(404, {"error": "not found"})
        except (TypeError, ValueError) as exc:
            self._json(400, {"error": str(exc)})


class FakeEsputnik:
    """The fake; ``start()`` serves it from a daemon thread on 127.0.0.1."""

    def __init__(self, port: int = 0, control_port: int | None = None, *,
                 tls: tuple[str, str] | None = None, **config: Any) -> None:
        self.config: dict[str, Any] = json.loads(json.dumps(DEFAULTS))
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._random = random.Random()
        self._hung = 0
        self._counts: Counter[str] = Counter()
        self._contacts: Counter[str] = Counter()
        self._serial = 0
        self.configure(**config)
        self._server = _Server(("127.0.0.1", port), _ApiHandler, self)
        self.scheme = "http"
        if tls is not None:  # (certificate file, key file): serve the API over TLS
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._control = (_Server(("127.0.0.1", control_port), _ControlHandler, self)
                         if control_port is not None else None)
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def api_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/api"

    @property
    def control_url(self) -> str | None:
        return None if self._control is None else f"http://127.0.0.1:{self._control.server_address[1]}"

    def start(self) -> FakeEsputnik:
        for server in (self._server, self._control):
            if server is not None:
                thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                          name="fake-esputnik", daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()
        for server in (self._server, self._control):
            if server is not None:
                server.shutdown()
                server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FakeEsputnik:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into the configuration; returns the new one."""
        unknown = set(changes) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        if changes.get("mode", "healthy") not in MODES:
            raise ValueError(f"mode is one of {MODES}")
        rates = changes.get("rates", {})
        if set(rates) - set(FAULTS) or sum(rates.values()) > 1 or min(rates.values(), default=0) < 0:
            raise ValueError(f"rates are shares of {FAULTS} adding up to at most 1")
        with self._lock:
            self.config = {**self.config, **changes}
            if "seed" in changes:
                self._random.seed(changes["seed"])
        return self.config

    def reset(self) -> dict[str, Any]:
        """Counters to zero; returns the counts from before."""
        with self._lock:
            before = self._snapshot()
            self._counts.clear()
            self._contacts.clear()
        return before

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> dict[str, Any]:
        return {
            "connections": self._counts["connections"],
            "requests": self._counts["requests"],
            "outcomes": {k: v for k, v in self._counts.items() if k not in ("connections", "requests")},
            "contacts": dict(self._contacts),
            "hung_now": self._hung,
        }

    # -- used by the handler ------------------------------------------------------

    def _count_connection(self) -> None:
        with self._lock:
            self._counts["connections"] += 1

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def _count_contact(self, body: bytes) -> None:
        try:
            payload = json.loads(body)
            key = str(payload.get("externalCustomerId") or payload.get("email") or payload.get("phone"))
        except (ValueError, AttributeError):
            key = "?"
        with self._lock:
            if len(self._contacts) < 10_000 or key in self._contacts:
                self._contacts[key] += 1

    def _draw(self) -> tuple[str, Any]:
        """This request's outcome: ``ok``, ``hang`` or a fault, with its detail."""
        config = self.config
        if config["mode"] != "healthy":
            return config["mode"], None
        if config["slow_next"] > 0:
            with self._lock:
                self.config = {**self.config, "slow_next": self.config["slow_next"] - 1}
            return "slow", config["slow_for"]
        rates = config["rates"]
        if not rates:
            return "ok", None
        with self._lock:
            r = self._random.random()
            pick = self._random.random()
            for fault in FAULTS:
                share = rates.get(fault, 0)
                if r < share:
                    break
                r -= share
            else:
                return "ok", None
        if fault == "delay":
            return fault, pick * config["delay_max"]
        if fault == "slow":
            return fault, config["slow_for"]
        if fault == "reset":
            return fault, pick < 0.5
        if fault == "5xx":
            return fault, (500, 502, 503, 504)[int(pick * 4)]
        if fault == "429":
            values = config["retry_after"]
            return fault, values[int(pick * len(values))]
        garbage = [
            (b"<html><body>Bad Gateway</body></html>", "text/html"),
            (b'{"token": ', "application/json"),
            (b'{"tok": "x"}', "application/json"),
            (b'{"token": 12345}', "application/json"),
            (b"[" + b" " * 70_000 + b"]", "application/json"),  # more than the client's 64 KiB
        ]
        return fault, garbage[int(pick * len(garbage))]

    def _token(self) -> bytes:
        with self._lock:
            self._serial += 1
            serial = self._serial
        return b"esk." + base64.urlsafe_b64encode(serial.to_bytes(8, "big") * 12).rstrip(b"=")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="API port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--control-port", type=int, default=0, help="control port (0: any free one)")
    parser.add_argument("--mode", choices=MODES, default="healthy")
    parser.add_argument("--config", default="{}", help="JSON merged into the configuration")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve the API over TLS")
    args = parser.parse_args(argv)
    config = {"mode": args.mode, **json.loads(args.config)}
    fake = FakeEsputnik(args.port, args.control_port, tls=args.tls, **config)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    fake.start()
    print(json.dumps({"api": fake.api_url, "control": fake.control_url}), flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
