import os

basedir = os.path.abspath(os.path.dirname(__file__))


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY") or "you-will-never-guess"
    LANGUAGES = ["en", "es"]
    POSTS_PER_PAGE = 25
    # eSputnik App Inbox (Flask-AppInbox). Unset, each is None: App Inbox is off, with one warning.
    APPINBOX_API_KEY = os.environ.get("APPINBOX_API_KEY")
    APPINBOX_SITE_ID = os.environ.get("APPINBOX_SITE_ID")
    APPINBOX_SANDBOX = os.environ.get("APPINBOX_SANDBOX")  # "true", "yes", "1" to try it without an account
    APPINBOX_CREATE_CONTACTS = os.environ.get("APPINBOX_CREATE_CONTACTS")
