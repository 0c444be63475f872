from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from flask_appinbox import Contact
from flask_appinbox.contact import mask_email, mask_phone


def test_payload_leaves_out_empty_fields() -> None:
    assert Contact(email="a@b.co").as_payload() == {"email": "a@b.co"}
    assert Contact(phone="", external_customer_id="42").as_payload() == {"externalCustomerId": "42"}
    full = Contact(email="a@b.co", phone="+38 (050) 123-45-67", external_customer_id="u1")
    assert full.as_payload() == {"email": "a@b.co", "phone": "380501234567", "externalCustomerId": "u1"}
    assert Contact().as_payload() == {}
    assert not Contact(email="  ")


def test_normalisation() -> None:
    assert Contact(email="  Alice@Example.COM\t").email == "alice@example.com"
    assert Contact(phone="+1 555.123.4567").phone == "15551234567"
    assert Contact(external_customer_id=" 42 ").external_customer_id == "42"
    assert Contact(external_customer_id=42).external_customer_id == "42"  # type: ignore[arg-type]


def test_immutable_and_hashable() -> None:
    contact = Contact(email="a@b.co")
    with pytest.raises(dataclasses.FrozenInstanceError):
        contact.email = "x@y.z"  # type: ignore[misc]
    assert hash(contact) == hash(Contact(email="A@B.CO"))


@pytest.mark.parametrize("kwargs", [
    {"email": "no-at-sign"},
    {"email": "two@@example.com"},
    {"email": "a b@example.com"},
    {"email": "a@example.com\x00"},
    {"email": "a\u202e@example.com"},
    {"email": "x" * 250 + "@example.com"},
    {"phone": "12"},
    {"phone": "call me"},
    {"phone": "1" * 16},
    {"phone": "١٢٣٤٥٦٧"},  # Arabic-Indic digits are not accepted
    {"external_customer_id": "a\nb"},
    {"external_customer_id": "x" * 257},
])
def test_malformed_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Contact(**kwargs)


@pytest.mark.parametrize("kwargs", [{"email": 5}, {"phone": 3.5}, {"external_customer_id": [1]}])
def test_wrong_types(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        Contact(**kwargs)


def test_from_value() -> None:
    assert Contact.from_value(None) is None
    contact = Contact(email="a@b.co")
    assert Contact.from_value(contact) is contact
    assert Contact.from_value({"email": "a@b.co", "externalCustomerId": "9"}) == Contact(
        email="a@b.co", external_customer_id="9")
    with pytest.raises(ValueError, match="unknown"):
        Contact.from_value({"mail": "a@b.co"})
    with pytest.raises(TypeError):
        Contact.from_value("a@b.co")  # type: ignore[arg-type]


def test_repr_masks_personal_data() -> None:
    text = repr(Contact(email="alice@example.com", phone="380501234567", external_customer_id="7"))
    assert "alice@" not in text and "380501234567" not in text
    assert "a***@example.com" in text and "***67" in text
    assert mask_email("bob@x.io") == "b***@x.io"
    assert mask_phone("12345") == "***45"
