"""What ``{{ appinbox_script() }}`` and ``{{ appinbox_bell() }}`` render."""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, g, has_request_context, request
from flask_login import current_user
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup, escape

from .config import normalize_language

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["appinbox_script", "appinbox_bell", "Snippet", "tojs"]

log = logging.getLogger("flask_appinbox")

_UNSET: Any = object()
_ATTR_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]*")

# eSputnik's loader from its App Inbox documentation, with two changes: the
# script address comes whole (APPINBOX_SCRIPT_URL), and the script element it
# inserts carries the page's CSP nonce, so a nonce-only policy works too.
_LOADER_HEAD = (
    "!function (t, e, c, n, o) {var s = e.createElement(c); s.async = 1, s.src = n; if (o) s.nonce = o; "
    "var r = e.scripts[0]; r.parentNode.insertBefore(s, r); var f = function () {f.c(arguments); }; "
    "f.q = []; f.c = function () {f.q.push(arguments); }; t['eS'] = t['eS'] || f; }"
    "(window, document, 'script', %s, "
)  # the nonce argument follows

# getAuthTokenCallback: POSTs {"renew": false} first and {"renew": true} after;
# resolves to the token ("" for an unknown contact), rejects with an Error otherwise.
_CALLBACK = (
    "(function (u, h) {var renew = false; return function () {"
    "var b = JSON.stringify({renew: renew}); renew = true; "
    "return fetch(u, {method: \"POST\", credentials: \"same-origin\", cache: \"no-store\", headers: h, body: b})"
    ".then(function (r) {if (r.status === 404) {return \"\"; } "
    "if (!r.ok) {throw new Error(\"App Inbox token request failed: HTTP \" + r.status); } "
    "return r.json().then(function (d) {if (typeof d.token !== \"string\") "
    "{throw new Error(\"App Inbox token answer has no token\"); } return d.token; }); }); }; })(%s, %s)"
)


def tojs(value: Any) -> str:
    """JSON for inside a ``<script>``: ``<``, ``>``, ``&`` and ``'`` are escaped."""
    return str(htmlsafe_json_dumps(value))


class Snippet:
    """The parts of the snippet that do not change per request, built once per app."""

    def __init__(self, token_path: str, script_src: str) -> None:
        self.token_path = token_path  # without the app's SCRIPT_NAME
        self.script_src = script_src  # absolute URL, or a path without the app's SCRIPT_NAME
        self.relative_src = script_src.startswith("/")
        self._flags_json: dict[tuple[Any, Any, bool], str] = {}
        self._parts: dict[tuple[Any, ...], tuple[str, str]] = {}

    def flags(self, recoms: bool | None, tracking: bool | None, app_inbox: bool) -> str:
        key = (recoms, tracking, app_inbox)
        cached = self._flags_json.get(key)
        if cached is None:
            flags: dict[str, bool] = {"APP_INBOX": True} if app_inbox else {}
            if recoms is not None:
                flags["RECOMS"] = bool(recoms)
            if tracking is not None:
                flags["TRACKING"] = bool(tracking)
            cached = self._flags_json[key] = tojs(flags)
        return cached

    def render(
        self,
        *,
        logged_in: bool,
        site_id: str | None = None,
        language: str,
        recoms: bool | None,
        tracking: bool | None,
        nonce: str | None,
        script_root: str = "",
    ) -> str:
        """The HTML; ``""`` for a visitor when neither RECOMS nor TRACKING is set."""
        if not logged_in and recoms is None and tracking is None:
            return ""
        key = (logged_in, language, recoms, tracking, script_root, site_id)
        parts = self._parts.get(key)
        if parts is None:
            parts = self._build(*key)
            if len(self._parts) >= 256:  # many tenants or languages: start over rather than grow
                self._parts.clear()
            self._parts[key] = parts
        loader, init = parts
        attr = f' nonce="{escape(nonce)}"' if nonce else ""
        nonce_js = tojs(nonce) if nonce else "null"
        return f"<script{attr}>{loader}{nonce_js});</script><script{attr}>{init}</script>"

    def _build(self, logged_in: bool, language: str, recoms: bool | None, tracking: bool | None,
               script_root: str, site_id: str | None) -> tuple[str, str]:
        """The loader up to its nonce argument, and the init call: all that does not depend on the nonce."""
        if site_id is not None and "{site_id}" in self.script_src:  # a site ID per request (tenants)
            src = self.script_src.format(site_id=site_id)
        elif self.relative_src:
            src = script_root + self.script_src
        else:
            src = self.script_src
        loader = _LOADER_HEAD % tojs(src)
        flags = self.flags(recoms, tracking, logged_in)
        if not logged_in:
            return loader, f"eS('init', {flags});"
        callback = _CALLBACK % (tojs(script_root + self.token_path), _HEADERS_JSON)
        return loader, f"eS('init', {flags}, {{getAuthTokenCallback: {callback}, language: {tojs(language)}}});"


_HEADERS_JSON = tojs({"Content-Type": "application/json", "Accept": "application/json"})


