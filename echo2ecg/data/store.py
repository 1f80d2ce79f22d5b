"""Zarr v3 shard stores and ledgers, written so that nothing half-done looks finished.

A store is built under a hidden temporary name next to its final path and renamed into
place only when complete; the ledger (one row per input file) is written after the store,
also by rename. A job killed midway therefore leaves at most a ``.NAME.tmp-PID`` folder,
which the next attempt removes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import zarr
from zarr.codecs import ZstdCodec

LEDGER_COLUMNS = ("source", "status", "reason", "note", "row")


class ShardWriter:
    """Appends rows of one shape to a Zarr v3 array ``name`` in a new store at ``path``.

    ``capacity`` is the most rows there can be (the number of inputs); the array is cut to
    the rows written on :meth:`commit`. Rows are buffered into whole chunks of
    ``rows_per_chunk`` so that each chunk is compressed once.
    """

    def __init__(
        self,
        path: str | Path,
        name: str,
        row_shape: tuple[int, ...],
        dtype,
        capacity: int,
        rows_per_chunk: int = 1,
        attributes: dict | None = None,
        zstd_level: int = 3,
    ):
        self.path = Path(path)
        self.tmp_path = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        # Leftovers of a killed attempt: only one job ever writes a given store.
        for stale in self.path.parent.glob(f".{self.path.name}.tmp-*"):
            _remove(stale)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        group = zarr.open_group(self.tmp_path, mode="w", zarr_format=3)
        group.attrs.update(attributes or {})
        self.array = group.create_array(
            name,
            shape=(capacity, *row_shape),
            chunks=(rows_per_chunk, *row_shape),
            dtype=dtype,
            compressors=ZstdCodec(level=zstd_level),
            fill_value=0,
        )
        self.rows_per_chunk = rows_per_chunk
        self.n_rows = 0
        self._buffer: list[np.ndarray] = []

    def append(self, row: np.ndarray) -> int:
        """Store one row; returns its index in the array."""
        if row.shape != self.array.shape[1:]:
            raise ValueError(f"row shape {row.shape} != store row shape {self.array.shape[1:]}")
        self._buffer.append(row)
        index = self.n_rows
        self.n_rows += 1
        if len(self._buffer) == self.rows_per_chunk:
            self._flush()
        return index

    def _flush(self) -> None:
        if self._buffer:
            start = self.n_rows - len(self._buffer)
            self.array[start : self.n_rows] = np.stack(self._buffer)
            self._buffer = []

    def commit(self) -> Path:
        """Finish the store and move it to its final path (replacing an older one)."""
        self._flush()
        self.array.resize((self.n_rows, *self.array.shape[1:]))
        _remove(self.path)
        os.replace(self.tmp_path, self.path)
        return self.path

    def abort(self) -> None:
        _remove(self.tmp_path)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a CSV by rename, so a reader never sees half a table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    table.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def read_ledger(path: str | Path) -> pd.DataFrame:
    """A ledger CSV with ``row`` as a nullable integer (empty for rejected files)."""
    ledger = pd.read_csv(
        path,
        dtype={"source": "string", "status": "string", "reason": "string", "note": "string"},
        keep_default_na=False,
        na_values=[""],
    )
    ledger["row"] = ledger["row"].astype("Int64")
    return ledger


def open_rows(store: str | Path, name: str) -> zarr.Array:
    """The array ``name`` of a finished shard store, read-only."""
    return zarr.open_group(store, mode="r")[name]
