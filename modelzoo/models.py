"""The model factory: ``get()``, ``build()``, ``load_weights()``, ``transforms()``.

manifest -> store -> build -> strict load -> device.  Every model from
:func:`get` or :func:`build` carries one frozen :class:`ModelInfo`
(``model.modelzoo_info``, as timm's ``model.pretrained_cfg``): its manifest
record, the checkpoint whose weights it holds (None without weights), the
eval preprocessing and transform, what the file stored from training, and the
:class:`~modelzoo.loading.LoadReport`.

With weights, the network is built on the meta device, without initialising
tensors that the checkpoint overwrites at once (for ResNet-50 random
initialisation alone costs several times more than reading the weights), and
takes over the tensors read from the cache instead of copying them (a 100 MB
multi-threaded copy can take half a second on a busy machine).  A model whose
classifier is replaced (``num_classes=K``) is built normally, since its new
classifier needs initial values, and takes over the other tensors likewise.
See ``modelzoo.loading``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modelzoo import config, fetch, manifest
from modelzoo.devices import resolve_device
from modelzoo.errors import CheckpointMismatchError
from modelzoo.loading import LoadReport, compare, load_strict, meta_tensors, uninitialised_build
from modelzoo.preprocessing import build_transform

logger = logging.getLogger(__name__)

#: The attribute of a model that holds its :class:`ModelInfo`.
INFO_ATTRIBUTE = "modelzoo_info"

Mirrors = str | list[str] | tuple[str, ...] | None


@dataclass(frozen=True)
class ModelInfo:
    """What the zoo knows about a model from :func:`get` or :func:`build`.

    Attributes:
        record: the architecture's manifest record.
        checkpoint: the checkpoint whose weights the model holds; None for a
            model without zoo weights (``build``, ``get(pretrained=False)``).
        preprocessing: the eval preprocessing the model expects (its
            checkpoint's, or the named one's for ``build("name.tag")``).
        transform: PIL image -> normalised tensor, built from ``preprocessing``.
        num_classes: rows of the classifier (0: no classifier).
        training_record: what the weights file stored from training
            (``{"epoch": 59, "rank1": 0.474}``); that rank1 is the training
            loop's, not the published figure.
        load_report: what loading the weights did; None without weights.
    """

    record: manifest.ModelRecord
    checkpoint: manifest.Checkpoint | None
    preprocessing: manifest.Preprocessing
    transform: Callable[[Any], torch.Tensor]
    num_classes: int
    training_record: Mapping[str, int | float] = field(default_factory=dict)
    load_report: LoadReport | None = None

    @property
    def name(self) -> str:
        """``name.tag`` of the checkpoint, or the architecture's name without weights."""
        return self.checkpoint.name if self.checkpoint is not None else self.record.name

    @property
    def distance(self) -> str:
        """The test distance of the checkpoint's published numbers (euclidean without weights)."""
        return self.checkpoint.distance if self.checkpoint is not None else "euclidean"


def model_info(model: nn.Module) -> ModelInfo | None:
    """The :class:`ModelInfo` of a model from ``get``/``build``; None for any other module."""
    info = getattr(model, INFO_ATTRIBUTE, None)
    return info if isinstance(info, ModelInfo) else None


def _attach(model: nn.Module, info: ModelInfo) -> nn.Module:
    setattr(model, INFO_ATTRIBUTE, info)
    return model


def attach_info(model: nn.Module, name: str, *, transform: Callable[[Any], torch.Tensor] | None = None) -> nn.Module:
    """Give a network of your own the :class:`ModelInfo` of zoo architecture ``name`` (or ``name.tag``).

    Then ``evaluate``, ``FeatureExtractor`` and ``export`` take it like a
    model from :func:`build`: the tag's (or the first checkpoint's)
    preprocessing, no zoo weights recorded.  Returns the model.

    Args:
        model: any module computing that architecture's embedding.
        name: the zoo architecture, or ``name.tag`` for a checkpoint's preprocessing.
        transform: another eval transform (default: the preprocessing's).
    """
    model_name, tag = manifest.split_name(name)
    record = manifest.resolve_name(model_name)
    checkpoint = manifest.resolve_checkpoint(name) if tag is not None else _first_checkpoint(record)
    preprocessing = checkpoint.preprocessing if checkpoint is not None else _default_preprocessing(record)
    num_classes = checkpoint.num_classes if checkpoint is not None else 0
    return _attach(model, ModelInfo(record, None, preprocessing, transform or build_transform(preprocessing),
                                    num_classes))


def _checked_num_classes(num_classes: Any) -> int | None:
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be a whole number >= 0 (0: no classifier) or None, got {num_classes!r}")
    return num_classes


