"""Report tables: the CSV for machines and a Markdown rendering for people."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def markdown_table(table: pd.DataFrame, float_digits: int = 3) -> str:
    """A GitHub-style Markdown table; floats rounded to ``float_digits``."""
    def cell(value) -> str:
        if isinstance(value, float):
            return "" if pd.isna(value) else f"{value:.{float_digits}f}"
        return "" if value is None or value is pd.NA else str(value).replace("|", "\\|")

    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |"
            for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def write_markdown(table: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Write ``# title`` and the table as Markdown, by rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(f"# {title}\n\n{markdown_table(table)}", encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_report_table(table: pd.DataFrame, csv_path: str | Path, title: str,
                       provenance: dict) -> None:
    """``X.csv``, ``X.md`` and ``X.provenance.json`` side by side, each written by rename."""
    import json

    from .store import write_table

    csv_path = Path(csv_path)
    write_table(table, csv_path)
    write_markdown(table, csv_path.with_suffix(".md"), title)
    record = csv_path.with_name(csv_path.stem + ".provenance.json")
    tmp = record.with_name(f".{record.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(provenance, indent=2, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, record)
