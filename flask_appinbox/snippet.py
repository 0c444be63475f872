"""What ``{{ appinbox_script() }}`` and ``{{ appinbox_bell() }}`` render."""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from flask import current_app, has_request_context, request
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup, escape

from .config import normalize_language
from .state import logged_in_user, state

__all__ = ["appinbox_script", "appinbox_bell", "render_script"]

log = logging.getLogger("flask_appinbox")

_UNSET: Any = object()
_ATTR_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]*")

# eSputnik's loader from its App Inbox documentation, with two changes: the script
# address comes whole (APPINBOX_SCRIPT_URL), and the script element it inserts
# carries the page's CSP nonce, so that a nonce-only policy works too.
_LOADER = (
    "!function (t, e, c, n, o) {var s = e.createElement(c); s.async = 1, s.src = n; if (o) s.nonce = o; "
    "var r = e.scripts[0]; r.parentNode.insertBefore(s, r); var f = function () {f.c(arguments); }; "
    "f.q = []; f.c = function () {f.q.push(arguments); }; t['eS'] = t['eS'] || f; }"
    "(window, document, 'script', %s, %s);"
)

# getAuthTokenCallback: POSTs {"renew": false} first and {"renew": true} after;
# resolves to the token ("" for an unknown contact), rejects with an Error otherwise.
_CALLBACK = (
    "(function (u) {var renew = false; return function () {"
    "var b = JSON.stringify({renew: renew}); renew = true; "
    "return fetch(u, {method: \"POST\", credentials: \"same-origin\", cache: \"no-store\", "
    "headers: {\"Content-Type\": \"application/json\", \"Accept\": \"application/json\"}, body: b})"
    ".then(function (r) {if (r.status === 404) {return \"\"; } "
    "if (!r.ok) {throw new Error(\"App Inbox token request failed: HTTP \" + r.status); } "
    "return r.json().then(function (d) {if (typeof d.token !== \"string\") "
    "{throw new Error(\"App Inbox token answer has no token\"); } return d.token; }); }); }; })(%s)"
)


def render_script(*, logged_in: bool, language: Any = None, recoms: Any = _UNSET, tracking: Any = _UNSET,
                  nonce: str | Callable[[], str] | None = None) -> str:
    """The snippet for a visitor or a logged-in user, as :func:`appinbox_script` renders it (also for
    ``flask appinbox snippet``); ``""`` when App Inbox is off for this request, or for a visitor when
    neither RECOMS nor TRACKING is set."""
    app_state = state()
    s = app_state.settings
    in_request = has_request_context()
    if not (_per_request(app_state.active) if in_request else app_state.enabled()):
        return ""
    flags = {"APP_INBOX": True} if logged_in else {}
    for name, value in (("RECOMS", s.recoms if recoms is _UNSET else recoms),
                        ("TRACKING", s.tracking if tracking is _UNSET else tracking)):
        if value is not None:
            flags[name] = bool(value)
    if not flags:
        return ""
    root = request.script_root if in_request else ""
    site_id = _per_request(app_state.site_id) if in_request else s.site_id
    if not (s.sandbox or isinstance(site_id, str)):
        return ""  # outside a request, a per-request site ID cannot be known: nothing rather than a broken URL
    src = app_state.script_src(root, site_id if isinstance(site_id, str) else None)
    nonce = _nonce(nonce) if in_request or nonce is not None else None
    if logged_in:
        callback = _CALLBACK % htmlsafe_json_dumps(root + app_state.token_path)
        init = (f"eS('init', {htmlsafe_json_dumps(flags)}, {{getAuthTokenCallback: {callback}, "
                f"language: {htmlsafe_json_dumps(_language(language))}}});")
    else:
        init = f"eS('init', {htmlsafe_json_dumps(flags)});"
    attr = f' nonce="{escape(nonce)}"' if nonce else ""
    loader = _LOADER % (htmlsafe_json_dumps(src), htmlsafe_json_dumps(nonce) if nonce else "null")
    return f"<script{attr}>{loader}</script><script{attr}>{init}</script>"


