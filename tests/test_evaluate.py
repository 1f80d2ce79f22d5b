import itertools

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from echo2ecg.evaluate import (balanced_subset, bootstrap_auroc, cosine_similarity, knn_scores,
                               lvef_class, macro_auroc, phenotype_matches, random_retrieval_metrics,
                               retrieval_metrics, stratified_subset)


def test_lvef_classes_follow_esc_2021():
    assert lvef_class(np.array([20, 40, 40.5, 41, 49, 49.9, 50, 70])).tolist() == [0, 0, 1, 1, 1, 1, 2, 2]


@pytest.mark.parametrize("n_classes", [2, 3])
def test_macro_auroc_equals_scikit_learn_with_ties(n_classes):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, n_classes, 300)
    scores = rng.integers(0, 6, (300, n_classes)) / 5.0  # kNN-like probabilities: many ties
    scores[np.arange(300), labels] += rng.random(300) * 0.3
    scores /= scores.sum(axis=1, keepdims=True) + 1e-12  # scikit-learn's multiclass AUROC wants probabilities
    expected = (roc_auc_score(labels, scores[:, 1]) if n_classes == 2 else
                roc_auc_score(labels, scores, multi_class="ovr", average="macro"))
    assert macro_auroc(scores, labels)[0] == pytest.approx(expected, abs=1e-12)


def test_weighted_auroc_equals_scikit_learn_on_the_resample():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 200)
    scores = rng.dirichlet(np.ones(3), 200)
    draw = rng.integers(0, 200, 200)
    counts = np.bincount(draw, minlength=200)[None].astype(float)
    expected = roc_auc_score(labels[draw], scores[draw], multi_class="ovr", average="macro")
    assert macro_auroc(scores, labels, counts)[0] == pytest.approx(expected, abs=1e-12)


def test_bootstrap_ci_bounds_the_estimate_and_is_reproducible():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 400)
    scores = rng.random((400, 3)) + np.eye(3)[labels] * 0.4
    point, low, high = bootstrap_auroc(scores, labels, n_resamples=300, seed=7)
    assert low < point < high and 0.5 < point < 1
    assert bootstrap_auroc(scores, labels, n_resamples=300, seed=7) == (point, low, high)
    assert bootstrap_auroc(scores, labels, n_resamples=300, seed=8)[1] != low


def test_knn_scores_use_five_neighbours_euclidean():
    train_x = np.array([[0.0], [0.1], [0.2], [0.3], [0.4], [10.0], [10.1]])
    train_y = np.array([0, 0, 0, 1, 1, 2, 2])
    scores = knn_scores(train_x, train_y, np.array([[0.05], [10.05]]), k=5)
    np.testing.assert_allclose(scores[0], [0.6, 0.4, 0.0])
    np.testing.assert_allclose(scores[1], [0.2, 0.4, 0.4])  # 10.0, 10.1, then 0.4, 0.3, 0.2


def test_balanced_subset_has_equal_classes():
    labels = np.array([0] * 50 + [1] * 10 + [2] * 30)
    subset = balanced_subset(labels, seed=0)
    assert np.bincount(labels[subset]).tolist() == [10, 10, 10]
    assert np.array_equal(subset, balanced_subset(labels, seed=0))


def test_stratified_subsets_keep_shares_and_minimum():
    labels = np.array([0] * 900 + [1] * 100)
    subset = stratified_subset(labels, 0.1, seed=3, minimum=5)
    assert np.bincount(labels[subset]).tolist() == [90, 10]
    tiny = stratified_subset(labels, 0.001, seed=3, minimum=5)
    assert len(tiny) == 5 and set(labels[tiny]) == {0, 1}       # never fewer than k, every class
    assert np.array_equal(tiny, stratified_subset(labels, 0.001, seed=3, minimum=5))
    assert not np.array_equal(subset, stratified_subset(labels, 0.1, seed=4, minimum=5))
    assert len(stratified_subset(labels, 1.0, seed=0, minimum=5)) == 1000


def test_retrieval_on_a_toy_ranking():
    similarity = np.array([[0.9, 0.1, 0.5],
                           [0.2, 0.8, 0.3],
                           [0.1, 0.2, 0.3]])
    matches = np.array([[False, False, True],    # first match at rank 2
                        [False, True, False],    # rank 1
                        [False, False, False]])  # none: N + 1 = 4
    p1, mean_rank = retrieval_metrics(similarity, matches)
    assert p1 == pytest.approx(1 / 3)
    assert mean_rank == pytest.approx((2 + 1 + 4) / 3)


def test_random_retrieval_expectation_equals_brute_force_average():
    matches = np.array([[True, False, False, True],
                        [False, False, True, False],
                        [False, False, False, False]])
    p1s, ranks = [], []
    for order in itertools.permutations(range(4)):
        similarity = np.tile(-np.argsort(order).astype(float), (3, 1))  # this exact ranking
        p1, mean_rank = retrieval_metrics(similarity, matches)
        p1s.append(p1)
        ranks.append(mean_rank)
    expected_p1, expected_rank = random_retrieval_metrics(matches)
    assert expected_p1 == pytest.approx(np.mean(p1s))
    assert expected_rank == pytest.approx(np.mean(ranks))


def test_matches_within_tolerance_and_cosine():
    matches = phenotype_matches(np.array([50.0]), np.array([44.0, 46.0, 55.0, 56.0]), 5.0)
    assert matches.tolist() == [[False, True, True, False]]
    sim = cosine_similarity(np.array([[1.0, 0.0]]), np.array([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]]))
    np.testing.assert_allclose(sim, [[1.0, 0.0, -1.0]])
