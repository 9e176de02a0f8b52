"""Average query expansion equals a naive dense implementation of fast-reid's AQE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelzoo.evaluation import average_query_expansion, query_expansion


def naive_aqe(qf: np.ndarray, gf: np.ndarray, k: int, alpha: float, iterations: int):
    """fast-reid's AQE written out: the whole similarity matrix, then one image at a time, in float64."""
    features = np.concatenate([qf, gf]).astype(np.float64)
    for _ in range(iterations):
        normalised = features / np.linalg.norm(features, axis=1, keepdims=True)
        similarity = normalised @ normalised.T
        expanded = np.empty_like(features)
        for image in range(len(features)):
            top = np.argsort(-similarity[image])[:k]
            weights = similarity[image, top] ** alpha
            expanded[image] = np.mean(features[top] * weights[:, None], axis=0)
        features = expanded
    return features[: len(qf)], features[len(qf):]


def clustered(num_query: int, num_gallery: int, dim: int, seed: int):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 12, num_query + num_gallery)
    points = 3 * rng.standard_normal((12, dim))[ids] + rng.standard_normal((ids.size, dim))
    return points[:num_query].astype(np.float32), points[num_query:].astype(np.float32)


@pytest.mark.parametrize("k, alpha, iterations", [(5, 3.0, 1), (3, 1.0, 2), (8, 0.5, 1)])
def test_equals_a_naive_dense_implementation(k, alpha, iterations, monkeypatch):
    monkeypatch.setattr(query_expansion, "_BLOCK_ELEMENTS", 130 * 9)  # blocks of 9 rows, the last one short
    qf, gf = clustered(30, 100, 16, seed=k)
    query, gallery = average_query_expansion(qf, gf, k=k, alpha=alpha, iterations=iterations)
    expected_query, expected_gallery = naive_aqe(qf, gf, k, alpha, iterations)
    assert isinstance(query, np.ndarray) and query.dtype == np.float32 and query.shape == qf.shape
    np.testing.assert_allclose(query, expected_query, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gallery, expected_gallery, rtol=1e-5, atol=1e-5)
    assert not np.allclose(query, qf, atol=1e-2)  # the expansion did change the features


def test_k_of_one_only_rescales_by_the_self_similarity():
    qf, gf = clustered(5, 20, 8, seed=1)
    query, gallery = average_query_expansion(torch.from_numpy(qf), torch.from_numpy(gf), k=1)
    assert isinstance(query, torch.Tensor)
    torch.testing.assert_close(query, torch.from_numpy(qf), rtol=1e-6, atol=1e-6)  # similarity to itself: 1


def test_the_defaults_are_fast_reids():
    qf, gf = clustered(10, 40, 8, seed=2)
    query, _ = average_query_expansion(qf, gf)
    np.testing.assert_allclose(query, naive_aqe(qf, gf, 5, 3.0, 1)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"k": 0}, "k must be"),
        ({"k": 26}, r"in 1\.\.25"),
        ({"alpha": float("nan")}, "alpha must be a finite number"),
        ({"iterations": 0}, "iterations must be"),
        ({"gallery_features": np.zeros((20, 3), np.float32)}, "dimension"),
    ],
)
def test_bad_input_raises_value_error(change, message):
    qf, gf = clustered(5, 20, 8, seed=3)
    with pytest.raises(ValueError, match=message):
        average_query_expansion(**{"query_features": qf, "gallery_features": gf, **change})
