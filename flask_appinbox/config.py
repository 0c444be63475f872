"""Every ``APPINBOX_*`` key, its default and its check: ``init_app`` fills the defaults in with
``setdefault`` and :func:`load` parses them once; a bad value raises :class:`ConfigurationError`
naming the key."""
from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from .client import DEFAULT_API_URL, DEFAULT_TIMEOUT
from .errors import ConfigurationError

# ISO 639-1: every two-letter language code.
ISO_639_1 = frozenset("""
    aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz
    ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik
    io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml
    mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd
    se sg sh si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve
    vi vo wa wo xh yi yo za zh zu""".split())
_LOCALE = re.compile(r"([A-Za-z]{2})(?:[-_][A-Za-z0-9]{1,8})*")
DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]


def normalize_language(value: object) -> str:
    """A language code or locale (``pt_BR``, ``pt-BR``) reduced to its ISO 639-1 code; else ``ValueError``."""
    if isinstance(value, str) and _LOCALE.fullmatch(value) and value[:2].lower() in ISO_639_1:
        return value[:2].lower()
    raise ValueError(f"{masked(value)} is not a two-letter ISO 639-1 language code (or a locale such as 'pt_BR')")


def masked(value: object) -> str:
    """How a bad value is shown in an error: a short string by its first two characters and length, anything
    else by its type, so that an API key pasted into the wrong key is never echoed."""
    if isinstance(value, str):
        return f"a string of {len(value)} characters starting {value[:2]!r}" if len(value) > 2 else repr(value)
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    return f"a {type(value).__name__}"


def parse_origin(value: str) -> Origin | None:
    """``(scheme, host, port)`` of an http(s) origin, the port made explicit; ``None`` for ``null`` and garbage."""
    try:
        parts = urlsplit(value)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if port is None or not parts.hostname or parts.username is not None or parts.password is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


@dataclass(frozen=True)
class Settings:
    """The checked configuration of one app: each field is a key (``APPINBOX_`` and its name in
    capitals) with its default."""

    api_key: str | Callable[[], str | None] | None = field(default=None, repr=False)  # a secret; or per request
    site_id: str | Callable[[], str | None] | None = None  # likewise
    language: str | Callable[[], str] | None = None  # None: Flask-Babel's locale when it is set up, else "en"
    recoms: bool | None = None
    tracking: bool | None = None
    api_url: str = DEFAULT_API_URL
    script_url: str = "https://statics.esputnik.com/scripts/{site_id}.js"
    url_prefix: str = "/appinbox"
    trusted_origins: frozenset[Origin] | tuple[str, ...] = ()
    timeout: tuple[float, float] = DEFAULT_TIMEOUT  # (connect, read)
    retries: int = 2
    enabled: bool = True
    sandbox: bool = False
    sandbox_contacts: tuple[str, ...] | None = None
    create_contacts: bool = False
    guard: bool = True
    max_concurrent: int | None = None
    token_cache_ttl: float = 0
    token_cache: Any = None


DEFAULTS: dict[str, Any] = {f"APPINBOX_{f.name.upper()}": f.default for f in fields(Settings)}


def load(config: MutableMapping[str, Any]) -> Settings:
    """Fill in the defaults, then check every key (``ConfigurationError`` names the first bad one)."""
    switched_on = config.get("APPINBOX_ENABLED") is not None  # set by the site, not our default
    for key, default in DEFAULTS.items():
        config.setdefault(key, default)
    hints = unknown_keys(config)
    # None means "not set": the default (a Config class's os.environ.get() gives None).
    given = {key: default if config[key] is None else config[key] for key, default in DEFAULTS.items()}
    c = _Checker(given, "".join(f" ({key} is not a known key: did you mean {near}?)" for key, near in hints))
    enabled, sandbox = c.flag("APPINBOX_ENABLED"), c.flag("APPINBOX_SANDBOX")
    # No account and no sandbox: off (with a warning, see init_app), unless the site switched it on itself.
    # Half an account, or a malformed key, is an error whatever APPINBOX_ENABLED says.
    account = any(given[key] not in (None, "") for key in ("APPINBOX_API_KEY", "APPINBOX_SITE_ID"))
    required = not sandbox and (account or (enabled and switched_on))
    ttl = c.number("APPINBOX_TOKEN_CACHE_TTL", 0, 86400)
    return Settings(
        api_key=c.account("APPINBOX_API_KEY", check_api_key, required),
        site_id=c.account("APPINBOX_SITE_ID", check_site_id, required),
        language=c.language("APPINBOX_LANGUAGE"),
        recoms=c.flag("APPINBOX_RECOMS", optional=True),
        tracking=c.flag("APPINBOX_TRACKING", optional=True),
        api_url=c.url("APPINBOX_API_URL"),
        script_url=c.script_url("APPINBOX_SCRIPT_URL"),
        url_prefix=c.prefix("APPINBOX_URL_PREFIX"),
        trusted_origins=c.origins("APPINBOX_TRUSTED_ORIGINS"),
        timeout=c.timeout("APPINBOX_TIMEOUT"),
        retries=c.whole("APPINBOX_RETRIES", 0, 5),
        enabled=enabled,
        sandbox=sandbox,
        sandbox_contacts=c.strings("APPINBOX_SANDBOX_CONTACTS"),
        create_contacts=c.flag("APPINBOX_CREATE_CONTACTS"),
        guard=c.flag("APPINBOX_GUARD"),
        max_concurrent=None if given["APPINBOX_MAX_CONCURRENT"] is None else c.whole("APPINBOX_MAX_CONCURRENT",
                                                                                          1, 100_000),
        token_cache_ttl=ttl,
        token_cache=c.cache("APPINBOX_TOKEN_CACHE", ttl),
    )


