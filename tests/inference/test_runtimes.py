"""Compiled runtimes: the same features as PyTorch, proven before use, compiled once and cached beside the weights."""

from __future__ import annotations

import dataclasses
import importlib.util
import logging

import pytest
import torch
from torch import nn

import modelzoo
from modelzoo import manifest
from modelzoo.errors import BackendUnavailableError, ExportError, PrecisionError, RuntimeCheckError
from modelzoo.inference import precision
from modelzoo.inference.runtimes import compiled, load_runtime, onnx_file
from modelzoo.models import INFO_ATTRIBUTE, attach_info, model_info

CHECKPOINT = "osnet_x0_25.market1501"  # lends its preprocessing (256x128) and its cache folder
CPU = torch.device("cpu")
CPU_BACKENDS = ["onnxruntime", "openvino"]


class SmallReID(nn.Module):
    """Conv, BatchNorm, ReLU, pooling and a linear embedding: what the zoo's networks are made of."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 16)
        with torch.no_grad():  # BatchNorm statistics that are not the identity
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


class Drifting(SmallReID):
    """Random at inference (dropout forced on): no compiled artifact can reproduce it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.dropout(super().forward(x), p=0.5, training=True)


def with_checkpoint(model: nn.Module) -> nn.Module:
    """``model`` as if it held the weights of CHECKPOINT (so its artifacts are cached in that checkpoint's folder)."""
    info = model_info(attach_info(model, CHECKPOINT))
    setattr(model, INFO_ATTRIBUTE, dataclasses.replace(info, checkpoint=manifest.resolve_checkpoint(CHECKPOINT)))
    return model.eval()


def compiled_folder():
    from modelzoo import config
    from modelzoo.fetch.download import store_for

    return store_for(manifest.resolve_checkpoint(CHECKPOINT), config.fetch_settings()).folder / "compiled"


def batch(count: int = 5, seed: int = 3) -> torch.Tensor:
    return torch.randn(count, 3, 256, 128, generator=torch.Generator().manual_seed(seed))


def torch_features(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(pixels)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_compiled_features_equal_torch_and_the_proof_is_kept(backend):
    model = with_checkpoint(SmallReID())
    runtime = load_runtime(model, backend, device=CPU)
    assert runtime.backend == backend and runtime.precision == "fp32"
    assert runtime.check is not None and runtime.check.passed and runtime.check.images == 4
    pixels = batch()
    got, expected = runtime(pixels), torch_features(model, pixels)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert torch.nn.functional.cosine_similarity(got, expected).min() >= 0.99999
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    (artifact,) = compiled_folder().iterdir()
    assert artifact.name.startswith(f"{backend}-fp32-") and (artifact / "parity.json").is_file()


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_an_artifact_is_compiled_once_and_checked_each_time_it_is_opened(backend, monkeypatch):
    model = with_checkpoint(SmallReID())
    load_runtime(model, backend, device=CPU)
    exports = []
    monkeypatch.setattr(compiled, "write_onnx", lambda *a: exports.append(a))
    compared = []
    real_compare = compiled.ReferenceBatch.compare
    monkeypatch.setattr(compiled.ReferenceBatch, "compare",
                        lambda self, *a, **k: compared.append(a) or real_compare(self, *a, **k))
    again = load_runtime(model, backend, device=CPU)
    assert exports == [] and len(compared) == 1 and again.check.passed


def test_other_weights_get_their_own_artifact():
    load_runtime(with_checkpoint(SmallReID(seed=0)), "onnxruntime", device=CPU)
    tuned = with_checkpoint(SmallReID(seed=1))  # a fine-tuned copy of the "same" checkpoint
    runtime = load_runtime(tuned, "onnxruntime", device=CPU)
    pixels = batch()
    torch.testing.assert_close(runtime(pixels), torch_features(tuned, pixels), rtol=1e-4, atol=1e-5)
    assert len(list(compiled_folder().iterdir())) == 2


def assert_nothing_kept() -> None:
    folder = compiled_folder()
    assert not folder.exists() or list(folder.iterdir()) == []
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".fetch-")] == []  # no temporary folder


def test_an_artifact_that_computes_something_else_is_an_error_and_nothing_is_kept():
    # ONNX Runtime runs the dropout the network forces on, so its features differ from PyTorch's
    with pytest.raises(RuntimeCheckError, match="not close enough to PyTorch.*nothing was kept"):
        load_runtime(with_checkpoint(Drifting()), "onnxruntime", device=CPU)
    assert_nothing_kept()


def test_a_network_the_runtime_cannot_compile_is_an_error_and_nothing_is_kept():
    # OpenVINO refuses a dropout in training mode: one line naming the runtime, not its long report
    with pytest.raises(ExportError, match=r"^openvino cannot compile .*nothing was kept. Use backend='torch'"):
        load_runtime(with_checkpoint(Drifting()), "openvino", device=CPU)
    assert_nothing_kept()


