"""The site's entry point: ``flask --app microblog ...``, from this directory.

    pip install -r requirements.txt
    pip install -c requirements.txt ../..             # Flask-AppInbox from this checkout, moving no pin
    python -m pytest                                  # the site's tests
    flask --app microblog users list                  # a command of the site's own
    APPINBOX_SANDBOX=yes flask --app microblog run    # App Inbox on the local sandbox; log in as susan / cat
"""
from app import create_app

app = create_app()
