"""A whole site with App Inbox, in one file: the README's Quickstart.

Try it without an eSputnik account (the sandbox), then log in::

    export FLASK_APPINBOX_SANDBOX=true
    flask --app quickstart run --debug

With an account, export FLASK_APPINBOX_API_KEY and FLASK_APPINBOX_SITE_ID
instead, and in production always your own FLASK_SECRET_KEY.
"""
import os

from flask import Flask, redirect, render_template_string, request, url_for
from flask_login import (
    LoginManager,
    UserMixin,
    login_required,
    login_user,
    logout_user,
)

from flask_appinbox import Contact, FlaskAppInbox


class User(UserMixin):
    def __init__(self, id, email):
        self.id = id
        self.email = email


USERS = {"1": User("1", "alice@example.com")}  # your users' database

login_manager = LoginManager()
appinbox = FlaskAppInbox()


@login_manager.user_loader
def load_user(user_id):
    return USERS.get(user_id)


# Optional: by default user.email, .phone and .external_customer_id.
@appinbox.contact_loader
def contact_for(user):
    return Contact(email=user.email, external_customer_id=user.id)


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
</head>
<body>
  <header>
    <b>Shop</b> {{ appinbox_bell() }}
    {% if current_user.is_authenticated %}
      {{ current_user.email }}
      <a href="{{ url_for('logout') }}">Log out</a>
    {% else %}
      <form method="post" action="{{ url_for('login') }}">
        <button>Log in as alice@example.com</button>
      </form>
    {% endif %}
  </header>
  {{ appinbox_script() }}
</body></html>
"""


def create_app():
    app = Flask(__name__)
    # Fixed, so that a --debug reload keeps you logged in.
    # In production set your own: export FLASK_SECRET_KEY=...
    app.config["SECRET_KEY"] = os.environ.get(
        "FLASK_SECRET_KEY", "dev-only-change-me")
    # FLASK_APPINBOX_SANDBOX -> APPINBOX_SANDBOX, FLASK_SECRET_KEY, ...
    app.config.from_prefixed_env()
    login_manager.init_app(app)
    appinbox.init_app(app)

    @app.get("/")
    def index():
        return render_template_string(PAGE)

    @app.route("/login", methods=["GET", "POST"])
    def login():
        if request.method == "POST":
            login_user(USERS["1"])
            return redirect(url_for("index"))
        return render_template_string(PAGE)

    @app.get("/logout")
    @login_required
    def logout():
        logout_user()
        return redirect(url_for("index"))

    return app
