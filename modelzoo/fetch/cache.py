"""The cache layout, its locks and its records.

::

    <MODELZOO_HOME>/checkpoints/<model>/<key>/
        <weights file>                    the verified, ready-to-load weights
        <weights file>.safetensors        canonical state dict (modelzoo.checkpoint)
        record.json                       what is cached: file, size, SHA-256, source
        hashes.json                       hashes trusted for this checkpoint (kept by
                                          `cache clear` unless --forget-hashes)
        .lock                             one lock per checkpoint (filelock)
        <filename>.<source>.incomplete    a resumable partial download
        .fetch-*                          temporary files of the process holding the lock

A file only ever reaches its final name through ``os.replace`` of a
verified temporary file, and ``record.json`` is written after it, so a
record always describes a complete file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelzoo import config
from modelzoo.manifest import Checkpoint

logger = logging.getLogger(__name__)

RECORD = "record.json"
HASHES = "hashes.json"
LOCK = ".lock"
TEMP_PREFIX = ".fetch-"
PARTIAL_SUFFIX = ".incomplete"
SAFETENSORS_SUFFIX = ".safetensors"
_LOCK_NOTICE_AFTER = 1.0  # seconds; then say we are waiting for another process


@dataclass(frozen=True)
class CacheRecord:
    """What ``record.json`` says about one cached checkpoint."""

    name: str
    weights_file: str
    sha256: str
    size: int
    source: str
    served_sha256: str
    served_format: str
    downloaded_at: str


@dataclass
class TrustedHashes:
    """Hashes a checkpoint's files must match: the manifest's, or those of its first download.

    ``weights_sha256`` is the hash of the ready-to-load weights file; ``served``
    lists the hashes of the files as served (a QMUL zip and the bare Drive copy
    differ as files but hold the same weights).
    """

    weights_sha256: str
    weights_size: int
    origin: str  # "manifest" or "first download"
    first_source: str
    recorded_at: str
    served: list[dict[str, Any]] = field(default_factory=list)


def checkpoint_dir(checkpoint: Checkpoint) -> Path:
    """The cache folder of one checkpoint."""
    return config.checkpoints_dir() / checkpoint.model / checkpoint.key


@contextlib.contextmanager
def locked(checkpoint: Checkpoint) -> Iterator[Path]:
    """Hold the checkpoint's lock (creating its folder); yields the folder.

    Every process that writes a checkpoint's files holds this lock, so N
    processes asking for the same checkpoint download it once.
    """
    from filelock import FileLock, Timeout

    folder = checkpoint_dir(checkpoint)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK))
    try:
        lock.acquire(timeout=_LOCK_NOTICE_AFTER)
    except Timeout:
        logger.warning("waiting for another process that is fetching %s (lock %s)", checkpoint.name, lock.lock_file)
        lock.acquire()
    try:
        yield folder
    finally:
        lock.release()


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable %s (%s)", path, exc)
        return None
    return data if isinstance(data, dict) else None


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON through a temporary file and ``os.replace`` (never half-written)."""
    temp = temp_path(path.parent, path.name)
    try:
        with open(temp, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2, sort_keys=True)
            stream.write("\n")
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def read_record(folder: Path) -> CacheRecord | None:
    """The folder's ``record.json``, or None when missing or unreadable."""
    return _read_dataclass(folder / RECORD, CacheRecord)


def write_record(folder: Path, record: CacheRecord) -> None:
    """Write ``record.json`` atomically."""
    write_json_atomic(folder / RECORD, asdict(record))


def read_hashes(folder: Path) -> TrustedHashes | None:
    """The folder's trusted hashes, or None before the first verified download."""
    return _read_dataclass(folder / HASHES, TrustedHashes)


def _read_dataclass(path: Path, kind: type) -> Any:
    """``kind(**json)`` of ``path``; None when missing, unreadable or of other fields (logged)."""
    data = _read_json(path)
    try:
        return kind(**data) if data else None
    except TypeError:
        logger.warning("ignoring %s: unexpected fields", path)
        return None


def write_hashes(folder: Path, hashes: TrustedHashes) -> None:
    """Write ``hashes.json`` atomically."""
    write_json_atomic(folder / HASHES, asdict(hashes))


def cached_weights(checkpoint: Checkpoint) -> Path | None:
    """The cached weights file when its record and size agree; else None.

    This is cheap (no hashing): files are hashed before they are cached and
    ``modelzoo cache verify`` hashes them again on demand.
    """
    folder = checkpoint_dir(checkpoint)
    record = read_record(folder)
    if record is None:
        return None
    path = folder / record.weights_file
    try:
        if path.stat().st_size == record.size:
            return path
    except FileNotFoundError:
        pass
    return None


def partial_path(folder: Path, filename: str, source_key: str) -> Path:
    """The resumable partial file for one source (never mistaken for a checkpoint)."""
    return folder / f"{filename}.{source_key}{PARTIAL_SUFFIX}"


def temp_path(folder: Path, filename: str) -> Path:
    """A fresh, empty temporary file beside the target, unique to this process.

    Created with the usual permissions (``mkstemp`` would make it private, and
    the cache may be shared between users).
    """
    while True:
        path = folder / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{filename}"
        try:
            with open(path, "xb"):
                return path
        except FileExistsError:
            continue


def temp_dir(folder: Path) -> Path:
    """A fresh temporary folder beside the target (archives are extracted there)."""
    return Path(tempfile.mkdtemp(dir=folder, prefix=f"{TEMP_PREFIX}{os.getpid()}-extract-"))


def remove_leftovers(folder: Path) -> None:
    """Delete temporary files of processes that died holding the lock.

    Only called with the lock held: every live writer holds it, so any
    ``.fetch-*`` file found then belongs to a dead process.
    """
    for path in folder.glob(f"{TEMP_PREFIX}*"):
        remove_path(path)


def remove_partials(folder: Path) -> None:
    """Delete every resumable partial download of a checkpoint."""
    for path in folder.glob(f"*{PARTIAL_SUFFIX}"):
        remove_path(path)


def remove_path(path: Path) -> None:
    """Remove a file or folder, ignoring one that is already gone."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def cached_folders() -> list[Path]:
    """Every checkpoint folder under the cache root, sorted."""
    root = config.checkpoints_dir()
    if not root.is_dir():
        return []
    return sorted(path for path in root.glob("*/*") if path.is_dir())
