"""Export a zoo network (ONNX, OpenVINO IR, TorchScript, TensorRT engine), proven equal to PyTorch before it is kept.

Users export re-ID networks for TensorRT, OpenVINO or ONNX Runtime, and
exported files have come out giving the same output for every image, or
wrong ones (user-pain row 18).  :func:`export` writes the network in eval
mode with a dynamic batch dimension, opens what it wrote in the runtime it is
for, runs it on a fixed batch (as three images and one) and keeps it only if
every feature row has a cosine similarity to PyTorch float32's of at least
0.99999 (0.999 at reduced precision) -- the check the compiled runtimes of
:mod:`modelzoo.inference.runtimes` pass.  A file that fails is not kept,
nor is any temporary file.  An ONNX file records the preprocessing it
expects (input size, mean, std, RGB) in its metadata, a TorchScript file in
its ``modelzoo.json`` extra file.

:func:`check_accuracy` then evaluates the exported file on a dataset and
reports its Rank-1 / mAP next to the PyTorch model's: what the format costs.

Formats and what they need:

* ``onnx`` -- the ``export`` extra (onnx, onnxscript; onnxruntime for the check);
* ``openvino`` -- the extra and ``openvino``: ``NAME.xml`` + ``NAME.bin``;
* ``torchscript`` -- nothing: ``torch.jit.trace``, a ``.pt`` file;
* ``tensorrt`` -- the extra, ``tensorrt`` and a CUDA device: an ``.engine``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from modelzoo.devices import resolve_device
from modelzoo.errors import DeviceError, ExportError, PrecisionError, one_line
from modelzoo.inference.precision import check_precision
from modelzoo.inference.runtimes import compiled_backend, open_artifact
from modelzoo.inference.runtimes.base import ParityCheck
from modelzoo.inference.runtimes.compiled import ReferenceBatch
from modelzoo.inference.runtimes.onnx_file import model_device, require, write_onnx
from modelzoo.models import ModelInfo, get, model_info

if TYPE_CHECKING:
    from modelzoo.evaluation.pipeline import EvaluationResult

logger = logging.getLogger(__name__)

#: Each format's file suffix.
FORMATS = {"onnx": ".onnx", "openvino": ".xml", "torchscript": ".pt", "tensorrt": ".engine"}
#: The runtime that opens each format (a name for :func:`~modelzoo.inference.runtimes.open_artifact`).
FORMAT_BACKENDS = {"onnx": "onnxruntime", "openvino": "openvino", "torchscript": "torchscript",
                   "tensorrt": "tensorrt"}
RUNTIME_NAMES = {"onnx": "ONNX Runtime", "openvino": "OpenVINO", "torchscript": "TorchScript",
                 "tensorrt": "TensorRT"}
TORCHSCRIPT_METADATA = "modelzoo.json"


@dataclass(frozen=True)
class ExportCheck(ParityCheck):
    """How the exported file, run in its runtime, compared with the PyTorch model (float32).

    Attributes:
        runtime: what ran the file: ``"ONNX Runtime"``, ``"OpenVINO bf16"``, ...
        max_abs_value: the largest absolute PyTorch feature value (the scale of ``max_abs_diff``).
    """

    runtime: str = ""
    max_abs_value: float = 0.0

    def summary(self) -> str:
        """One line: ``ONNX Runtime equals PyTorch fp32 on 4 images: lowest cosine ...``."""
        return f"{self.runtime} {super().summary()}"


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote.

    Attributes:
        format: ``"onnx"``, ``"openvino"``, ``"torchscript"`` or ``"tensorrt"``.
        precision: the precision the file was checked (and, for TensorRT, built) at.
        device: where it was checked.
        paths: the files written, the one to open first (OpenVINO: ``.xml``, then ``.bin``).
        check: the comparison with PyTorch (None with ``check=False``).
    """

    format: str
    precision: str
    device: str
    paths: tuple[Path, ...]
    check: ExportCheck | None

    @property
    def path(self) -> Path:
        """The file to open (the ``.xml`` of an OpenVINO IR)."""
        return self.paths[0]


