"""Read every vintage of torchreid checkpoint, safely.

The zoo's files come in several vintages (torchreid-zoo-facts.md 0.4, 1.4-1.6):

* dicts ``{state_dict, epoch, rank1, optimizer, scheduler}`` whose ``rank1`` is
  a NumPy scalar (what breaks ``torch.load`` under PyTorch >= 2.6, #592);
* bare state dicts (the Google Drive OSNet files), possibly with the
  ``module.`` prefix of ``nn.DataParallel``;
* the pre-1.6 (non-zip) torch serialization;
* Python-2 pickles whose strings need ``encoding='latin1'`` (#3, #43, #231).

Every file is read with ``torch.load(..., map_location="cpu",
weights_only=True)``; the few NumPy globals a ``rank1`` needs are allowed
for the duration of the call only.  A pickle that asks for anything else
(``os.system``, ``builtins.eval``, a model class) is refused before it runs.

The canonical state dict of a cached checkpoint is stored beside it as
safetensors (:func:`load_cached_state_dict`), so later loads skip pickle.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import re
import secrets
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager

from modelzoo.errors import CheckpointFormatError, UnsafeCheckpointError

if TYPE_CHECKING:
    import torch

    from modelzoo.manifest import Checkpoint

logger = logging.getLogger(__name__)

DATA_PARALLEL_PREFIX = "module."
SAFETENSORS_SUFFIX = ".safetensors"
#: modelzoo.safetensors_reader reads little-endian bytes into tensors as they are;
#: a big-endian host reads the original file every time instead.
_SAFETENSORS_CACHE = sys.byteorder == "little"
#: Training fields kept beside the weights (``stored_epoch``, ``stored_rank1``); see read_checkpoint.
_FIELD_PREFIX = "stored_"
_UNSAFE_MARKERS = ("global", "can only build", "unsupported class")
_NUMPY_DTYPE_CODES = ("?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8")


# ---------------------------------------------------------------------------
# reading any vintage


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The canonical state dict of a checkpoint file of any torchreid vintage.

    Always ``weights_only=True`` on CPU.  Takes ``checkpoint["state_dict"]``
    when the file holds a training dict, strips a ``module.`` prefix, and
    returns a plain ``dict`` of tensors.

    Args:
        path: a ``.pth``, ``.pth.tar``, ``.pth.tar-N`` or ``.pt`` file.

    Returns:
        Parameter and buffer names mapped to CPU tensors.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the pickle asks to import or call something
            that is not a tensor, a container or a NumPy scalar (refused
            without running it).
        CheckpointFormatError: an HTML page, an archive, a truncated or
            corrupted file, or something that is not a state dict.
    """
    return read_checkpoint(path)[0]


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """:func:`read_state_dict`, plus the training fields the file stores beside the weights.

    torchreid's engine saves ``epoch`` and ``rank1`` with the weights.  That
    ``rank1`` is what its training loop measured at that epoch, **not** the
    published test figure (the QMUL ResNet-50 MSMT17 file stores 0.474
    against 63.2 published, #309): it is kept for display only, as strings
    (``{"stored_epoch": "59", "stored_rank1": "0.474"}``), and never used
    for verification.

    Raises:
        As :func:`read_state_dict`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    _reject_non_checkpoints(path)
    obj = _load_weights_only(path)
    return canonical_state_dict(obj, path), training_fields(obj)


def training_fields(obj: Any) -> dict[str, str]:
    """``epoch`` and ``rank1`` of a training dict, as ``stored_*`` strings (numbers only)."""
    if not isinstance(obj, Mapping):
        return {}
    fields = {}
    for key in ("epoch", "rank1"):
        value = obj.get(key)
        if hasattr(value, "item"):  # a NumPy scalar or a one-element tensor
            try:
                value = value.item()
            except (ValueError, RuntimeError):  # several elements: not a figure to show
                continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            fields[f"{_FIELD_PREFIX}{key}"] = repr(value)
    return fields


def _reject_non_checkpoints(path: Path) -> None:
    """Name the common impostors before torch gives a cryptic error."""
    from modelzoo.fetch.verify import ARCHIVE, file_kind

    if file_kind(path) == ARCHIVE:
        raise CheckpointFormatError(
            f"{path.name} is a zip archive holding a checkpoint, not a checkpoint: "
            "register it with `modelzoo import NAME DATASET FILE`, which extracts it"
        )


def numpy_safe_globals() -> list[Any]:
    """Exactly the NumPy globals a pickled NumPy scalar (torchreid's ``rank1``) needs.

    ``numpy.core.multiarray.scalar`` is the name written by NumPy 1.x (and by
    Python 2), ``numpy._core.multiarray.scalar`` the one written by NumPy 2;
    the dtype classes are needed to rebuild the scalar's dtype.
    """
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    allowed: list[Any] = [
        scalar,
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
    ]
    allowed.extend({type(np.dtype(code)) for code in _NUMPY_DTYPE_CODES})
    return allowed


def _numpy_allowlist() -> ContextManager:
    """Allow exactly the NumPy scalar globals, for this call only.

    ``torch.serialization.safe_globals`` (torch >= 2.6 for the ``(obj, name)``
    form) is the only safe way to read them; older torch reads bare state dicts
    fine, but a dict holding a NumPy scalar is then refused as not plain.
    """
    from torch import serialization

    if not hasattr(serialization, "safe_globals"):
        return contextlib.nullcontext()
    return serialization.safe_globals(numpy_safe_globals())


def _torch_load(path: Path, encoding: str | None) -> Any:
    import torch

    extra = {"encoding": encoding} if encoding else {}
    with _numpy_allowlist(), warnings.catch_warnings():
        # torch warns that pickle arguments are ignored with weights_only, yet
        # its restricted unpickler does use `encoding` (checked on torch 2.x).
        warnings.filterwarnings("ignore", message="pickle_load_args only works")
        return torch.load(path, map_location="cpu", weights_only=True, **extra)


def _load_weights_only(path: Path) -> Any:
    """torch.load with weights_only=True; retry Python-2 pickles with latin1."""
    try:
        try:
            return _torch_load(path, None)
        except UnicodeDecodeError:
            logger.debug("%s: a Python-2 pickle; reading its strings as latin1", path)
            return _torch_load(path, "latin1")
    except pickle.UnpicklingError as exc:
        raise _classify_unpickling_error(path, exc) from None
    except UnicodeDecodeError as exc:
        raise CheckpointFormatError(f"{path.name}: strings that are neither UTF-8 nor latin1 ({exc})") from None
    except (EOFError, RuntimeError, ValueError, OSError, KeyError, IndexError, TypeError, AttributeError) as exc:
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointFormatError(
            f"{path.name} is not a readable PyTorch checkpoint: truncated or corrupted ({detail}); download it again"
        ) from None


def _classify_unpickling_error(path: Path, exc: pickle.UnpicklingError) -> Exception:
    message = str(exc)
    lowered = message.lower()
    if any(marker in lowered for marker in _UNSAFE_MARKERS):
        found = re.search(r"GLOBAL ([\w.]+)", message) or re.search(r"got <class '([\w.]+)'>", message)
        asks_for = f" (it asks for {found.group(1)})" if found else ""
        return UnsafeCheckpointError(
            f"{path.name} is not a plain checkpoint: its pickle asks to import or call code beyond tensors "
            f"and numbers{asks_for}, so it was refused without running it. Get the file from the zoo again "
            "(`modelzoo download NAME DATASET --force`); if you wrote it yourself, save only the weights: "
            "torch.save(model.state_dict(), path)."
        )
    detail = message.strip().splitlines()[-1][:200] if message.strip() else "unreadable pickle"
    return CheckpointFormatError(f"{path.name} is not a readable PyTorch checkpoint ({detail}); download it again")


def canonical_state_dict(obj: Any, source: Path | str = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint object, ``module.`` prefixes stripped.

    Args:
        obj: what ``torch.load`` returned: a training dict with ``state_dict``
            or a bare state dict.
        source: the file it came from, for error messages.

    Raises:
        CheckpointFormatError: not a mapping of names to tensors.
    """
    import torch

    name = Path(source).name
    state = obj["state_dict"] if isinstance(obj, Mapping) and "state_dict" in obj else obj
    if not isinstance(state, Mapping):
        raise CheckpointFormatError(f"{name} holds a {type(state).__name__}, not a state dict")
    if not state:
        raise CheckpointFormatError(f"{name} holds an empty state dict")
    wrong = [
        str(key) for key, value in state.items() if not isinstance(value, torch.Tensor) or not isinstance(key, str)
    ]
    if wrong:
        raise CheckpointFormatError(
            f"{name} is not a state dict: {len(wrong)} entries are not name -> tensor (e.g. {', '.join(wrong[:3])})"
        )
    result: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        clean = key[len(DATA_PARALLEL_PREFIX) :] if key.startswith(DATA_PARALLEL_PREFIX) else key
        if clean in result:
            raise CheckpointFormatError(f"{name} holds both {clean!r} and {key!r}")
        result[clean] = value
    return result


# ---------------------------------------------------------------------------
# the safetensors copy in the cache


def safetensors_path(weights_path: Path) -> Path:
    """Where the canonical copy of a cached weights file lives (beside it)."""
    return weights_path.with_name(weights_path.name + SAFETENSORS_SUFFIX)


def _stamp(weights_path: Path) -> dict[str, str]:
    """Metadata tying a safetensors copy to the exact weights file it came from."""
    info = weights_path.stat()
    return {
        "source_file": weights_path.name,
        "source_size": str(info.st_size),
        "source_mtime_ns": str(info.st_mtime_ns),
    }


def save_state_dict_copy(
    weights_path: Path, state_dict: Mapping[str, torch.Tensor], name: str = "", fields: Mapping[str, str] | None = None
) -> Path | None:
    """Store ``state_dict`` as safetensors beside ``weights_path`` (temp file + ``os.replace``).

    ``fields`` (from :func:`read_checkpoint`) are kept in the copy's metadata.
    Returns the path, or None when the tensors cannot be stored as
    safetensors (the copy is an optimisation; loading still works).
    """
    from safetensors.torch import save_file

    target = safetensors_path(weights_path)
    tensors = _storable(state_dict)
    # safetensors sorts its tensors by name; the original order is kept for display and diffs
    metadata = {"format": "pt", "checkpoint": name, "order": json.dumps(list(tensors)), **(fields or {}),
                **_stamp(weights_path)}
    # a name unique to this process, created with the usual permissions (the cache may be shared);
    # not cache.temp_path: this runs without the checkpoint's lock, whose holder deletes .fetch-* files
    temp = target.with_name(f".tmp-{os.getpid()}-{secrets.token_hex(4)}-{target.name}")
    try:
        save_file(tensors, temp, metadata=metadata)
        os.replace(temp, target)
    except (ValueError, TypeError, RuntimeError, OSError) as exc:
        logger.info("not caching %s as safetensors (%s)", weights_path.name, exc)
        return None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    return target


def _storable(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous tensors, none sharing memory (safetensors refuses shared storage)."""
    seen: set[int] = set()
    out = {}
    for key, tensor in state_dict.items():
        tensor = tensor.detach().contiguous()
        pointer = tensor.untyped_storage().data_ptr() if tensor.numel() else 0
        if pointer and pointer in seen:
            tensor = tensor.clone()
        elif pointer:
            seen.add(pointer)
        out[key] = tensor
    return out


def _usable_copy(reader: Any, weights_path: Path) -> bool:
    """Whether an open safetensors copy was made from this very weights file, with every tensor."""
    metadata = reader.metadata
    if {k: metadata.get(k) for k in ("source_file", "source_size", "source_mtime_ns")} != _stamp(weights_path):
        logger.info("%s is stale; rebuilding it", Path(reader.path).name)
        return False
    return sorted(json.loads(metadata.get("order", "[]"))) == sorted(reader.keys())


def _read_copy(weights_path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]] | None:
    """The safetensors copy's tensors and stored training fields, if the copy is present,
    readable and made from this very weights file.

    Its tensors are read into this process's own memory (see
    :mod:`modelzoo.safetensors_reader`), never memory-mapped: a map would tie
    the model to a cache file another process may replace, and only defer
    the reading to the first forward pass.
    """
    from modelzoo.safetensors_reader import SafetensorsFile

    copy = safetensors_path(weights_path)
    if not copy.is_file():
        return None
    try:
        with SafetensorsFile.open(copy) as reader:
            if not _usable_copy(reader, weights_path):
                return None
            tensors = reader.read_all()
            metadata = reader.metadata
        fields = {key: value for key, value in metadata.items() if key.startswith(_FIELD_PREFIX)}
        return {key: tensors[key] for key in json.loads(metadata["order"])}, fields
    except Exception as exc:  # noqa: BLE001 - any damage means "rebuild", never "fail"
        logger.warning("ignoring damaged %s (%s); rebuilding it", copy, exc)
        return None


def read_cached_into(weights_path: str | os.PathLike, targets: Mapping[str, torch.Tensor]) -> bool:
    """Overwrite ``targets`` with a cached weights file's values, straight from its safetensors copy.

    The fast path of :func:`modelzoo.load_weights`: no intermediate tensor,
    the file's bytes go into ``targets``' memory.  It applies only when the
    copy exists, is current, and holds exactly ``targets``' names, shapes and
    dtypes (contiguous CPU tensors); otherwise nothing is written and the
    caller takes the general path (:func:`load_cached_state_dict` and a
    strict load, which also explains any mismatch).

    Returns:
        True when every target was overwritten; False when nothing was.

    Raises:
        OSError: reading failed half-way; ``targets`` hold a mix of old and
            new values and must be loaded again.
    """
    from modelzoo.safetensors_reader import SafetensorsFile, SafetensorsFormatError

    copy = safetensors_path(Path(weights_path))
    if not _SAFETENSORS_CACHE or not copy.is_file():
        return False
    try:
        with SafetensorsFile.open(copy) as reader:
            if not _usable_copy(reader, Path(weights_path)) or reader.mismatch(targets) is not None:
                return False
            try:
                reader.read_into(targets)
            except (OSError, SafetensorsFormatError) as exc:
                raise OSError(f"reading {copy} failed half-way ({exc}); the tensors hold a mix of "
                              "old and new values: load the weights again") from exc
    except (FileNotFoundError, SafetensorsFormatError, ValueError):
        return False
    return True


def load_cached_state_dict(checkpoint: Checkpoint | None, weights_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The canonical state dict of a cached weights file, through its safetensors copy.

    The first read parses the weights file with :func:`read_state_dict` and
    stores the result beside it as safetensors; later reads load that copy
    (no pickle at all).  A copy that does not match the weights file's name,
    size and modification time is rebuilt.

    Args:
        checkpoint: the manifest entry (recorded in the copy's metadata), or None.
        weights_path: the cached weights file, e.g. from ``modelzoo.fetch.download``.

    Raises:
        Same as :func:`read_state_dict`.
    """
    return load_cached_checkpoint(checkpoint, weights_path)[0]


def load_cached_checkpoint(
    checkpoint: Checkpoint | None, weights_path: str | os.PathLike
) -> tuple[dict[str, torch.Tensor], dict[str, int | float]]:
    """:func:`load_cached_state_dict`, plus the ``epoch`` and ``rank1`` the original file stored.

    The record is empty when the file stored none (bare state dicts).  See
    :func:`read_checkpoint`: the stored ``rank1`` is what torchreid's
    training loop measured, not the published figure.
    """
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {weights_path}")
    cached = _read_copy(weights_path) if _SAFETENSORS_CACHE else None
    if cached is not None:
        state, fields = cached
    else:
        state, fields = read_checkpoint(weights_path)
        if _SAFETENSORS_CACHE:
            save_state_dict_copy(weights_path, state, checkpoint.name if checkpoint else "", fields)
    return state, _training_record(fields)


def _training_record(fields: Mapping[str, str]) -> dict[str, int | float]:
    """``{"stored_epoch": "59"}`` -> ``{"epoch": 59}``; values that are not numbers are left out."""
    record: dict[str, int | float] = {}
    for key, value in fields.items():
        if key.startswith(_FIELD_PREFIX):
            with contextlib.suppress(ValueError):
                record[key[len(_FIELD_PREFIX):]] = int(value) if value.lstrip("-").isdigit() else float(value)
    return record
