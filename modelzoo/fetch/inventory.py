"""What the cache holds: list, verify and clear cached checkpoints (the ``modelzoo cache`` commands)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from modelzoo import config
from modelzoo.errors import UnknownNameError
from modelzoo.fetch.download import as_checkpoint, store_for
from modelzoo.fetch.store import CheckpointStore, VerifyResult, cached_folders
from modelzoo.manifest import Checkpoint, resolve_checkpoint, resolve_name, split_name

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheEntry:
    """One cached checkpoint."""

    name: str
    path: Path
    size: int
    sha256: str
    source: str
    downloaded_at: str


def cached_path(checkpoint: Checkpoint | str, *, cache_dir: str | Path | None = None) -> Path | None:
    """The cached weights file of ``checkpoint``, or None; never touches the network.

    Args:
        checkpoint: a manifest entry or a ``model.dataset`` name.
        cache_dir: the cache root (default ``MODELZOO_HOME``).
    """
    return store_for(as_checkpoint(checkpoint), config.fetch_settings(cache_dir=cache_dir)).weights_path()


def _selected_stores(name: str | Checkpoint | None, cache_dir: str | Path | None) -> list[CheckpointStore]:
    """Stores of every cached checkpoint (None), of one model, or of one ``model.dataset``."""
    settings = config.fetch_settings(cache_dir=cache_dir)
    if isinstance(name, Checkpoint):
        return [store_for(name, settings)]
    if name is not None:
        model, tag = split_name(name)
        checkpoints = [resolve_checkpoint(name)] if tag else list(resolve_name(model).checkpoints.values())
        return [store_for(c, settings) for c in checkpoints]
    stores = []
    for folder in cached_folders(settings.checkpoints_dir):
        try:
            checkpoint = resolve_checkpoint(f"{folder.parent.name}.{folder.name}")
        except UnknownNameError:
            logger.info("leaving %s alone: the manifest has no checkpoint %s.%s", folder,
                        folder.parent.name, folder.name)
            continue
        stores.append(store_for(checkpoint, settings))
    return stores


def list_cached(name: str | Checkpoint | None = None, *, cache_dir: str | Path | None = None) -> list[CacheEntry]:
    """The checkpoints in the cache (all, one model's, or one), sorted by name."""
    entries = []
    for store in _selected_stores(name, cache_dir):
        record, path = store.read_record(), store.weights_path()
        if record is not None and path is not None:
            entries.append(CacheEntry(record.name, path, record.size, record.sha256, record.source,
                                      record.downloaded_at))
    return sorted(entries, key=lambda entry: entry.name)


def verify_cached(name: str | Checkpoint | None = None, *, cache_dir: str | Path | None = None) -> list[VerifyResult]:
    """Hash every selected cached weights file again and compare with its record.

    Args:
        name: None for the whole cache, a model name, or ``model.dataset``.
        cache_dir: the cache root (default ``MODELZOO_HOME``).

    Returns:
        One result per cached checkpoint; ``ok`` is False for a file whose
        size or SHA-256 changed since it was verified.
    """
    results = [store.verify() for store in _selected_stores(name, cache_dir)]
    return [result for result in results if result is not None]


def clear_cache(
    name: str | Checkpoint | None = None, *, forget_hashes: bool = False, cache_dir: str | Path | None = None
) -> list[str]:
    """Delete cached checkpoints (all, one model's, or one) and their partial downloads.

    The hashes trusted since a checkpoint's first download are kept, so a
    later download must match them, unless ``forget_hashes`` is True.

    Returns:
        The names (``model.dataset``) whose files were removed.
    """
    removed = [store.checkpoint.name for store in _selected_stores(name, cache_dir) if store.clear(forget_hashes)]
    return sorted(removed)
