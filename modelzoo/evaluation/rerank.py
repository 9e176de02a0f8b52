"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) in bounded memory.

The arithmetic is torchreid's ``utils/rerank.py`` (float32, same operations
in the same order, so results agree to the last bit on tie-free inputs), but
none of its ``(q + g) x (q + g)`` matrices is ever built:

* the scaled distances ``D`` (torchreid's ``original_dist``) are produced a
  chunk of rows at a time from the three input matrices, and single entries
  are read back from the inputs when needed;
* of the full ``argsort`` only the ``max(k1 + 1, k2)`` nearest neighbours of
  each image are kept (a partial selection per chunk);
* ``V`` and its query expansion are sparse (a few dozen non-zeros per row);
* the Jaccard distance is accumulated a chunk of queries at a time from the
  non-zeros, straight into the ``q x g`` result.

So memory is about the result plus a few hundred bytes per image, instead of
four dense ``(q + g)^2`` matrices (about 30 GB per matrix for MSMT17).  The
memory needed is estimated before the work starts and again once the sparse
sizes are known; beyond ``max_memory_bytes`` an
:class:`~modelzoo.errors.InsufficientMemoryError` names the bytes needed.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelzoo.errors import InsufficientMemoryError

logger = logging.getLogger(__name__)

DEFAULT_MAX_MEMORY_BYTES = 8 << 30
#: Working set of one chunk of rows (distances, selections, index pairs).
_CHUNK_BYTES = 128 << 20


def re_ranking(
    q_g_dist: Any,
    q_q_dist: Any,
    g_g_dist: Any,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    *,
    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
) -> np.ndarray:
    """Re-ranked query x gallery distances (k-reciprocal encoding + Jaccard distance).

    Args:
        q_g_dist: Query-gallery distances ``(q, g)`` (NumPy array or tensor).
        q_q_dist: Query-query distances ``(q, q)``.
        g_g_dist: Gallery-gallery distances ``(g, g)``.
        k1: Size of the k-reciprocal neighbourhood (paper: 20).
        k2: Neighbours averaged in the local query expansion (paper: 6;
            1 disables it).
        lambda_value: Weight of the original distance in the result (paper: 0.3).
        max_memory_bytes: Refuse to start (or continue) when the estimated
            memory exceeds this many bytes.

    Returns:
        The ``(q, g)`` float32 re-ranked distances, as torchreid's ``re_ranking``.

    Raises:
        ValueError: Shapes that do not fit or parameters out of range.
        InsufficientMemoryError: The estimate exceeds ``max_memory_bytes``.
    """
    q_g, q_q, g_g = _matrices(q_g_dist, q_q_dist, g_g_dist)
    _check_parameters(k1, k2, lambda_value, max_memory_bytes)
    num_query, num_gallery = q_g.shape
    size = num_query + num_gallery
    width = min(size, max(k1 + 1, k2))
    base = _base_bytes(num_query, num_gallery, width)
    _require(base, max_memory_bytes, "before starting")
    distances = _ScaledDistances(q_g, q_q, g_g)
    neighbours = distances.nearest(width)
    expansion = _k_reciprocal_expansion(neighbours, k1)
    _require(base + _sparse_bytes(expansion, neighbours[:, :k2]), max_memory_bytes,
             "once the k-reciprocal neighbourhoods were known")
    weights = _weights(distances, expansion)
    if k2 != 1:
        weights = _query_expansion(weights, neighbours[:, :k2])
    return _blend(weights, distances, lambda_value)


# --------------------------------------------------------------------------
# Inputs and memory


def _matrices(q_g: Any, q_q: Any, g_g: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q_g, q_q, g_g = (_as_array(m) for m in (q_g, q_q, g_g))
    if q_g.ndim != 2 or q_g.shape[0] == 0 or q_g.shape[1] == 0:
        raise ValueError(f"q_g_dist must be a non-empty 2-D (num_query, num_gallery) matrix, got {q_g.shape}")
    num_query, num_gallery = q_g.shape
    if q_q.shape != (num_query, num_query):
        raise ValueError(f"q_q_dist must be ({num_query}, {num_query}) to match q_g_dist, got {q_q.shape}")
    if g_g.shape != (num_gallery, num_gallery):
        raise ValueError(f"g_g_dist must be ({num_gallery}, {num_gallery}) to match q_g_dist, got {g_g.shape}")
    return q_g, q_q, g_g


def _as_array(matrix: Any) -> np.ndarray:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(matrix, torch.Tensor):
        return matrix.detach().cpu().numpy()
    return np.asarray(matrix)


def _check_parameters(k1: int, k2: int, lambda_value: float, max_memory_bytes: int) -> None:
    for name, value in (("k1", k1), ("k2", k2)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 0.0 <= float(lambda_value) <= 1.0:
        raise ValueError(f"lambda_value must lie in [0, 1], got {lambda_value!r}")
    if max_memory_bytes <= 0:
        raise ValueError(f"max_memory_bytes must be positive, got {max_memory_bytes!r}")


def _base_bytes(num_query: int, num_gallery: int, width: int) -> int:
    """Memory known from the shapes: result, neighbour lists, scales, chunk working sets."""
    size = num_query + num_gallery
    return num_query * num_gallery * 4 + size * (width * 8 + 4 + 16) + 3 * _CHUNK_BYTES


def _sparse_bytes(expansion: "_SparseRows", nearest: np.ndarray) -> int:
    """Memory of the sparse weights and their query expansion (an upper bound)."""
    nnz = expansion.cols.size
    counts = np.diff(expansion.indptr)
    expanded = int(np.minimum(counts[nearest].sum(axis=1), expansion.num_cols).sum())
    # V (column + value), the expanded V, its column-major copy for the Jaccard step.
    return nnz * 12 + expanded * 12 + expanded * 24


def _require(needed: int, allowed: int, when: str) -> None:
    logger.debug("re-ranking needs about %d bytes (%s)", needed, when)
    if needed > allowed:
        raise InsufficientMemoryError(
            f"re-ranking needs about {needed:,} bytes ({needed / 2**30:.1f} GiB, estimated {when}) but "
            f"max_memory_bytes is {allowed:,} ({allowed / 2**30:.1f} GiB): raise max_memory_bytes if the "
            "machine has the memory, or re-rank a smaller gallery"
        )


# --------------------------------------------------------------------------
# torchreid's `original_dist`, never materialised


class _ScaledDistances:
    """Rows of torchreid's ``original_dist``, computed on demand.

    With ``X = [[q_q, q_g], [q_g.T, g_g]]`` (the images in query-then-gallery
    order), row ``i`` is column ``i`` of ``X`` squared (in the inputs' dtype,
    then float32) divided by its maximum: ``D[i, j] = X[j, i]^2 / max_j X[j, i]^2``.
    """

    def __init__(self, q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray) -> None:
        self.q_g, self.q_q, self.g_g = q_g, q_q, g_g
        self.num_query, self.num_gallery = q_g.shape
        self.size = self.num_query + self.num_gallery
        self.dtype = np.result_type(q_g, q_q, g_g)
        self.scale = np.empty(0, dtype=np.float32)  # per-row maximum, set by nearest()

    def nearest(self, width: int) -> np.ndarray:
        """Per row, the ``width`` columns of smallest ``D`` in (distance, column) order.

        Also records every row's scale, which :meth:`at` needs.
        """
        self.scale = np.empty(self.size, dtype=np.float32)
        nearest = np.empty((self.size, width), dtype=np.int64)
        rows_per_chunk = max(1, _CHUNK_BYTES // (self.size * 24))
        for start in range(0, self.size, rows_per_chunk):
            stop = min(start + rows_per_chunk, self.size)
            squared = self._squared_rows(start, stop)
            scale = squared.max(axis=1)
            self.scale[start:stop] = scale
            np.divide(squared, scale[:, None], out=squared)
            nearest[start:stop] = _smallest(squared, width)
        return nearest

    def at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``D[rows, cols]`` (float32), read from the input matrices."""
        raw = np.empty(rows.size, dtype=self.dtype)
        q = self.num_query
        query_row, query_col = rows < q, cols < q
        both = query_row & query_col
        raw[both] = self.q_q[cols[both], rows[both]]
        part = ~query_row & query_col
        raw[part] = self.q_g[cols[part], rows[part] - q]
        part = query_row & ~query_col
        raw[part] = self.q_g[rows[part], cols[part] - q]
        part = ~query_row & ~query_col
        raw[part] = self.g_g[cols[part] - q, rows[part] - q]
        return np.power(raw, 2).astype(np.float32) / self.scale[rows]

    def query_gallery(self, start: int, stop: int) -> np.ndarray:
        """``D[start:stop, q:]``: the query rows' gallery columns."""
        squared = np.power(self.q_g[start:stop].astype(self.dtype, copy=False), 2).astype(np.float32)
        return squared / self.scale[start:stop, None]

    def _squared_rows(self, start: int, stop: int) -> np.ndarray:
        return np.power(self._raw_rows(start, stop), 2).astype(np.float32)

    def _raw_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of ``X.T`` in the inputs' common dtype."""
        q = self.num_query
        rows = np.empty((stop - start, self.size), dtype=self.dtype)
        if start < q:
            end = min(stop, q)
            rows[: end - start, :q] = self.q_q[:, start:end].T
            rows[: end - start, q:] = self.q_g[start:end]
        if stop > q:
            first = max(start, q)
            rows[first - start:, :q] = self.q_g[:, first - q: stop - q].T
            rows[first - start:, q:] = self.g_g[:, first - q: stop - q].T
        return rows


def _smallest(rows: np.ndarray, width: int) -> np.ndarray:
    """Column indices of the ``width`` smallest values per row, by (value, column)."""
    if width < rows.shape[1]:
        columns = np.argpartition(rows, width - 1, axis=1)[:, :width]
    else:
        columns = np.broadcast_to(np.arange(rows.shape[1]), rows.shape)
    values = np.take_along_axis(rows, columns, axis=1)
    return np.take_along_axis(columns, np.lexsort((columns, values), axis=1), axis=1)


# --------------------------------------------------------------------------
# Sparse rows


@dataclass(frozen=True)
class _SparseRows:
    """Row-compressed sparse matrix; columns ascending within each row."""

    indptr: np.ndarray
    cols: np.ndarray
    values: np.ndarray  # float32; empty for a pattern without values
    num_cols: int

    def row_of_entries(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))


def _concatenated_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, e) for s, e in zip(starts, ends)])``, vectorised."""
    counts = ends - starts
    return np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(counts.sum())


def _row_chunks(costs: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Consecutive row ranges whose summed cost stays within ``budget`` (at least one row each)."""
    cumulative = np.cumsum(costs)
    chunks, start, spent = [], 0, 0
    while start < costs.size:
        stop = max(int(np.searchsorted(cumulative, spent + budget, side="right")), start + 1)
        chunks.append((start, stop))
        spent, start = int(cumulative[stop - 1]), stop
    return chunks


