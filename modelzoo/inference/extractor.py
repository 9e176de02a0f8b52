"""``FeatureExtractor``: embeddings of in-memory person crops, for tracking pipelines.

A tracker holds its detections as arrays cut from a video frame, usually
decoded by OpenCV and therefore BGR.  torchreid's extractor takes them as
they are and silently treats BGR as RGB (user-pain row 14), and leaves
device, reduced precision and batching to the caller (row 19).  Here a NumPy
image must say its channel order (``color="bgr"`` or ``"rgb"``); every image
then goes through the checkpoint's exact eval transform (the one
``evaluate`` uses, so the features are those the published numbers were
measured with), in batches, on the chosen device, precision and runtime (PyTorch, or a
compiled ONNX Runtime / OpenVINO / TensorRT artifact proven equal to it).

A tracker can also hand over the whole frame and its detections:
``extractor(frame, boxes, color="bgr")`` cuts the ``(N, 4)`` xyxy boxes out
of the frame (clamped to it), as BoxMOT and Roboflow's ``reid`` take them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modelzoo.devices import resolve_device
from modelzoo.inference.features import embed
from modelzoo.inference.precision import check_precision
from modelzoo.inference.runtimes import load_runtime
from modelzoo.models import Mirrors, get, model_info

COLORS = ("rgb", "bgr")


class FeatureExtractor:
    """Embeddings of person crops held in memory (NumPy arrays, PIL images) or on disk.

    >>> extractor = modelzoo.FeatureExtractor("osnet_x1_0", "msmt17", device="cuda")  # doctest: +SKIP
    >>> features = extractor(crops, color="bgr")   # OpenCV crops -> (N, 512) float32  # doctest: +SKIP
    >>> features = extractor(frame, boxes, color="bgr")   # a frame and (N, 4) xyxy boxes  # doctest: +SKIP

    Args:
        model: a zoo name (``"osnet_x1_0"``, ``"osnet_x1_0.msmt17"``), loaded
            with :func:`modelzoo.get` (strictly: never random weights), or a
            model from ``get``/``build`` (its eval transform is used).
        dataset: the checkpoint, when ``model`` is a name.
        device: where the network runs (None: CUDA when available, else CPU).
        precision: ``"fp32"`` (default), or ``"bf16"`` (CPUs with native
            bf16, CUDA) / ``"fp16"`` (CUDA), refused where the hardware would
            only emulate it; features are returned as float32 either way.
        backend: ``"torch"`` (default), ``"onnxruntime"``, ``"openvino"`` or
            ``"tensorrt"`` (CUDA): the network compiled once, checked against
            PyTorch and cached beside its weights (needs the extra of the
            same name).
        batch_size: crops per forward pass.
        normalize: L2-normalise each feature (for cosine distances).
        fold_bn: fold BatchNorm into the convolutions of a copy of the network
            (float rounding differences only; the given model is untouched).
        cache_dir, mirrors, offline: where a named model's weights are
            cached and fetched from (as :func:`modelzoo.get`); ``cache_dir``
            is also where a compiled backend's artifact is kept.
        flip: average each feature with that of the horizontally mirrored
            crop, before ``normalize`` (fast-reid's flip test; twice the cost).

    Raises:
        ValueError: an unknown precision or backend, a batch size below 1,
            or a model not from ``get``/``build``.
        PrecisionError: a precision the backend and device cannot run natively.
        BackendUnavailableError: the backend's extra is not installed.
        RuntimeCheckError: the compiled artifact is not equal to PyTorch.
    """

    def __init__(
        self,
        model: str | nn.Module,
        dataset: str | None = None,
        *,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        batch_size: int = 64,
        normalize: bool = False,
        fold_bn: bool = True,
        cache_dir: str | Path | None = None,
        mirrors: Mirrors = None,
        offline: bool | None = None,
        flip: bool = False,
        backend: str = "torch",
    ) -> None:
        self.device = resolve_device(device)
        check_precision(backend, self.device, precision)  # before anything is loaded
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number, at least 1; got {batch_size!r}")
        if isinstance(model, str):
            model = get(model, dataset, device="cpu", cache_dir=cache_dir, mirrors=mirrors, offline=offline)
        elif dataset is not None or mirrors is not None or offline is not None or \
                (cache_dir is not None and backend == "torch"):
            raise ValueError("dataset, mirrors, offline and (with backend='torch') cache_dir say which weights to "
                             "fetch for a model given by name; the model given already holds its weights")
        info = model_info(model)
        if info is None:
            raise ValueError("the model is not from modelzoo.get or modelzoo.build, so its eval transform is "
                             "unknown: pass a zoo name, or a model from modelzoo.get / modelzoo.build")
        self.transform = info.transform
        self.feature_dim = info.record.feature_dim
        self.precision, self.batch_size, self.normalize, self.flip = precision, batch_size, normalize, flip
        self.backend = backend
        self.runtime = load_runtime(model, backend, device=self.device, precision=precision, fold_bn=fold_bn,
                                    max_batch=batch_size, cache_dir=cache_dir)

    def __call__(self, images: Any, boxes: Any = None, *, color: str | None = None) -> torch.Tensor:
        """Features of ``images`` (or of the ``boxes`` of one frame): a float32 ``(N, D)`` CPU tensor, in order.

        Args:
            images: one image or a sequence of them: ``HxWx3`` uint8 NumPy
                arrays (``HxW`` grayscale too), PIL images, or file paths;
                with ``boxes``, the one frame they are cut from.
            boxes: ``(N, 4)`` boxes ``x1, y1, x2, y2`` in the frame's pixels
                (NumPy, a tensor or nested lists), clamped to the frame; one
                row of features per box.
            color: the channel order of NumPy images: ``"bgr"`` for OpenCV
                (``cv2.imread``, video frames), ``"rgb"`` otherwise.  Required
                when a NumPy image is given; PIL images and files are RGB.

        Raises:
            ValueError: a NumPy image without ``color``, of another dtype or
                shape, an unsupported kind of input, boxes not ``(N, 4)``, or
                boxes left empty by clamping (named by their row).
        """
        if color is not None and color not in COLORS:
            raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
        if boxes is not None and hasattr(images, "getbands"):
            color = "rgb"  # a PIL frame's crops are RGB arrays
        batch = _as_sequence(images) if boxes is None else crops_of(images, boxes)
        if not batch:
            return torch.empty(0, self.feature_dim or 0)
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(batch), self.batch_size):
                pixels = torch.stack([self.transform(_as_pil(image, color))
                                      for image in batch[start:start + self.batch_size]])
                pixels = pixels.to(self.device, non_blocking=True, memory_format=self.runtime.memory_format)
                chunks.append(embed(self.runtime, pixels, self.flip).cpu())
        features = torch.cat(chunks)
        return F.normalize(features, dim=1) if self.normalize else features


def crops_of(frame: Any, boxes: Any) -> list[np.ndarray]:
    """The regions of ``frame`` that ``boxes`` (``(N, 4)`` xyxy pixels) cover, clamped to the frame.

    Box edges are rounded outwards to whole pixels (floor for ``x1, y1``,
    ceiling for ``x2, y2``), so a box never loses a partly covered pixel.

    Raises:
        ValueError: the frame is not an image array, the boxes are not
            ``(N, 4)`` finite numbers, or some are empty inside the frame.
    """
    if hasattr(frame, "getbands"):  # a PIL frame: its pixels, in RGB
        frame = np.asarray(frame.convert("RGB"))
    if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3):
        raise ValueError("with boxes, the first argument is the frame: an HxWx3 (or HxW) NumPy array or PIL image")
    values = np.asarray(boxes.detach().cpu() if isinstance(boxes, torch.Tensor) else boxes, dtype=np.float64)
    if values.size == 0:
        return []
    if values.ndim != 2 or values.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4) rows of x1, y1, x2, y2; got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"boxes must be finite numbers; rows {_rows(np.asarray(~np.isfinite(values).all(axis=1)))} are not")
    height, width = frame.shape[:2]
    x1 = np.clip(np.floor(values[:, 0]), 0, width).astype(int)
    y1 = np.clip(np.floor(values[:, 1]), 0, height).astype(int)
    x2 = np.clip(np.ceil(values[:, 2]), 0, width).astype(int)
    y2 = np.clip(np.ceil(values[:, 3]), 0, height).astype(int)
    empty = (x2 <= x1) | (y2 <= y1)
    if empty.any():
        raise ValueError(f"boxes {_rows(empty)} are empty inside the {width}x{height} frame (x2 <= x1 or y2 <= y1 "
                         "after clamping); drop them before extracting")
    return [frame[top:bottom, left:right] for left, top, right, bottom in zip(x1, y1, x2, y2)]


def _rows(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask).tolist()
    return ", ".join(map(str, rows[:10])) + (f" (and {len(rows) - 10} more)" if len(rows) > 10 else "")


def _as_sequence(images: Any) -> list:
    """A list of images from one image or a sequence of them."""
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)  # a stack of equally sized crops
    if isinstance(images, (np.ndarray, str, os.PathLike)) or hasattr(images, "getbands"):
        return [images]
    if isinstance(images, torch.Tensor):
        raise ValueError("tensors are not taken: pass HxWx3 uint8 NumPy arrays, PIL images or paths "
                         "(for an already preprocessed batch, call the model itself)")
    if isinstance(images, Sequence):
        return list(images)
    raise ValueError(f"expected an image or a sequence of images, got {type(images).__name__}")


def _as_pil(image: Any, color: str | None) -> Any:
    """A PIL image in RGB order."""
    from PIL import Image

    if hasattr(image, "getbands"):
        return image
    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as opened:
            return opened.convert("RGB")
    if isinstance(image, np.ndarray):
        return _pil_from_array(image, color)
    raise ValueError(f"cannot read an image from {type(image).__name__}: pass a NumPy array, PIL image or path")


def _pil_from_array(array: np.ndarray, color: str | None) -> Any:
    from PIL import Image

    if array.dtype != np.uint8:
        raise ValueError(f"NumPy images must be uint8 (0-255), got {array.dtype}; "
                         "convert with (array * 255).round().astype(np.uint8) if it holds 0-1 floats")
    if array.ndim == 2:
        return Image.fromarray(array).convert("RGB")
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"NumPy images must be HxWx3 (or HxW), got shape {array.shape}")
    if color is None:
        raise ValueError("say the channel order of NumPy images: color='bgr' for OpenCV images and video "
                         "frames, color='rgb' otherwise (a wrong order silently costs accuracy)")
    if color == "bgr":
        array = array[..., ::-1]
    return Image.fromarray(np.ascontiguousarray(array))
