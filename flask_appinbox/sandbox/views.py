"""The sandbox blueprint: a local stand-in for eSputnik's API, its script and a page to send messages.

Under ``<prefix>/sandbox``:

``POST /api/v1/auth/contact/token``, ``POST /api/v1/contact``
    eSputnik's contact-token and contact calls, Basic auth with the store's per-process ``api_key``
    (401 without it); ``{"token": ""}`` for a contact the sandbox does not know.

``GET /loader.js``
    The script that stands in for eSputnik's (``static/loader.js``).

``GET /api/v1/appinbox/messages``, ``GET .../messages/count``, ``POST|PUT .../messages/status``
    The App Inbox message calls, after eSputnik's mobile App Inbox documentation: the token in
    an ``ES-TOKEN`` request header, ``GET messages/count`` answering ``{"count": <unread>}``,
    and 401 for a token that is missing, unknown or spent, upon which the client asks for a new
    one. eSputnik serves these at ``/appinbox/v1/...``; here they sit beside the token API.
    Where the documentation is silent, the sandbox chooses:

    - A token is good for one message call, whatever its outcome, and the answer says so with
      ``X-Sandbox-Token: spent``. eSputnik passes the next token in an ``ES-TOKEN`` response
      header; the sandbox sends none, so the script asks ``getAuthTokenCallback`` for a new one
      (``{"renew": true}``) before each further call: the renewal path, exercised on every page
      that makes more than one call, without a refused request in the browser's console.
    - ``GET messages?page=0&size=20`` (``size`` 1 to 100) answers
      ``{"messages": [...], "page": 0, "size": 20, "pages": 1, "total": 3}``, newest first; a
      message is ``{"id": int, "date": "<ISO 8601, UTC>", "title": str, "text": str,
      "link": str | null, "status": "UNREAD" | "READ"}``.
    - ``messages/status`` takes ``{"ids": [int, ...], "status": "READ" | "UNREAD"}`` (unknown
      ids are ignored) and answers ``{"updated": <changed>, "count": <unread>}``.
    - Errors are JSON ``{"error": "..."}``: 400 for a bad body or query, 401 ``invalid_token``.

``GET /``, ``POST /``
    For logged-in users only (``login_required``: a visitor goes to the login page, or gets 401):
    the user's own inbox and a form that adds a message to it. The form is refused unless the
    browser says it comes from this site (``Origin`` or ``Sec-Fetch-Site``). Inboxes live in this
    process's memory, so there is no command-line way to add one to a running server.
"""
from __future__ import annotations

import hmac
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask_login import login_required

from ..state import answer, is_cross_site, logged_in_user, state
from ..views import exempt_from_csrf
from .store import MAX_LINK, MAX_TEXT, MAX_TITLE, SandboxStore, identifiers, keys_of

MAX_PAGE_SIZE = 100
MAX_STATUS_IDS = 1000

sandbox_bp = Blueprint("appinbox_sandbox", __name__, static_folder="static",
                       template_folder="templates")
sandbox_bp.url_value_preprocessor(exempt_from_csrf)  # its in-process API calls carry no CSRF token


def store() -> SandboxStore:
    return current_app.extensions["appinbox_sandbox"]  # type: ignore[no-any-return]


def _authorised() -> bool:
    auth = request.authorization
    password = (auth.password or "") if auth is not None and auth.type == "basic" else ""
    return hmac.compare_digest(password.encode(), store().api_key.encode())


def _contact_ids(body: Any) -> list[str] | None:
    if not isinstance(body, dict):
        return None
    try:
        return identifiers(body) or None
    except (TypeError, ValueError):
        return None


# -- eSputnik's token and contact API -------------------------------------------------


@sandbox_bp.post("/api/v1/auth/contact/token")
def api_token() -> Response:
    """eSputnik's ``POST /v1/auth/contact/token``: ``{"token": ""}`` for an unknown contact."""
    if not _authorised():
        return answer(401, {"error": "unauthorized"})
    ids = _contact_ids(request.get_json(silent=True))
    if ids is None:
        return answer(400, {"error": "email, phone or externalCustomerId is required"})
    return answer(200, {"token": store().issue(ids)})


@sandbox_bp.post("/api/v1/contact")
def api_contact() -> Response:
    """eSputnik's ``POST /v1/contact``: makes the contact known to the sandbox."""
    if not _authorised():
        return answer(401, {"error": "unauthorized"})
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return answer(400, {"error": "a JSON object is required"})
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
        return answer(400, {"error": "externalCustomerId or an email/sms channel is required"})
    store().create(ids)
    return answer(200, {"id": abs(hash(ids[0])) % 10**9})


# -- the script and its message calls ---------------------------------------------------


