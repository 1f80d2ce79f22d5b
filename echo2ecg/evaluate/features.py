"""Features of a trained variant: what evaluation and users read.

A feature file (``.npz``) holds, for one variant and one cohort:
``ecg`` (N,) ECG pseudonyms, ``ecg_features`` (N, D) float32 — what kNN reads: the
encoder's embedding (mean patch token → LayerNorm; D = 192 for the paper's encoder) or the
joint-space projection (``kind``), first ``n_samples`` samples, no augmentation — and
``ecg_joint`` (N, 512) float32, the ECG projection into the joint space; ``study`` (S,) study pseudonyms and ``study_joint`` (S, 512) float32, the
aggregated-and-projected echo studies (empty for cohorts without echo files).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from echo2ecg.models import Echo2ECG
from echo2ecg.train.pretrain import build_model, paired_ecg_signals, study_view_embeddings
from echo2ecg.train.loop import embed_ecgs, embed_studies, project_ecgs


def load_variant(checkpoint_path: str | Path, device: str = "cpu") -> tuple[Echo2ECG, dict]:
    """A trained variant (eval mode) and its checkpoint dict, from ``best.pt``/``last.pt``."""
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    extra = checkpoint["extra"]
    model = build_model({**extra["ecg_encoder"], "weights": None}, extra["variant_spec"]["pooling"])
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval(), checkpoint


FEATURE_KINDS = ("encoder", "projection")


def cohort_features(model: Echo2ECG, n_samples: int, pairs: pd.DataFrame,
                    ecg_stores: dict[str, str], echo_ledger: pd.DataFrame | None,
                    embedding_stores: dict[str, str], max_views: int = 128,
                    device: str = "cpu", kind: str = "encoder") -> dict[str, np.ndarray]:
    """Feature arrays (see module docstring) for every paired ECG and study of a cohort.

    n_samples: ECG samples the features read (the first ones). kind: what
    ``ecg_features`` holds: ``encoder``, the encoder's embedding (the paper's text), or
    ``projection``, the joint-space projection (what the reference code's downstream
    configs load).
    """
    if kind not in FEATURE_KINDS:
        raise ValueError(f"kind must be one of {FEATURE_KINDS}, got {kind!r}")
    ecg_ids, signals = paired_ecg_signals(pairs, ecg_stores)
    joint = project_ecgs(model, signals, n_samples=n_samples, device=device)
    embedded = (embed_ecgs(model, signals, n_samples=n_samples, device=device)
                if kind == "encoder" else joint)
    out = {"ecg": ecg_ids.to_numpy(str), "ecg_features": embedded, "ecg_joint": joint}
    studies = np.array([], str)
    study_joint = np.empty((0, model.echo_proj.out_features), np.float32)
    if echo_ledger is not None and embedding_stores:
        with_views = echo_ledger.loc[echo_ledger["status"] == "ok", "study"]
        studies = np.array(sorted(set(pairs["study"]) & set(with_views)), str)
        if len(studies):
            views = study_view_embeddings(studies, echo_ledger, embedding_stores, max_views)
            study_joint = embed_studies(model, views, max_views=max_views, device=device)
    out.update(study=studies, study_joint=study_joint.astype(np.float32))
    return out


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
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
