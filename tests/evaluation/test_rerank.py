"""k-reciprocal re-ranking equals torchreid's, in bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests import oracle
from modelzoo.errors import InsufficientMemoryError, ModelZooError
from modelzoo.evaluation import compute_distance, re_ranking, re_ranking_from_features


@pytest.fixture(scope="module")
def torchreid_re_ranking():
    return oracle.load("utils/rerank.py").re_ranking


def distances(num_query: int, num_gallery: int, seed: int, dtype=np.float32):
    """Query-gallery, query-query and gallery-gallery distances of random clustered features."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, max(2, (num_query + num_gallery) // 6), num_query + num_gallery)
    centres = rng.standard_normal((ids.max() + 1, 12)).astype(np.float32)
    features = torch.from_numpy(centres[ids] + 0.6 * rng.standard_normal((ids.size, 12)).astype(np.float32))
    full = compute_distance(features, features).clamp_min(0).numpy().astype(dtype)
    return full[:num_query, num_query:], full[:num_query, :num_query], full[num_query:, num_query:]


@pytest.mark.parametrize(
    "num_query, num_gallery, k1, k2, lambda_value, dtype",
    [
        (20, 80, 20, 6, 0.3, np.float32),  # the paper's parameters
        (30, 120, 5, 3, 0.5, np.float32),
        (12, 50, 20, 1, 0.3, np.float64),  # no query expansion; float64 inputs
        (15, 60, 7, 9, 0.0, np.float32),  # k2 > k1 + 1; Jaccard only
        (4, 9, 20, 6, 1.0, np.float32),  # fewer images than k1
    ],
)
def test_equals_torchreid(torchreid_re_ranking, num_query, num_gallery, k1, k2, lambda_value, dtype):
    q_g, q_q, g_g = distances(num_query, num_gallery, seed=num_query, dtype=dtype)
    expected = torchreid_re_ranking(q_g, q_q, g_g, k1, k2, lambda_value)
    result = re_ranking(q_g, q_q, g_g, k1, k2, lambda_value)
    assert result.dtype == np.float32 and result.shape == (num_query, num_gallery)
    np.testing.assert_array_equal(result, expected)


def test_accepts_tensors(torchreid_re_ranking):
    q_g, q_q, g_g = distances(10, 40, seed=1)
    result = re_ranking(torch.from_numpy(q_g), torch.from_numpy(q_q), torch.from_numpy(g_g))
    np.testing.assert_array_equal(result, torchreid_re_ranking(q_g, q_q, g_g))


def test_memory_guard_names_the_bytes_needed():
    q_g, q_q, g_g = distances(10, 40, seed=2)
    expected = r"needs about [\d,]+ bytes .* max_memory_bytes is 1,000"
    with pytest.raises(InsufficientMemoryError, match=expected) as error:
        re_ranking(q_g, q_q, g_g, max_memory_bytes=1000)
    assert isinstance(error.value, MemoryError) and isinstance(error.value, ModelZooError)


def test_memory_guard_refuses_msmt17_sized_problems_before_allocating():
    # An MSMT17-sized query x gallery result alone is 3.8 GB; nothing is allocated to find out.
    q_g = np.lib.stride_tricks.as_strided(np.zeros(1, dtype=np.float32), (11659, 82161), (0, 0))
    q_q = np.lib.stride_tricks.as_strided(np.zeros(1, dtype=np.float32), (11659, 11659), (0, 0))
    g_g = np.lib.stride_tricks.as_strided(np.zeros(1, dtype=np.float32), (82161, 82161), (0, 0))
    with pytest.raises(InsufficientMemoryError, match="GiB"):
        re_ranking(q_g, q_q, g_g, max_memory_bytes=2 << 30)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"q_q_dist": np.zeros((3, 3))}, "q_q_dist must be"),
        ({"g_g_dist": np.zeros((3, 3))}, "g_g_dist must be"),
        ({"k1": 0}, "k1 must be a positive integer"),
        ({"k2": 1.5}, "k2 must be a positive integer"),
        ({"lambda_value": 1.5}, "lambda_value"),
    ],
)
def test_bad_input_raises_value_error(change, message):
    q_g, q_q, g_g = distances(5, 12, seed=3)
    arguments = {"q_g_dist": q_g, "q_q_dist": q_q, "g_g_dist": g_g, **change}
    with pytest.raises(ValueError, match=message):
        re_ranking(**arguments)


