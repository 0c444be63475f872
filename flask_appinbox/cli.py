"""``flask appinbox``: check the setup against eSputnik, print the snippet."""
from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup

from .client import time_budget
from .config import normalize_language
from .contact import Contact
from .errors import ConfigurationError, UpstreamError
from .snippet import render_script
from .state import state

appinbox_cli = AppGroup("appinbox", help="eSputnik App Inbox: check the setup, print the snippet.")


@appinbox_cli.command("check")
@click.option("--email", help="The contact's email.")
@click.option("--phone", help="The contact's phone.")
@click.option("--external-id", "external_id", help="The contact's externalCustomerId.")
def check(email: str | None, phone: str | None, external_id: str | None) -> None:
    """Validate the configuration and ask eSputnik for a contact's token.

    Exit status: 0 the contact was found, 1 a configuration or upstream error,
    2 a usage error (Click's), 3 eSputnik does not know the contact. Neither the
    API key nor the token is printed.
    """
    app_state = state()
    s = app_state.settings
    if app_state.unconfigured:
        click.echo("error: App Inbox is off: none of APPINBOX_API_KEY, APPINBOX_SITE_ID and APPINBOX_SANDBOX is set "
                   "(set the API key and the site ID, or APPINBOX_SANDBOX = True to try it)")
        sys.exit(1)
    if not app_state.enabled():
        click.echo("error: App Inbox is switched off (APPINBOX_ENABLED is False)")
        sys.exit(1)
    try:
        contact = Contact(email=email, phone=phone, external_customer_id=external_id)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from None
    if not contact:
        raise click.UsageError("give --email, --phone or --external-id")
    where = "the sandbox" if s.sandbox else s.api_url
    click.echo(f"configuration: OK (API: {where}; timeout {s.timeout[0]:g} s to connect, {s.timeout[1]:g} s to "
               f"read, {s.retries} retries, "
               f"budget {time_budget(s.timeout, s.retries):g} s)")
    with current_app.test_request_context("/"):
        try:
            if not app_state.active():
                click.echo("error: App Inbox is disabled (APPINBOX_ENABLED, or no API key / site ID here)")
                sys.exit(1)
            token = app_state.client.contact_token(contact)
        except ConfigurationError as exc:
            click.echo(f"error: configuration: {exc}")
            sys.exit(1)
        except UpstreamError as exc:
            hint = " (check APPINBOX_API_KEY)" if exc.error == "upstream_rejected" else ""
            click.echo(f"error: {exc.error}: {exc}{hint}")
            sys.exit(1)
    if not token:
        click.echo(f"contact not found: eSputnik does not know {contact!r} "
                   "(APPINBOX_CREATE_CONTACTS = True creates contacts on first use)")
        sys.exit(3)
    if s.sandbox:
        click.echo(f"contact found: the sandbox issued a token ({len(token)} characters) for {contact!r}; this "
                   "checked the local sandbox (APPINBOX_SANDBOX), not eSputnik")
    else:
        click.echo(f"contact found: eSputnik issued a token ({len(token)} characters) for {contact!r}")


@appinbox_cli.command("snippet")
@click.option("--anonymous", is_flag=True, help="The form for visitors who are not logged in.")
@click.option("--language", help="Override APPINBOX_LANGUAGE.")
@click.option("--nonce", help="A CSP nonce to put on the script tags.")
def snippet(anonymous: bool, language: str | None, nonce: str | None) -> None:
    """Print the HTML that appinbox_script() renders, for pages not rendered by Jinja."""
    if language is not None:
        try:
            normalize_language(language)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    with current_app.test_request_context("/"):
        try:
            if not state().active():
                click.echo("<!-- App Inbox is disabled -->")
                return
            html = render_script(logged_in=not anonymous, language=language, nonce=nonce or "")
        except (ConfigurationError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(html or "<!-- nothing for visitors: set APPINBOX_RECOMS or APPINBOX_TRACKING -->")
