"""A damaged, tampered or shared cache: its records are data to check, never paths to trust."""

from __future__ import annotations

import json
import os
import struct

import pytest
import torch

from modelzoo import fetch
from modelzoo.errors import CacheError, DownloadError
from modelzoo.fetch.http import FetchOptions
from modelzoo.testing import checkpoints as ckptgen
from modelzoo.testing.server import drop_after
from tests.fetch.helpers import FAST, bare_checkpoint, cached, store_of, with_sources


def edit_record(store, **changes) -> None:
    path = store.folder / "record.json"
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


# --------------------------------------------------------------------------- record.json as a path


def test_a_record_naming_a_file_outside_its_folder_is_never_used_or_deleted(tmp_path, state):
    store = cached(state, folder=tmp_path / "src")
    weights = store.weights_path()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    outside = tmp_path / "outside.pth"
    outside.write_bytes(weights.read_bytes())  # the same size as the weights: the old size check passed
    edit_record(store, weights_file=os.path.relpath(outside, store.folder))
    assert fetch.cached_path(store.checkpoint) is None and store.load() is None
    edit_record(store, weights_file=os.path.relpath(victim, store.folder))
    cached(state, folder=tmp_path / "again")  # the next install used to rmtree what the record named
    assert (victim / "precious.txt").read_text() == "keep me" and outside.is_file()


