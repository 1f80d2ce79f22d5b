"""Cohort manifests: the tables that list a cohort's files and labels.

A cohort is three tables (CSV or Parquet), paths relative to the table's own folder or
absolute:

``echo_views``  one row per echo view (a DICOM clip)
    path, patient_id, study_id, acquisition_time[, view_id]
``ecgs``        one row per ECG file
    path, patient_id, ecg_id, acquisition_time, format (wfdb | dicom | numpy)[, fs]
``labels``      the echo report table, one row per study
    patient_id, study_id, acquisition_time, lvef, lvedv, lvesv, lvsv, shd

``acquisition_time`` is ISO 8601. WFDB records are given by their ``.hea`` path; ``fs`` (Hz)
is needed only for bare ``.npy`` arrays. ``view_id`` defaults to the path. An external
evaluation cohort may leave out ``echo_views``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

ECHO_VIEW_COLUMNS = ("path", "patient_id", "study_id", "acquisition_time")
ECG_COLUMNS = ("path", "patient_id", "ecg_id", "acquisition_time", "format")
LABEL_COLUMNS = (
    "patient_id", "study_id", "acquisition_time", "lvef", "lvedv", "lvesv", "lvsv", "shd",
)
ECG_FORMATS = ("wfdb", "dicom", "numpy")
ID_COLUMNS = ("path", "patient_id", "study_id", "view_id", "ecg_id", "format")


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file, column and rows."""


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet table with identifier columns kept as strings."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: manifest not found")
    if path.suffix.lower() in (".parquet", ".pq"):
        table = pd.read_parquet(path)
    else:
        table = pd.read_csv(path, dtype={c: "string" for c in ID_COLUMNS}, keep_default_na=False,
                            na_values=[""])
    for column in ID_COLUMNS:
        if column in table:
            table[column] = table[column].astype("string").str.strip()
    return table


def _check_columns(table: pd.DataFrame, required: tuple[str, ...], source: Path) -> None:
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ManifestError(f"{source}: missing column(s) {', '.join(missing)}; "
                            f"expected {', '.join(required)}")


def _check_filled(table: pd.DataFrame, columns: tuple[str, ...], source: Path) -> None:
    for column in columns:
        empty = table.index[table[column].isna() | (table[column].astype("string") == "")]
        if len(empty):
            rows = ", ".join(str(i + 2) for i in empty[:5])  # +2: header line, 1-based
            raise ManifestError(f"{source}: empty {column} on line(s) {rows}")


def _parse_times(table: pd.DataFrame, source: Path) -> pd.Series:
    times = pd.to_datetime(table["acquisition_time"], errors="coerce", format="ISO8601")
    bad = table.index[times.isna()]
    if len(bad):
        rows = ", ".join(str(i + 2) for i in bad[:5])
        raise ManifestError(f"{source}: acquisition_time is not an ISO 8601 time on line(s) {rows}")
    return times


def _resolve_paths(table: pd.DataFrame, source: Path) -> pd.Series:
    """Paths relative to the manifest's folder joined to it; absolute ones kept.
    String operations, not pathlib: a manifest may list hundreds of thousands of files."""
    base = os.path.join(os.path.dirname(str(source)), "")
    paths = table["path"]
    resolved = paths.where(paths.str.startswith("/"), base + paths)
    duplicated = resolved.duplicated()
    if duplicated.any():
        first = resolved[duplicated].iloc[0]
        raise ManifestError(f"{source}: file listed twice: {os.path.basename(first)}")
    return resolved.astype("string")


def _with_files_resolved(table: pd.DataFrame, source: Path) -> pd.DataFrame:
    """Times parsed, paths resolved (``listed_path`` keeps them as written), and
    ``manifest_row`` (0-based data row) added for audits."""
    table["acquisition_time"] = _parse_times(table, source)
    table["listed_path"] = table["path"]
    table["path"] = _resolve_paths(table, source)
    table["manifest_row"] = range(len(table))
    return table


def load_echo_views(path: str | Path) -> pd.DataFrame:
    """Validated echo-view manifest, paths resolved against the manifest's folder."""
    source = Path(path)
    table = read_table(source)
    _check_columns(table, ECHO_VIEW_COLUMNS, source)
    _check_filled(table, ("path", "patient_id", "study_id"), source)
    if "view_id" not in table:
        table["view_id"] = table["path"]
    table["view_id"] = table["view_id"].fillna(table["path"])
    return _with_files_resolved(table, source)


def load_ecgs(path: str | Path) -> pd.DataFrame:
    """Validated ECG manifest, resolved like :func:`load_echo_views`; ``fs`` is float, NaN
    where not given."""
    source = Path(path)
    table = read_table(source)
    _check_columns(table, ECG_COLUMNS, source)
    _check_filled(table, ("path", "patient_id", "ecg_id", "format"), source)
    table["format"] = table["format"].str.lower()
    unknown = sorted(set(table["format"]) - set(ECG_FORMATS))
    if unknown:
        raise ManifestError(f"{source}: unknown ECG format(s) {', '.join(unknown)}; "
                            f"expected one of {', '.join(ECG_FORMATS)}")
    if table["ecg_id"].duplicated().any():
        raise ManifestError(f"{source}: ecg_id is not unique")
    table["fs"] = pd.to_numeric(table["fs"], errors="coerce") if "fs" in table else float("nan")
    return _with_files_resolved(table, source)


def load_labels(path: str | Path) -> pd.DataFrame:
    """Validated label (echo report) table: one row per study, numeric phenotypes."""
    source = Path(path)
    table = read_table(source)
    _check_columns(table, LABEL_COLUMNS, source)
    _check_filled(table, ("patient_id", "study_id"), source)
    if table["study_id"].duplicated().any():
        raise ManifestError(f"{source}: study_id is not unique (one report row per study)")
    for column in ("lvef", "lvedv", "lvesv", "lvsv", "shd"):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    table["acquisition_time"] = _parse_times(table, source)
    return table


def shard_of(key: str, n_shards: int) -> int:
    """Shard index of a study or ECG id: a stable hash, so that adding rows to a manifest
    never moves existing rows to another shard."""
    digest = hashlib.sha256(str(key).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n_shards
