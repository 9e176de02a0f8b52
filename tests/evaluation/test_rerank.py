"""k-reciprocal re-ranking equals torchreid's, in bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests import oracle
from modelzoo.errors import InsufficientMemoryError, ModelZooError
from modelzoo.evaluation import compute_distance, re_ranking


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
