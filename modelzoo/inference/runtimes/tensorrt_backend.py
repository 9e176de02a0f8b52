"""TensorRT on CUDA: the artifact is a serialized engine built from the ONNX file (fp32 or fp16).

The engine has one optimisation profile with batch sizes 1 to ``max_batch``
(the extractor's batch size), so a larger batch is run in slices.  Written
against TensorRT 10's tensor API (``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``); inputs and outputs stay torch CUDA tensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from modelzoo.errors import ExportError
from modelzoo.inference.runtimes.backend import Backend
from modelzoo.inference.runtimes.base import Runtime
from modelzoo.inference.runtimes.onnx_file import INPUT_NAME, OUTPUT_NAME

WORKSPACE_BYTES = 2 << 30


class TensorRTBackend(Backend):
    """A TensorRT engine with a dynamic batch dimension."""

    name, package, extra, artifact = "tensorrt", "tensorrt", "tensorrt", "model.engine"

    def build(self, onnx_path: Path, folder: Path, precision: str, device: torch.device, max_batch: int) -> Path:
        import tensorrt as trt

        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ExportError(f"TensorRT cannot parse the ONNX file: {errors[:300]}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        shape = tuple(network.get_input(0).shape)[1:]
        profile = builder.create_optimization_profile()
        profile.set_shape(INPUT_NAME, (1, *shape), (max_batch, *shape), (max_batch, *shape))
        config.add_optimization_profile(profile)
        with torch.cuda.device(device):
            engine = builder.build_serialized_network(network, config)
        if engine is None:
            raise ExportError("TensorRT could not build an engine from the ONNX file (see its log above)")
        target = folder / self.artifact
        target.write_bytes(bytes(engine))
        onnx_path.unlink()
        return target

    def open(self, artifact: Path, precision: str, device: torch.device) -> Runtime:
        import tensorrt as trt

        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        with torch.cuda.device(device):
            engine = runtime.deserialize_cuda_engine(artifact.read_bytes())
        if engine is None:
            raise ExportError(f"TensorRT cannot read the engine {artifact}")
        return TensorRTRuntime(engine, device, precision)


class TensorRTRuntime(Runtime):
    """A TensorRT engine run on torch CUDA tensors, on the current stream."""

    backend = "tensorrt"

    def __init__(self, engine: Any, device: torch.device, precision: str) -> None:
        self.engine, self.device, self.precision = engine, device, precision
        self.context = engine.create_execution_context()
        self.max_batch = int(engine.get_tensor_profile_shape(INPUT_NAME, 0)[2][0])

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        pixels = pixels.to(self.device, torch.float32).contiguous()
        return torch.cat([self._run(pixels[start:start + self.max_batch])
                          for start in range(0, len(pixels), self.max_batch)])

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        self.context.set_input_shape(INPUT_NAME, tuple(batch.shape))
        shape = tuple(self.context.get_tensor_shape(OUTPUT_NAME))
        output = torch.empty(shape, dtype=torch.float32, device=self.device)
        self.context.set_tensor_address(INPUT_NAME, batch.data_ptr())
        self.context.set_tensor_address(OUTPUT_NAME, output.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT failed to run the engine")
        return output
