"""Evaluation straight from features, side by side with torchreid (issue #6, target 2).

Two ways from query and gallery features to CMC and mAP, on an MSMT17-sized
problem (11,659 queries x 82,161 gallery, 15 cameras) by default:

* **modelzoo** ``evaluate_from_features``: distances for a block of queries at
  a time, ranked at once and dropped; the query x gallery matrix never exists;
* **torchreid 0.2.5**: ``compute_distance_matrix`` (its ``metrics/distance.py``)
  builds the whole matrix, then its compiled Cython ``evaluate_cy`` (from the
  ``pyppbox-torchreid`` wheel, see ``bench_rank.load_cython``) ranks it, as
  torchreid's engine does.  At MSMT17 size that is a 3.8 GB matrix plus int64
  matrices of 8 bytes per distance (an argsort and the match table, and their
  temporaries), which does not fit a small machine: the reference then runs on
  the first ``--reference-queries`` queries against the whole gallery, and its
  time and memory are scaled to all queries (both grow linearly with the
  number of queries), as the table says.

Features: the identity/camera structure of ``bench_rank.make_features`` (the
problem ``bench_rank`` evaluates, calibrated to OSNet's published metrics),
drawn in 32 dimensions and mapped to ``--dims`` (2048 and 512: ResNet-50 and
OSNet) by a random orthonormal map plus a little isotropic noise, so the
features are genuinely high-dimensional float32 while the metrics stay those of
a real model.

Each method runs in a fresh subprocess that first makes the features, then
resets the process's peak-memory mark (``/proc/self/clear_refs``; elsewhere
``ru_maxrss`` is compared with the resident size instead) and reports its peak
resident memory beyond the features: every allocation counts (torch, NumPy,
Cython), not only Python's.  Time is wall-clock (CPU time too, since the
machine may be shared).

Usage::

    python -m benchmarks.bench_eval_features                 # msmt17, 2048-d and 512-d
    python -m benchmarks.bench_eval_features --size market --dims 512 --cython PATH/rank_cy.cpython-311-x86_64-linux-gnu.so
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = Path(__file__).resolve().parent

from benchmarks import bench_rank  # noqa: E402
from benchmarks.bench_rank import SIZES, Features  # noqa: E402

#: Bytes per distance that torchreid's path may hold at its peak, to size its
#: subset safely: the float32 matrix, Cython's int64 argsort, ``g_pids[indices]``
#: (int64), its boolean comparison and the int64 match table.  Measured: about
#: 20, as not all of them live at once.
_TORCHREID_BYTES_PER_DISTANCE = 4 + 8 + 8 + 1 + 8
_BASE_DIM = 32
_ISOTROPIC_NOISE = 0.02
_MAX_RANK = 50


# --------------------------------------------------------------------------
# Features


def make_features(size_name: str, dim: int, seed: int) -> Features:
    """``bench_rank``'s features for ``size_name``, mapped from 32 to ``dim`` dimensions.

    The map is orthonormal, so distances (hence ranks and metrics) are those of
    the 32-d problem up to the small isotropic noise; rows are mapped a block
    at a time so that making them needs little memory beyond the result.
    """
    size = SIZES[size_name]
    base = bench_rank.make_features(size, seed, size.noise, _BASE_DIM)
    rng = np.random.default_rng(seed + 1)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, _BASE_DIM)))  # dim x 32, orthonormal columns
    basis = basis.T.astype(np.float32)

    def lift(low: np.ndarray) -> np.ndarray:
        high = np.empty((low.shape[0], dim), dtype=np.float32)
        for start in range(0, low.shape[0], 4096):
            block = low[start:start + 4096] @ basis
            block += _ISOTROPIC_NOISE * rng.standard_normal(block.shape, dtype=np.float32)
            high[start:start + 4096] = block
        return high

    return Features(lift(base.qf), lift(base.gf), *base.labels())


# --------------------------------------------------------------------------
# Memory


def _status_kib(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak() -> int:
    """Reset the peak-resident mark where Linux allows it; the resident bytes now (the baseline)."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        pass
    resident = _status_kib("VmRSS")
    return (resident if resident is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def peak_bytes() -> int:
    peak = _status_kib("VmHWM")
    return (peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


# --------------------------------------------------------------------------
# The two methods (each run in its own subprocess)


def ours(features: Features, rows: int) -> Callable[[], tuple]:
    from modelzoo.evaluation.rank import evaluate_from_features

    def run() -> tuple:
        result = evaluate_from_features(features.qf[:rows], features.gf, features.q_pids[:rows], features.g_pids,
                                        features.q_camids[:rows], features.g_camids, max_rank=_MAX_RANK)
        return result.cmc, result.mAP

    return run


def torchreid(features: Features, rows: int, cython_path: Optional[str]) -> Callable[[], tuple]:
    from tests import oracle

    compute_distance_matrix = oracle.load("metrics/distance.py").compute_distance_matrix
    evaluate_cy = bench_rank.load_cython(cython_path)
    if evaluate_cy is None:
        raise SystemExit("no compiled rank_cy found: pass --cython PATH (see bench_rank.py)")

    def run() -> tuple:
        # as torchreid's engine: tensors in, the whole matrix out, to NumPy, then the Cython evaluator
        distmat = compute_distance_matrix(torch.from_numpy(features.qf[:rows]), torch.from_numpy(features.gf))
        cmc, mAP = evaluate_cy(distmat.numpy(), features.q_pids[:rows], features.g_pids,
                               features.q_camids[:rows], features.g_camids, _MAX_RANK, False)
        return np.asarray(cmc, dtype=np.float64), float(mAP)

    return run


def worker(args: argparse.Namespace) -> None:
    """Run one method once in this process and print one JSON line."""
    features = make_features(args.size, args.dim, args.seed)
    rows = args.rows or features.qf.shape[0]
    method = ours(features, rows) if args.worker == "ours" else torchreid(features, rows, args.cython)
    baseline = reset_peak()
    start, start_cpu = time.perf_counter(), time.process_time()
    cmc, mAP = method()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    extra = peak_bytes() - baseline
    report = {"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_extra_bytes": extra, "rows": rows,
              "cmc": [float(x) for x in cmc[:_MAX_RANK]], "mAP": mAP,
              "feature_bytes": int(features.qf.nbytes + features.gf.nbytes)}
    if args.worker == "ours" and args.check_rows:  # the reference's queries, for the agreement check (untimed)
        cmc_check, map_check = ours(features, args.check_rows)()
        report["check_cmc"], report["check_mAP"] = [float(x) for x in cmc_check[:_MAX_RANK]], map_check
    print(json.dumps(report))


# --------------------------------------------------------------------------
# Orchestration


def run_worker(method: str, args: argparse.Namespace, dim: int, rows: int, check_rows: int = 0) -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_eval_features", "--worker", method, "--size", args.size,
               "--dim", str(dim), "--seed", str(args.seed), "--rows", str(rows), "--check-rows", str(check_rows)]
    if args.cython:
        command += ["--cython", args.cython]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{method} worker failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def reference_rows(num_query: int, num_gallery: int, budget_gib: float, asked: Optional[int]) -> int:
    """Queries torchreid's path runs: all of them if its matrices fit the budget, else as many as fit."""
    if asked:
        return min(asked, num_query)
    fitting = int(budget_gib * 2**30 // (num_gallery * _TORCHREID_BYTES_PER_DISTANCE))
    return max(1, min(num_query, fitting))


def median_run(method: str, args: argparse.Namespace, dim: int, rows: int, check_rows: int = 0) -> dict:
    """The run with the median wall time of ``args.repeats`` subprocess runs."""
    runs = sorted((run_worker(method, args, dim, rows, check_rows) for _ in range(args.repeats)),
                  key=lambda r: r["seconds"])
    return runs[len(runs) // 2]


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="msmt17")
    parser.add_argument("--dims", type=int, nargs="+", default=[2048, 512])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="subprocess runs per method (the median is kept)")
    parser.add_argument("--cython", help="path of torchreid's rank_cy extension (.so)")
    parser.add_argument("--memory-budget-gib", type=float, default=6.0,
                        help="memory torchreid's path may use before it runs on a subset of queries")
    parser.add_argument("--reference-queries", type=int, help="queries torchreid's path runs (default: what fits)")
    parser.add_argument("--worker", choices=["ours", "torchreid"], help=argparse.SUPPRESS)
    parser.add_argument("--dim", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--check-rows", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return

    size = SIZES[args.size]
    rows = reference_rows(size.queries, size.gallery, args.memory_budget_gib, args.reference_queries)
    load_start = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = []
    for dim in args.dims:
        print(f"{args.size}, {dim}-d: modelzoo on all {size.queries} queries ...", file=sys.stderr)
        mine = median_run("ours", args, dim, size.queries, check_rows=rows)
        print(f"{args.size}, {dim}-d: torchreid on {rows} queries ...", file=sys.stderr)
        theirs = median_run("torchreid", args, dim, rows)
        lines.append(_rows(dim, mine, theirs, size.queries))
    load_end = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n### Evaluation from features, {args.size}: {size.queries} queries x {size.gallery} gallery, float32 "
          f"(torch {torch.__version__}, {os.cpu_count()} CPUs; load average {load_start} at start, {load_end} at end; "
          f"median of {args.repeats} runs)\n")
    print("| features | method | wall time (s) | CPU time (s) | peak memory beyond the features (MiB) | measured on |")
    print("|---|---|---:|---:|---:|---|")
    for block in lines:
        print("\n".join(block[0]))
    for block in lines:
        print()
        print("\n".join(block[1]))


def _rows(dim: int, mine: dict, theirs: dict, num_query: int) -> tuple[list[str], list[str]]:
    scale = num_query / theirs["rows"]
    note = "all queries" if theirs["rows"] == num_query else (
        f"{theirs['rows']} queries, time and memory x{scale:.1f}")
    feature_mb = mine["feature_bytes"] / 2**20
    table = [
        f"| {dim}-d ({feature_mb:.0f} MiB) | modelzoo `evaluate_from_features` | {mine['seconds']:.1f} | "
        f"{mine['cpu_seconds']:.1f} | {mine['peak_extra_bytes'] / 2**20:.0f} | all queries |",
        f"| {dim}-d ({feature_mb:.0f} MiB) | torchreid `compute_distance_matrix` + Cython `evaluate_cy` | "
        f"{theirs['seconds'] * scale:.1f} | {theirs['cpu_seconds'] * scale:.1f} | "
        f"{theirs['peak_extra_bytes'] * scale / 2**20:.0f} | {note} |",
    ]
    depth = min(len(mine["check_cmc"]), len(theirs["cmc"]))
    cmc_diff = max(abs(a - b) for a, b in zip(mine["check_cmc"][:depth], theirs["cmc"][:depth]))
    summary = [
        f"{dim}-d: modelzoo is {theirs['seconds'] * scale / mine['seconds']:.1f}x faster "
        f"({theirs['cpu_seconds'] * scale / mine['cpu_seconds']:.1f}x in CPU time) with "
        f"{theirs['peak_extra_bytes'] * scale / max(mine['peak_extra_bytes'], 1):.0f}x less memory; "
        f"rank-1 {mine['cmc'][0]:.3f}, mAP {mine['mAP']:.3f} on all queries; on the same {theirs['rows']} queries "
        f"max |CMC diff| {cmc_diff:.1e}, |mAP diff| {abs(mine['check_mAP'] - theirs['mAP']):.1e}.",
    ]
    return table, summary


if __name__ == "__main__":
    main()
