"""An outbound HTTP proxy (``HTTP_PROXY``/``HTTPS_PROXY``): Debian's tinyproxy in front of the
fake eSputnik, plain http and https through a CONNECT tunnel, healthy, hanging and trickling."""
from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import _harness
import pytest

from flask_appinbox import Contact, EsputnikClient, UpstreamTimeout

from .conftest import free_port, need, running

TIMEOUT, RETRIES = 0.5, 2
BUDGET = (RETRIES + 1) * TIMEOUT + RETRIES * 1.0  # the backoff cap is at most 1 s (0.2's default)
SLACK = 0.5


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """tinyproxy on a free loopback port: its URL and its log."""
    tinyproxy = need("tinyproxy")
    port = free_port()
    conf = tmp_path / "tinyproxy.conf"
    # CONNECT is allowed to any port (no ConnectPort line): the fake listens on a free one.
    conf.write_text(f"Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 600\nMaxClients 64\nLogLevel Info\n")
    log = tmp_path / "tinyproxy.log"
    with running([tinyproxy, "-d", "-c", str(conf)], port, "tinyproxy", log):
        yield f"http://127.0.0.1:{port}", log


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    openssl = need("openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("mode", ["healthy", "hang", "trickle"])
def test_through_a_forward_proxy(scheme: str, mode: str, proxy: tuple[str, Path], certificate: tuple[str, str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    proxy_url, log = proxy
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    monkeypatch.setenv("HTTPS_PROXY", proxy_url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certificate[0])  # the fake's self-signed certificate
    with _harness.fake_esputnik(mode=mode, trickle_every=0.05, tls=certificate if scheme == "https" else None) as fake:
        assert fake.api_url.startswith(f"{scheme}://")
        client = EsputnikClient("k", fake.api_url, timeout=TIMEOUT, retries=RETRIES)
        try:
            start = time.monotonic()
            if mode == "healthy":
                assert client.contact_token(Contact(email="a@example.com")).startswith("esk.")
            else:
                with pytest.raises(UpstreamTimeout):
                    client.contact_token(Contact(email="a@example.com"))
            elapsed = time.monotonic() - start
        finally:
            client.close()
        held = fake.stats()["outcomes"]
    # The call went through the proxy: tinyproxy logged it (CONNECT for https).
    said = log.read_text(errors="replace")
    assert (f"CONNECT 127.0.0.1:{fake.api_url.split(':')[2].split('/')[0]}" in said if scheme == "https"
            else f"POST {fake.api_url}/v1/auth/contact/token" in said), said[-2000:]
    if mode != "healthy":
        assert held.get(mode, 0) >= 1, held  # the fake really held the call
        assert elapsed <= BUDGET + SLACK, elapsed
        print(f"\ntinyproxy, {scheme}, eSputnik {mode}: {elapsed:.2f} s (budget {BUDGET:.1f} s)")
