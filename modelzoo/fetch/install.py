"""Turn one complete file, as served, into a verified weights file in the cache.

The caller holds the checkpoint's lock.  Steps, each of which can refuse the
file (and then nothing reaches the cache):

1. what is it? an HTML page or an empty file is refused; a zip that is not a
   torch checkpoint is an archive (``verify.file_kind``);
2. size and SHA-256 of the file as served, against the manifest when the
   manifest describes a file of that format;
3. the weights file: extracted from an archive into a temporary folder
   beside the target, or the served file itself;
4. the weights' SHA-256 against the manifest (checkpoint-format entries) or,
   failing that, against the hashes trusted since the first download;
5. the weights are read with ``weights_only=True`` (an unsafe or truncated
   pickle is refused here);
6. ``os.replace`` into place, then ``record.json``, ``hashes.json`` and the
   safetensors copy.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from modelzoo.errors import ChecksumError
from modelzoo.fetch import archive, cache
from modelzoo.fetch.verify import ARCHIVE, file_kind, sha256_file
from modelzoo.manifest import Checkpoint

logger = logging.getLogger(__name__)

FIRST_DOWNLOAD = "first download"
MANIFEST = "manifest"


@dataclass(frozen=True)
class ServedFile:
    """A complete file obtained from one source, not yet trusted."""

    path: Path  # a partial or temporary file beside the target
    source: str  # where it came from, for messages and the record
    name_hint: str | None = None  # the file name the server gave, if any


@dataclass(frozen=True)
class _Served:
    kind: str
    format: str
    sha256: str
    size: int


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _inspect(checkpoint: Checkpoint, served: ServedFile) -> _Served:
    """Step 1-2: the file's kind, hash and size, checked against the manifest."""
    kind = file_kind(served.path)
    fmt = "zip" if kind == ARCHIVE else "checkpoint"
    size = served.path.stat().st_size
    described = fmt == checkpoint.format  # the manifest's size/hash describe a file of its format
    if described and checkpoint.size is not None and size != checkpoint.size:
        raise ChecksumError(
            f"{size} bytes where the manifest says {checkpoint.filename} has {checkpoint.size} "
            "(truncated or wrong file)"
        )
    digest = sha256_file(served.path)
    if described and checkpoint.sha256 and digest != checkpoint.sha256:
        raise ChecksumError(
            f"SHA-256 {digest} differs from the manifest's {checkpoint.sha256} for {checkpoint.filename} "
            "(corrupted or tampered file)"
        )
    return _Served(kind=kind, format=fmt, sha256=digest, size=size)


def _bare_name(checkpoint: Checkpoint, hint: str | None) -> str:
    """The cache name of a weights file served bare (not in an archive)."""
    if checkpoint.format == "checkpoint":
        return checkpoint.filename
    safe_hint = hint and Path(hint).name == hint and not hint.startswith(".") and archive.is_weights_name(hint)
    if safe_hint:
        return hint  # e.g. Drive's "resnet50_fc512_market_xent.pth.tar"
    stem = checkpoint.filename[: -len(".zip")] if checkpoint.filename.endswith(".zip") else checkpoint.filename
    return f"{stem}.pth.tar"


def _check_weights(
    checkpoint: Checkpoint, served: _Served, weights_sha: str, trusted: cache.TrustedHashes | None
) -> str:
    """Step 4; returns how the weights were verified (``manifest`` or ``first download``)."""
    if checkpoint.sha256 and checkpoint.format == "checkpoint":
        if weights_sha != checkpoint.sha256:
            raise ChecksumError(
                f"the weights' SHA-256 {weights_sha} differs from the manifest's {checkpoint.sha256} (tampered file?)"
            )
        return MANIFEST
    if checkpoint.sha256 and served.format == checkpoint.format:
        return MANIFEST  # the served file matched the manifest in _inspect
    if trusted is not None and weights_sha != trusted.weights_sha256:
        raise ChecksumError(
            f"the weights' SHA-256 {weights_sha[:16]}... differs from {trusted.weights_sha256[:16]}... trusted "
            f"since {checkpoint.name} was first downloaded (from {trusted.first_source}, {trusted.recorded_at}). "
            f"If the zoo really changed the file, forget the old hash with "
            f"`modelzoo cache clear {checkpoint.name} --forget-hashes`"
        )
    return trusted.origin if trusted is not None else FIRST_DOWNLOAD


def install(checkpoint: Checkpoint, served: ServedFile, folder: Path) -> Path:
    """Verify ``served`` and move its weights into ``folder`` (the lock is held).

    Args:
        checkpoint: the manifest entry.
        served: a complete file as served by one source; it is consumed
            (moved into place or left for the caller to delete).
        folder: the checkpoint's cache folder.

    Returns:
        The cached weights file.

    Raises:
        ChecksumError, ArchiveError, CheckpointFormatError,
        UnsafeCheckpointError: the file is refused; nothing was cached.
    """
    from modelzoo.checkpoint import read_checkpoint, save_state_dict_copy

    info = _inspect(checkpoint, served)
    trusted = cache.read_hashes(folder)
    extract_dir = cache.temp_dir(folder) if info.kind == ARCHIVE else None
    try:
        if extract_dir is not None:
            weights = archive.extract_weights(served.path, extract_dir).path
            weights_name, weights_sha = weights.name, sha256_file(weights)
        else:
            weights, weights_name, weights_sha = served.path, _bare_name(checkpoint, served.name_hint), info.sha256
        origin = _check_weights(checkpoint, info, weights_sha, trusted)
        state, fields = read_checkpoint(weights)
        target = folder / weights_name
        os.replace(weights, target)
    finally:
        if extract_dir is not None:
            archive.remove_tree(extract_dir)
    _record(checkpoint, folder, target, served, info, weights_sha, origin, trusted)
    save_state_dict_copy(target, state, checkpoint.name, fields)
    logger.info("cached %s at %s (sha256 %s, from %s)", checkpoint.name, target, weights_sha, served.source)
    return target


def _record(
    checkpoint: Checkpoint,
    folder: Path,
    target: Path,
    served: ServedFile,
    info: _Served,
    weights_sha: str,
    origin: str,
    trusted: cache.TrustedHashes | None,
) -> None:
    """Step 6: record the cached file and the hashes now trusted; drop stale files."""
    previous = cache.read_record(folder)
    size = target.stat().st_size
    cache.write_record(
        folder,
        cache.CacheRecord(
            name=checkpoint.name,
            weights_file=target.name,
            sha256=weights_sha,
            size=size,
            source=served.source,
            served_sha256=info.sha256,
            served_format=info.format,
            downloaded_at=_now(),
        ),
    )
    if trusted is None or trusted.weights_sha256 != weights_sha:
        trusted = cache.TrustedHashes(
            weights_sha256=weights_sha, weights_size=size, origin=origin, first_source=served.source, recorded_at=_now()
        )
    if not any(entry.get("sha256") == info.sha256 for entry in trusted.served):
        trusted.served.append(
            {"sha256": info.sha256, "size": info.size, "format": info.format, "source": served.source}
        )
    cache.write_hashes(folder, trusted)
    stale = [previous.weights_file] if previous and previous.weights_file != target.name else []
    for name in stale:
        cache.remove_path(folder / name)
        cache.remove_path(folder / (name + cache.SAFETENSORS_SUFFIX))
    cache.remove_path(folder / (target.name + cache.SAFETENSORS_SUFFIX))
