"""One checkpoint file -> its state dict: sniff the file, load it safely, apply the zoo's layout.

A *layout* says how a zoo arranges its weights inside what ``torch.load``
returns: torchreid's training dict or bare state dict, fast-reid's
``{"model": ...}`` with its renamed head keys.  Each layout is one reader in
:data:`LAYOUTS`; the fetcher and the cache never look inside a file
themselves.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelzoo.errors import CheckpointFormatError
from modelzoo.formats import sniff, torchreid
from modelzoo.formats.pickled import load_weights_only

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class CheckpointContent:
    """What a checkpoint file holds that the package uses.

    Attributes:
        state_dict: parameter and buffer names mapped to CPU tensors, in the file's order.
        training_record: numbers the training run stored beside the weights
            (torchreid's ``epoch`` and ``rank1``); display only, never a published figure.
    """

    state_dict: dict[str, "torch.Tensor"]
    training_record: dict[str, int | float] = field(default_factory=dict)


#: A layout reader: (what torch.load returned, the file's name, layout options) -> content.
LayoutReader = Callable[[Any, str, Mapping[str, Any]], CheckpointContent]


def _torchreid(obj: Any, name: str, options: Mapping[str, Any]) -> CheckpointContent:
    if options:
        raise TypeError(f"the torchreid layout takes no options, got {sorted(options)}")
    return CheckpointContent(torchreid.torchreid_state_dict(obj, name), torchreid.training_record(obj))


FASTREID_OPTIONS = ("era", "pixel_mean", "pixel_std")


def _fastreid(obj: Any, name: str, options: Mapping[str, Any]) -> CheckpointContent:
    """fast-reid's ``{"model": ...}`` in the keys of our networks (options: ``era``, ``pixel_mean``, ``pixel_std``)."""
    from modelzoo.formats.fastreid import read_fastreid_state_dict

    unknown = sorted(set(options) - set(FASTREID_OPTIONS))
    if unknown or "era" not in options:
        raise TypeError(f"the fastreid layout takes era= and optionally pixel_mean=, pixel_std=; got {sorted(options)}")
    try:
        return CheckpointContent(read_fastreid_state_dict(obj, **options))
    except CheckpointFormatError as exc:
        raise CheckpointFormatError(f"{name}: {exc}") from exc


LAYOUTS: dict[str, LayoutReader] = {"torchreid": _torchreid, "fastreid": _fastreid}


def read_checkpoint(path: str | os.PathLike, layout: str = "torchreid", *, name: str | None = None,
                    **options: Any) -> CheckpointContent:
    """The canonical state dict (and stored training numbers) of a checkpoint file.

    Always ``weights_only=True`` on the CPU (see :mod:`modelzoo.formats.pickled`).
    A safetensors file is read as it is (it holds a state dict and nothing else).

    Args:
        path: a ``.pth``, ``.pth.tar``, ``.pth.tar-N``, ``.pt`` or ``.safetensors`` file.
        layout: how the zoo arranges the weights inside the file (a key of :data:`LAYOUTS`).
        name: what messages call the file (default: its name), e.g. the
            user's own file when the package reads a copy of it.
        **options: the layout's options.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the pickle asks to import or call code (refused unrun).
        CheckpointFormatError: an HTML page, an archive, a truncated or
            corrupted file, or something that is not a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown checkpoint layout {layout!r}; one of {', '.join(LAYOUTS)}")
    label = name or path.name
    kind = sniff.file_kind(path, label)
    if kind == sniff.ARCHIVE:
        raise CheckpointFormatError(
            f"{label} is a zip archive holding a checkpoint, not a checkpoint: "
            "register it with `modelzoo import NAME DATASET FILE`, which extracts it"
        )
    if kind == sniff.SAFETENSORS:
        from modelzoo.formats.safetensors_file import read_safetensors

        tensors, _ = read_safetensors(path)
        return CheckpointContent(dict(torchreid.check_tensor_mapping(tensors, label)))
    return LAYOUTS[layout](load_weights_only(path, label), label, options)


def read_state_dict(path: str | os.PathLike, layout: str = "torchreid", **options: Any) -> dict[str, "torch.Tensor"]:
    """The canonical state dict of a checkpoint file: :func:`read_checkpoint` without the training numbers."""
    return read_checkpoint(path, layout, **options).state_dict
