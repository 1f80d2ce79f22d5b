"""Cohort manifests: the tables that list a cohort's files and labels.

A cohort is three tables (CSV or Parquet), paths relative to the table's own folder or
absolute:

``echo_views``  one row per echo view (a DICOM clip)
    path, patient_id, study_id, acquisition_time[, view_id]
``ecgs``        one row per ECG file
    path, patient_id, ecg_id, acquisition_time, format (wfdb | dicom | numpy)[, fs]
``labels``      the echo report table, one row per study
    patient_id, study_id, acquisition_time, lvef, lvedv, lvesv, lvsv, shd

A CSV manifest is UTF-8 text. ``acquisition_time`` is ISO 8601: either every time of a
manifest has a zone (``Z``, ``+01:00``), and all are converted to UTC, or none has one,
and they are kept as written; a manifest that mixes the two is refused, because a time
without a zone cannot be ordered against one with. WFDB records are given by their
``.hea`` path; ``fs`` (Hz) is needed only for bare ``.npy`` arrays. ``view_id`` defaults
to the path. In the label columns and ``fs`` an empty cell is a missing value; anything
else must be a number (``shd``: 0 or 1). An external evaluation cohort may leave out
``echo_views``.

A bad manifest raises :class:`ManifestError`, whose message names the file, the line
(1-based, the header being line 1; the data row for Parquet) and the column, and never
quotes the cell: manifests hold patient identifiers.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from echo2ecg.vocabulary import ECG_COLUMNS, ECG_FORMATS, ECHO_VIEW_COLUMNS, LABEL_COLUMNS

ID_COLUMNS = ("path", "patient_id", "study_id", "view_id", "ecg_id", "format")
# what a numeric column holds, for the message when a cell is not a number
NUMBER_EXAMPLES = {
    "lvef": "a percentage such as 55.0",
    "lvedv": "a volume in ml such as 120.0",
    "lvesv": "a volume in ml such as 50.0",
    "lvsv": "a volume in ml such as 70.0",
    "shd": "0 or 1",
    "fs": "a sampling rate in Hz such as 500",
}
# an ISO 8601 time that ends in a zone designator (Z, +HH, +HHMM, +HH:MM); the date part
# alone never carries one, so the zone must follow a time (after T or a space)
_ZONE_PATTERN = r"[T ]\d{2}.*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"
_LISTED = 5  # lines a message names; the rest are counted


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file, column and rows."""


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _undecodable_line(path: Path) -> int:
    """The 1-based line of the first byte sequence that is not UTF-8."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        return data.count(b"\n", 0, error.start) + 1
    return 1  # pandas found what a whole-file decode did not: name the start


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV (UTF-8) or Parquet table with identifier columns kept as strings."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: manifest not found")
    if _is_parquet(path):
        table = pd.read_parquet(path)
    else:
        try:
            table = pd.read_csv(
                path,
                dtype={c: "string" for c in ID_COLUMNS},
                keep_default_na=False,
                na_values=[""],
                encoding="utf-8",
            )
        except UnicodeDecodeError:
            raise ManifestError(
                f"{path}: line {_undecodable_line(path)} is not UTF-8 text; save the manifest "
                "as UTF-8 (spreadsheets: 'CSV UTF-8')"
            ) from None
        except pd.errors.EmptyDataError:
            raise ManifestError(
                f"{path}: empty file; a manifest starts with a header line"
            ) from None
        except pd.errors.ParserError as error:
            raise ManifestError(f"{path}: not a readable CSV table: {str(error).strip()}") from None
    for column in ID_COLUMNS:
        if column in table:
            table[column] = table[column].astype("string").str.strip()
    return table


def _row_lines(source: Path) -> list[int]:
    """The 1-based line on which each data row of a CSV starts. A row's position alone does
    not give it: pandas skips blank lines and a quoted field may span lines. Read only when
    a message needs it."""
    starts, previous = [], 0
    try:
        with open(source, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            for record in reader:
                if record and not (len(record) == 1 and not record[0].strip()):
                    starts.append(previous + 1)
                previous = reader.line_num
    except (csv.Error, UnicodeDecodeError):
        return []
    return starts[1:]  # the first record is the header


def _where(source: Path, positions) -> str:
    """'line(s) 2, 7' (CSV) or 'row(s) 1, 6' (Parquet) for 0-based data rows."""
    positions = [int(p) for p in positions]
    if _is_parquet(source):
        label, numbers = "row(s)", [p + 1 for p in positions[:_LISTED]]
    else:
        lines = _row_lines(source)
        # without a line map (a file csv cannot read) the header is line 1, one row a line
        label, numbers = (
            "line(s)",
            [lines[p] if p < len(lines) else p + 2 for p in positions[:_LISTED]],
        )
    text = f"{label} {', '.join(map(str, numbers))}"
    if len(positions) > _LISTED:
        text += f" and {len(positions) - _LISTED} more"
    return text


def _blank(values: pd.Series) -> np.ndarray:
    text = values.astype("string").str.strip()
    return (text.isna() | (text == "")).fillna(True).to_numpy(bool)


def _check_columns(table: pd.DataFrame, required: tuple[str, ...], source: Path) -> None:
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ManifestError(
            f"{source}: missing column(s) {', '.join(missing)}; expected {', '.join(required)}"
        )
    if table.empty:
        raise ManifestError(f"{source}: no rows; the manifest lists nothing under its header")


def _check_filled(table: pd.DataFrame, columns: tuple[str, ...], source: Path) -> None:
    for column in columns:
        empty = np.flatnonzero(_blank(table[column]))
        if len(empty):
            raise ManifestError(f"{source}: empty {column} on {_where(source, empty)}")


def _check_unique(table: pd.DataFrame, column: str, source: Path, why: str = "") -> None:
    repeated = table[column].duplicated(keep=False).to_numpy(bool)
    if repeated.any():
        raise ManifestError(
            f"{source}: {column} is not unique{why}: the same value on "
            f"{_where(source, np.flatnonzero(repeated))}"
        )


def _parse_times(table: pd.DataFrame, source: Path) -> pd.Series:
    """``acquisition_time`` as datetimes: in UTC when every time has a zone, as written
    when none has; a mix of the two is refused (see the module docstring)."""
    column = table["acquisition_time"]
    if isinstance(column.dtype, pd.DatetimeTZDtype):  # Parquet: already one zone per column
        return column.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(column) and not column.isna().any():
        return column
    text = column.astype("string").str.strip()
    empty = np.flatnonzero(_blank(text))
    if len(empty):
        raise ManifestError(f"{source}: empty acquisition_time on {_where(source, empty)}")
    # utc=True: offsets may differ between rows (daylight saving time does that)
    times = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
    bad = np.flatnonzero(times.isna().to_numpy())
    if len(bad):
        raise ManifestError(
            f"{source}: acquisition_time is not an ISO 8601 time on "
            f"{_where(source, bad)} (expected a time such as "
            "2024-01-02T10:00:00, with a zone such as Z or +01:00 or none)"
        )
    zoned = text.str.contains(_ZONE_PATTERN, regex=True).fillna(False).to_numpy(bool)
    if zoned.all():
        return times
    if not zoned.any():
        return times.dt.tz_localize(None)
    raise ManifestError(
        f"{source}: acquisition_time has a time zone on "
        f"{_where(source, np.flatnonzero(zoned))} but none on "
        f"{_where(source, np.flatnonzero(~zoned))}; give every time a zone (Z or +01:00) "
        "or none"
    )


def _parse_numbers(table: pd.DataFrame, column: str, source: Path) -> pd.Series:
    """A numeric column: an empty cell is a missing value (NaN); any other cell must be a
    finite number (and 0 or 1 in ``shd``). A column the reader already found numeric keeps
    its dtype; one read as text becomes float64."""
    values = table[column]
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        bad = np.isinf(numbers)
    else:  # text: "55%", "n/a", "55,0" must not turn silently into missing labels
        text = values.astype("string").str.strip()
        numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        bad = ~_blank(text) & ~np.isfinite(numbers)
        values = pd.Series(numbers, index=table.index, name=column)
    expected = NUMBER_EXAMPLES.get(column, "a number")
    if bad.any():
        raise ManifestError(
            f"{source}: {column} is not a number on "
            f"{_where(source, np.flatnonzero(bad))} (expected {expected}; "
            "leave the cell empty where it is unknown)"
        )
    if column == "shd":
        not_binary = np.flatnonzero(np.isfinite(numbers) & ~np.isin(numbers, (0.0, 1.0)))
        if len(not_binary):
            raise ManifestError(
                f"{source}: shd is neither 0 nor 1 on "
                f"{_where(source, not_binary)} (expected 0 or 1; leave the "
                "cell empty where it is unknown)"
            )
    return values


def _resolve_paths(table: pd.DataFrame, source: Path) -> pd.Series:
    """Paths relative to the manifest's folder joined to it; absolute ones kept.
    String operations, not pathlib: a manifest may list hundreds of thousands of files."""
    base = os.path.join(os.path.dirname(str(source)), "")
    paths = table["path"]
    resolved = paths.where(paths.str.startswith("/"), base + paths)
    duplicated = resolved.duplicated(keep=False).to_numpy(bool)
    if duplicated.any():  # named by line: file names often carry MRNs or UIDs
        raise ManifestError(
            f"{source}: path lists the same file more than once, on "
            f"{_where(source, np.flatnonzero(duplicated))}"
        )
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
    unknown = ~table["format"].isin(ECG_FORMATS).to_numpy(bool)
    if unknown.any():
        names = sorted(set(table["format"][unknown]))
        raise ManifestError(
            f"{source}: unknown ECG format(s) {', '.join(names)} in format on "
            f"{_where(source, np.flatnonzero(unknown))}; expected one of "
            f"{', '.join(ECG_FORMATS)}"
        )
    _check_unique(table, "ecg_id", source)
    table["fs"] = _parse_numbers(table, "fs", source) if "fs" in table else float("nan")
    return _with_files_resolved(table, source)


def load_labels(path: str | Path) -> pd.DataFrame:
    """Validated label (echo report) table: one row per study, numeric phenotypes (NaN
    where a cell is empty)."""
    source = Path(path)
    table = read_table(source)
    _check_columns(table, LABEL_COLUMNS, source)
    _check_filled(table, ("patient_id", "study_id"), source)
    _check_unique(table, "study_id", source, " (one report row per study)")
    for column in ("lvef", "lvedv", "lvesv", "lvsv", "shd"):
        table[column] = _parse_numbers(table, column, source)
    table["acquisition_time"] = _parse_times(table, source)
    return table


def check_time_zones_agree(manifests: dict[str | Path, pd.DataFrame]) -> None:
    """Refuse loaded manifests of one cohort (path → table) of which some have times with a
    zone and others without: pairing compares their times, and a time without a zone
    cannot be ordered against one with."""
    zoned = {
        str(path): table["acquisition_time"].dt.tz is not None for path, table in manifests.items()
    }
    if len(set(zoned.values())) > 1:
        raise ManifestError(
            f"acquisition_time has a time zone in {', '.join(p for p, z in zoned.items() if z)} "
            f"but none in {', '.join(p for p, z in zoned.items() if not z)}; give the times "
            "of all of a cohort's manifests a zone, or none"
        )


def shard_of(key: str, n_shards: int) -> int:
    """Shard index of a study or ECG id: a stable hash, so that adding rows to a manifest
    never moves existing rows to another shard."""
    digest = hashlib.sha256(str(key).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n_shards
