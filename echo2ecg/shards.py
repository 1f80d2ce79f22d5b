"""Which input files go to which shard, and what each shard's ledger carries about them.

Shard membership is a stable hash of the study id (echo views; a study's views stay
together) or of the ECG id, so adding rows to a manifest only changes the shards the new
rows fall in. Identifiers are pseudonymised here, before anything reaches a job.
"""

from __future__ import annotations

import os

import pandas as pd

from .manifest import shard_of
from .pseudonym import pseudonymise


def shard_label(index: int) -> str:
    """The shard wildcard: four digits, so shards sort in order."""
    return f"{index:04d}"


def _source(row, key: bytes, hash_paths: bool) -> str:
    """What a ledger shows for a file: its pseudonym, or its path as the manifest lists it."""
    return f"file-{pseudonymise(row.path, key)}" if hash_paths else row.listed_path


def plan_echo_shards(views: pd.DataFrame, n_shards: int, key: bytes,
                     hash_paths: bool = True) -> dict[str, list[dict]]:
    """Shard label → the shard's inputs as plain dicts (``ShardInput`` fields).

    ``views`` is a loaded echo-view manifest (:func:`echo2ecg.manifest.load_echo_views`).
    Every shard 0..n_shards-1 is present, empty ones too, so the set of jobs is fixed by the
    config alone.
    """
    plan: dict[str, list[dict]] = {shard_label(i): [] for i in range(n_shards)}
    for view in views.itertuples(index=False):
        plan[shard_label(shard_of(view.study_id, n_shards))].append({
            "path": view.path,
            "source": _source(view, key, hash_paths),
            "fields": {
                "manifest_row": int(view.manifest_row),
                "patient": pseudonymise(view.patient_id, key),
                "study": pseudonymise(view.study_id, key),
                "view": pseudonymise(view.view_id, key),
            },
        })
    return plan


def plan_ecg_shards(ecgs: pd.DataFrame, n_shards: int, key: bytes,
                    hash_paths: bool = True) -> dict[str, list[dict]]:
    """Shard label → the shard's ECG inputs, with each file's format and rate as options."""
    plan: dict[str, list[dict]] = {shard_label(i): [] for i in range(n_shards)}
    for ecg in ecgs.itertuples(index=False):
        options = {"fmt": ecg.format}
        if pd.notna(ecg.fs):
            options["fs"] = float(ecg.fs)
        plan[shard_label(shard_of(ecg.ecg_id, n_shards))].append({
            "path": ecg.path,
            "source": _source(ecg, key, hash_paths),
            "fields": {
                "manifest_row": int(ecg.manifest_row),
                "patient": pseudonymise(ecg.patient_id, key),
                "ecg": pseudonymise(ecg.ecg_id, key),
            },
            "options": options,
        })
    return plan


def existing_paths(inputs: list[dict]) -> list[str]:
    """The inputs' paths that exist now: what a job can declare as input files. Missing
    ones still reach the job, which records them in its ledger as not found."""
    return [item["path"] for item in inputs if os.path.exists(item["path"])]
