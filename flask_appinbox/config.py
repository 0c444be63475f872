"""Every ``APPINBOX_*`` key: its default and its check, in one place."""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError

# ISO 639-1: every two-letter language code.
ISO_639_1 = frozenset(
    """
    aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz
    ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik
    io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml
    mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd
    se sg sh si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve
    vi vo wa wo xh yi yo za zh zu
    """.split()
)
_LOCALE = re.compile(r"([A-Za-z]{2})(?:[-_][A-Za-z0-9]{1,8})*")
_SITE_ID = re.compile(r"[0-9A-Fa-f-]+")

DEFAULT_API_URL = "https://esputnik.com/api"
DEFAULT_SCRIPT_URL = "https://statics.esputnik.com/scripts/{site_id}.js"
DEFAULT_RETRY_AFTER = 5
DEFAULT_PORTS = {"http": 80, "https": 443}
_TRY_SANDBOX = (". To try it without an account: app.config['APPINBOX_SANDBOX'] = True, or from the shell "
                "export FLASK_APPINBOX_SANDBOX=true")


def unread_environment(environ: Mapping[str, str]) -> list[str]:
    """``APPINBOX_*`` environment variables: Flask reads none of them (``from_prefixed_env`` wants ``FLASK_``)."""
    return sorted(name for name in environ if name.startswith("APPINBOX_"))

# key -> default; init_app puts these in app.config with setdefault.
DEFAULTS: dict[str, Any] = {
    "APPINBOX_API_KEY": None,
    "APPINBOX_SITE_ID": None,
    "APPINBOX_LANGUAGE": None,  # Flask-Babel's locale when it is set up, else "en"
    "APPINBOX_RECOMS": None,
    "APPINBOX_TRACKING": None,
    "APPINBOX_API_URL": DEFAULT_API_URL,
    "APPINBOX_SCRIPT_URL": DEFAULT_SCRIPT_URL,
    "APPINBOX_URL_PREFIX": "/appinbox",
    "APPINBOX_TRUSTED_ORIGINS": (),
    "APPINBOX_TIMEOUT": 5.0,
    "APPINBOX_RETRIES": 2,
    "APPINBOX_BACKOFF_CAP": 1.0,
    "APPINBOX_ENABLED": True,
    "APPINBOX_SANDBOX": False,
    "APPINBOX_SANDBOX_CONTACTS": None,
    "APPINBOX_CREATE_CONTACTS": False,
    "APPINBOX_TOKEN_CACHE_TTL": 0,
    "APPINBOX_TOKEN_CACHE": None,
    # Outage isolation (README, "Tuning the guard"). None: no limit of its own; the
    # worker's threads (or gevent's connections) bound the calls in flight.
    "APPINBOX_MAX_CONCURRENT": None,
    # Timed-out attempts in a row that open the breaker (a hang); a failure ratio
    # of 50 % over 5 s also opens it (an outage). A short cool-down finds a
    # recovered eSputnik within about a second, at the cost of one trial call.
    "APPINBOX_BREAKER_THRESHOLD": 4,
    "APPINBOX_BREAKER_COOLDOWN": 1.0,
}

LanguageSetting = str | Callable[[], str]


def normalize_language(value: object) -> str:
    """Reduce a language code or locale (``pt_BR``, ``pt-BR``) to its ISO 639-1 code.

    Raises ``ValueError`` for anything that is not one.
    """
    if isinstance(value, str) and _LOCALE.fullmatch(value):
        code = value[:2].lower()
        if code in ISO_639_1:
            return code
    raise ValueError(f"{value!r} is not a two-letter ISO 639-1 language code (or a locale such as 'pt_BR')")