def build(name: str, num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """Build an architecture without weights (no network access).

    Args:
        name: canonical name or alias (``mobilenetv2_x1_0``), or ``name.tag``:
            the tag's checkpoint then sets the classifier size and the
            preprocessing (``build("osnet_x1_0.msmt17")`` has 1041 classes).
        num_classes: size of the classifier; 0 builds an embedding-only model
            (no classifier); default: the tag's checkpoint's, else the model's
            first checkpoint's (751 for Market-1501).
        **kwargs: passed to the builder (e.g. ``loss='triplet'``), after the
            checkpoint's ``builder_args`` (the tag's, else the first
            checkpoint's: fast-reid's ``era`` and ``pool``), which they override.

    The model carries its :class:`ModelInfo` (``model.modelzoo_info``), so
    ``extract_features``, ``FeatureExtractor`` and ``evaluate`` take it as is.

    Raises:
        UnknownModelError, UnknownCheckpointError: unknown name or tag.
        ValueError: a negative or non-integer ``num_classes``.
    """
    from modelzoo.architectures import builders

    model_name, tag = manifest.split_name(name)
    record = manifest.resolve_name(model_name)
    checkpoint = manifest.resolve_checkpoint(name) if tag is not None else _first_checkpoint(record)
    wanted = _checked_num_classes(num_classes)
    if wanted is None:
        wanted = checkpoint.num_classes if checkpoint is not None else 1000
    builder_args = dict(checkpoint.builder_args) if checkpoint is not None else {}
    model = builders()[record.name](num_classes=wanted, **{**builder_args, **kwargs})
    preprocessing = checkpoint.preprocessing if checkpoint is not None else _default_preprocessing(record)
    return _attach(model, ModelInfo(record, None, preprocessing, build_transform(preprocessing), wanted))


def _first_checkpoint(record: manifest.ModelRecord) -> manifest.Checkpoint | None:
    return next(iter(record.checkpoints.values()), None)


def _default_preprocessing(record: manifest.ModelRecord) -> manifest.Preprocessing:
    """ImageNet normalisation at the architecture's input size (a model with no checkpoint)."""
    return manifest.Preprocessing(input_size=record.input_size, interpolation="bilinear",
                                  mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), color_order="RGB")


def check_fits_architecture(checkpoint: manifest.Checkpoint, state: Mapping[str, torch.Tensor]) -> None:
    """Refuse a state dict that does not fit the checkpoint's architecture (keys, shapes, classifier size).

    The store calls this before it trusts a downloaded or imported file, so
    another model's weights (or no model's) never enter the cache under this
    name.  The architecture is built on the meta device, so the check costs no
    memory and no initialisation.

    Raises:
        CheckpointMismatchError: the differences, listed; nothing is cached.
    """
    from modelzoo.architectures import builders

    builders()  # import every architecture first: nothing may be created on meta at import time
    try:
        with uninitialised_build():
            model = build(checkpoint.name)
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        model = build(checkpoint.name)
    report = compare(model, state)
    if not report.ok:
        raise CheckpointMismatchError(
            f"the file is not {checkpoint.name}'s weights: it does not fit {checkpoint.model} ({report.summary()}). "
            f"Nothing was cached. Check that the file is {checkpoint.filename} (`modelzoo info {checkpoint.model}`)"
        )


def download(
    name: str | manifest.Checkpoint,
    dataset: str | None = None,
    *,
    progress: bool = True,
    force: bool = False,
    cache_dir: str | Path | None = None,
    mirrors: Mirrors = None,
    offline: bool | None = None,
) -> Path:
    """The path of a checkpoint's weights file in the cache, downloaded, checked and extracted first when needed.

    :func:`modelzoo.fetch.download` with one more check before a new file is
    trusted: its state dict must fit the checkpoint's architecture
    (:func:`check_fits_architecture`).  Arguments and errors as there, plus
    :class:`~modelzoo.errors.CheckpointMismatchError`.
    """
    return fetch.download(name, dataset, progress=progress, force=force, cache_dir=cache_dir, mirrors=mirrors,
                          offline=offline, check=check_fits_architecture)


