"""Distributed extraction: two torchrun CPU ranks (gloo) give the single-process features, in order."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modelzoo import config
from modelzoo.inference.distributed import extract_features_distributed, shard_bounds
from modelzoo.inference.features import extract_features
from tests.evaluation.distributed_cases import CASES, IMAGES, case_paths, case_settings, shared_model
from tests.evaluation.imagefiles import write_images

WORKER = "tests.evaluation.distributed_worker"
ROOT = Path(__file__).resolve().parents[2]
RANKS = 2


@pytest.mark.parametrize("count", range(0, 13))
@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
def test_shards_are_contiguous_cover_everything_and_differ_by_at_most_one(count, world_size):
    bounds = [shard_bounds(count, world_size, rank) for rank in range(world_size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == count
    assert all(stop == next_start for (_, stop), (next_start, _) in zip(bounds, bounds[1:]))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("count, world_size, rank", [(-1, 2, 0), (4, 0, 0), (4, 2, 2), (4, 2, -1)])
def test_impossible_shards_are_refused(count, world_size, rank):
    with pytest.raises(ValueError, match="cannot shard"):
        shard_bounds(count, world_size, rank)


def test_torchrun_environment_is_read(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert config.distributed_env() is None
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert config.distributed_env() == config.DistributedEnv(rank=3, world_size=4, local_rank=1)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="does not fit"):
        config.distributed_env()
    monkeypatch.setenv("RANK", "two")
    with pytest.raises(ValueError, match="whole number"):
        config.distributed_env()


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("distributed_images")
    write_images(folder, IMAGES)
    return folder


def test_a_single_process_runs_plain_extraction(image_dir, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    model = shared_model()
    paths = case_paths(image_dir, "all")
    alone = extract_features_distributed(model, paths, device="cpu", **case_settings("all"))
    settings = case_settings("all")
    expected = extract_features(model, paths, settings.pop("transform"), device="cpu", **settings)
    torch.testing.assert_close(alone, expected)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ranks_output(image_dir, tmp_path_factory) -> Path:
    """Run the worker under torchrun with two CPU ranks; the folder of what each rank got."""
    out = tmp_path_factory.mktemp("distributed_out")
    run_ranks(image_dir, out, device="cpu", data_root=synthetic_market(tmp_path_factory))  # gloo, even with CUDA
    return out


def synthetic_market(tmp_path_factory) -> Path:
    from modelzoo.testing import synthetic

    return synthetic.write_dataset("market1501", tmp_path_factory.mktemp("market"), num_train_ids=2, num_test_ids=4)


def run_ranks(image_dir: Path, out: Path, device: str, data_root: Path) -> None:
    """``torchrun`` the worker with two ranks on this machine."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={RANKS}",
        "--master_addr=127.0.0.1", f"--master_port={free_port()}", "-m", WORKER,
        str(image_dir), str(out), device, str(data_root),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout}\n{done.stderr}"


def rank_result(out: Path, case: str, rank: int):
    return torch.load(out / f"{case}.rank{rank}.pt", weights_only=False)


def single_process(image_dir: Path, case: str) -> torch.Tensor:
    settings = case_settings(case)
    settings.pop("dst", None)
    transform = settings.pop("transform")
    return extract_features(shared_model(), case_paths(image_dir, case), transform, device="cpu", **settings)


@pytest.mark.parametrize("case", ["all", "one_image"])
def test_every_rank_gets_the_single_process_features_in_order(ranks_output, image_dir, case):
    expected = single_process(image_dir, case)
    assert expected.shape[0] == len(case_paths(image_dir, case))
    for rank in range(RANKS):
        gathered = rank_result(ranks_output, case, rank)
        assert isinstance(gathered, torch.Tensor), f"rank {rank}: {gathered}"
        torch.testing.assert_close(gathered, expected, rtol=1e-5, atol=1e-6)


def test_gathering_to_one_rank_leaves_the_others_empty_handed(ranks_output, image_dir):
    torch.testing.assert_close(
        rank_result(ranks_output, "to_rank0", 0), single_process(image_dir, "to_rank0"), rtol=1e-5, atol=1e-6
    )
    assert rank_result(ranks_output, "to_rank0", 1) is None


def test_a_step_that_failed_on_one_rank_only_fails_on_every_rank(ranks_output):
    for rank in range(RANKS):
        assert rank_result(ranks_output, "agree_one_failed", rank) == (
            "DistributedError: failed on rank 1 of 2: ValueError: boom"), f"rank {rank}"
        assert rank_result(ranks_output, "agree_none_failed", rank) == "ok"


def test_rank0_alone_in_a_process_group_evaluates_and_returns(ranks_output):
    """``if rank == 0: modelzoo.evaluate(...)`` in a DDP loop: no collective is entered unasked."""
    done = rank_result(ranks_output, "rank0_alone", 0)
    assert done["processes"] == 1 and 0 <= done["rank1"] <= 100


def test_a_failure_on_one_rank_is_raised_on_every_rank(ranks_output):
    assert "missing_file" in CASES
    for rank in range(RANKS):
        message = rank_result(ranks_output, "missing_file", rank)
        assert isinstance(message, str) and message.startswith("DistributedError"), f"rank {rank}: {message}"
    assert "failed on rank 1" in rank_result(ranks_output, "missing_file", 1)
    assert "rank(s) [1]" in rank_result(ranks_output, "missing_file", 0)


@pytest.mark.skipif(torch.cuda.device_count() < RANKS, reason=f"needs {RANKS} CUDA devices for NCCL")
@pytest.mark.cuda
def test_nccl_ranks_on_gpus_get_the_single_process_features(image_dir, tmp_path, tmp_path_factory):
    run_ranks(image_dir, tmp_path, device="auto", data_root=synthetic_market(tmp_path_factory))  # NCCL
    expected = single_process(image_dir, "all")
    for rank in range(RANKS):
        torch.testing.assert_close(rank_result(tmp_path, "all", rank), expected, rtol=1e-3, atol=1e-4)
