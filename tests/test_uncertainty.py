"""uncertainty.csv: LVEF in the low- and high-uncertainty halves of the test ECGs."""

import numpy as np
import pandas as pd
import pytest

from echo2ecg.evaluate.uncertainty import UNCERTAINTY_COLUMNS, balanced_accuracy, uncertainty_table
from echo2ecg.evaluate.uncertainty_noise import NOISE_COLUMNS, noise_correlation, noise_table


def test_balanced_accuracy_by_hand_and_under_weights():
    predicted = np.array([True, True, False, False, False])
    actual = np.array([True, False, True, False, False])
    # sensitivity 1/2, specificity 2/3
    assert balanced_accuracy(predicted, actual)[0] == pytest.approx((1 / 2 + 2 / 3) / 2)
    weights = np.array([[2, 0, 0, 1, 1], [0, 1, 1, 1, 1]], float)
    # row 0: sensitivity 1, specificity 1; row 1: sensitivity 0, specificity 2/3
    assert balanced_accuracy(predicted, actual, weights) == pytest.approx([1.0, 1 / 3])
    assert np.isnan(balanced_accuracy(predicted, actual, np.array([[0, 1, 0, 1, 1.0]]))[0])


def scores_frame(n_patients=60, seed=0):
    """Two ECGs per patient; the first half of the patients scored right, the rest at
    random, and the well-scored ones given the lower uncertainty."""
    rng = np.random.default_rng(seed)
    patients = np.repeat([f"p{i}" for i in range(n_patients)], 2)
    labels = np.tile([0, 1, 2], len(patients) // 3 + 1)[: len(patients)]
    good = np.arange(len(patients)) < len(patients) // 2
    scores = np.where(good[:, None], np.eye(3)[labels], rng.random((len(patients), 3)))
    ecgs = [f"e{i}" for i in range(len(patients))]
    frame = pd.DataFrame(
        {
            "model": "probabilistic",
            "cohort": "internal",
            "ecg": ecgs,
            "patient": patients,
            "label": labels,
        }
    )
    for c in range(3):
        frame[f"score_{c}"] = scores[:, c]
    uncertainty = pd.DataFrame(
        {"ecg": ecgs, "uncertainty": np.where(good, 0.1, 0.9) + rng.random(len(ecgs)) * 0.01}
    )
    return frame, uncertainty


def test_the_low_half_holds_the_reliable_ecgs_and_scores_higher():
    scores, uncertainty = scores_frame()
    table = uncertainty_table(scores, {("probabilistic", "internal"): uncertainty}, 200, 0)
    assert list(table.columns) == UNCERTAINTY_COLUMNS
    low, high = table.set_index("half").loc["low"], table.set_index("half").loc["high"]
    assert low["n_test"] == high["n_test"] == 60 and low["n_patients"] == 30
    assert low["uncertainty_high"] < high["uncertainty_low"]
    assert low["auroc"] == pytest.approx(1.0) and low["balanced_accuracy"] == pytest.approx(1.0)
    assert high["auroc"] < 0.8 and high["auroc_ci_high"] < low["auroc_ci_low"] + 1e-9
    assert (
        high["balanced_accuracy_ci_low"]
        <= high["balanced_accuracy"]
        <= high["balanced_accuracy_ci_high"]
    )


def test_test_ecgs_without_an_uncertainty_are_an_error_with_their_count():
    scores, uncertainty = scores_frame()
    with pytest.raises(ValueError, match="3 test ECGs have no uncertainty"):
        uncertainty_table(scores, {("probabilistic", "internal"): uncertainty.iloc[3:]}, 50, 0)


def test_noise_correlation_is_spearman_with_a_patient_bootstrap():
    rng = np.random.default_rng(0)
    noise = pd.DataFrame({"ecg": [f"e{i}" for i in range(80)], "noise_mv": rng.random(80)})
    patients = np.repeat([f"p{i}" for i in range(40)], 2)
    follows = pd.DataFrame(
        {"ecg": noise["ecg"], "patient": patients, "uncertainty": np.exp(noise["noise_mv"])}
    )
    rho, low, high = noise_correlation(follows, noise, 200, 0)
    assert rho == pytest.approx(1.0) and low == pytest.approx(1.0)  # any monotone map
    unrelated = follows.assign(uncertainty=rng.random(80))
    rho, low, high = noise_correlation(unrelated, noise, 200, 0)
    assert low < rho < high and low < 0 < high
    table = noise_table(
        {("probabilistic", "internal"): unrelated.iloc[:60]}, {"internal": noise}, 100, 0
    )
    assert list(table.columns) == NOISE_COLUMNS
    assert table[["n_test", "n_patients"]].iloc[0].tolist() == [60, 30]
