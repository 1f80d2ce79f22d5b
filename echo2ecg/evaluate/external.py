"""Any other model's ECG features as a baseline (``evaluation.external_features``).

A user who has embedded the cohort's ECGs with another model (OTiS, xECG, ECGFounder,
EchoingECG, ...) gives one Parquet file per model: a column ``ecg_id`` (the ECG's id in the
cohort's ECG manifest) and one numeric column per feature. The ids are pseudonymised on
read with the pipeline's key, like every id, and the rows become a feature file
(:mod:`feature_files`) that the kNN tables read exactly as they read a variant's: the same
splits, the same reference sets, the same bootstrap. Such features have no joint space, so
retrieval, which compares ECGs with echo studies, has no row for them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from echo2ecg.data.pseudonym import pseudonymise_all
from echo2ecg.evaluate.downstream import ecg_labels

ID_COLUMN = "ecg_id"
EVALUATED = ("lvef", "shd")  # the labels the kNN tables read


def external_feature_file(
    table: pd.DataFrame, pairs: pd.DataFrame, key: bytes, name: str, cohort: str
) -> dict[str, np.ndarray]:
    """One cohort's feature file from a user's feature table.

    table: ``ecg_id`` and the feature columns (any other numeric columns), one row per
    ECG, possibly of several cohorts; pairs: the cohort's pairs table (pseudonymised ECG
    ids, splits, labels); key: the pseudonym key. Returns ``ecg`` (N,), ``ecg_features``
    (N, D) float32 for the cohort's ECGs in the file, ``ecg_joint`` (N, 0) and no studies.

    Raises ValueError naming ``name`` and the count when the file lacks the id column,
    has no feature columns, has non-numeric or non-finite features, repeats an ECG, or
    does not cover every train and test ECG with a label the tables read (the kNN's
    reference set and its test set).
    """
    where = f"evaluation.external_features.{name}"
    if ID_COLUMN not in table.columns:
        raise ValueError(f"{where}: no {ID_COLUMN!r} column (the ECG manifest's id)")
    feature_columns = [c for c in table.columns if c != ID_COLUMN]
    if not feature_columns:
        raise ValueError(f"{where}: no feature columns beside {ID_COLUMN!r}")
    not_numeric = [c for c in feature_columns if not pd.api.types.is_numeric_dtype(table[c])]
    if not_numeric:
        raise ValueError(f"{where}: {len(not_numeric)} feature columns are not numeric")
    ids = pd.Series(pseudonymise_all(table[ID_COLUMN].astype(str), key))
    if ids.duplicated().any():
        raise ValueError(f"{where}: {int(ids.duplicated().sum())} ECGs appear more than once")
    labels = ecg_labels(pairs)
    needed = labels[
        labels["split"].isin(["train", "test"]) & labels[list(EVALUATED)].notna().any(axis=1)
    ].index
    present = set(ids)
    missing = sum(ecg not in present for ecg in needed)
    if missing:
        raise ValueError(
            f"{where}: the file covers {len(needed) - missing} of the {len(needed)} train "
            f"and test ECGs of cohort {cohort} that evaluation reads; {missing} are missing"
        )
    keep = ids.isin(set(labels.index)).to_numpy()
    features = table.loc[keep, feature_columns].to_numpy(np.float32)
    bad = int((~np.isfinite(features)).any(axis=1).sum())
    if bad:
        raise ValueError(f"{where}: {bad} ECGs of cohort {cohort} have non-finite features")
    return {
        "ecg": ids[keep].to_numpy(str),
        "ecg_features": features,
        "ecg_joint": np.empty((len(features), 0), np.float32),
        "study": np.array([], str),
        "study_joint": np.empty((0, 0), np.float32),
    }
