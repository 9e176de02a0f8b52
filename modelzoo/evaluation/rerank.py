"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) in bounded memory.

The arithmetic is torchreid's ``utils/rerank.py`` (float32, same operations
in the same order, so results agree to the last bit on tie-free inputs), but
none of its ``(q + g) x (q + g)`` matrices is ever built:

* the scaled distances ``D`` (torchreid's ``original_dist``) are produced a
  block (or tile) at a time, and the few single entries needed later are
  kept from that pass (or, rarely, computed again);
* of the full ``argsort`` only the ``max(k1 + 1, k2)`` nearest neighbours of
  each image are kept (a partial selection per block, merged across tiles);
* ``V`` and its query expansion are sparse (a few dozen non-zeros per row);
* the Jaccard distance is computed a block of queries at a time from the
  non-zeros, and blended with ``D`` into that block of the ``q x g`` result.

The distances come from one of two sources, with one implementation of
everything else: the three dense matrices torchreid takes
(:func:`re_ranking`), or the features themselves (:func:`re_ranking_from_features`),
whose blocks of distances are matrix products computed as
:func:`~modelzoo.evaluation.compute_distance` computes them -- on the
features' device, so on a GPU when the features are there -- so no distance
matrix is needed at all.  From features, the re-ranked distances can also be
consumed a block of queries at a time (:class:`ReRankedDistances`), so not
even the ``q x g`` result is held: for MSMT17 (11,659 x 82,161) re-ranking
then needs about 0.8 GiB (512-d) to 1.1 GiB (2048-d) beyond the features,
where torchreid's needs about 200 GB (``benchmarks/bench_rerank.py``).

Memory is estimated before the work starts and again once the sparse sizes
are known; beyond ``max_memory_bytes`` an
:class:`~modelzoo.errors.InsufficientMemoryError` names the bytes needed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Optional, Union, overload

import numpy as np
import torch

from modelzoo.errors import InsufficientMemoryError

logger = logging.getLogger(__name__)

DEFAULT_MAX_MEMORY_BYTES = 8 << 30
#: Working set of one chunk of rows (distances, selections, index pairs).
_CHUNK_BYTES = 128 << 20
#: Fewest rows and columns of a matrix product from features.  BLAS libraries
#: compute thin products (a few rows or columns) with other kernels (gemv,
#: small-matrix paths) that sum in another order; from 12 on, MKL 2024.2 gives
#: every entry the bits of the whole product, as compute_distance computes it.
_MIN_PRODUCT_SIDE = 32
#: Distances kept per image from the neighbour pass, in units of the
#: neighbour width: the k-reciprocal expansion reads entries a little beyond
#: an image's own k1 nearest, and those kept need no second product.
_KNOWN_WIDTH_FACTOR = 3
#: Images per side of a tile of products in the neighbour pass (64 MB of float32).
_TILE_SIDE = 4096
#: Distances per matrix product when entries that were not kept are computed,
#: each row of the product counted as this many more: at most 32 rows, the
#: fewest a product has, so that few entries are computed for nothing.
_PAIRS_PER_PRODUCT = 4096
_PAIR_ROW_COST = _PAIRS_PER_PRODUCT // _MIN_PRODUCT_SIDE

ArrayLike = Any  # np.ndarray or torch.Tensor


def re_ranking(
    q_g_dist: ArrayLike,
    q_q_dist: ArrayLike,
    g_g_dist: ArrayLike,
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
    return _re_rank(_DistanceMatrices(q_g, q_q, g_g), k1, k2, lambda_value, max_memory_bytes, as_matrix=True)


@overload
def re_ranking_from_features(
    query_features: ArrayLike, gallery_features: ArrayLike, k1: int = ..., k2: int = ...,
    lambda_value: float = ..., *, metric: str = ..., max_memory_bytes: int = ..., as_matrix: Literal[False] = ...,
) -> "ReRankedDistances": ...


@overload
def re_ranking_from_features(
    query_features: ArrayLike, gallery_features: ArrayLike, k1: int = ..., k2: int = ...,
    lambda_value: float = ..., *, metric: str = ..., max_memory_bytes: int = ..., as_matrix: Literal[True],
) -> np.ndarray: ...


def re_ranking_from_features(
    query_features: ArrayLike,
    gallery_features: ArrayLike,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    *,
    metric: str = "euclidean",
    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
    as_matrix: bool = False,
) -> Union["ReRankedDistances", np.ndarray]:
    """Re-ranking straight from features, never building a distance matrix.

    Equal to ``re_ranking(compute_distance(qf, gf, metric), compute_distance(qf,
    qf, metric), compute_distance(gf, gf, metric), k1, k2, lambda_value)``:
    the blocks of distances are the same matrix products (at least
    32 x 32, so that a CPU BLAS gives every entry the same bits as the whole
    product does), only never all at once.  On a GPU the products run there,
    and the result agrees with the CPU's to float rounding.

    Args:
        query_features: ``(q, dim)`` tensor or NumPy array; a CUDA tensor has
            its products computed on its device.
        gallery_features: ``(g, dim)``, on the same device.
        k1: Size of the k-reciprocal neighbourhood (paper: 20).
        k2: Neighbours averaged in the local query expansion (1 disables it).
        lambda_value: Weight of the original distance in the result.
        metric: ``"euclidean"`` (squared, as torchreid) or ``"cosine"``.
        max_memory_bytes: Refuse to start (or continue) when the estimated
            memory beyond the features exceeds this many bytes.  It counts
            the ``(q, g)`` result only when ``as_matrix`` asks for it.
        as_matrix: Return the whole ``(q, g)`` float32 matrix (``q * g * 4``
            bytes: 3.8 GB for MSMT17) instead of blocks.

    Returns:
        A :class:`ReRankedDistances` yielding blocks of query rows, or with
        ``as_matrix`` the ``(q, g)`` float32 matrix.

    Raises:
        ValueError: Features that are not 2-D, of different widths or not
            finite, an unknown metric, parameters out of range.
        InsufficientMemoryError: The estimate exceeds ``max_memory_bytes``.
    """
    from modelzoo.evaluation.distance import _check_metric, as_feature_tensors

    _check_metric(metric)
    _check_parameters(k1, k2, lambda_value, max_memory_bytes)
    query, gallery = as_feature_tensors(query_features, gallery_features)
    if query.shape[0] == 0 or gallery.shape[0] == 0:
        raise ValueError(f"re-ranking needs at least one query and one gallery image, got {query.shape[0]} "
                         f"queries and {gallery.shape[0]} gallery images")
    if not (torch.isfinite(query).all() and torch.isfinite(gallery).all()):
        raise ValueError("the features hold NaN or infinite values: check the model's output (a bad "
                         "checkpoint, or fp16 overflow) before re-ranking")
    return _re_rank(_FeatureDistances(query, gallery, metric), k1, k2, lambda_value, max_memory_bytes, as_matrix)


def _re_rank(distances: "_ScaledDistances", k1: int, k2: int, lambda_value: float, max_memory_bytes: int,
             as_matrix: bool) -> Any:
    """The re-ranking itself, whatever the source of the distances."""
    size = distances.size
    width = min(size, max(k1 + 1, k2))
    base = _base_bytes(distances, width, as_matrix)
    _require(base, max_memory_bytes, "before starting")
    base += distances.reserve(max_memory_bytes - base)
    neighbours = distances.nearest(width, known=min(size, _KNOWN_WIDTH_FACTOR * width))
    expansion = _k_reciprocal_expansion(neighbours, k1)
    _require(base + _sparse_bytes(expansion, neighbours[:, :k2]), max_memory_bytes,
             "once the k-reciprocal neighbourhoods were known")
    weights = _weights(distances, expansion)
    if k2 != 1:
        weights = _query_expansion(weights, neighbours[:, :k2])
    reranked = ReRankedDistances(weights, distances, lambda_value)
    return reranked._matrix() if as_matrix else reranked


class ReRankedDistances:
    """Re-ranked query x gallery distances, produced a block of query rows at a time.

    Iterating yields ``(start, block)``: ``block`` is the float32
    ``(rows, num_gallery)`` NumPy array of the re-ranked distances of queries
    ``start:start + len(block)``, in order, each computed when it is asked
    for (a block is at most about 128 MB).  Returned by
    :func:`re_ranking_from_features`; it can be iterated more than once.

    Attributes:
        shape: ``(num_query, num_gallery)``.
    """

    def __init__(self, weights: "_SparseRows", distances: "_ScaledDistances", lambda_value: float) -> None:
        self._weights, self._distances, self._lambda = weights, distances, float(lambda_value)
        self.shape = (distances.num_query, distances.num_gallery)
        self._columns = _gallery_columns(weights, distances.num_query)
        self._chunks = _blend_chunks(weights, self._columns, *self.shape)
        self._overlap = np.empty(0, dtype=np.float32)  # reused: a fresh array per block costs its page faults

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        for start, stop in self._chunks:
            yield start, self._block(start, stop, np.empty((stop - start, self.shape[1]), dtype=np.float32))

    def __len__(self) -> int:
        """The number of blocks."""
        return len(self._chunks)

    def _block(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        """``(1 - lambda) * jaccard + lambda * D`` for queries ``start:stop`` and the gallery columns.

        torchreid's ``1 - m / (2 - m)`` and blend, operation by operation in
        float32, computed in ``out`` instead of five temporaries.
        """
        size = (stop - start) * self.shape[1]
        if self._overlap.size < size:
            self._overlap = np.empty(size, dtype=np.float32)
        overlap = _min_overlap(self._weights, self._columns, start, stop, self._overlap[:size])
        np.subtract(np.float32(2.0), overlap, out=out)
        np.divide(overlap, out, out=out)
        np.subtract(np.float32(1), out, out=out)
        out *= np.float32(1 - self._lambda)
        scaled = self._distances.query_gallery(start, stop)  # may be the source's scratch: used at once
        scaled *= np.float32(self._lambda)
        out += scaled
        return out

    def _matrix(self) -> np.ndarray:
        result = np.empty(self.shape, dtype=np.float32)
        for start, stop in self._chunks:
            self._block(start, stop, result[start:stop])
        return result


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
    if isinstance(matrix, torch.Tensor):
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


def _base_bytes(distances: "_ScaledDistances", width: int, as_matrix: bool) -> int:
    """Memory known from the shapes: result (or two blocks of it), neighbour lists, kept distances,
    scales, the source's working set and the chunk working sets."""
    num_query, num_gallery, size = distances.num_query, distances.num_gallery, distances.size
    known = min(size, _KNOWN_WIDTH_FACTOR * width)
    result = num_query * num_gallery * 4 if as_matrix else 2 * min(num_query * num_gallery * 4, _CHUNK_BYTES)
    per_image = width * 8 + known * (8 + 4) + 4 + 16
    return result + size * per_image + distances.working_bytes() + 3 * _CHUNK_BYTES


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
    """Rows and entries of torchreid's ``original_dist``, computed on demand from a source.

    With ``X = [[q_q, q_g], [q_g.T, g_g]]`` (the images in query-then-gallery
    order), row ``i`` is column ``i`` of ``X`` squared (in the inputs' dtype,
    then float32) divided by its maximum: ``D[i, j] = X[j, i]^2 / max_j X[j, i]^2``.
    A source (a subclass) supplies rows of ``X.T``, single entries of it and
    the squares of rows of ``q_g``; the scaling, the neighbour selection and the
    entries kept from it are the same for every source.
    """

    num_query: int
    num_gallery: int
    dtype: np.dtype  # of the raw distances

    def __init__(self, num_query: int, num_gallery: int) -> None:
        self.num_query, self.num_gallery = num_query, num_gallery
        self.size = num_query + num_gallery
        self.scale = np.empty(0, dtype=np.float32)  # per-row maximum, set by nearest()
        self._known_keys = np.empty(0, dtype=np.int64)  # row * size + column, ascending
        self._known_values = np.empty(0, dtype=np.float32)

    # What a source supplies ------------------------------------------------

    def working_bytes(self) -> int:
        """Memory the source itself allocates while it works."""
        raise NotImplementedError

    def reserve(self, available: int) -> int:
        """Keep what saves work later if it fits in ``available`` bytes; the bytes kept."""
        return 0

    def _rows_per_block(self) -> int:
        raise NotImplementedError

    def _raw_rows(self, rows: np.ndarray) -> torch.Tensor:
        """Rows ``rows`` (ascending) of ``X.T``, in a tensor the caller may overwrite."""
        raise NotImplementedError

    def _raw_pairs(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``X.T[rows, cols]``."""
        raise NotImplementedError

    def _squared_query_gallery(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of ``q_g``, squared to float32, in a tensor the caller may overwrite."""
        raise NotImplementedError

    def _candidates(self, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per row of ``X.T``: the ``count`` smallest squares by (value, column), their columns, the largest.

        A block of whole rows at a time; a source may do better.
        """
        values = torch.empty((self.size, count), dtype=torch.float32)
        columns = torch.empty((self.size, count), dtype=torch.int64)
        largest = torch.empty(self.size, dtype=torch.float32)
        rows_per_block = self._rows_per_block()
        for start in range(0, self.size, rows_per_block):
            stop = min(start + rows_per_block, self.size)
            squared = _squared(self._raw_rows(np.arange(start, stop)))
            largest[start:stop] = squared.amax(dim=1)
            picked = _smallest(squared, count)
            columns[start:stop], values[start:stop] = picked, squared.gather(1, picked)
        return values, columns, largest

    # The same for every source -------------------------------------------

    def nearest(self, width: int, known: int) -> np.ndarray:
        """Per row, the ``width`` columns of smallest ``D`` in (distance, column) order.

        Also records every row's scale, and the ``D`` of each row's ``known``
        (>= width) nearest columns, which :meth:`at` reads back.
        """
        count = min(self.size, known + 1)  # one more than kept: shows where a tie straddles the cut
        squared, columns, largest = self._candidates(count)
        scaled = squared.div_(largest[:, None])
        if count > known:
            # D is the square divided by the row's scale, which can round two
            # squares to one D: where the cut falls in such a tie, columns
            # beyond the candidates may belong in, so those rows are redone whole.
            straddle = torch.nonzero(scaled[:, known - 1] == scaled[:, known]).squeeze(1)
            for rows in torch.split(straddle, self._rows_per_block()):
                whole = _squared(self._raw_rows(rows.cpu().numpy())).div_(largest[rows, None])
                picked = _smallest(whole, count)
                columns[rows], scaled[rows] = picked, whole.gather(1, picked)
        scaled, columns = _by_value_then_column(scaled[:, :known], columns[:, :known])
        self.scale = largest.cpu().numpy()
        nearest = columns.cpu().numpy()
        self._keep(nearest, scaled.cpu().numpy())
        return nearest[:, :width]

    def at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``D[rows, cols]`` (float32): kept from :meth:`nearest` where it can, else computed."""
        keys = rows * self.size + cols
        slot = np.minimum(np.searchsorted(self._known_keys, keys), self._known_keys.size - 1)
        found = self._known_keys[slot] == keys
        result = np.where(found, self._known_values[slot], np.float32(0))
        missing = np.flatnonzero(~found)
        if missing.size:
            logger.debug("re-ranking: %d of %d distances computed again", missing.size, keys.size)
            raw = self._raw_pairs(rows[missing], cols[missing])
            result[missing] = np.power(raw, 2).astype(np.float32) / self.scale[rows[missing]]
        return result

    def query_gallery(self, start: int, stop: int) -> np.ndarray:
        """``D[start:stop, q:]``: the query rows' gallery columns.

        The array may share memory with the source's buffer: use it before
        asking for the next rows.
        """
        squared = self._squared_query_gallery(start, stop)
        scale = torch.from_numpy(self.scale[start:stop, None]).to(squared.device)
        return squared.div_(scale).cpu().numpy()

    def _keep(self, nearest: np.ndarray, values: np.ndarray) -> None:
        """Index the kept distances by ``row * size + column`` for :meth:`at`."""
        order = np.argsort(nearest, axis=1)
        rows = np.arange(self.size)[:, None] * self.size
        self._known_keys = (rows + np.take_along_axis(nearest, order, axis=1)).reshape(-1)
        self._known_values = np.take_along_axis(values, order, axis=1).reshape(-1)


def _squared(raw: torch.Tensor) -> torch.Tensor:
    """``raw ** 2`` in raw's dtype, then float32 (torchreid's ``np.power(..., 2).astype(np.float32)``)."""
    if raw.dtype == torch.float32:
        return raw.mul_(raw)  # in place: raw is the source's scratch
    return (raw * raw).to(torch.float32)


def _smallest(rows: torch.Tensor, width: int) -> torch.Tensor:
    """Column indices of the ``width`` smallest values per row, by (value, column)."""
    count = rows.shape[1]
    if width >= count:
        columns = torch.arange(count, device=rows.device).expand(rows.shape[0], count)
    else:
        values, columns = torch.topk(rows, width + 1, dim=1, largest=False)
        columns = columns[:, :width]
        # topk picks any of several equal values: where one straddles the cut, a
        # stable sort says which columns are in (the lowest-numbered ones).
        straddle = torch.nonzero(values[:, width - 1] == values[:, width]).squeeze(1)
        if straddle.numel():
            columns[straddle] = torch.sort(rows[straddle], dim=1, stable=True).indices[:, :width]
    return _by_value_then_column(rows.gather(1, columns), columns)[1]


def _by_value_then_column(values: torch.Tensor, columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's ``(values, columns)`` reordered by value, ties by column."""
    columns, by_column = torch.sort(columns, dim=1)
    values, by_value = torch.sort(values.gather(1, by_column), dim=1, stable=True)
    return values, columns.gather(1, by_value)


class _RunningNearest:
    """Per row, the ``count`` smallest values seen so far by (value, column), and the largest value.

    Tiles come in any order.  Once a row holds ``count`` values, only values
    at most its current last one can enter, so a later tile costs a
    comparison per value rather than a selection.
    """

    def __init__(self, size: int, count: int, device: torch.device) -> None:
        self.count, self._none = count, size  # column `size`: no value yet
        self.values = torch.full((size, count), float("inf"), device=device)
        self.columns = torch.full((size, count), size, dtype=torch.int64, device=device)
        self.largest = torch.full((size,), -float("inf"), device=device)

    def add(self, tile: torch.Tensor, first_row: int, first_column: int, transposed: bool = False) -> None:
        """The values of ``tile`` -- or of its transpose -- at rows ``first_row...``, columns ``first_column...``.

        A transpose is compared as the tile lies; only the booleans are transposed.
        """
        num_rows = tile.shape[1] if transposed else tile.shape[0]
        rows = slice(first_row, first_row + num_rows)
        self.largest[rows] = torch.maximum(self.largest[rows], tile.amax(dim=0 if transposed else 1))
        threshold = self.values[rows, -1]
        if not torch.isfinite(threshold).all():  # rows that do not hold count values yet: a selection
            values = tile.t().contiguous() if transposed else tile
            picked = _smallest(values, min(self.count, values.shape[1]))
            row = torch.arange(num_rows, device=tile.device).repeat_interleave(picked.shape[1])
            self._merge(rows, row, picked.reshape(-1), values[row, picked.reshape(-1)], first_column)
        elif transposed:  # the comparison along the tile's rows, then transposed: entries row by row
            row, column = torch.nonzero((tile <= threshold[None, :]).t().contiguous(), as_tuple=True)
            self._merge(rows, row, column, tile[column, row], first_column)
        else:
            row, column = torch.nonzero(tile <= threshold[:, None], as_tuple=True)
            self._merge(rows, row, column, tile[row, column], first_column)

    def _merge(self, rows: slice, row: torch.Tensor, column: torch.Tensor, values: torch.Tensor,
               first_column: int) -> None:
        """Each row's values so far and its entering ones (``row`` ascending), side by side, reselected.

        Values are squares (never negative, never NaN), whose float32 bits order
        like the values: (value, column) pairs sort as one int64 key each.
        """
        if row.numel() == 0:
            return
        num_rows = rows.stop - rows.start
        per_row = torch.bincount(row, minlength=num_rows)
        slot = self.count + torch.arange(row.numel(), device=row.device) - (torch.cumsum(per_row, 0) - per_row)[row]
        keys = torch.full((num_rows, self.count + int(per_row.max())), (_FLOAT32_INF_BITS << 32) | self._none,
                          dtype=torch.int64, device=values.device)
        keys[:, : self.count] = _key(self.values[rows], self.columns[rows])
        keys[row, slot] = _key(values, column + first_column)
        kept = torch.sort(keys, dim=1).values[:, : self.count]
        self.values[rows] = (kept >> 32).to(torch.int32).view(torch.float32)
        self.columns[rows] = kept & 0xFFFFFFFF


_FLOAT32_INF_BITS = 0x7F800000


def _key(values: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """One int64 per (value, column) that sorts as the pair, for float32 values >= 0 and columns < 2**32."""
    return (values.view(torch.int32).to(torch.int64) << 32) | columns


class _DistanceMatrices(_ScaledDistances):
    """Distances read from torchreid's three dense input matrices."""

    def __init__(self, q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray) -> None:
        super().__init__(*q_g.shape)
        self.q_g, self.q_q, self.g_g = q_g, q_q, g_g
        self.dtype = np.result_type(q_g, q_q, g_g)

    def working_bytes(self) -> int:
        return 0  # its row blocks are within the chunk working sets

    def _rows_per_block(self) -> int:
        return max(1, _CHUNK_BYTES // (self.size * 24))

    def _raw_rows(self, rows: np.ndarray) -> torch.Tensor:
        q = self.num_query
        query, gallery = rows[rows < q], rows[rows >= q] - q
        raw = np.empty((rows.size, self.size), dtype=self.dtype)
        raw[: query.size, :q] = self.q_q[:, query].T
        raw[: query.size, q:] = self.q_g[query]
        raw[query.size:, :q] = self.q_g[:, gallery].T
        raw[query.size:, q:] = self.g_g[:, gallery].T
        return torch.from_numpy(raw)

    def _raw_pairs(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
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
        return raw

    def _squared_query_gallery(self, start: int, stop: int) -> torch.Tensor:
        return _squared(torch.from_numpy(np.array(self.q_g[start:stop], dtype=self.dtype)))


class _FeatureDistances(_ScaledDistances):
    """Distances computed from the features, as tiles of matrix products.

    ``X[j, i]`` is the distance between images ``j`` and ``i``, and ``X`` is
    symmetric to the bit (an entry of a product is a sum over the same
    features in the same order whichever side they are on), so a tile of
    products serves twice: as rows of ``X.T`` for its rows' images and,
    transposed, for its columns' images -- half the products of computing
    every row whole.  The products are those of ``compute_distance``; a tile
    is all queries or all gallery images on each side, so none is thin.
    """

    def __init__(self, query: torch.Tensor, gallery: torch.Tensor, metric: str) -> None:
        from modelzoo.evaluation.distance import GalleryDistances

        super().__init__(int(query.shape[0]), int(gallery.shape[0]))
        self._query, self._gallery, self._metric = query, gallery, metric
        self._to_query = GalleryDistances(query, metric)
        self._to_gallery = GalleryDistances(gallery, metric)
        self.dtype = torch.empty(0, dtype=query.dtype).numpy().dtype
        self._itemsize = query.element_size()
        self._dim = int(query.shape[1])
        self._scratch = torch.empty(0, dtype=query.dtype, device=query.device)
        self._kept_query_gallery: Optional[torch.Tensor] = None  # squares from the neighbour pass, see reserve()

    def working_bytes(self) -> int:
        item, dim = self._itemsize, self._dim
        prepared = self.size * (dim if self._metric == "cosine" else 1) * item  # normalised copies, or norms
        side = min(self.size, _TILE_SIDE)
        # A tile, and at worst (ties everywhere) all of it entering a merge: its comparison, indices,
        # values and padded (value, column) pairs, sorted; the tile's features on both sides.
        tile = side * side * (item + 1 + 16 + 4 + 36) + 2 * side * dim * item
        rows = self._rows_per_block() * (self.size + 2 * dim) * item  # a block of whole rows (redone or q x g)
        pair_rows = _PAIRS_PER_PRODUCT // _PAIR_ROW_COST
        pair_cols = _PAIRS_PER_PRODUCT + 2 * _MIN_PRODUCT_SIDE
        pairs = (pair_rows * pair_cols + (pair_rows + pair_cols) * 2 * dim) * item  # a product of entries not kept
        return prepared + max(tile, rows) + pairs

    def reserve(self, available: int) -> int:
        """Keep the query rows' squared gallery distances from the neighbour pass, where they fit in half
        ``available``: the blend then needs no products of its own."""
        needed = self.num_query * self.num_gallery * 4
        if needed > available // 2:
            return 0
        self._kept_query_gallery = torch.empty((self.num_query, self.num_gallery), device=self._query.device)
        return needed

    def _rows_per_block(self) -> int:
        return max(_MIN_PRODUCT_SIDE, _CHUNK_BYTES // (self.size * self._itemsize))

    def _candidates(self, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        nearest = _RunningNearest(self.size, count, self._query.device)
        side = max(_TILE_SIDE, count)
        blocks = _tile_spans(0, self.num_query, side) + _tile_spans(self.num_query, self.size, side)
        for first, last in blocks:  # the diagonal first: every row then holds count values to compare with
            tile = _squared(self._tile(self._images(np.arange(first, last)), first, last))
            self._keep_query_gallery(tile, first, first)
            nearest.add(tile, first, first)
        for index, (first, last) in enumerate(blocks):
            rows = self._images(np.arange(first, last))
            for column_first, column_last in blocks[index + 1:]:
                tile = _squared(self._tile(rows, column_first, column_last))
                self._keep_query_gallery(tile, first, column_first)
                nearest.add(tile, first, column_first)
                nearest.add(tile, column_first, first, transposed=True)
        return nearest.values, nearest.columns, nearest.largest

    def _tile(self, rows: torch.Tensor, column_first: int, column_last: int) -> torch.Tensor:
        """Distances of ``rows`` to images ``column_first:column_last`` (all queries or all gallery images)."""
        to_images, offset = (self._to_query, 0) if column_first < self.num_query else (self._to_gallery, self.num_query)
        columns = to_images.columns(column_first - offset, column_last - offset)
        return columns(rows, out=self._scratch_rows(rows.shape[0], column_last - column_first))

    def _keep_query_gallery(self, tile: torch.Tensor, first: int, column_first: int) -> None:
        """Copy a tile of query rows and gallery columns, if those are kept."""
        if self._kept_query_gallery is not None and first < self.num_query <= column_first:
            columns = slice(column_first - self.num_query, column_first - self.num_query + tile.shape[1])
            self._kept_query_gallery[first:first + tile.shape[0], columns] = tile

    def _raw_rows(self, rows: np.ndarray) -> torch.Tensor:
        images, slot = _padded(rows, 0, self.size)  # a few rows: a product of full size
        features = self._images(images)
        block = self._scratch_rows(images.size, self.size)
        self._to_query(features, out=block[:, :self.num_query])
        self._to_gallery(features, out=block[:, self.num_query:])
        return block[torch.from_numpy(slot).to(block.device)]

    def _squared_query_gallery(self, start: int, stop: int) -> torch.Tensor:
        if self._kept_query_gallery is not None:
            return self._kept_query_gallery[start:stop].clone()
        first, last = _product_span(start, stop, self.num_query)
        block = self._scratch_rows(last - first, self.num_gallery)
        return _squared(self._to_gallery(self._query[first:last], out=block)[start - first: stop - first])

    def _raw_pairs(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Products of each group of rows against the union of their columns."""
        raw = np.empty(rows.size, dtype=self.dtype)
        order = np.lexsort((cols, rows))
        rows, cols = rows[order], cols[order]
        distinct, first_pair, per_row = np.unique(rows, return_index=True, return_counts=True)
        for first, last in _row_chunks(per_row + _PAIR_ROW_COST, _PAIRS_PER_PRODUCT):
            lo, hi = first_pair[first], first_pair[last - 1] + per_row[last - 1]
            raw[order[lo:hi]] = self._pair_product(rows[lo:hi], cols[lo:hi])
        return raw

    def _pair_product(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        from modelzoo.evaluation.distance import GalleryDistances

        q = self.num_query
        row_images, row_slot = _padded(rows, 0, self.size)
        features = self._images(row_images)
        products: list[Any] = []
        col_slot = np.empty(cols.size, dtype=np.int64)
        for part, lo, hi in ((cols < q, 0, q), (cols >= q, q, self.size)):  # each side of the product padded
            if part.any():
                images, slot = _padded(cols[part], lo, hi)
                col_slot[part] = slot + sum(product.shape[1] for product in products)
                products.append(GalleryDistances(self._images(images), self._metric)(features))
        product = products[0] if len(products) == 1 else torch.cat(products, dim=1)
        device = product.device
        return product[torch.from_numpy(row_slot).to(device), torch.from_numpy(col_slot).to(device)].cpu().numpy()

    def _images(self, indices: np.ndarray) -> torch.Tensor:
        """Features of images ``indices`` (ascending: queries, then gallery images)."""
        q = self.num_query
        first, last = int(indices[0]), int(indices[-1])
        if last - first + 1 == indices.size and (last < q or first >= q):  # a run of one kind: a view
            return self._query[first:last + 1] if last < q else self._gallery[first - q:last + 1 - q]
        split = int(np.searchsorted(indices, q))
        device = self._query.device
        return torch.cat([self._query.index_select(0, torch.from_numpy(indices[:split]).to(device)),
                          self._gallery.index_select(0, torch.from_numpy(indices[split:] - q).to(device))])

    def _scratch_rows(self, rows: int, columns: int) -> torch.Tensor:
        """A ``(rows, columns)`` view of one reused buffer: a fresh 100 MB tensor per block would cost
        its page faults each time (about a quarter of a 2048-d product's time)."""
        if self._scratch.numel() < rows * columns:
            self._scratch = torch.empty(rows * columns, dtype=self._query.dtype, device=self._query.device)
        return self._scratch[: rows * columns].view(rows, columns)


def _tile_spans(start: int, stop: int, side: int) -> list[tuple[int, int]]:
    """Images ``start:stop`` in runs of ``side``, the last one at least ``_MIN_PRODUCT_SIDE`` long (where
    there are that many), so that every tile is a product of full size."""
    starts = list(range(start, stop, side))
    if len(starts) > 1 and stop - starts[-1] < _MIN_PRODUCT_SIDE:
        starts.pop()
    return list(zip(starts, starts[1:] + [stop]))


def _padded(indices: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``indices`` (all in ``lo:hi``) with others of ``lo:hi`` added up to
    ``_MIN_PRODUCT_SIDE`` where there are that many, and where each of ``indices`` is in them."""
    distinct = np.unique(indices)
    if distinct.size < _MIN_PRODUCT_SIDE:
        distinct = np.union1d(distinct, np.arange(lo, min(hi, lo + _MIN_PRODUCT_SIDE)))
    return distinct, np.searchsorted(distinct, indices)


def _product_span(start: int, stop: int, total: int) -> tuple[int, int]:
    """Rows of a product holding rows ``start:stop`` of ``total``, at least ``_MIN_PRODUCT_SIDE`` of them."""
    first = max(0, min(start, total - _MIN_PRODUCT_SIDE))
    return first, min(total, max(stop, first + _MIN_PRODUCT_SIDE))


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
# Jaccard distance (blended with D by ReRankedDistances)


def _blend_chunks(weights: _SparseRows, columns: _SparseRows, num_query: int,
                  num_gallery: int) -> list[tuple[int, int]]:
    """Query rows of each block of the result: its index pairs and its rows within ``_CHUNK_BYTES``."""
    column_counts = np.diff(columns.indptr)
    entry_pairs = column_counts[weights.cols[: weights.indptr[num_query]]]
    pairs_per_query = _per_row_sums(entry_pairs, weights.indptr[: num_query + 1])
    return _row_chunks(pairs_per_query * 24 + num_gallery * 4, _CHUNK_BYTES)


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


def _min_overlap(weights: _SparseRows, columns: _SparseRows, start: int, stop: int, out: np.ndarray) -> np.ndarray:
    """torchreid's ``temp_min`` for queries ``start:stop`` and gallery columns, in ``out`` (flat, its size).

    ``sum_l min(V[i, l], V[j, l])`` over the non-zeros ``l`` of query ``i``,
    added in increasing ``l`` like torchreid's loop (``np.add.at`` adds in
    order), so the float32 rounding is the same.
    """
    num_gallery = out.size // (stop - start)
    lo, hi = weights.indptr[start], weights.indptr[stop]
    entry_cols = weights.cols[lo:hi]
    entry_rows = np.repeat(np.arange(stop - start), np.diff(weights.indptr[start: stop + 1]))
    pair_counts = np.diff(columns.indptr)[entry_cols]
    partner = _concatenated_ranges(columns.indptr[entry_cols], columns.indptr[entry_cols + 1])
    smaller = np.minimum(np.repeat(weights.values[lo:hi], pair_counts), columns.values[partner])
    target = np.repeat(entry_rows * num_gallery, pair_counts) + columns.cols[partner]
    out.fill(0)
    np.add.at(out, target, smaller)
    return out.reshape(stop - start, num_gallery)
