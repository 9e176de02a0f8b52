"""fast-reid checkpoint files -> state dicts of the hub's fast-reid networks.

A fast-reid file is ``{"model": state_dict, ...}`` (fast-reid's Checkpointer
reads ``"model"``).  Its keys depend on the era of the code that wrote it;
:func:`read_fastreid_state_dict` translates them to the keys of
``modelzoo.architectures.fastreid`` with a declared table per era, never by
looking at shapes.  A key that fits no rule passes through unchanged, so that
a strict load names it.

File layouts (JDAI-CV/fast-reid#453, #486, #497, #508, #617):

| ours | v0.1.1-era file (40 files) | v1.0-era file (VERI-Wild) |
| --- | --- | --- |
| ``heads.bottleneck.0.*`` | ``heads.bnneck.*`` | same |
| ``heads.weight`` | ``heads.classifier.weight`` | ``heads.classifier.weight`` |
| ``bX_head.weight`` (MGN) | ``bX_head.classifier.weight`` | ``bX_head.classifier.weight`` |
| none | ``pixel_mean``, ``pixel_std`` | ``pixel_mean``, ``pixel_std`` |

Every other key is the same in the file and in our network, including the
era-only parts (``heads.pool_layer.p`` of AGW / VehicleID, the ResNeSt
``backbone.NL_*``, MGN's ``bX_pool.*`` and ``bX_head.bnneck.*``).  fastreid >= 1.2
writes the 1.4.0 layout, which is ours.

``pixel_mean`` / ``pixel_std`` are fast-reid's in-model input normalisation
(0..255 scale).  Our networks take input already normalised with the ImageNet
mean and std, which equals fast-reid's normalisation exactly when the file's
buffers hold 255 times those values; the reader checks that and drops them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from modelzoo.errors import CheckpointFormatError

FILE_ERAS = ("0.1.1", "1.0", "1.4.0")
MODULE_PREFIX = "module."  # what DataParallel / DistributedDataParallel add
# fast-reid's PIXEL_MEAN / PIXEL_STD (0..255 scale): 255 x ImageNet's mean and std.
FASTREID_PIXEL_MEAN = (123.675, 116.28, 103.53)
FASTREID_PIXEL_STD = (58.395, 57.12, 57.375)
PIXEL_TOLERANCE = 1e-3  # the buffers are float32 copies of the config values

_CLASSIFIER = (re.compile(r"^(heads|b\d+_head)\.classifier\.weight$"), r"\1.weight")
_BNNECK = (re.compile(r"^heads\.bnneck\."), "heads.bottleneck.0.")

#: file key -> our key, per era: the first rule whose pattern matches renames the key.
RENAME_RULES: dict[str, tuple[tuple[re.Pattern[str], str], ...]] = {
    "0.1.1": (_BNNECK, _CLASSIFIER),
    "1.0": (_CLASSIFIER,),
    "1.4.0": (),
}

#: The inverse of :data:`RENAME_RULES`: our key -> the era's file key (what fast-reid wrote).
FILE_KEY_RULES: dict[str, tuple[tuple[re.Pattern[str], str], ...]] = {
    "0.1.1": ((re.compile(r"^heads\.bottleneck\.0\."), "heads.bnneck."),
              (re.compile(r"^(heads|b\d+_head)\.weight$"), r"\1.classifier.weight")),
    "1.0": ((re.compile(r"^(heads|b\d+_head)\.weight$"), r"\1.classifier.weight"),),
    "1.4.0": (),
}

#: Keys that name one tensor in the era's network: v0.1.1 MGN shares one GeM among its 8 branches.
SHARED_TENSORS: dict[str, tuple[tuple[str, ...], ...]] = {
    "0.1.1": (tuple(f"{branch}_pool.0.p" for branch in ("b1", "b2", "b21", "b22", "b3", "b31", "b32", "b33")),),
    "1.0": (),
    "1.4.0": (),
}


def check_era(era: str) -> str:
    """``era`` if it names a known file layout.

    Raises:
        ValueError: an unknown era.
    """
    if era not in RENAME_RULES:
        raise ValueError(f"unknown fast-reid file era {era!r}: use one of {', '.join(FILE_ERAS)}")
    return era


def rename_key(key: str, era: str) -> str:
    """Our name for the file key ``key`` of an ``era`` file (``module.`` stripped), or ``key`` if no rule fits.

    Raises:
        ValueError: an unknown era.
    """
    key = key.removeprefix(MODULE_PREFIX)
    for pattern, replacement in RENAME_RULES[check_era(era)]:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    return key


def file_key(key: str, era: str) -> str:
    """The key an ``era`` file stores our ``key`` under (the inverse of :func:`rename_key`).

    Raises:
        ValueError: an unknown era.
    """
    for pattern, replacement in FILE_KEY_RULES[check_era(era)]:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    return key


def model_state(checkpoint: Any) -> Mapping[str, Any]:
    """The ``"model"`` entry of a fast-reid checkpoint.

    Raises:
        CheckpointFormatError: ``checkpoint`` is not a mapping with a ``"model"`` mapping.
    """
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("model"), Mapping):
        found = sorted(map(str, checkpoint))[:8] if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise CheckpointFormatError(
            f"not a fast-reid checkpoint: expected a dict with a 'model' state dict, found {found}; "
            "pass what torch.load returns for the release file"
        )
    return checkpoint["model"]


def check_pixel_buffer(name: str, value: Any, expected: Sequence[float]) -> None:
    """Check that the file's ``pixel_mean`` / ``pixel_std`` buffer holds ``expected``.

    Raises:
        CheckpointFormatError: another value (it would change every feature) or not a 3-value tensor.
    """
    wanted = torch.tensor(expected, dtype=torch.float64)
    if not isinstance(value, torch.Tensor) or value.numel() != wanted.numel():
        raise CheckpointFormatError(f"fast-reid file: {name} should be {list(expected)}, found {value!r}")
    found = value.detach().to(torch.float64).flatten()
    if not torch.allclose(found, wanted, rtol=0.0, atol=PIXEL_TOLERANCE):
        raise CheckpointFormatError(
            f"fast-reid file: {name} is {[round(v, 4) for v in found.tolist()]}, expected {list(expected)}; "
            "the network was trained with another input normalisation, which would change every feature"
        )


def check_shared_tensors(state: Mapping[str, torch.Tensor], era: str) -> None:
    """Check that the keys naming one tensor of the era's network hold equal values.

    Raises:
        CheckpointFormatError: they differ (the file is not of that network).
    """
    for group in SHARED_TENSORS[era]:
        present = [key for key in group if key in state]
        if any(not torch.equal(state[present[0]], state[key]) for key in present[1:]):
            raise CheckpointFormatError(
                f"fast-reid {era} file: {', '.join(present)} should be one shared tensor but differ"
            )


def read_fastreid_state_dict(
    checkpoint: Any,
    era: str,
    *,
    pixel_mean: Sequence[float] = FASTREID_PIXEL_MEAN,
    pixel_std: Sequence[float] = FASTREID_PIXEL_STD,
) -> dict[str, torch.Tensor]:
    """The state dict of a fast-reid file, in the keys of ``modelzoo.architectures.fastreid``.

    Strips ``module.``, renames by the era's table (:data:`RENAME_RULES`),
    checks and drops ``pixel_mean`` / ``pixel_std`` (absent in files of
    fastreid >= 1.2, where they are not persistent), and checks that the names
    of one shared tensor agree.

    Args:
        checkpoint: What ``torch.load`` returns for the file: ``{"model": state_dict, ...}``.
        era: The file's key layout: ``"0.1.1"`` (40 release files), ``"1.0"`` (VERI-Wild) or ``"1.4.0"``.
        pixel_mean: The expected ``pixel_mean`` (0..255 scale).
        pixel_std: The expected ``pixel_std``.

    Returns:
        A new dict; the tensors are the file's, not copies.

    Raises:
        CheckpointFormatError: not a fast-reid checkpoint, a non-tensor entry,
            other pixel statistics, two file keys with one name of ours, or
            shared-tensor names that differ.
        ValueError: an unknown era.
    """
    check_era(era)
    expected = {"pixel_mean": pixel_mean, "pixel_std": pixel_std}
    state: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for file_key, value in model_state(checkpoint).items():
        key = rename_key(str(file_key), era)
        if key in expected:
            check_pixel_buffer(key, value, expected[key])
            continue
        if not isinstance(value, torch.Tensor):
            raise CheckpointFormatError(f"fast-reid file: {file_key!r} is a {type(value).__name__}, not a tensor")
        if key in state:
            raise CheckpointFormatError(f"fast-reid file: {origin[key]!r} and {file_key!r} both map to {key!r}")
        state[key], origin[key] = value, str(file_key)
    check_shared_tensors(state, era)
    return state
