"""ONNX export: the file computes what PyTorch computes, or it is not kept (user-pain row 18)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn

import modelzoo
from modelzoo.cli import main
from modelzoo.errors import ExportError
from modelzoo.export import export_onnx
from modelzoo.models import attach_info
from tests.published import published

NAME, DATASET = "osnet_x0_25", "market1501"


def run_onnx(path, images: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["features"], {"images": images.numpy()})[0]


def test_cli_exports_the_trained_network_with_its_preprocessing(mirror, tmp_path, capsys):
    reference, _ = published(NAME, DATASET, mirror)
    output = tmp_path / "out" / "reid.onnx"
    output.parent.mkdir()
    assert main(["export", NAME, DATASET, "-o", str(output)]) == 0
    printed = capsys.readouterr().out.splitlines()  # the exporter's own progress lines stay off stdout
    assert len(printed) == 2 and printed[0] == f"wrote {output}" and "ONNX Runtime equals PyTorch" in printed[1]

    images = torch.randn(5, 3, 256, 128, generator=torch.Generator().manual_seed(7))
    got = run_onnx(output, images)
    with torch.no_grad():
        expected = reference(images).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    assert np.abs(got[0] - got[1]).max() > 1e-3 * np.abs(got).max()  # not one output for every image (#316)

    metadata = {entry.key: entry.value for entry in onnx.load(str(output)).metadata_props}
    assert metadata["modelzoo_checkpoint"] == f"{NAME}.{DATASET}"
    assert json.loads(metadata["input_size"]) == [256, 128] and metadata["color"] == "RGB"
    assert json.loads(metadata["mean"]) == pytest.approx([0.485, 0.456, 0.406])
    assert list(output.parent.iterdir()) == [output]


def test_hacnn_exports_with_a_dynamic_batch_and_the_mode_is_restored(tmp_path):
    # HA-CNN sizes its pooling from the input: torch's legacy exporter cannot export it at all
    model = modelzoo.build("hacnn", num_classes=10).train()
    path, check = export_onnx(model, tmp_path / "hacnn.onnx")
    assert model.training
    assert check.images == 4 and check.max_abs_diff <= 1e-4 * check.max_abs_value
    images = torch.randn(1, 3, 160, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model.eval()(images).numpy()
    np.testing.assert_allclose(run_onnx(path, images), expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


class Drifting(nn.Module):
    """Random at inference (dropout forced on): no exported file can reproduce its outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.dropout(self.conv(x).mean((2, 3)), p=0.5, training=True)


def test_a_file_that_computes_something_else_is_not_kept(tmp_path):
    model = attach_info(Drifting(), NAME)  # the input size
    with pytest.raises(ExportError, match="differs from PyTorch.*nothing was written"):
        export_onnx(model, tmp_path / "drift.onnx")
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one


def test_a_model_without_an_input_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match="input size"):
        export_onnx(nn.Conv2d(3, 4, 3), tmp_path / "x.onnx")


@pytest.mark.slow
def test_fastreid_mgn_of_the_v011_era_exports_with_its_preprocessing(tmp_path):
    """The most unusual fast-reid network: one GeM shared by 8 branches, stripes cut from the feature map, IBN-a."""
    model = modelzoo.build("mgn_r50_ibn.market1501", num_classes=0)
    path, check = export_onnx(model, tmp_path / "mgn.onnx")
    assert check.max_abs_diff <= 1e-4 * check.max_abs_value
    metadata = {entry.key: entry.value for entry in onnx.load(str(path)).metadata_props}
    assert json.loads(metadata["input_size"]) == [384, 128]
    assert metadata["resize"] == "bicubic"
