"""The store: the only read path of a cached checkpoint, its safetensors copy, and one read per cold download."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modelzoo import config, fetch
from modelzoo.formats import checkpoint_file
from modelzoo.testing import checkpoints as ckptgen
from tests.fetch.helpers import FAST, bare_checkpoint, cached, zip_checkpoint


def assert_same(actual: dict, expected: dict) -> None:
    assert list(actual) == list(expected)
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype, key
        assert torch.equal(actual[key], value), key


def count_reads(monkeypatch) -> list[Path]:
    """Every weights file the format layer reads from now on."""
    reads: list[Path] = []
    original = checkpoint_file.read_checkpoint

    def counting(path, *args, **kwargs):
        reads.append(Path(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr("modelzoo.fetch.store.read_checkpoint", counting)
    return reads


def test_admitting_a_file_writes_the_copy_and_later_loads_read_only_the_copy(tmp_path, state, monkeypatch):
    store = cached(state, folder=tmp_path, vintage="py2")
    path = store.weights_path()
    copy = store.copy_path(path)
    assert copy.is_file() and copy.name == path.name + ".safetensors"
    reads = count_reads(monkeypatch)
    loaded = store.load()
    assert reads == [] and loaded.path == path
    assert_same(loaded.content.state_dict, state)
    assert loaded.content.training_record == {"epoch": 60, "rank1": 0.474}


def test_a_cold_load_reads_the_downloaded_file_once(tmp_path, state, monkeypatch):
    ckptgen.write_for_checkpoint(zip_checkpoint(), tmp_path, state)
    reads = count_reads(monkeypatch)
    loaded = fetch.load_checkpoint(zip_checkpoint(), config.fetch_settings(mirrors=[str(tmp_path)]),
                                   progress=False, options=FAST)
    assert len(reads) == 1  # the extracted weights, while they were checked
    assert_same(loaded.content.state_dict, state)
    warm = fetch.load_checkpoint(zip_checkpoint(), config.fetch_settings(), progress=False)
    assert len(reads) == 1  # the warm load read the safetensors copy
    assert_same(warm.content.state_dict, state)


def test_a_stale_or_damaged_copy_is_rebuilt(tmp_path, state):
    store = cached(state, folder=tmp_path)
    copy = store.copy_path(store.weights_path())
    copy.write_bytes(b"garbage")
    assert_same(store.load().content.state_dict, state)
    assert copy.stat().st_size > 100  # rebuilt under the lock
    other = ckptgen.toy_state_dict(seed=9)
    fetch.clear_cache(store.checkpoint, forget_hashes=True)
    store = cached(other, folder=tmp_path / "again")  # new weights: the copy of the old ones is replaced
    assert_same(store.load().content.state_dict, other)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc/self/maps")
def test_cached_tensors_are_read_into_memory_not_mapped_from_the_cache_file(tmp_path):
    state = {"a": torch.randn(300, 300), "b": torch.randn(7)}
    store = cached(state, folder=tmp_path, vintage="bare")
    loaded = store.load().content.state_dict
    mapped_files = [line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines()
                    if len(line.split()) >= 6]
    assert str(store.copy_path(store.weights_path())) not in mapped_files
    loaded["a"].add_(1)  # writable, and not the cache's bytes
    torch.testing.assert_close(store.load().content.state_dict["a"] + 1, loaded["a"])


def test_read_into_fills_matching_tensors_and_refuses_others(tmp_path, state):
    store = cached(state, folder=tmp_path)
    targets = {key: torch.zeros_like(value) for key, value in state.items()}
    assert store.read_into(targets)
    assert_same(targets, state)
    wrong = dict(targets, extra=torch.zeros(1))
    assert not store.read_into(wrong)
    assert not cached(state, checkpoint=bare_checkpoint()).read_into({"x": torch.zeros(2)})
