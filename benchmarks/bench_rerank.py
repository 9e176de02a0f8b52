"""Re-ranking straight from features, side by side with torchreid's ``re_ranking`` (issue #14).

Two ways from query and gallery features to k-reciprocal re-ranked CMC and
mAP (k1 20, k2 6, lambda 0.3, squared euclidean), on problems of Market-1501
size (3,368 x 15,913) and MSMT17 size (11,659 x 82,161):

* **modelzoo** ``evaluate_from_features(rerank=True)``: ``re_ranking_from_features``
  computes blocks of distances as matrix products, keeps each image's nearest
  neighbours, and yields the re-ranked distances a block of queries at a
  time, each ranked at once; no ``(q + g) x g`` matrix, nor the ``q x g`` one,
  is ever held;
* **torchreid 0.2.5**: its ``compute_distance_matrix`` (``metrics/distance.py``)
  builds the three dense matrices (q x g, q x q, g x g), then its
  ``utils/rerank.py`` ``re_ranking`` builds its ``(q + g)^2`` matrices on them.
  Its CMC and mAP are computed afterwards (untimed) by ``evaluate_rank``,
  which equals torchreid's evaluator.  Where its estimated need (below)
  exceeds ``--memory-budget-gib`` -- MSMT17: about 200 GB -- it is not run and
  the estimate is printed instead.

torchreid's peak, estimated: the three input matrices, and at its argsort the
float32 ``original_dist`` and ``V``, the int64 argsort and its int32 copy:
``4 (qg + q^2 + g^2) + 20 (q + g)^2`` bytes.  Where it runs, the measured peak
is printed next to this estimate.

Features: those of ``bench_eval_features.make_features`` (the identity and
camera structure of ``bench_rank``, calibrated to OSNet's published metrics,
mapped from 32 to ``--dims`` dimensions).  Each method runs in a fresh
subprocess and reports its wall and CPU time and its peak resident memory
beyond the features (``bench_eval_features.reset_peak``): every allocation
counts, torch's and NumPy's.  For ours, the memory re-ranking estimated for
itself (its ``max_memory_bytes`` check) is printed too.  Where torchreid
runs, its worker also computes ours with ``as_matrix=True`` (untimed) and
compares the two re-ranked matrices bit for bit.

Usage::

    python -m benchmarks.bench_rerank                          # market and msmt17, 2048-d and 512-d
    python -m benchmarks.bench_rerank --sizes market --dims 512
    python -m benchmarks.bench_rerank --sizes msmt17 --dims 512 --profile   # cProfile of ours, to stderr
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent

from benchmarks.bench_eval_features import make_features, peak_bytes, reset_peak  # noqa: E402
from modelzoo.devices import cpu_model  # noqa: E402
from benchmarks.bench_rank import SIZES, Features  # noqa: E402

_MAX_RANK = 50
_K1, _K2, _LAMBDA = 20, 6, 0.3


def torchreid_bytes(num_query: int, num_gallery: int) -> int:
    """torchreid's peak, estimated (see the module docstring)."""
    size = num_query + num_gallery
    return 4 * (num_query * num_gallery + num_query**2 + num_gallery**2) + 20 * size**2


# --------------------------------------------------------------------------
# The two methods (each run in its own subprocess)


def ours(features: Features) -> Callable[[], tuple]:
    from modelzoo.evaluation import evaluate_from_features

    def run() -> tuple:
        result = evaluate_from_features(features.qf, features.gf, *features.labels(), max_rank=_MAX_RANK,
                                        rerank=True, k1=_K1, k2=_K2, lambda_value=_LAMBDA)
        return result.cmc, result.mAP, None

    return run


def torchreid(features: Features) -> Callable[[], tuple]:
    from tests import oracle

    compute_distance_matrix = oracle.load("metrics/distance.py").compute_distance_matrix
    re_ranking = oracle.load("utils/rerank.py").re_ranking
    query, gallery = torch.from_numpy(features.qf), torch.from_numpy(features.gf)

    def run() -> tuple:
        q_g, q_q, g_g = (compute_distance_matrix(a, b).numpy() for a, b in
                         ((query, gallery), (query, query), (gallery, gallery)))
        return None, None, re_ranking(q_g, q_q, g_g, _K1, _K2, _LAMBDA)

    return run


