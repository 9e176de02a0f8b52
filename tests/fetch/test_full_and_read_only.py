"""A full disk, a read-only cache and odd cache roots: one line naming the folder and the fix, nothing lost.

Root ignores permissions, so unwritable folders and full disks are simulated
by making the exact system calls fail (``EROFS``, ``EACCES``, ``ENOSPC``).
"""

from __future__ import annotations

import errno
import os

import pytest

import modelzoo
from modelzoo import fetch
from modelzoo.cli import main
from modelzoo.errors import CacheError
from modelzoo.testing import checkpoints as ckptgen
from tests.fetch.helpers import FAST, bare_checkpoint, cached, store_of, with_sources, zip_checkpoint


def fail_with(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


def test_a_full_disk_during_a_download_is_one_line_and_leaves_no_partial(loopback_server, state, monkeypatch):
    data = ckptgen.checkpoint_bytes(state, "torchreid-dict")
    url = loopback_server.serve("/w.pth.tar", data)
    other = loopback_server.serve("/other.pth.tar", data)
    checkpoint = with_sources(bare_checkpoint(), (url, "http", "checkpoint"), (other, "http", "checkpoint"))

    class FullDisk:
        def __init__(self, real):
            self.real = real

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.real.close()

        def write(self, chunk):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

    from modelzoo.fetch import http

    real_open = http.open_partial
    def full_for_the_body(path, append):
        sink = real_open(path, append=append)
        return FullDisk(sink) if path.name.endswith(".incomplete") else sink

    monkeypatch.setattr(http, "open_partial", full_for_the_body)
    with pytest.raises(CacheError, match=rf"no space left on .*market1501: need about {len(data) / 1e3:.1f} kB"):
        fetch.download(checkpoint, progress=False, options=FAST)
    assert loopback_server.requests_for("/other.pth.tar") == []  # not a source's failure: no other source tried
    assert not list(store_of(checkpoint).folder.glob("*.incomplete*"))


def test_a_full_disk_while_extracting_is_one_line(tmp_path, state, monkeypatch):
    from modelzoo.fetch import archive

    ckptgen.write_for_checkpoint(zip_checkpoint(), tmp_path, state)
    monkeypatch.setattr(archive, "_copy_member", fail_with(errno.ENOSPC))
    with pytest.raises(CacheError, match="no space left on"):
        fetch.download(zip_checkpoint(), progress=False, options=FAST, mirrors=[str(tmp_path)])
    assert not list(store_of(zip_checkpoint()).folder.glob(".fetch-*"))


def test_when_the_copy_cannot_be_written_loads_read_the_original_and_say_so_once(tmp_path, state, monkeypatch,
                                                                                caplog):
    from modelzoo.fetch import _copies

    monkeypatch.setattr(_copies, "_warned", set())
    monkeypatch.setattr("modelzoo.formats.safetensors_file.write_safetensors", fail_with(errno.EROFS))
    store = cached(state, folder=tmp_path)
    assert not store.copy_path(store.weights_path()).exists()
    for _ in range(3):
        loaded = store.load()
        assert list(loaded.content.state_dict) == list(state)
    warnings = [r for r in caplog.records if "safetensors copy" in r.getMessage()]
    assert len(warnings) == 1 and "reads the original" in warnings[0].getMessage().replace("loads read", "reads")


def test_a_read_only_warm_cache_still_loads(tmp_path, state, monkeypatch):
    store = cached(state, folder=tmp_path)
    store.copy_path(store.weights_path()).unlink()  # a cache copied without its copy, then made read-only
    monkeypatch.setattr(os, "mkdir", fail_with(errno.EROFS))
    monkeypatch.setattr("filelock.FileLock.acquire", fail_with(errno.EROFS))
    loaded = store.load()
    assert list(loaded.content.state_dict) == list(state)


@pytest.mark.parametrize("command", [["download", "osnet_x0_25", "--no-progress"], ["cache", "clear"],
                                     ["import", "osnet_x0_25", "market1501", "FILE"]])
def test_an_unwritable_cache_is_one_line_naming_the_folder(tmp_path, state, monkeypatch, capsys, command):
    cached(state, folder=tmp_path)  # something to clear
    source = tmp_path / "w.pth"
    source.write_bytes(b"x")
    monkeypatch.setattr(os, "mkdir", fail_with(errno.EROFS))
    monkeypatch.setattr("filelock.FileLock.acquire", fail_with(errno.EACCES))
    assert main([str(source) if part == "FILE" else part for part in command]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cache folder" in err and "MODELZOO_HOME" in err


def test_a_cache_root_that_is_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    root = tmp_path / "a-file"
    root.write_text("not a folder")
    monkeypatch.setenv("MODELZOO_HOME", str(root))
    assert main(["download", "osnet_x0_25", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is a file, not a folder" in err.replace("a parent of it is a file", "is a file")


def test_a_cache_root_with_an_unknown_user_is_refused_not_created(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODELZOO_HOME", "~nosuchuser1234/cache")
    assert main(["download", "osnet_x0_25", "--no-progress"]) == 2
    assert "does not exist here" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no folder named '~nosuchuser1234' in the working directory
    with pytest.raises(modelzoo.errors.ConfigError):
        modelzoo.get("osnet_x0_25", cache_dir="~nosuchuser1234/x")
