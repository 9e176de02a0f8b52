"""Shared pytest configuration.

Every test gets a fresh cache, no stray mirror or offline flag, a Google Drive
endpoint on a closed loopback port, and a socket layer that refuses any
address outside the loopback range: the suite never reaches the internet,
even by mistake (a real QMUL or Drive URL fails at once instead of hanging).
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

pytest_plugins = ["tests.httpserver"]


def pytest_collection_modifyitems(config, items):
    """The one place ``cuda`` tests are skipped, with the reason, on a machine without a CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none on this machine); run on a GPU machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)  # the loopback_server fixture, for every test package

CLOSED_LOOPBACK_URL = "http://127.0.0.1:9/uc"  # port 9 (discard): nothing listens there


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    """Every test gets its own cache root; no mirror or offline flag leaks in."""
    monkeypatch.setenv("MODELZOO_HOME", str(tmp_path_factory.mktemp("modelzoo_home")))
    monkeypatch.setenv("MODELZOO_GDRIVE_URL", CLOSED_LOOPBACK_URL)
    for name in ("MODELZOO_MIRROR", "MODELZOO_OFFLINE", "HF_HUB_OFFLINE", "MODELZOO_MANIFEST_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def state():
    """Small toy weights (conv, BN, fc, classifier) that most format and fetch tests write."""
    from modelzoo.testing.checkpoints import toy_state_dict

    return toy_state_dict(seed=1)


@pytest.fixture
def mirror(tmp_path, monkeypatch) -> Path:
    """An empty local mirror folder, set as MODELZOO_MIRROR (tests write checkpoints into it)."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    monkeypatch.setenv("MODELZOO_MIRROR", str(folder))
    return folder


def _is_loopback(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX
        return True
    host = address[0]
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """Refuse connections to anything but 127.0.0.0/8 and ::1."""
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def connect(self, address):
        if not _is_loopback(address):
            raise ConnectionRefusedError(f"tests may only reach loopback addresses, not {address!r}")
        return original_connect(self, address)

    def connect_ex(self, address):
        if not _is_loopback(address):
            return 111  # ECONNREFUSED
        return original_connect_ex(self, address)

    original_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not _is_loopback((name, 0)):
            raise socket.gaierror(socket.EAI_NONAME, f"tests resolve only loopback names, not {name!r}")
        return original_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
