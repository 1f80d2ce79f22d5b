"""Figures for the report."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)
import pandas as pd  # noqa: E402


def plot_shd_scaling(table: pd.DataFrame, path: str | Path) -> Path:
    """SHD AUROC against the training fraction (log x), one line per model, CI bands."""
    figure, axis = plt.subplots(figsize=(6, 4), dpi=120)
    finite = table[table["auroc"].notna()]
    if finite.empty:  # a cohort too small for any fraction to be scored
        axis.text(0.5, 0.5, "no AUROC could be computed\n(too few test cases per class)",
                  ha="center", va="center", transform=axis.transAxes)
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
    plt.close(figure)
    return Path(path)
