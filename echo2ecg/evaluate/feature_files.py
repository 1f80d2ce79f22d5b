"""Features of a trained variant: what evaluation and users read.

A feature file (``.npz``) holds, for one variant and one cohort:
``ecg`` (N,) ECG pseudonyms, ``ecg_features`` (N, D) float32 — what kNN reads: the
encoder's embedding (mean patch token → LayerNorm; D = 192 for the paper's encoder) or the
joint-space projection (``kind``), first ``n_samples`` samples, no augmentation — and
``ecg_joint`` (N, 512) float32, the ECG projection into the joint space; ``study`` (S,)
study pseudonyms and ``study_joint`` (S, 512) float32, the aggregated-and-projected echo
studies (empty for cohorts without echo files). Probabilistic variants also hold
``ecg_uncertainty`` (N,) float32, each ECG's mean σ² (docs/variants.md).

Read and written with numpy alone, so that evaluation tables never load the training stack.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FEATURE_KINDS = ("encoder", "projection")  # what ``ecg_features`` holds


def save_features(features: dict[str, np.ndarray], path: str | Path) -> Path:
    """Write a feature file by rename (numpy adds no suffix to an open file handle)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as handle:
        np.savez(handle, **features)
    partial.replace(path)
    return path


def load_features(path: str | Path) -> dict[str, np.ndarray]:
    """A feature file as a dict of its arrays (the keys above)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
