"""Ledgers across shards: who was accepted, who was rejected and why."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from echo2ecg.data.store import read_ledger

# ``format``: an ECG's manifest format (wfdb, dicom, numpy, xml, cardiosoft, muse, hl7aecg),
# empty for echo views
SUMMARY_COLUMNS = ("stage", "cohort", "format", "status", "reason", "files")


def read_shard_ledgers(ledgers: dict[str, str | Path]) -> pd.DataFrame:
    """Shard label → ledger path, as one table with a ``shard`` column (the label)."""
    parts = [read_ledger(path).assign(shard=shard) for shard, path in ledgers.items()]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["shard"])


def usable_views_per_study(echo_ledger: pd.DataFrame) -> pd.Series:
    """Study pseudonym → number of views extracted without error."""
    return echo_ledger[echo_ledger["status"] == "ok"].groupby("study").size()


def summarise_ledgers(ledgers: list[tuple[str, str, str | Path]]) -> pd.DataFrame:
    """Count files per stage, cohort, ECG format, status and reason.

    ``ledgers``: (stage ``echo`` | ``ecg`` | ``echo_trace``, cohort, shard ledger path) for
    every shard. Every file of every ledger is counted once, so the counts add up to the inputs.
    """
    keys = list(SUMMARY_COLUMNS[:-1])
    parts = []
    for stage, cohort, path in ledgers:
        ledger = read_ledger(path).assign(stage=stage, cohort=cohort)
        if "format" not in ledger:  # echo ledgers, and ECG ledgers of files named by path
            ledger["format"] = ""
        parts.append(ledger[keys])
    if not parts:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    rows = pd.concat(parts, ignore_index=True)
    rows[["format", "reason"]] = rows[["format", "reason"]].fillna("")
    summary = rows.groupby(keys, dropna=False).size().rename("files").reset_index()
    return summary.sort_values(
        ["stage", "cohort", "format", "status", "files"],
        ascending=[True, True, True, True, False],
        ignore_index=True,
    )
