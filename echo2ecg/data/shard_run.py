"""The data stage for one shard: every input file becomes a store row or a ledger reason.

``extract_echo_shard`` turns DICOM clips into a clip store (array ``clips``, uint8
(N, 16, 224, 224, 3) RGB, unnormalised); ``prep_ecg_shard`` turns ECG files into a signal
store (array ``signals``, float32 (N, 12, 5000), 500 Hz) (and
:mod:`echo2ecg.data.trace_shard` the ECG burned into each clip). Both write a ledger (CSV) at the
paths the caller gives, one row per input: ``source, status (ok | rejected), reason, note,
row`` plus the input's carried fields (pseudonymised ids, manifest row). A bad file never
stops the shard.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from echo2ecg import __version__
from echo2ecg.data.ecg import prepare_ecg
from echo2ecg.data.ecg_formats import read_ecg
from echo2ecg.data.echo import extract_clip
from echo2ecg.data.errors import InputRejected
from echo2ecg.data.files import os_error_reason
from echo2ecg.data.limits import TimeLimitExceeded, time_limit
from echo2ecg.data.store import LEDGER_COLUMNS, ShardWriter, write_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardInput:
    """One input file of a shard.

    ``path`` is where to read it; ``source`` is what the ledger shows for it (the path as
    given, or its pseudonym); ``fields`` are carried into its ledger row; ``options`` are
    per-file reader options (an ECG's format and sampling rate).
    """

    path: str
    source: str
    fields: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)


def inputs_from_paths(paths: Iterable[str], **options) -> list[ShardInput]:
    """Inputs named on a command line: the ledger shows each path as given, with bytes
    that are not UTF-8 (names from old encodings) written as ``\\xff`` escapes."""
    return [ShardInput(path=str(p), source=printable_path(p), options=dict(options)) for p in paths]


def printable_path(path) -> str:
    """``path`` as UTF-8 text: undecodable bytes (surrogate escapes) become ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def rejection_reason(error: Exception) -> str:
    """The ledger's reason for a failed file: the reader's own words, or what went wrong.

    Built from the error's kind and where it was raised, never from its text: operating
    system and decoder messages quote paths, header bytes, file content and addresses.
    """
    if isinstance(error, InputRejected):
        return error.reason
    if isinstance(error, OSError):
        return os_error_reason(error)
    if isinstance(error, MemoryError):
        return "too large to decode in memory"
    if isinstance(error, RecursionError):
        return "too deeply nested to decode"
    return f"unexpected error ({type(error).__name__} in {_raised_in(error)})"


def _raised_in(error: Exception) -> str:
    """The innermost function of the error's traceback, as module.function (a place in
    code, never data): "numpy.reshape", "echo2ecg.data.ecg.prepare_ecg"."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "unknown place"
    frame = frames[-1]
    roots = [root.rstrip("/") + "/" for root in sys.path if root]
    inside = [root for root in roots if frame.filename.startswith(root)]
    if inside:  # the dotted module name below the deepest import root
        relative = frame.filename[len(max(inside, key=len)) :].removesuffix(".py")
        module = relative.replace("/", ".").removesuffix(".__init__")
    else:
        module = inspect.getmodulename(frame.filename) or "unknown module"
    return f"{module}.{frame.name}"


def run_shard(
    inputs: list[ShardInput],
    process: Callable[[ShardInput, list[str]], np.ndarray],
    writer: ShardWriter,
    what: str,
    time_limit_s: float | None = None,
    progress_every_s: float = 10.0,
) -> pd.DataFrame:
    """Apply ``process`` to every input, append results to ``writer``, return the ledger.

    ``process(item, notes)`` returns the item's row and may append sentences to ``notes``
    (how the file was read: a default it had to assume, a fallback it took); they become
    the row's ``note``. A file still being read after ``time_limit_s`` seconds (None: no
    limit) is rejected. The store is committed before the ledger is returned, so a ledger
    on disk always describes a finished store.
    """
    rows = []
    started = last_report = time.monotonic()
    for i, item in enumerate(inputs, 1):
        notes: list[str] = []
        # Readers' warnings quote header values (names, IDs): count them, never show them.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with time_limit(time_limit_s):
                    result = process(item, notes)
                row_index, status, reason = writer.append(result), "ok", ""
            except TimeLimitExceeded:
                row_index, status, reason = (
                    None,
                    "rejected",
                    f"reading took longer than the time limit of {time_limit_s:g} s",
                )
            except Exception as error:  # one bad file must never stop the shard
                row_index, status, reason = None, "rejected", rejection_reason(error)
        if caught:
            kinds = sorted({warning.category.__name__ for warning in caught})
            log.info(
                "%s %d/%d: %d reader warnings (%s), not shown as they may quote the file",
                what,
                i,
                len(inputs),
                len(caught),
                ", ".join(kinds),
            )
        if status == "rejected":
            log.warning("%s %d/%d rejected: %s", what, i, len(inputs), reason)
        rows.append(
            {
                "source": item.source,
                "status": status,
                "reason": reason,
                "note": "; ".join(notes) if status == "ok" else "",
                "row": row_index,
                **item.fields,
            }
        )
        now = time.monotonic()
        if now - last_report >= progress_every_s or i == len(inputs):
            log.info(
                "%s %d/%d done (%.2f files/s)", what, i, len(inputs), i / max(now - started, 1e-9)
            )
            last_report = now
    writer.commit()
    ledger = pd.DataFrame(rows, columns=list(LEDGER_COLUMNS) + _field_names(inputs))
    ledger["row"] = ledger["row"].astype("Int64")
    n_ok = int((ledger["status"] == "ok").sum())
    log.info("%s shard finished: %d ok, %d rejected", what, n_ok, len(ledger) - n_ok)
    return ledger


def _field_names(inputs: list[ShardInput]) -> list[str]:
    names: dict[str, None] = {}
    for item in inputs:
        names.update(dict.fromkeys(item.fields))
    return list(names)


def extract_echo_shard(
    inputs: list[ShardInput],
    store: str | Path,
    ledger_path: str | Path,
    clip_options: dict | None = None,
    time_limit_s: float | None = None,
) -> pd.DataFrame:
    """DICOM echo views → the Zarr store ``store`` (one view per chunk) + the ledger CSV
    ``ledger_path``; returns the ledger.

    ``clip_options`` are keyword arguments of :func:`echo2ecg.data.echo.extract_clip`;
    ``time_limit_s`` the most seconds one file may take (see :func:`run_shard`).
    """
    clip_options = dict(clip_options or {})
    size = clip_options.get("size", 224)
    n_frames = clip_options.get("frames", 16)
    writer = ShardWriter(
        store,
        "clips",
        (n_frames, size, size, 3),
        np.uint8,
        capacity=len(inputs),
        rows_per_chunk=1,
        attributes={
            "layout": "N, frames, height, width, RGB; uint8, unnormalised",
            "recipe": clip_options,
            "echo2ecg_version": __version__,
        },
    )
    with writer:
        ledger = run_shard(
            inputs,
            lambda item, notes: extract_clip(item.path, notes=notes, **clip_options),
            writer,
            "echo view",
            time_limit_s,
        )
    write_table(ledger, Path(ledger_path))
    return ledger


def prep_ecg_shard(
    inputs: list[ShardInput],
    store: str | Path,
    ledger_path: str | Path,
    ecg_options: dict | None = None,
    rows_per_chunk: int = 32,
    time_limit_s: float | None = None,
) -> pd.DataFrame:
    """ECG files → the Zarr store ``store`` (float32 (N, 12, 5000)) + the ledger CSV
    ``ledger_path``; returns the ledger.

    ``ecg_options`` are keyword arguments of :func:`echo2ecg.data.ecg.prepare_ecg`; an input's
    ``options`` (``fmt``, ``fs``) go to :func:`echo2ecg.data.ecg_formats.read_ecg`;
    ``time_limit_s`` as for :func:`extract_echo_shard`.
    """
    ecg_options = dict(ecg_options or {})
    n_samples = int(round(ecg_options.get("fs", 500) * ecg_options.get("duration_s", 10.0)))

    def process(item: ShardInput, notes: list[str]) -> np.ndarray:
        raw = read_ecg(item.path, **item.options)
        notes.extend(raw.notes)
        return prepare_ecg(raw, **ecg_options)

    writer = ShardWriter(
        store,
        "signals",
        (12, n_samples),
        np.float32,
        capacity=len(inputs),
        rows_per_chunk=rows_per_chunk,
        attributes={
            "layout": "N, leads (I, II, III, aVR, aVL, aVF, V1-V6), samples",
            "recipe": ecg_options,
            "echo2ecg_version": __version__,
        },
    )
    with writer:
        ledger = run_shard(inputs, process, writer, "ECG", time_limit_s)
    write_table(ledger, Path(ledger_path))
    return ledger