# --------------------------------------------------------------------------
# From features


def features(num_query: int, num_gallery: int, dim: int, seed: int, dtype=np.float32):
    """Query and gallery features clustered by identity (several images per identity)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, max(2, (num_query + num_gallery) // 8), num_query + num_gallery)
    centres = rng.standard_normal((ids.max() + 1, dim))
    points = (centres[ids] + 0.7 * rng.standard_normal((ids.size, dim))).astype(dtype)
    return points[:num_query], points[num_query:]


def torchreid_on_features(torchreid_re_ranking, qf, gf, metric, *parameters):
    """torchreid's re_ranking on the three compute_distance matrices, as evaluate() used to build them."""
    q, g = torch.from_numpy(qf), torch.from_numpy(gf)
    matrices = [compute_distance(a, b, metric).numpy() for a, b in ((q, g), (q, q), (g, g))]
    return torchreid_re_ranking(*matrices, *parameters)


# Bit-equality assumes the BLAS gives a product's entry the same bits whatever
# block of rows and columns it is computed in, provided both sides have 32 or
# more (MKL, OpenBLAS); thinner products take other kernels (see rerank.py).
# Where this machine's BLAS is not block-invariant (another CPU's kernels), the
# results are compared to float rounding instead.
def blas_is_block_invariant() -> bool:
    a = torch.from_numpy(np.random.default_rng(0).standard_normal((96, 48), dtype=np.float32))
    b = torch.from_numpy(np.random.default_rng(1).standard_normal((160, 48), dtype=np.float32))
    whole = a @ b.T
    return bool(torch.equal(whole[32:64, 64:128], a[32:64] @ b[64:128].T))


BLOCK_INVARIANT = blas_is_block_invariant()


def assert_same_reranking(result: np.ndarray, expected: np.ndarray) -> None:
    if BLOCK_INVARIANT:
        np.testing.assert_array_equal(result, expected)
    else:
        np.testing.assert_allclose(result, expected, rtol=0, atol=1e-6)

@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize(
    "num_query, num_gallery, dim, k1, k2, lambda_value",
    [
        (40, 160, 16, 20, 6, 0.3),  # small, the paper's parameters
        (150, 650, 64, 20, 6, 0.3),  # medium
        (60, 240, 32, 7, 9, 0.0),  # k2 > k1 + 1; Jaccard only
        (36, 90, 8, 5, 1, 1.0),  # no query expansion; original distance only
    ],
)
def test_from_features_equals_torchreid_on_distance_matrices(torchreid_re_ranking, metric, num_query,
                                                             num_gallery, dim, k1, k2, lambda_value):
    qf, gf = features(num_query, num_gallery, dim, seed=num_query)
    expected = torchreid_on_features(torchreid_re_ranking, qf, gf, metric, k1, k2, lambda_value)
    result = re_ranking_from_features(qf, gf, k1, k2, lambda_value, metric=metric, as_matrix=True)
    assert result.dtype == np.float32 and result.shape == (num_query, num_gallery)
    assert_same_reranking(result, expected)