# --------------------------------------------------------------------------
# k-reciprocal neighbourhoods


def _reciprocal(neighbours: np.ndarray) -> np.ndarray:
    """``mask[i, s]``: is ``i`` among the neighbours of its own ``s``-th neighbour?"""
    size, width = neighbours.shape
    mask = np.empty((size, width), dtype=bool)
    rows_per_chunk = max(1, _CHUNK_BYTES // (width * width * 9))
    for start in range(0, size, rows_per_chunk):
        stop = min(start + rows_per_chunk, size)
        own = np.arange(start, stop)[:, None, None]
        mask[start:stop] = (neighbours[neighbours[start:stop]] == own).any(axis=2)
    return mask


def _k_reciprocal_expansion(nearest: np.ndarray, k1: int) -> _SparseRows:
    """Each image's k-reciprocal set, expanded with its members' (k1/2)-reciprocal sets.

    A member's set is added when more than 2/3 of it already lies in the
    image's k-reciprocal set -- torchreid's rule, vectorised over images.
    """
    size = len(nearest)
    forward = nearest[:, : min(k1 + 1, size)]
    half = nearest[:, : min(int(np.around(k1 / 2.0)) + 1, size)]
    half_reciprocal = _reciprocal(half)
    width, half_width = forward.shape[1], half.shape[1]
    rows_per_chunk = max(1, _CHUNK_BYTES // (width * width * half_width * 3))
    counts, members = [], []
    for start in range(0, size, rows_per_chunk):
        stop = min(start + rows_per_chunk, size)
        mine = forward[start:stop]
        reciprocal = (forward[mine] == np.arange(start, stop)[:, None, None]).any(axis=2)
        candidate_sets = half[mine]  # (rows, width, half_width)
        candidate_valid = half_reciprocal[mine]
        in_own_set = ((candidate_sets[..., None] == mine[:, None, None, :]) & reciprocal[:, None, None, :]).any(-1)
        overlap = (in_own_set & candidate_valid).sum(axis=-1)
        accepted = reciprocal & (overlap > 2.0 / 3 * candidate_valid.sum(axis=-1))
        union = np.concatenate(
            [np.where(reciprocal, mine, size),
             np.where(accepted[..., None] & candidate_valid, candidate_sets, size).reshape(stop - start, -1)],
            axis=1,
        )
        union.sort(axis=1)
        keep = union < size
        keep[:, 1:] &= union[:, 1:] != union[:, :-1]
        counts.append(keep.sum(axis=1))
        members.append(union[keep])
    counts_all = np.concatenate(counts)
    indptr = np.concatenate(([0], np.cumsum(counts_all)))
    return _SparseRows(indptr, np.concatenate(members), np.empty(0, dtype=np.float32), size)


def _weights(distances: _ScaledDistances, expansion: _SparseRows) -> _SparseRows:
    """``V``: per image, ``exp(-D)`` over its expanded set, normalised to sum 1 (float32)."""
    rows = expansion.row_of_entries()
    weight = np.exp(-distances.at(rows, expansion.cols))
    counts = np.diff(expansion.indptr)
    totals = np.empty(counts.size, dtype=np.float32)
    # np.sum's rounding depends on the length; rows of one length summed as a
    # matrix round exactly like torchreid's per-row np.sum.
    for length in np.unique(counts[counts > 0]).tolist():
        same = np.flatnonzero(counts == length)
        entries = expansion.indptr[same][:, None] + np.arange(length)
        totals[same] = weight[entries].sum(axis=1)
    return _SparseRows(expansion.indptr, expansion.cols, weight / totals[rows], expansion.num_cols)


def _query_expansion(weights: _SparseRows, nearest: np.ndarray) -> _SparseRows:
    """``V_qe[i] = mean(V[nearest[i, :k2]])``, summed in neighbour order like ``np.mean``."""
    size, k2 = nearest.shape
    counts = np.diff(weights.indptr)
    indptr, cols, values = [np.zeros(1, dtype=np.int64)], [], []
    for start, stop in _row_chunks(counts[nearest].sum(axis=1), _CHUNK_BYTES // 48):
        sources = nearest[start:stop].T.reshape(-1)  # neighbour order first: the summation order
        source_counts = counts[sources]
        entries = _concatenated_ranges(weights.indptr[sources], weights.indptr[sources + 1])
        targets = np.repeat(np.tile(np.arange(start, stop), k2), source_counts)
        keys = targets * size + weights.cols[entries]
        unique_keys, slot = np.unique(keys, return_inverse=True)
        sums = np.zeros(unique_keys.size, dtype=np.float32)
        bounds = np.concatenate(([0], np.cumsum(source_counts.reshape(k2, -1).sum(axis=1))))
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            sums[slot[lo:hi]] += weights.values[entries[lo:hi]]  # one neighbour: no repeated slot
        rows = unique_keys // size
        indptr.append(indptr[-1][-1] + np.cumsum(np.bincount(rows - start, minlength=stop - start)))
        cols.append(unique_keys - rows * size)
        values.append(sums / np.float32(k2))
    return _SparseRows(np.concatenate(indptr), np.concatenate(cols), np.concatenate(values), size)


# --------------------------------------------------------------------------
# Jaccard distance and blend


def _blend(weights: _SparseRows, distances: _ScaledDistances, lambda_value: float) -> np.ndarray:
    """``(1 - lambda) * jaccard + lambda * D`` for the query rows and gallery columns."""
    num_query, num_gallery = distances.num_query, distances.num_gallery
    columns = _gallery_columns(weights, num_query)
    column_counts = np.diff(columns.indptr)
    entry_pairs = column_counts[weights.cols[: weights.indptr[num_query]]]
    pairs_per_query = _per_row_sums(entry_pairs, weights.indptr[: num_query + 1])
    cost = pairs_per_query * 24 + num_gallery * 4
    result = np.empty((num_query, num_gallery), dtype=np.float32)
    for start, stop in _row_chunks(cost, _CHUNK_BYTES):
        overlap = _min_overlap(weights, columns, start, stop, num_gallery)
        jaccard = 1 - overlap / (2.0 - overlap)
        result[start:stop] = jaccard * (1 - lambda_value) + distances.query_gallery(start, stop) * lambda_value
    return result


def _per_row_sums(values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    cumulative = np.concatenate(([0], np.cumsum(values)))
    return cumulative[indptr[1:]] - cumulative[indptr[:-1]]


def _gallery_columns(weights: _SparseRows, num_query: int) -> _SparseRows:
    """Column-compressed copy of the gallery rows of ``weights``: per column, (gallery index, value)."""
    first = weights.indptr[num_query]
    rows = weights.row_of_entries()[first:] - num_query
    cols = weights.cols[first:]
    order = np.argsort(cols, kind="stable")  # rows stay ascending within a column
    indptr = np.concatenate(([0], np.cumsum(np.bincount(cols, minlength=weights.num_cols))))
    return _SparseRows(indptr, rows[order], weights.values[first:][order], weights.num_cols)


def _min_overlap(weights: _SparseRows, columns: _SparseRows, start: int, stop: int, num_gallery: int) -> np.ndarray:
    """torchreid's ``temp_min`` for queries ``start:stop`` and gallery columns.

    ``sum_l min(V[i, l], V[j, l])`` over the non-zeros ``l`` of query ``i``,
    added in increasing ``l`` like torchreid's loop (``np.add.at`` adds in
    order), so the float32 rounding is the same.
    """
    lo, hi = weights.indptr[start], weights.indptr[stop]
    entry_cols = weights.cols[lo:hi]
    entry_rows = np.repeat(np.arange(stop - start), np.diff(weights.indptr[start: stop + 1]))
    pair_counts = np.diff(columns.indptr)[entry_cols]
    partner = _concatenated_ranges(columns.indptr[entry_cols], columns.indptr[entry_cols + 1])
    smaller = np.minimum(np.repeat(weights.values[lo:hi], pair_counts), columns.values[partner])
    target = np.repeat(entry_rows * num_gallery, pair_counts) + columns.cols[partner]
    overlap = np.zeros((stop - start) * num_gallery, dtype=np.float32)
    np.add.at(overlap, target, smaller)
    return overlap.reshape(stop - start, num_gallery)