def import_file(name: str | manifest.Checkpoint, path: str | Path, *, cache_dir: str | Path | None = None) -> Path:
    """Register a file obtained by hand (:func:`modelzoo.fetch.import_file`), after checking that it fits.

    The file's state dict must fit the checkpoint's architecture before its
    hash is trusted, so a wrong file never blocks the genuine one later.
    """
    return fetch.import_file(name, path, cache_dir=cache_dir, check=check_fits_architecture)


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
    cache_dir: str | Path | None = None,
    mirrors: Mirrors = None,
    offline: bool | None = None,
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
            dropped (and reported), every other tensor is loaded strictly; 0
            gives an embedding-only model without a classifier.
        progress: show a download progress bar (on a terminal).
        cache_dir: the cache root (default ``MODELZOO_HOME``).
        mirrors: bases tried before the manifest's sources, a list or one
            comma-separated string (default ``MODELZOO_MIRROR``).
        offline: never use the network (default ``MODELZOO_OFFLINE`` / ``HF_HUB_OFFLINE``).

    Raises:
        UnknownModelError, UnknownCheckpointError: unknown model or dataset (with suggestions).
        DeviceError: a device this machine does not have (checked before any download).
        DownloadError / NotCachedError: no source could provide the file.
        CheckpointMismatchError: the file does not fit the architecture.
    """
    checkpoint = manifest.resolve_checkpoint(name, dataset)
    record = manifest.models()[checkpoint.model]
    wanted = _checked_num_classes(num_classes)
    wanted = checkpoint.num_classes if wanted is None else wanted
    target = resolve_device(device)
    if pretrained:
        settings = config.fetch_settings(cache_dir=cache_dir, mirrors=mirrors, offline=offline)
        model, info = _pretrained(record, checkpoint, wanted, settings, progress)
    else:
        model = build(checkpoint.name, num_classes=wanted)
        info = ModelInfo(record, None, checkpoint.preprocessing, build_transform(checkpoint.preprocessing), wanted)
    _attach(model, info)
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
    cache_dir: str | Path | None = None,
    mirrors: Mirrors = None,
    offline: bool | None = None,
) -> LoadReport:
    """Load a zoo checkpoint into a model you already have, in place and strictly.

    The counterpart of torchreid's ``load_pretrained_weights(model, path)``,
    without its silent partial loads: every key must match, or
    :class:`~modelzoo.errors.CheckpointMismatchError` lists the differences
    and nothing is loaded.  The model keeps its parameter objects (an
    optimizer built on it stays valid), device, dtype and train/eval mode.
    A model from :func:`build` has its :class:`ModelInfo` updated to name the
    checkpoint it now holds.

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
        cache_dir, mirrors, offline: as :func:`get`.

    Returns:
        The :class:`LoadReport`.

    Raises:
        UnknownModelError, DownloadError, NotCachedError: as :func:`get`.
        CheckpointMismatchError: the checkpoint does not fit ``model``.
    """
    checkpoint = manifest.resolve_checkpoint(name, dataset)
    record = manifest.models()[checkpoint.model]
    settings = config.fetch_settings(cache_dir=cache_dir, mirrors=mirrors, offline=offline)
    own = None if drop_classifier else model.state_dict()
    loaded = fetch.load_checkpoint(checkpoint, settings, into=own, progress=progress, check=check_fits_architecture)
    what = f"checkpoint {checkpoint.name} ({loaded.path.name})"
    if loaded.filled_in_place:
        report = LoadReport(matched=tuple(loaded.content.state_dict))
        logger.info("%s: %s (read straight into the model)", what, report.summary())
    else:
        drop = record.classifier_keys if drop_classifier else ()
        report = load_strict(model, loaded.content.state_dict, drop=drop, what=what)
    info = model_info(model)
    if info is not None:
        _attach(model, dataclasses.replace(info, checkpoint=checkpoint, load_report=report,
                                           training_record=loaded.content.training_record))
    return report


def _pretrained(
    record: manifest.ModelRecord,
    checkpoint: manifest.Checkpoint,
    wanted_classes: int,
    settings: config.FetchSettings,
    progress: bool,
) -> tuple[nn.Module, ModelInfo]:
    """The architecture with the checkpoint's weights, strictly loaded (on the CPU)."""
    loaded = fetch.load_checkpoint(checkpoint, settings, progress=progress, check=check_fits_architecture)
    what = f"checkpoint {checkpoint.name} ({loaded.path.name})"
    model, report = _load_built(record, checkpoint, wanted_classes, loaded.content.state_dict, what)
    info = ModelInfo(record, checkpoint, checkpoint.preprocessing, build_transform(checkpoint.preprocessing),
                     wanted_classes, _explained(checkpoint, loaded.content.training_record), report)
    return model, info


def _explained(checkpoint: manifest.Checkpoint, record: Mapping[str, int | float]) -> Mapping[str, int | float]:
    """``record`` (the file's epoch and rank1), after a word on why that rank1 is not the zoo's."""
    if "rank1" in record and checkpoint.rank1 is not None:
        logger.info(
            "%s also stores rank1=%s (epoch %s) from torchreid's training loop; that is not the published "
            "Rank-1 (%.1f), which `modelzoo verify` measures", checkpoint.name, record["rank1"],
            record.get("epoch", "?"), checkpoint.rank1)
    return dict(record)


def _load_built(
    record: manifest.ModelRecord,
    checkpoint: manifest.Checkpoint,
    wanted_classes: int,
    state: dict[str, torch.Tensor],
    what: str,
) -> tuple[nn.Module, LoadReport]:
    """The architecture holding ``state``: adopted on the meta device where possible."""
    keeps_classifier = wanted_classes == checkpoint.num_classes
    drop = () if keeps_classifier else record.classifier_keys
    if keeps_classifier or wanted_classes == 0:  # no new classifier needing initial values
        adopted = _adopting_model(checkpoint.name, wanted_classes, state, what, drop)
        if adopted is not None:
            return adopted
    model = build(checkpoint.name, num_classes=wanted_classes)
    return model, load_strict(model, state, drop=drop, what=what, assign=True)


def _adopting_model(
    name: str, num_classes: int, state: dict[str, torch.Tensor], what: str, drop: tuple[str, ...]
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
    report = load_strict(model, state, drop=drop, what=what, assign=True)
    left = meta_tensors(model)
    if left:
        logger.debug("%s keeps tensors no checkpoint holds (%s); building it normally", name, ", ".join(left[:5]))
        return None
    return model, report