@dataclass(frozen=True)
class AccuracyComparison:
    """The exported file's accuracy next to the PyTorch model's on one test set (percentages).

    Attributes:
        format, precision: the exported file's format and precision.
        pytorch: the PyTorch model's result (float32).
        exported: the exported file's result.
    """

    format: str
    precision: str
    pytorch: EvaluationResult
    exported: EvaluationResult

    @property
    def rank1_change(self) -> float:
        """Exported Rank-1 minus PyTorch's, in points."""
        return self.exported.rank1 - self.pytorch.rank1

    @property
    def map_change(self) -> float:
        """Exported mAP minus PyTorch's, in points."""
        return self.exported.mAP - self.pytorch.mAP

    def table(self) -> str:
        """Four lines for a terminal: the header, PyTorch's row, the exported file's, the difference."""
        rows = [("torch fp32", f"{self.pytorch.rank1:.1f}", f"{self.pytorch.mAP:.1f}"),
                (f"{self.format} {self.precision}", f"{self.exported.rank1:.1f}", f"{self.exported.mAP:.1f}"),
                ("difference", f"{self.rank1_change:+.1f}", f"{self.map_change:+.1f}")]
        width = max(len(self.pytorch.test_set), *(len(label) for label, _, _ in rows)) + 2
        lines = [f"{self.pytorch.test_set:<{width}}{'R1':>7}{'mAP':>7}"]
        lines += [f"{label:<{width}}{rank1:>7}{mAP:>7}" for label, rank1, mAP in rows]
        return "\n".join(lines)


def check_format(format: str, device: str | torch.device | None = None, precision: str = "fp32") -> torch.device:
    """Refuse a format, device or precision that cannot work here, before any work; the device to check on.

    Args:
        format: ``"onnx"``, ``"openvino"``, ``"torchscript"`` or ``"tensorrt"``.
        device: where the file is checked (None: CUDA for TensorRT, else the CPU).
        precision: ``"fp32"``; ``"bf16"`` for OpenVINO on a CPU with native
            bf16; ``"fp16"`` for TensorRT.

    Raises:
        ValueError: an unknown format or precision, or a device the format's runtime does not run on.
        DeviceError: a device this machine lacks (TensorRT without CUDA).
        PrecisionError: a precision the format's runtime cannot run natively here.
    """
    if format not in FORMATS:
        raise ValueError(f"format {format!r} is not one of {', '.join(FORMATS)}")
    if format == "tensorrt" and not torch.cuda.is_available():
        raise DeviceError("format 'tensorrt' builds a TensorRT engine, which needs a CUDA device, and this machine "
                          "has none; export format 'onnx' here and build the engine on the GPU machine")
    chosen = resolve_device(device if device is not None else "cuda" if format == "tensorrt" else "cpu")
    if format == "torchscript":
        if precision != "fp32":
            raise PrecisionError(f"format 'torchscript' is float32 only, not {precision!r}; use precision 'fp32'")
        return chosen
    check_precision(FORMAT_BACKENDS[format], chosen, precision)
    return chosen


def export(
    model: str | nn.Module,
    output: str | os.PathLike,
    dataset: str | None = None,
    *,
    format: str = "onnx",
    precision: str = "fp32",
    check: bool = True,
    device: str | torch.device | None = None,
    max_batch: int = 64,
) -> ExportResult:
    """Export a network (input ``(N, 3, H, W)`` preprocessed pixels; output ``(N, D)`` features).

    Args:
        model: a zoo name (its trained weights, via :func:`modelzoo.get`) or a
            model from ``get``/``build``; it is exported in eval mode and left
            in the mode it was in.
        output: the file to write (``.onnx``, ``.xml`` -- its ``.bin`` is
            written beside it --, ``.pt``, ``.engine``); written whole or not at all.
        dataset: the checkpoint, when ``model`` is a name.
        format: ``"onnx"``, ``"openvino"``, ``"torchscript"`` or ``"tensorrt"``.
        precision: what the file is checked at: ``"fp32"``, ``"bf16"``
            (OpenVINO on a native-bf16 CPU) or ``"fp16"`` (TensorRT, which
            builds the engine at it).
        check: open the file in its runtime and compare it with PyTorch before keeping it.
        device: where it is checked (None: CUDA for TensorRT, else the CPU).
        max_batch: the largest batch a TensorRT engine takes.

    Returns:
        The files written and the comparison with PyTorch.

    Raises:
        ValueError, DeviceError, PrecisionError: as :func:`check_format`; or a model without an input size.
        BackendUnavailableError: a package the format needs is not installed (an ``ImportError``).
        ExportError: the network cannot be exported, or the file computes something else (nothing written).
    """
    chosen = check_format(format, device, precision)
    _require(format, check)
    targets = _targets(Path(output), format)
    module = _model(model, dataset)
    info = _info(module)
    folder = Path(tempfile.mkdtemp(prefix=".export-", dir=targets[0].parent))
    try:
        built = _WRITERS[format](module, info, folder, precision, chosen, max_batch)
        result = _prove(module, info, built[0], format, precision, chosen) if check else None
        _move_into_place(built, targets)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if result is not None:
        logger.info("%s: %s", targets[0].name, result.summary())
    return ExportResult(format=format, precision=precision, device=str(chosen), paths=tuple(targets), check=result)


