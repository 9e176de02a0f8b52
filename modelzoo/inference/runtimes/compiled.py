"""Compile a zoo network for a runtime once, prove it equals PyTorch, and keep it beside the weights.

The artifact of a checkpoint lives in its cache folder, under
``compiled/<backend>-<precision>-<digest>/``; the digest covers the
weights' fingerprint (so a fine-tuned copy of a zoo model gets its own),
the input size, the batch limit of engines that have one, and the versions
of torch, onnx and the runtime.  It is built in a temporary folder under the
checkpoint's lock, run on a fixed batch and compared with the PyTorch model
at float32 (cosine >= 0.99999 per image at fp32, >= 0.999 at reduced
precision), and moved into place only when it passes: a failed check is an
error and nothing is kept.  The check runs again each time a cached artifact
is opened (a few images), so a damaged artifact is rebuilt, never used.
A model without zoo weights (``build``, ``attach_info``) is compiled in a
temporary folder each time and not cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from pathlib import Path

import torch
from torch import nn

from modelzoo import __version__, config
from modelzoo.errors import ExportError, RuntimeCheckError, one_line
from modelzoo.fetch.download import store_for
from modelzoo.fetch.store import CheckpointStore
from modelzoo.formats import weights_fingerprint
from modelzoo.inference.runtimes.backend import Backend
from modelzoo.inference.runtimes.base import ParityCheck, Runtime
from modelzoo.inference.runtimes.onnx_file import model_device, write_onnx
from modelzoo.models import ModelInfo

logger = logging.getLogger(__name__)

#: The lowest cosine similarity to PyTorch fp32 allowed, per image.
COSINE_THRESHOLD = {"fp32": 0.99999, "bf16": 0.999, "fp16": 0.999}
PARITY_IMAGES = 4  # a batch of three and a batch of one: the batch size is dynamic
PARITY_RECORD = "parity.json"


def compiled_runtime(model: nn.Module, info: ModelInfo, backend: Backend, device: torch.device, precision: str,
                     *, max_batch: int = 64, cache_dir: str | Path | None = None) -> Runtime:
    """``model`` compiled for ``backend``, checked against PyTorch; from the cache when it holds it.

    Args:
        model: the zoo network (float32; it is run in eval mode and not changed).
        info: its :class:`~modelzoo.models.ModelInfo`.
        backend: the runtime to compile for (its package is installed).
        device, precision: where and how the artifact runs (already checked).
        max_batch: the largest batch an engine with fixed limits must take.
        cache_dir: the cache root (default ``MODELZOO_HOME``).

    Raises:
        ExportError: the network cannot be exported to ONNX or compiled.
        RuntimeCheckError: the compiled artifact computes something else (nothing kept).
    """
    reference = ReferenceBatch(model, info)
    if info.checkpoint is None:
        with tempfile.TemporaryDirectory(prefix="modelzoo-compile-") as folder:
            return _build_and_check(model, info, backend, Path(folder), device, precision, max_batch, reference)
    store = store_for(info.checkpoint, config.fetch_settings(cache_dir=cache_dir))
    key = artifact_key(model, backend, device, precision, info, max_batch)
    with store.locked():
        cached = _open_cached(store, key, backend, device, precision, reference)
        if cached is not None:
            return cached
        with store.building_compiled(key) as built:
            runtime = _build_and_check(model, info, backend, built, device, precision, max_batch, reference)
    logger.info("%s for %s compiled and kept in %s", runtime.describe(), info.name, store.compiled_dir(key))
    return runtime


def artifact_key(model: nn.Module, backend: Backend, device: torch.device, precision: str, info: ModelInfo,
                 max_batch: int) -> str:
    """``<backend>-<precision>-<digest>``: the digest of everything the artifact depends on."""
    import onnx

    facts = {
        "weights": weights_fingerprint(model.state_dict()),
        "input_size": list(info.preprocessing.input_size),
        "device": device.type,
        "max_batch": max_batch if backend.name == "tensorrt" else None,
        "versions": {"modelzoo": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     backend.package: backend.version()},
    }
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:20]
    return f"{backend.name}-{precision}-{digest}"


class ReferenceBatch:
    """The PyTorch float32 features of the fixed check batch, computed once.

    Used by the compiled runtimes here and by :mod:`modelzoo.export`.
    """

    def __init__(self, model: nn.Module, info: ModelInfo) -> None:
        height, width = info.preprocessing.input_size
        self.images = torch.randn(PARITY_IMAGES, 3, height, width, generator=torch.Generator().manual_seed(1))
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                self.features = model(self.images.to(model_device(model))).float().cpu()
        finally:
            model.train(was_training)

    def compare(self, runtime: Runtime, precision: str, *, error: type[Exception] = RuntimeCheckError,
                outcome: str = "nothing was kept") -> ParityCheck:
        """Run ``runtime`` on the batch (as three images and one) and compare with PyTorch.

        Args:
            runtime: the artifact, ready to run.
            precision: the precision it runs at (sets the cosine threshold).
            error, outcome: what is raised, ending with what, when the features have another shape.

        Raises:
            RuntimeCheckError (or ``error``): the features have another shape than PyTorch's.
        """
        with torch.inference_mode():
            got = torch.cat([runtime(part.to(runtime.device)).float().cpu()
                             for part in (self.images[:3], self.images[3:])])
        if got.shape != self.features.shape:
            raise error(f"{runtime.describe()} gives features of shape {tuple(got.shape)}, PyTorch "
                        f"{tuple(self.features.shape)}; {outcome}")
        cosine = torch.nn.functional.cosine_similarity(got, self.features, dim=1)
        return ParityCheck(images=len(got), min_cosine=float(cosine.min()), threshold=COSINE_THRESHOLD[precision],
                           max_abs_diff=float((got - self.features).abs().max()))




def _build_and_check(model: nn.Module, info: ModelInfo, backend: Backend, folder: Path, device: torch.device,
                     precision: str, max_batch: int, reference: ReferenceBatch) -> Runtime:
    onnx_path = folder / "network.onnx"
    write_onnx(model, onnx_path, info)
    try:
        artifact = backend.build(onnx_path, folder, precision, device, max_batch)
        runtime = backend.open(artifact, precision, device)
    except ExportError:
        raise
    except Exception as exc:  # each runtime raises its own types for a graph it cannot compile
        raise ExportError(f"{backend.name} cannot compile {info.name} ({one_line(exc)}); nothing was kept. "
                          "Use backend='torch' for it") from exc
    check = reference.compare(runtime, precision)
    if not check.passed:
        raise RuntimeCheckError(f"{runtime.describe()} for {info.name} is not close enough to PyTorch "
                                f"(lowest cosine {check.min_cosine:.6f}, needs {check.threshold}); nothing was "
                                "kept. Use backend='torch', and please report it with your library versions")
    (folder / PARITY_RECORD).write_text(json.dumps({"backend": backend.name, "precision": precision,
                                                    "images": check.images, "min_cosine": check.min_cosine,
                                                    "max_abs_diff": check.max_abs_diff}), encoding="utf-8")
    runtime.check = check
    logger.info("%s for %s %s", runtime.describe(), info.name, check.summary())
    return runtime


def _open_cached(store: CheckpointStore, key: str, backend: Backend, device: torch.device, precision: str,
                 reference: ReferenceBatch) -> Runtime | None:
    """The cached artifact, checked again; None (and removed) when missing, unreadable or no longer equal."""
    folder = store.compiled_dir(key)
    if not (folder / PARITY_RECORD).is_file():
        if folder.exists():
            store.remove_compiled(key)
        return None
    try:
        runtime = backend.open(folder / backend.artifact, precision, device)
        check = reference.compare(runtime, precision)
    except Exception as exc:  # each runtime raises its own types (pybind errors, RuntimeError subclasses)
        logger.warning("the cached %s artifact %s cannot be used (%s); compiling it again", backend.name, folder,
                       one_line(exc))
        store.remove_compiled(key)
        return None
    if not check.passed:
        logger.warning("the cached %s artifact %s no longer equals PyTorch (cosine %.6f); compiling it again",
                       backend.name, folder, check.min_cosine)
        store.remove_compiled(key)
        return None
    runtime.check = check
    logger.debug("%s for %s from the cache: %s", runtime.describe(), store.checkpoint.name, check.summary())
    return runtime
