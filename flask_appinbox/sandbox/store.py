"""The sandbox's memory: known contacts, issued tokens and inboxes. Per app, in process."""
from __future__ import annotations

import itertools
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ..contact import Contact

_FIELDS = ("email", "phone", "externalCustomerId")

#: Longest title, text and link the sandbox keeps (longer values are cut).
MAX_TITLE, MAX_TEXT, MAX_LINK = 200, 2000, 2000
#: Most messages one inbox keeps; the oldest go first.
MAX_MESSAGES = 200
#: Most unused tokens held, per contact and in all; the oldest are dropped (their page renews).
MAX_TOKENS_PER_CONTACT, MAX_TOKENS = 10, 1000


def identifiers(payload: Mapping[str, Any]) -> list[str]:
    """The contact's identifiers, each its field and normalised value (``"phone:380501234567"``), in the
    order email, phone, external id. Keyed by field, so that a phone and an external id with the same
    digits are two contacts, not one."""
    contact = Contact.from_value({k: payload.get(k) for k in _FIELDS if payload.get(k) is not None})
    return [f"{field}:{value}" for field, value in contact.as_payload().items()] if contact else []


def keys_of(value: str) -> list[str]:
    """Every identifier a bare email, phone or external id can be (an identifier stands for itself)."""
    if value.partition(":")[0] in _FIELDS and identifiers({value.partition(":")[0]: value.partition(":")[2]}):
        return [value]
    found = []
    for field in _FIELDS:
        try:
            found += identifiers({field: value})
        except (TypeError, ValueError):
            continue
    return found


@dataclass
class Message:
    """One App Inbox message."""

    id: int
    date: datetime
    title: str
    text: str
    link: str | None = None
    read: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "date": self.date.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "title": self.title,
            "text": self.text,
            "link": self.link,
            "status": "READ" if self.read else "UNREAD",
        }


# (age, title, text, link, read); "{page}" is the sandbox page's path.
_SEEDS = (
    (timedelta(days=1), "Welcome to App Inbox",
     "This bell is Flask-AppInbox's sandbox, a local stand-in for eSputnik: nothing here left your machine.",
     None, True),
    (timedelta(hours=1), "Your token was renewed",
     "A sandbox token is good for one message call, and the sandbox says so in its answer: before the "
     "next call the script asks your site for a new token with {\"renew\": true}.", None, False),
    (timedelta(minutes=2), "Send yourself a message",
     "Add a message on the sandbox page and watch the unread count change.", "{page}", False),
)


class SandboxStore:
    """Which contacts the sandbox knows, which tokens it has issued, and every contact's inbox.

    ``known`` is ``None`` (every contact is known) or a list of emails, phones
    and external ids; contacts created through the API are known too. A token
    is good for one message call. A contact's inbox is keyed by its first
    identifier (email, else phone, else external id) and gets a few demo
    messages the first time it is looked at.
    """

    def __init__(self, known: Iterable[str] | None, page: str = "/appinbox/sandbox/") -> None:
        #: The token API's credential: random per process, known only to the in-process client, so
        #: that nobody else can mint a token for a contact and read that inbox.
        self.api_key = secrets.token_urlsafe(32)
        self.lock = threading.RLock()
        self.known = None if known is None else {key for v in known for key in keys_of(v)}
        self.created: set[str] = set()
        self.tokens: OrderedDict[str, str] = OrderedDict()  # oldest first, bounded
        self.token_requests = 0
        self.page = page
        self.inboxes: dict[str, list[Message]] = {}
        self._ids = itertools.count(1)

    # -- contacts and tokens ----------------------------------------------------

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
            for old in [t for t, k in self.tokens.items() if k == ids[0]][:-MAX_TOKENS_PER_CONTACT]:
                del self.tokens[old]
            while len(self.tokens) > MAX_TOKENS:
                self.tokens.popitem(last=False)
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

    def key_for(self, value: str) -> str:
        """The inbox key of an identifier, or of a bare email, phone or external id (its first
        reading: an email, else a phone, else an external id); ``""`` when it is none of them.
        A contact's other identifiers never lead to its inbox: its first one is its key."""
        return next(iter(keys_of(value)), "")

    # -- inboxes ------------------------------------------------------------------

    def inbox(self, key: str) -> list[Message]:
        """The contact's messages, newest first; seeded on first use. Hold the lock while using it."""
        key = self.key_for(key) or key
        with self.lock:
            messages = self.inboxes.get(key)
            if messages is None:
                now = datetime.now(timezone.utc).replace(microsecond=0)
                messages = self.inboxes[key] = [
                    Message(next(self._ids), now - age, title, text,
                            link.format(page=self.page) if link else None, read)
                    for age, title, text, link, read in _SEEDS
                ]
                messages.reverse()
            return messages

    def page_of(self, key: str, page: int, size: int) -> tuple[list[dict[str, Any]], int]:
        """One page of the contact's messages (as JSON) and how many there are in all."""
        with self.lock:
            messages = self.inbox(key)
            return [m.as_json() for m in messages[page * size:(page + 1) * size]], len(messages)

    def unread(self, key: str) -> int:
        with self.lock:
            return sum(not m.read for m in self.inbox(key))

    def mark(self, key: str, ids: Iterable[int], read: bool = True) -> int:
        """Set the status of the contact's messages with these ids; returns how many changed."""
        wanted = set(ids)
        changed = 0
        with self.lock:
            for message in self.inbox(key):
                if message.id in wanted and message.read != read:
                    message.read = read
                    changed += 1
        return changed

    def add_message(self, to: str, title: str, text: str = "", link: str | None = None) -> Message:
        """Put a new unread message in the inbox of ``to`` (an email, phone or external id)."""
        title, text = title.strip()[:MAX_TITLE], text.strip()[:MAX_TEXT]
        if not title:
            raise ValueError("a message needs a title")
        link = (link or "").strip()[:MAX_LINK] or None
        if link is not None and not (link.startswith(("https://", "http://")) or
                                     (link.startswith("/") and not link.startswith("//"))):
            raise ValueError("a link must be an http(s) URL or a path starting with '/'")
        key = self.key_for(to)
        if not key:
            raise ValueError("a message needs a recipient")
        with self.lock:
            messages = self.inbox(key)
            message = Message(next(self._ids), datetime.now(timezone.utc).replace(microsecond=0),
                              title, text, link)
            messages.insert(0, message)
            del messages[MAX_MESSAGES:]
            return message

    def summary(self) -> list[tuple[str, int, int]]:
        """Every inbox looked at so far: (key, unread, total)."""
        with self.lock:
            return [(key, sum(not m.read for m in ms), len(ms)) for key, ms in sorted(self.inboxes.items())]
