"""One rank of the distributed-extraction test, launched by ``torchrun`` from test_distributed.py.

Usage: ``torchrun --nproc_per_node=2 distributed_worker.py IMAGE_DIR OUT_DIR DEVICE``, DEVICE
``cpu`` (gloo) or ``auto`` (each rank's GPU, NCCL, where CUDA is available).  Each rank
saves what ``extract_features_distributed`` returned to it, per case, in
``OUT_DIR/<case>.rank<r>.pt`` (a ``None`` result is saved as None; an error
as its message).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from modelzoo.evaluation.distributed import (  # noqa: E402
    DistributedError,
    agree_on_failures,
    extract_features_distributed,
)
from tests.evaluation.distributed_cases import CASES, case_paths, case_settings, shared_model  # noqa: E402


def main(image_dir: Path, out_dir: Path, device: str) -> None:
    torch.set_num_threads(1)  # two ranks share the CI machine's cores
    import torch.distributed as dist

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
            agree_on_failures(failure, "cpu" if device == "cpu" else None)
            result = "ok"
        except DistributedError as exc:
            result = f"DistributedError: {exc}"
        torch.save(result, out_dir / f"{case}.rank{dist.get_rank()}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
