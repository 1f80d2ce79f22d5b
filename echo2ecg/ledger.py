"""Ledgers across shards: who was accepted, who was rejected and why."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .store import read_ledger

SUMMARY_COLUMNS = ("stage", "cohort", "status", "reason", "files")


def cohort_of(ledger_path: str | Path) -> str:
    """The cohort a shard ledger belongs to: results/data/{cohort}/{stage}/shard_X/ledger.csv."""
    return Path(ledger_path).parents[2].name


def summarise_ledgers(ledgers: dict[str, list[str]]) -> pd.DataFrame:
    """Count files per stage, cohort, status and reason.

    ``ledgers`` maps a stage name (``echo``, ``ecg``) to its shard ledgers. Every file of
    every ledger is counted once, so the counts add up to the inputs.
    """
    parts = []
    for stage, paths in ledgers.items():
        for path in paths:
            ledger = read_ledger(path)
            parts.append(ledger.assign(stage=stage, cohort=cohort_of(path))[
                ["stage", "cohort", "status", "reason"]])
    if not parts:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    rows = pd.concat(parts, ignore_index=True)
    rows["reason"] = rows["reason"].fillna("")
    summary = (rows.groupby(["stage", "cohort", "status", "reason"], dropna=False)
               .size().rename("files").reset_index())
    return summary.sort_values(["stage", "cohort", "status", "files"],
                               ascending=[True, True, True, False], ignore_index=True)
