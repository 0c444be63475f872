"""Flask-AppInbox demo: ``flask --app examples/demo run``, then log in as demo@example.com / demo.

With no ``APPINBOX_*`` settings it runs on the sandbox: no eSputnik account, no network.
With ``APPINBOX_API_KEY`` and ``APPINBOX_SITE_ID`` in the environment (plain, or with
Flask's ``FLASK_`` prefix) it talks to eSputnik. For development only: the user store is
a dictionary and the default ``SECRET_KEY`` is public.
"""
from __future__ import annotations

import json
import os
from typing import Any

from flask import Flask, abort, flash, redirect, render_template, request, url_for
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user
from werkzeug.security import check_password_hash, generate_password_hash

from flask_appinbox import FlaskAppInbox

login_manager = LoginManager()
login_manager.login_view = "login"
appinbox = FlaskAppInbox()


class User(UserMixin):
    """The default contact loader sends ``email`` to eSputnik."""

    def __init__(self, id: str, email: str, name: str, password: str) -> None:
        self.id = id
        self.email = email
        self.name = name
        self.password_hash = generate_password_hash(password)


DEMO_EMAIL, DEMO_PASSWORD = "demo@example.com", "demo"
USERS = {"1": User("1", DEMO_EMAIL, "Demo User", DEMO_PASSWORD)}


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return USERS.get(user_id)


def _find(email: str) -> User | None:
    email = email.strip().lower()
    return next((u for u in USERS.values() if u.email == email), None)


def _env_config() -> dict[str, Any]:
    """Plain ``APPINBOX_*`` environment variables, values parsed as ``from_prefixed_env`` does."""
    found: dict[str, Any] = {}
    for key, value in os.environ.items():
        if key.startswith("APPINBOX_"):
            try:
                found[key] = json.loads(value)
            except ValueError:
                found[key] = value
    return found


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "flask-appinbox-demo-not-secret"  # noqa: S105 - public, development only
    app.config.from_prefixed_env()  # FLASK_SECRET_KEY, FLASK_APPINBOX_API_KEY, ...
    app.config.update(_env_config())  # APPINBOX_API_KEY, APPINBOX_SITE_ID, ...
    app.config.update(config or {})
    # The sandbox unless eSputnik's credentials are given.
    app.config.setdefault(
        "APPINBOX_SANDBOX", not (app.config.get("APPINBOX_API_KEY") and app.config.get("APPINBOX_SITE_ID")))

    login_manager.init_app(app)
    appinbox.init_app(app)
    app.before_request(_refuse_cross_site_posts)
    app.context_processor(lambda: {"sandbox": bool(app.config["APPINBOX_SANDBOX"])})
    app.add_url_rule("/", view_func=home)
    app.add_url_rule("/about", view_func=about)
    app.add_url_rule("/login", view_func=login, methods=["GET", "POST"])
    app.add_url_rule("/logout", view_func=logout, methods=["POST"])
    return app


def _refuse_cross_site_posts() -> None:
    # A light stand-in for CSRF tokens in this demo: browsers say where a POST comes from.
    if request.method == "POST":
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            abort(403)


def home() -> str:
    return render_template("home.html")


def about() -> str:
    return render_template("about.html")


def login() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("home"))
    email = ""
    if request.method == "POST":
        email = request.form.get("email", "")
        user = _find(email)
        if user is not None and check_password_hash(user.password_hash, request.form.get("password", "")):
            login_user(user)
            return redirect(url_for("home"))
        flash("Wrong email or password.")
    return render_template("login.html", email=email, demo_email=DEMO_EMAIL, demo_password=DEMO_PASSWORD)


@login_required
def logout() -> Any:
    logout_user()
    return redirect(url_for("login"))
