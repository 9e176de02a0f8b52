"""Which backend runs which precision where: yes, or a refusal that says why (never slow emulation)."""

from __future__ import annotations

import pytest
import torch

from modelzoo.errors import PrecisionError
from modelzoo.inference import precision

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


@pytest.mark.parametrize("backend, device, wanted, native, refusal", [
    ("torch", CPU, "fp32", False, None),
    ("torch", CPU, "bf16", True, None),
    ("torch", CPU, "bf16", False, "no native bf16"),
    ("torch", CPU, "fp16", True, "needs a CUDA device"),
    ("openvino", CPU, "bf16", True, None),
    ("openvino", CPU, "bf16", False, "no native bf16"),
    ("openvino", CPU, "fp16", True, "needs a CUDA device"),
    ("onnxruntime", CPU, "bf16", True, "float32 only"),
    ("onnxruntime", CUDA, "fp16", True, "float32 only"),
    ("tensorrt", CUDA, "fp16", False, None),
    ("tensorrt", CUDA, "bf16", False, "precision='fp16'"),
    ("torch", CUDA, "fp16", False, None),
])
def test_each_backend_runs_only_what_the_hardware_has(backend, device, wanted, native, refusal, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    if refusal is None:
        precision.check_precision(backend, device, wanted)
    else:
        with pytest.raises(PrecisionError, match=refusal):
            precision.check_precision(backend, device, wanted)


@pytest.mark.parametrize("backend, device, match", [
    ("tensorrt", CPU, "runs on cuda.*device='cuda'"),
    ("openvino", CUDA, "runs on cpu"),
    ("tflite", CPU, "not one of torch, onnxruntime, openvino, tensorrt"),
])
def test_a_backend_off_its_devices_or_unknown_is_refused(backend, device, match):
    with pytest.raises(ValueError, match=match):
        precision.check_precision(backend, device, "fp32")


def test_an_unknown_precision_names_the_known_ones():
    with pytest.raises(ValueError, match="fp32, bf16, fp16"):
        precision.check_precision("torch", CPU, "int8")
