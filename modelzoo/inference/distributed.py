"""Feature extraction split across the processes of a ``torch.distributed`` group, when asked for.

Distribution is the caller's choice, as in torchmetrics: the library never
starts a process group, registers exit handlers or selects a CUDA device on
its own.  A script that wants it joins a group (``torch.distributed.init_process_group()``
under ``torchrun``) and calls :func:`extract_features_distributed`, or passes
``distributed=True`` / ``process_group=`` to ``modelzoo.evaluate``; the
``modelzoo eval`` / ``verify`` commands join the group that ``torchrun``
describes themselves (:func:`init_from_torchrun`).

Each rank extracts a contiguous shard of the image list (sizes differ by at
most one), then the shards are gathered in rank order, so the rows follow
the input paths exactly as :func:`~modelzoo.inference.features.extract_features`
returns them in one process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
from torch import nn

from modelzoo import config
from modelzoo.devices import resolve_device
from modelzoo.errors import DistributedError
from modelzoo.inference.features import extract_features

logger = logging.getLogger(__name__)

ProcessGroup = Any  # torch.distributed.ProcessGroup (not importable on builds without distributed)


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


def init_from_torchrun(device: str | torch.device | None = None) -> bool:
    """Join the process group that ``torchrun`` describes (``RANK``, ``WORLD_SIZE``), unless one is joined.

    For command-line tools and scripts that ask for it; the library itself
    never calls this.  The backend is NCCL when this rank computes on CUDA,
    else gloo.  The caller destroys the group when done
    (``torch.distributed.destroy_process_group()``).

    Args:
        device: where this rank will compute (None: GPU ``LOCAL_RANK`` if CUDA
            is available, else the CPU).

    Returns:
        True when this process is one of several ranks.

    Raises:
        ValueError: ``RANK``/``WORLD_SIZE`` that are not whole numbers or do not fit.
        DistributedError: this PyTorch build has no ``torch.distributed``.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    env = config.distributed_env()
    if env is None or env.world_size == 1:
        return False
    if not dist.is_available():
        raise DistributedError("this PyTorch build has no torch.distributed; run in one process")
    target = rank_device(device)
    backend = "nccl" if target.type == "cuda" else "gloo"
    # MASTER_ADDR/MASTER_PORT are read by torch from the environment torchrun set up
    dist.init_process_group(backend=backend, init_method="env://", rank=env.rank, world_size=env.world_size)
    logger.info("rank %d of %d joined the %s process group", env.rank, env.world_size, backend)
    return True


def active_group(distributed: bool, process_group: ProcessGroup | None) -> ProcessGroup | None:
    """The group a call runs in: ``process_group``, the default group when ``distributed``, else None.

    Raises:
        DistributedError: ``distributed=True`` without an initialised process group.
    """
    if process_group is not None:
        return process_group
    if not distributed:
        return None
    if not (dist.is_available() and dist.is_initialized()):
        raise DistributedError(
            "distributed=True but no process group is initialised: call torch.distributed.init_process_group() "
            "first (under torchrun), or run in one process with distributed=False"
        )
    return dist.group.WORLD


def group_size(group: ProcessGroup | None) -> int:
    """Processes of ``group`` (1 for None: this process alone)."""
    return 1 if group is None else dist.get_world_size(group)


