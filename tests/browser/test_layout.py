"""Where the sandbox's bell and panel land on a page, measured in Chromium.

The bell sits on the line of its neighbours in an inline or a flex header, and its panel
opens inside the viewport wherever the bell is (left edge, middle, right edge, the corner),
on a desktop and on a 375 px phone. The demo works on the phone too.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, abort, render_template_string

from .conftest import sandbox_app
from .test_demo import BUTTON, MESSAGES, log_in

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails with CI=true)
    expect = None

VIEWPORTS = {
    "desktop": {"width": 1280, "height": 800},
    "phone": {"width": 375, "height": 667},
}
PANEL = "[data-appinbox=panel]"
#: How far apart (px) the vertical centres of the bell and of its neighbours may be.
SAME_LINE = 3
#: Where the bell goes among the header's links, and how the header aligns them.
ITEMS = {
    "left": ["bell", "Home", "Orders"],
    "middle": ["Home", "bell", "Orders"],
    "right": ["Home", "Orders", "bell"],
}
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Layout</title>
<style>
  body { margin: 0; font: 16px/1.5 sans-serif; }
  header, footer { padding: 8px 16px; border-bottom: 1px solid #ccc; }
  main.long { height: 2000px; }
  .flex { display: flex; align-items: center; gap: 12px; }
  .flex.middle { justify-content: center; }
  .flex.right { justify-content: flex-end; }
  .inline.middle { text-align: center; }
  .inline.right { text-align: right; }
  {{ extra_css }}
</style></head>
<body>
{% macro row(tag) %}<{{ tag }} class="{{ kind }} {{ where }}">
  {% for item in items %}
    {% if item == "bell" %}{{ appinbox_bell() }}{% else %}<a class="neighbour" href="#">{{ item }}</a>{% endif %}
  {% endfor %}
</{{ tag }}>{% endmacro %}
{% if items and not footer %}{{ row("header") }}{% endif %}
<main{% if footer %} class="long"{% endif %}><p>A page with App Inbox.</p></main>
{% if footer %}{{ row("footer") }}{% endif %}
{{ appinbox_script() }}
</body></html>"""


def make_app() -> Flask:
    app = sandbox_app()

    @app.get("/")
    def index() -> str:
        return "logged in"

    @app.get("/<kind>/<where>")
    def header(kind: str, where: str) -> str:
        if kind not in ("inline", "flex") or where not in ITEMS:
            abort(404)
        return render_template_string(PAGE, kind=kind, where=where, items=ITEMS[where])

    @app.get("/styled")
    def styled() -> str:  # a site that decides how its placeholder is displayed
        return render_template_string(PAGE, kind="flex", where="left", items=ITEMS["left"],
                                      extra_css="#appinbox-bell { display: flex; }")

    @app.get("/footer")
    def footer() -> str:  # at the end of a long page
        return render_template_string(PAGE, kind="flex", where="right", items=ITEMS["right"], footer=True)

    @app.get("/corner")
    def corner() -> str:
        return render_template_string(PAGE, items=None)  # no #appinbox-bell: the bell goes in a corner

    return app


@pytest.fixture
def site(served: Callable[[Flask], str]) -> str:
    return served(make_app())


@pytest.fixture
def context(browser: Any, site: str) -> Iterator[Any]:
    context = browser.new_context(base_url=site, viewport=VIEWPORTS["desktop"])
    try:
        yield context
    finally:
        context.close()


def open_page(context: Any, path: str, viewport: str) -> Any:
    page = context.new_page()
    page.set_viewport_size(VIEWPORTS[viewport])
    page.goto("/login")
    page.goto(path)
    expect(page.locator("[data-appinbox=button]")).to_be_visible()
    return page


def open_panel(page: Any) -> dict[str, float]:
    page.click("[data-appinbox=button]")
    expect(page.locator("[data-appinbox=message]")).to_have_count(3)
    return page.locator(PANEL).bounding_box()


def assert_inside_viewport(page: Any, box: dict[str, float], what: str) -> None:
    size = page.viewport_size
    right, bottom = box["x"] + box["width"], box["y"] + box["height"]
    where = f"{what} at x={box['x']:.0f}..{right:.0f}, y={box['y']:.0f}..{bottom:.0f}"
    assert box["x"] >= 0 and right <= size["width"], f"{where}; the viewport is {size['width']} wide"
    assert box["y"] >= 0 and bottom <= size["height"], f"{where}; the viewport is {size['height']} high"


def assert_no_horizontal_scroll(page: Any) -> None:
    width = page.viewport_size["width"]
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"the page is {scroll_width} px wide in a {width} px viewport"


