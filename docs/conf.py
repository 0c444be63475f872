"""Sphinx configuration: ``sphinx-build -W -b html docs docs/_build`` (warnings are errors, in CI too)."""
import importlib.metadata

project = "Flask-AppInbox"
copyright = "2026, the Flask-AppInbox authors"
release = importlib.metadata.version("Flask-AppInbox")
extensions = ["sphinx.ext.autodoc", "sphinx.ext.intersphinx"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}  # no network: no external inventories
exclude_patterns = ["_build"]
html_theme = "alabaster"
