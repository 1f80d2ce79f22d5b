"""The trace stage for one echo shard: the ECG each clip burns in becomes a store row of
lead II alone, or a ledger reason.

Apart from :mod:`echo2ecg.data.shard_run` (whose :func:`~echo2ecg.data.shard_run.run_shard`
it uses) so that a change to the trace reader reruns trace extraction only, never the
clip and ECG shards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from echo2ecg import __version__
from echo2ecg.data.ecg import prepare_ecg
from echo2ecg.data.ecg_formats import LEADS, RawEcg
from echo2ecg.data.echo_trace import TRACE_LEAD, TraceSettings, extract_trace
from echo2ecg.data.errors import InputRejected
from echo2ecg.data.shard_run import ShardInput, run_shard
from echo2ecg.data.store import ShardWriter, write_table


def extract_trace_shard(
    inputs: list[ShardInput],
    store: str | Path,
    ledger_path: str | Path,
    trace_options: dict | None = None,
    ecg_options: dict | None = None,
    rows_per_chunk: int = 64,
    time_limit_s: float | None = None,
) -> pd.DataFrame:
    """DICOM echo views → the ECG each burns in, as the Zarr store ``store`` (float32
    (N, 12, round(duration_s · fs)), lead II only) + the ledger CSV ``ledger_path``.

    ``trace_options``: the config's ``echo_trace`` section, the fields of
    :class:`~echo2ecg.data.echo_trace.TraceSettings` plus ``duration_s``, the most recent
    seconds of each trace kept (a shorter trace is rejected); ``ecg_options`` as for
    :func:`prep_ecg_shard` (its ``duration_s`` is replaced by the trace's).
    """
    trace_options = dict(trace_options or {})
    duration_s = float(trace_options.pop("duration_s", 2.2))
    ecg_options = {**(ecg_options or {}), "duration_s": duration_s}
    fs = float(ecg_options.get("fs", 500.0))
    settings = TraceSettings(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in trace_options.items()}, fs=fs
    )
    n_samples = int(round(duration_s * fs))
    lead = LEADS.index(TRACE_LEAD)

    def process(item: ShardInput, notes: list[str]) -> np.ndarray:
        trace = extract_trace(item.path, settings)
        if len(trace.signal) < n_samples:
            raise InputRejected(
                f"ECG trace shorter than {duration_s:g} s ({trace.duration_s:.3f} s shown)"
            )
        strip = "ECG-trace region" if trace.strip_from == "region" else "bottom band"
        notes.append(f"strip from the {strip}, time scale from the {trace.time_scale_from}")
        signal = np.zeros((len(LEADS), n_samples))
        signal[lead] = trace.signal[-n_samples:]  # the most recent seconds
        return prepare_ecg(RawEcg(signal, fs), leads=(TRACE_LEAD,), **ecg_options)

    writer = ShardWriter(
        store,
        "signals",
        (len(LEADS), n_samples),
        np.float32,
        capacity=len(inputs),
        rows_per_chunk=rows_per_chunk,
        attributes={
            "layout": "N, leads (I, II, III, aVR, aVL, aVF, V1-V6), samples",
            "leads": [TRACE_LEAD],
            "source": "echo_trace",
            "recipe": {**ecg_options, "trace": trace_options},
            "echo2ecg_version": __version__,
        },
    )
    with writer:
        ledger = run_shard(inputs, process, writer, "echo trace", time_limit_s)
    write_table(ledger, Path(ledger_path))
    return ledger
