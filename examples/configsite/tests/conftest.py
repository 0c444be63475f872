import pytest
from app import create_app
from config import Config


class TestConfig(Config):
    TESTING = True
    SECRET_KEY = "test-only"  # noqa: S105


class SandboxConfig(TestConfig):
    APPINBOX_SANDBOX = True  # App Inbox on the extension's local stand-in for eSputnik: no account, no network


@pytest.fixture
def app():
    return create_app(TestConfig)


@pytest.fixture
def sandbox_app():
    return create_app(SandboxConfig)


def log_in(client, username="susan", password="cat"):  # noqa: S107
    return client.post("/auth/login", data={"username": username, "password": password})
