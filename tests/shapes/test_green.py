"""Green threads: gunicorn's gevent worker (the app imported before and after gevent
patches), and eventlet's monkey patching, against a healthy, a hanging and a trickling
eSputnik (the fake in a process of its own)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import _harness
import pytest
import requests

from ._faults import BUDGET, CALLS, RETRIES, SLACK, TIMEOUT, faults, settings
from .conftest import ROOT

pytest.importorskip("gevent")  # part of the test extra


@pytest.mark.parametrize("preload", [False, True], ids=["patched-before-import", "preloaded"])
def test_gevent_worker(preload: bool) -> None:
    with _harness.fake_esputnik(trickle_every=0.1) as fake, \
            _harness.gunicorn(settings(fake.api_url), workers=1, threads=100, worker_class="gevent",
                              preload=preload) as server:
        faults(server.url, fake, f"gevent worker, {'preloaded' if preload else 'patched before import'}")
        health = server.health()
        log = server.log()
    assert health["crashes"] == 0 and health["tracebacks"] == 0, (health, log[-3000:])
    assert "internal_error" not in log


GREEN_SCRIPT = """
import json, sys, time
kind, api_url, timeout, retries, calls = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
if kind == "eventlet":
    import eventlet
    eventlet.monkey_patch()
    spawn = lambda f: eventlet.spawn(f)
    join = lambda g: g.wait()
else:
    import flask_appinbox  # imported first: patched afterwards, as with gunicorn --preload
    from gevent import monkey
    monkey.patch_all()
    import gevent
    spawn = gevent.spawn
    join = lambda g: g.get()
from flask_appinbox import Contact, EsputnikClient, UpstreamError

client = EsputnikClient("k", api_url, timeout=timeout, retries=int(retries))
def one(i):
    start = time.monotonic()
    try:
        outcome = "token" if client.contact_token(Contact(email=f"u{i}@example.com")) else "empty"
    except UpstreamError as exc:
        outcome = exc.error
    return outcome, time.monotonic() - start
print(json.dumps([join(g) for g in [spawn(lambda i=i: one(i)) for i in range(int(calls))]]))
"""


@pytest.mark.parametrize("kind", ["eventlet", "gevent-after-import"])
@pytest.mark.parametrize("mode", ["healthy", "hang", "trickle"])
def test_monkey_patched_client(kind: str, mode: str) -> None:
    if kind == "eventlet":
        pytest.importorskip("eventlet")
    with _harness.fake_esputnik(mode=mode, trickle_every=0.1) as fake:
        done = subprocess.run([sys.executable, "-c", GREEN_SCRIPT, kind, fake.api_url,
                               *map(str, (TIMEOUT, RETRIES, CALLS))], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    expected = "token" if mode == "healthy" else "upstream_timeout"
    assert [outcome for outcome, _ in results] == [expected] * CALLS, results
    assert max(elapsed for _, elapsed in results) <= BUDGET + SLACK, results
    print(f"\n{kind}, eSputnik {mode}: {CALLS} calls, slowest {max(e for _, e in results):.2f} s "
          f"(budget {BUDGET:.1f} s)")


def test_the_fake_trickles() -> None:
    """The trickling fake really keeps a plain ``requests`` call going past any read timeout."""
    with _harness.fake_esputnik(mode="trickle", trickle_every=0.1) as fake:
        start = time.monotonic()
        with pytest.raises(requests.RequestException):
            # 0.5 s per read never fires; only the end of the fake's trickle (it stops at mode change) would
            with requests.post(fake.api_url + "/v1/auth/contact/token", auth=("u", "k"), json={"email": "a@b.co"},
                               timeout=0.5, stream=True) as response:
                for _ in response.iter_content(1):
                    if time.monotonic() - start > 2 * BUDGET:
                        raise requests.ConnectionError("still trickling")
    assert time.monotonic() - start > 2 * BUDGET
