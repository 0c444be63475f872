from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import _
from flask_login import current_user, login_user, logout_user

from app.models import find_user

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    if request.method == "POST":
        user = find_user(request.form.get("username", ""))
        if user is None or not user.check_password(request.form.get("password", "")):
            flash(_("Invalid username or password"))
            return redirect(url_for("auth.login"))
        login_user(user, remember=bool(request.form.get("remember_me")))
        next_page = request.args.get("next")
        if not next_page or urlsplit(next_page).netloc != "" or not next_page.startswith("/"):
            next_page = url_for("main.index")
        return redirect(next_page)
    return render_template("auth/login.html", title=_("Sign In"))


@bp.route("/logout")
def logout():
    logout_user()
    return redirect(url_for("main.index"))
