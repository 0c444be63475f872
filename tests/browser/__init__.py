"""Browser tests (a package, so that its conftest does not displace tests/conftest.py)."""