def extract_features_distributed(
    model: nn.Module,
    paths: Sequence[str | Path],
    transform: Callable[[Any], torch.Tensor] | None = None,
    *,
    process_group: ProcessGroup | None = None,
    dst: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> torch.Tensor | None:
    """Features of ``paths`` computed by all ranks, each on a contiguous shard, gathered in order.

    Every rank of the group must call this with the same ``paths``.  Without
    an initialised process group (and no ``process_group``) it is
    :func:`~modelzoo.inference.features.extract_features` in this process.

    Args:
        model: the network; every rank must hold the same weights.
        paths: all the image files, in the order of the result's rows.
        transform: PIL image -> tensor (default: the model's eval transform).
        process_group: the group to split across (default: the default group).
        dst: None (default): every rank returns all features; a rank number:
            only that rank does, the others return None.
        device: where this rank computes (None: GPU ``LOCAL_RANK`` if CUDA
            is available, else the CPU).
        progress: a progress bar on the first rank's terminal.
        **kwargs: passed on to ``extract_features`` (batch_size, precision, ...).

    Returns:
        A float32 (N, D) CPU tensor, on every rank or only on ``dst``.

    Raises:
        DistributedError: extraction failed on some rank (every rank raises),
            or the ranks returned features of different widths.
    """
    group = active_group(dist.is_available() and dist.is_initialized(), process_group)
    if group_size(group) == 1:
        return extract_features(model, paths, transform, device=device, progress=progress, **kwargs)
    rank, world_size = dist.get_rank(group), dist.get_world_size(group)
    if dst is not None and not 0 <= dst < world_size:
        raise ValueError(f"dst={dst} is not a rank of this group of {world_size}")
    start, stop = shard_bounds(len(paths), world_size, rank)
    target = rank_device(device)
    local, failure = _extract_shard(
        model, paths[start:stop], transform, device=target, progress=progress and rank == 0, **kwargs
    )
    counts, width = _agree_on_shapes(local, failure, group, target)
    return _gather_in_order(local, counts, width, dst, group, target)


def agree_on_failures(failure: BaseException | None, group: ProcessGroup | None) -> None:
    """Every rank says whether it failed; if any did, every rank raises the same DistributedError.

    For steps each rank runs on its own before a collective one (loading a
    model, reading a dataset): without this, the ranks that succeeded would
    wait forever in the next collective.  Without a group, ``failure`` is
    simply raised.
    """
    if group_size(group) == 1:
        if failure is not None:
            raise failure
        return
    messages: list[str | None] = [None] * dist.get_world_size(group)
    dist.all_gather_object(messages, None if failure is None else f"{type(failure).__name__}: {failure}", group=group)
    failed = [(rank, message) for rank, message in enumerate(messages) if message is not None]
    if failed:
        rank, message = failed[0]
        raise DistributedError(f"failed on rank {rank} of {len(messages)}: {message}") from failure


def rank_device(device: str | torch.device | None = None) -> torch.device:
    """Where this process computes: ``device``; None: GPU ``LOCAL_RANK`` under ``torchrun`` when CUDA is
    available (else the CPU), and outside it CUDA when available, else the CPU.

    Only resolves the device; the current CUDA device is left as it is.
    """
    if device is None and torch.cuda.is_available():
        env = config.distributed_env()
        local_rank = env.local_rank if env is not None else torch.cuda.current_device()
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return resolve_device(device)


def is_main_process(group: ProcessGroup | None = None) -> bool:
    """True in a single process and on rank 0 of ``group``: the process that prints and writes reports."""
    return group is None or dist.get_rank(group) == 0


def _extract_shard(model, paths, transform, **kwargs) -> tuple[torch.Tensor, BaseException | None]:
    """This rank's features, or the error that stopped it (raised after the ranks have compared notes)."""
    try:
        return extract_features(model, paths, transform, **kwargs), None
    except Exception as exc:  # reported to every rank below, so no rank waits forever in a collective
        return torch.empty(0, 0), exc


def _agree_on_shapes(
    local: torch.Tensor, failure: BaseException | None, group: ProcessGroup, device: torch.device
) -> tuple[list[int], int]:
    """Every rank's row count and the common feature width; raises on every rank if any failed."""
    world_size, rank = dist.get_world_size(group), dist.get_rank(group)
    mine = torch.tensor([int(failure is not None), local.shape[0], local.shape[1]], dtype=torch.int64)
    collective = _collective_device(group, device)
    notes = [torch.zeros_like(mine, device=collective) for _ in range(world_size)]
    dist.all_gather(notes, mine.to(collective), group=group)
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


def _gather_in_order(
    local: torch.Tensor, counts: list[int], width: int, dst: int | None, group: ProcessGroup, device: torch.device
) -> torch.Tensor | None:
    """Concatenate every rank's rows in rank order; ``all_gather`` needs equal sizes, so shards are padded."""
    collective = _collective_device(group, device)
    padded = torch.zeros(max(counts), width, dtype=torch.float32, device=collective)
    if local.shape[0]:
        padded[: local.shape[0]] = local.to(collective)
    if dst is None:
        pieces = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(pieces, padded, group=group)
    else:
        receives = dist.get_rank(group) == dst
        gathered = [torch.empty_like(padded) for _ in counts] if receives else None
        dist.gather(padded, gathered, dst=dist.get_global_rank(group, dst) if _is_subgroup(group) else dst,
                    group=group)
        if gathered is None:
            return None
        pieces = gathered
    return torch.cat([piece[:count] for piece, count in zip(pieces, counts)]).cpu()


def _is_subgroup(group: ProcessGroup) -> bool:
    return group is not None and group is not dist.group.WORLD


def _collective_device(group: ProcessGroup, device: torch.device) -> torch.device:
    """NCCL moves CUDA tensors only (this rank's device); gloo CPU ones."""
    if "nccl" in str(dist.get_backend(group)).lower():
        return device if device.type == "cuda" else torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
