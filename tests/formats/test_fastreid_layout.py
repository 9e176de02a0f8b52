"""The fast-reid layout of ``read_checkpoint``: a file written in each era's keys reads back as our state dict."""

from __future__ import annotations

import pytest
import torch

from modelzoo import manifest
from modelzoo.errors import CheckpointFormatError
from modelzoo.formats import LAYOUTS, read_checkpoint
from modelzoo.testing.checkpoints import write_checkpoint, write_fastreid_checkpoint

#: Our keys: the baseline head and one MGN branch, with a shared tensor (one GeM under two names).
_SHARED = torch.full((1,), 3.0)
OURS = {
    "backbone.conv1.weight": torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(0)),
    "heads.bottleneck.0.weight": torch.ones(4),
    "heads.bottleneck.0.num_batches_tracked": torch.tensor(5),
    "heads.weight": torch.zeros(7, 4),
    "b1_pool.0.p": _SHARED,
    "b2_pool.0.p": _SHARED,
    "b1_head.weight": torch.ones(7, 2),
}
FILE_KEYS = {
    "0.1.1": ["pixel_mean", "pixel_std", "backbone.conv1.weight", "heads.bnneck.weight", "heads.bnneck.num_batches_tracked",
              "heads.classifier.weight", "b1_pool.0.p", "b2_pool.0.p", "b1_head.classifier.weight"],
    "1.0": ["pixel_mean", "pixel_std", "backbone.conv1.weight", "heads.bottleneck.0.weight",
            "heads.bottleneck.0.num_batches_tracked", "heads.classifier.weight", "b1_pool.0.p", "b2_pool.0.p",
            "b1_head.classifier.weight"],
}


@pytest.mark.parametrize("era", list(FILE_KEYS))
def test_a_file_of_each_era_reads_back_as_our_state_dict(tmp_path, era):
    path = write_fastreid_checkpoint(tmp_path / "market_bot_R50.pth", OURS, era)
    stored = torch.load(path, weights_only=True)
    assert list(stored["model"]) == FILE_KEYS[era]
    assert stored["model"]["b1_pool.0.p"].data_ptr() == stored["model"]["b2_pool.0.p"].data_ptr()  # still one tensor
    read = read_checkpoint(path, "fastreid", era=era).state_dict
    assert list(read) == list(OURS)
    for key, value in OURS.items():
        assert read[key].dtype == value.dtype and torch.equal(read[key], value), key


def test_buffers_of_another_normalisation_are_refused_naming_the_file(tmp_path):
    path = write_fastreid_checkpoint(tmp_path / "veri_sbs_R50-ibn.pth", OURS, "0.1.1", pixel_mean=(0.0, 0.0, 0.0))
    with pytest.raises(CheckpointFormatError, match=r"veri_sbs_R50-ibn.pth: fast-reid file: pixel_mean is \[0.0"):
        read_checkpoint(path, "fastreid", era="0.1.1")


def test_a_torchreid_file_read_as_fastreid_says_what_it_is(tmp_path):
    path = write_checkpoint(tmp_path / "model.pth", OURS, "bare")
    with pytest.raises(CheckpointFormatError, match="model.pth: not a fast-reid checkpoint"):
        read_checkpoint(path, "fastreid", era="0.1.1")


@pytest.mark.parametrize("options", [{}, {"era": "0.1.1", "pool": "avg"}])
def test_the_layout_options_are_checked(tmp_path, options):
    path = write_fastreid_checkpoint(tmp_path / "a.pth", OURS, "0.1.1")
    with pytest.raises(TypeError, match="era="):
        read_checkpoint(path, "fastreid", **options)


def test_the_manifest_knows_exactly_the_registered_layouts():
    assert set(manifest.LAYOUT_OPTIONS) == set(LAYOUTS)
