"""ONNX Runtime: the ONNX file itself is the artifact; float32, on the CPU (or CUDA with onnxruntime-gpu)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from modelzoo.devices import available_cpus
from modelzoo.errors import BackendUnavailableError
from modelzoo.inference.runtimes.backend import Backend
from modelzoo.inference.runtimes.base import Runtime, as_cpu_array
from modelzoo.inference.runtimes.onnx_file import INPUT_NAME, OUTPUT_NAME


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime with every graph optimisation, one thread per CPU this process may use."""

    name, package, extra, artifact = "onnxruntime", "onnxruntime", "onnxruntime", "model.onnx"

    def build(self, onnx_path: Path, folder: Path, precision: str, device: torch.device, max_batch: int) -> Path:
        target = folder / self.artifact
        if onnx_path != target:
            onnx_path.replace(target)
        return target

    def open(self, artifact: Path, precision: str, device: torch.device) -> Runtime:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = available_cpus()
        options.log_severity_level = 3  # errors only: its warnings go to stderr, not to logging
        providers: list[Any] = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                raise BackendUnavailableError("this onnxruntime has no CUDA provider: pip install onnxruntime-gpu, "
                                              "or use device='cpu'")
            providers = [("CUDAExecutionProvider", {"device_id": device.index or 0})]
        session = onnxruntime.InferenceSession(str(artifact), options, providers=providers)
        return OnnxRuntimeRuntime(session, device)


class OnnxRuntimeRuntime(Runtime):
    """An ONNX Runtime session over the zoo network's ONNX file (inputs are taken on the CPU)."""

    backend = "onnxruntime"

    def __init__(self, session: Any, device: torch.device) -> None:
        self.session, self.device = session, device

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        batch = as_cpu_array(pixels)
        return torch.from_numpy(self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0])
