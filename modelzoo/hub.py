"""``get()`` and ``build()``: manifest -> fetch -> build -> strict load -> device.

The returned model carries its manifest record (``model.modelzoo_record``),
its checkpoint (``model.modelzoo_checkpoint``, None without weights), the eval
transform (``model.modelzoo_transform``), the :class:`LoadReport`
(``model.load_report``) and what the file stored from training
(``model.modelzoo_training_record``, e.g. ``{"epoch": 59, "rank1": 0.474}``;
that rank1 is the training loop's, not the published figure).

With weights, the network is built on the meta device, without initialising
tensors that the checkpoint overwrites at once (for ResNet-50 random
initialisation alone costs several times more than reading the weights), and
takes over the tensors read from the cache instead of copying them (a 100 MB
multi-threaded copy can take half a second on a busy machine).  A model whose
classifier is replaced (``num_classes``) is built normally, since its new
classifier needs initial values, and takes over the other tensors likewise.
See ``modelzoo.loading``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from modelzoo import manifest
from modelzoo.devices import resolve_device
from modelzoo.loading import LoadReport, load_strict, meta_tensors, uninitialised_build
from modelzoo.preprocessing import build_transform

logger = logging.getLogger(__name__)


def build(name: str, num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """Build an architecture without weights (no network access).

    Args:
        name: canonical name or alias (``mobilenetv2_x1_0``); a ``.dataset``
            suffix is ignored.
        num_classes: size of the classifier; defaults to the model's first
            checkpoint's (751 for Market-1501).
        **kwargs: passed to the builder (e.g. ``loss='triplet'``).

    The model carries its manifest record (``model.modelzoo_record``) and the
    eval transform of its first checkpoint (``model.modelzoo_transform``), so
    ``extract_features``, ``FeatureExtractor`` and ``evaluate`` take it as is.
    """
    from modelzoo.architectures import builders

    record = manifest.resolve_name(name.split(".", 1)[0])
    if num_classes is None:
        num_classes = next(iter(record.checkpoints.values())).num_classes if record.checkpoints else 1000
    model = builders()[record.name](num_classes=num_classes, **kwargs)
    model.modelzoo_record = record
    if record.checkpoints:
        model.modelzoo_transform = build_transform(next(iter(record.checkpoints.values())).preprocessing)
    return model


def transforms(name: str, dataset: str | None = None) -> Any:
    """The exact eval transform of a model's checkpoint (resize, to tensor, ImageNet mean/std, RGB)."""
    return build_transform(manifest.resolve_checkpoint(name, dataset).preprocessing)


def get(
    name: str,
    dataset: str | None = None,
    *,
    device: str | torch.device | None = None,
    pretrained: bool = True,
    num_classes: int | None = None,
    progress: bool = True,
) -> nn.Module:
    """The published network with its trained weights, in eval mode, on ``device``.

    Args:
        name: ``resnet50_fc512``, an alias, or ``resnet50_fc512.market1501``.
        dataset: the checkpoint: ``market1501`` (``market``), ``dukemtmcreid``
            (``duke``), ``msmt17`` (``msmt``), or another key the model has
            (``msmt17_combineall``, ``imagenet``); default: its first one.
        device: None (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N'
            or a torch.device.  Weights are always read on the CPU first.
        pretrained: False builds the architecture with random weights.
        num_classes: another classifier size: the declared classifier keys are
            dropped (and reported), every other tensor is loaded strictly.
        progress: show a download progress bar (on a terminal).

    Raises:
        UnknownModelError: unknown model or dataset (with suggestions).
        DownloadError / NotCachedError: no source could provide the file.
        CheckpointMismatchError: the file does not fit the architecture.
    """
    checkpoint = manifest.resolve_checkpoint(name, dataset)
    record = manifest.models()[checkpoint.model]
    target = resolve_device(device)
    wanted_classes = num_classes or checkpoint.num_classes
    if pretrained:
        model, report = _pretrained(record, checkpoint, wanted_classes, progress)
    else:
        model, report = build(record.name, num_classes=wanted_classes), None
    model.modelzoo_checkpoint = checkpoint if pretrained else None
    if not pretrained:
        model.modelzoo_training_record = {}
    model.modelzoo_transform = build_transform(checkpoint.preprocessing)
    model.load_report = report
    model.eval()
    # built on the CPU: moving there would still walk every module (~10 ms for OSNet)
    return model if target.type == "cpu" else model.to(target)