@pytest.mark.parametrize("backend, damaged", [("onnxruntime", "model.onnx"), ("openvino", "model.bin")])
def test_a_damaged_cached_artifact_is_compiled_again(backend, damaged, caplog):
    model = with_checkpoint(SmallReID())
    load_runtime(model, backend, device=CPU)
    (artifact,) = compiled_folder().iterdir()
    (artifact / damaged).write_bytes(b"\0" * 64)
    with caplog.at_level(logging.WARNING):
        runtime = load_runtime(model, backend, device=CPU)
    assert "compiling it again" in caplog.text
    pixels = batch()
    torch.testing.assert_close(runtime(pixels), torch_features(model, pixels), rtol=1e-4, atol=1e-5)


def test_a_model_without_zoo_weights_is_compiled_but_not_cached():
    model = attach_info(SmallReID(), CHECKPOINT).eval()  # no checkpoint: nowhere to keep it
    runtime = load_runtime(model, "onnxruntime", device=CPU)
    pixels = batch(2)
    torch.testing.assert_close(runtime(pixels), torch_features(model, pixels), rtol=1e-4, atol=1e-5)
    assert not compiled_folder().exists()


def test_a_network_the_zoo_does_not_know_is_refused():
    with pytest.raises(ValueError, match="attach_info"):
        load_runtime(SmallReID(), "onnxruntime", device=CPU)


@pytest.mark.parametrize("backend, extra", [("openvino", "openvino"), ("onnxruntime", "onnxruntime"),
                                            ("tensorrt", "tensorrt")])
def test_a_missing_backend_package_names_its_extra(backend, extra, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == backend else
                        real_find_spec(name, *a))
    device = torch.device("cuda", 0) if backend == "tensorrt" else CPU
    with pytest.raises(BackendUnavailableError, match=rf"pip install 'reid-modelzoo\[{extra}\]'"):
        from modelzoo.inference.runtimes import compiled_backend

        compiled_backend(backend)
    if backend != "tensorrt":
        with pytest.raises(ImportError):  # an ImportError, for code that catches those
            load_runtime(with_checkpoint(SmallReID()), backend, device=device)


def test_tensorrt_on_the_cpu_is_refused_before_any_work(monkeypatch):
    monkeypatch.setattr(compiled, "write_onnx", lambda *a: pytest.fail("nothing may be exported"))
    with pytest.raises(ValueError, match="runs on cuda"):
        load_runtime(with_checkpoint(SmallReID()), "tensorrt", device=CPU)


def test_openvino_bf16_is_close_to_fp32_where_the_cpu_has_it(monkeypatch):
    from modelzoo.devices import cpu_has_native_bf16

    model = with_checkpoint(SmallReID())
    if not cpu_has_native_bf16():
        with pytest.raises(PrecisionError, match="no native bf16"):
            load_runtime(model, "openvino", device=CPU, precision="bf16")
        return
    runtime = load_runtime(model, "openvino", device=CPU, precision="bf16")
    assert runtime.check.threshold == 0.999
    pixels = batch()
    assert torch.nn.functional.cosine_similarity(runtime(pixels), torch_features(model, pixels)).min() >= 0.999


def test_extractor_and_extract_features_take_a_backend(tmp_path):
    from PIL import Image

    model = with_checkpoint(SmallReID())
    paths = []
    for index in range(3):
        paths.append(tmp_path / f"{index}.jpg")
        Image.new("RGB", (64 + 10 * index, 128), (40 * index, 90, 200)).save(paths[-1])
    expected = modelzoo.extract_features(model, paths, device="cpu", num_workers=0, progress=False)
    for backend in CPU_BACKENDS:
        got = modelzoo.extract_features(model, paths, device="cpu", num_workers=0, progress=False, backend=backend)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        extractor = modelzoo.FeatureExtractor(model, device="cpu", backend=backend)
        torch.testing.assert_close(extractor(paths), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.cuda
@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None, reason="needs the tensorrt package")
@pytest.mark.parametrize("wanted", ["fp32", "fp16"])
def test_tensorrt_equals_torch_on_cuda(wanted):
    model = with_checkpoint(SmallReID()).cuda()
    runtime = load_runtime(model, "tensorrt", device=torch.device("cuda"), precision=wanted, max_batch=8)
    pixels = batch().cuda()
    threshold = compiled.COSINE_THRESHOLD[wanted]
    assert torch.nn.functional.cosine_similarity(runtime(pixels), torch_features(model, pixels)).min() >= threshold


def test_the_onnx_file_records_the_preprocessing(tmp_path):
    import json

    import onnx

    model = attach_info(SmallReID(), CHECKPOINT)
    path = tmp_path / "small.onnx"
    onnx_file.write_onnx(model, path, model_info(model))
    metadata = {entry.key: entry.value for entry in onnx.load(str(path)).metadata_props}
    assert json.loads(metadata["input_size"]) == [256, 128] and metadata["color"] == "RGB"
    assert precision.BACKENDS == ("torch", "onnxruntime", "openvino", "tensorrt")