def appinbox_script(*, language: Any = None, recoms: Any = _UNSET, tracking: Any = _UNSET,
                    nonce: str | Callable[[], str] | None = None) -> Markup:
    """eSputnik's loader and its ``init`` call, for the current user.

    Keyword arguments override the configuration for this render. Renders
    nothing when App Inbox is off, and nothing on a second call in the same
    request (eSputnik wants ``init`` once per page).
    """
    in_request = has_request_context()
    if in_request and request.environ.get("appinbox.script_rendered"):  # per request, not per app context
        log.warning("appinbox_script() called twice in one request; the second call renders nothing "
                    "(eSputnik's init must run once per page)")
        return Markup("")
    html = render_script(logged_in=in_request and logged_in_user() is not None, language=language,
                         recoms=recoms, tracking=tracking, nonce=nonce)
    if in_request and html:
        request.environ["appinbox.script_rendered"] = True
    return Markup(html)  # noqa: S704 - every value in it went through htmlsafe_json_dumps() or escape()


def appinbox_bell(**attrs: Any) -> Markup:
    """The element eSputnik puts the bell in: ``<div id="appinbox-bell"></div>``.

    Keyword arguments become HTML attributes (``class_="x"`` -> ``class="x"``,
    ``data_role="y"`` -> ``data-role="y"``; ``True`` -> a bare attribute,
    ``False``/``None`` -> left out), every value escaped.
    """
    app_state = state()
    if not (_per_request(app_state.active) if has_request_context() else app_state.enabled()):
        return Markup("")  # off, or off for this request's tenant
    merged: dict[str, Any] = {"id": "appinbox-bell"}
    for name, value in attrs.items():
        html_name = name.rstrip("_").replace("_", "-")
        if not _ATTR_NAME.fullmatch(html_name):
            raise ValueError(f"{name!r} cannot be an HTML attribute name")
        merged[html_name] = value
    parts = "".join(f" {name}" if value is True else f' {name}="{escape(value)}"'
                    for name, value in merged.items() if value is not None and value is not False)
    return Markup(f"<div{parts}></div>")  # noqa: S704 - names checked, values escaped


def _per_request(call: Callable[[], Any]) -> Any:
    """``call()``, where a site's per-request callable (APPINBOX_API_KEY, _SITE_ID, _LANGUAGE) runs; when it
    raises or returns a malformed value, ``None`` and a warning once per kind of error (its type only: the
    message may hold a secret), so that the page still renders."""
    try:
        return call()
    except Exception as exc:
        state().warn_once(f"per-request {type(exc).__name__}", "a per-request APPINBOX_* callable failed (%s): "
                          "the App Inbox snippet falls back for this page (logged once per kind)", type(exc).__name__)
        return None


def _nonce(nonce: str | Callable[[], str] | None) -> str | None:
    """An explicit nonce (string or callable), else Flask-Talisman's ``csp_nonce`` when registered."""
    if nonce is None:
        nonce = current_app.jinja_env.globals.get("csp_nonce")  # type: ignore[assignment]
    if callable(nonce):
        nonce = nonce()
    if nonce is not None and not isinstance(nonce, str):
        raise TypeError(f"a CSP nonce must be a string, not {type(nonce).__name__}")
    return nonce or None


def _language(language: Any) -> str:
    """An explicit code, else APPINBOX_LANGUAGE (a code or a callable), else Flask-Babel's locale when
    the app uses it, else ``"en"``. A value that is not a language (a Babel locale with no two-letter
    code such as ``fil``, user input) gives ``"en"`` and a warning once per value: a page never breaks
    for its widget's language."""
    app_state = state()
    value = app_state.settings.language if language is None else language
    if value is None and "babel" in current_app.extensions:
        from flask_babel import get_locale

        value = str(get_locale() or "en")
    if callable(value):
        value = _per_request(value)
    try:
        return normalize_language("en" if value is None else value)
    except ValueError:
        app_state.warn_once(f"language {value!r:.100}", "App Inbox language %.100r is not a two-letter ISO 639-1 "
                            "code: the widget falls back to 'en' (logged once per value)", value)
        return "en"