@pytest.mark.parametrize("value", [None, 5, "", ".", "..", "a/b.pth", ".fetch-1-x", True, ["x"]])
def test_wrong_typed_or_unsafe_record_fields_mean_not_cached(tmp_path, state, value, capsys):
    from modelzoo.cli import main

    store = cached(state, folder=tmp_path)
    edit_record(store, weights_file=value)
    assert fetch.cached_path(store.checkpoint) is None
    assert fetch.list_cached() == [] and fetch.verify_cached() == []
    assert main(["cache", "path", store.checkpoint.name]) == 1
    assert main(["cache", "list"]) == 0 and main(["cache", "verify"]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_a_record_that_is_no_json_object_means_not_cached(tmp_path, state):
    store = cached(state, folder=tmp_path)
    for text in ("[1, 2]", "{", "\0\0", "{" * 100000 + "}" * 100000):
        (store.folder / "record.json").write_text(text)
        assert fetch.cached_path(store.checkpoint) is None


# --------------------------------------------------------------------------- planted links


def test_a_planted_link_at_the_partial_name_is_never_written_through(loopback_server, state, tmp_path):
    data = ckptgen.checkpoint_bytes(state, "torchreid-dict")
    url = loopback_server.serve("/w.pth.tar", data)
    checkpoint = with_sources(bare_checkpoint(), (url, "http", "checkpoint"))
    store = store_of(checkpoint)
    store.folder.mkdir(parents=True)
    from modelzoo.fetch.download import _source_key

    victim = tmp_path / "victim.txt"
    victim.write_text("someone else's file")
    partial = store.partial_path(_source_key(url))
    partial.symlink_to(victim)
    store.resume_record_path(partial).write_text(json.dumps({"validator": "x"}))
    path = fetch.download(checkpoint, progress=False, options=FAST)
    assert victim.read_text() == "someone else's file"
    assert not path.is_symlink() and path.is_file()


def test_a_partial_owned_by_another_user_is_not_resumed(loopback_server, state, monkeypatch):
    data = ckptgen.checkpoint_bytes(state, "torchreid-dict")
    url = loopback_server.serve("/w.pth.tar", data)
    checkpoint = with_sources(bare_checkpoint(), (url, "http", "checkpoint"))
    loopback_server.fail("/w.pth.tar", drop_after(len(data) // 2))
    with pytest.raises(DownloadError):
        fetch.download(checkpoint, progress=False, options=FetchOptions(retries=0, chunk_size=4096))
    real_uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real_uid + 1)  # now the partial looks like someone else's
    fetch.download(checkpoint, progress=False, options=FAST)
    assert loopback_server.requests_for("/w.pth.tar")[-1].range is None  # started from zero


# --------------------------------------------------------------------------- hashes.json


@pytest.mark.parametrize("text", ["{", "[]", '{"weights_sha256": 5}', ""])
def test_a_damaged_trust_file_stops_the_download(tmp_path, state, text):
    store = cached(state, folder=tmp_path)
    fetch.clear_cache(store.checkpoint)  # keeps hashes.json
    (store.folder / "hashes.json").write_text(text)
    other = ckptgen.toy_state_dict(seed=3)
    with pytest.raises(CacheError, match="--forget-hashes"):
        cached(other, folder=tmp_path / "other")
    assert store.weights_path() is None  # nothing was moved in


def test_a_wrong_shaped_trusted_entry_stops_before_anything_moves_in(tmp_path, state):
    store = cached(state, folder=tmp_path)
    fetch.clear_cache(store.checkpoint)
    hashes = json.loads((store.folder / "hashes.json").read_text())
    hashes["served"] = [{"sha256": "nope"}]
    (store.folder / "hashes.json").write_text(json.dumps(hashes))
    with pytest.raises(CacheError, match="damaged"):
        cached(state, folder=tmp_path / "again")
    assert store.weights_path() is None


# --------------------------------------------------------------------------- the safetensors copy


def flip_a_data_byte(copy) -> None:
    raw = bytearray(copy.read_bytes())
    (header,) = struct.unpack("<Q", raw[:8])
    raw[8 + header + 10] ^= 0xFF  # inside the first tensor's bytes; the header still parses
    copy.write_bytes(bytes(raw))


def test_bit_rot_in_the_copy_is_found_by_cache_verify_and_repaired(tmp_path, state):
    store = cached(state, folder=tmp_path)
    copy = store.copy_path(store.weights_path())
    flip_a_data_byte(copy)
    (result,) = fetch.verify_cached(store.checkpoint)
    assert result.ok and "rebuilt" in result.repaired
    loaded = store.load().content.state_dict
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    (again,) = fetch.verify_cached(store.checkpoint)
    assert again.ok and not again.repaired


def test_the_copy_has_the_weights_files_permissions(tmp_path, state):
    store = cached(state, folder=tmp_path)
    weights = store.weights_path()
    assert store.copy_path(weights).stat().st_mode & 0o777 == weights.stat().st_mode & 0o777


@pytest.mark.parametrize("damage", ["nested-header", "wrong-typed-metadata", "garbage"])
def test_load_weights_and_get_treat_a_damaged_copy_alike(tmp_path, damage, mirror):
    import modelzoo
    from tests.published import published

    _, state = published("osnet_x0_25", "market1501", mirror)
    modelzoo.get("osnet_x0_25", "market", device="cpu", progress=False)  # cached, with its copy
    store = store_of(modelzoo.checkpoint_info("osnet_x0_25.market1501"))
    copy = store.copy_path(store.weights_path())
    if damage == "nested-header":
        header = b"[" * 200000 + b"]" * 200000
        copy.write_bytes(struct.pack("<Q", len(header)) + header)
    elif damage == "wrong-typed-metadata":
        header = json.dumps({"__metadata__": {"order": 5, "copy_version": 2}}).encode()
        copy.write_bytes(struct.pack("<Q", len(header)) + header)
    else:
        copy.write_bytes(b"garbage")
    model = modelzoo.build("osnet_x0_25")
    modelzoo.load_weights(model, "osnet_x0_25", "market", progress=False)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    again = modelzoo.get("osnet_x0_25", "market", device="cpu", progress=False)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in state.items())


# --------------------------------------------------------------------------- leftovers


def test_temporary_files_of_dead_writers_are_removed_under_the_lock(tmp_path, state):
    store = cached(state, folder=tmp_path)
    (store.folder / ".tmp-999-abcd-w.pth.safetensors").write_bytes(b"\0" * 1000)  # an older release's copy temp
    (store.folder / ".fetch-999-abcd-w.pth.safetensors").write_bytes(b"\0" * 1000)
    fetch.clear_cache(store.checkpoint)
    cached(state, folder=tmp_path / "again")
    assert not list(store.folder.glob(".tmp-*")) and not list(store.folder.glob(".fetch-*"))
