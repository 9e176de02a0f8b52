"""``modelzoo.formats.fastreid``: the declared renames per era, the pixel-statistics check, and refusals."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
import torch

from modelzoo.errors import CheckpointFormatError
from modelzoo.formats import fastreid as fastreid_format
from modelzoo.formats.fastreid import read_fastreid_state_dict, rename_key

PIXELS = {
    "pixel_mean": torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1),
    "pixel_std": torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1),
}


@pytest.mark.parametrize(
    "era, file_key, ours",
    [
        ("0.1.1", "heads.bnneck.running_var", "heads.bottleneck.0.running_var"),
        ("0.1.1", "heads.classifier.weight", "heads.weight"),
        ("0.1.1", "b33_head.classifier.weight", "b33_head.weight"),
        ("0.1.1", "b33_head.bnneck.weight", "b33_head.bnneck.weight"),  # era-only MGN parts keep their names
        ("0.1.1", "b21_pool.0.p", "b21_pool.0.p"),
        ("0.1.1", "heads.pool_layer.p", "heads.pool_layer.p"),
        ("0.1.1", "backbone.NL_3.2.W.1.weight", "backbone.NL_3.2.W.1.weight"),
        ("0.1.1", "module.backbone.conv1.weight", "backbone.conv1.weight"),
        ("1.0", "heads.bottleneck.0.weight", "heads.bottleneck.0.weight"),
        ("1.0", "heads.classifier.weight", "heads.weight"),
        ("1.0", "heads.bnneck.weight", "heads.bnneck.weight"),  # not a v1.0 key: left for the strict load to name
        ("1.4.0", "heads.weight", "heads.weight"),
        ("1.4.0", "heads.classifier.weight", "heads.classifier.weight"),
    ],
)
def test_rename_table(era, file_key, ours):
    assert rename_key(file_key, era) == ours


def test_reads_a_checkpoint_and_drops_the_checked_pixel_statistics():
    state = {"module.heads.bnneck.weight": torch.ones(4), "heads.classifier.weight": torch.zeros(3, 4), **PIXELS}
    read = read_fastreid_state_dict({"model": state, "iteration": 10}, "0.1.1")
    assert list(read) == ["heads.bottleneck.0.weight", "heads.weight"]
    assert read["heads.weight"] is state["heads.classifier.weight"]


def test_a_file_without_pixel_statistics_is_read():
    assert list(read_fastreid_state_dict({"model": {"heads.weight": torch.zeros(2, 2)}}, "1.4.0")) == ["heads.weight"]


def test_other_pixel_statistics_are_refused_naming_both_values():
    state = {**PIXELS, "pixel_std": torch.tensor([1.0, 1.0, 1.0]).view(1, 3, 1, 1)}
    with pytest.raises(CheckpointFormatError, match=r"pixel_std is \[1.0, 1.0, 1.0\], expected \[58.395"):
        read_fastreid_state_dict({"model": state}, "0.1.1")
    zero_mean = {**PIXELS, "pixel_mean": torch.zeros(1, 3, 1, 1)}
    read_fastreid_state_dict({"model": zero_mean}, "0.1.1", pixel_mean=(0.0, 0.0, 0.0))  # expected values are given


@pytest.mark.parametrize("checkpoint", [[1, 2], {"state_dict": {}}, {"model": [1]}])
def test_what_is_not_a_fastreid_checkpoint_is_refused(checkpoint):
    with pytest.raises(CheckpointFormatError, match="'model'"):
        read_fastreid_state_dict(checkpoint, "0.1.1")


def test_two_file_keys_for_one_of_ours_are_refused():
    state = {"heads.bnneck.weight": torch.ones(2), "heads.bottleneck.0.weight": torch.ones(2)}
    with pytest.raises(CheckpointFormatError, match="both map to 'heads.bottleneck.0.weight'"):
        read_fastreid_state_dict({"model": state}, "0.1.1")


def test_names_of_one_shared_tensor_must_agree():
    shared = torch.full((1,), 3.0)
    state = {f"{branch}_pool.0.p": shared for branch in ("b1", "b2", "b21", "b22", "b3", "b31", "b32")}
    read_fastreid_state_dict({"model": state}, "0.1.1")
    with pytest.raises(CheckpointFormatError, match="shared"):
        read_fastreid_state_dict({"model": {**state, "b33_pool.0.p": torch.full((1,), 2.0)}}, "0.1.1")


def test_non_tensors_and_unknown_eras_are_refused():
    with pytest.raises(CheckpointFormatError, match="not a tensor"):
        read_fastreid_state_dict({"model": {"heads.weight": [1.0]}}, "1.4.0")
    with pytest.raises(ValueError, match="0.1.1"):
        read_fastreid_state_dict({"model": {}}, "0.2")


def test_the_reader_imports_only_errors_torch_and_the_standard_library():
    tree = ast.parse(Path(fastreid_format.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    roots = {name.split(".")[0] for name in imported} - {"__future__"}
    assert {name for name in imported if name.startswith("modelzoo")} <= {"modelzoo.errors"}
    assert roots - {"modelzoo", "torch"} <= set(sys.stdlib_module_names)


@pytest.mark.parametrize("era", fastreid_format.FILE_ERAS)
@pytest.mark.parametrize("architecture", ["bot_r50", "sbs_r50_ibn", "mgn_r50_ibn"])
def test_file_key_is_the_inverse_of_the_rename_table(era, architecture):
    """Every key of our networks (MGN's branch heads, the baseline head) goes to a file key and back."""
    from modelzoo.architectures import builders
    from modelzoo.loading import uninitialised_build

    with uninitialised_build():
        keys = list(builders()[architecture](num_classes=3).state_dict())
    file_keys = [fastreid_format.file_key(key, era) for key in keys]
    assert [rename_key(key, era) for key in file_keys] == keys
    renamed = [key for key, stored in zip(keys, file_keys) if key != stored]
    assert all(key.startswith("heads.") or "_head." in key for key in renamed)  # the backbone never moves
    assert bool(renamed) == (era != "1.4.0")
