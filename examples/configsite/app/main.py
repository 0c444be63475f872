from flask import Blueprint, render_template
from flask_babel import _
from flask_login import current_user, login_required

bp = Blueprint("main", __name__)


@bp.route("/")
@bp.route("/index")
@login_required
def index():
    posts = [{"author": "john", "body": _("Beautiful day in Portland!")},
             {"author": "susan", "body": _("The Avengers movie was so cool!")}]
    return render_template("index.html", title=_("Home"), user=current_user, posts=posts)
