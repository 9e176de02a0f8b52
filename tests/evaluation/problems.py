"""Synthetic re-ID problems and a brute-force reference evaluator for the evaluation tests."""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import NamedTuple

import numpy as np

from tests import oracle


class Problem(NamedTuple):
    distmat: np.ndarray
    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray
    g_camids: np.ndarray

    @property
    def labels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.q_pids, self.g_pids, self.q_camids, self.g_camids


def realistic(seed: int, num_query: int = 50, num_gallery: int = 400, num_ids: int = 40, cameras: int = 6,
              distractors: int = 40, dtype: type = np.float32) -> Problem:
    """Several images per identity and camera, pid-0 distractors, some query ids absent from the gallery.

    Distances are tie-free within every row (a shuffled ramp plus identity
    structure), so any correct evaluator gives the same ranking.
    """
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(1, num_ids + 4, num_query)  # ids above num_ids have no gallery image
    g_pids = np.r_[rng.integers(1, num_ids + 1, num_gallery - distractors), np.zeros(distractors, dtype=int)]
    q_camids = rng.integers(0, cameras, num_query)
    g_camids = rng.integers(0, cameras, num_gallery)
    same_id = q_pids[:, None] == g_pids[None, :]
    # Positives mostly nearer than negatives, by a random margin; then ranks per
    # row (distinct integers, exact in float32) plus a per-row offset.
    scores = rng.random((num_query, num_gallery)) - 0.8 * same_id * rng.random((num_query, num_gallery))
    distmat = np.argsort(np.argsort(scores, axis=1), axis=1) + rng.integers(0, 100, (num_query, 1))
    return Problem(distmat.astype(dtype), q_pids, g_pids, q_camids, g_camids)


def with_ties(seed: int, dtype: type = np.float32) -> Problem:
    """Small problem whose distances take only a few values: ties everywhere."""
    rng = np.random.default_rng(seed)
    num_query, num_gallery = int(rng.integers(1, 30)), int(rng.integers(1, 120))
    ids, cameras = int(rng.integers(1, 12)), int(rng.integers(1, 4))
    distmat = rng.integers(0, int(rng.integers(2, 8)), (num_query, num_gallery)).astype(dtype)
    if dtype != np.int64 and seed % 3 == 0:
        distmat = -distmat  # negative distances and -0.0
    return Problem(distmat, rng.integers(0, ids, num_query), rng.integers(0, ids, num_gallery),
                   rng.integers(0, cameras, num_query), rng.integers(0, cameras, num_gallery))


class Reference(NamedTuple):
    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid: int


def stable_reference(problem: Problem, max_rank: int = 50) -> Reference:
    """The Market-1501 protocol, query by query, with a stable full sort: slow and obvious."""
    q_pids, g_pids, q_camids, g_camids = problem.labels
    aps, inps, first_hits, lengths = [], [], [], []
    for q in range(problem.distmat.shape[0]):
        order = np.argsort(problem.distmat[q], kind="stable")
        junk = (g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q])
        order = order[~junk]
        hits = np.flatnonzero(g_pids[order] == q_pids[q])
        if hits.size == 0:
            continue
        aps.append(np.mean((np.arange(hits.size) + 1) / (hits + 1)))
        inps.append(hits.size / (hits[-1] + 1))  # AGW: positives / rank of the hardest one
        first_hits.append(hits[0])
        lengths.append(order.size)
    if not aps:
        raise ValueError("no valid query")
    depth = min(max_rank, max(lengths))
    first = np.array(first_hits)
    cmc = np.array([(first < k).mean() for k in range(1, depth + 1)])
    return Reference(cmc, float(np.mean(aps)), float(np.mean(inps)), len(aps))


def torchreid_rank() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Cython evaluation ... is unavailable"
        return oracle.load("metrics/rank.py")
