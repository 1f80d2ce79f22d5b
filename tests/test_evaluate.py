import itertools

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from echo2ecg.evaluate.metrics import (
    balanced_subset,
    bootstrap_auroc,
    bootstrap_aurocs,
    bootstrap_mean,
    cosine_similarity,
    first_match_ranks,
    knn_scores,
    lvef_class,
    macro_auroc,
    paired_auroc_difference,
    phenotype_matches,
    random_retrieval_metrics,
    resample_weights,
    retrieval_metrics,
    stratified_subset,
)


def test_lvef_classes_follow_esc_2021():
    assert lvef_class(np.array([20, 40, 40.5, 41, 49, 49.9, 50, 70])).tolist() == [
        0,
        0,
        1,
        1,
        1,
        1,
        2,
        2,
    ]


@pytest.mark.parametrize("n_classes", [2, 3])
def test_macro_auroc_equals_scikit_learn_with_ties(n_classes):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, n_classes, 300)
    scores = rng.integers(0, 6, (300, n_classes)) / 5.0  # kNN-like probabilities: many ties
    scores[np.arange(300), labels] += rng.random(300) * 0.3
    scores /= (
        scores.sum(axis=1, keepdims=True) + 1e-12
    )  # scikit-learn's multiclass AUROC wants probabilities
    expected = (
        roc_auc_score(labels, scores[:, 1])
        if n_classes == 2
        else roc_auc_score(labels, scores, multi_class="ovr", average="macro")
    )
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


def test_knn_scores_refuse_more_neighbours_than_reference_rows():
    # a vote over the 3 rows there are is not the k-neighbour vote that was configured
    train_x, train_y = np.array([[0.0], [1.0], [2.0]]), np.array([0, 1, 1])
    with pytest.raises(ValueError, match="k = 5 neighbours asked of a reference set of 3 rows"):
        knn_scores(train_x, train_y, np.array([[0.5]]), k=5)
    np.testing.assert_allclose(
        knn_scores(train_x, train_y, np.array([[0.5]]), k=3), [[1 / 3, 2 / 3]]
    )


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
    assert len(tiny) == 5 and set(labels[tiny]) == {0, 1}  # never fewer than k, every class
    assert np.array_equal(tiny, stratified_subset(labels, 0.001, seed=3, minimum=5))
    assert not np.array_equal(subset, stratified_subset(labels, 0.1, seed=4, minimum=5))
    assert len(stratified_subset(labels, 1.0, seed=0, minimum=5)) == 1000


def test_retrieval_on_a_toy_ranking():
    similarity = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.3], [0.1, 0.2, 0.3]])
    matches = np.array(
        [
            [False, False, True],  # first match at rank 2
            [False, True, False],  # rank 1
            [False, False, False],
        ]
    )  # none: N + 1 = 4
    p1, mean_rank = retrieval_metrics(similarity, matches)
    assert p1 == pytest.approx(1 / 3)
    assert mean_rank == pytest.approx((2 + 1 + 4) / 3)


def test_random_retrieval_expectation_equals_brute_force_average():
    matches = np.array(
        [[True, False, False, True], [False, False, True, False], [False, False, False, False]]
    )
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


def test_patient_resamples_move_a_patients_ecgs_together():
    groups = np.array(["a", "a", "b", "c", "c", "c"])
    weights = resample_weights(6, 200, seed=3, groups=groups)
    assert weights.shape == (200, 6)
    assert (weights[:, 0] == weights[:, 1]).all() and (weights[:, 3] == weights[:, 5]).all()
    # three patients drawn per resample: per-patient counts add up to 3
    assert (weights[:, [0, 2, 3]].sum(axis=1) == 3).all()
    assert not (weights[:, 0] == weights[:, 2]).all()
    assert np.array_equal(resample_weights(6, 200, 3, groups), weights)  # seeded
    rows = resample_weights(6, 200, seed=3)  # no groups: every row its own patient
    assert (rows.sum(axis=1) == 6).all() and not (rows[:, 0] == rows[:, 1]).all()


def test_patient_bootstrap_equals_resampling_patients_by_hand():
    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(30), rng.integers(1, 4, 30))  # 1-3 ECGs per patient
    labels = rng.integers(0, 3, len(patients))
    scores = rng.random((len(patients), 3)) + np.eye(3)[labels] * 0.3
    scores /= scores.sum(axis=1, keepdims=True)  # probabilities, as scikit-learn wants
    fast = bootstrap_aurocs(scores, labels, n_resamples=40, seed=5, groups=patients)
    # by hand: draw 30 patients with replacement (the same draws), stack their ECGs
    draws = np.random.default_rng(5).integers(0, 30, size=(40, 30))
    for value, drawn in zip(fast, draws):
        rows = np.concatenate([np.flatnonzero(patients == p) for p in drawn])
        if len(np.unique(labels[rows])) < 3:
            assert np.isnan(value)
            continue
        expected = roc_auc_score(labels[rows], scores[rows], multi_class="ovr", average="macro")
        assert value == pytest.approx(expected, abs=1e-12)


def test_paired_difference_cancels_what_two_models_share():
    rng = np.random.default_rng(1)
    patients = np.repeat(np.arange(80), 3)
    labels = rng.integers(0, 3, len(patients))
    good = rng.random((len(labels), 3)) + np.eye(3)[labels] * 0.5
    same = paired_auroc_difference(good, good, labels, 200, 0, groups=patients)
    assert same == (0.0, 0.0, 0.0)
    worse = good + rng.random(good.shape) * 0.5  # the same model with noise added
    point, low, high = paired_auroc_difference(good, worse, labels, 300, 0, groups=patients)
    assert point == pytest.approx(macro_auroc(good, labels)[0] - macro_auroc(worse, labels)[0])
    assert 0 < low < point < high
    # paired: far narrower than resampling the two models independently
    unpaired = bootstrap_aurocs(good, labels, 300, 0, groups=patients) - bootstrap_aurocs(
        worse, labels, 300, 1, groups=patients
    )
    assert high - low < 0.5 * np.subtract(*np.percentile(unpaired, [97.5, 2.5]))


def test_bootstrap_mean_of_per_row_values_by_hand():
    values = np.array([1.0, 3.0, 5.0, 7.0])
    patients = np.array([0, 0, 1, 1])
    mean, low, high = bootstrap_mean(values, 500, seed=2, groups=patients)
    assert mean == 4.0
    # each resample is patient 0 twice (mean 2), patient 1 twice (6) or one of each (4)
    weights = resample_weights(4, 500, 2, patients)
    assert set(np.round(weights @ values / weights.sum(axis=1), 9)) <= {2.0, 4.0, 6.0}
    assert (low, high) == (2.0, 6.0)


def test_first_match_ranks_per_query():
    similarity = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.3], [0.1, 0.2, 0.3]])
    matches = np.array([[False, False, True], [False, True, False], [False, False, False]])
    top_hit, first = first_match_ranks(similarity, matches)
    assert top_hit.tolist() == [0.0, 1.0, 0.0] and first.tolist() == [2.0, 1.0, 4.0]
