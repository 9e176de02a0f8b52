"""ONNX export of a zoo network, checked against PyTorch before the file is kept.

Users export re-ID networks for TensorRT, OpenVINO or ONNX Runtime, and
exported files have come out giving the same output for every image, or
wrong ones (user-pain row 18).  :func:`export_onnx` exports the network in
eval mode with a dynamic batch dimension (``torch.onnx.export`` with the
``torch.export`` based exporter), then runs the file in ONNX Runtime on
several different images and on a batch of one, and keeps it only if every
feature equals PyTorch's within float tolerance.  The file records the
preprocessing it expects (input size, mean, std, RGB) in its metadata.

Needs the ``export`` extra: ``pip install 'reid-modelzoo[export]'`` (onnx,
onnxscript, onnxruntime).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from modelzoo.errors import ExportError
from modelzoo.fetch.store import unique_temp_file
from modelzoo.models import ModelInfo, get, model_info

logger = logging.getLogger(__name__)

INPUT_NAME, OUTPUT_NAME = "images", "features"
#: Largest difference allowed, relative to the largest feature value.
RELATIVE_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ExportCheck:
    """How the exported file compared with PyTorch."""

    images: int
    max_abs_diff: float
    max_abs_value: float

    def summary(self) -> str:
        return (f"ONNX Runtime equals PyTorch on {self.images} images: max |diff| {self.max_abs_diff:.2e} "
                f"(features up to {self.max_abs_value:.3g})")


def export_onnx(
    model: str | nn.Module,
    output: str | os.PathLike,
    dataset: str | None = None,
    *,
    check: bool = True,
) -> tuple[Path, ExportCheck | None]:
    """Export a network to ONNX (input ``images``: ``(N, 3, H, W)``; output ``features``).

    Args:
        model: a zoo name (its trained weights, via :func:`modelzoo.get`) or a
            model from ``get``/``build``; it is exported in eval mode and left
            in the mode it was in.
        output: the ``.onnx`` file to write; written whole or not at all.
        dataset: the checkpoint, when ``model`` is a name.
        check: run the file in ONNX Runtime and compare it with PyTorch
            before keeping it.

    Returns:
        The file's path and the comparison (None with ``check=False``).

    Raises:
        ImportError: the ``export`` extra is not installed.
        ExportError: the exported file computes something else.
    """
    _require("onnx", "onnxscript", *(["onnxruntime"] if check else []))
    if isinstance(model, str):
        model = get(model, dataset, device="cpu")
    elif dataset is not None:
        raise ValueError("dataset= names the checkpoint of a model given by name; the model given holds its weights")
    info = _info(model)
    height, width = info.preprocessing.input_size
    target = Path(output)
    temp = unique_temp_file(target.parent, ".export-", target.name)
    was_training = model.training
    model.eval()
    try:
        _export(model, temp, height, width)
        _write_metadata(temp, info)
        result = _compare_with_torch(model, temp, height, width) if check else None
        os.replace(temp, target)
    finally:
        model.train(was_training)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    if result is not None:
        logger.info("%s: %s", target.name, result.summary())
    return target, result


def _require(*modules: str) -> None:
    import importlib.util

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"ONNX export needs {', '.join(missing)}: pip install 'reid-modelzoo[export]'")


def _info(model: nn.Module) -> ModelInfo:
    info = model_info(model)
    if info is None:
        raise ValueError("cannot tell the model's input size and preprocessing: export a model from "
                         "modelzoo.get or modelzoo.build")
    return info


def _device(model: nn.Module) -> torch.device:
    return next(iter(model.parameters()), torch.empty(0)).device


def _export(model: nn.Module, path: Path, height: int, width: int) -> None:
    example = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(0)).to(_device(model))
    torch.onnx.export(  # verbose=False: no progress lines on stdout
        model, (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: torch.export.Dim.DYNAMIC},), dynamo=True, external_data=False, verbose=False,
    )


def _write_metadata(path: Path, info: ModelInfo) -> None:
    """Record the preprocessing the file expects, for whoever deploys it."""
    import json

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


def _compare_with_torch(model: nn.Module, path: Path, height: int, width: int) -> ExportCheck:
    """Run the file in ONNX Runtime on different images and on a batch of one; raise unless equal to PyTorch."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = torch.randn(4, 3, height, width, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(images.to(_device(model))).float().cpu()
    batches = [images[:3].numpy(), images[3:].numpy()]  # a batch of one too: the batch size is dynamic
    got = torch.cat([torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]) for batch in batches])
    if got.shape != expected.shape:
        raise ExportError(f"the exported file gives features of shape {tuple(got.shape)}, PyTorch "
                          f"{tuple(expected.shape)}; nothing was written")
    scale = float(expected.abs().max())
    diff = float((got - expected).abs().max())
    if not diff <= RELATIVE_TOLERANCE * max(scale, 1e-6):
        raise ExportError(f"the exported file differs from PyTorch by up to {diff:.3g} (features up to "
                          f"{scale:.3g}); nothing was written. Please report it with your torch and onnx versions")
    return ExportCheck(images=len(images), max_abs_diff=diff, max_abs_value=scale)
