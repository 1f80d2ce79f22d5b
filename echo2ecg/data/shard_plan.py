"""Which input files go to which shard, and what each shard's ledger carries about them.

Shard membership is a stable hash of the study id (echo views; a study's views stay
together) or of the ECG id, so adding rows to a manifest only changes the shards the new
rows fall in. Identifiers are pseudonymised here, before anything reaches a job.

A shard job's parameters carry only :func:`shard_digest` of its rows, never a path or an
identifier (Snakemake keeps parameters in its own records under ``.snakemake/``): the job
plans its own shard again from the manifest and checks that the digest still matches.
"""

from __future__ import annotations

import hashlib
import json
import os

import pandas as pd

from echo2ecg.data.manifest import load_ecgs, load_echo_views, shard_of
from echo2ecg.data.pseudonym import pseudonymise_all


def shard_label(index: int) -> str:
    """The shard wildcard: four digits, so shards sort in order."""
    return f"{index:04d}"


def _sources(table: pd.DataFrame, key: bytes, hash_paths: bool) -> list[str]:
    """What a ledger shows for each file: its pseudonym, or its path as the manifest lists it."""
    if not hash_paths:
        return list(table["listed_path"])
    return ["file-" + p for p in pseudonymise_all(table["path"], key)]


def _shard_labels(keys: pd.Series, n_shards: int) -> list[str]:
    """Shard label per row, hashing each distinct key once."""
    labels = {k: shard_label(shard_of(k, n_shards)) for k in keys.unique()}
    return [labels[k] for k in keys]


def _rows_of_shard(
    table: pd.DataFrame, shard_key: str, n_shards: int, only: str | None
) -> pd.DataFrame:
    if only is None:
        return table
    return table[[label == only for label in _shard_labels(table[shard_key], n_shards)]]


def _plan(
    table: pd.DataFrame,
    shard_key: str,
    n_shards: int,
    fields: dict[str, list],
    sources: list[str],
    options: list[dict] | None = None,
) -> dict[str, list[dict]]:
    plan: dict[str, list[dict]] = {shard_label(i): [] for i in range(n_shards)}
    names = list(fields)
    rows = zip(
        _shard_labels(table[shard_key], n_shards),
        table["path"],
        sources,
        table["manifest_row"],
        *fields.values(),
    )
    for i, (shard, path, source, manifest_row, *values) in enumerate(rows):
        item = {
            "path": path,
            "source": source,
            "fields": {"manifest_row": int(manifest_row), **dict(zip(names, values))},
        }
        if options is not None:
            item["options"] = options[i]
        plan[shard].append(item)
    return plan


def plan_echo_shards(
    views: pd.DataFrame, n_shards: int, key: bytes, hash_paths: bool = True, only: str | None = None
) -> dict[str, list[dict]]:
    """Shard label → the shard's inputs as plain dicts (``ShardInput`` fields).

    ``views`` is a loaded echo-view manifest (:func:`echo2ecg.data.manifest.load_echo_views`);
    views are sharded by study, so a study's views stay together. Every shard
    0..n_shards-1 is present, empty ones too, so the set of jobs is fixed by the config.
    With ``only`` (a shard label), just that shard's rows are planned (and pseudonymised).
    """
    views = _rows_of_shard(views, "study_id", n_shards, only)
    fields = {
        "patient": pseudonymise_all(views["patient_id"], key),
        "study": pseudonymise_all(views["study_id"], key),
        "view": pseudonymise_all(views["view_id"], key),
    }
    return _plan(views, "study_id", n_shards, fields, _sources(views, key, hash_paths))


def plan_ecg_shards(
    ecgs: pd.DataFrame, n_shards: int, key: bytes, hash_paths: bool = True, only: str | None = None
) -> dict[str, list[dict]]:
    """Shard label → the shard's ECG inputs, with each file's format and rate as options
    (``only``: as in :func:`plan_echo_shards`)."""
    ecgs = _rows_of_shard(ecgs, "ecg_id", n_shards, only)
    fields = {
        "patient": pseudonymise_all(ecgs["patient_id"], key),
        "ecg": pseudonymise_all(ecgs["ecg_id"], key),
        "format": ecgs["format"].tolist(),  # a vocabulary word, for the ledger summary
    }
    options = [
        {"fmt": fmt} if pd.isna(fs) else {"fmt": fmt, "fs": float(fs)}
        for fmt, fs in zip(ecgs["format"], ecgs["fs"])
    ]
    return _plan(ecgs, "ecg_id", n_shards, fields, _sources(ecgs, key, hash_paths), options)


def file_states(inputs: list[dict]) -> list[str]:
    """Size and modification time of each input file ("missing" when absent).

    A shard rule carries these as a parameter instead of declaring its files as inputs:
    a changed, added or removed file changes the parameter and reruns just that shard,
    while the workflow's job graph holds one node per shard rather than one per file
    (what keeps planning 200,000 views quick).
    """
    states = []
    for item in inputs:
        try:
            stat = os.stat(item["path"])
        except OSError:
            states.append("missing")
        else:
            states.append(f"{stat.st_size}-{stat.st_mtime_ns}")
    return states


def shard_digest(inputs: list[dict]) -> str:
    """SHA-256 (hex) of a shard's rows as the ledger will show them (source, carried
    fields, reader options) and of each file's size and modification time.

    The shard rule's parameter: any added, removed, renamed or changed file changes it and
    reruns that shard alone, and it reveals no path or identifier.
    """
    rows = [
        [item["source"], item["fields"], item.get("options", {}), state]
        for item, state in zip(inputs, file_states(inputs))
    ]
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode("utf-8")).hexdigest()


def checked_shard_inputs(plan: dict[str, list[dict]], shard: str, digest: str) -> list[dict]:
    """The planned inputs of ``shard``, after checking they are the ones the workflow was
    planned with (``digest``, :func:`shard_digest`); raises RuntimeError if the manifest
    or a file changed in between, so that a job never runs on rows it was not planned for.
    """
    inputs = plan[shard]
    if shard_digest(inputs) != digest:
        raise RuntimeError(
            f"shard {shard}: its manifest rows or files changed after the "
            "workflow was planned; run snakemake again"
        )
    return inputs


def replan_shard(
    table: str,
    manifest: str | os.PathLike,
    n_shards: int,
    hash_paths: bool,
    key: bytes,
    shard: str,
    digest: str,
) -> list[dict]:
    """What a shard job runs on: its rows planned again from the manifest (``table`` is
    ``echo_views`` or ``ecgs``), checked against the ``digest`` the workflow was planned
    with (see :func:`checked_shard_inputs`)."""
    if table == "echo_views":
        plan = plan_echo_shards(load_echo_views(manifest), n_shards, key, hash_paths, only=shard)
    elif table == "ecgs":
        plan = plan_ecg_shards(load_ecgs(manifest), n_shards, key, hash_paths, only=shard)
    else:
        raise ValueError(f"no shard plan for manifest table {table!r}")
    return checked_shard_inputs(plan, shard, digest)
