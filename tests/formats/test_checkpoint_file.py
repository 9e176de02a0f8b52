"""read_state_dict reads every vintage with weights_only=True and refuses everything else."""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest
import torch

from modelzoo.testing import checkpoints as ckptgen
from tests import hostile
from modelzoo.formats import read_state_dict
from modelzoo.errors import CheckpointFormatError, UnsafeCheckpointError


def assert_same(actual: dict, expected: dict) -> None:
    assert list(actual) == list(expected)
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype, key
        assert torch.equal(actual[key], value), key


@pytest.mark.parametrize("vintage", ckptgen.VINTAGES)
def test_every_vintage_reads_to_the_same_state_dict(tmp_path, state, vintage):
    path = ckptgen.write_checkpoint(tmp_path / f"model.pth.tar-{vintage}", state, vintage)
    assert_same(read_state_dict(path), state)


def test_the_vintages_are_what_they_claim(tmp_path, state):
    """Guard the generator itself: each vintage has the property that made it hard to read."""
    modern = ckptgen.write_checkpoint(tmp_path / "modern.pth.tar", state, "torchreid-dict")
    with pytest.raises(pickle.UnpicklingError):  # numpy rank1: plain weights_only fails (#592)
        torch.load(modern, weights_only=True)
    loaded = torch.load(modern, weights_only=False)
    assert isinstance(loaded["rank1"], np.float64) and {"optimizer", "scheduler", "epoch"} <= set(loaded)
    legacy = ckptgen.write_checkpoint(tmp_path / "legacy.pth.tar", state, "legacy")
    assert not zipfile.is_zipfile(legacy) and zipfile.is_zipfile(modern)
    py2 = ckptgen.write_checkpoint(tmp_path / "py2.pth.tar", state, "py2")
    with pytest.raises(UnicodeDecodeError):
        torch.load(py2, weights_only=False)
    assert torch.load(py2, weights_only=False, encoding="latin1")["note"] == ckptgen.PY2_NOTE
    prefixed = ckptgen.write_checkpoint(tmp_path / "dp.pth", state, "module-prefixed")
    assert all(k.startswith("module.") for k in torch.load(prefixed, weights_only=True))


def test_python2_strings_come_back_as_text(tmp_path, state):
    path = ckptgen.write_checkpoint(tmp_path / "py2.pth.tar", state, "py2")
    out = read_state_dict(path)
    assert all(isinstance(key, str) for key in out)


@pytest.mark.parametrize("legacy", [False, True])
def test_a_pickle_calling_os_system_is_refused_without_running(tmp_path, legacy):
    marker = tmp_path / "pwned"
    path = hostile.write_unsafe_checkpoint(tmp_path / "evil.pth.tar", marker, legacy=legacy)
    with pytest.raises(UnsafeCheckpointError, match="not a plain checkpoint") as info:
        read_state_dict(path)
    assert "system" in str(info.value) and "state_dict()" in str(info.value)
    assert not marker.exists()


def test_a_pickle_calling_eval_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = hostile.write_eval_checkpoint(tmp_path / "evil.pth", marker)
    with pytest.raises(UnsafeCheckpointError, match="refused without running it"):
        read_state_dict(path)
    assert not marker.exists()


def test_a_whole_pickled_model_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(UnsafeCheckpointError):
        read_state_dict(path)


def test_an_html_page_is_named_as_such(tmp_path):
    path = tmp_path / "osnet.pth"
    path.write_text("<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head></html>")
    with pytest.raises(CheckpointFormatError, match="HTML page.*Quota exceeded"):
        read_state_dict(path)


@pytest.mark.parametrize("vintage", ["torchreid-dict", "legacy"])
def test_a_truncated_file_is_a_format_error(tmp_path, state, vintage):
    data = ckptgen.checkpoint_bytes(state, vintage)
    path = tmp_path / "cut.pth.tar"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(CheckpointFormatError, match="truncated"):
        read_state_dict(path)


def test_an_empty_file_and_an_archive_are_named(tmp_path, state):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointFormatError, match="empty"):
        read_state_dict(empty)
    archive = ckptgen.write_qmul_zip(tmp_path / "resnet50_market_softmax.zip", state)
    with pytest.raises(CheckpointFormatError, match="zip archive.*modelzoo import"):
        read_state_dict(archive)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "numbers.pth"
    torch.save({"epoch": 3, "rank1": 0.5}, path)
    with pytest.raises(CheckpointFormatError, match="not a state dict"):
        read_state_dict(path)
    with pytest.raises(FileNotFoundError):
        read_state_dict(tmp_path / "missing.pth")


def test_prefixed_and_plain_keys_that_collide_are_refused(tmp_path):
    path = tmp_path / "both.pth"
    torch.save({"fc.weight": torch.ones(1), "module.fc.weight": torch.zeros(1)}, path)
    with pytest.raises(CheckpointFormatError, match="both"):
        read_state_dict(path)


def test_the_numpy_allowance_is_scoped_to_the_call(tmp_path, state):
    read_state_dict(ckptgen.write_checkpoint(tmp_path / "a.pth.tar", state, "torchreid-dict"))
    buffer = io.BytesIO()
    torch.save({"rank1": np.float64(0.5)}, buffer)
    buffer.seek(0)
    with pytest.raises(pickle.UnpicklingError):  # still refused outside read_state_dict
        torch.load(buffer, weights_only=True)
