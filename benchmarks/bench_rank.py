"""Rank-metric evaluators side by side on a synthetic re-ID problem of a real dataset's size.

Times, in one run and on one distance matrix:

* ``distmat.min(axis=1)`` -- the floor: reading the matrix once;
* ``modelzoo.evaluation.evaluate_rank``, with its default threads (blocks of
  query rows ranked at once: NumPy releases the GIL while it scans) and on
  one thread;
* torchreid's python evaluator (``eval_market1501``) -- slow, so run on a
  subsample of queries and extrapolated linearly (its cost is per query);
* torchreid's compiled Cython evaluator, when a ``rank_cy`` extension can be
  found (``--cython PATH``, or an installed ``torchreid`` /
  ``pyppbox-torchreid``).  It argsorts the whole matrix into int64 and builds
  two more int64 matrices, so where that would not fit in memory it also runs
  on a subsample and is extrapolated.

Peak extra memory (beyond the distance matrix) is measured with tracemalloc
in a second, untimed run of each method: NumPy reports its allocations to
tracemalloc, so this counts every array a method creates.

The problem: ``--size market`` (3,368 x 15,913), ``duke`` (2,228 x 17,661) or
``msmt17`` (11,659 x 82,161, the default: a 3.8 GB float32 matrix).  Features
are random low-dimensional points around one centre per identity, shifted a
little per camera, so positives are closer than most negatives and the
metrics land in the range of real models; squared euclidean distances come
from ``compute_distance`` like a real evaluation's.

Usage::

    python -m benchmarks.bench_rank --size market
    python -m benchmarks.bench_rank --size msmt17 --cython /path/to/rank_cy.cpython-311-x86_64-linux-gnu.so
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import sys
import time
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent

from modelzoo.evaluation import compute_distance, evaluate_rank  # noqa: E402
from modelzoo.evaluation._parallel import resolve_threads  # noqa: E402


@dataclass(frozen=True)
class Size:
    """Shape of a dataset's test split."""

    queries: int
    gallery: int
    query_ids: int  # identities that have queries (all appear in the gallery)
    gallery_only_ids: int  # identities seen only in the gallery
    distractors: int  # gallery images of pid 0 (Market's "distractors")
    cameras: int
    noise: float  # feature noise giving metrics near OSNet-x1.0's published ones


SIZES = {
    # OSNet-x1.0 publishes rank-1 (mAP) 94.2 (82.6), 87.0 (70.2) and 74.9 (43.8) on these.
    "market": Size(3368, 15913, query_ids=750, gallery_only_ids=1, distractors=2798, cameras=6, noise=0.58),
    "duke": Size(2228, 17661, query_ids=702, gallery_only_ids=408, distractors=0, cameras=8, noise=0.66),
    "msmt17": Size(11659, 82161, query_ids=3060, gallery_only_ids=0, distractors=0, cameras=15, noise=0.66),
}


@dataclass
class Problem:
    distmat: np.ndarray
    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray
    g_camids: np.ndarray

    def rows(self, count: int) -> "Problem":
        """The first ``count`` queries against the whole gallery."""
        return Problem(self.distmat[:count], self.q_pids[:count], self.g_pids, self.q_camids[:count], self.g_camids)

    def labels(self) -> tuple:
        return self.q_pids, self.g_pids, self.q_camids, self.g_camids


@dataclass
class Features:
    """Query and gallery features with their identities and cameras."""

    qf: np.ndarray
    gf: np.ndarray
    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray
    g_camids: np.ndarray

    def labels(self) -> tuple:
        return self.q_pids, self.g_pids, self.q_camids, self.g_camids


def make_problem(size: Size, seed: int, noise: float, dim: int = 32) -> Problem:
    """A synthetic problem with identity and camera structure (see the module docstring)."""
    features = make_features(size, seed, noise, dim)
    distmat = np.empty((size.queries, size.gallery), dtype=np.float32)
    gallery = torch.from_numpy(features.gf)
    for start in range(0, size.queries, 512):
        distmat[start:start + 512] = compute_distance(torch.from_numpy(features.qf[start:start + 512]), gallery).numpy()
    return Problem(distmat, *features.labels())


