"""ECG–echo pairs and the patient-level split (docs/method.md section 2).

An ECG and an echo study of the same patient acquired at most ``window_days`` apart form
a pair; an ECG may pair with several studies and a study with several ECGs. The ECG an
echo clip burns in pairs with its own study alone (:func:`build_trace_pairs`). Splits are
by patient, so no patient is in two splits, whichever source its ECGs come from. Only
pseudonyms and day differences leave this module: no raw identifier and no absolute date.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from echo2ecg.data.pseudonym import pseudonymise_all
from echo2ecg.vocabulary import PHENOTYPES

PAIR_COLUMNS = (
    "patient",
    "ecg",
    "study",
    "days_apart",
    "split",
    "ecg_shard",
    "ecg_row",
    "n_views",
    *PHENOTYPES,
    "ecg_source",
)
ECG_SOURCES = ("ecg_files", "echo_trace")  # what pairing.ecg_source chooses from
SPLITS = ("train", "val", "test")
# Pseudonyms are hex strings: read them as text, never as numbers.
ID_DTYPES = {"patient": str, "ecg": str, "study": str, "ecg_shard": str}


def read_id_table(path) -> pd.DataFrame:
    """A pairs or evidence CSV with its id columns read as text."""
    return pd.read_csv(path, dtype=ID_DTYPES)


def pair_within_window(
    ecgs: pd.DataFrame, studies: pd.DataFrame, window_days: float = 7.0
) -> pd.DataFrame:
    """All (ECG, study) pairs of the same patient at most ``window_days`` apart.

    ``ecgs``: columns patient, ecg, time; ``studies``: patient, study, time and any label
    columns (carried along). Returns one row per pair with ``days_apart`` (ECG − study,
    in days, signed) instead of either time.
    """
    merged = ecgs.merge(studies, on="patient", suffixes=("_ecg", "_study"))
    days = (merged["time_ecg"] - merged["time_study"]).dt.total_seconds() / 86400.0
    merged = merged.assign(days_apart=days).drop(columns=["time_ecg", "time_study"])
    return merged[days.abs() <= window_days].reset_index(drop=True)


def assign_splits(patients: pd.Series, fractions: dict[str, float], seed: int) -> pd.Series:
    """Split name per patient pseudonym, from a seeded hash of the pseudonym.

    Each patient's split depends only on its own pseudonym and the seed, so adding
    patients never moves existing ones between splits. ``fractions`` maps split → share
    (they must sum to 1); splits are filled in the order given.
    """
    total = sum(fractions.values())
    if not np.isclose(total, 1.0):
        raise ValueError(f"split fractions sum to {total}, not 1")
    edges = np.cumsum(list(fractions.values()))
    names = list(fractions)

    def split_of(patient: str) -> str:
        digest = hashlib.sha256(f"{seed}:{patient}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        return names[min(int(np.searchsorted(edges, u, side="right")), len(names) - 1)]

    lookup = {p: split_of(p) for p in patients.unique()}
    return patients.map(lookup)


def build_pairs(
    ecg_manifest: pd.DataFrame,
    labels: pd.DataFrame,
    ecg_ledger: pd.DataFrame,
    views_per_study: pd.Series | None,
    key: bytes,
    window_days: float,
    fractions: dict[str, float],
    seed: int,
) -> pd.DataFrame:
    """The cohort's pairs table (columns PAIR_COLUMNS).

    Args:
        ecg_manifest: loaded ECG manifest (:func:`echo2ecg.data.manifest.load_ecgs`).
        labels: loaded echo-report table (:func:`echo2ecg.data.manifest.load_labels`).
        ecg_ledger: all ECG shard ledgers of the cohort, with a ``shard`` column; only
            ``ok`` ECGs pair.
        views_per_study: study pseudonym → number of usable views, None for cohorts
            without echo files. Every study with a report pairs (its labels serve
            evaluation); ``n_views`` says how many of its views were extracted, and only
            pairs with ``n_views > 0`` train the model or enter retrieval.
        key: pseudonym key.
    """
    ecgs = pd.DataFrame(
        {
            "patient": pseudonymise_all(ecg_manifest["patient_id"], key),
            "ecg": pseudonymise_all(ecg_manifest["ecg_id"], key),
            "time": ecg_manifest["acquisition_time"],
        }
    )
    usable = ecg_ledger[ecg_ledger["status"] == "ok"][["ecg", "shard", "row"]]
    ecgs = ecgs.merge(usable.rename(columns={"shard": "ecg_shard", "row": "ecg_row"}), on="ecg")
    studies = pd.DataFrame(
        {
            "patient": pseudonymise_all(labels["patient_id"], key),
            "study": pseudonymise_all(labels["study_id"], key),
            "time": labels["acquisition_time"],
            **{p: labels[p] for p in PHENOTYPES},
        }
    )
    views = views_per_study if views_per_study is not None else pd.Series(dtype=int)
    studies["n_views"] = studies["study"].map(views).fillna(0).astype(int)
    pairs = pair_within_window(ecgs, studies, window_days)
    pairs["split"] = assign_splits(pairs["patient"], fractions, seed)
    pairs["ecg_row"] = pairs["ecg_row"].astype(int)
    pairs["ecg_source"] = "ecg_files"
    return pairs[list(PAIR_COLUMNS)].sort_values(
        ["split", "patient", "ecg", "study"], ignore_index=True
    )


def build_trace_pairs(
    labels: pd.DataFrame,
    trace_ledger: pd.DataFrame,
    views_per_study: pd.Series,
    key: bytes,
    fractions: dict[str, float],
    seed: int,
) -> pd.DataFrame:
    """Pairs of each clip's burned-in ECG with its own study (columns PAIR_COLUMNS).

    ``trace_ledger``: the cohort's trace shard ledgers with a ``shard`` column (one row per
    view, carrying its patient, study and view pseudonyms); only ``ok`` traces pair, and
    only with a study that has a report in ``labels``. The ECG's id is its view's
    pseudonym prefixed ``trace-``; ``days_apart`` is 0 (recorded with the clip); the split
    is the patient's, as :func:`build_pairs` assigns it.
    """
    traces = trace_ledger[trace_ledger["status"] == "ok"]
    studies = pd.DataFrame(
        {
            "study": pseudonymise_all(labels["study_id"], key),
            **{p: labels[p] for p in PHENOTYPES},
        }
    )
    pairs = pd.DataFrame(
        {
            "patient": traces["patient"].astype(str).to_numpy(),
            "ecg": ("trace-" + traces["view"].astype(str)).to_numpy(),
            "study": traces["study"].astype(str).to_numpy(),
            "days_apart": 0.0,
            "ecg_shard": traces["shard"].astype(str).to_numpy(),
            "ecg_row": traces["row"].astype(int).to_numpy(),
        }
    ).merge(studies, on="study")
    pairs["n_views"] = pairs["study"].map(views_per_study).fillna(0).astype(int)
    pairs["split"] = assign_splits(pairs["patient"], fractions, seed)
    pairs["ecg_source"] = "echo_trace"
    return pairs[list(PAIR_COLUMNS)].sort_values(
        ["split", "patient", "ecg", "study"], ignore_index=True
    )


def split_counts(pairs: pd.DataFrame, cohort: str, source: str = "ecg_files") -> pd.DataFrame:
    """Table 1 of the paper for one cohort and ECG source: pairs, patients, ECGs, studies,
    views per split."""
    rows = []
    for split in SPLITS:
        part = pairs[pairs["split"] == split]
        studies = part.drop_duplicates("study")
        rows.append(
            {
                "cohort": cohort,
                "ecg_source": source,
                "split": split,
                "pairs": len(part),
                "patients": part["patient"].nunique(),
                "ecgs": part["ecg"].nunique(),
                "studies": len(studies),
                "views": int(studies["n_views"].sum()),
            }
        )
    return pd.DataFrame(rows)
