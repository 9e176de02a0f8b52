"""Synthetic dataset trees shared by the dataset tests.

Read-only trees are written once per session (a few tenths of a second each);
tests that damage a tree write their own with ``fresh_tree``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from modelzoo.testing import synthetic

# (fixture id, writer name, writer kwargs, path of the versioned folder under the root)
LAYOUTS = {
    "market": ("market1501", {}, "market1501/Market-1501-v15.09.15"),
    "market-unversioned": ("market1501", {"versioned": False}, "market1501"),
    "duke": ("dukemtmcreid", {}, "dukemtmc-reid/DukeMTMC-reID"),
    "msmt-v1": ("msmt17", {"version": "V1"}, "msmt17/MSMT17_V1"),
    "msmt-v2": ("msmt17", {"version": "V2"}, "msmt17/MSMT17_V2"),
}


@pytest.fixture(scope="session")
def synthetic_roots(tmp_path_factory) -> dict[str, Path]:
    """One untouched synthetic tree per layout, keyed like :data:`LAYOUTS`."""
    roots = {}
    for key, (name, kwargs, _) in LAYOUTS.items():
        roots[key] = synthetic.write_dataset(name, tmp_path_factory.mktemp(key), **kwargs)
    return roots


@pytest.fixture
def fresh_tree(tmp_path) -> Callable[..., Path]:
    """Write a synthetic tree of ``name`` into this test's tmp_path (safe to damage)."""
    counter = iter(range(1000))

    def write(name: str, **kwargs) -> Path:
        return synthetic.write_dataset(name, tmp_path / f"root{next(counter)}", **kwargs)

    return write
