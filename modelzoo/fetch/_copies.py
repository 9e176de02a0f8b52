"""The safetensors copy of a cached checkpoint: what later loads read instead of the pickle.

The copy is an optimisation, never a source of truth.  It is stamped with the
weights file it was made from (the recorded SHA-256 and size), and its own
hash goes into ``record.json`` so ``modelzoo cache verify`` can check it.  A
copy that is missing, stale, damaged, foreign or unreadable is simply not
used: the weights file is read instead (and the copy rebuilt where the cache
is writable).  Nothing in a safetensors file is executed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelzoo.fetch._files import remove_path
from modelzoo.fetch._records import CacheRecord
from modelzoo.formats import CheckpointContent, sha256_file

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

COPY_SUFFIX = ".safetensors"
#: The reader takes the file's little-endian bytes as they are; a big-endian
#: host reads the original weights file every time instead.
ENABLED = sys.byteorder == "little"
#: Bumped when what a copy holds changes, so older copies are rebuilt.
_COPY_VERSION = "2"
_warned: set[str] = set()


def copy_path(weights: Path) -> Path:
    """Where the canonical copy of a weights file lives (beside it)."""
    return weights.with_name(weights.name + COPY_SUFFIX)


def _stamp(record: CacheRecord) -> dict[str, str]:
    """Metadata tying a copy to the exact weights file it came from."""
    return {"copy_version": _COPY_VERSION, "source_file": record.weights_file, "source_sha256": record.sha256,
            "source_size": str(record.size)}


def _is_current(reader: Any, record: CacheRecord) -> bool:
    metadata = reader.metadata
    stamp = _stamp(record)
    if {key: metadata.get(key) for key in stamp} != stamp:
        logger.info("%s was made from other weights; not using it", Path(reader.path).name)
        return False
    order = json.loads(metadata.get("order", "[]"))
    return isinstance(order, list) and sorted(order) == sorted(reader.keys())


def read_copy(weights: Path, record: CacheRecord) -> CheckpointContent | None:
    """The copy's content when the copy is present, readable and made from this very weights file.

    Its tensors are read into this process's own memory, never
    memory-mapped: a map would tie the model to a cache file another process
    may replace, and only defer the reading to the first forward pass.
    """
    from modelzoo.formats.safetensors_file import SafetensorsFile

    copy = copy_path(weights)
    if not ENABLED or not copy.is_file():
        return None
    try:
        with SafetensorsFile.open(copy) as reader:
            if not _is_current(reader, record):
                return None
            tensors = reader.read_all()
            metadata = reader.metadata
        order = json.loads(metadata["order"])
        training = json.loads(metadata.get("training_record", "{}"))
        return CheckpointContent({key: tensors[key] for key in order}, _numbers(training))
    except Exception as exc:  # noqa: BLE001 - any damage means "use the weights file", never "fail"
        logger.warning("not using the damaged %s (%s); reading the weights file instead", copy, exc)
        return None


def read_copy_into(weights: Path, record: CacheRecord, targets: Mapping[str, torch.Tensor]) -> bool:
    """Overwrite ``targets`` with the copy's values, straight from the file; False (nothing written) otherwise.

    Applies only when the copy is current and holds exactly ``targets``'
    names, shapes and dtypes (contiguous CPU tensors).  A copy that is damaged
    or foreign in any way before the first byte is read gives False, as it
    makes ``get()`` read the weights file.

    Raises:
        OSError: reading failed half-way; ``targets`` hold a mix of old and
            new values and must be loaded again.
    """
    from modelzoo.formats.safetensors_file import SafetensorsFile

    copy = copy_path(weights)
    if not ENABLED or not copy.is_file():
        return False
    with contextlib.ExitStack() as stack:
        try:
            reader = stack.enter_context(SafetensorsFile.open(copy))
            if not _is_current(reader, record) or reader.mismatch(targets) is not None:
                return False
        except Exception as exc:  # noqa: BLE001 - unreadable, malformed, not ours: take the general path
            logger.info("not reading %s straight into the model (%s)", copy, exc)
            return False
        try:
            reader.read_into(targets)
        except (OSError, ValueError) as exc:
            raise OSError(f"reading {copy} failed half-way ({exc}); the tensors hold a mix of old and new "
                          "values: load the weights again") from exc
    return True


def write_copy(weights: Path, content: CheckpointContent, record: CacheRecord, checkpoint_name: str,
               temp_file: Callable[[str], Path]) -> str | None:
    """Store the canonical state dict as safetensors beside ``weights``; its SHA-256, or None when not written.

    The caller holds the checkpoint's lock.  The copy gets the weights file's
    permissions (a cache shared between users stays readable to all of them).
    When it cannot be written (full disk, read-only cache), loading still
    works from the weights file, and that is said once.
    """
    if not ENABLED:
        return None
    from modelzoo.formats.safetensors_file import write_safetensors

    target = copy_path(weights)
    # safetensors sorts its tensors by name; the original order is kept for display and diffs
    metadata = {"format": "pt", "checkpoint": checkpoint_name, "order": json.dumps(list(content.state_dict)),
                "training_record": json.dumps(content.training_record), **_stamp(record)}
    temp: Path | None = None
    try:
        temp = temp_file(target.name)
        write_safetensors(temp, content.state_dict, metadata)
        os.chmod(temp, weights.stat().st_mode & 0o777)
        digest = sha256_file(temp)
        os.replace(temp, target)
        return digest
    except Exception as exc:  # noqa: BLE001 - the copy is optional: any failure means "read the original"
        say_once(weights.parent, f"not keeping a safetensors copy of {weights.name} in {weights.parent} ({exc}); "
                 "loads read the original weights file instead, which is slower")
        return None
    finally:
        if temp is not None:
            remove_path(temp)


def copy_matches(weights: Path, record: CacheRecord) -> bool | None:
    """Whether the copy still has the hash recorded when it was written; None when there is none to check."""
    copy = copy_path(weights)
    if not record.copy_sha256 or not copy.is_file():
        return None
    return sha256_file(copy) == record.copy_sha256


def say_once(folder: Path, message: str) -> None:
    """Log ``message`` as a warning the first time this process says it about ``folder``."""
    if str(folder) not in _warned:
        _warned.add(str(folder))
        logger.warning("%s", message)


def _numbers(record: Any) -> dict[str, int | float]:
    if not isinstance(record, dict):
        return {}
    return {str(k): v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
