"""Sources, mirrors, offline mode, hashes (manifest and trust on first use), import and the cache."""

from __future__ import annotations

import hashlib

import pytest
import torch

from modelzoo.testing import checkpoints as ckptgen
from tests import hostile
from modelzoo import config, fetch
from modelzoo.formats import read_state_dict
from modelzoo.errors import (
    ArchiveError,
    CheckpointFormatError,
    ChecksumError,
    DownloadError,
    NotCachedError,
    UnsafeCheckpointError,
)
from modelzoo.fetch.sources import candidates, mirror_candidate
from modelzoo.formats import sha256_file
from tests.fetch.helpers import FAST, bare_checkpoint, store_at, store_of, with_sources, zip_checkpoint


def same_weights(path, state) -> bool:
    out = read_state_dict(path)
    return out.keys() == state.keys() and all(torch.equal(out[k], state[k]) for k in state)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------
# where files come from


def test_mirrors_come_first_in_order_then_the_manifest(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELZOO_MIRROR", f"http://m1.example/zoo/, file://{tmp_path}/m2 , {tmp_path}/m3")
    found = candidates(zip_checkpoint(), config.fetch_settings().mirrors)
    assert [c.location for c in found[:3]] == [
        "http://m1.example/zoo/resnet50_fc512_market_softmax.zip",
        f"{tmp_path}/m2/resnet50_fc512_market_softmax.zip",
        f"{tmp_path}/m3/resnet50_fc512_market_softmax.zip",
    ]
    assert [c.kind for c in found] == ["http", "file", "file", "gdrive", "http", "http"]  # Drive, QMUL, archive
    assert [c.origin for c in found] == ["mirror"] * 3 + ["manifest"] * 3
    assert found[3].format == "checkpoint"  # the Drive copy is the bare checkpoint the zip holds
    assert [c.status for c in found[3:]] == ["quota-limited", "dead", "archived"]
    assert mirror_candidate("ftp://x", "a.zip", "zip").problem


@pytest.mark.parametrize("form", ["dir", "file-url"])
def test_a_local_mirror_folder_serves_the_zip(monkeypatch, tmp_path, state, form):
    mirror = tmp_path / "mirror dir"
    mirror.mkdir()
    original = ckptgen.write_for_checkpoint(zip_checkpoint(), mirror, state)
    monkeypatch.setenv("MODELZOO_MIRROR", str(mirror) if form == "dir" else mirror.as_uri())
    path = fetch.download(zip_checkpoint(), progress=False, options=FAST)
    assert path.parent == store_of(zip_checkpoint()).folder
    assert path.name == "resnet50_fc512_market_xent.pth.tar" and same_weights(path, state)
    assert original.is_file()  # the mirror's file is copied, never moved
    record = store_at(path.parent).read_record()
    assert record.served_sha256 == sha256_file(original) and record.sha256 == sha256_file(path)


def test_a_bare_checkpoint_entry_is_cached_under_its_manifest_name(monkeypatch, tmp_path, state):
    ckptgen.write_for_checkpoint(bare_checkpoint(), tmp_path, state, vintage="py2")
    monkeypatch.setenv("MODELZOO_MIRROR", str(tmp_path))
    path = fetch.download(bare_checkpoint(), progress=False, options=FAST)
    assert path.name == "mobilenetv2_1dot0_market.pth.tar" and same_weights(path, state)


def test_a_missing_file_in_one_mirror_falls_through_to_the_next(monkeypatch, tmp_path, loopback_server, state):
    data = ckptgen.write_for_checkpoint(zip_checkpoint(), tmp_path, state).read_bytes()
    loopback_server.serve("/zoo/resnet50_fc512_market_softmax.zip", data)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("MODELZOO_MIRROR", f"{empty},{loopback_server.url}/nothing,{loopback_server.url}/zoo")
    assert same_weights(fetch.download(zip_checkpoint(), progress=False, options=FAST), state)
    assert [r.status for r in loopback_server.log] == [404, 200]


def test_when_every_source_fails_the_error_says_what_was_tried_and_what_to_do(loopback_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MODELZOO_MIRROR", str(tmp_path / "nowhere"))
    loopback_server.fail("/gone.zip")
    checkpoint = with_sources(
        zip_checkpoint(),
        (loopback_server.url + "/gone.zip", "http", "zip"),
        ("http://127.0.0.1:9/refused.zip", "http", "zip"),
        ("https://drive.google.com/uc?id=1kv8l5laX_YCdIGVCetjlNdzKIA3NvsSt", "gdrive", "checkpoint"),
    )
    with pytest.raises(DownloadError) as info:
        fetch.download(checkpoint, progress=False, options=FAST)
    message = str(info.value)
    assert f"1. mirror file {tmp_path / 'nowhere' / 'resnet50_fc512_market_softmax.zip'}: no such file" in message
    assert f"2. {loopback_server.url}/gone.zip: HTTP 404" in message
    assert (
        "3. http://127.0.0.1:9/refused.zip: connection failed (Connection refused) (gave up after 3 attempts)"
        in message
    )
    assert "4. Google Drive https://drive.google.com/uc?id=1kv8l5laX_YCdIGVCetjlNdzKIA3NvsSt" in message
    assert "Expected file: resnet50_fc512_market_softmax.zip (zip; sha256 not published" in message
    assert "modelzoo import resnet50_fc512 market1501 /path/to/resnet50_fc512_market_softmax.zip" in message
    assert "MODELZOO_MIRROR" in message
    assert not isinstance(info.value, ChecksumError)


def test_the_expected_hash_and_size_are_in_the_error_when_known(loopback_server):
    checkpoint = with_sources(
        bare_checkpoint(), (loopback_server.url + "/x", "http", "checkpoint"), sha256="ab" * 32, size=1234
    )
    with pytest.raises(DownloadError, match=f"sha256 {'ab' * 32}; size 1234 bytes"):
        fetch.download(checkpoint, progress=False, options=FAST)


# ---------------------------------------------------------------------------
# hostile or broken files are never cached


def test_a_zip_with_parent_members_is_refused_and_nothing_escapes(monkeypatch, tmp_path, state):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    hostile.write_zip(
        mirror / "resnet50_fc512_market_softmax.zip", {"../../escaped.pth.tar": ckptgen.checkpoint_bytes(state)}
    )
    monkeypatch.setenv("MODELZOO_MIRROR", str(mirror))
    checkpoint = with_sources(zip_checkpoint(), ("http://127.0.0.1:9/x.zip", "http", "zip"))
    with pytest.raises(DownloadError, match="outside the archive"):
        fetch.download(checkpoint, progress=False, options=FAST)
    home = store_of(checkpoint).folder.parents[2]
    assert not list(home.rglob("escaped.pth.tar")) and not list(tmp_path.rglob("escaped.pth.tar"))
    assert fetch.cached_path(checkpoint) is None
    assert [p.name for p in store_of(checkpoint).folder.iterdir()] == [".lock"]


def test_a_pickle_calling_os_system_is_refused_by_download(monkeypatch, tmp_path):
    marker = tmp_path / "pwned"
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    hostile.write_unsafe_checkpoint(mirror / bare_checkpoint().filename, marker)
    monkeypatch.setenv("MODELZOO_MIRROR", str(mirror))
    checkpoint = with_sources(bare_checkpoint(), ("http://127.0.0.1:9/x", "http", "checkpoint"))
    with pytest.raises(DownloadError, match="not a plain checkpoint"):
        fetch.download(checkpoint, progress=False, options=FAST)
    assert not marker.exists()
    assert fetch.cached_path(checkpoint) is None


def test_an_html_file_in_a_mirror_is_refused(monkeypatch, tmp_path):
    (tmp_path / bare_checkpoint().filename).write_text("<html><head><title>Error 403</title></head></html>")
    monkeypatch.setenv("MODELZOO_MIRROR", str(tmp_path))
    checkpoint = with_sources(bare_checkpoint(), ("http://127.0.0.1:9/x", "http", "checkpoint"))
    with pytest.raises(DownloadError, match="HTML page"):
        fetch.download(checkpoint, progress=False, options=FAST)


# ---------------------------------------------------------------------------
# hashes: the manifest's, or trust on first use


def test_a_manifest_hash_mismatch_deletes_the_download_and_tries_the_next_source(loopback_server, tmp_path, state):
    good = ckptgen.write_qmul_zip(tmp_path / "good" / "resnet50_fc512_market_softmax.zip", state).read_bytes()
    bad = ckptgen.write_qmul_zip(
        tmp_path / "bad" / "resnet50_fc512_market_softmax.zip", ckptgen.toy_state_dict(seed=5)
    ).read_bytes()
    checkpoint = with_sources(
        zip_checkpoint(),
        (loopback_server.serve("/bad.zip", bad), "http", "zip"),
        (loopback_server.serve("/good.zip", good), "http", "zip"),
        sha256=sha(good),
        size=len(good),
    )
    path = fetch.download(checkpoint, progress=False, options=FAST)
    assert same_weights(path, state)
    assert store_at(path.parent).read_hashes().origin == "manifest"
    assert not list(path.parent.glob("*.incomplete"))


def test_only_wrong_hashes_raise_checksum_error(loopback_server, tmp_path, state):
    data = ckptgen.checkpoint_bytes(state)
    checkpoint = with_sources(
        bare_checkpoint(), (loopback_server.serve("/a", data), "http", "checkpoint"), sha256="0" * 64
    )
    with pytest.raises(ChecksumError, match="differs from the manifest"):
        fetch.download(checkpoint, progress=False, options=FAST)
    sized = with_sources(bare_checkpoint(), (loopback_server.url + "/a", "http", "checkpoint"), size=len(data) + 1)
    with pytest.raises(ChecksumError, match="truncated or wrong file"):
        fetch.download(sized, progress=False, options=FAST)
    assert fetch.cached_path(checkpoint) is None


def test_the_first_download_is_trusted_and_later_mirrors_must_match(loopback_server, tmp_path, state):
    genuine = ckptgen.write_qmul_zip(tmp_path / "a" / "resnet50_fc512_market_softmax.zip", state).read_bytes()
    tampered = ckptgen.write_qmul_zip(
        tmp_path / "b" / "resnet50_fc512_market_softmax.zip", ckptgen.toy_state_dict(seed=66)
    ).read_bytes()
    first = with_sources(zip_checkpoint(), (loopback_server.serve("/first.zip", genuine), "http", "zip"))
    path = fetch.download(first, progress=False, options=FAST)
    trusted = store_at(path.parent).read_hashes()
    assert trusted.origin == "first download" and trusted.weights_sha256 == sha256_file(path)
    assert trusted.served[0]["sha256"] == sha(genuine)

    # The same weights as a bare file (the Drive copy) differ as a file but match the trusted weights.
    bare = ckptgen.write_qmul_zip(tmp_path / "c" / "x_softmax.zip", state)
    import zipfile

    with zipfile.ZipFile(bare) as z:
        bare_bytes = z.read("x_xent/x_xent.pth.tar")
    again = with_sources(
        zip_checkpoint(),
        (loopback_server.serve("/evil.zip", tampered), "http", "zip"),
        (loopback_server.serve("/drive-copy", bare_bytes), "http", "checkpoint"),
    )
    path2 = fetch.download(again, progress=False, force=True, options=FAST)
    assert same_weights(path2, state)
    assert store_at(path2.parent).read_record().source.endswith("/drive-copy")
    assert len(store_at(path2.parent).read_hashes().served) == 2  # the zip's hash and the bare file's

    only_evil = with_sources(zip_checkpoint(), (loopback_server.url + "/evil.zip", "http", "zip"))
    with pytest.raises(ChecksumError, match="trusted since.*first downloaded.*--forget-hashes"):
        fetch.download(only_evil, progress=False, force=True, options=FAST)
    assert same_weights(fetch.cached_path(only_evil), state)  # the cached file survived the failed --force


def test_clear_keeps_the_trusted_hashes_unless_told_to_forget(loopback_server, tmp_path, state):
    genuine = ckptgen.write_qmul_zip(tmp_path / "a" / "resnet50_fc512_market_softmax.zip", state).read_bytes()
    other = ckptgen.write_qmul_zip(
        tmp_path / "b" / "resnet50_fc512_market_softmax.zip", ckptgen.toy_state_dict(seed=3)
    ).read_bytes()
    checkpoint = with_sources(zip_checkpoint(), (loopback_server.serve("/a.zip", genuine), "http", "zip"))
    fetch.download(checkpoint, progress=False, options=FAST)
    assert fetch.clear_cache(checkpoint) == ["resnet50_fc512.market1501"]
    assert fetch.cached_path(checkpoint) is None and fetch.list_cached() == []
    changed = with_sources(zip_checkpoint(), (loopback_server.serve("/b.zip", other), "http", "zip"))
    with pytest.raises(ChecksumError):
        fetch.download(changed, progress=False, options=FAST)
    fetch.clear_cache("resnet50_fc512", forget_hashes=True)
    assert fetch.download(changed, progress=False, options=FAST).is_file()


# ---------------------------------------------------------------------------
# offline


def test_offline_returns_a_cached_checkpoint_without_the_network(monkeypatch, loopback_server, tmp_path, state):
    data = ckptgen.write_for_checkpoint(zip_checkpoint(), tmp_path, state).read_bytes()
    checkpoint = with_sources(zip_checkpoint(), (loopback_server.serve("/a.zip", data), "http", "zip"))
    path = fetch.download(checkpoint, progress=False, options=FAST)
    requests_before = len(loopback_server.log)
    monkeypatch.setenv("MODELZOO_OFFLINE", "1")
    assert fetch.download(checkpoint, progress=False, options=FAST) == path
    assert len(loopback_server.log) == requests_before


@pytest.mark.parametrize("flag", ["MODELZOO_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_without_a_cached_file_raises_not_cached_and_never_connects(monkeypatch, loopback_server, flag):
    monkeypatch.setenv(flag, "1")
    checkpoint = with_sources(zip_checkpoint(), (loopback_server.url + "/a.zip", "http", "zip"))
    with pytest.raises(NotCachedError) as info:
        fetch.download(checkpoint, progress=False, options=FAST)
    assert isinstance(info.value, FileNotFoundError)
    assert "modelzoo download resnet50_fc512 market1501" in str(info.value)
    assert "modelzoo import resnet50_fc512 market1501 /path/to/resnet50_fc512_market_softmax.zip" in str(info.value)
    assert loopback_server.log == []


def test_offline_still_uses_a_local_mirror_folder_but_no_http_mirror(monkeypatch, loopback_server, tmp_path, state):
    ckptgen.write_for_checkpoint(zip_checkpoint(), tmp_path, state)
    monkeypatch.setenv("MODELZOO_OFFLINE", "1")
    monkeypatch.setenv("MODELZOO_MIRROR", f"{loopback_server.url},{tmp_path}")
    assert same_weights(fetch.download(zip_checkpoint(), progress=False, options=FAST), state)
    assert loopback_server.log == []


# ---------------------------------------------------------------------------
# import a file obtained by hand


@pytest.mark.parametrize("kind", ["zip", "bare-drive-copy"])
def test_import_verifies_extracts_and_caches(tmp_path, state, kind, monkeypatch):
    monkeypatch.setenv("MODELZOO_OFFLINE", "1")  # importing never needs the network
    if kind == "zip":
        source = ckptgen.write_for_checkpoint(zip_checkpoint(), tmp_path, state)
    else:
        source = ckptgen.write_checkpoint(tmp_path / "resnet50_fc512_market_xent.pth.tar", state, "py2")
    path = fetch.import_file(zip_checkpoint(), source)
    assert fetch.cached_path(zip_checkpoint()) == path and same_weights(path, state)
    assert source.is_file()
    assert store_at(path.parent).read_record().source.startswith("imported ")


def test_import_refuses_bad_files_and_caches_nothing(tmp_path):
    page = tmp_path / "resnet50_fc512_market_softmax.zip"
    page.write_text("<!doctype html><title>Quota exceeded</title>")
    with pytest.raises(CheckpointFormatError, match="HTML page"):
        fetch.import_file(zip_checkpoint(), page)
    two = hostile.write_zip(tmp_path / "two.zip", {"a/x.pth": b"1", "a/y.pth": b"2"})
    with pytest.raises(ArchiveError, match="several"):
        fetch.import_file(zip_checkpoint(), two)
    evil = hostile.write_unsafe_checkpoint(tmp_path / "evil.pth", tmp_path / "pwned")
    with pytest.raises(UnsafeCheckpointError):
        fetch.import_file(zip_checkpoint(), evil)
    with pytest.raises(FileNotFoundError, match="no file at"):
        fetch.import_file(zip_checkpoint(), tmp_path / "missing.zip")
    assert fetch.cached_path(zip_checkpoint()) is None and not (tmp_path / "pwned").exists()
    assert [p.name for p in store_of(zip_checkpoint()).folder.iterdir()] == [".lock"]


# ---------------------------------------------------------------------------
# the cache


def test_list_verify_and_clear(tmp_path, state):
    fetch.import_file(zip_checkpoint(), ckptgen.write_for_checkpoint(zip_checkpoint(), tmp_path, state))
    fetch.import_file(bare_checkpoint(), ckptgen.write_for_checkpoint(bare_checkpoint(), tmp_path, state))
    assert [e.name for e in fetch.list_cached()] == ["mobilenetv2_1dot0.market1501", "resnet50_fc512.market1501"]
    assert [e.name for e in fetch.list_cached("resnet50_fc512")] == ["resnet50_fc512.market1501"]
    assert all(r.ok for r in fetch.verify_cached())

    damaged = fetch.cached_path(zip_checkpoint())
    data = bytearray(damaged.read_bytes())
    data[-10] ^= 0xFF  # same size, different bytes
    damaged.write_bytes(bytes(data))
    results = {r.name: r for r in fetch.verify_cached()}
    assert results["mobilenetv2_1dot0.market1501"].ok
    bad = results["resnet50_fc512.market1501"]
    assert (
        not bad.ok and "differs" in bad.problem and "modelzoo download resnet50_fc512 market1501 --force" in bad.problem
    )

    assert fetch.clear_cache("resnet50_fc512.market1501") == ["resnet50_fc512.market1501"]
    assert [e.name for e in fetch.list_cached()] == ["mobilenetv2_1dot0.market1501"]
    assert fetch.clear_cache() == ["mobilenetv2_1dot0.market1501"]
    assert fetch.list_cached() == [] and fetch.verify_cached() == []


def test_the_download_stores_a_safetensors_copy_that_later_loads_use(monkeypatch, tmp_path, state):
    ckptgen.write_for_checkpoint(zip_checkpoint(), tmp_path, state)
    monkeypatch.setenv("MODELZOO_MIRROR", str(tmp_path))
    path = fetch.download(zip_checkpoint(), progress=False, options=FAST)
    assert store_of(zip_checkpoint()).copy_path(path).is_file()
    loaded = store_of(zip_checkpoint()).load().content.state_dict
    assert all(torch.equal(loaded[k], state[k]) for k in state) and list(loaded) == list(state)


def test_leftovers_of_a_dead_process_are_removed_under_the_lock(monkeypatch, tmp_path, state):
    folder = store_of(zip_checkpoint()).folder
    folder.mkdir(parents=True)
    (folder / ".fetch-999-extract-x").mkdir()
    (folder / ".fetch-999-x-resnet50_fc512_market_softmax.zip").write_bytes(b"half")
    ckptgen.write_for_checkpoint(zip_checkpoint(), tmp_path, state)
    monkeypatch.setenv("MODELZOO_MIRROR", str(tmp_path))
    fetch.download(zip_checkpoint(), progress=False, options=FAST)
    assert not list(folder.glob(".fetch-*"))
