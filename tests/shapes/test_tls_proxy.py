"""The token endpoint behind a TLS-terminating nginx in front of gunicorn, with Chromium on https.

The demo site (on the sandbox) runs under gunicorn with one worker, behind an nginx of the
test's own that ends TLS on a self-signed certificate for 127.0.0.1 and passes
``Host``, ``X-Forwarded-Proto`` and ``X-Forwarded-For`` on. Two shapes:

- ``untrusted-proxy``: gunicorn does not trust nginx's forwarded headers, so the app sees
  ``http`` while the browser is on ``https`` (a site without ProxyFix). This is the shape in
  which a same-origin check that compared the ``Origin``'s scheme with the app's refused
  every browser call with 403;
- ``trusted-proxy``: gunicorn trusts 127.0.0.1, so the app sees ``https``.

In both, Chromium logs in over https, the bell gets its token (200, never a 403), and a
client without ``Sec-Fetch-Site`` is served on its own origin and refused on another.
"""
from __future__ import annotations

import os
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _harness
import pytest
import requests

from .conftest import free_port, need, running

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TOKEN_PATH = "/appinbox/token"
BADGE = "#appinbox-bell [data-appinbox=badge]"
DEMO_EMAIL, DEMO_PASSWORD = "demo@example.com", "demo"
TIMEOUT = 10.0  # seconds, for every request and every browser wait

#: shape -> (gunicorn's --forwarded-allow-ips, the scheme the app must see)
SHAPES = {
    "untrusted-proxy": ("10.255.255.1", "http"),  # not nginx's address: X-Forwarded-Proto is ignored
    "trusted-proxy": ("127.0.0.1", "https"),
}

#: The demo for gunicorn, plus what the harness waits for (``/ping``, the ready file) and
#: ``/shape``: the scheme and host the app sees, and what reached the token endpoint.
WRAPPER = '''
from __future__ import annotations

import os
from typing import Any

from flask import Response, jsonify, request

for _key in list(os.environ):
    if _key.startswith("APPINBOX_"):
        del os.environ[_key]  # the sandbox, whatever the environment says

import demo

SEEN: list[dict[str, Any]] = []


def create_server() -> Any:
    app = demo.create_app()
    assert app.config["APPINBOX_SANDBOX"] is True
    # The demo refuses cross-site POSTs itself, before any view; drop that guard so
    # that the endpoint's own same-origin check is what answers here.
    app.before_request_funcs[None].remove(demo._refuse_cross_site_posts)

    @app.after_request
    def record(response: Response) -> Response:
        if request.path == "/appinbox/token":
            SEEN.append({"status": response.status_code, "scheme": request.scheme, "host": request.host,
                         "origin": request.headers.get("Origin"),
                         "sec_fetch_site": request.headers.get("Sec-Fetch-Site"),
                         "x_forwarded_proto": request.headers.get("X-Forwarded-Proto")})
        return response

    @app.get("/ping")
    def ping() -> Response:
        return jsonify(ok=True)

    @app.get("/shape")
    def shape() -> Response:
        return jsonify(scheme=request.scheme, host=request.host, seen=SEEN)

    ready_dir = os.environ.get("BENCH_READY_DIR")
    if ready_dir:
        open(os.path.join(ready_dir, str(os.getpid())), "w").close()
    return app
'''

NGINX_CONF = """\
{user}worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/nginx-access.log;
    client_body_temp_path {tmp}/client_body_temp;
    proxy_temp_path {tmp}/proxy_temp;
    fastcgi_temp_path {tmp}/fastcgi_temp;
    uwsgi_temp_path {tmp}/uwsgi_temp;
    scgi_temp_path {tmp}/scgi_temp;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 5s;
            proxy_read_timeout 15s;
        }}
    }}
}}
"""


@dataclass(frozen=True)
class Site:
    """The demo behind nginx: its https URL, the certificate to trust, and the scheme the app sees."""

    shape: str
    url: str
    crt: Path
    app_scheme: str

    def session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # no proxy from the environment: loopback only
        session.verify = str(self.crt)
        return session

    def seen(self) -> dict[str, Any]:
        """What the app saw: ``scheme``, ``host``, and ``seen``, a record of every token request."""
        with self.session() as s:
            response = s.get(self.url + "/shape", timeout=TIMEOUT)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


def self_signed(openssl: str, where: Path) -> tuple[Path, Path]:
    crt, key = where / "localhost.crt", where / "localhost.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True, timeout=30)
    return crt, key