def _state(app: Flask | None = None) -> Any:
    try:
        return (app or current_app).extensions["appinbox"]
    except KeyError:
        raise RuntimeError("Flask-AppInbox is not initialised on this app: call FlaskAppInbox(app) "
                           "or appinbox.init_app(app)") from None


def resolve_nonce(nonce: str | Callable[[], str] | None, app: Flask | None = None) -> str | None:
    """An explicit nonce (string or callable), else Flask-Talisman's ``csp_nonce`` when registered."""
    if nonce is None:
        nonce = (app or current_app).jinja_env.globals.get("csp_nonce")  # type: ignore[assignment]
    if callable(nonce):
        nonce = nonce()
    if nonce is None or nonce == "":
        return None
    if not isinstance(nonce, str):
        raise TypeError(f"a CSP nonce must be a string, not {type(nonce).__name__}")
    return nonce


def resolve_language(language: Any, settings: Settings) -> str:
    """An explicit code, else APPINBOX_LANGUAGE (a code or a callable), else Flask-Babel's
    locale when the app uses it, else ``"en"``; ``ValueError`` when not a code."""
    value = settings.language if language is None else language
    if value is None:
        value = _babel_locale() or "en"
    if callable(value):
        value = value()
    return normalize_language(value)


def _babel_locale() -> str | None:
    if "babel" not in current_app.extensions:
        return None
    try:
        from flask_babel import get_locale
    except ImportError:  # pragma: no cover - another extension named "babel"
        return None
    locale = get_locale()
    return str(locale) if locale is not None else None


def _logged_in(app: Flask) -> bool:
    if not hasattr(app, "login_manager"):
        _state(app).warn_once("no-login-manager", NO_LOGIN_MANAGER)
        return False
    return bool(current_user.is_authenticated)


NO_LOGIN_MANAGER = ("Flask-AppInbox needs Flask-Login: this app has no LoginManager, so no user is ever logged in "
                    "and no page shows the inbox. Add LoginManager(app) with a user_loader.")


_EMPTY = Markup("")


def appinbox_script(
    *,
    language: str | Callable[[], str] | None = None,
    recoms: bool | None = _UNSET,
    tracking: bool | None = _UNSET,
    nonce: str | Callable[[], str] | None = None,
) -> Markup:
    """eSputnik's loader and the ``init`` call, for the current user.

    Keyword arguments override the configuration for this render. Renders
    nothing when App Inbox is disabled, and nothing on a second call in the
    same request (eSputnik wants ``init`` once per page).
    """
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    state = _state(app)
    settings = state.settings
    if not settings.enabled:
        return _EMPTY
    in_request = has_request_context()
    if in_request:
        flask_g = g._get_current_object()
        if getattr(flask_g, "_appinbox_script_rendered", False):
            log.warning("appinbox_script() called twice in one request; the second call renders nothing "
                        "(eSputnik's init must run once per page)")
            return _EMPTY
        if state.per_request and not state.active():
            return _EMPTY
    logged_in = in_request and _logged_in(app)
    recoms = settings.recoms if recoms is _UNSET else recoms
    tracking = settings.tracking if tracking is _UNSET else tracking
    if not logged_in and recoms is None and tracking is None:
        return _EMPTY
    if not logged_in:
        code = ""
    elif language is None and isinstance(settings.language, str):
        code = settings.language  # checked and reduced by init_app
    elif language is None and settings.language is None and "babel" not in app.extensions:
        code = "en"
    else:
        code = resolve_language(language, settings)
    html = state.snippet.render(
        logged_in=logged_in,
        site_id=state.site_id() if in_request and callable(settings.site_id) else None,
        language=code,
        recoms=recoms,
        tracking=tracking,
        nonce=resolve_nonce(nonce, app) if in_request or nonce is not None else None,
        script_root=request.script_root if in_request else "",
    )
    if in_request:
        flask_g._appinbox_script_rendered = True
    return Markup(html)  # noqa: S704 - every value in it went through tojs() or escape()


def appinbox_bell(**attrs: Any) -> Markup:
    """The element eSputnik puts the bell in: ``<div id="appinbox-bell"></div>``.

    Keyword arguments become HTML attributes (``class_="x"`` -> ``class="x"``,
    ``data_role="y"`` -> ``data-role="y"``; ``True`` -> a bare attribute,
    ``False``/``None`` -> left out), every value escaped.
    """
    state = _state()
    if not state.settings.enabled or (state.per_request and has_request_context() and not state.active()):
        return _EMPTY  # off, or off for this request's tenant
    merged: dict[str, Any] = {"id": "appinbox-bell"}
    for name, value in attrs.items():
        html_name = name.rstrip("_").replace("_", "-")
        if not _ATTR_NAME.fullmatch(html_name):
            raise ValueError(f"{name!r} cannot be an HTML attribute name")
        merged[html_name] = value
    parts = []
    for name, value in merged.items():
        if value is None or value is False:
            continue
        parts.append(f" {name}" if value is True else f' {name}="{escape(value)}"')
    return Markup(f"<div{''.join(parts)}></div>")  # noqa: S704 - names checked, values escaped
