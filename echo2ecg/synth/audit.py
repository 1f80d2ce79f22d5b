"""What a frozen echo encoder sees of the synthetic world: the variance of its view
embeddings split into phenotype, patient and clip nuisance, and ridge probes.

For one view type, render P patients R ≥ 2 times each (new probe placement, speckle and
cardiac phase every time) and embed every clip: ``embeddings`` (P, R, D). Then

- **nuisance**: the variance between renders of one patient (what changes from clip to clip);
- **phenotype**: the part of the variance between patients that a linear map of the
  phenotypes explains, as an adjusted R² (chance fits of K predictors to P patients count
  nothing on average; a cross-validated R² would be biased low on a few dozen patients);
- **patient**: the rest of the between-patient variance (the anatomy the phenotype does
  not set).

The three are shares of their sum. A ridge probe per phenotype (trained on other
patients' clips) says how much of each phenotype a linear read-out recovers (Pearson r).
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LinearRegression, RidgeCV
from sklearn.model_selection import GroupKFold, cross_val_predict


def variance_shares(embeddings: np.ndarray, phenotypes: np.ndarray) -> dict[str, float]:
    """Shares of phenotype, patient and nuisance variance in one view type's embeddings.

    embeddings: (P, R, D), P patients rendered R ≥ 2 times; phenotypes: (P, K), e.g.
    LVEDV, LVESV, LVEF, SHD. Returns {"phenotype", "patient", "nuisance"} summing to 1.
    """
    n_patients, n_renders, _ = embeddings.shape
    if n_renders < 2:
        raise ValueError("the nuisance share needs at least two renders per patient")
    means = embeddings.mean(axis=1)  # (P, D)
    within = ((embeddings - means[:, None]) ** 2).sum(axis=2).sum(axis=1) / (n_renders - 1)
    nuisance = float(within.mean())  # per-clip variance, summed over dimensions
    between = float(((means - means.mean(axis=0)) ** 2).sum(axis=1).sum() / (n_patients - 1))
    patient_level = max(0.0, between - nuisance / n_renders)
    standardised = (phenotypes - phenotypes.mean(axis=0)) / phenotypes.std(axis=0).clip(1e-12)
    fitted = LinearRegression().fit(standardised, means).predict(standardised)
    n_predictors = standardised.shape[1]
    if n_patients <= n_predictors + 1:
        raise ValueError(f"the phenotype share needs more than {n_predictors + 1} patients")
    residual = float(((means - fitted) ** 2).sum()) / (n_patients - n_predictors - 1)
    explained = float(np.clip(1.0 - residual / between, 0.0, 1.0)) if between > 0 else 0.0
    phenotype = min(patient_level, explained * between)
    parts = {"phenotype": phenotype, "patient": patient_level - phenotype, "nuisance": nuisance}
    total = sum(parts.values())
    return {name: value / total for name, value in parts.items()}


def ridge_probe_r(embeddings: np.ndarray, targets: np.ndarray, folds: int = 5) -> np.ndarray:
    """Cross-validated ridge read-out of each target from single clips, folds by patient.

    embeddings (P, R, D); targets (P, K). Returns (K,) Pearson r between held-out
    predictions and the truth (NaN for a constant target).
    """
    n_patients, n_renders, dim = embeddings.shape
    x = embeddings.reshape(-1, dim)
    groups = np.repeat(np.arange(n_patients), n_renders)
    out = []
    for target in np.asarray(targets, dtype=float).T:
        y = np.repeat(target, n_renders)
        if np.ptp(y) == 0:
            out.append(np.nan)
            continue
        predicted = cross_val_predict(
            RidgeCV(alphas=np.logspace(-2, 5, 15)),
            x,
            y,
            groups=groups,
            cv=GroupKFold(min(folds, n_patients)),
        )
        out.append(float(np.corrcoef(predicted, y)[0, 1]))
    return np.array(out)