def export_onnx(
    model: str | nn.Module,
    output: str | os.PathLike,
    dataset: str | None = None,
    *,
    check: bool = True,
) -> tuple[Path, ExportCheck | None]:
    """Export a network to ONNX (input ``images``: ``(N, 3, H, W)``; output ``features``).

    ``export(model, output, dataset, format="onnx", check=check)``, checked in ONNX Runtime on the CPU.

    Returns:
        The file's path and the comparison (None with ``check=False``).

    Raises:
        ImportError: the ``export`` extra is not installed.
        ExportError: the exported file computes something else.
    """
    result = export(model, output, dataset, format="onnx", check=check)
    return result.path, result.check


def check_accuracy(
    model: nn.Module,
    exported: str | os.PathLike,
    dataset: str,
    data_root: str | Path,
    *,
    format: str,
    precision: str = "fp32",
    device: str | torch.device | None = None,
    split: str | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    progress: bool = False,
) -> AccuracyComparison:
    """Evaluate the PyTorch model (float32) and the file exported from it on ``dataset``.

    Args:
        model: the network the file was exported from (a model from ``get``/``build``).
        exported: the exported file (the ``.xml`` of an OpenVINO IR).
        dataset, data_root, split: the test set, as :func:`modelzoo.evaluate`.
        format, precision, device: how the file is run (as :func:`export`).
        batch_size, num_workers, progress: feature extraction settings.

    Returns:
        Both results and their differences.

    Raises:
        as :func:`check_format` and :func:`modelzoo.evaluate`.
    """
    from modelzoo.evaluation.pipeline import evaluate

    chosen = check_format(format, device, precision)
    options: dict[str, Any] = dict(split=split, batch_size=batch_size, num_workers=num_workers, progress=progress)
    reference = evaluate(model, dataset, data_root, device=chosen, backend="torch", **options)
    runtime = open_artifact(Path(exported), FORMAT_BACKENDS[format], device=chosen, precision=precision)
    result = evaluate(model, dataset, data_root, backend=runtime, **options)
    comparison = AccuracyComparison(format=format, precision=precision, pytorch=reference, exported=result)
    logger.info("%s %s on %s: Rank-1 %+.2f, mAP %+.2f points from PyTorch", format, precision, result.test_set,
                comparison.rank1_change, comparison.map_change)
    return comparison


def _require(format: str, check: bool) -> None:
    """Every package the format needs, checked before any work."""
    if format != "torchscript":
        require("onnx", "onnxscript")
    if format == "onnx" and check:
        require("onnxruntime", extra="export", what="checking an ONNX export")
    elif format in ("openvino", "tensorrt"):
        compiled_backend(FORMAT_BACKENDS[format])


def _model(model: str | nn.Module, dataset: str | None) -> nn.Module:
    if isinstance(model, str):
        return get(model, dataset, device="cpu")
    if dataset is not None:
        raise ValueError("dataset= names the checkpoint of a model given by name; the model given holds its weights")
    return model


def _info(model: nn.Module) -> ModelInfo:
    info = model_info(model)
    if info is None:
        raise ValueError("cannot tell the model's input size and preprocessing: export a model from "
                         "modelzoo.get or modelzoo.build")
    return info


def _targets(output: Path, format: str) -> list[Path]:
    """The files to write: ``output``, and for OpenVINO its ``.bin`` beside it."""
    if format != "openvino":
        return [output]
    if output.suffix != ".xml":
        raise ValueError(f"an OpenVINO IR is an .xml file with a .bin beside it: give {output.stem}.xml, not {output}")
    return [output, output.with_suffix(".bin")]