def test_from_features_of_a_tiny_problem_is_torchreids_to_float_rounding(torchreid_re_ranking):
    qf, gf = features(4, 9, 3, seed=5)  # fewer images than k1, and products too thin for exact bits
    expected = torchreid_on_features(torchreid_re_ranking, qf, gf, "euclidean", 20, 6, 0.3)
    np.testing.assert_allclose(re_ranking_from_features(qf, gf, as_matrix=True), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("duplicates, keep", [(1, True), (2, True), (1, False)])
def test_from_features_in_small_blocks_equals_the_matrices_path(metric, duplicates, keep, monkeypatch):
    from modelzoo.evaluation import rerank

    if duplicates > 1 and not BLOCK_INVARIANT:
        pytest.skip("ties broken by the last bit: exact only where this machine's BLAS is block-invariant")
    qf, gf = features(70, 290, 24, seed=7)
    if duplicates > 1:  # images repeated (in both sets): ties everywhere, at the neighbour cut too
        qf, gf = (np.repeat(f[: len(f) // duplicates + 1], duplicates, axis=0)[: len(f)] for f in (qf, gf))
    q, g = torch.from_numpy(qf), torch.from_numpy(gf)
    expected = re_ranking(compute_distance(q, g, metric), compute_distance(q, q, metric),
                          compute_distance(g, g, metric))
    monkeypatch.setattr(rerank, "_TILE_SIDE", 48)  # 7 tiles a side, the last one longer; most of them transposed
    monkeypatch.setattr(rerank, "_CHUNK_BYTES", 40_000)  # many result blocks, the last one short
    monkeypatch.setattr(rerank, "_KNOWN_WIDTH_FACTOR", 1)  # most expansion entries computed again, in products
    monkeypatch.setattr(rerank, "_PAIRS_PER_PRODUCT", 100)  # of a few rows each
    monkeypatch.setattr(rerank, "_PAIR_ROW_COST", 10)
    if not keep:  # the blend computes its own products instead of keeping the neighbour pass's
        monkeypatch.setattr(rerank._FeatureDistances, "reserve", lambda self, available: 0)
    reranked = re_ranking_from_features(qf, gf, metric=metric)
    starts, blocks = zip(*reranked)
    assert len(reranked) == len(blocks) > 5 and reranked.shape == (70, 290)
    assert list(starts) == list(np.cumsum([0] + [len(b) for b in blocks[:-1]]))
    assert_same_reranking(np.concatenate(blocks), expected)
    assert_same_reranking(re_ranking_from_features(qf, gf, metric=metric, as_matrix=True), expected)


def test_from_features_takes_tensors_arrays_and_float64():
    qf, gf = features(40, 100, 12, seed=8, dtype=np.float64)
    from_arrays = re_ranking_from_features(qf, gf, as_matrix=True)
    from_tensors = re_ranking_from_features(torch.from_numpy(qf), torch.from_numpy(gf), as_matrix=True)
    np.testing.assert_array_equal(from_tensors, from_arrays)
    q, g = torch.from_numpy(qf), torch.from_numpy(gf)
    expected = re_ranking(compute_distance(q, g), compute_distance(q, q), compute_distance(g, g))  # float64 in
    assert_same_reranking(from_arrays, expected)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_from_cuda_features_the_products_run_on_the_gpu(metric):
    qf, gf = features(60, 250, 32, seed=9)
    on_cpu = re_ranking_from_features(qf, gf, metric=metric, as_matrix=True)
    on_gpu = re_ranking_from_features(torch.from_numpy(qf).cuda(), torch.from_numpy(gf).cuda(), metric=metric,
                                      as_matrix=True)
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=0, atol=1e-5)  # cuBLAS sums in another order


def test_from_features_memory_guard_says_what_to_do():
    qf, gf = features(10, 40, 8, seed=10)
    with pytest.raises(InsufficientMemoryError, match=r"needs about [\d,]+ bytes .* raise max_memory_bytes") as error:
        re_ranking_from_features(qf, gf, max_memory_bytes=1000)
    assert "\n" not in str(error.value)


def test_from_features_at_msmt17_size_needs_the_result_only_when_asked(monkeypatch):
    from modelzoo.evaluation import rerank

    class Started(Exception):
        """The memory check passed and the work began."""

    def started(*args, **kwargs):
        raise Started

    # MSMT17-sized 512-d features that take no memory (every row the same).
    qf = np.lib.stride_tricks.as_strided(np.ones(512, dtype=np.float32), (11659, 512), (0, 4))
    gf = np.lib.stride_tricks.as_strided(np.ones(512, dtype=np.float32), (82161, 512), (0, 4))
    with pytest.raises(InsufficientMemoryError, match="GiB"):  # the 3.8 GB result alone is too much
        re_ranking_from_features(qf, gf, max_memory_bytes=2 << 30, as_matrix=True)
    monkeypatch.setattr(rerank._FeatureDistances, "nearest", started)
    with pytest.raises(Started):  # block by block it fits in 2 GiB
        re_ranking_from_features(qf, gf, max_memory_bytes=2 << 30)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"gallery_features": np.zeros((30, 5), np.float32)}, "dimension"),
        ({"query_features": np.zeros(8, np.float32)}, "2-D"),
        ({"query_features": np.zeros((0, 8), np.float32)}, "at least one query"),
        ({"metric": "manhattan"}, "unknown distance metric"),
        ({"gallery_features": np.full((30, 8), np.nan, np.float32)}, "NaN or infinite"),
        ({"k1": 0}, "k1 must be a positive integer"),
        ({"lambda_value": -0.1}, "lambda_value"),
    ],
)
def test_from_features_bad_input_raises_value_error(change, message):
    qf, gf = features(5, 30, 8, seed=11)
    arguments = {"query_features": qf, "gallery_features": gf, **change}
    with pytest.raises(ValueError, match=message):
        re_ranking_from_features(**arguments)


