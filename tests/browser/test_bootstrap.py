"""The Bootstrap 5 navbar of docs/integrations.rst (examples/bootstrap5_navbar.html), measured in Chromium.

With the sandbox's bell drawn in it, the navbar is as high as without the bell, and its brand and links stay
where they were; the bell is drawn in the links' colour.
"""
from __future__ import annotations

import importlib.resources
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import unavailable
from flask import Flask, Response, abort, render_template_string

from .conftest import ROOT, sandbox_app
from .test_demo import BUTTON

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails with CI=true)
    expect = None

RECIPE = (ROOT / "examples" / "bootstrap5_navbar.html").read_text()
#: The navbar of the recipe, and the same navbar without the line that holds the bell.
NAVBARS = {
    "with-bell": RECIPE,
    "without-bell": "".join(line for line in RECIPE.splitlines(keepends=True) if "appinbox_bell(" not in line),
}
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Navbar</title>
<link rel="stylesheet" href="/bootstrap.min.css">
</head><body>
<!-- navbar -->
{{ appinbox_script() }}
</body></html>"""
#: Bootstrap 5's navbar: .5rem above and below a 40 px row of nav-links (a 24 px line and .5rem above and below).
NAVBAR_HEIGHT = 56
#: How far apart (px) the two navbars' measures may be.
SAME = 1


@pytest.fixture(scope="module")
def bootstrap_css() -> bytes:
    try:
        css = importlib.resources.files("flask_bootstrap") / "static/bootstrap5/css/bootstrap.min.css"
    except ModuleNotFoundError:
        unavailable("bootstrap-flask (Bootstrap 5's CSS) is not installed (pip install -r tests/requirements.txt)")
    return css.read_bytes()


def make_app(bootstrap_css: bytes) -> Flask:
    app = sandbox_app()

    @app.get("/")
    def index() -> str:
        return "logged in"

    @app.get("/bootstrap.min.css")
    def bootstrap() -> Response:
        return Response(bootstrap_css, mimetype="text/css")

    @app.get("/<navbar>")
    def page(navbar: str) -> str:
        if navbar not in NAVBARS:
            abort(404)
        return render_template_string(PAGE.replace("<!-- navbar -->", NAVBARS[navbar]))

    return app


@pytest.fixture
def page(browser: Any, bootstrap_css: bytes, served: Callable[[Flask], str]) -> Iterator[Any]:
    context = browser.new_context(base_url=served(make_app(bootstrap_css)), viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.goto("/login")
        yield page
    finally:
        context.close()


def measure(page: Any) -> dict[str, Any]:
    """The navbar's height, and the tops of its brand and links, in px."""
    links = page.locator("nav.navbar a.nav-link")
    assert links.count() == 3
    return {
        "navbar": page.locator("nav.navbar").bounding_box()["height"],
        "brand": page.locator("nav.navbar .navbar-brand").bounding_box()["y"],
        "links": {link.text_content(): link.bounding_box()["y"] for link in links.all()},
    }


def test_the_bell_keeps_the_navbars_height_and_its_links_places(page: Any) -> None:
    page.goto("/without-bell")
    without = measure(page)
    assert without["navbar"] == NAVBAR_HEIGHT  # Bootstrap's CSS is in force

    page.goto("/with-bell")
    bell = page.locator(BUTTON)
    expect(bell).to_be_visible()
    found = measure(page)
    assert abs(found["navbar"] - without["navbar"]) <= SAME, f"the navbar is {found['navbar']} px high, " \
        f"{without['navbar']} px without the bell"
    assert abs(found["brand"] - without["brand"]) <= SAME, (found["brand"], without["brand"])
    for name, before in without["links"].items():
        top = found["links"][name]
        assert abs(top - before) <= SAME, f"{name} is at y={top}, at y={before} without the bell"

    navbar = page.locator("nav.navbar").bounding_box()
    box = bell.bounding_box()
    assert navbar["y"] <= box["y"] and box["y"] + box["height"] <= navbar["y"] + navbar["height"]
    assert navbar["x"] <= box["x"] and box["x"] + box["width"] <= navbar["x"] + navbar["width"]
    link = page.locator("nav.navbar a.nav-link").first.bounding_box()
    assert abs((box["y"] + box["height"] / 2) - (link["y"] + link["height"] / 2)) <= SAME  # on the links' line


def test_the_bell_takes_the_links_colour(page: Any) -> None:
    """On a dark navbar the sandbox's bell is drawn in the nav-links' light colour, not in a dark one of its own."""
    page.goto("/with-bell")
    expect(page.locator(BUTTON)).to_be_visible()
    colour = "e => getComputedStyle(e).color"
    link = page.eval_on_selector("nav.navbar a.nav-link", colour)
    assert link == "rgba(255, 255, 255, 0.55)"  # Bootstrap 5's navbar-dark link colour
    assert page.eval_on_selector(BUTTON, colour) == link
