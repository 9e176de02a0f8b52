"""Export in every format: the file computes what PyTorch computes, or it is not kept (user-pain row 18)."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn

import modelzoo
from modelzoo.cli import main
from modelzoo.devices import cpu_has_native_bf16
from modelzoo.errors import DeviceError, ExportError
from modelzoo.export import check_accuracy, export, export_onnx
from modelzoo.models import attach_info
from modelzoo.testing import synthetic
from tests.published import published

NAME, DATASET = "osnet_x0_25", "market1501"


def run_onnx(path, images: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["features"], {"images": images.numpy()})[0]


@pytest.mark.slow
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


@pytest.mark.slow
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


# --- every format: the same proof, and the accuracy it costs --------------------------------------------------------

CPU_FORMATS = {"openvino": ".xml", "torchscript": ".pt"}


class Noisy(nn.Module):
    """Adds fresh noise to every output: OpenVINO converts it, and no runtime can reproduce it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.conv(x).mean((2, 3))
        return features + torch.rand_like(features)


def run_exported(fmt: str, path, images: torch.Tensor) -> np.ndarray:
    """The file run by its own library, not by the package's runtimes."""
    if fmt == "openvino":
        import openvino

        compiled = openvino.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return np.asarray(compiled(images.numpy())[compiled.output(0)])
    with torch.no_grad():
        return torch.jit.load(str(path)).eval()(images).numpy()


@pytest.mark.parametrize("fmt", [pytest.param("openvino", marks=pytest.mark.slow), "torchscript"])
def test_cli_writes_each_cpu_format_and_reports_its_parity(fmt, mirror, tmp_path, capsys):
    reference, _ = published(NAME, DATASET, mirror)
    output = tmp_path / "out" / f"reid{CPU_FORMATS[fmt]}"
    output.parent.mkdir()
    assert main(["export", NAME, DATASET, "--format", fmt, "-o", str(output), "--no-progress"]) == 0
    printed = capsys.readouterr().out.splitlines()
    written = [output, output.with_suffix(".bin")] if fmt == "openvino" else [output]
    assert printed[0] == f"wrote {' and '.join(map(str, written))}" and len(printed) == 2
    label = {"openvino": "OpenVINO", "torchscript": "TorchScript"}[fmt]
    parity = re.fullmatch(rf"{label} equals PyTorch fp32 on 4 images: lowest cosine ([\d.]+) \(needs 0\.99999\), "
                          r"max \|diff\| \S+", printed[1])
    assert parity is not None and float(parity.group(1)) >= 0.99999
    assert sorted(output.parent.iterdir()) == sorted(written)  # no temporary file or folder left

    images = torch.randn(5, 3, 256, 128, generator=torch.Generator().manual_seed(7))
    got = run_exported(fmt, output, images)
    with torch.no_grad():
        expected = reference(images).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    cosine = nn.functional.cosine_similarity(torch.from_numpy(got), torch.from_numpy(expected), dim=1)
    assert float(cosine.min()) >= 0.99999
    assert np.abs(got[0] - got[1]).max() > 1e-3 * np.abs(got).max()  # not one output for every image


@pytest.mark.parametrize("fmt, module, message", [
    ("torchscript", Drifting, "differs from PyTorch.*nothing was written"),
    ("openvino", Noisy, "differs from PyTorch.*nothing was written"),
    ("openvino", Drifting, "cannot convert.*nothing was written"),  # dropout kept on: OpenVINO refuses it
])
def test_a_failed_check_keeps_nothing_in_every_format(fmt, module, message, tmp_path):
    model = attach_info(module(), NAME)
    with pytest.raises(ExportError, match=message) as raised:
        export(model, tmp_path / f"drift{CPU_FORMATS[fmt]}", format=fmt)
    assert "\n" not in str(raised.value)
    assert list(tmp_path.iterdir()) == []  # neither the file(s) nor a temporary folder


