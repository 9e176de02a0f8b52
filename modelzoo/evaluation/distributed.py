"""Feature extraction split across processes with ``torch.distributed``.

Launch one process per device with ``torchrun`` (gloo on CPUs, NCCL on
GPUs)::

    torchrun --nproc_per_node=4 extract.py       # extract.py calls extract_features_distributed

Each rank extracts a contiguous shard of the image list (sizes differ by at
most one), then the shards are gathered in rank order, so the rows follow
the input paths exactly as :func:`~modelzoo.evaluation.features.extract_features`
would return them in one process.  Outside ``torchrun`` (no ``WORLD_SIZE``
and no process group) the same call simply runs in this process.
"""

from __future__ import annotations

import atexit
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
from torch import nn

from modelzoo import config
from modelzoo.devices import resolve_device
from modelzoo.errors import ModelZooError
from modelzoo.evaluation.features import extract_features

logger = logging.getLogger(__name__)


class DistributedError(ModelZooError, RuntimeError):
    """Distributed extraction failed on some rank, or the ranks disagree."""


def shard_bounds(count: int, world_size: int, rank: int) -> tuple[int, int]:
    """``[start, stop)`` of ``rank``'s contiguous shard of ``count`` items.

    Shards differ in size by at most one; the first ``count % world_size``
    ranks take one more item.

    Raises:
        ValueError: a negative count, a world size below 1, or a rank outside it.
    """
    if count < 0 or world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"cannot shard {count} items for rank {rank} of {world_size}")
    base, extra = divmod(count, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def init_distributed(device: str | torch.device | None = None) -> bool:
    """Join the process group that ``torchrun`` describes, unless one is joined already.

    The backend is NCCL when this rank computes on CUDA, else gloo; with CUDA
    and no device given, each rank takes GPU ``LOCAL_RANK``.  A group created
    here is destroyed when the process exits.

    Args:
        device: where this rank will compute (None: its GPU if any, else the CPU).

    Returns:
        True when running distributed (a process group of more than one rank).
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    env = config.distributed_env()
    if env is None or env.world_size == 1:
        return False
    if not dist.is_available():
        raise DistributedError("this PyTorch build has no torch.distributed; run in one process")
    target = _rank_device(device, env.local_rank)
    backend = "nccl" if target.type == "cuda" else "gloo"
    # MASTER_ADDR/MASTER_PORT are read by torch from the environment torchrun set up
    dist.init_process_group(backend=backend, init_method="env://", rank=env.rank, world_size=env.world_size)
    atexit.register(_destroy_process_group)
    logger.info("rank %d of %d joined the %s process group", env.rank, env.world_size, backend)
    return env.world_size > 1


def extract_features_distributed(
    model: nn.Module,
    paths: Sequence[str | Path],
    transform: Callable[[Any], torch.Tensor] | None = None,
    *,
    dst: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> torch.Tensor | None:
    """Features of ``paths`` computed by all ranks, each on a contiguous shard, gathered in order.

    Under ``torchrun`` (or an initialised process group) every rank must
    call this with the same ``paths``.  In a single process it is
    :func:`~modelzoo.evaluation.features.extract_features`.

    Args:
        model: the network; every rank must hold the same weights.
        paths: all the image files, in the order of the result's rows.
        transform: PIL image -> tensor (default: the model's attached one).
        dst: None (default): every rank returns all features; a rank number:
            only that rank does, the others return None.
        device: where this rank computes (None: GPU ``LOCAL_RANK`` if CUDA
            is available, else the CPU).
        progress: a progress bar on rank 0's terminal.
        **kwargs: passed on to ``extract_features`` (batch_size, precision, ...).

    Returns:
        A float32 (N, D) CPU tensor, on every rank or only on ``dst``.

    Raises:
        DistributedError: extraction failed on some rank (every rank raises),
            or the ranks returned features of different widths.
    """
    if not init_distributed(device):
        return extract_features(model, paths, transform, device=device, progress=progress, **kwargs)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    if dst is not None and not 0 <= dst < world_size:
        raise ValueError(f"dst={dst} is not a rank of this group of {world_size}")
    start, stop = shard_bounds(len(paths), world_size, rank)
    target = _rank_device(device, _local_rank(rank))
    local, failure = _extract_shard(
        model, paths[start:stop], transform, device=target, progress=progress and rank == 0, **kwargs
    )
    counts, width = _agree_on_shapes(local, failure, rank, world_size)
    return _gather_in_order(local, counts, width, dst)


def agree_on_failures(failure: BaseException | None, device: str | torch.device | None = None) -> None:
    """Every rank says whether it failed; if any did, every rank raises the same DistributedError.

    For steps each rank runs on its own before a collective one (loading a
    model, reading a dataset): without this, the ranks that succeeded would
    wait forever in the next collective.  Outside ``torchrun``, ``failure``
    is simply raised.
    """
    if not init_distributed(device):
        if failure is not None:
            raise failure
        return
    messages: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(messages, None if failure is None else f"{type(failure).__name__}: {failure}")
    failed = [(rank, message) for rank, message in enumerate(messages) if message is not None]
    if failed:
        rank, message = failed[0]
        raise DistributedError(f"failed on rank {rank} of {len(messages)}: {message}") from failure


def rank_device(device: str | torch.device | None = None) -> torch.device:
    """Where this process computes: ``device``; None: under ``torchrun``, GPU ``LOCAL_RANK`` when
    CUDA is available (else the CPU), and outside it CUDA when available, else the CPU."""
    env = config.distributed_env()
    return _rank_device(device, env.local_rank if env is not None else 0)


def world_size() -> int:
    """Processes of this ``torchrun`` launch (1 outside one)."""
    env = config.distributed_env()
    return env.world_size if env is not None else 1


def is_main_process() -> bool:
    """True outside ``torchrun`` and on its rank 0: the process that prints and writes reports."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    env = config.distributed_env()
    return env is None or env.rank == 0


def _local_rank(rank: int) -> int:
    """This process's index on its node: torchrun's LOCAL_RANK, else (a group set up by hand) the rank."""
    env = config.distributed_env()
    return env.local_rank if env is not None else rank


def _rank_device(device: str | torch.device | None, local_rank: int) -> torch.device:
    if device is None and torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    return resolve_device(device)


def _extract_shard(model, paths, transform, **kwargs) -> tuple[torch.Tensor, BaseException | None]:
    """This rank's features, or the error that stopped it (raised after the ranks have compared notes)."""
    try:
        return extract_features(model, paths, transform, **kwargs), None
    except Exception as exc:  # reported to every rank below, so no rank waits forever in a collective
        return torch.empty(0, 0), exc


def _agree_on_shapes(
    local: torch.Tensor, failure: BaseException | None, rank: int, world_size: int
) -> tuple[list[int], int]:
    """Every rank's row count and the common feature width; raises on every rank if any failed."""
    mine = torch.tensor([int(failure is not None), local.shape[0], local.shape[1]], dtype=torch.int64)
    notes = [torch.zeros_like(mine) for _ in range(world_size)]
    dist.all_gather(notes, mine.to(_collective_device()))
    notes = [note.cpu() for note in notes]
    failed = [r for r, note in enumerate(notes) if note[0]]
    if failure is not None:
        raise DistributedError(f"feature extraction failed on rank {rank}: {failure}") from failure
    if failed:
        raise DistributedError(f"feature extraction failed on rank(s) {failed}; see their error messages")
    widths = {int(note[2]) for note in notes if note[1] > 0}
    if len(widths) > 1:
        raise DistributedError(f"ranks returned features of different widths {sorted(widths)}: same model everywhere?")
    return [int(note[1]) for note in notes], widths.pop() if widths else 0


def _gather_in_order(local: torch.Tensor, counts: list[int], width: int, dst: int | None) -> torch.Tensor | None:
    """Concatenate every rank's rows in rank order; ``all_gather`` needs equal sizes, so shards are padded."""
    device = _collective_device()
    padded = torch.zeros(max(counts), width, dtype=torch.float32, device=device)
    if local.shape[0]:
        padded[: local.shape[0]] = local.to(device)
    if dst is None:
        pieces = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(pieces, padded)
    else:
        pieces = [torch.empty_like(padded) for _ in counts] if dist.get_rank() == dst else None
        dist.gather(padded, pieces, dst=dst)
        if pieces is None:
            return None
    return torch.cat([piece[:count] for piece, count in zip(pieces, counts)]).cpu()


def _collective_device() -> torch.device:
    """NCCL moves CUDA tensors only; gloo CPU ones."""
    if "nccl" in str(dist.get_backend()).lower():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
