"""OpenVINO on the CPU: the artifact is the network's IR (``model.xml`` + ``model.bin``), float32 weights.

The inference precision is always set explicitly: OpenVINO's CPU plugin
runs bf16 by default on CPUs with native bf16, so fp32 must be asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelzoo.inference.runtimes.backend import Backend
from modelzoo.inference.runtimes.base import Runtime, as_cpu_array

#: OpenVINO's name for each precision (``INFERENCE_PRECISION_HINT``).
INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16"}


class OpenVINOBackend(Backend):
    """OpenVINO's CPU plugin, latency hint: one request uses every core."""

    name, package, extra, artifact = "openvino", "openvino", "openvino", "model.xml"

    def build(self, onnx_path: Path, folder: Path, precision: str, device: torch.device, max_batch: int) -> Path:
        import openvino

        network = openvino.convert_model(str(onnx_path))
        target = folder / self.artifact
        openvino.save_model(network, str(target), compress_to_fp16=False)  # the weights stay float32
        onnx_path.unlink()
        return target

    def open(self, artifact: Path, precision: str, device: torch.device) -> Runtime:
        import openvino

        config = {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[precision], "PERFORMANCE_HINT": "LATENCY"}
        compiled = openvino.Core().compile_model(str(artifact), "CPU", config)
        return OpenVINORuntime(compiled, precision)


class OpenVINORuntime(Runtime):
    """An OpenVINO compiled model on the CPU."""

    backend = "openvino"

    def __init__(self, compiled: Any, precision: str) -> None:
        self.compiled, self.precision = compiled, precision
        self.request = compiled.create_infer_request()

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        batch = as_cpu_array(pixels)
        result = self.request.infer({0: batch})
        return torch.from_numpy(np.array(result[self.compiled.output(0)], dtype=np.float32))
