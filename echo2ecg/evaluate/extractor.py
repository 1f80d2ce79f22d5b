"""The trained ECG encoder as a feature extractor for new ECG files."""

from __future__ import annotations

import numpy as np
import pandas as pd

from echo2ecg.data.ecg import prepare_ecg
from echo2ecg.data.ecg_formats import LEADS, read_ecg
from echo2ecg.data.shard_run import rejection_reason
from echo2ecg.evaluate.feature_files import load_features
from echo2ecg.evaluate.features import load_variant
from echo2ecg.evaluate.metrics import cosine_similarity
from echo2ecg.train.inference import ecg_readouts, project_ecgs


def prepare_files(
    paths: list[str], recipe: dict, leads: tuple[str, ...] | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Read and preprocess ECG files as training did (``leads``: only those, the others
    zero; None: all 12).

    Returns the verdicts (source, status, reason: one row per file) and the signals of the
    ``ok`` files, (N_ok, 12, 5000) float32.
    """
    verdicts, signals = [], []
    for path in paths:
        try:
            signals.append(prepare_ecg(read_ecg(path), **recipe, leads=leads))
            verdicts.append({"source": str(path), "status": "ok", "reason": ""})
        except Exception as error:  # a bad file gets a reason, never stops the others
            verdicts.append(
                {"source": str(path), "status": "rejected", "reason": rejection_reason(error)}
            )
    stacked = np.stack(signals) if signals else np.empty((0, 12, 0), np.float32)
    return pd.DataFrame(verdicts, columns=["source", "status", "reason"]), stacked


def embed_ecg_files(
    checkpoint: str, paths: list[str], device: str = "cpu", leads: tuple[str, ...] | None = None
) -> pd.DataFrame:
    """One row per file: source, status, reason, feature_0 … feature_{D−1} (the encoder's
    D-dimensional embedding, docs/method.md section 7; empty for rejected files), and
    for a probabilistic variant an ``uncertainty`` column (mean σ², docs/variants.md).

    ``leads``: embed only these (names in :data:`~echo2ecg.vocabulary.LEADS`), as the
    encoder embeds a recording of those leads alone; None: all 12."""
    model, saved = load_variant(checkpoint, device)
    verdicts, signals = prepare_files(paths, saved["extra"].get("ecg_recipe", {}), leads)
    n_samples = saved["settings"]["n_samples"]
    width = model.ecg_encoder.embed_dim
    features = np.full((len(verdicts), width), np.nan, np.float32)
    ok = (verdicts["status"] == "ok").to_numpy()
    recorded = None if leads is None else np.isin(LEADS, leads)
    read = ecg_readouts(model, signals, n_samples=n_samples, device=device, lead_mask=recorded)
    features[ok] = read["embedding"]
    columns = pd.DataFrame(features, columns=[f"feature_{i}" for i in range(width)])
    if "uncertainty" in read:  # the probabilistic variant (EchoingECG): how sure it is
        uncertainty = np.full(len(verdicts), np.nan, np.float32)
        uncertainty[ok] = read["uncertainty"]
        verdicts = verdicts.assign(uncertainty=uncertainty)
    return pd.concat([verdicts, columns], axis=1)


def retrieve_studies(
    checkpoint: str, ecg_path: str, gallery: str, k: int = 5, device: str = "cpu"
) -> pd.DataFrame:
    """The ``k`` echo studies of a feature file's gallery most similar to one ECG.

    Returns rank (1-based), study (pseudonym) and cosine similarity in the joint space.
    """
    model, saved = load_variant(checkpoint, device)
    verdicts, signals = prepare_files([ecg_path], saved["extra"].get("ecg_recipe", {}))
    if verdicts["status"].iloc[0] != "ok":
        raise ValueError(f"{ecg_path}: {verdicts['reason'].iloc[0]}")
    studies = load_features(gallery)
    if len(studies["study"]) == 0:
        raise ValueError(f"{gallery}: the gallery holds no echo studies")
    query = project_ecgs(model, signals, n_samples=saved["settings"]["n_samples"], device=device)
    similarity = cosine_similarity(query, studies["study_joint"])[0]
    top = np.argsort(-similarity, kind="stable")[:k]
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(top) + 1),
            "study": studies["study"][top],
            "similarity": similarity[top],
        }
    )
