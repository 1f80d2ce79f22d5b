"""Ledgers across shards: who was accepted, who was rejected and why."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from echo2ecg.data.store import read_ledger

SUMMARY_COLUMNS = ("stage", "cohort", "status", "reason", "files")


def cohort_of(ledger_path: str | Path) -> str:
    """The cohort a shard ledger belongs to: results/data/{cohort}/{stage}/shard_X/ledger.csv."""
    return Path(ledger_path).parents[2].name


def shard_of_ledger(ledger_path: str | Path) -> str:
    """The shard label of a shard ledger: .../shard_0007/ledger.csv → "0007"."""
    return Path(ledger_path).parent.name.removeprefix("shard_")


def read_shard_ledgers(paths: list[str]) -> pd.DataFrame:
    """Several shard ledgers as one table, with a ``shard`` column."""
    parts = [read_ledger(p).assign(shard=shard_of_ledger(p)) for p in paths]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["shard"])


def usable_views_per_study(echo_ledger: pd.DataFrame) -> pd.Series:
    """Study pseudonym → number of views extracted without error."""
    return echo_ledger[echo_ledger["status"] == "ok"].groupby("study").size()


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
