"""The sandbox's memory: known contacts and issued tokens. Per app, in process."""
from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ..contact import Contact

_FIELDS = ("email", "phone", "externalCustomerId")


def identifiers(payload: Mapping[str, Any]) -> list[str]:
    """The normalised identifiers of a contact payload (email, phone, external id), in that order."""
    contact = Contact.from_value({k: payload.get(k) for k in _FIELDS if payload.get(k) is not None})
    return list(contact.as_payload().values()) if contact else []


def _normalise(value: str) -> str:
    for field in _FIELDS:
        try:
            found = identifiers({field: value})
        except (TypeError, ValueError):
            continue
        if found:
            return found[0]
    return value.strip()


class SandboxStore:
    """Which contacts the sandbox knows, and which tokens it has issued.

    ``known`` is ``None`` (every contact is known) or a list of emails, phones
    and external ids; contacts created through the API are known too. A token
    is good for one message call.
    """

    def __init__(self, known: Iterable[str] | None) -> None:
        self.lock = threading.RLock()
        self.known = None if known is None else {_normalise(v) for v in known}
        self.created: set[str] = set()
        self.tokens: dict[str, str] = {}
        self.token_requests = 0

    def knows(self, ids: list[str]) -> bool:
        if not ids:
            return False
        if self.known is None:
            return True
        with self.lock:
            return any(i in self.known or i in self.created for i in ids)

    def create(self, ids: list[str]) -> None:
        with self.lock:
            self.created.update(ids)

    def issue(self, ids: list[str]) -> str:
        """A new token for the contact (keyed by its first identifier), or ``""`` when unknown."""
        with self.lock:
            self.token_requests += 1
            if not self.knows(ids):
                return ""
            token = "sbx_" + secrets.token_urlsafe(24)
            self.tokens[token] = ids[0]
            return token

    def redeem(self, token: str) -> str | None:
        """The contact key the token was issued for; the token is spent."""
        with self.lock:
            return self.tokens.pop(token, None)

    def forget_contact(self, key: str) -> None:
        """Spend every token of a contact."""
        with self.lock:
            for token in [t for t, k in self.tokens.items() if k == key]:
                del self.tokens[token]
