"""``get()`` and ``build()``: manifest -> fetch -> build -> strict load -> device.

The returned model carries its manifest record (``model.modelzoo_record``),
its checkpoint (``model.modelzoo_checkpoint``, None without weights), the eval
transform (``model.modelzoo_transform``) and the :class:`LoadReport`
(``model.load_report``).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from modelzoo import manifest
from modelzoo.devices import resolve_device
from modelzoo.loading import LoadReport, load_strict
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
    """
    from modelzoo.architectures import builders

    record = manifest.resolve_name(name.split(".", 1)[0])
    if num_classes is None:
        num_classes = next(iter(record.checkpoints.values())).num_classes if record.checkpoints else 1000
    model = builders()[record.name](num_classes=num_classes, **kwargs)
    model.modelzoo_record = record
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
    model = build(record.name, num_classes=wanted_classes)
    report = None
    if pretrained:
        report = _load_weights(model, record, checkpoint, wanted_classes, progress)
    model.modelzoo_checkpoint = checkpoint if pretrained else None
    model.modelzoo_transform = build_transform(checkpoint.preprocessing)
    model.load_report = report
    return model.eval().to(target)


def _load_weights(
    model: nn.Module,
    record: manifest.ModelRecord,
    checkpoint: manifest.Checkpoint,
    wanted_classes: int,
    progress: bool,
) -> LoadReport:
    from modelzoo import fetch
    from modelzoo.checkpoint import load_cached_state_dict

    path = fetch.download(checkpoint, progress=progress)
    state = load_cached_state_dict(checkpoint, path)
    drop = record.classifier_keys if wanted_classes != checkpoint.num_classes else ()
    return load_strict(model, state, drop=drop, what=f"checkpoint {checkpoint.name} ({path.name})")
