"""Fixtures of the fetcher tests: the loopback server and the toy weights.

(tests/conftest.py already gives each test a fresh cache, points Google Drive at
a closed loopback port, refuses connections outside the loopback range and
provides the ``loopback_server`` fixture.)
"""

from __future__ import annotations

import pytest

from ckptgen import toy_state_dict


@pytest.fixture
def state():
    """The toy weights most tests download."""
    return toy_state_dict(seed=1)
