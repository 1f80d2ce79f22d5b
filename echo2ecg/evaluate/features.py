"""Features of a trained variant, computed: the encoder and the view pool run over a
cohort's paired ECGs and studies. The file they go to is :mod:`feature_files`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from echo2ecg.evaluate.feature_files import FEATURE_KINDS
from echo2ecg.models import Echo2ECG
from echo2ecg.train.inference import ecg_readouts, embed_studies
from echo2ecg.train.pretrain import build_model, paired_ecg_signals, study_view_embeddings


def load_variant(checkpoint_path: str | Path, device: str = "cpu") -> tuple[Echo2ECG, dict]:
    """A trained variant (eval mode) and its checkpoint dict, from ``best.pt``/``last.pt``."""
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    extra = checkpoint["extra"]
    model = build_model(
        {**extra["ecg_encoder"], "weights": None},
        extra["variant_spec"]["pooling"],
        extra.get("aggregator"),
        extra["variant_spec"].get("objective", "clip"),
        checkpoint["settings"].get("probabilistic", {}).get("centre_means", True),
    )
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval(), checkpoint


def cohort_features(
    model: Echo2ECG,
    n_samples: int,
    pairs: pd.DataFrame,
    ecg_stores: dict[str, str],
    echo_ledger: pd.DataFrame | None,
    embedding_stores: dict[str, str],
    max_views: int = 128,
    device: str = "cpu",
    kind: str = "encoder",
) -> dict[str, np.ndarray]:
    """Feature arrays (:mod:`feature_files`) for every paired ECG and study of a cohort.

    n_samples: ECG samples the features read (the first ones). kind: what
    ``ecg_features`` holds: ``encoder``, the encoder's embedding (the paper's text), or
    ``projection``, the joint-space projection (what the reference code's downstream
    configs load). The probabilistic variant adds ``ecg_uncertainty`` (N,), each ECG's
    mean σ².
    """
    if kind not in FEATURE_KINDS:
        raise ValueError(f"kind must be one of {FEATURE_KINDS}, got {kind!r}")
    ecg_ids, signals = paired_ecg_signals(pairs, ecg_stores)
    read = ecg_readouts(model, signals, n_samples=n_samples, device=device)
    out = {
        "ecg": ecg_ids.to_numpy(str),
        "ecg_features": read["embedding"] if kind == "encoder" else read["joint"],
        "ecg_joint": read["joint"],
    }
    if "uncertainty" in read:
        out["ecg_uncertainty"] = read["uncertainty"]
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