def unknown_keys(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``APPINBOX_*`` keys that are not ours, each with the nearest known key."""
    return [(key, (difflib.get_close_matches(key, DEFAULTS, 1, 0.0) or ["?"])[0])
            for key in sorted(config) if key.startswith("APPINBOX_") and key not in DEFAULTS]


_SHELL = (" (in Python: app.config[{key!r}] = {python}; from the shell: export FLASK_{key}={env} with "
          "app.config.from_prefixed_env())")
_TRY_SANDBOX = (". To try it without an account: app.config['APPINBOX_SANDBOX'] = True, or from the shell "
                "export FLASK_APPINBOX_SANDBOX=true")
#: The spellings every boolean key accepts (any case, surrounding spaces ignored), besides True and False.
BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def parse_bool(value: Any) -> bool:
    """``True``/``False``, ``1``/``0``, or a string of :data:`BOOLEANS` (``"yes"``, ``"Off"``, ...);
    else ``ValueError``."""
    if isinstance(value, str):
        value = BOOLEANS.get(value.strip().lower(), value)
    if isinstance(value, int) and value in (0, 1):  # bool, or 1/0 from from_prefixed_env()
        return bool(value)
    raise ValueError(f"not a boolean: {type(value).__name__}")


def _given(value: Any, key: str, required: bool, what: str, hint: str) -> Any:
    """``value`` (an all-digit one, which from_prefixed_env() makes an int, as a string), or ``None``
    when empty; ``ConfigurationError`` when empty and required."""
    if value is None or value == "":
        if required:
            raise ConfigurationError(key, f"is required: {what}" + _SHELL.format(key=key, python="'...'", env="...")
                                     + _TRY_SANDBOX + hint)
        return None
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def check_api_key(value: Any, key: str = "APPINBOX_API_KEY", required: bool = True, hint: str = "") -> str | None:
    """A usable API key, or ``ConfigurationError`` (the value itself is never echoed: it is a secret)."""
    value = _given(value, key, required, "the eSputnik API key", hint)
    if value is not None and (not isinstance(value, str) or value != value.strip() or not value.isprintable()
                              or any(ord(ch) > 255 for ch in value)):  # HTTP Basic auth sends it as Latin-1
        raise ConfigurationError(key, "must be a non-empty string of printable Latin-1 characters without "
                                      "surrounding spaces")
    return value


def check_site_id(value: Any, key: str = "APPINBOX_SITE_ID", required: bool = True, hint: str = "") -> str | None:
    """A well-formed site ID (32 hexadecimal digits, dashes allowed), or ``ConfigurationError``."""
    value = _given(value, key, required, "the tracking script's ID from Settings > Web Tracking", hint)
    if value is not None and (not isinstance(value, str) or not re.fullmatch(r"[0-9A-Fa-f-]+", value)
                              or len(value.replace("-", "")) != 32):
        raise ConfigurationError(key, f"must be 32 hexadecimal digits (dashes allowed), not {masked(value)}")
    return value


class _Checker:
    """One check per kind of value; each raises ``ConfigurationError`` naming the key."""

    def __init__(self, config: Mapping[str, Any], hint: str) -> None:
        self.config, self.hint = config, hint

    def fail(self, key: str, message: str) -> ConfigurationError:
        return ConfigurationError(key, message + self.hint)

    def flag(self, key: str, optional: bool = False) -> Any:
        value = self.config[key]
        if optional and value is None:
            return None
        try:
            return parse_bool(value)
        except ValueError:
            raise self.fail(key, f"must be {'None, ' if optional else ''}True or False (or one of "
                            f"{', '.join(BOOLEANS)}), not {masked(value)}"
                            + _SHELL.format(key=key, python="True", env="true")) from None

    def number(self, key: str, low: float, high: float, above: bool = False, value: Any = None) -> float:
        value = self.config[key] if value is None else value
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                or value < low or (above and value == low) or value > high):
            raise self.fail(key, f"must be a number of seconds {'above' if above else 'from'} {low} "
                                 f"{'and at most' if above else 'to'} {high}, not {masked(value)}")
        return float(value)

    def timeout(self, key: str) -> tuple[float, float]:
        """Seconds above 0 and at most 60: one number for both, or requests' ``(connect, read)`` pair
        (``[1, 3]`` from ``from_prefixed_env()``)."""
        value = self.config[key]
        pair = value if isinstance(value, (list, tuple)) and len(value) == 2 else (value, value)
        try:
            connect, read = (self.number(key, 0, 60, above=True, value=v) for v in pair)
        except ConfigurationError:
            raise self.fail(key, "must be a number of seconds above 0 and at most 60, or a (connect, read) pair "
                                 f"of them such as {DEFAULT_TIMEOUT}") from None
        return connect, read

    def whole(self, key: str, low: int, high: int) -> int:
        value = self.config[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, f"must be a whole number from {low} to {high}, not {masked(value)}")
        return value

    def account(self, key: str, check: Callable[..., str | None], required: bool) -> Any:
        value = self.config[key]
        return value if callable(value) else check(value, key, required, self.hint)

    def language(self, key: str) -> str | Callable[[], str] | None:
        value = self.config[key]
        if value is None or callable(value):
            return value  # type: ignore[no-any-return]
        try:
            return normalize_language(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def url(self, key: str) -> str:
        value = self.config[key]
        parts = urlsplit(value) if isinstance(value, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise self.fail(key, f"must be an http(s) URL with a host and no query, such as {DEFAULT_API_URL!r}")
        if parts.username is not None or parts.password is not None:  # the value is not echoed: it holds a password
            raise self.fail(key, "must not hold credentials (user:password@): the API key is the credential")
        return str(value).rstrip("/")

    def script_url(self, key: str) -> str:
        value = self.config[key]
        try:
            probe = urlsplit(value.format(site_id="0" * 32))
        except (AttributeError, KeyError, IndexError, ValueError):
            probe = urlsplit("//")
        if "\\" in probe.geturl() or not ((probe.scheme in ("http", "https") and probe.netloc)
                                           or (probe.path[:1] == "/" and not probe.netloc)):
            raise self.fail(key, "must be an http(s) URL or a path starting with '/' (no backslash), in which "
                                 "'{site_id}' is the only placeholder")
        return str(value)

    def prefix(self, key: str) -> str:
        value = self.config[key]
        if (not isinstance(value, str) or not re.fullmatch(r"/[A-Za-z0-9/_.~-]*", value)
                or {".", ".."} & set(value.split("/"))):
            raise self.fail(key, f"must be a path starting with '/' without '.' or '..' segments, such as "
                                 f"'/appinbox', not {masked(value)}")
        return value.rstrip("/")

    def origins(self, key: str) -> frozenset[Origin]:
        value = self.config[key]
        if isinstance(value, str):
            value = value.replace(",", " ").split()  # FLASK_APPINBOX_TRUSTED_ORIGINS="https://a.example https://b"
        origins = [parse_origin(v) if isinstance(v, str) else None for v in value] if isinstance(
            value, (list, tuple, set, frozenset)) else [None]
        if None in origins:
            raise self.fail(key, f"must be a list of origins (scheme, host and port only) such as "
                                 f"['https://shop.example', 'http://localhost:5000'], not {masked(value)}")
        return frozenset(o for o in origins if o is not None)

    def strings(self, key: str) -> tuple[str, ...] | None:
        value = self.config[key]
        if value is not None and (isinstance(value, str) or not all(isinstance(v, str) for v in value)):
            raise self.fail(key, "must be None or a list of emails, phones and external ids")
        return None if value is None else tuple(value)

    def cache(self, key: str, ttl: float) -> Any:
        value = self.config[key]
        if value is not None and not all(callable(getattr(value, n, None)) for n in ("get", "set", "add", "delete")):
            raise self.fail(key, "must be None or a cachelib cache (get, set, add, delete), such as "
                                 "cachelib.RedisCache(...)")
        if value is not None and ttl <= 0:
            raise self.fail(key, "needs APPINBOX_TOKEN_CACHE_TTL above 0 (seconds a token may be reused)")
        return value