class _Estimates(logging.Handler):
    """The largest memory estimate re-ranking logged for itself."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.largest = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("re-ranking needs about"):
            self.largest = max(self.largest, int(record.args[0]))


def worker(args: argparse.Namespace) -> None:
    """Run one method once in this process and print one JSON line."""
    features = make_features(args.size, args.dim, args.seed)
    method = ours(features) if args.worker == "ours" else torchreid(features)
    estimates = _Estimates()
    rerank_logger = logging.getLogger("modelzoo.evaluation.rerank")
    rerank_logger.addHandler(estimates)
    rerank_logger.setLevel(logging.DEBUG)
    profiler = _profiler(args.profile)
    baseline = reset_peak()
    start, start_cpu = time.perf_counter(), time.process_time()
    cmc, mAP, reranked = method()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    extra = peak_bytes() - baseline
    if profiler is not None:
        _print_profile(profiler)
    report = {"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_extra_bytes": extra,
              "estimate_bytes": estimates.largest, "feature_bytes": int(features.qf.nbytes + features.gf.nbytes)}
    if reranked is not None:  # torchreid: rank its matrix, and compare ours with it (both untimed)
        report.update(_check_against(reranked, features))
    else:
        report.update(cmc=[float(x) for x in cmc[:_MAX_RANK]], mAP=mAP)
    print(json.dumps(report))


def _check_against(reranked: np.ndarray, features: Features) -> dict:
    from modelzoo.evaluation import evaluate_rank, re_ranking_from_features

    ranked = evaluate_rank(reranked, *features.labels(), max_rank=_MAX_RANK)
    mine = re_ranking_from_features(features.qf, features.gf, _K1, _K2, _LAMBDA, as_matrix=True)
    return {"cmc": [float(x) for x in ranked.cmc], "mAP": ranked.mAP,
            "identical": bool(np.array_equal(mine, reranked)),
            "max_abs_difference": float(np.abs(mine - reranked).max())}


def _profiler(enabled: bool):
    if not enabled:
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def _print_profile(profiler) -> None:
    import pstats

    profiler.disable()
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(12)


# --------------------------------------------------------------------------
# Orchestration


def run_worker(method: str, args: argparse.Namespace, size: str, dim: int) -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_rerank", "--worker", method, "--size", size,
               "--dim", str(dim), "--seed", str(args.seed)] + (["--profile"] if args.profile else [])
    result = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=None if args.profile else subprocess.PIPE,
                            text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{method} worker failed ({result.returncode}):\n{(result.stderr or '')[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=["market", "msmt17"], default=["market", "msmt17"])
    parser.add_argument("--dims", type=int, nargs="+", default=[2048, 512])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-budget-gib", type=float, default=16.0,
                        help="run torchreid's only where its estimated need is below this")
    parser.add_argument("--profile", action="store_true", help="cProfile our worker (to stderr)")
    parser.add_argument("--worker", choices=["ours", "torchreid"], help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--dim", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return

    load_start = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    rows, notes = [], []
    for size_name in args.sizes:
        size = SIZES[size_name]
        need = torchreid_bytes(size.queries, size.gallery)
        for dim in args.dims:
            print(f"{size_name}, {dim}-d: modelzoo ...", file=sys.stderr)
            mine = run_worker("ours", args, size_name, dim)
            theirs = None
            if need <= args.memory_budget_gib * 2**30:
                print(f"{size_name}, {dim}-d: torchreid ...", file=sys.stderr)
                theirs = run_worker("torchreid", args, size_name, dim)
            rows += _rows(size_name, dim, mine, theirs, need)
            notes.append(_note(size_name, dim, mine, theirs, need))
    load_end = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n### Re-ranking from features (k1 {_K1}, k2 {_K2}, lambda {_LAMBDA}), float32, one run each\n\n"
          f"{cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, Python {platform.python_version()}; "
          f"load average {load_start} at start, {load_end} at end\n")
    print("| size | features | method | wall time (s) | CPU time (s) | peak memory beyond the features (MiB) |")
    print("|---|---|---|---:|---:|---:|")
    print("\n".join(rows))
    print()
    print("\n".join(notes))


def _rows(size_name: str, dim: int, mine: dict, theirs: Optional[dict], need: int) -> list[str]:
    size = SIZES[size_name]
    shape = f"{size_name} ({size.queries:,} x {size.gallery:,})"
    features = f"{dim}-d ({mine['feature_bytes'] / 2**20:.0f} MiB)"
    rows = [f"| {shape} | {features} | modelzoo `evaluate_from_features(rerank=True)` | {mine['seconds']:.1f} | "
            f"{mine['cpu_seconds']:.1f} | {mine['peak_extra_bytes'] / 2**20:,.0f} |"]
    if theirs is None:
        rows.append(f"| {shape} | {features} | torchreid `compute_distance_matrix` x3 + `re_ranking` | not run | "
                    f"not run | ≈{need / 2**30:,.0f} GiB (estimated) |")
    else:
        rows.append(f"| {shape} | {features} | torchreid `compute_distance_matrix` x3 + `re_ranking` | "
                    f"{theirs['seconds']:.1f} | {theirs['cpu_seconds']:.1f} | {theirs['peak_extra_bytes'] / 2**20:,.0f} |")
    return rows


def _note(size_name: str, dim: int, mine: dict, theirs: Optional[dict], need: int) -> str:
    text = (f"{size_name}, {dim}-d: ours rank-1 {mine['cmc'][0]:.4f}, mAP {mine['mAP']:.4f}; its own memory "
            f"estimate {mine['estimate_bytes'] / 2**20:,.0f} MiB, measured peak {mine['peak_extra_bytes'] / 2**20:,.0f} MiB.")
    if theirs is None:
        return text + f" torchreid's would need about {need / 1e9:,.0f} GB: not run."
    depth = min(len(mine["cmc"]), len(theirs["cmc"]))
    cmc_diff = max(abs(a - b) for a, b in zip(mine["cmc"][:depth], theirs["cmc"][:depth]))
    return text + (
        f" {theirs['seconds'] / mine['seconds']:.1f}x faster than torchreid "
        f"({theirs['cpu_seconds'] / mine['cpu_seconds']:.1f}x in CPU time) with "
        f"{theirs['peak_extra_bytes'] / max(mine['peak_extra_bytes'], 1):.0f}x less memory "
        f"(torchreid measured {theirs['peak_extra_bytes'] / 2**30:.1f} GiB, estimated {need / 2**30:.1f} GiB); "
        f"max |CMC diff| {cmc_diff:.1e}, |mAP diff| {abs(mine['mAP'] - theirs['mAP']):.1e}; re-ranked matrices "
        f"{'bit-identical' if theirs['identical'] else 'differ'} (max |diff| {theirs['max_abs_difference']:.1e}).")


if __name__ == "__main__":
    main()