_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def _to_bool(value: Any) -> bool | None:
    """``True``/``False``, also as the shell writes them (``True``, ``true``, ``1``, ``False``, ``false``, ``0``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):  # from_prefixed_env() reads 1 and 0 as numbers
        return bool(value)
    if isinstance(value, str):
        return _BOOLEANS.get(value.strip().lower())
    return None


def _bool(config: Mapping[str, Any], key: str) -> bool:
    value = _to_bool(config[key])
    if value is None:
        raise ConfigurationError(key, f"must be True or False, not {config[key]!r} (in Python: app.config[{key!r}] = "
                                      f"True; from the shell: export FLASK_{key}=true)")
    return value


def _optional_bool(config: Mapping[str, Any], key: str) -> bool | None:
    if config[key] is None:
        return None
    value = _to_bool(config[key])
    if value is None:
        raise ConfigurationError(key, f"must be None, True or False, not {config[key]!r} (from the shell: "
                                      f"export FLASK_{key}=true)")
    return value


def _number(config: Mapping[str, Any], key: str, *, minimum: float, maximum: float, strict: bool) -> float:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(key, f"must be a number of seconds, not {value!r}")
    if value < minimum or (strict and value == minimum) or value > maximum:
        low = f"more than {minimum}" if strict else f"at least {minimum}"
        raise ConfigurationError(key, f"must be {low} and at most {maximum}, not {value!r}")
    return float(value)


def _int(config: Mapping[str, Any], key: str, *, minimum: int, maximum: int) -> int:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ConfigurationError(key, f"must be a whole number from {minimum} to {maximum}, not {value!r}")
    return value


def _http_url(config: Mapping[str, Any], key: str) -> str:
    value = config[key]
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigurationError(key, "must be an http(s) URL with a host and no query, such as "
                                      f"{DEFAULT_API_URL!r}")
    return str(value).rstrip("/")


def _account(config: Mapping[str, Any], key: str, check: Callable[[Any, str, bool], str | None],
             required: bool) -> str | Callable[[], str | None] | None:
    """A fixed API key or site ID, checked now; a callable one is checked per request."""
    value = config[key]
    if callable(value):
        return value  # type: ignore[no-any-return]
    return check(value, key, required)


def check_api_key(value: Any, key: str = "APPINBOX_API_KEY", required: bool = True) -> str | None:
    """A usable API key, or ``ConfigurationError`` (the value itself is never echoed)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # from_prefixed_env() turns an all-digit value into an int
    if value is None or value == "":
        if required:
            raise ConfigurationError(key, "is required: the eSputnik API key, in app.config or from the shell as "
                                          f"FLASK_{key} with app.config.from_prefixed_env(){_TRY_SANDBOX}")
        return None
    if not isinstance(value, str) or value != value.strip() or not value.isprintable():
        # Never echo the value: it is a secret.
        raise ConfigurationError(key, "must be a non-empty string of printable characters without surrounding spaces")
    return value