@sandbox_bp.get("/loader.js")
def loader() -> Response:
    """The sandbox's stand-in for eSputnik's script (where the snippet points)."""
    assert sandbox_bp.static_folder is not None
    return send_from_directory(sandbox_bp.static_folder, "loader.js", mimetype="text/javascript")


def _redeem() -> str | None:
    """The contact key of the request's ``ES-TOKEN``, which is spent (the answer says so)."""
    token = request.headers.get("ES-TOKEN", "").strip()
    key = store().redeem(token) if token else None
    g._appinbox_sandbox_token_spent = key is not None
    return key


@sandbox_bp.after_request
def _say_spent(response: Response) -> Response:
    """``X-Sandbox-Token: spent`` on every answer that used up a token: the script renews before its next
    call instead of sending a spent token and being refused."""
    if g.get("_appinbox_sandbox_token_spent"):
        response.headers["X-Sandbox-Token"] = "spent"
    return response


def _invalid_token() -> Response:
    return answer(401, {"error": "invalid_token"})


def _int_arg(name: str, default: int, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        return None
    return int(raw)


@sandbox_bp.get("/api/v1/appinbox/messages")
def api_messages() -> Response:
    key = _redeem()
    if key is None:
        return _invalid_token()
    page = _int_arg("page", 0, 0, 10**6)
    size = _int_arg("size", 20, 1, MAX_PAGE_SIZE)
    if page is None or size is None:
        return answer(400, {"error": f"page must be 0 or more and size 1 to {MAX_PAGE_SIZE}"})
    messages, total = store().page_of(key, page, size)
    return answer(200, {"messages": messages, "page": page, "size": size,
                        "pages": -(-total // size), "total": total})


@sandbox_bp.get("/api/v1/appinbox/messages/count")
def api_count() -> Response:
    key = _redeem()
    if key is None:
        return _invalid_token()
    return answer(200, {"count": store().unread(key)})


@sandbox_bp.route("/api/v1/appinbox/messages/status", methods=["POST", "PUT"])
def api_status() -> Response:
    key = _redeem()
    if key is None:
        return _invalid_token()
    body = request.get_json(silent=True)
    ids = body.get("ids") if isinstance(body, dict) else None
    status = body.get("status") if isinstance(body, dict) else None
    if (not isinstance(ids, list) or len(ids) > MAX_STATUS_IDS or status not in ("READ", "UNREAD")
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)):
        return answer(400, {"error": 'the body must be {"ids": [int, ...], "status": "READ" | "UNREAD"}'})
    updated = store().mark(key, ids, read=status == "READ")
    return answer(200, {"updated": updated, "count": store().unread(key)})


# -- the sandbox page ---------------------------------------------------------------------


def _from_this_site() -> bool:
    """A browser's same-origin request: it says so (``Origin`` or ``Sec-Fetch-Site``) and is not cross-site."""
    said = "Origin" in request.headers or "Sec-Fetch-Site" in request.headers
    return said and not is_cross_site()


def _own_contact() -> str:
    """The inbox key of the logged-in user's contact: its first identifier (``""`` when they have none)."""
    try:
        contact = state().contact_for(logged_in_user())
    except Exception:
        return ""
    return next(iter(identifiers(contact.as_payload()) if contact else []), "")


@sandbox_bp.route("/", methods=["GET", "POST"])
@login_required  # type: ignore[untyped-decorator]
def page() -> Any:
    """The logged-in user's own inbox and a form that adds a message to it: nobody else's contact
    is shown or reachable, so a sandbox left on by mistake exposes no one."""
    own = _own_contact()
    form = {"to": own.partition(":")[2], "title": "", "text": "", "link": ""}
    error = None
    status = 200
    if request.method == "POST":
        if not _from_this_site():
            abort(403)
        form = {name: request.form.get(name, "") for name in form}
        try:
            if not own or own not in keys_of(form["to"].strip()):
                raise ValueError("the sandbox page sends messages to your own inbox only")
            store().add_message(own, form["title"], form["text"], form["link"] or None)
        except (TypeError, ValueError) as exc:
            error, status = str(exc), 400
        else:
            return redirect(url_for(".page", sent=1), code=303)
    inboxes = [row for row in store().summary() if own and row[0] == own]
    nonce = current_app.jinja_env.globals.get("csp_nonce")
    html = render_template(
        "appinbox_sandbox/page.html", form=form, error=error,
        sent=own.partition(":")[2] if request.args.get("sent") else None,
        inboxes=inboxes, nonce=nonce() if callable(nonce) else None,
        max_title=MAX_TITLE, max_text=MAX_TEXT, max_link=MAX_LINK,
    )
    response = current_app.make_response((html, status))
    response.headers["Cache-Control"] = "no-store"
    return response