def centre_y(box: dict[str, float]) -> float:
    return box["y"] + box["height"] / 2


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("where", list(ITEMS))
@pytest.mark.parametrize("kind", ["inline", "flex"])
def test_bell_in_a_header(context: Any, kind: str, where: str, viewport: str) -> None:
    page = open_page(context, f"/{kind}/{where}", viewport)

    # On the line of its neighbours: the placeholder does not break an inline row, and the bell is centred on it.
    bell = page.locator(BUTTON).bounding_box()
    for neighbour in page.locator(".neighbour").all():
        box = neighbour.bounding_box()
        assert abs(centre_y(bell) - centre_y(box)) <= SAME_LINE, (
            f"the bell's centre is at y={centre_y(bell):.1f}, {neighbour.text_content()!r}'s at y={centre_y(box):.1f}")
    header = page.locator("header").bounding_box()
    assert header["height"] <= bell["height"] + 2 * 8 + 1 + SAME_LINE  # one line: padding, border, the bell

    panel = open_panel(page)
    assert_inside_viewport(page, panel, "the panel")
    assert panel["y"] >= bell["y"] + bell["height"]  # below the bell, as before
    assert_no_horizontal_scroll(page)


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_bell_in_the_corner(context: Any, viewport: str) -> None:
    page = open_page(context, "/corner", viewport)
    bell = page.locator("[data-appinbox=button]").bounding_box()
    assert_inside_viewport(page, bell, "the bell")
    panel = open_panel(page)
    assert_inside_viewport(page, panel, "the panel")
    assert panel["y"] + panel["height"] <= bell["y"]  # above the bell, as before
    assert_no_horizontal_scroll(page)


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_bell_at_the_bottom_of_the_viewport(context: Any, viewport: str) -> None:
    page = open_page(context, "/footer", viewport)
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    bell = page.locator(BUTTON).bounding_box()
    assert bell["y"] + bell["height"] > page.viewport_size["height"] - 100  # no room under it
    panel = open_panel(page)
    assert_inside_viewport(page, panel, "the panel")
    assert panel["y"] + panel["height"] <= bell["y"]  # over the bell: there is room there


def test_an_open_panel_follows_a_resize(context: Any) -> None:
    page = open_page(context, "/flex/middle", "desktop")
    assert_inside_viewport(page, open_panel(page), "the panel")
    page.set_viewport_size(VIEWPORTS["phone"])
    page.wait_for_timeout(100)  # a resize event, then a layout
    assert_inside_viewport(page, page.locator(PANEL).bounding_box(), "the panel after the resize")
    page.set_viewport_size(VIEWPORTS["desktop"])
    page.wait_for_timeout(100)
    panel = page.locator(PANEL).bounding_box()
    assert_inside_viewport(page, panel, "the panel after the second resize")
    assert panel["width"] == 340  # its full width again


def test_a_site_that_styles_the_placeholder_keeps_its_display(context: Any) -> None:
    """Only a placeholder that the site's CSS leaves a plain block is made inline-block."""
    page = open_page(context, "/styled", "desktop")
    assert page.eval_on_selector("#appinbox-bell", "e => getComputedStyle(e).display") == "flex"
    assert page.eval_on_selector("#appinbox-bell", "e => e.style.display") == ""


# -- the demo on a phone -------------------------------------------------------------------


@pytest.fixture
def phone(monkeypatch: pytest.MonkeyPatch, demo_module: Any, browser: Any,
          served: Callable[[Flask], str]) -> Iterator[Any]:
    for key in list(os.environ):
        if key.startswith(("APPINBOX_", "FLASK_APPINBOX_")):
            monkeypatch.delenv(key)
    context = browser.new_context(base_url=served(demo_module.create_app()), viewport=VIEWPORTS["phone"])
    try:
        yield context.new_page()
    finally:
        context.close()


def assert_header_fits(page: Any) -> None:
    controls = page.locator("header a, header button")
    assert controls.count() >= 3
    for control in controls.all():
        expect(control).to_be_visible()
        box = control.bounding_box()
        assert box is not None and box["width"] > 0, control.text_content()
        assert_inside_viewport(page, box, repr(control.text_content().strip() or control.get_attribute("aria-label")))
    assert_no_horizontal_scroll(page)


def test_the_demo_on_a_phone(phone: Any) -> None:
    page = phone
    page.goto("/login")
    assert_header_fits(page)  # a visitor: the links and "Log in"

    log_in(page)
    expect(page.locator(BUTTON)).to_be_visible()
    expect(page.locator("header button[type=submit]")).to_have_text("Log out")
    assert_header_fits(page)  # with the bell and "Log out"
    page.click(BUTTON)
    expect(page.locator(MESSAGES)).to_have_count(3)
    assert_inside_viewport(page, page.locator(f"#appinbox-bell {PANEL}").bounding_box(), "the panel")
    assert_no_horizontal_scroll(page)

    page.goto("/about")
    assert_header_fits(page)
