"""CMC / mAP / mINP under the Market-1501 protocol: hand-made cases, torchreid, stable-sort reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelzoo.evaluation import RankResult, compute_distance, evaluate_from_features, evaluate_rank, re_ranking
from modelzoo.evaluation import _ranking
from tests.evaluation.problems import Problem, realistic, stable_reference, torchreid_rank, with_ties


def one_query(distances, g_pids, g_camids, q_pid=1, q_camid=0) -> Problem:
    return Problem(np.array([distances], dtype=np.float32), np.array([q_pid]), np.array(g_pids),
                   np.array([q_camid]), np.array(g_camids))


# --------------------------------------------------------------------------
# Hand-computed cases


def test_hand_computed_query_with_junk_and_distractor():
    # Query pid 1, camera 0.  By distance: junk (pid 1, cam 0: removed), a
    # negative, a positive, a pid-0 distractor, another positive.  Ranked list
    # after junk removal: [neg, POS, distractor, POS]: hits at ranks 2 and 4.
    problem = one_query([0.1, 0.2, 0.3, 0.4, 0.5], g_pids=[1, 2, 1, 0, 1], g_camids=[0, 1, 1, 1, 2])
    result = evaluate_rank(problem.distmat, *problem.labels)
    assert result.cmc.tolist() == [0.0, 1.0, 1.0, 1.0]  # 4 valid gallery images: K = 4
    assert result.mAP == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert result.mINP == pytest.approx(2 / 4)  # 2 positives, hardest at rank 4
    assert (result.num_valid_queries, result.num_queries) == (1, 1)
    assert result.rank(2) == 1.0


def test_hand_computed_two_queries_average():
    # Query A (pid 1): positive first -> AP 1, INP 1.  Query B (pid 2): its
    # only positive is last of 3 -> AP 1/3, INP 1/3, first hit at rank 3.
    problem = Problem(
        np.array([[0.1, 0.5, 0.9], [0.1, 0.5, 0.9]], dtype=np.float32),
        q_pids=np.array([1, 2]), g_pids=np.array([1, 3, 2]),
        q_camids=np.array([0, 0]), g_camids=np.array([1, 1, 1]),
    )
    result = evaluate_rank(problem.distmat, *problem.labels, max_rank=10)
    assert result.cmc.tolist() == [0.5, 0.5, 1.0]
    assert result.mAP == pytest.approx((1 + 1 / 3) / 2)
    assert result.mINP == pytest.approx((1 + 1 / 3) / 2)


def test_tie_between_negative_and_positive_goes_to_the_earlier_gallery_image():
    negative_first = one_query([0.5, 0.5], g_pids=[2, 1], g_camids=[1, 1])
    positive_first = one_query([0.5, 0.5], g_pids=[1, 2], g_camids=[1, 1])
    assert evaluate_rank(negative_first.distmat, *negative_first.labels).mAP == pytest.approx(1 / 2)
    assert evaluate_rank(positive_first.distmat, *positive_first.labels).mAP == pytest.approx(1.0)


def test_junk_at_the_same_distance_does_not_count():
    # Junk (same pid, same camera) tied with the positive and earlier in the gallery.
    problem = one_query([0.5, 0.5, 0.7], g_pids=[1, 1, 3], g_camids=[0, 1, 1])
    result = evaluate_rank(problem.distmat, *problem.labels)
    assert result.mAP == pytest.approx(1.0)
    assert result.cmc.tolist() == [1.0, 1.0]  # junk removed: 2 images ranked


def test_queries_without_true_match_are_skipped():
    # Query 0's only same-id image is junk; query 1's id is absent; query 2 is fine.
    problem = Problem(
        np.array([[0.1, 0.2, 0.3]] * 3, dtype=np.float32),
        q_pids=np.array([1, 7, 2]), g_pids=np.array([1, 3, 2]),
        q_camids=np.array([0, 0, 0]), g_camids=np.array([0, 1, 1]),
    )
    result = evaluate_rank(problem.distmat, *problem.labels)
    assert (result.num_valid_queries, result.num_queries) == (1, 3)
    assert result.mAP == pytest.approx(1 / 3)
    assert result.rank(1) == 0.0 and result.rank(3) == 1.0


def test_no_valid_query_raises_a_clear_error():
    problem = one_query([0.1, 0.2], g_pids=[1, 2], g_camids=[0, 1])  # only junk matches
    with pytest.raises(ValueError, match="none of the 1 queries has a true match"):
        evaluate_rank(problem.distmat, *problem.labels)


def test_gallery_smaller_than_max_rank_shortens_the_cmc():
    problem = realistic(seed=3, num_query=8, num_gallery=12, num_ids=3, cameras=3, distractors=2)
    result = evaluate_rank(problem.distmat, *problem.labels, max_rank=50)
    reference = stable_reference(problem, max_rank=50)
    assert len(result.cmc) == len(reference.cmc) <= 12
    np.testing.assert_allclose(result.cmc, reference.cmc)
    assert result.cmc[-1] == 1.0
    with pytest.raises(ValueError, match="outside the computed CMC"):
        result.rank(len(result.cmc) + 1)


def test_pid_zero_distractors_are_plain_negatives():
    problem = one_query([0.1, 0.2, 0.3], g_pids=[0, 0, 1], g_camids=[1, 1, 1])
    assert evaluate_rank(problem.distmat, *problem.labels).mAP == pytest.approx(1 / 3)


# --------------------------------------------------------------------------
# Against torchreid and a stable-sort reference


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("short_row", [0, 10**9])
def test_equals_torchreid_python_evaluator_without_ties(seed, dtype, short_row, monkeypatch):
    monkeypatch.setattr(_ranking, "_SHORT_ROW", short_row)
    problem = realistic(seed, dtype=dtype)
    cmc, mAP = torchreid_rank().eval_market1501(problem.distmat, *problem.labels, 50)
    result = evaluate_rank(problem.distmat, *problem.labels)
    assert len(result.cmc) == len(cmc)
    assert np.abs(result.cmc - cmc).max() <= 1e-6
    assert abs(result.mAP - mAP) <= 1e-9
    assert result.mINP == pytest.approx(stable_reference(problem).mINP, abs=1e-12)


@pytest.mark.parametrize("short_row", [0, 4, 10**9])  # every row by exact keys, mixed, every row by float sort
@pytest.mark.parametrize("seed", range(24))
def test_ties_follow_stable_sort_semantics(seed, short_row, monkeypatch):
    monkeypatch.setattr(_ranking, "_SHORT_ROW", short_row)
    problem = with_ties(seed, dtype=[np.float32, np.float64, np.int64, np.float16][seed % 4])
    try:
        expected = stable_reference(problem, max_rank=20)
    except ValueError:
        with pytest.raises(ValueError):
            evaluate_rank(problem.distmat, *problem.labels, max_rank=20)
        return
    result = evaluate_rank(problem.distmat, *problem.labels, max_rank=20, chunk_size=1 + seed % 5)
    np.testing.assert_allclose(result.cmc, expected.cmc, atol=1e-12)
    assert result.mAP == pytest.approx(expected.mAP, abs=1e-12)
    assert result.mINP == pytest.approx(expected.mINP, abs=1e-12)
    assert result.num_valid_queries == expected.num_valid


@pytest.mark.parametrize("num_threads", [1, 3])
def test_chunk_sizes_give_identical_results(num_threads):
    problem = realistic(seed=11)
    results = [evaluate_rank(problem.distmat, *problem.labels, chunk_size=size, num_threads=num_threads)
               for size in (1, 7, 50, None)]
    results.append(evaluate_rank(problem.distmat, *problem.labels, chunk_size=7, num_threads=1))
    for other in results[1:]:
        assert np.array_equal(other.cmc, results[0].cmc)
        assert (other.mAP, other.mINP, other.num_valid_queries) == (results[0].mAP, results[0].mINP,
                                                                     results[0].num_valid_queries)


def test_tensor_and_numpy_inputs_agree():
    problem = realistic(seed=5)
    expected = evaluate_rank(problem.distmat, *problem.labels)
    as_tensors = [torch.from_numpy(np.asarray(x)) for x in (problem.distmat, *problem.labels)]
    result = evaluate_rank(*as_tensors)
    assert np.array_equal(result.cmc, expected.cmc) and result.mAP == expected.mAP


def test_torch_backend_equals_numpy_backend(monkeypatch):
    # The backend a CUDA tensor gets, exercised on the CPU.
    problem = realistic(seed=6)
    expected = evaluate_rank(problem.distmat, *problem.labels, chunk_size=9)
    monkeypatch.setattr(_ranking, "select_backend", lambda matrix: _ranking.TorchBackend())
    result = evaluate_rank(torch.from_numpy(problem.distmat), *problem.labels, chunk_size=9)
    assert np.array_equal(result.cmc, expected.cmc) and result.mAP == expected.mAP
    assert result.mINP == expected.mINP


def test_bfloat16_tensor_uses_the_torch_backend():
    problem = with_ties(seed=4)  # small integers: exact in bfloat16
    expected = evaluate_rank(problem.distmat, *problem.labels)
    result = evaluate_rank(torch.from_numpy(problem.distmat).bfloat16(), *problem.labels)
    assert np.array_equal(result.cmc, expected.cmc) and result.mAP == expected.mAP


@pytest.mark.cuda
def test_cuda_tensor_is_ranked_on_its_device():
    problem = realistic(seed=7)
    expected = evaluate_rank(problem.distmat, *problem.labels)
    result = evaluate_rank(torch.from_numpy(problem.distmat).cuda(), *problem.labels)
    assert np.array_equal(result.cmc, expected.cmc) and result.mAP == expected.mAP


def test_memory_mapped_matrix(tmp_path):
    problem = realistic(seed=8)
    path = tmp_path / "distmat.npy"
    np.save(path, problem.distmat)
    result = evaluate_rank(np.load(path, mmap_mode="r"), *problem.labels)
    assert result.mAP == evaluate_rank(problem.distmat, *problem.labels).mAP


# --------------------------------------------------------------------------
# From features


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("chunk_size", [1, 13, None])
def test_evaluate_from_features_equals_distance_then_rank(metric, chunk_size):
    rng = np.random.default_rng(0)
    pids = rng.integers(0, 30, 260)
    centres = rng.standard_normal((30, 16)).astype(np.float32)
    features = centres[pids] + 0.8 * rng.standard_normal((260, 16)).astype(np.float32)
    cams = rng.integers(0, 4, 260)
    qf, gf = torch.from_numpy(features[:60]), torch.from_numpy(features[60:])
    labels = (pids[:60], pids[60:], cams[:60], cams[60:])
    expected = evaluate_rank(compute_distance(qf, gf, metric), *labels)
    result = evaluate_from_features(qf, gf, *labels, metric=metric, chunk_size=chunk_size)
    assert np.array_equal(result.cmc, expected.cmc)
    assert result.mAP == pytest.approx(expected.mAP, abs=1e-12)
    assert result.mINP == pytest.approx(expected.mINP, abs=1e-12)
    from_numpy = evaluate_from_features(features[:60], features[60:], *labels, metric=metric)
    assert from_numpy.mAP == pytest.approx(expected.mAP, abs=1e-12)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_evaluate_from_features_ranks_each_distance_product_in_blocks(metric, monkeypatch):
    from modelzoo.evaluation import distance, rank

    rng = np.random.default_rng(3)
    pids = rng.integers(0, 25, 250)
    features = (rng.standard_normal((25, 8))[pids] + 0.9 * rng.standard_normal((250, 8))).astype(np.float32)
    cams = rng.integers(0, 3, 250)
    labels = (pids[:50], pids[50:], cams[:50], cams[50:])
    expected = evaluate_rank(compute_distance(features[:50], features[50:], metric), *labels)
    monkeypatch.setattr(rank, "_PRODUCT_ELEMENTS", 200 * 7)  # products of 7 query rows (the last one of 1)
    monkeypatch.setattr(rank, "_BLOCK_ELEMENTS", 200 * 3)  # each ranked 3 rows at a time
    monkeypatch.setattr(distance, "_NORM_ROWS", 16)  # gallery norms in several passes
    for num_threads in (1, 3):
        result = evaluate_from_features(features[:50], features[50:], *labels, metric=metric,
                                        num_threads=num_threads)
        assert np.array_equal(result.cmc, expected.cmc)
        assert result.mAP == expected.mAP and result.mINP == expected.mINP
        assert (result.num_valid_queries, result.num_queries) == (expected.num_valid_queries, 50)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("k1, k2, lambda_value", [(20, 6, 0.3), (5, 2, 0.6)])
def test_evaluate_from_features_reranked_equals_re_ranking_then_rank(metric, k1, k2, lambda_value):
    rng = np.random.default_rng(5)
    pids = rng.integers(0, 30, 260)
    features = (rng.standard_normal((30, 16))[pids] + 0.8 * rng.standard_normal((260, 16))).astype(np.float32)
    cams = rng.integers(0, 4, 260)
    qf, gf = torch.from_numpy(features[:60]), torch.from_numpy(features[60:])
    labels = (pids[:60], pids[60:], cams[:60], cams[60:])
    reranked = re_ranking(compute_distance(qf, gf, metric), compute_distance(qf, qf, metric),
                          compute_distance(gf, gf, metric), k1, k2, lambda_value)
    expected = evaluate_rank(reranked, *labels)
    plain = evaluate_from_features(qf, gf, *labels, metric=metric)
    result = evaluate_from_features(qf, gf, *labels, metric=metric, chunk_size=7, rerank=True, k1=k1, k2=k2,
                                    lambda_value=lambda_value)
    assert np.array_equal(result.cmc, expected.cmc)
    assert result.mAP == expected.mAP and result.mINP == expected.mINP
    assert result.mAP != plain.mAP  # re-ranking did change the ranking


def test_evaluate_from_features_rejects_bad_input():
    features = np.zeros((4, 8), dtype=np.float32)
    labels = (np.arange(4), np.arange(4), np.zeros(4), np.ones(4))
    with pytest.raises(ValueError, match="unknown distance metric"):
        evaluate_from_features(features, features, *labels, metric="manhattan")
    with pytest.raises(ValueError, match="dimension"):
        evaluate_from_features(features, np.zeros((4, 9), dtype=np.float32), *labels)


# --------------------------------------------------------------------------
# Input checks and helpers


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: p._replace(distmat=p.distmat[0]), "2-D"),
        (lambda p: p._replace(distmat=p.distmat[:, :0]), "gallery is empty"),
        (lambda p: p._replace(q_pids=p.q_pids[:-1]), "q_pids must be a 1-D array"),
        (lambda p: p._replace(g_camids=p.g_camids[:, None]), "g_camids must be a 1-D array"),
    ],
)
def test_bad_shapes_raise_value_error(change, message):
    problem = change(realistic(seed=1, num_query=5, num_gallery=20, num_ids=4, distractors=2))
    with pytest.raises(ValueError, match=message):
        evaluate_rank(problem.distmat, *problem.labels)


@pytest.mark.parametrize("keywords, message", [
    ({"max_rank": 0}, "max_rank"), ({"max_rank": 2.5}, "max_rank"), ({"chunk_size": 0}, "chunk_size"),
])
def test_bad_parameters_raise_value_error(keywords, message):
    problem = realistic(seed=1, num_query=5, num_gallery=20, num_ids=4, distractors=2)
    with pytest.raises(ValueError, match=message):
        evaluate_rank(problem.distmat, *problem.labels, **keywords)


def test_nan_at_a_true_match_is_an_error():
    problem = one_query([np.nan, 0.2], g_pids=[1, 2], g_camids=[1, 1])
    with pytest.raises(ValueError, match="NaN"):
        evaluate_rank(problem.distmat, *problem.labels)


def test_an_error_in_one_of_several_threads_reaches_the_caller():
    problem = realistic(seed=4)
    distmat = problem.distmat.copy()
    positive = np.flatnonzero((problem.g_pids == problem.q_pids[-1]) & (problem.g_camids != problem.q_camids[-1]))
    distmat[-1, positive[0]] = np.nan  # in the last block only
    with pytest.raises(ValueError, match="NaN"):
        evaluate_rank(distmat, *problem.labels, chunk_size=2, num_threads=4)


@pytest.mark.parametrize("num_threads", [0, -1, 1.5, True])
def test_bad_thread_counts_are_refused(num_threads):
    problem = realistic(seed=1, num_query=5, num_gallery=20, num_ids=4, distractors=2)
    with pytest.raises(ValueError, match="num_threads"):
        evaluate_rank(problem.distmat, *problem.labels, num_threads=num_threads)
    with pytest.raises(ValueError, match="num_threads"):
        evaluate_from_features(np.zeros((5, 4), np.float32), np.zeros((20, 4), np.float32), *problem.labels,
                               num_threads=num_threads)


def test_result_is_a_frozen_record_with_a_json_view():
    problem = realistic(seed=2)
    result = evaluate_rank(problem.distmat, *problem.labels, max_rank=5)
    assert isinstance(result, RankResult)
    with pytest.raises(AttributeError):
        result.mAP = 1.0  # type: ignore[misc]
    assert not result.cmc.flags.writeable
    as_dict = result.as_dict()
    assert as_dict["cmc"] == pytest.approx(result.cmc.tolist()) and len(as_dict["cmc"]) == 5
    assert as_dict["mAP"] == result.mAP


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 4095, 40_001, 100_003])
@pytest.mark.parametrize("density", [0.0, 0.001, 0.05, 0.5, 1.0])
def test_flat_nonzero_matches_numpy(size, density):
    mask = np.random.default_rng(size).random(size) < density
    assert np.array_equal(_ranking.flat_nonzero(mask), np.flatnonzero(mask))
