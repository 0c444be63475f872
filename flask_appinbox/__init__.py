"""Flask-AppInbox: eSputnik's App Inbox (in-site notifications) for Flask + Flask-Login sites."""
from ._version import __version__
from .client import EsputnikClient
from .contact import Contact
from .errors import (
    AppInboxError,
    ConfigurationError,
    ContactNotFound,
    UpstreamBusy,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .extension import FlaskAppInbox, default_contact_loader
from .snippet import appinbox_bell, appinbox_script

__all__ = [
    "__version__",
    "AppInboxError",
    "ConfigurationError",
    "Contact",
    "ContactNotFound",
    "EsputnikClient",
    "FlaskAppInbox",
    "UpstreamBusy",
    "UpstreamError",
    "UpstreamRateLimited",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "appinbox_bell",
    "appinbox_script",
    "default_contact_loader",
]
