"""Sphinx configuration: ``python -m sphinx -W -b html docs docs/_build/html`` (warnings are errors, in CI too)."""
import importlib.metadata

project = "Flask-AppInbox"
copyright = "2026, the Flask-AppInbox authors"
release = importlib.metadata.version("Flask-AppInbox")
version = release
extensions = ["sphinx.ext.autodoc", "sphinx.ext.intersphinx"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}  # no network: no external inventories
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = ["_static"]  # custom.css (alabaster links it by itself): long table cells wrap
html_theme_options = {"description": "eSputnik's App Inbox for Flask", "fixed_sidebar": False}
