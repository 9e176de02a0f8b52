"""CMC, mAP and mINP under the Market-1501 protocol, without sorting whole rows.

The protocol (as torchreid's ``eval_market1501``): for every query, gallery
images of the same identity *and* the same camera are removed ("junk"); the
remaining images of the same identity are the true matches ("positives"); a
query with no positive left is skipped.  Ties in distance are broken by
gallery order, as a stable sort would.

The distance matrix is read once, a block of query rows at a time: a
positive's rank only depends on the gallery items closer than it, so only
the few items up to each query's farthest positive are ever sorted (see
``_ranking``).  From the ranks, AP is the mean over positives of
``(i + 1) / (rank_i + 1)``, CMC counts the first positive's rank and mINP (Ye
et al., AGW) is ``num_positives / (rank_of_last_positive + 1)``.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import numpy as np

from modelzoo.evaluation import _parallel, _ranking
from modelzoo.evaluation._ranking import Backend, Labels, RankedPositives

logger = logging.getLogger(__name__)

ArrayLike = Any  # np.ndarray, torch.Tensor or a sequence of numbers

#: Distances per block of queries: large enough to amortise the per-block
#: Python work, small enough that even if every distance were a candidate
#: (about 30 bytes of temporaries each) a block stays near 256 MB.
_BLOCK_ELEMENTS = 1 << 23

#: Distances per matrix product in :func:`evaluate_from_features` (128 MB of
#: float32), each then ranked in blocks of ``_BLOCK_ELEMENTS``: a product over
#: a few hundred query rows runs nearer the machine's peak than one over a
#: hundred (about 35% more FLOP/s for 2048-d features on 2 cores), and the
#: product, not the ranking, is most of the time from features.
_PRODUCT_ELEMENTS = 1 << 25


@dataclass(frozen=True, eq=False)
class RankResult:
    """Rank metrics of one query set against one gallery.

    Attributes:
        cmc: ``cmc[k - 1]`` is the rank-k accuracy (fraction of valid queries
            with a true match among their k nearest valid gallery images), for
            k = 1..K where K = min(max_rank, longest valid ranked list).
        mAP: Mean average precision over valid queries.
        mINP: Mean inverse negative penalty (AGW, Ye et al. 2021).
        num_valid_queries: Queries with at least one true match (evaluated).
        num_queries: All queries, including the skipped ones.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    num_queries: int

    def rank(self, k: int) -> float:
        """Rank-k accuracy (``rank(1)`` is the usual "Rank-1").

        Args:
            k: 1-based rank, at most ``len(cmc)``.

        Returns:
            The fraction of valid queries with a true match in their top k.

        Raises:
            ValueError: k is outside ``1..len(cmc)``.
        """
        if not 1 <= k <= len(self.cmc):
            raise ValueError(f"rank k={k} is outside the computed CMC (1..{len(self.cmc)}); raise max_rank")
        return float(self.cmc[k - 1])

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python view, ready for JSON."""
        return {
            "cmc": [float(x) for x in self.cmc],
            "mAP": self.mAP,
            "mINP": self.mINP,
            "num_valid_queries": self.num_valid_queries,
            "num_queries": self.num_queries,
        }


def evaluate_rank(
    distmat: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 50,
    *,
    chunk_size: Optional[int] = None,
    num_threads: Optional[int] = None,
) -> RankResult:
    """CMC, mAP and mINP of a query x gallery distance matrix (Market-1501 protocol).

    Equal to torchreid's ``eval_market1501`` on tie-free inputs; ties in
    distance are broken by gallery order.  The matrix is read once, a block
    of query rows at a time, and no row is sorted.

    Args:
        distmat: ``(num_query, num_gallery)`` distances, smaller is closer: a
            NumPy array (a memory map works) or a tensor (a CUDA tensor is
            scanned on its device).  Must not hold NaN at a true match.
        q_pids: Identity of every query.
        g_pids: Identity of every gallery image.
        q_camids: Camera of every query.
        g_camids: Camera of every gallery image.
        max_rank: Longest CMC rank to report.
        chunk_size: Query rows per block; default: about 8 million distances
            per block (temporaries near 256 MB at worst, a few MB usually).
        num_threads: Blocks ranked at once (NumPy releases the GIL while it
            scans; the scan is bound by memory bandwidth, which one core
            does not saturate); default: the CPUs available, at most 4.  The
            result does not depend on it.  A tensor on a GPU is ranked one
            block at a time.

    Returns:
        A :class:`RankResult`.

    Raises:
        ValueError: Shapes that do not fit, a bad ``max_rank``/``chunk_size``,
            a NaN distance at a true match, or no query with a true match in
            the gallery (wrong identities or cameras?).
    """
    num_query, num_gallery = _matrix_shape(distmat)
    labels = _labels(q_pids, g_pids, q_camids, g_camids, num_query, num_gallery)
    results = _PerQuery.empty(num_query, _check_max_rank(max_rank))
    backend = _ranking.select_backend(distmat)
    matrix = backend.prepare(distmat)
    _rank_blocks(backend, matrix, _blocks(num_query, num_gallery, chunk_size), labels, 0, results,
                 _parallel.resolve_threads(num_threads))
    return results.summary()


def evaluate_from_features(
    qf: ArrayLike,
    gf: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    metric: str = "euclidean",
    max_rank: int = 50,
    chunk_size: Optional[int] = None,
    num_threads: Optional[int] = None,
    *,
    rerank: bool = False,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> RankResult:
    """Rank metrics straight from features, never holding the whole distance matrix.

    Distances for a block of queries are computed with torch on the
    features' device (as :func:`~modelzoo.evaluation.compute_distance`
    computes them for those queries), ranked at once and dropped, so memory
    is bounded by the block (128 MB of distances by default) whatever the
    number of queries.  The gallery's squared norms are computed once
    (euclidean); cosine holds one normalised copy of the gallery features.

    With ``rerank`` the distances are k-reciprocal re-ranked first
    (:func:`~modelzoo.evaluation.re_ranking_from_features`), and the
    re-ranked blocks are ranked as they come: no ``(q + g) x g`` matrix and
    no ``q x g`` one is ever held (a few hundred MB for MSMT17).

    Args:
        qf: Query features ``(num_query, dim)``, tensor or NumPy array.
        gf: Gallery features ``(num_gallery, dim)``.
        q_pids: Identity of every query.
        g_pids: Identity of every gallery image.
        q_camids: Camera of every query.
        g_camids: Camera of every gallery image.
        metric: ``"euclidean"`` (squared) or ``"cosine"``.
        max_rank: Longest CMC rank to report.
        chunk_size: Query rows per block; default: about 32 million
            distances per matrix product, ranked 8 million at a time.
        num_threads: Blocks of each product ranked at once (see
            :func:`evaluate_rank`); torch's own threads compute the products.
        rerank: Re-rank the distances (not the published setting).
        k1: Re-ranking's k-reciprocal neighbourhood size (paper: 20).
        k2: Re-ranking's local query expansion size (paper: 6).
        lambda_value: Re-ranking's weight of the original distance (paper: 0.3).

    Returns:
        A :class:`RankResult`, equal to ``evaluate_rank(compute_distance(qf,
        gf, metric), ...)`` (with ``rerank``: of ``re_ranking`` on the three
        ``compute_distance`` matrices).

    Raises:
        ValueError: As :func:`evaluate_rank`, plus an unknown metric,
            features of different dimensions or bad re-ranking parameters.
        InsufficientMemoryError: Re-ranking would need more than its default
            memory limit (see :func:`~modelzoo.evaluation.re_ranking_from_features`).
    """
    from modelzoo.evaluation.distance import _check_metric, as_feature_tensors

    _check_metric(metric)
    threads = _parallel.resolve_threads(num_threads)
    query, gallery = as_feature_tensors(qf, gf)
    num_query, num_gallery = int(query.shape[0]), int(gallery.shape[0])
    if num_gallery == 0:
        raise ValueError("the gallery is empty: gf has 0 rows")
    labels = _labels(q_pids, g_pids, q_camids, g_camids, num_query, num_gallery)
    results = _PerQuery.empty(num_query, _check_max_rank(max_rank))
    if rerank:
        from modelzoo.evaluation.rerank import re_ranking_from_features

        products: Iterator[tuple[int, Any]] = iter(
            re_ranking_from_features(query, gallery, k1, k2, lambda_value, metric=metric))
    else:
        products = _distance_products(query, gallery, metric, chunk_size)
    for start, product in products:
        backend = _ranking.select_backend(product)
        matrix = backend.prepare(product)
        _rank_blocks(backend, matrix, _blocks(int(product.shape[0]), num_gallery, chunk_size), labels, start,
                     results, threads)
        del product, matrix  # before the next product is allocated
    return results.summary()


def _distance_products(query: Any, gallery: Any, metric: str, chunk_size: Optional[int]) -> Iterator[tuple[int, Any]]:
    """``(start, distances of queries start:...)`` for each block of about ``_PRODUCT_ELEMENTS`` distances."""
    from modelzoo.evaluation.distance import GalleryDistances

    distances_to_gallery = GalleryDistances(gallery, metric)
    for start, stop in _blocks(int(query.shape[0]), int(gallery.shape[0]), chunk_size, _PRODUCT_ELEMENTS):
        yield start, distances_to_gallery(query[start:stop])


# --------------------------------------------------------------------------
# Input checks


def _matrix_shape(distmat: ArrayLike) -> tuple[int, int]:
    shape = tuple(distmat.shape) if hasattr(distmat, "shape") else np.shape(distmat)
    if len(shape) != 2:
        raise ValueError(f"distmat must be a 2-D (num_query, num_gallery) matrix, got shape {shape}")
    if shape[1] == 0:
        raise ValueError("the gallery is empty: distmat has 0 columns")
    return int(shape[0]), int(shape[1])


def _check_max_rank(max_rank: int) -> int:
    if isinstance(max_rank, bool) or not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")
    return int(max_rank)


def _blocks(num_query: int, num_gallery: int, chunk_size: Optional[int],
            elements: int = _BLOCK_ELEMENTS) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` query rows of each block: ``chunk_size`` rows, else about ``elements`` distances."""
    if chunk_size is None:
        rows = max(1, elements // num_gallery)
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of query rows, got {chunk_size!r}")
    else:
        rows = int(chunk_size)
    rows = min(rows, _ranking.max_rows_for_keys(num_gallery))
    for start in range(0, num_query, rows):
        yield start, min(start + rows, num_query)


def _labels(q_pids: ArrayLike, g_pids: ArrayLike, q_camids: ArrayLike, g_camids: ArrayLike,
            num_query: int, num_gallery: int) -> Labels:
    return Labels.build(
        _label_array(q_pids, "q_pids", num_query),
        _label_array(g_pids, "g_pids", num_gallery),
        _label_array(q_camids, "q_camids", num_query),
        _label_array(g_camids, "g_camids", num_gallery),
    )


def _label_array(values: ArrayLike, name: str, expected: int) -> np.ndarray:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1 or array.shape[0] != expected:
        raise ValueError(f"{name} must be a 1-D array of {expected} labels (one per row/column of the "
                         f"distances), got shape {array.shape}")
    return array


# --------------------------------------------------------------------------
# Per-query results


@dataclass
class _PerQuery:
    """Each query's metrics; a query without a true match keeps ``first_rank == -1``.

    Kept per query (a few bytes each) rather than as running sums, so the
    result does not depend on the block size, even in the last bit.
    """

    first_rank: np.ndarray
    average_precision: np.ndarray
    inverse_negative_penalty: np.ndarray
    list_length: np.ndarray  # valid gallery images in the query's ranked list
    max_rank: int

    @classmethod
    def empty(cls, num_query: int, max_rank: int) -> "_PerQuery":
        return cls(
            first_rank=np.full(num_query, -1, dtype=np.int64),
            average_precision=np.zeros(num_query),
            inverse_negative_penalty=np.zeros(num_query),
            list_length=np.zeros(num_query, dtype=np.int64),
            max_rank=max_rank,
        )

    def record(self, start: int, ranked: RankedPositives, junk_rows: np.ndarray, num_rows: int,
               num_gallery: int) -> None:
        """Store the metrics of the queries of one block (rows from ``start``)."""
        rows, ranks, first = ranked
        firsts, lasts = first[:-1], first[1:] - 1
        num_positives = lasts - firsts + 1
        position = np.arange(rows.size) - np.repeat(firsts, num_positives)  # i-th positive of its query
        precision_at_hit = (position + 1) / (ranks + 1)
        queries = start + rows[firsts]
        self.average_precision[queries] = np.add.reduceat(precision_at_hit, firsts) / num_positives
        self.inverse_negative_penalty[queries] = num_positives / (ranks[lasts] + 1)
        self.first_rank[queries] = ranks[firsts]
        junk_per_row = np.bincount(junk_rows, minlength=num_rows)
        self.list_length[queries] = num_gallery - junk_per_row[rows[firsts]]

    def summary(self) -> RankResult:
        """Average over the valid queries."""
        valid = self.first_rank >= 0
        num_valid = int(valid.sum())
        if num_valid == 0:
            raise ValueError(
                f"none of the {valid.size} queries has a true match in the gallery (same identity, another "
                "camera): check that query and gallery identities and cameras come from the same split"
            )
        depth = min(self.max_rank, int(self.list_length[valid].max()))
        first = self.first_rank[valid]
        cmc = np.cumsum(np.bincount(first[first < depth], minlength=depth)) / num_valid
        cmc.setflags(write=False)
        if num_valid < valid.size:
            logger.debug("%d of %d queries have no true match and are skipped", valid.size - num_valid, valid.size)
        return RankResult(
            cmc=cmc,
            mAP=float(np.mean(self.average_precision[valid])),
            mINP=float(np.mean(self.inverse_negative_penalty[valid])),
            num_valid_queries=num_valid,
            num_queries=int(valid.size),
        )


def _rank_blocks(backend: Backend, matrix: Any, spans: Iterator[tuple[int, int]], labels: Labels, offset: int,
                 results: _PerQuery, threads: int) -> None:
    """Rank the rows ``start:stop`` of ``matrix`` (queries ``offset + start``...) for each span.

    Blocks write disjoint queries of ``results``, so they may run at once;
    a device tensor (TorchBackend) is ranked one block at a time.
    """
    if not isinstance(backend, _ranking.NumpyBackend):
        threads = 1

    def rank(span: tuple[int, int]) -> None:
        start, stop = span
        _rank_block(backend, matrix[start:stop], labels, offset + start, results)

    _parallel.run_all(rank, spans, threads)


def _rank_block(backend: Backend, block: Any, labels: Labels, start: int, results: _PerQuery) -> None:
    """Rank the queries of ``block`` (rows ``start:start + len(block)``) into ``results``."""
    num_rows = int(block.shape[0])
    positives, junk = labels.same_identity(start, start + num_rows)
    if positives.rows.size == 0:
        return
    ranked = _ranking.rank_positives(backend, block, positives, junk, labels.num_gallery)
    results.record(start, ranked, junk.rows, num_rows, labels.num_gallery)
