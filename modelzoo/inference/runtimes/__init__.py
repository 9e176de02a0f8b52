"""Inference runtimes: the same zoo network run by PyTorch, ONNX Runtime, OpenVINO or TensorRT.

* :func:`load_runtime` -- a model from ``get``/``build`` ready to run on a
  backend; a compiled backend's artifact is built once per checkpoint,
  settings and library versions, proven equal to PyTorch and cached beside
  the weights (:mod:`modelzoo.inference.runtimes.compiled`);
* :func:`open_artifact` -- an exported file (``.onnx``, OpenVINO ``.xml``,
  TensorRT ``.engine``, TorchScript ``.pt``) as a runtime.

Every runtime is a :class:`Runtime`: ``runtime(pixels)`` -> float32 features.
``onnxruntime`` and ``openvino`` are optional extras, imported only when used.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from modelzoo.inference.precision import BACKENDS, check_precision
from modelzoo.inference.runtimes.backend import Backend
from modelzoo.inference.runtimes.base import ParityCheck, Runtime
from modelzoo.inference.runtimes.onnxruntime_backend import OnnxRuntimeBackend
from modelzoo.inference.runtimes.openvino_backend import OpenVINOBackend
from modelzoo.inference.runtimes.tensorrt_backend import TensorRTBackend
from modelzoo.inference.runtimes.torch_backend import TorchRuntime
from modelzoo.models import model_info

__all__ = ["BACKENDS", "ParityCheck", "Runtime", "TorchRuntime", "compiled_backend", "load_runtime",
           "open_artifact"]

_COMPILED: dict[str, type[Backend]] = {
    "onnxruntime": OnnxRuntimeBackend, "openvino": OpenVINOBackend, "tensorrt": TensorRTBackend,
}


def compiled_backend(name: str) -> Backend:
    """The compiled backend called ``name``, its package checked.

    Raises:
        ValueError: not a compiled backend.
        BackendUnavailableError: its package (extra) is not installed.
    """
    if name not in _COMPILED:
        raise ValueError(f"{name!r} is not a compiled backend: one of {', '.join(_COMPILED)}")
    backend = _COMPILED[name]()
    backend.require()
    return backend


def load_runtime(
    model: nn.Module,
    backend: str = "torch",
    *,
    device: torch.device,
    precision: str = "fp32",
    channels_last: bool | None = None,
    fold_bn: bool = True,
    max_batch: int = 64,
    cache_dir: str | Path | None = None,
) -> Runtime:
    """``model`` ready to run on ``backend``.

    Args:
        model: a model from ``get``/``build`` (or with ``attach_info``); a
            compiled backend needs its preprocessing to know the input size.
        backend: ``"torch"``, ``"onnxruntime"``, ``"openvino"`` or ``"tensorrt"``.
        device: where it runs.
        precision: ``"fp32"``, or ``"bf16"`` / ``"fp16"`` where native.
        channels_last, fold_bn: the torch backend's settings.
        max_batch: the largest batch a TensorRT engine takes.
        cache_dir: where compiled artifacts are kept (the weights' cache).

    Raises:
        ValueError, PrecisionError: a backend, device or precision that cannot run.
        BackendUnavailableError: the backend's extra is not installed.
        ExportError, RuntimeCheckError: compiling failed, or the result is not PyTorch's.
    """
    check_precision(backend, device, precision)
    if backend == "torch":
        return TorchRuntime(model, device, precision, channels_last=channels_last, fold_bn=fold_bn)
    from modelzoo.inference.runtimes.compiled import compiled_runtime

    chosen = compiled_backend(backend)
    info = model_info(model)
    if info is None:
        raise ValueError(f"backend={backend!r} compiles a model from modelzoo.get or modelzoo.build (its input "
                         "size is needed); for another network call modelzoo.attach_info first")
    return compiled_runtime(model, info, chosen, device, precision, max_batch=max_batch, cache_dir=cache_dir)


def open_artifact(path: str | Path, backend: str, *, device: torch.device, precision: str = "fp32") -> Runtime:
    """An exported artifact as a runtime: ``.onnx`` in ONNX Runtime, ``.xml`` in OpenVINO, ``.engine`` in
    TensorRT, or a TorchScript file with ``backend="torchscript"``.

    Raises:
        ValueError, PrecisionError: as :func:`load_runtime`.
        BackendUnavailableError: the backend's extra is not installed.
    """
    if backend == "torchscript":
        from modelzoo.inference.runtimes.torchscript import TorchScriptRuntime

        return TorchScriptRuntime(Path(path), device)
    check_precision(backend, device, precision)
    return compiled_backend(backend).open(Path(path), precision, device)
