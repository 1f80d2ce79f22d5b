"""Figures for the report, drawn on a bare :class:`matplotlib.figure.Figure` so that no
process-wide backend is chosen at import."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure


def plot_shd_scaling(table: pd.DataFrame, path: str | Path) -> Path:
    """SHD AUROC against the training fraction (log x), one line per model, CI bands."""
    figure = Figure(figsize=(6, 4), dpi=120)
    axis = figure.subplots()
    finite = table[table["auroc"].notna()]
    if finite.empty:  # a cohort too small for any fraction to be scored
        axis.text(
            0.5,
            0.5,
            "no AUROC could be computed\n(too few test cases per class)",
            ha="center",
            va="center",
            transform=axis.transAxes,
        )
    for model, rows in finite.groupby("model", sort=False):
        rows = rows.sort_values("fraction")
        x = rows["fraction"] * 100
        axis.plot(x, rows["auroc"], marker="o", label=model)
        axis.fill_between(x, rows["ci_low"], rows["ci_high"], alpha=0.15)
    if not finite.empty:
        axis.set_xscale("log")
    axis.set_xlabel("training set used (%)")
    axis.set_ylabel("SHD AUROC (95 % CI)")
    axis.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    axis.legend(fontsize=8)
    axis.set_title("Data scaling: kNN on ECG features")
    figure.tight_layout()
    figure.savefig(path)
    return Path(path)


def plot_history(history: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Train and validation loss per epoch → PNG at ``path`` (an empty history gives a
    figure that says so)."""
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    if len(history):
        axes.plot(history["epoch"], history["train_loss"], marker="o", label="train")
        axes.plot(history["epoch"], history["val_loss"], marker="o", label="validation")
        axes.legend()
    else:
        axes.text(0.5, 0.5, "not trained", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("epoch")
    axes.set_ylabel("CLIP loss")
    axes.set_title(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
