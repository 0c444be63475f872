"""Blinker signals. The sender is always the Flask app; no signal carries the API key.

- ``token_issued``: ``user``, ``contact``, ``renew`` (the browser asked for a new token), ``cached`` (served from
  the token cache).
- ``token_failed``: ``user``, ``contact`` (``None`` when the user has none), ``error`` (the answer's error code,
  such as ``"upstream_timeout"``) and ``exception`` (the exception, or ``None``).
- ``contact_created``: ``contact``, after ``APPINBOX_CREATE_CONTACTS`` created it in eSputnik.
- ``breaker_opened``: ``reason`` (such as ``"4 attempts in a row timed out"``), ``cooldown`` (seconds).
- ``breaker_closed``: no arguments.

Tokens themselves are never sent: a receiver that logs ``token_issued`` leaks nothing.
"""
from __future__ import annotations

from typing import Any

from blinker import NamedSignal, Namespace
from flask import current_app

from .errors import log_unexpected

__all__ = ["token_issued", "token_failed", "contact_created", "breaker_opened", "breaker_closed"]

_signals = Namespace()

token_issued = _signals.signal("appinbox.token-issued")
token_failed = _signals.signal("appinbox.token-failed")
contact_created = _signals.signal("appinbox.contact-created")
breaker_opened = _signals.signal("appinbox.breaker-opened")
breaker_closed = _signals.signal("appinbox.breaker-closed")


def send(signal: NamedSignal, **kwargs: Any) -> None:
    """Send ``signal`` from the current app; a failing receiver is logged and changes no answer."""
    try:
        signal.send(current_app._get_current_object(), **kwargs)  # type: ignore[attr-defined]
    except Exception as exc:
        log_unexpected(f"a receiver of {signal.name} failed", exc)
