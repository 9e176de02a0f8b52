"""The ``loopback_server`` fixture (a pytest plugin, see tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelzoo.testing.server import LoopbackServer


@pytest.fixture
def loopback_server() -> Iterator[LoopbackServer]:
    """A started :class:`~modelzoo.testing.server.LoopbackServer`; stopped after the test."""
    server = LoopbackServer().start()
    try:
        yield server
    finally:
        server.stop()