@pytest.mark.skipif(torch.cuda.is_available(), reason="refused only on a machine without CUDA")
def test_tensorrt_is_refused_without_cuda_before_any_work(tmp_path, capsys):
    output = tmp_path / "net.engine"
    assert main(["export", NAME, DATASET, "--format", "tensorrt", "-o", str(output)]) == 2  # no mirror: no work
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--format tensorrt" in error and "CUDA device" in error
    with pytest.raises(DeviceError, match="needs a CUDA device"):
        export(modelzoo.build(NAME, num_classes=10), output, format="tensorrt")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options, says", [
    (["--format", "torchscript", "--precision", "fp16"], "float32 only"),
    (["--format", "onnx", "--precision", "bf16"], "ONNX Runtime runs float32 only"),
    (["--format", "openvino", "-o", "net.onnx"], "give net.xml"),
    (["--check-accuracy"], "--data-root"),
    (["--data-root", "."], "go with --check-accuracy"),
    pytest.param(["--format", "openvino", "--precision", "bf16"], "no native bf16",
                 marks=pytest.mark.skipif(cpu_has_native_bf16(), reason="this CPU runs bf16 natively")),
])
def test_options_that_cannot_work_are_one_line_usage_errors(options, says, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["export", NAME, DATASET, *options]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and says in error
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def tiny_market(tmp_path_factory):
    return synthetic.write_market1501(tmp_path_factory.mktemp("reid-data"), num_train_ids=2, num_test_ids=6,
                                      cameras=3, cameras_per_id=2, images_per_camera=2, query_cameras_per_id=1,
                                      num_distractors=2, num_junk=1, image_size=(64, 32))


def table_rows(lines: list[str]) -> dict[str, tuple[float, float]]:
    return {" ".join(line.split()[:-2]): (float(line.split()[-2]), float(line.split()[-1])) for line in lines}


@pytest.mark.parametrize("fmt", ["torchscript", pytest.param("onnx", marks=pytest.mark.slow)])
def test_check_accuracy_prints_torch_and_the_exported_file_side_by_side(fmt, tiny_market, mirror, tmp_path,
                                                                        monkeypatch, capsys):
    reference, _ = published(NAME, DATASET, mirror)
    monkeypatch.chdir(tmp_path)  # the default file name: the checkpoint's, here
    assert main(["export", NAME, DATASET, "--format", fmt, "--check-accuracy", "--data-root", str(tiny_market),
                 "--workers", "0", "--no-progress"]) == 0
    output = tmp_path / f"{NAME}.{DATASET}{'.pt' if fmt == 'torchscript' else '.onnx'}"
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"wrote {output.name}" and output.is_file() and "equals PyTorch fp32" in printed[1]
    assert printed[2].split() == ["market1501", "R1", "mAP"] and len(printed) == 6
    rows = table_rows(printed[3:])
    assert list(rows) == ["torch fp32", f"{fmt} fp32", "difference"]
    truth = modelzoo.evaluate(reference, "market1501", tiny_market, device="cpu", num_workers=0, progress=False)
    assert rows["torch fp32"] == pytest.approx((truth.rank1, truth.mAP), abs=0.05)
    (torch_r1, torch_map), (got_r1, got_map) = rows["torch fp32"], rows[f"{fmt} fp32"]
    assert abs(got_r1 - torch_r1) <= 0.5 and abs(got_map - torch_map) <= 0.5
    assert rows["difference"] == pytest.approx((got_r1 - torch_r1, got_map - torch_map), abs=0.11)


def test_check_accuracy_evaluates_the_file_itself(tiny_market, tmp_path):
    model = modelzoo.build(NAME, num_classes=10).eval()
    result = export(model, tmp_path / "net.pt", format="torchscript")
    assert result.paths == (tmp_path / "net.pt",) and list(tmp_path.iterdir()) == [result.path]
    assert result.check.runtime == "TorchScript" and result.check.threshold == 0.99999 and result.check.passed
    extra = {"modelzoo.json": ""}
    torch.jit.load(str(result.path), _extra_files=extra)  # the preprocessing, for whoever deploys it
    assert json.loads(extra["modelzoo.json"])["input_size"] == [256, 128]

    comparison = check_accuracy(model, result.path, "market1501", tiny_market, format="torchscript", num_workers=0)
    assert comparison.exported.settings["backend"] == "torchscript"
    assert comparison.pytorch.settings["backend"] == "torch"
    assert comparison.map_change == pytest.approx(comparison.exported.mAP - comparison.pytorch.mAP)
    assert abs(comparison.map_change) <= 0.5 and abs(comparison.rank1_change) <= 0.5


@pytest.mark.slow
@pytest.mark.skipif(not cpu_has_native_bf16(), reason="OpenVINO bf16 needs a CPU with native bf16")
def test_openvino_bf16_is_checked_at_its_own_threshold_and_its_accuracy_reported(tiny_market, mirror, tmp_path,
                                                                                  capsys):
    published(NAME, DATASET, mirror)
    output = tmp_path / "out" / "net.xml"
    output.parent.mkdir()
    assert main(["export", NAME, DATASET, "--format", "openvino", "--precision", "bf16", "-o", str(output),
                 "--check-accuracy", "--data-root", str(tiny_market), "--workers", "0", "--no-progress"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"wrote {output} and {output.with_suffix('.bin')}"
    assert printed[1].startswith("OpenVINO bf16 equals PyTorch fp32 on 4 images") and "(needs 0.999)" in printed[1]
    rows = table_rows(printed[3:])
    assert list(rows) == ["torch fp32", "openvino bf16", "difference"]
    assert abs(rows["difference"][0]) <= 0.5 and abs(rows["difference"][1]) <= 0.5
