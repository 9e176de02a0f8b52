"""Rank every true match of a block of queries from one pass over its distances.

The 0-based rank of a positive ``p`` (a same-identity gallery image from
another camera) in its query's ranked list is the number of *valid* gallery
items before it: those strictly closer, plus those at the same distance with a
smaller gallery index (a stable sort's order).  Only items no farther than the
query's farthest positive can come before any positive, so per block of query
rows:

1. gather the distances of the same-identity items (few) and take, per row,
   the farthest positive as a threshold;
2. one vectorised pass over the block picks the "candidates" at or below the
   threshold -- the only work that touches every distance;
3. each row's candidate values are sorted (a few thousand at most for a
   useful model, instead of the whole row) and every positive's rank is a
   binary search; rows with few candidates are ranked together with one sort
   of exact (row, distance, column) keys instead, and the same keys correct
   ties and junk (same identity, same camera: removed by the protocol).
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

#: Rows with at most this many candidates are ranked together in one sort of
#: exact 64-bit keys; longer rows get a float sort each (cheaper per item,
#: but a Python call per row).
_SHORT_ROW = 256


class Items(NamedTuple):
    """Some (query row, gallery column) cells of a block, rows ascending."""

    rows: np.ndarray
    cols: np.ndarray


@dataclass(frozen=True)
class Labels:
    """Identities and cameras, with the gallery grouped by identity.

    ``group_order`` lists gallery indices sorted by identity (stable, so
    ascending within an identity); query ``q``'s same-identity gallery items
    are ``group_order[q_start[q] : q_start[q] + q_size[q]]``.
    """

    q_camids: np.ndarray
    g_camids: np.ndarray
    group_order: np.ndarray
    q_start: np.ndarray
    q_size: np.ndarray

    @classmethod
    def build(cls, q_pids: np.ndarray, g_pids: np.ndarray, q_camids: np.ndarray, g_camids: np.ndarray) -> "Labels":
        """Index validated 1-D label arrays (see ``rank._labels``)."""
        group_order = np.argsort(g_pids, kind="stable")
        group_pids, group_first, group_size = np.unique(g_pids[group_order], return_index=True, return_counts=True)
        slot = np.minimum(np.searchsorted(group_pids, q_pids), len(group_pids) - 1)
        found = group_pids[slot] == q_pids
        return cls(
            q_camids=q_camids,
            g_camids=g_camids,
            group_order=group_order,
            q_start=np.where(found, group_first[slot], 0),
            q_size=np.where(found, group_size[slot], 0),
        )

    @property
    def num_gallery(self) -> int:
        return len(self.g_camids)

    def same_identity(self, start: int, stop: int) -> tuple[Items, Items]:
        """Positives and junk of queries ``start:stop``, rows relative to ``start``."""
        sizes = self.q_size[start:stop]
        rows = np.repeat(np.arange(stop - start), sizes)
        first_of_row = np.cumsum(sizes) - sizes
        offsets = np.arange(rows.size) - first_of_row[rows] + self.q_start[start:stop][rows]
        cols = self.group_order[offsets]
        junk = self.g_camids[cols] == self.q_camids[start + rows]
        return Items(rows[~junk], cols[~junk]), Items(rows[junk], cols[junk])


# --------------------------------------------------------------------------
# Where a block lives: NumPy (CPU) or torch (its device)


class Backend(Protocol):
    """Reads a block: gathers cells and picks the candidates of a threshold pass."""

    def prepare(self, matrix: Any) -> Any: ...

    def gather(self, block: Any, items: Items) -> np.ndarray: ...

    def candidates(self, block: Any, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class NumpyBackend:
    """Blocks are NumPy arrays, scanned a cache-sized slab of rows at a time."""

    #: Distances per slab: its mask and values stay in cache between the
    #: compare, the mask scan and the value gather.
    SLAB_ELEMENTS = 1 << 20

    def __init__(self) -> None:
        self._scratch = threading.local()  # one mask per thread scanning blocks

    def prepare(self, matrix: Any) -> np.ndarray:
        """A NumPy view of ``matrix`` (a CPU tensor is shared, not copied)."""
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(matrix, torch.Tensor):
            return matrix.detach().numpy()
        return np.asarray(matrix)

    def gather(self, block: np.ndarray, items: Items) -> np.ndarray:
        """Distances of the given cells."""
        return block[items.rows, items.cols]

    def candidates(self, block: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat (row-major) positions and values of the cells ``<=`` their row's threshold."""
        num_rows, num_cols = block.shape
        slab_rows = max(1, self.SLAB_ELEMENTS // max(1, num_cols))
        scratch = getattr(self._scratch, "mask", None)
        if scratch is None or scratch.size < slab_rows * num_cols:
            scratch = self._scratch.mask = np.empty(slab_rows * num_cols, dtype=bool)
        positions, values = [], []
        for start in range(0, num_rows, slab_rows):
            slab = np.ascontiguousarray(block[start:start + slab_rows])
            mask = scratch[: slab.size]
            np.less_equal(slab, thresholds[start:start + slab_rows, None], out=mask.reshape(slab.shape))
            hits = flat_nonzero(mask)
            values.append(slab.reshape(-1)[hits])
            hits += start * num_cols
            positions.append(hits)
        if len(positions) == 1:
            return positions[0], values[0]
        return np.concatenate(positions), np.concatenate(values)


class TorchBackend:
    """Blocks are tensors on any device; only the candidates leave it."""

    def prepare(self, matrix: Any) -> Any:
        """The tensor, detached from any autograd graph."""
        return matrix.detach()

    def gather(self, block: Any, items: Items) -> np.ndarray:
        """Distances of the given cells, copied to the host."""
        import torch

        rows = torch.from_numpy(items.rows).to(block.device)
        cols = torch.from_numpy(items.cols).to(block.device)
        return _to_numpy(block[rows, cols])

    def candidates(self, block: Any, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat positions and values of the cells ``<=`` their row's threshold."""
        import torch

        limits = torch.from_numpy(thresholds).to(block.device)
        positions = torch.nonzero((block <= limits[:, None]).reshape(-1)).squeeze(1)
        return positions.cpu().numpy(), _to_numpy(block.reshape(-1)[positions])


def _to_numpy(values: Any) -> np.ndarray:
    """Host copy; half-precision values widen to float32 (exactly), which NumPy can hold."""
    import torch

    if values.dtype in (torch.float16, torch.bfloat16):
        values = values.float()
    return values.cpu().numpy()


def select_backend(matrix: Any) -> Backend:
    """NumPy for arrays and CPU tensors NumPy can view; torch otherwise (CUDA, bfloat16)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(matrix, torch.Tensor):
        if matrix.device.type != "cpu" or matrix.dtype == torch.bfloat16:
            return TorchBackend()
    return NumpyBackend()


def flat_nonzero(mask: np.ndarray) -> np.ndarray:
    """``np.flatnonzero`` of a 1-D bool array, about twice as fast on sparse masks.

    NumPy's own finds sparse ones one at a time with a branch per hit; here
    the mask is read as 8-byte words, the non-zero words are found first (the
    same trick, applied again while the words are still sparse) and only
    those words are expanded, where hits are dense enough for NumPy's
    branch-free loop.
    """
    whole = mask.size - mask.size % 8
    words = mask[:whole].view(np.uint64)
    busy = words != 0
    if busy.size >= 4096 and np.count_nonzero(busy) < busy.size // 10:
        busy_words = flat_nonzero(busy)
    else:
        busy_words = busy.nonzero()[0]
    hits = words[busy_words].view(np.bool_).nonzero()[0]
    positions = busy_words[hits >> 3]  # in place from here: this runs on every candidate
    positions <<= 3
    hits &= 7
    positions |= hits
    if whole < mask.size:
        positions = np.concatenate([positions, mask[whole:].nonzero()[0] + whole])
    return positions


# --------------------------------------------------------------------------
# Ranking


class RankedPositives(NamedTuple):
    """A block's positives in (row, distance, column) order with their ranks.

    ``first[i]:first[i + 1]`` are the positives of the i-th row that has any
    (``first`` ends with the number of positives).
    """

    rows: np.ndarray
    ranks: np.ndarray  # 0-based position among the row's valid gallery items
    first: np.ndarray


def rank_positives(backend: Backend, block: Any, positives: Items, junk: Items, num_gallery: int) -> RankedPositives:
    """Rank every positive of ``block`` among its row's valid gallery items.

    Args:
        backend: How to read ``block``.
        block: ``(rows, num_gallery)`` distances.
        positives: Same identity, other camera (non-empty).
        junk: Same identity, same camera: not part of the ranked list.
        num_gallery: Columns of the block.

    Returns:
        The positives sorted by (row, distance, column) with their ranks.

    Raises:
        ValueError: A positive's distance is NaN.
    """
    num_rows = int(block.shape[0])
    distances = backend.gather(block, positives)
    if distances.dtype.kind == "f" and np.isnan(distances).any():
        raise ValueError("distmat holds NaN at a true match: check the features for NaN")
    junk_distances = backend.gather(block, junk)
    codes, code_bits = order_codes([distances, junk_distances])
    keys = SortKeys(num_rows, code_bits, num_gallery)
    positive_keys = keys.make(positives.rows, codes[0], positives.cols)
    order = np.argsort(positive_keys)
    positive_keys = positive_keys[order]
    ranked = _Positives.of(positives.rows[order], positives.cols[order], distances[order])
    positions, values = backend.candidates(block, ranked.thresholds(num_rows))
    candidates = _Candidates.of(positions, values, num_rows, num_gallery)
    before = _items_before(candidates, ranked)
    junk_keys = np.sort(keys.make(junk.rows, codes[1], junk.cols))
    junk_before = np.searchsorted(junk_keys, positive_keys)
    junk_before -= np.searchsorted(junk_keys, keys.row_floor(ranked.rows))
    return RankedPositives(ranked.rows, before - junk_before, ranked.first)


def group_starts(sorted_rows: np.ndarray) -> np.ndarray:
    """Where each run of equal values starts in ``sorted_rows``, then its length."""
    change = np.flatnonzero(sorted_rows[1:] != sorted_rows[:-1]) + 1
    return np.concatenate(([0], change, [sorted_rows.size]))


@dataclass(frozen=True)
class _Positives:
    """Positives sorted by (row, distance, column), grouped by row."""

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    first: np.ndarray  # group boundaries, see RankedPositives
    row_of_group: np.ndarray

    @classmethod
    def of(cls, rows: np.ndarray, cols: np.ndarray, values: np.ndarray) -> "_Positives":
        first = group_starts(rows)
        return cls(rows, cols, values, first, rows[first[:-1]])

    def thresholds(self, num_rows: int) -> np.ndarray:
        """Per row the farthest positive's distance; NaN (matches nothing) for rows without one."""
        dtype = self.values.dtype if self.values.dtype.kind == "f" else np.dtype(np.float64)
        thresholds = np.full(num_rows, np.nan, dtype=dtype)
        thresholds[self.row_of_group] = self.values[self.first[1:] - 1]  # sorted: last is farthest
        return thresholds

    def in_groups(self, groups: np.ndarray) -> np.ndarray:
        """Indices of the positives of the given (ascending) groups."""
        starts, ends = self.first[groups], self.first[groups + 1]
        return _concatenated_ranges(starts, ends)


@dataclass(frozen=True)
class _Candidates:
    """The cells of a block at or below their row's threshold, in row-major order."""

    positions: np.ndarray
    values: np.ndarray
    bounds: np.ndarray  # row r's candidates are [bounds[r], bounds[r + 1])
    num_gallery: int

    @classmethod
    def of(cls, positions: np.ndarray, values: np.ndarray, num_rows: int, num_gallery: int) -> "_Candidates":
        row_starts = np.searchsorted(positions, np.arange(num_rows + 1, dtype=np.int64) * num_gallery)
        return cls(positions, values, row_starts, num_gallery)

    def of_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row, column and value of the candidates of the given (ascending) rows."""
        starts, ends = self.bounds[rows], self.bounds[rows + 1]
        index = _concatenated_ranges(starts, ends)
        cand_rows = np.repeat(rows, ends - starts)
        return cand_rows, self.positions[index] - cand_rows * self.num_gallery, self.values[index]


def _concatenated_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, e) for s, e in zip(starts, ends)])``, vectorised."""
    counts = ends - starts
    return np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(counts.sum())


def _items_before(candidates: _Candidates, positives: _Positives) -> np.ndarray:
    """Per positive, the candidates of its row before it: closer, or as close and earlier."""
    counts = np.diff(candidates.bounds)[positives.row_of_group]
    before = np.empty(positives.rows.size, dtype=np.int64)
    short = counts <= _SHORT_ROW
    if short.any():
        _exact_before(candidates, positives, np.flatnonzero(short), before)
    if not short.all():
        _sorted_before(candidates, positives, np.flatnonzero(~short), before)
    return before


def _exact_before(candidates: _Candidates, positives: _Positives, groups: np.ndarray, before: np.ndarray) -> None:
    """``before`` for the positives of ``groups``: one sort of exact (row, value, column) keys."""
    cand_rows, cand_cols, cand_values = candidates.of_rows(positives.row_of_group[groups])
    mine = positives.in_groups(groups)
    codes, code_bits = order_codes([cand_values, positives.values[mine]])
    keys = SortKeys(int(positives.rows[-1]) + 1, code_bits, candidates.num_gallery)
    sorted_keys = np.sort(keys.make(cand_rows, codes[0], cand_cols))
    positive_keys = keys.make(positives.rows[mine], codes[1], positives.cols[mine])
    before[mine] = np.searchsorted(sorted_keys, positive_keys) - np.searchsorted(
        sorted_keys, keys.row_floor(positives.rows[mine]))


def _sorted_before(candidates: _Candidates, positives: _Positives, groups: np.ndarray, before: np.ndarray) -> None:
    """``before`` for the positives of long rows (``groups``): a float sort per row.

    Counts the candidates strictly below each positive; rows where another
    candidate has exactly a positive's distance are redone with exact keys.
    """
    bounds, first = candidates.bounds, positives.first
    sorted_values = candidates.values.copy()
    targets = positives.values
    rows = positives.row_of_group[groups]
    starts, ends = bounds[rows].tolist(), bounds[rows + 1].tolist()
    for start, end, lo, hi in zip(starts, ends, first[groups].tolist(), first[groups + 1].tolist()):
        segment = sorted_values[start:end]
        segment.sort()
        before[lo:hi] = segment.searchsorted(targets[lo:hi])
    # The positive itself sits at `before`; a tie is an equal value right after it.
    mine = positives.in_groups(groups)
    next_slot = bounds[positives.rows[mine]] + before[mine] + 1
    inside = next_slot < bounds[positives.rows[mine] + 1]
    tied = np.zeros(mine.size, dtype=bool)
    tied[inside] = sorted_values[next_slot[inside]] == targets[mine[inside]]
    if tied.any():
        tied_rows = np.zeros(len(bounds) - 1, dtype=bool)
        tied_rows[positives.rows[mine[tied]]] = True
        _exact_before(candidates, positives, np.flatnonzero(tied_rows[positives.row_of_group]), before)


# --------------------------------------------------------------------------
# Exact sort keys


class SortKeys:
    """Packs (row, order code, gallery column) into one uint64 ordered like the tuple."""

    def __init__(self, num_rows: int, code_bits: int, num_gallery: int) -> None:
        col_bits = max(1, (num_gallery - 1).bit_length())
        if max(1, (num_rows - 1).bit_length()) + code_bits + col_bits > 64:
            raise ValueError(f"{num_rows} rows x {num_gallery} columns do not fit the 64-bit sort keys; "
                             "pass a smaller chunk_size")
        self.code_shift = np.uint64(col_bits)
        self.row_shift = np.uint64(col_bits + code_bits)

    def make(self, rows: np.ndarray, codes: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Keys of the given cells."""
        key = rows.astype(np.uint64) << self.row_shift
        key |= codes.astype(np.uint64) << self.code_shift
        key |= cols.astype(np.uint64)
        return key

    def row_floor(self, rows: np.ndarray) -> np.ndarray:
        """The smallest key a cell of each row can have."""
        return rows.astype(np.uint64) << self.row_shift


def max_rows_for_keys(num_gallery: int) -> int:
    """Most rows a block may have so that 32-bit codes and columns fit the keys."""
    return 1 << max(0, 64 - 32 - max(1, (num_gallery - 1).bit_length()))


def order_codes(parts: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Unsigned integer codes with the same order (and ties) as the values.

    float32 (and float16) values map to 32-bit codes straight from their
    bits; any other dtype gets dense ranks over all the values given.  NaN
    sorts after everything and ``-0.0`` ties with ``0.0``, as in a sort.

    Returns:
        The codes of each part and the number of bits they use.
    """
    if all(part.dtype in (np.float32, np.float16) for part in parts):
        return [_float32_codes(part.astype(np.float32, copy=False)) for part in parts], 32
    unique, inverse = np.unique(np.concatenate(parts), return_inverse=True, equal_nan=True)
    bounds = np.cumsum([0] + [part.size for part in parts])
    return [inverse[bounds[i]: bounds[i + 1]] for i in range(len(parts))], max(1, (len(unique) - 1).bit_length())


def _float32_codes(values: np.ndarray) -> np.ndarray:
    bits = (values + np.float32(0.0)).view(np.uint32)  # + 0.0 turns -0.0 into 0.0
    negative = bits >> np.uint32(31)
    # Non-negative floats: set the sign bit; negative ones: flip every bit.
    # The result grows with the float, as an unsigned integer.
    codes = bits ^ (np.uint32(0x80000000) | (negative * np.uint32(0x7FFFFFFF)))
    codes[np.isnan(values)] = np.uint32(0xFFFFFFFF)
    return codes