def check_site_id(value: Any, key: str = "APPINBOX_SITE_ID", required: bool = True) -> str | None:
    """A well-formed site ID, or ``ConfigurationError``."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if value is None or value == "":
        if required:
            raise ConfigurationError(key, "is required: the tracking script's ID from Settings > Web Tracking, in "
                                          f"app.config or from the shell as FLASK_{key}{_TRY_SANDBOX}")
        return None
    if not isinstance(value, str) or not _SITE_ID.fullmatch(value) or len(value.replace("-", "")) != 32:
        raise ConfigurationError(key, f"must be 32 hexadecimal digits (dashes allowed), not {value!r}")
    return value


def _script_url(config: Mapping[str, Any], key: str) -> str:
    value = config[key]
    if not isinstance(value, str) or not value:
        raise ConfigurationError(key, "must be a URL string; '{site_id}' in it is replaced by APPINBOX_SITE_ID")
    try:
        probe = value.format(site_id="0" * 32)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigurationError(key, f"has a bad placeholder ({exc}); only '{{site_id}}' is known") from None
    parts = urlsplit(probe)
    absolute = parts.scheme in ("http", "https") and parts.netloc
    if not (absolute or (probe.startswith("/") and not probe.startswith("//"))):
        raise ConfigurationError(key, "must be an http(s) URL or a path starting with '/'")
    return value


def _prefix(config: Mapping[str, Any], key: str) -> str:
    value = config[key]
    if not isinstance(value, str) or not value.startswith("/") or not re.fullmatch(r"[A-Za-z0-9/_.~-]*", value):
        raise ConfigurationError(key, f"must be a path starting with '/', such as '/appinbox', not {value!r}")
    value = value.rstrip("/")
    return value


def _language(config: Mapping[str, Any], key: str) -> LanguageSetting | None:
    value = config[key]
    if value is None or callable(value):
        return value  # type: ignore[no-any-return]
    try:
        return normalize_language(value)
    except ValueError as exc:
        raise ConfigurationError(key, str(exc)) from None


Origin = tuple[str, str, int]


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


def _trusted_origins(config: Mapping[str, Any], key: str) -> frozenset[Origin]:
    value = config[key]
    if isinstance(value, str):
        value = value.replace(",", " ").split()  # FLASK_APPINBOX_TRUSTED_ORIGINS="https://a.example https://b.example"
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise ConfigurationError(key, f"must be a list of origins such as ['https://shop.example'], not {value!r}")
    origins = set()
    for item in value:
        origin = parse_origin(item) if isinstance(item, str) else None
        if origin is None:
            raise ConfigurationError(key, f"{item!r} is not an origin: write the scheme, host and port only, "
                                          "such as 'https://shop.example' or 'http://localhost:5000'")
        origins.add(origin)
    return frozenset(origins)


def _token_cache(config: Mapping[str, Any], key: str, ttl: float) -> Any:
    value = config[key]
    if value is None:
        return None
    if not all(callable(getattr(value, name, None)) for name in ("get", "set", "delete")):
        raise ConfigurationError(key, "must be None or a cache with get/set/delete, such as a cachelib cache")
    if ttl <= 0:
        raise ConfigurationError(key, "needs APPINBOX_TOKEN_CACHE_TTL above 0 (seconds a token may be reused)")
    return value


def _sandbox_contacts(config: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    value = config[key]
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(key, "must be None or a list of emails, phones and external ids")
    return tuple(value)


@dataclass(frozen=True)
class Settings:
    """The checked configuration of one app; built once by ``init_app``."""

    api_key: str | Callable[[], str | None] | None = field(repr=False)  # a secret: never in a repr
    site_id: str | Callable[[], str | None] | None
    language: LanguageSetting | None  # None: Flask-Babel's locale when in use, else "en"
    recoms: bool | None
    tracking: bool | None
    api_url: str
    script_url: str
    url_prefix: str
    trusted_origins: frozenset[Origin]
    timeout: float
    retries: int
    backoff_cap: float
    enabled: bool
    sandbox: bool
    sandbox_contacts: tuple[str, ...] | None
    create_contacts: bool
    token_cache_ttl: float
    token_cache: Any
    max_concurrent: int | None
    breaker_threshold: int
    breaker_cooldown: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """Check every key."""
        sandbox = _bool(config, "APPINBOX_SANDBOX")
        enabled = _bool(config, "APPINBOX_ENABLED")
        required = enabled and not sandbox  # switched off (a test, a staging site): no account needed
        ttl = _number(config, "APPINBOX_TOKEN_CACHE_TTL", minimum=0, maximum=86400, strict=False)
        return cls(
            api_key=_account(config, "APPINBOX_API_KEY", check_api_key, required),
            site_id=_account(config, "APPINBOX_SITE_ID", check_site_id, required),
            language=_language(config, "APPINBOX_LANGUAGE"),
            recoms=_optional_bool(config, "APPINBOX_RECOMS"),
            tracking=_optional_bool(config, "APPINBOX_TRACKING"),
            api_url=_http_url(config, "APPINBOX_API_URL"),
            script_url=_script_url(config, "APPINBOX_SCRIPT_URL"),
            url_prefix=_prefix(config, "APPINBOX_URL_PREFIX"),
            trusted_origins=_trusted_origins(config, "APPINBOX_TRUSTED_ORIGINS"),
            timeout=_number(config, "APPINBOX_TIMEOUT", minimum=0, maximum=60, strict=True),
            retries=_int(config, "APPINBOX_RETRIES", minimum=0, maximum=5),
            backoff_cap=_number(config, "APPINBOX_BACKOFF_CAP", minimum=0, maximum=30, strict=False),
            enabled=enabled,
            sandbox=sandbox,
            sandbox_contacts=_sandbox_contacts(config, "APPINBOX_SANDBOX_CONTACTS"),
            create_contacts=_bool(config, "APPINBOX_CREATE_CONTACTS"),
            token_cache_ttl=ttl,
            token_cache=_token_cache(config, "APPINBOX_TOKEN_CACHE", ttl),
            max_concurrent=(None if config["APPINBOX_MAX_CONCURRENT"] is None
                            else _int(config, "APPINBOX_MAX_CONCURRENT", minimum=1, maximum=10000)),
            breaker_threshold=_int(config, "APPINBOX_BREAKER_THRESHOLD", minimum=0, maximum=1000),
            breaker_cooldown=_number(config, "APPINBOX_BREAKER_COOLDOWN", minimum=0, maximum=3600, strict=True),
        )
