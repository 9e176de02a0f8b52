"""Helpers of the fetcher tests: fast network settings and test checkpoints."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from modelzoo import config
from modelzoo.fetch import FetchOptions, import_file
from modelzoo.fetch.store import CheckpointStore
from modelzoo.manifest import Checkpoint, Source, resolve_checkpoint
from modelzoo.testing.checkpoints import write_for_checkpoint

# Short timeouts and no real waiting between retries: the fault tests stay fast.
FAST = FetchOptions(connect_timeout=2.0, read_timeout=0.5, retries=2, backoff=0.01, max_backoff=0.02, chunk_size=4096)


def zip_checkpoint() -> Checkpoint:
    """resnet50_fc512.market1501: a QMUL zip in the manifest (its Drive copy is bare)."""
    return resolve_checkpoint("resnet50_fc512", "market1501")


def bare_checkpoint() -> Checkpoint:
    """mobilenetv2_1dot0.market1501: a bare ``.pth.tar`` in the manifest."""
    return resolve_checkpoint("mobilenetv2_x1_0", "market1501")


def with_sources(checkpoint: Checkpoint, *sources: tuple[str, str, str], **changes) -> Checkpoint:
    """The checkpoint with other sources (``(url, kind, format)``) and fields, e.g. ``sha256``."""
    return dataclasses.replace(checkpoint, sources=tuple(Source(*s) for s in sources), **changes)


def store_of(checkpoint: Checkpoint) -> CheckpointStore:
    """The store of ``checkpoint`` in the test's cache (``MODELZOO_HOME``)."""
    return CheckpointStore(checkpoint, config.fetch_settings().checkpoints_dir)


def store_at(folder: Path) -> CheckpointStore:
    """The store whose folder is ``folder`` (``.../checkpoints/<model>/<key>``)."""
    return store_of(resolve_checkpoint(f"{folder.parent.name}.{folder.name}"))


def cached(state: dict, checkpoint: Checkpoint | None = None, folder: Path | None = None,
           vintage: str = "torchreid-dict") -> CheckpointStore:
    """``state`` written in ``vintage`` and imported into the cache as ``checkpoint`` (a bare one by default)."""
    checkpoint = checkpoint or bare_checkpoint()
    source = write_for_checkpoint(checkpoint, folder or Path(tempfile.mkdtemp()), state, vintage=vintage)
    import_file(checkpoint, source)
    return store_of(checkpoint)
