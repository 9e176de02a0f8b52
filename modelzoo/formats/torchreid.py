"""torchreid's checkpoint layout: a training dict or a bare state dict.

The zoo's files hold either torchreid's training dict
``{state_dict, epoch, rank1, optimizer, scheduler}`` (``rank1`` a NumPy
scalar) or a bare state dict (the Google Drive OSNet files), possibly with the
``module.`` prefix of ``nn.DataParallel``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelzoo.errors import CheckpointFormatError

if TYPE_CHECKING:
    import torch

DATA_PARALLEL_PREFIX = "module."
#: Longest key shown in an error message (a hostile key can be megabytes long).
_MAX_KEY_CHARS = 80
_MAX_KEYS_SHOWN = 3


def shown_key(key: object) -> str:
    """A key as an error message shows it: repr'd and cut to a readable length."""
    text = repr(key) if not isinstance(key, str) else key
    return text if len(text) <= _MAX_KEY_CHARS else text[:_MAX_KEY_CHARS] + "..."


def strip_data_parallel(state: Mapping[str, "torch.Tensor"], name: str) -> dict[str, "torch.Tensor"]:
    """``state`` with every ``module.`` prefix removed.

    Raises:
        CheckpointFormatError: two keys become one (``x`` and ``module.x``).
    """
    result: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        clean = key[len(DATA_PARALLEL_PREFIX):] if key.startswith(DATA_PARALLEL_PREFIX) else key
        if clean in result:
            raise CheckpointFormatError(f"{name} holds both {shown_key(clean)!r} and {shown_key(key)!r}")
        result[clean] = value
    return result


def check_tensor_mapping(state: Any, name: str) -> Mapping[str, "torch.Tensor"]:
    """``state`` if it maps names to tensors.

    Raises:
        CheckpointFormatError: not a mapping, empty, or with entries that are not name -> tensor.
    """
    import torch

    if not isinstance(state, Mapping):
        raise CheckpointFormatError(f"{name} holds a {type(state).__name__}, not a state dict")
    if not state:
        raise CheckpointFormatError(f"{name} holds an empty state dict")
    wrong = [key for key, value in state.items() if not isinstance(value, torch.Tensor) or not isinstance(key, str)]
    if wrong:
        shown = ", ".join(shown_key(key) for key in wrong[:_MAX_KEYS_SHOWN])
        raise CheckpointFormatError(
            f"{name} is not a state dict: {len(wrong)} entries are not name -> tensor (e.g. {shown})"
        )
    return state


def torchreid_state_dict(obj: Any, name: str = "checkpoint") -> dict[str, "torch.Tensor"]:
    """The state dict inside what ``torch.load`` returned for a torchreid file, ``module.`` stripped.

    Args:
        obj: a training dict with ``state_dict`` or a bare state dict.
        name: the file's name, for error messages.

    Raises:
        CheckpointFormatError: not a mapping of names to tensors.
    """
    state = obj["state_dict"] if isinstance(obj, Mapping) and "state_dict" in obj else obj
    return strip_data_parallel(check_tensor_mapping(state, name), name)


def training_record(obj: Any) -> dict[str, int | float]:
    """The ``epoch`` and ``rank1`` a torchreid training dict stores (numbers only; {} for bare files).

    That ``rank1`` is what torchreid's training loop measured at that epoch,
    **not** the published test figure (the QMUL ResNet-50 MSMT17 file stores
    0.474 against 63.2 published, #309): it is kept for display only.
    """
    if not isinstance(obj, Mapping):
        return {}
    record: dict[str, int | float] = {}
    for key in ("epoch", "rank1"):
        value: Any = obj.get(key)
        if hasattr(value, "item"):  # a NumPy scalar or a one-element tensor
            try:
                value = value.item()
            except (ValueError, RuntimeError):  # several elements: not a figure to show
                continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            record[key] = value
    return record