def make_features(size: Size, seed: int, noise: float, dim: int = 32) -> Features:
    """The features of :func:`make_problem`: around one centre per identity, shifted per camera."""
    rng = np.random.default_rng(seed)
    num_ids = size.query_ids + size.gallery_only_ids
    pids = np.arange(1, num_ids + 1)
    centres = rng.standard_normal((num_ids + 1, dim)).astype(np.float32)
    camera_shift = 0.35 * rng.standard_normal((size.cameras, dim)).astype(np.float32)
    id_cameras = [rng.choice(size.cameras, size=rng.integers(2, min(6, size.cameras) + 1), replace=False)
                  for _ in range(num_ids + 1)]

    def draw(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cams = np.array([rng.choice(id_cameras[pid]) for pid in ids])
        return cams, centres[ids] + camera_shift[cams] + noise * rng.standard_normal((ids.size, dim)).astype(np.float32)

    q_pids = rng.permutation(np.resize(pids[: size.query_ids], size.queries))
    real_gallery = size.gallery - size.distractors
    g_pids = rng.permutation(np.resize(pids, real_gallery))
    q_cams, qf = draw(q_pids)
    g_cams, gf = draw(g_pids)
    if size.distractors:
        g_pids = np.r_[g_pids, np.zeros(size.distractors, dtype=g_pids.dtype)]
        g_cams = np.r_[g_cams, rng.integers(0, size.cameras, size.distractors)]
        gf = np.r_[gf, rng.standard_normal((size.distractors, dim)).astype(np.float32)]
    return Features(qf, gf, q_pids.astype(np.int64), g_pids.astype(np.int64),
                    q_cams.astype(np.int64), g_cams.astype(np.int64))


# --------------------------------------------------------------------------
# The methods


def load_cython(path: Optional[str]) -> Optional[Callable]:
    """torchreid's compiled ``evaluate_cy``, or None when none can be found."""
    candidates = [path] if path else []
    for package in ("torchreid.reid.metrics.rank_cylib", "pyppbox_torchreid.metrics.rank_cylib"):
        try:
            spec = importlib.util.find_spec(package)
        except ModuleNotFoundError:
            continue
        if spec and spec.submodule_search_locations:
            folder = Path(list(spec.submodule_search_locations)[0])
            candidates += [str(p) for p in folder.glob("rank_cy*.so")]
    for candidate in candidates:
        spec = importlib.util.spec_from_file_location("rank_cy", candidate)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except ImportError as error:
            print(f"note: cannot load {candidate}: {error}", file=sys.stderr)
            continue
        return module.evaluate_cy
    return None


def reference_python() -> Callable:
    from tests import oracle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return oracle.load("metrics/rank.py").eval_market1501


@dataclass
class Measure:
    name: str
    seconds: float
    cpu_seconds: float
    peak_bytes: int
    rows_run: int
    cmc: Optional[np.ndarray] = None
    mAP: Optional[float] = None
    mINP: Optional[float] = None


def timed(fn: Callable, repeats: int) -> tuple[float, float, object]:
    """Best wall time of ``repeats`` runs, the CPU time of that run, and its output.

    CPU time is reported too because wall time on a shared machine includes
    waiting for other processes.
    """
    best, best_cpu, out = float("inf"), float("inf"), None
    for _ in range(repeats):
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        if wall < best:
            best, best_cpu = wall, cpu
    return best, best_cpu, out


def peak_memory(fn: Callable) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run(name: str, fn: Callable, rows: int, repeats: int) -> Measure:
    seconds, cpu_seconds, out = timed(fn, repeats)
    peak = peak_memory(fn)
    measure = Measure(name, seconds, cpu_seconds, peak, rows)
    if isinstance(out, tuple):  # torchreid: (cmc, mAP)
        measure.cmc, measure.mAP = np.asarray(out[0], dtype=np.float64), float(out[1])
    elif out is not None and hasattr(out, "mAP"):
        measure.cmc, measure.mAP, measure.mINP = out.cmc, out.mAP, out.mINP
    print(f"  {name}: {seconds:.3f} s ({cpu_seconds:.3f} s CPU) on {rows} queries, "
          f"peak extra {peak / 2**20:.1f} MiB", file=sys.stderr)
    return measure


def fits_in_memory(problem: Problem, budget_bytes: int) -> bool:
    """Whether torchreid's Cython evaluator's three int64 matrices fit."""
    return 3 * 8 * problem.distmat.size < budget_bytes


# --------------------------------------------------------------------------
# Report


def table(measures: list[Measure], num_queries: int, floor: Measure) -> str:
    lines = ["| method | wall time (s) | x floor | CPU time (s) | x floor (CPU) | peak extra memory (MiB) "
             "| measured on |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for m in measures:
        scale = num_queries / m.rows_run
        seconds, cpu_seconds = m.seconds * scale, m.cpu_seconds * scale
        note = ("all queries" if m.rows_run == num_queries
                else f"{m.rows_run} queries: times x{scale:.1f}, memory as measured")
        lines.append(f"| {m.name} | {seconds:.2f} | {seconds / floor.seconds:.1f} | {cpu_seconds:.2f} | "
                     f"{cpu_seconds / floor.cpu_seconds:.1f} | {m.peak_bytes / 2**20:.1f} | {note} |")
    return "\n".join(lines)


def agreement(ours_on: Callable[[int], object], reference: Measure) -> str:
    result = ours_on(reference.rows_run)
    depth = min(len(result.cmc), len(reference.cmc))
    cmc_diff = float(np.abs(result.cmc[:depth] - reference.cmc[:depth]).max())
    return (f"{reference.name} vs ours on the same {reference.rows_run} queries: "
            f"max |CMC diff| = {cmc_diff:.2e}, |mAP diff| = {abs(result.mAP - reference.mAP):.2e}")


def threaded_min(distmat: np.ndarray, threads: int) -> list:
    """``distmat.min(axis=1)`` over ``threads`` row slices at once: the floor for a threaded scan."""
    bounds = np.linspace(0, distmat.shape[0], threads + 1).astype(int)
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda i: distmat[bounds[i]:bounds[i + 1]].min(axis=1), range(threads)))


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="msmt17")
    parser.add_argument("--noise", type=float, help="feature noise (higher: harder); default per --size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method (best is kept)")
    parser.add_argument("--python-queries", type=int, default=200, help="queries run by torchreid's python path")
    parser.add_argument("--cython", help="path of torchreid's rank_cy extension (.so)")
    parser.add_argument("--cython-queries", type=int, default=1000,
                        help="queries run by Cython when the full matrix would not fit in memory")
    parser.add_argument("--memory-budget-gib", type=float, default=14.0,
                        help="memory the Cython evaluator may use before it is subsampled")
    parser.add_argument("--only-ours", action="store_true", help="time only the floor and our evaluator")
    args = parser.parse_args(argv)

    size = SIZES[args.size]
    print(f"building the {args.size} problem ({size.queries} x {size.gallery}) ...", file=sys.stderr)
    problem = make_problem(size, args.seed, size.noise if args.noise is None else args.noise)
    num_queries = size.queries
    max_rank = 50

    floor = run("floor: distmat.min(axis=1)", lambda: problem.distmat.min(axis=1), num_queries, args.repeats)
    threads = resolve_threads(None)
    ours = run(f"modelzoo evaluate_rank ({threads} threads, the default)",
               lambda: evaluate_rank(problem.distmat, *problem.labels(), max_rank), num_queries, args.repeats)
    measures = [floor, ours]
    if threads > 1:
        measures.append(run(f"the floor read by {threads} threads (row slices)",
                            lambda: threaded_min(problem.distmat, threads), num_queries, args.repeats))
        measures.append(run("modelzoo evaluate_rank (num_threads=1)",
                            lambda: evaluate_rank(problem.distmat, *problem.labels(), max_rank, num_threads=1),
                            num_queries, args.repeats))
    checks = []

    def ours_on(rows: int):
        return evaluate_rank(problem.rows(rows).distmat, *problem.rows(rows).labels(), max_rank)

    if not args.only_ours:
        cython = load_cython(args.cython)
        if cython is None:
            print("note: no compiled rank_cy found; pass --cython PATH", file=sys.stderr)
        else:
            rows = num_queries if fits_in_memory(problem, int(args.memory_budget_gib * 2**30)) else args.cython_queries
            sub = problem.rows(rows)
            measures.append(run("torchreid Cython (rank_cy)",
                                lambda: cython(sub.distmat, *sub.labels(), max_rank, False), rows, 1))
            checks.append(agreement(ours_on, measures[-1]))
        python_eval = reference_python()
        sub = problem.rows(min(args.python_queries, num_queries))
        measures.append(run("torchreid python (eval_market1501)",
                            lambda: python_eval(sub.distmat, *sub.labels(), max_rank), sub.distmat.shape[0], 1))
        checks.append(agreement(ours_on, measures[-1]))

    print(f"\n### {args.size}: {size.queries} queries x {size.gallery} gallery, float32 "
          f"({problem.distmat.nbytes / 1e9:.2f} GB); rank-1 {ours.cmc[0]:.3f}, mAP {ours.mAP:.3f}, "
          f"mINP {ours.mINP:.3f}\n")
    print(table(measures, num_queries, floor))
    for other in measures[2:]:
        if not other.name.startswith("torchreid"):
            continue
        scale = num_queries / other.rows_run
        print(f"\nours is {other.seconds * scale / ours.seconds:.0f}x faster than {other.name} "
              f"({other.cpu_seconds * scale / ours.cpu_seconds:.0f}x in CPU time)")
    for line in checks:
        print(f"\n{line}")


if __name__ == "__main__":
    main()