@pytest.mark.parametrize("width", [1, 5, 29, 40])
def test_nearest_columns_break_ties_by_column_like_a_stable_sort(width):
    from modelzoo.evaluation.rerank import _smallest

    rows = np.random.default_rng(width).integers(0, 6, (50, 40)).astype(np.float32)  # ties everywhere
    expected = np.argsort(rows, axis=1, kind="stable")[:, :width]
    np.testing.assert_array_equal(_smallest(torch.from_numpy(rows), width).numpy(), expected)


def test_running_nearest_of_tiles_in_any_order_equals_one_selection_over_whole_rows():
    from modelzoo.evaluation.rerank import _RunningNearest, _smallest

    rng = np.random.default_rng(12)
    matrix = torch.from_numpy(rng.integers(0, 9, (60, 90)).astype(np.float32))  # ties everywhere
    nearest = _RunningNearest(60, 7, torch.device("cpu"))
    tiles = [(r, c) for r in range(0, 60, 20) for c in range(0, 90, 30)]
    for index in rng.permutation(len(tiles)):
        r, c = tiles[index]
        if index % 2:
            nearest.add(matrix[r:r + 20, c:c + 30], r, c)
        else:  # the same values given as the transpose of a tile
            nearest.add(matrix[r:r + 20, c:c + 30].t().contiguous(), r, c, transposed=True)
    expected = _smallest(matrix, 7)
    assert torch.equal(nearest.columns, expected)
    assert torch.equal(nearest.values, matrix.gather(1, expected))
    assert torch.equal(nearest.largest, matrix.amax(dim=1))


def test_neighbours_where_the_scaling_rounds_two_distances_to_one_follow_a_stable_sort():
    from modelzoo.evaluation.rerank import _DistanceMatrices

    # Two adjacent float32 squares that the scale rounds to one D: by the squares
    # the higher-numbered columns come first, by D (then column) the lower ones.
    smaller = np.float32(3.99)
    larger, scale = np.nextafter(smaller, np.float32(4)), np.float32(7900000.5)
    assert np.float32(smaller / scale) == np.float32(larger / scale)
    rng = np.random.default_rng(13)
    x = rng.uniform(0.5, 0.9, (40, 40)) * np.sqrt(float(scale))
    x = (x + x.T) / 2  # float64: its squares in float32 are exactly the values chosen
    x[1:11, 0] = np.sqrt(float(larger))
    x[11:30, 0] = np.sqrt(float(smaller))
    x[35, 0], x[0, 0] = np.sqrt(float(scale)), 0.0
    x[0, :] = x[:, 0]
    squares = (x**2).astype(np.float32)
    expected = np.argsort((squares / squares.max(axis=0)).T, axis=1, kind="stable")  # torchreid's D, stably
    q_g, q_q, g_g = x[:15, 15:], x[:15, :15], x[15:, 15:]
    nearest = _DistanceMatrices(*(np.ascontiguousarray(m) for m in (q_g, q_q, g_g))).nearest(5, known=8)
    np.testing.assert_array_equal(nearest[0], [0, 1, 2, 3, 4])  # itself (0), then the lowest-numbered ties
    np.testing.assert_array_equal(nearest, expected[:, :5])