def load_weights(
    model: nn.Module,
    name: str,
    dataset: str | None = None,
    *,
    drop_classifier: bool = False,
    progress: bool = True,
) -> LoadReport:
    """Load a zoo checkpoint into a model you already have, in place and strictly.

    The counterpart of torchreid's ``load_pretrained_weights(model, path)``,
    without its silent partial loads: every key must match, or
    :class:`~modelzoo.errors.CheckpointMismatchError` lists the differences
    and nothing is loaded.  The model keeps its parameter objects (an
    optimizer built on it stays valid), device, dtype and train/eval mode.

    When the model is a contiguous CPU model of the checkpoint's exact
    tensors and the cache holds its safetensors copy, the file's bytes are
    read straight into the parameters (no intermediate tensors); otherwise
    the checkpoint is read and copied in with ``load_state_dict``.

    Args:
        model: e.g. ``modelzoo.build('resnet50', num_classes=751)`` or your own
            module with torchreid's key names.
        name: model name or alias, or ``name.dataset``.
        dataset: which checkpoint (see :func:`get`).
        drop_classifier: leave the manifest's classifier keys out (the model
            keeps its own classifier, e.g. of another number of classes).
        progress: show a download progress bar (on a terminal).

    Returns:
        The :class:`LoadReport`.

    Raises:
        UnknownModelError, DownloadError, NotCachedError: as :func:`get`.
        CheckpointMismatchError: the checkpoint does not fit ``model``.
    """
    from modelzoo import fetch
    from modelzoo.checkpoint import load_cached_state_dict, read_cached_into

    checkpoint = manifest.resolve_checkpoint(name, dataset)
    record = manifest.models()[checkpoint.model]
    path = fetch.download(checkpoint, progress=progress)
    what = f"checkpoint {checkpoint.name} ({path.name})"
    own = model.state_dict()
    if not drop_classifier and read_cached_into(path, own):
        report = LoadReport(matched=tuple(own))
        logger.info("%s: %s (read straight into the model)", what, report.summary())
        return report
    state = load_cached_state_dict(checkpoint, path)
    drop = record.classifier_keys if drop_classifier else ()
    return load_strict(model, state, drop=drop, what=what)


def _pretrained(
    record: manifest.ModelRecord,
    checkpoint: manifest.Checkpoint,
    wanted_classes: int,
    progress: bool,
) -> tuple[nn.Module, LoadReport]:
    """The architecture with the checkpoint's weights, strictly loaded (on the CPU)."""
    from modelzoo import fetch
    from modelzoo.checkpoint import load_cached_checkpoint

    path = fetch.download(checkpoint, progress=progress)
    state, training_record = load_cached_checkpoint(checkpoint, path)
    what = f"checkpoint {checkpoint.name} ({path.name})"
    model, report = _load_built(record, checkpoint, wanted_classes, state, what)
    model.modelzoo_training_record = _explained(checkpoint, training_record)
    return model, report


def _explained(checkpoint: manifest.Checkpoint, record: dict[str, int | float]) -> dict[str, int | float]:
    """``record`` (the file's epoch and rank1), after a word on why that rank1 is not the zoo's."""
    if "rank1" in record and checkpoint.rank1 is not None:
        logger.info(
            "%s also stores rank1=%s (epoch %s) from torchreid's training loop; that is not the published "
            "Rank-1 (%.1f), which `modelzoo verify` measures", checkpoint.name, record["rank1"],
            record.get("epoch", "?"), checkpoint.rank1)
    return record


def _load_built(
    record: manifest.ModelRecord,
    checkpoint: manifest.Checkpoint,
    wanted_classes: int,
    state: dict[str, torch.Tensor],
    what: str,
) -> tuple[nn.Module, LoadReport]:
    """The architecture holding ``state``: adopted on the meta device where possible."""
    if wanted_classes != checkpoint.num_classes:  # a new classifier needs its initial values
        model = build(record.name, num_classes=wanted_classes)
        return model, load_strict(model, state, drop=record.classifier_keys, what=what, assign=True)
    adopted = _adopting_model(record.name, wanted_classes, state, what)
    if adopted is not None:
        return adopted
    model = build(record.name, num_classes=wanted_classes)
    return model, load_strict(model, state, what=what, assign=True)


def _adopting_model(
    name: str, num_classes: int, state: dict[str, torch.Tensor], what: str
) -> tuple[nn.Module, LoadReport] | None:
    """The architecture built on the meta device, holding ``state``'s very tensors.

    Returns None, after logging why, when the architecture cannot be built
    there or keeps tensors a checkpoint does not hold (non-persistent buffers):
    the caller then builds it normally.

    Raises:
        CheckpointMismatchError: as :func:`load_strict`.
    """
    from modelzoo.architectures import builders

    builders()  # import every architecture first: nothing may be created on meta at import time
    try:
        with uninitialised_build():
            model = build(name, num_classes=num_classes)
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
        logger.debug("%s cannot be built on the meta device (%s); building it normally", name, exc)
        return None
    report = load_strict(model, state, what=what, assign=True)
    left = meta_tensors(model)
    if left:
        logger.debug("%s keeps tensors no checkpoint holds (%s); building it normally", name, ", ".join(left[:5]))
        return None
    return model, report
