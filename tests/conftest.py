"""Shared pytest configuration: a fresh cache and no stray mirrors for every test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # so tests can `import oracle`, `import weights`


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    """Every test gets its own cache root; no mirror or offline flag leaks in."""
    monkeypatch.setenv("MODELZOO_HOME", str(tmp_path_factory.mktemp("modelzoo_home")))
    for name in ("MODELZOO_MIRROR", "MODELZOO_OFFLINE", "HF_HUB_OFFLINE", "MODELZOO_GDRIVE_URL"):
        monkeypatch.delenv(name, raising=False)
