"""Whether the probabilistic variant's uncertainty tells good predictions from bad ones
(``results/tables/uncertainty.csv``; EchoingECG's analysis, docs/variants.md).

For each probabilistic variant and cohort, the LVEF kNN's test ECGs are split at the
median of their uncertainty (each ECG's mean σ²; low: at most the median). In each half:
the 3-class LVEF AUROC and the balanced accuracy of calling an ECG reduced (LVEF ≤ 40 %,
the kNN's most likely class), each with a patient-level bootstrap CI.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from echo2ecg.evaluate.downstream import auroc_summary
from echo2ecg.evaluate.metrics import percentile_interval, resample_weights

UNCERTAINTY_COLUMNS = [
    "model",
    "cohort",
    "half",
    "n_test",
    "n_patients",
    "uncertainty_low",
    "uncertainty_high",
    "auroc",
    "auroc_ci_low",
    "auroc_ci_high",
    "balanced_accuracy",
    "balanced_accuracy_ci_low",
    "balanced_accuracy_ci_high",
]
REDUCED = 0  # the LVEF class index of "reduced" (metrics.lvef_class)


def balanced_accuracy(
    predicted: np.ndarray, actual: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Balanced accuracy of binary calls under row weightings: predicted, actual (N,)
    bool; weights (B, N) or None → (B,) (or (1,)), the mean of sensitivity and
    specificity; NaN where a weighting has no positive or no negative row."""
    weights = np.ones((1, len(actual))) if weights is None else weights
    positives, negatives = weights @ actual, weights @ ~actual
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivity = (weights @ (predicted & actual)) / positives
        specificity = (weights @ (~predicted & ~actual)) / negatives
    return np.where((positives > 0) & (negatives > 0), (sensitivity + specificity) / 2, np.nan)


def _half_row(frame: pd.DataFrame, n_resamples: int, seed: int) -> dict:
    auroc, auroc_low, auroc_high = auroc_summary(frame, 3, n_resamples, seed)
    # the reduced call: the kNN's most likely class, ties to the lower class index
    predicted = frame[["score_0", "score_1", "score_2"]].to_numpy(float).argmax(axis=1) == REDUCED
    actual = frame["label"].to_numpy(int) == REDUCED
    weights = resample_weights(len(frame), n_resamples, seed, frame["patient"].to_numpy())
    accuracy_low, accuracy_high = percentile_interval(balanced_accuracy(predicted, actual, weights))
    return {
        "n_test": len(frame),
        "n_patients": frame["patient"].nunique(),
        "uncertainty_low": frame["uncertainty"].min(),
        "uncertainty_high": frame["uncertainty"].max(),
        "auroc": auroc,
        "auroc_ci_low": auroc_low,
        "auroc_ci_high": auroc_high,
        "balanced_accuracy": balanced_accuracy(predicted, actual)[0],
        "balanced_accuracy_ci_low": accuracy_low,
        "balanced_accuracy_ci_high": accuracy_high,
    }


def uncertainty_table(
    lvef_scores: pd.DataFrame,
    uncertainties: dict[tuple[str, str], pd.DataFrame],
    n_resamples: int,
    seed: int,
) -> pd.DataFrame:
    """Table uncertainty (UNCERTAINTY_COLUMNS), two rows (low, high) per (model, cohort).

    lvef_scores: the LVEF evidence (model, cohort, ecg, patient, label, score_0..2);
    uncertainties: (model, cohort) → a frame of ecg and uncertainty (the feature file's
    ``ecg_uncertainty``), for the probabilistic variants. Raises ValueError naming the
    count of test ECGs without an uncertainty.
    """
    rows = []
    for (model, cohort), values in uncertainties.items():
        scored = lvef_scores[(lvef_scores["model"] == model) & (lvef_scores["cohort"] == cohort)]
        frame = scored.merge(values[["ecg", "uncertainty"]], on="ecg", how="left")
        missing = int(frame["uncertainty"].isna().sum())
        if missing:
            raise ValueError(f"{model}, cohort {cohort}: {missing} test ECGs have no uncertainty")
        if frame.empty:
            continue
        low = frame["uncertainty"] <= frame["uncertainty"].median()
        for half, part in (("low", frame[low]), ("high", frame[~low])):
            if len(part):
                rows.append(
                    {"model": model, "cohort": cohort, "half": half}
                    | _half_row(part.reset_index(drop=True), n_resamples, seed)
                )
    return pd.DataFrame(rows, columns=UNCERTAINTY_COLUMNS)
