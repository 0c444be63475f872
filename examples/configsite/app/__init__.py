from config import Config
from flask import Flask, request
from flask_babel import Babel
from flask_login import LoginManager

from flask_appinbox import FlaskAppInbox


def get_locale():
    return request.accept_languages.best_match(Config.LANGUAGES)


login = LoginManager()
login.login_view = "auth.login"
babel = Babel()
appinbox = FlaskAppInbox()


def create_app(config_class=Config):
    app = Flask(__name__)
    app.config.from_object(config_class)

    login.init_app(app)
    babel.init_app(app, locale_selector=get_locale)
    appinbox.init_app(app)

    from app.auth import bp as auth_bp
    from app.main import bp as main_bp

    app.register_blueprint(auth_bp, url_prefix="/auth")
    app.register_blueprint(main_bp)

    from app.cli import users

    app.cli.add_command(users)
    return app


from app import models  # noqa: E402, F401  the user loader
