"""Blinker signals. The sender is always the Flask app; no signal carries the API key or a token.

As Flask-Login's, they are sent plainly: a receiver's exception is the site's bug and
reaches its test or debugger like a view's.
"""
from __future__ import annotations

from blinker import Namespace

__all__ = ["token_issued", "token_failed", "contact_created", "guard_opened", "guard_closed"]

_signals = Namespace()

#: A token went to the browser: ``user``, ``contact``, ``renew`` (the browser asked for a
#: new token), ``cached`` (served from the token cache).
token_issued = _signals.signal("appinbox.token-issued")

#: No token: ``user``, ``contact`` (``None`` when the user has none), ``error`` (the answer's
#: error code, such as ``"upstream_timeout"``) and ``exception``.
token_failed = _signals.signal("appinbox.token-failed")

#: ``APPINBOX_CREATE_CONTACTS`` created ``contact`` in eSputnik.
contact_created = _signals.signal("appinbox.contact-created")

#: The guard saw eSputnik hang and refuses calls (one probe a second).
guard_opened = _signals.signal("appinbox.guard-opened")

#: A call got through again after a hang.
guard_closed = _signals.signal("appinbox.guard-closed")
