"""What the distributed-extraction test runs, shared by the test and its torchrun worker."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import modelzoo
from tests.evaluation.imagefiles import small_transform

IMAGES = 11  # uneven: 6 + 5 on two ranks
INPUT = (64, 32)  # OSNet pools globally; a small input keeps the test fast

CASES = {
    "all": "every rank gets all 11 rows",
    "to_rank0": "only rank 0 gets them (dst=0)",
    "one_image": "1 image on 2 ranks: rank 1's shard is empty",
    "missing_file": "rank 1's shard holds a missing file: every rank raises, none hangs",
}


def shared_model() -> nn.Module:
    """osnet_x0_25 with fixed random weights: every rank builds the same one."""
    torch.manual_seed(0)
    return modelzoo.build("osnet_x0_25", num_classes=10).eval()


def case_paths(image_dir: Path, case: str) -> list[str]:
    paths = sorted(str(path) for path in image_dir.iterdir())
    if case == "one_image":
        return paths[:1]
    if case == "missing_file":
        return paths[:-1] + [str(image_dir / "missing.jpg")]
    return paths


def case_settings(case: str) -> dict:
    settings = {"transform": small_transform(INPUT), "batch_size": 4, "num_workers": 0, "progress": False}
    if case == "to_rank0":
        settings["dst"] = 0
    return settings
