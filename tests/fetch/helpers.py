"""Helpers of the fetcher tests: fast network settings and test checkpoints."""

from __future__ import annotations

import dataclasses

from modelzoo.fetch import FetchOptions
from modelzoo.manifest import Checkpoint, Source, resolve_checkpoint

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
