"""A zoo network as an ONNX file: the graph every compiled runtime starts from.

``torch.onnx.export`` with the ``torch.export`` based exporter, in eval mode,
with a dynamic batch dimension (input ``images``: ``(N, 3, H, W)``; output
``features``).  The file records the preprocessing it expects (input size,
mean, std, RGB) in its metadata, for whoever deploys it.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch
from torch import nn

from modelzoo.errors import BackendUnavailableError, ExportError, one_line
from modelzoo.models import ModelInfo

INPUT_NAME, OUTPUT_NAME = "images", "features"


def require(*modules: str, extra: str = "export", what: str = "ONNX export") -> None:
    """Raise, naming the extra to install, unless every module can be imported.

    Raises:
        BackendUnavailableError: a module is missing (an ``ImportError``).
    """
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise BackendUnavailableError(f"{what} needs {', '.join(missing)}: pip install 'reid-modelzoo[{extra}]'")


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters are (the CPU for a model without any)."""
    return next(iter(model.parameters()), torch.empty(0)).device


def write_onnx(model: nn.Module, path: Path, info: ModelInfo) -> None:
    """Export ``model`` (in eval mode; its mode is restored) to ``path``, with ``info``'s preprocessing as metadata.

    Raises:
        BackendUnavailableError: onnx or onnxscript is missing.
        ExportError: the exporter cannot capture the network.
    """
    require("onnx", "onnxscript")
    height, width = info.preprocessing.input_size
    example = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(0)).to(model_device(model))
    was_training = model.training
    model.eval()
    try:
        torch.onnx.export(  # verbose=False: no progress lines on stdout
            model, (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim.DYNAMIC},), dynamo=True, external_data=False, verbose=False,
        )
    except Exception as exc:  # the exporter raises many types for code it cannot capture
        raise ExportError(f"{info.name} cannot be exported to ONNX ({one_line(exc)}); "
                          "use backend='torch' for it") from exc
    finally:
        model.train(was_training)
    _write_metadata(path, info)


def _write_metadata(path: Path, info: ModelInfo) -> None:
    import onnx

    proto = onnx.load(str(path))
    pre = info.preprocessing
    entries = {"modelzoo_model": info.record.name}
    if info.checkpoint is not None:
        entries["modelzoo_checkpoint"] = info.checkpoint.name
    entries.update(input_size=json.dumps(list(pre.input_size)), mean=json.dumps(list(pre.mean)),
                   std=json.dumps(list(pre.std)), color="RGB", resize=pre.interpolation, distance=info.distance)
    for key, value in entries.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
