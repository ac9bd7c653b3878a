"""Shared test fixtures. Tests run offline, on CPU, and fast."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# the test helpers (claim_checks, fixtures_real_formats) live beside this file; the tests, in folders that mirror
# xmr_lib's layers, import them by name
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """An isolated run folder for runs.record / Checkpoint."""
    d = tmp_path / "run"
    monkeypatch.setenv("XMR_RUN_DIR", str(d))
    monkeypatch.setenv("XMR_NOTEBOOK", "00_test")
    return d


@pytest.fixture
def loopback_http():
    """Serve with a request handler class on 127.0.0.1 (a free port) in a background thread:
    ``url = loopback_http(Handler)`` gives ``"http://127.0.0.1:PORT"``. Every server started is shut down after
    the test (after the teardown of any fixture that uses this one, so such a fixture can first release handlers
    that are still waiting). The download tests serve their fake archives and weight files this way."""
    import threading
    from http.server import ThreadingHTTPServer

    started = []

    def serve(handler) -> str:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        started.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield serve
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


# ---------------------------------------------------------------------------------------------------------------
# socket guard: no test may reach the network. Loopback (the local HTTP servers of the download tests, Jupyter
# kernels' ZeroMQ ports) and Unix sockets stay allowed; anything else fails at once with a clear error, before a
# packet is sent (host names other than localhost are not even resolved). Child processes are not covered.

import ipaddress  # noqa: E402
import socket  # noqa: E402

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_SAVED: dict = {}


class NetworkBlockedInTests(ConnectionRefusedError):
    """Raised by the test suite's socket guard (tests/conftest.py) for a non-loopback address."""


def _is_loopback(host) -> bool:
    if host is None or host == "":
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%")[0]
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refuse(what, host):
    raise NetworkBlockedInTests(
        f"tests must not reach the network: {what} {host!r} refused by the socket guard in "
        "tests/conftest.py (only 127.0.0.1 / ::1 / localhost are allowed; serve test data "
        "from a local http.server)"
    )


def _guard_connect(orig):
    def connect(self, address, *a, **k):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            _refuse("connect to", address[0])
        return orig(self, address, *a, **k)

    return connect


def _guard_resolve(orig, what):
    def resolve(host, *a, **k):
        if not _is_loopback(host):
            _refuse(what, host)
        return orig(host, *a, **k)

    return resolve


def pytest_configure(config):
    if _SAVED:
        return
    _SAVED.update(
        connect=socket.socket.connect,
        connect_ex=socket.socket.connect_ex,
        getaddrinfo=socket.getaddrinfo,
        gethostbyname=socket.gethostbyname,
        gethostbyname_ex=socket.gethostbyname_ex,
    )
    socket.socket.connect = _guard_connect(_SAVED["connect"])
    socket.socket.connect_ex = _guard_connect(_SAVED["connect_ex"])
    socket.getaddrinfo = _guard_resolve(_SAVED["getaddrinfo"], "resolving")
    socket.gethostbyname = _guard_resolve(_SAVED["gethostbyname"], "resolving")
    socket.gethostbyname_ex = _guard_resolve(_SAVED["gethostbyname_ex"], "resolving")


def pytest_unconfigure(config):
    if not _SAVED:
        return
    socket.socket.connect, socket.socket.connect_ex = _SAVED["connect"], _SAVED["connect_ex"]
    socket.getaddrinfo, socket.gethostbyname = _SAVED["getaddrinfo"], _SAVED["gethostbyname"]
    socket.gethostbyname_ex = _SAVED["gethostbyname_ex"]
    _SAVED.clear()


@pytest.fixture
def network_blocked_error():
    """The exception the socket guard raises (a fixture: ``from conftest import`` may find tests/chapters/conftest.py,
    both being the module ``conftest``)."""
    return NetworkBlockedInTests
