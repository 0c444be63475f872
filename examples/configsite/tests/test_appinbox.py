"""App Inbox on the sandbox (APPINBOX_SANDBOX = True in a test Config): the bell, the script, the token."""
from conftest import log_in

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}  # what a browser sends with the page's own fetch()


def test_logged_in_page_has_the_bell_and_the_script(sandbox_app):
    client = sandbox_app.test_client()
    log_in(client)
    page = client.get("/index", headers={"Accept-Language": "es"}).text
    assert '<div id="appinbox-bell" class="nav-item"></div>' in page
    assert '"/appinbox/sandbox/loader.js"' in page
    assert "eS('init', {\"APP_INBOX\": true}" in page
    assert '"/appinbox/token"' in page
    assert 'language: "es"' in page  # Flask-Babel's locale for this request


def test_visitors_get_no_script(sandbox_app):
    page = sandbox_app.test_client().get("/auth/login").text
    assert "appinbox-bell" not in page
    assert "<script" not in page


def test_token_for_the_logged_in_user(sandbox_app):
    client = sandbox_app.test_client()
    log_in(client)
    answer = client.post("/appinbox/token", json={"renew": False}, headers=SAME_ORIGIN)
    assert answer.status_code == 200
    assert isinstance(answer.json["token"], str) and answer.json["token"]
    assert answer.headers["Cache-Control"] == "no-store"


def test_token_needs_a_user_and_the_same_origin(sandbox_app):
    client = sandbox_app.test_client()
    assert client.post("/appinbox/token", json={"renew": False}, headers=SAME_ORIGIN).status_code == 401
    log_in(client)
    answer = client.post("/appinbox/token", json={"renew": False}, headers={"Sec-Fetch-Site": "cross-site"})
    assert (answer.status_code, answer.json["error"]) == (403, "cross_site_request")
    answer = client.post("/appinbox/token", json={"renew": False}, headers={"Origin": "http://localhost"})
    assert answer.status_code == 200


def test_appinbox_check_on_the_sandbox(sandbox_app):
    result = sandbox_app.test_cli_runner().invoke(args=["appinbox", "check", "--email", "susan@example.com"])
    assert result.exit_code == 0, result.output
    assert "the sandbox issued a token" in result.output
