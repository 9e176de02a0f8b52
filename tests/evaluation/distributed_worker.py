"""One rank of the distributed-extraction test, launched by ``torchrun`` from test_distributed.py.

Usage: ``torchrun --nproc_per_node=2 -m tests.evaluation.distributed_worker IMAGE_DIR OUT_DIR DEVICE DATA_ROOT``,
DEVICE ``cpu`` (gloo) or ``auto`` (each rank's GPU, NCCL, where CUDA is available).  The
worker joins the process group itself (the library never does).  Each rank saves what
``extract_features_distributed`` returned to it, per case, in ``OUT_DIR/<case>.rank<r>.pt``
(a ``None`` result is saved as None; an error as its message).  Last, rank 0 alone calls
``modelzoo.evaluate`` on the synthetic dataset at DATA_ROOT, as a training loop's
``if rank == 0:`` would, and must return.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from modelzoo.errors import DistributedError
from modelzoo.evaluation.pipeline import evaluate
from modelzoo.inference.distributed import agree_on_failures, extract_features_distributed, init_from_torchrun
from tests.evaluation.distributed_cases import CASES, case_paths, case_settings, shared_model


def main(image_dir: Path, out_dir: Path, device: str, data_root: Path) -> None:
    torch.set_num_threads(1)  # two ranks share the CI machine's cores
    assert not dist.is_initialized()
    init_from_torchrun("cpu" if device == "cpu" else None)
    try:
        run_cases(image_dir, out_dir, device)
        rank0_alone_evaluates(out_dir, data_root)
    finally:
        dist.destroy_process_group()


def run_cases(image_dir: Path, out_dir: Path, device: str) -> None:
    model = shared_model()
    for case in CASES:
        paths = case_paths(image_dir, case)
        try:
            result = extract_features_distributed(
                model, paths, device=None if device == "auto" else device, **case_settings(case)
            )
        except DistributedError as exc:
            result = f"DistributedError: {exc}"
        torch.save(result, out_dir / f"{case}.rank{dist.get_rank()}.pt")
    # a step each rank runs alone (loading a model, reading a dataset) failed on rank 1 only
    for case, failing_rank in (("agree_one_failed", 1), ("agree_none_failed", None)):
        failure = ValueError("boom") if dist.get_rank() == failing_rank else None
        try:
            agree_on_failures(failure, dist.group.WORLD)
            result = "ok"
        except DistributedError as exc:
            result = f"DistributedError: {exc}"
        torch.save(result, out_dir / f"{case}.rank{dist.get_rank()}.pt")


def rank0_alone_evaluates(out_dir: Path, data_root: Path) -> None:
    """A process group exists, yet evaluate() on rank 0 alone must not enter a collective."""
    if dist.get_rank() == 0:
        result = evaluate(shared_model(), "market1501", data_root, device="cpu", num_workers=0, progress=False)
        torch.save({"rank1": result.rank1, "processes": result.settings["processes"]},
                   out_dir / "rank0_alone.rank0.pt")
    # rank 1 waits here; had evaluate() entered a collective, the ranks would hang (or gloo time out)
    dist.monitored_barrier(timeout=datetime.timedelta(seconds=120))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
