"""The contact a token is asked for, and how values are checked and masked."""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Contact", "InvalidContact", "mask_email", "mask_phone"]

_EMAIL_MAX = 254
_EXTERNAL_ID_MAX = 256
_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_API_FIELDS = {"email": "email", "phone": "phone", "externalCustomerId": "external_customer_id"}


class InvalidContact(ValueError):
    """A contact value is malformed; the message names the field, never the value."""


def _has_control(value: str) -> bool:
    if value.isprintable():  # no C* category at all: the common case, done in C
        return False
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in value)


def _text(field: str, value: Any) -> str | None:
    if value is None:
        return None
    if field != "email" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise TypeError(f"Contact.{field} must be a string or None, not {type(value).__name__}")
    value = value.strip()
    return value or None


def _email(value: str) -> str:
    value = value.lower()
    if len(value) > _EMAIL_MAX or _has_control(value) or not _EMAIL.fullmatch(value):
        raise InvalidContact("Contact.email is not an email address")
    return value


def _phone(value: str) -> str:
    digits = _PHONE_SEPARATORS.sub("", value)
    if digits.startswith("+"):
        digits = digits[1:]
    if not (digits.isascii() and digits.isdigit() and 5 <= len(digits) <= 15):
        raise InvalidContact("Contact.phone must hold 5 to 15 digits (separators and a leading + are dropped)")
    return digits


def _external_id(value: str) -> str:
    if len(value) > _EXTERNAL_ID_MAX or _has_control(value):
        raise InvalidContact(f"Contact.external_customer_id must be at most {_EXTERNAL_ID_MAX} printable characters")
    return value


@dataclass(frozen=True, slots=True)
class Contact:
    """Who the token is for: at least one of email, phone, external customer id.

    Values are normalised when the contact is made: surrounding white space is
    dropped, the email is lower-cased, the phone keeps its digits only, and an
    empty value counts as absent. A malformed value raises ``ValueError``.
    """

    email: str | None = None
    phone: str | None = None
    external_customer_id: str | None = None

    def __post_init__(self) -> None:
        email = _text("email", self.email)
        phone = _text("phone", self.phone)
        external_id = _text("external_customer_id", self.external_customer_id)
        object.__setattr__(self, "email", _email(email) if email else None)
        object.__setattr__(self, "phone", _phone(phone) if phone else None)
        object.__setattr__(self, "external_customer_id", _external_id(external_id) if external_id else None)

    def __bool__(self) -> bool:
        return bool(self.email or self.phone or self.external_customer_id)

    def __repr__(self) -> str:
        parts = []
        if self.email:
            parts.append(f"email={mask_email(self.email)!r}")
        if self.phone:
            parts.append(f"phone={mask_phone(self.phone)!r}")
        if self.external_customer_id:
            parts.append(f"external_customer_id={self.external_customer_id!r}")
        return f"Contact({', '.join(parts)})"

    def as_payload(self) -> dict[str, str]:
        """The body of eSputnik's token request, without the empty fields."""
        payload = {}
        if self.email:
            payload["email"] = self.email
        if self.phone:
            payload["phone"] = self.phone
        if self.external_customer_id:
            payload["externalCustomerId"] = self.external_customer_id
        return payload

    def masked(self) -> str:
        """A form fit for logs: email and phone masked."""
        return repr(self)

    @classmethod
    def from_value(cls, value: Contact | Mapping[str, Any] | None) -> Contact | None:
        """Turn what a contact loader returned into a contact (``None`` stays ``None``).

        A mapping uses the API's field names: ``email``, ``phone``, ``externalCustomerId``.
        """
        if value is None or isinstance(value, Contact):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - set(_API_FIELDS)
            if unknown:
                raise ValueError(
                    f"unknown contact field(s) {sorted(map(str, unknown))}; use {sorted(_API_FIELDS)}"
                )
            return cls(**{_API_FIELDS[k]: v for k, v in value.items()})
        raise TypeError(
            f"a contact loader must return a Contact, a mapping or None, not {type(value).__name__}"
        )


def mask_email(email: str) -> str:
    """``alice@example.com`` -> ``a***@example.com``."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def mask_phone(phone: str) -> str:
    """Keep the last two digits only: ``380501234567`` -> ``***67``."""
    return f"***{phone[-2:]}"