def _write_onnx_file(model: nn.Module, info: ModelInfo, folder: Path, precision: str, device: torch.device,
                     max_batch: int) -> list[Path]:
    path = folder / "model.onnx"
    write_onnx(model, path, info)
    return [path]


def _write_compiled(format: str) -> Callable[..., list[Path]]:
    """A writer that builds the ONNX file, then compiles it with the format's backend."""
    def write(model: nn.Module, info: ModelInfo, folder: Path, precision: str, device: torch.device,
              max_batch: int) -> list[Path]:
        onnx_path = folder / "network.onnx"
        write_onnx(model, onnx_path, info)
        backend = compiled_backend(FORMAT_BACKENDS[format])
        try:
            artifact = backend.build(onnx_path, folder, precision, device, max_batch)
        except ExportError:
            raise
        except Exception as exc:  # the converters raise their own types
            raise ExportError(f"{RUNTIME_NAMES[format]} cannot convert {info.name} ({one_line(exc)}); nothing "
                              "was written. Export format 'onnx' instead") from exc
        return [artifact, artifact.with_suffix(".bin")] if format == "openvino" else [artifact]

    return write


def _write_torchscript(model: nn.Module, info: ModelInfo, folder: Path, precision: str, device: torch.device,
                       max_batch: int) -> list[Path]:
    height, width = info.preprocessing.input_size
    example = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(0)).to(model_device(model))
    path = folder / "model.pt"
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _jit_deprecation_quiet():  # check_trace=False: the parity check runs the file
            traced = torch.jit.trace(model, example, check_trace=False)
    except Exception as exc:  # the tracer raises many types for code it cannot follow
        raise ExportError(f"{info.name} cannot be traced to TorchScript ({one_line(exc)}); nothing was "
                          "written. Export format 'onnx' instead") from exc
    finally:
        model.train(was_training)
    with _jit_deprecation_quiet():
        torch.jit.save(traced, str(path), _extra_files={TORCHSCRIPT_METADATA: json.dumps(_metadata(info))})
    return [path]


@contextlib.contextmanager
def _jit_deprecation_quiet() -> Iterator[None]:
    """Hide torch's "`torch.jit.*` is deprecated" FutureWarning: TorchScript is the format asked for."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
        yield


def _metadata(info: ModelInfo) -> dict[str, Any]:
    """The preprocessing the file expects, for whoever deploys it."""
    pre = info.preprocessing
    return {"model": info.record.name, "checkpoint": info.checkpoint.name if info.checkpoint else None,
            "input_size": list(pre.input_size), "mean": list(pre.mean), "std": list(pre.std), "color": "RGB",
            "resize": pre.interpolation, "distance": info.distance}


_WRITERS: dict[str, Callable[..., list[Path]]] = {
    "onnx": _write_onnx_file, "openvino": _write_compiled("openvino"), "torchscript": _write_torchscript,
    "tensorrt": _write_compiled("tensorrt"),
}


def _prove(model: nn.Module, info: ModelInfo, artifact: Path, format: str, precision: str,
           device: torch.device) -> ExportCheck:
    """Open the file in its runtime and compare it with PyTorch on the fixed batch; raise unless equal."""
    reference = ReferenceBatch(model, info)
    runtime = open_artifact(artifact, FORMAT_BACKENDS[format], device=device, precision=precision)
    label = RUNTIME_NAMES[format] + ("" if precision == "fp32" else f" {precision}")
    parity = reference.compare(runtime, precision, error=ExportError, outcome="nothing was written")
    check = ExportCheck(**asdict(parity), runtime=label, max_abs_value=float(reference.features.abs().max()))
    if not check.passed:
        raise ExportError(f"the exported file run in {label} differs from PyTorch (lowest cosine "
                          f"{check.min_cosine:.6f}, needs {check.threshold}; max |diff| {check.max_abs_diff:.3g}, "
                          f"features up to {check.max_abs_value:.3g}); nothing was written. Please report it with "
                          "your torch and runtime versions")
    return check


def _move_into_place(built: list[Path], targets: list[Path]) -> None:
    """Move the files to their targets, the one to open last; all of them or none."""
    moved: list[Path] = []
    try:
        for source, target in reversed(list(zip(built, targets))):
            os.replace(source, target)
            moved.append(target)
    except OSError:
        for target in moved:
            target.unlink(missing_ok=True)
        raise
