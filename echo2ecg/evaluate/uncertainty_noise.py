"""Whether the probabilistic variant's uncertainty follows the noise the demo planted in
each recording (``results/tables/uncertainty_noise.csv``; the demo's generator alone
knows it: docs/demo.md).

For each probabilistic variant and cohort: Spearman's rank correlation between each test
ECG's uncertainty (mean σ²) and its planted white-noise level, with a patient-level
bootstrap CI (ranks recomputed in every resample).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from echo2ecg.evaluate.metrics import percentile_interval, resample_weights

NOISE_COLUMNS = ["model", "cohort", "n_test", "n_patients", "spearman", "ci_low", "ci_high"]


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan
    return float(spearmanr(x, y).statistic)


def noise_correlation(
    uncertainty: pd.DataFrame, noise: pd.DataFrame, n_resamples: int, seed: int
) -> tuple[float, float, float]:
    """Spearman ρ of ``uncertainty`` (ecg, patient, uncertainty) against ``noise`` (ecg,
    noise_mv) over the ECGs in both, with a patient-level percentile bootstrap CI →
    (ρ, ci_low, ci_high)."""
    frame = uncertainty.merge(noise, on="ecg")
    x, y = frame["uncertainty"].to_numpy(float), frame["noise_mv"].to_numpy(float)
    weights = resample_weights(len(frame), n_resamples, seed, frame["patient"].to_numpy())
    draws = [_spearman(np.repeat(x, w.astype(int)), np.repeat(y, w.astype(int))) for w in weights]
    return (_spearman(x, y), *percentile_interval(np.array(draws)))


def noise_table(
    uncertainties: dict[tuple[str, str], pd.DataFrame],
    noise: dict[str, pd.DataFrame],
    n_resamples: int,
    seed: int,
) -> pd.DataFrame:
    """Table uncertainty_noise (NOISE_COLUMNS): one row per (model, cohort).

    uncertainties: (model, cohort) → the cohort's test ECGs (ecg, patient, uncertainty);
    noise: cohort → its planted noise (ecg pseudonym, noise_mv)."""
    rows = []
    for (model, cohort), frame in uncertainties.items():
        known = frame[frame["ecg"].isin(set(noise[cohort]["ecg"]))]
        rho = noise_correlation(known, noise[cohort], n_resamples, seed)
        rows.append(
            {
                "model": model,
                "cohort": cohort,
                "n_test": len(known),
                "n_patients": known["patient"].nunique(),
                "spearman": rho[0],
                "ci_low": rho[1],
                "ci_high": rho[2],
            }
        )
    return pd.DataFrame(rows, columns=NOISE_COLUMNS)
