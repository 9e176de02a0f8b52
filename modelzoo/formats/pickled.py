"""``torch.load`` of untrusted files: ``weights_only=True``, and nothing else is ever run.

The zoos' files come in several serializations (torchreid-zoo-facts.md 0.4,
1.4-1.6): torch >= 1.6 zip files, the pre-1.6 (non-zip) serialization, and
Python-2 pickles whose strings need ``encoding='latin1'`` (#3, #43, #231).
torchreid's training dicts also hold a NumPy scalar (``rank1``), which is what
breaks ``torch.load`` under PyTorch >= 2.6 (#592).

Every file is read with ``torch.load(..., map_location="cpu",
weights_only=True)``; exactly the NumPy globals a scalar needs are allowed,
for the duration of the call only.  A pickle that asks for anything else
(``os.system``, ``builtins.eval``, a model class) is refused before it runs.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, ContextManager

from modelzoo.errors import CheckpointFormatError, UnsafeCheckpointError

logger = logging.getLogger(__name__)

_UNSAFE_MARKERS = ("global", "can only build", "unsupported class")
_NUMPY_DTYPE_CODES = ("?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8")
_MAX_DETAIL = 200


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


def _numpy_allowlist() -> ContextManager[Any]:
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

    extra: dict[str, Any] = {"encoding": encoding} if encoding else {}
    with _numpy_allowlist(), warnings.catch_warnings():
        # torch warns that pickle arguments are ignored with weights_only, yet
        # its restricted unpickler does use `encoding` (checked on torch 2.x).
        warnings.filterwarnings("ignore", message="pickle_load_args only works")
        return torch.load(path, map_location="cpu", weights_only=True, **extra)


def load_weights_only(path: Path, name: str | None = None) -> Any:
    """What ``torch.load(path, weights_only=True)`` returns, on the CPU; Python-2 pickles retried as latin1.

    ``name`` is what messages call the file (default: its file name).

    Raises:
        UnsafeCheckpointError: the pickle asks to import or call something
            that is not a tensor, a container or a NumPy scalar (refused
            without running it).
        CheckpointFormatError: truncated, corrupted or not a torch file.
    """
    label = Path(name or path.name)
    try:
        try:
            return _torch_load(path, None)
        except UnicodeDecodeError:
            logger.debug("%s: a Python-2 pickle; reading its strings as latin1", path)
            return _torch_load(path, "latin1")
    except pickle.UnpicklingError as exc:
        raise _classify_unpickling_error(label, exc) from None
    except UnicodeDecodeError as exc:
        raise CheckpointFormatError(f"{label.name}: strings that are neither UTF-8 nor latin1 ({exc})") from None
    except (EOFError, RuntimeError, ValueError, OSError, KeyError, IndexError, TypeError, AttributeError,
            RecursionError, MemoryError, OverflowError) as exc:
        raise CheckpointFormatError(
            f"{label.name} is not a readable PyTorch checkpoint: truncated or corrupted ({_detail(exc)}); "
            "download it again"
        ) from None


def _detail(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:_MAX_DETAIL] if text else type(exc).__name__


def _classify_unpickling_error(path: Path, exc: pickle.UnpicklingError) -> Exception:
    message = str(exc)
    lowered = message.lower()
    if any(marker in lowered for marker in _UNSAFE_MARKERS):
        found = re.search(r"GLOBAL ([\w.]+)", message) or re.search(r"got <class '([\w.]+)'>", message)
        asks_for = f" (it asks for {found.group(1)[:_MAX_DETAIL]})" if found else ""
        return UnsafeCheckpointError(
            f"{path.name} is not a plain checkpoint: its pickle asks to import or call code beyond tensors "
            f"and numbers{asks_for}, so it was refused without running it. Get the file from the zoo again "
            "(`modelzoo download NAME DATASET --force`); if you wrote it yourself, save only the weights: "
            "torch.save(model.state_dict(), path)."
        )
    detail = message.strip().splitlines()[-1][:_MAX_DETAIL] if message.strip() else "unreadable pickle"
    return CheckpointFormatError(f"{path.name} is not a readable PyTorch checkpoint ({detail}); download it again")
