"""Report tables: the CSV for machines, a Markdown rendering for people and an HTML one for
the Snakemake report (which shows HTML inline but offers a CSV only as a download)."""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
import pandas as pd


def _cell_text(value, float_digits: int) -> str:
    if isinstance(value, (float, np.floating)):
        if pd.isna(value):
            return ""
        if value and abs(value) < 0.5 * 10.0**-float_digits:  # would read as 0.000
            return f"{value:.3g}"
        return f"{value:.{float_digits}f}"
    return "" if value is None or value is pd.NA else str(value)


def markdown_table(table: pd.DataFrame, float_digits: int = 3) -> str:
    """A GitHub-style Markdown table; floats rounded to ``float_digits``."""

    def cell(value) -> str:
        return _cell_text(value, float_digits).replace("|", "\\|")

    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def _write_text_by_rename(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary name, so a reader never sees half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_markdown(table: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Write ``# title`` and the table as Markdown, by rename."""
    return _write_text_by_rename(path, f"# {title}\n\n{markdown_table(table)}")


_HTML_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1e293b; }
h1 { font-size: 1.25rem; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { padding: 0.3rem 0.6rem; border-bottom: 1px solid #e2e8f0; white-space: nowrap; }
th { text-align: left; background: #f1f5f9; position: sticky; top: 0; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
td.yes { background: #dcfce7; } td.no { background: #fee2e2; }
td.undetermined { background: #f1f5f9; }
"""
# verdict columns get a colour per value (findings.csv's ``holds``)
_VERDICT_COLUMNS = ("holds",)


def html_table(table: pd.DataFrame, title: str, float_digits: int = 3) -> str:
    """A self-contained HTML page: ``title`` and the table, floats rounded to
    ``float_digits``, numbers right-aligned, verdicts (yes / no / undetermined) coloured."""
    header = "".join(f"<th>{html.escape(str(name))}</th>" for name in table.columns)
    rows = []
    for row in table.itertuples(index=False):
        cells = []
        for name, value in zip(table.columns, row):
            numeric = (
                pd.api.types.is_number(value)
                and not pd.api.types.is_bool(value)
                and not pd.isna(value)
            )
            verdict = name in _VERDICT_COLUMNS and value in ("yes", "no", "undetermined")
            css = "number" if numeric else (value if verdict else "")
            attribute = f' class="{css}"' if css else ""
            cells.append(f"<td{attribute}>{html.escape(_cell_text(value, float_digits))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{_HTML_STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
        f"<table><thead><tr>{header}</tr></thead><tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table></body></html>\n"
    )


def write_html(table: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Write :func:`html_table` of ``table`` to ``path``, by rename."""
    return _write_text_by_rename(path, html_table(table, title))


def write_report_table(
    table: pd.DataFrame, csv_path: str | Path, title: str, provenance: dict
) -> None:
    """``X.csv``, ``X.md``, ``X.html`` and ``X.provenance.json`` side by side, each written
    by rename."""
    import json

    from echo2ecg.data.store import write_table

    csv_path = Path(csv_path)
    write_table(table, csv_path)
    write_markdown(table, csv_path.with_suffix(".md"), title)
    write_html(table, csv_path.with_suffix(".html"), title)
    _write_text_by_rename(
        csv_path.with_name(csv_path.stem + ".provenance.json"),
        json.dumps(provenance, indent=2, sort_keys=True, default=str),
    )
