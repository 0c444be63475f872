"""What ``{{ appinbox_script() }}`` and ``{{ appinbox_bell() }}`` render."""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import current_app, g, has_request_context, request
from markupsafe import Markup, escape

from .config import normalize_language
from .web import logged_in_user, state

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["appinbox_script", "appinbox_bell", "render_script", "Snippet", "tojs"]

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
    """JSON for inside a ``<script>``: ``<``, ``>``, ``&`` and ``'`` are escaped (as Jinja's ``tojson``)."""
    return (json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("'", "\\u0027"))


class Snippet:
    """What the snippet needs of the app's settings, resolved once by ``init_app``."""

    def __init__(self, token_path: str, script_src: str) -> None:
        self.token_path = token_path  # without the app's SCRIPT_NAME
        self.script_src = script_src  # absolute URL, or a path without the app's SCRIPT_NAME
        self._callback = _callback(token_path)  # for an app at the root (no SCRIPT_NAME)

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
        if site_id is not None and "{site_id}" in self.script_src:  # a site ID per request (tenants)
            src = self.script_src.format(site_id=site_id)
        elif self.script_src.startswith("/"):
            src = script_root + self.script_src
        else:
            src = self.script_src
        flags: dict[str, bool] = {"APP_INBOX": True} if logged_in else {}
        if recoms is not None:
            flags["RECOMS"] = bool(recoms)
        if tracking is not None:
            flags["TRACKING"] = bool(tracking)
        if logged_in:
            callback = _callback(script_root + self.token_path) if script_root else self._callback
            init = f"eS('init', {tojs(flags)}, {{getAuthTokenCallback: {callback}, language: {tojs(language)}}});"
        else:
            init = f"eS('init', {tojs(flags)});"
        attr = f' nonce="{escape(nonce)}"' if nonce else ""
        loader = _LOADER_HEAD % tojs(src) + (tojs(nonce) if nonce else "null")
        return f"<script{attr}>{loader});</script><script{attr}>{init}</script>"


def _callback(token_url: str) -> str:
    return _CALLBACK % (tojs(token_url), tojs({"Content-Type": "application/json", "Accept": "application/json"}))


def resolve_nonce(nonce: str | Callable[[], str] | None) -> str | None:
    """An explicit nonce (string or callable), else Flask-Talisman's ``csp_nonce`` when registered."""
    if nonce is None:
        nonce = current_app.jinja_env.globals.get("csp_nonce")  # type: ignore[assignment]
    if callable(nonce):
        nonce = nonce()
    if nonce is None or nonce == "":
        return None
    if not isinstance(nonce, str):
        raise TypeError(f"a CSP nonce must be a string, not {type(nonce).__name__}")
    return nonce


def resolve_language(language: Any, settings: Settings) -> str:
    """An explicit code, else APPINBOX_LANGUAGE (a code or a callable), else Flask-Babel's
    locale when the app uses it, else ``"en"``. A value that is not a language (a Babel
    locale with no two-letter code such as ``fil``, user input) gives ``"en"``, with a
    warning once per value: a page never breaks for its widget's language."""
    value = settings.language if language is None else language
    if value is None:
        value = _babel_locale() or "en"
    if callable(value):
        value = value()
    try:
        return normalize_language(value)
    except ValueError:
        warned = state().warned_languages
        if len(warned) < 1000 and repr(value)[:100] not in warned:
            warned.add(repr(value)[:100])
            log.warning("App Inbox language %.100r is not a two-letter ISO 639-1 code: the widget falls back to "
                        "'en' (logged once per value)", value)
        return "en"


def _babel_locale() -> str | None:
    if "babel" not in current_app.extensions:
        return None
    try:
        from flask_babel import get_locale
    except ImportError:  # pragma: no cover - another extension named "babel"
        return None
    locale = get_locale()
    return str(locale) if locale is not None else None


_EMPTY = Markup("")


def render_script(
    *,
    logged_in: bool,
    language: str | Callable[[], str] | None = None,
    recoms: bool | None = _UNSET,
    tracking: bool | None = _UNSET,
    nonce: str | Callable[[], str] | None = None,
) -> str:
    """The snippet for a visitor or a logged-in user, as :func:`appinbox_script` renders it
    (also for ``flask appinbox snippet``); ``""`` when App Inbox is off for this request."""
    app_state = state()
    settings = app_state.settings
    in_request = has_request_context()
    if not settings.enabled or (in_request and app_state.per_request and not app_state.active()):
        return ""
    return app_state.snippet.render(
        logged_in=logged_in,
        site_id=app_state.site_id() if in_request and callable(settings.site_id) else None,
        language=resolve_language(language, settings) if logged_in else "",
        recoms=settings.recoms if recoms is _UNSET else recoms,
        tracking=settings.tracking if tracking is _UNSET else tracking,
        nonce=resolve_nonce(nonce) if in_request or nonce is not None else None,
        script_root=request.script_root if in_request else "",
    )


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
    if not state().settings.enabled:
        return _EMPTY
    in_request = has_request_context()
    if in_request and g.get("_appinbox_script_rendered", False):
        log.warning("appinbox_script() called twice in one request; the second call renders nothing "
                    "(eSputnik's init must run once per page)")
        return _EMPTY
    html = render_script(logged_in=in_request and logged_in_user() is not None, language=language,
                         recoms=recoms, tracking=tracking, nonce=nonce)
    if in_request and html:
        g._appinbox_script_rendered = True
    return Markup(html)  # noqa: S704 - every value in it went through tojs() or escape()


def appinbox_bell(**attrs: Any) -> Markup:
    """The element eSputnik puts the bell in: ``<div id="appinbox-bell"></div>``.

    Keyword arguments become HTML attributes (``class_="x"`` -> ``class="x"``,
    ``data_role="y"`` -> ``data-role="y"``; ``True`` -> a bare attribute,
    ``False``/``None`` -> left out), every value escaped.
    """
    app_state = state()
    if not app_state.settings.enabled or (app_state.per_request and has_request_context()
                                          and not app_state.active()):
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
