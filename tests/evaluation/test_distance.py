"""compute_distance equals torchreid's compute_distance_matrix, for tensors and NumPy arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests import oracle
from modelzoo.evaluation import compute_distance, distance
from modelzoo.evaluation.distance import GalleryDistances


@pytest.fixture(scope="module")
def torchreid_distance():
    return oracle.load("metrics/distance.py").compute_distance_matrix


@pytest.fixture
def features():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(23, 64, generator=generator), torch.randn(57, 64, generator=generator)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_equals_torchreid_bit_for_bit(torchreid_distance, features, metric):
    qf, gf = features
    expected = torchreid_distance(qf, gf, metric)
    result = compute_distance(qf, gf, metric)
    assert isinstance(result, torch.Tensor) and result.shape == (23, 57)
    assert torch.equal(result, expected)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_gallery_distances_by_query_blocks_equal_torchreid_bit_for_bit(torchreid_distance, features, metric,
                                                                        monkeypatch):
    monkeypatch.setattr(distance, "_NORM_ROWS", 5)  # the gallery's norms in several passes
    qf, gf = features
    distances_to_gallery = GalleryDistances(gf, metric)
    for start in range(0, 23, 4):  # the same object serves every block of queries
        block = qf[start:start + 4]
        assert torch.equal(distances_to_gallery(block), torchreid_distance(block, gf, metric))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_gallery_distances_written_into_columns_of_a_buffer_are_the_same(torchreid_distance, features, metric):
    qf, gf = features
    buffer = torch.full((23, 70), float("nan"))
    returned = GalleryDistances(gf, metric)(qf, out=buffer[:, 13:])  # rows of unit stride, not contiguous
    assert returned.data_ptr() == buffer[:, 13:].data_ptr()
    assert torch.equal(buffer[:, 13:], torchreid_distance(qf, gf, metric))
    assert torch.isnan(buffer[:, :13]).all()  # nothing written outside


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_gallery_distances_to_some_gallery_images_are_those_columns(features, metric):
    qf, gf = features
    distances = GalleryDistances(gf, metric)
    assert torch.equal(distances.columns(12, 50)(qf), distances(qf)[:, 12:50])


def test_euclidean_is_the_squared_distance(features):
    qf, gf = features
    np.testing.assert_allclose(compute_distance(qf, gf).numpy(), (torch.cdist(qf, gf) ** 2).numpy(),
                               rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_numpy_in_numpy_out(torchreid_distance, features, metric):
    qf, gf = features
    result = compute_distance(qf.numpy(), gf.numpy(), metric)
    assert isinstance(result, np.ndarray) and result.dtype == np.float32
    assert np.array_equal(result, torchreid_distance(qf, gf, metric).numpy())


def test_float64_numpy_stays_float64(features):
    qf, gf = features
    assert compute_distance(qf.double().numpy(), gf.double().numpy()).dtype == np.float64


def test_unknown_metric_names_the_accepted_ones(features):
    with pytest.raises(ValueError, match="'euclidean', 'cosine'"):
        compute_distance(*features, metric="hamming")


def test_mismatched_dimensions_are_a_clear_error():
    with pytest.raises(ValueError, match="dimension 8 but gallery features have 9"):
        compute_distance(torch.zeros(2, 8), torch.zeros(3, 9))


def test_features_must_be_two_dimensional():
    with pytest.raises(ValueError, match="qf must be a 2-D"):
        compute_distance(torch.zeros(8), torch.zeros(3, 8))
