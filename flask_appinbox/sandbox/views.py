"""The sandbox blueprint: a local stand-in for eSputnik's API."""
from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from .store import SandboxStore, identifiers

#: The sandbox's own, public credential. The configured APPINBOX_API_KEY is
#: never sent to the sandbox.
SANDBOX_API_KEY = "sandbox-api-key"

sandbox_bp = Blueprint("appinbox_sandbox", __name__, static_folder="static",
                       template_folder="templates")


def store() -> SandboxStore:
    return current_app.extensions["appinbox_sandbox"]  # type: ignore[no-any-return]


def _json(status: int, body: Any) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _authorised() -> bool:
    auth = request.authorization
    password = (auth.password or "") if auth is not None and auth.type == "basic" else ""
    return hmac.compare_digest(password.encode(), SANDBOX_API_KEY.encode())


def _contact_ids(body: Any) -> list[str] | None:
    if not isinstance(body, dict):
        return None
    try:
        return identifiers(body) or None
    except (TypeError, ValueError):
        return None


@sandbox_bp.post("/api/v1/auth/contact/token")
def api_token() -> Response:
    """eSputnik's ``POST /v1/auth/contact/token``: ``{"token": ""}`` for an unknown contact."""
    if not _authorised():
        return _json(401, {"error": "unauthorized"})
    ids = _contact_ids(request.get_json(silent=True))
    if ids is None:
        return _json(400, {"error": "email, phone or externalCustomerId is required"})
    return _json(200, {"token": store().issue(ids)})


@sandbox_bp.post("/api/v1/contact")
def api_contact() -> Response:
    """eSputnik's ``POST /v1/contact``: makes the contact known to the sandbox."""
    if not _authorised():
        return _json(401, {"error": "unauthorized"})
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _json(400, {"error": "a JSON object is required"})
    fields: dict[str, Any] = {}
    if body.get("externalCustomerId") is not None:
        fields["externalCustomerId"] = body["externalCustomerId"]
    for channel in body.get("channels") or []:
        if isinstance(channel, dict) and channel.get("type") == "email":
            fields["email"] = channel.get("value")
        elif isinstance(channel, dict) and channel.get("type") == "sms":
            fields["phone"] = channel.get("value")
    ids = _contact_ids(fields)
    if ids is None:
        return _json(400, {"error": "externalCustomerId or an email/sms channel is required"})
    store().create(ids)
    return _json(200, {"id": abs(hash(ids[0])) % 10**9})
