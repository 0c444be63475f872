"""The site the benchmarks run under gunicorn: Flask + Flask-Login + Flask-AppInbox.

``gunicorn '_app:create_server()'``. Configuration comes from the environment as
in API.md (``FLASK_APPINBOX_TIMEOUT=1`` -> ``APPINBOX_TIMEOUT = 1``).
``BENCH_CACHED_TTL`` > 0 mounts a second copy of the site at ``/cached`` with
``APPINBOX_TOKEN_CACHE_TTL`` set to it, so both run in the same server.

A request is logged in as user ``N`` when it carries ``X-Bench-User: N``
(a Flask-Login request loader); user N's contact is ``user-N@example.com``
with external id ``N``.

Routes:

- ``GET /ping``: readiness, anonymous;
- ``GET /const``: login required, a constant JSON answer (the floor);
- ``POST /appinbox/token``: Flask-AppInbox's endpoint;
- ``POST /hand/session``: the token call written by hand with a module-level ``requests.Session``;
- ``POST /hand/plain``: the same with ``requests.post`` per call (a new connection each time).

Every answer carries ``X-Bench-Pid`` (the worker) and ``X-Bench-Elapsed``
(seconds spent in the app, without gunicorn's queueing).
"""
from __future__ import annotations

import os
import time
from typing import Any

import requests
from flask import Flask, Response, g, jsonify
from flask_login import LoginManager, UserMixin, current_user, login_required

from flask_appinbox import FlaskAppInbox

API_KEY = "bench-api-key-7f3a9c0e51d2SECRET"
SITE_ID = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
USER_HEADER = "X-Bench-User"


class User(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id
        self.email = f"user-{user_id}@example.com"
        self.external_customer_id = user_id


# A hand-written token route keeps its session at module level, as a site would.
_SESSION = requests.Session()


def create_app(**overrides: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="bench-secret", APPINBOX_API_KEY=API_KEY,  # noqa: S106 - a local benchmark
                      APPINBOX_SITE_ID=SITE_ID)
    app.config.from_prefixed_env()
    app.config.update(overrides)

    login = LoginManager(app)

    @login.request_loader
    def load_user(request: Any) -> User | None:
        user_id = request.headers.get(USER_HEADER)
        return User(user_id) if user_id else None

    FlaskAppInbox(app)
    token_url = app.config["APPINBOX_API_URL"].rstrip("/") + "/v1/auth/contact/token"
    timeout = app.config["APPINBOX_TIMEOUT"]

    @app.before_request
    def started() -> None:
        g.bench_t0 = time.perf_counter()

    @app.after_request
    def stamped(response: Response) -> Response:
        response.headers["X-Bench-Pid"] = str(os.getpid())
        t0 = g.get("bench_t0")
        if t0 is not None:
            response.headers["X-Bench-Elapsed"] = f"{time.perf_counter() - t0:.6f}"
        return response

    @app.get("/ping")
    def ping() -> Response:
        return jsonify(ok=True)

    @app.get("/const")
    @login_required
    def const() -> Response:
        response = jsonify(token="esk.constant-answer-of-a-similar-size")  # noqa: S106
        response.headers["Cache-Control"] = "no-store"
        return response

    def hand_written(post: Any) -> Response:
        payload = {"email": current_user.email, "externalCustomerId": current_user.external_customer_id}
        try:
            upstream = post(token_url, json=payload, auth=("site", API_KEY), timeout=timeout)
            upstream.raise_for_status()
            response = jsonify(token=upstream.json()["token"])
        except (requests.RequestException, ValueError, KeyError):
            response = jsonify(error="upstream_error")
            response.status_code = 502
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.post("/hand/session")
    @login_required
    def hand_session() -> Response:
        return hand_written(_SESSION.post)

    @app.post("/hand/plain")
    @login_required
    def hand_plain() -> Response:
        return hand_written(requests.post)

    return app


def create_server() -> Any:
    app: Any = create_app()
    ttl = float(os.environ.get("BENCH_CACHED_TTL") or 0)
    if ttl > 0:
        from werkzeug.middleware.dispatcher import DispatcherMiddleware

        app = DispatcherMiddleware(app, {"/cached": create_app(APPINBOX_TOKEN_CACHE_TTL=ttl)})
    ready_dir = os.environ.get("BENCH_READY_DIR")
    if ready_dir:  # tells the harness this worker has built the app
        open(os.path.join(ready_dir, str(os.getpid())), "w").close()
    return app