@pytest.fixture(scope="module", params=list(SHAPES))
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    nginx, openssl = need("nginx"), need("openssl")
    shape: str = request.param
    allowed_ips, app_scheme = SHAPES[shape]
    tmp = tmp_path_factory.mktemp(f"tls-{shape}")
    crt, key = self_signed(openssl, tmp)
    (tmp / "shape_demo.py").write_text(textwrap.dedent(WRAPPER))
    args = ["--pythonpath", f"{tmp},{EXAMPLES}", "--forwarded-allow-ips", allowed_ips]
    with _harness.gunicorn({}, workers=1, threads=4, app="shape_demo:create_server()", args=args) as server:
        upstream = int(server.url.rsplit(":", 1)[1])
        port = free_port()
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(
            user="user root;\n" if os.geteuid() == 0 else "",  # workers as root may read tmp (mode 0700)
            tmp=tmp, port=port, crt=crt, key=key, upstream=upstream))
        cmd = [nginx, "-c", str(conf), "-p", str(tmp), "-e", str(tmp / "nginx-error.log"),
               "-g", "daemon off; master_process on;"]
        with running(cmd, port, "nginx", tmp / "nginx.log"):
            yield Site(shape, f"https://127.0.0.1:{port}", crt, app_scheme)


def test_the_proxy_shape_is_the_one_claimed(site: Site) -> None:
    seen = site.seen()
    assert seen["scheme"] == site.app_scheme
    assert seen["host"] == site.url.removeprefix("https://")  # nginx passes the browser's Host on


def test_chromium_on_https_gets_its_token(site: Site, browser: Any) -> None:
    from playwright.sync_api import expect

    before = len(site.seen()["seen"])  # token calls of other tests on this server
    context = browser.new_context(ignore_https_errors=True, base_url=site.url)
    context.set_default_timeout(TIMEOUT * 1000)
    try:
        page = context.new_page()
        answers: list[tuple[str, int]] = []
        page.on("response", lambda r: answers.append((r.url, r.status)))
        page.goto("/login")
        page.fill("input[name=email]", DEMO_EMAIL)
        page.fill("input[name=password]", DEMO_PASSWORD)
        with page.expect_response(lambda r: r.url.endswith(TOKEN_PATH)) as first_token:
            page.click("form.login button[type=submit]")
            page.wait_for_url("**/")
        # The old check answered 403 here. (No response.text(): it can wait for ever on such an answer.)
        assert first_token.value.status == 200, f"the token endpoint answered {first_token.value.status}"
        expect(page.locator(BADGE)).to_have_text("2", timeout=TIMEOUT * 1000)  # two unread seeded messages
        assert page.evaluate("location.protocol") == "https:"
    finally:
        context.close()

    tokens = [status for url, status in answers if url.endswith(TOKEN_PATH)]
    assert tokens and set(tokens) == {200}, answers
    assert not [(url, status) for url, status in answers if status == 403]
    calls = site.seen()["seen"][before:]
    assert calls and all(c["status"] == 200 for c in calls), calls
    # The app saw the shape's scheme and the browser's host and port, while Chromium was on https.
    assert {c["scheme"] for c in calls} == {site.app_scheme}
    assert {c["host"] for c in calls} == {site.url.removeprefix("https://")}
    assert {c["x_forwarded_proto"] for c in calls} == {"https"}
    # What Chromium sends on https, cert error ignored: its https origin and Sec-Fetch-Site.
    assert {c["origin"] for c in calls} == {site.url}
    assert {c["sec_fetch_site"] for c in calls} == {"same-origin"}


def test_origin_rule_through_nginx(site: Site) -> None:
    with site.session() as s:
        login = s.post(site.url + "/login", data={"email": DEMO_EMAIL, "password": DEMO_PASSWORD}, timeout=TIMEOUT)
        assert login.status_code == 200 and login.url == site.url + "/", login.url
        assert s.cookies.get("session")

        def token(**headers: str) -> requests.Response:
            return s.post(site.url + TOKEN_PATH, json={"renew": False}, headers=headers, timeout=TIMEOUT)

        # An older browser: Origin only, no Sec-Fetch-Site; https although the app may see http.
        own = token(Origin=site.url)
        assert own.status_code == 200, own.text
        assert own.json()["token"]
        assert own.headers["Cache-Control"] == "no-store"

        other = token(Origin="https://evil.example")
        assert (other.status_code, other.json()) == (403, {"error": "cross_site_request"})

        cross = token(**{"Origin": site.url, "Sec-Fetch-Site": "cross-site"})
        assert (cross.status_code, cross.json()) == (403, {"error": "cross_site_request"})
