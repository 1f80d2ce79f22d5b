"""The demo's comparisons pooled over several demo seeds, where one seed's retrieval
gallery (19 to 25 test studies) is too small to tell two variants apart.

Reads finished run folders (one per demo seed, e.g. the ``--keep`` folders of
``demo_seeds.py``): each one's ``results/evidence/retrieval_queries.csv`` and
``lvef_knn_scores.csv``, the per-query and per-ECG rows behind ``retrieval.csv`` and
``lvef_knn.csv``. Per comparison of ``--model`` with each of ``--versus`` (a variant, or
``random``: the exact expectation of a random ranking):

- retrieval: the mean-rank gain (the other's first-match rank − the model's; positive:
  the model ranks a match higher) and the P@1 difference, per phenotype and over the four
  phenotypes together, the mean over every seed's queries;
- LVEF kNN: the mean over seeds of the macro-AUROC difference, per cohort.

The CI is a paired bootstrap stratified by seed: each resample draws, within every seed,
as many of its test patients as it has, with replacement (a patient's rows enter and
leave together, in every phenotype), and both models are scored on the same resamples.
The seeds are different cohorts, not repeats of one, so the pooled figure says whether a
difference holds across the demo's worlds, not within any one.

    .venv/bin/python bench/pooled_seeds.py --runs run7 run11 run23 \
        --versus single_view random mean_pool cls_pool no_align --json bench/out/pooled_seeds.json
    .venv/bin/python bench/pooled_seeds.py --smoke   # planted evidence, known differences
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from figures import parse_args, write_figures

from echo2ecg.evaluate.metrics import macro_auroc, percentile_interval, resample_weights

RANDOM = "random"


def read_evidence(runs: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(retrieval query rows, LVEF score rows) of every run, with a ``run`` column (its
    position in ``runs``)."""
    queries, scores = [], []
    for index, run in enumerate(runs):
        evidence = Path(run) / "results" / "evidence"
        queries.append(pd.read_csv(evidence / "retrieval_queries.csv").assign(run=index))
        scores.append(pd.read_csv(evidence / "lvef_knn_scores.csv").assign(run=index))
    return pd.concat(queries, ignore_index=True), pd.concat(scores, ignore_index=True)


def stratified_weights(runs: np.ndarray, patients: np.ndarray, n_resamples: int, seed: int):
    """(B, N) bootstrap row weights resampling patients within each run (see
    :func:`echo2ecg.evaluate.metrics.resample_weights`, which draws one run's)."""
    weights = np.zeros((n_resamples, len(runs)))
    for run in np.unique(runs):
        rows = np.flatnonzero(runs == run)
        weights[:, rows] = resample_weights(len(rows), n_resamples, seed + int(run), patients[rows])
    return weights


def _rows_of(queries: pd.DataFrame, model: str) -> pd.DataFrame:
    part = queries[queries["model"] == model]
    return part.sort_values(["run", "phenotype", "ecg"]).reset_index(drop=True)


def retrieval_gains(
    queries: pd.DataFrame, model: str, versus: str, n_resamples: int, seed: int
) -> list[dict]:
    """Per phenotype and ``all``: pooled mean-rank gain and P@1 difference of ``model``
    over ``versus`` with stratified paired CIs (see the module docstring)."""
    ours = _rows_of(queries, model)
    if ours.empty:
        raise SystemExit(f"no retrieval queries of {model} in these runs")
    if versus == RANDOM:
        rank_other, top_other = ours["random_rank"], ours["random_top_hit"]
    else:
        theirs = _rows_of(queries, versus)
        keys = ["run", "phenotype", "ecg"]
        if not ours[keys].equals(theirs[keys]):
            raise SystemExit(f"{model} and {versus} were not scored on the same queries")
        rank_other, top_other = theirs["first_rank"], theirs["top_hit"]
    gain = (rank_other - ours["first_rank"]).to_numpy(float)
    top = (ours["top_hit"] - top_other).to_numpy(float)
    runs = ours["run"].to_numpy()
    patients = (ours["run"].astype(str) + ":" + ours["patient"].astype(str)).to_numpy()
    rows = []
    for phenotype in [*sorted(ours["phenotype"].unique()), "all"]:
        keep = (ours["phenotype"] == phenotype).to_numpy() | (phenotype == "all")
        weights = stratified_weights(runs[keep], patients[keep], n_resamples, seed)
        row = {
            "model": model,
            "versus": versus,
            "phenotype": phenotype,
            "n_runs": int(len(np.unique(runs[keep]))),
            "n_queries": int(keep.sum()),
            "n_patients": int(len(np.unique(patients[keep]))),
        }
        for name, values in (("rank_gain", gain[keep]), ("p_at_1_difference", top[keep])):
            resampled = weights @ values / weights.sum(axis=1)
            low, high = percentile_interval(resampled)
            row.update(
                {
                    name: round(float(values.mean()), 3),
                    f"{name}_ci": [round(low, 3), round(high, 3)],
                }
            )
        rows.append(row)
    return rows


def lvef_differences(
    scores: pd.DataFrame, model: str, versus: str, n_resamples: int, seed: int
) -> list[dict]:
    """Per cohort: the mean over runs of macro-AUROC(model) − AUROC(versus), with a
    stratified paired CI; none for ``random``."""
    if versus == RANDOM:
        return []
    rows = []
    for cohort, frame in scores.groupby("cohort"):
        points, resampled = [], []
        for run, part in frame.groupby("run"):
            ours = part[part["model"] == model].sort_values("ecg")
            theirs = part[part["model"] == versus].sort_values("ecg")
            if ours.empty or ours["ecg"].tolist() != theirs["ecg"].tolist():
                raise SystemExit(f"{model} and {versus} were not scored on the same ECGs")
            labels = ours["label"].to_numpy(int)
            columns = [c for c in ours.columns if c.startswith("score_")]
            weights = resample_weights(
                len(ours), n_resamples, seed + int(run), ours["patient"].to_numpy()
            )
            a, b = ours[columns].to_numpy(float), theirs[columns].to_numpy(float)
            points.append(macro_auroc(a, labels)[0] - macro_auroc(b, labels)[0])
            resampled.append(macro_auroc(a, labels, weights) - macro_auroc(b, labels, weights))
        low, high = percentile_interval(np.mean(resampled, axis=0))
        rows.append(
            {
                "model": model,
                "versus": versus,
                "cohort": cohort,
                "n_runs": len(points),
                "per_run": [round(float(p), 3) for p in points],
                "auroc_difference": round(float(np.mean(points)), 3),
                "auroc_difference_ci": [round(low, 3), round(high, 3)],
            }
        )
    return rows


def pooled(runs: list[Path], model: str, versus: list[str], n_resamples: int, seed: int) -> dict:
    """Every comparison of the module docstring for ``model`` against each of ``versus``."""
    queries, scores = read_evidence(runs)
    return {
        "runs": [str(run) for run in runs],
        "retrieval": [
            r for v in versus for r in retrieval_gains(queries, model, v, n_resamples, seed)
        ],
        "lvef_knn": [
            r for v in versus for r in lvef_differences(scores, model, v, n_resamples, seed)
        ],
    }


def _plant(folder: Path, rng: np.random.Generator) -> None:
    """Evidence of one planted run: ``good`` ranks every query's match one place above
    ``level``, and scores LVEF perfectly where ``level`` scores at random."""
    evidence = folder / "results" / "evidence"
    evidence.mkdir(parents=True)
    rows = []
    for phenotype in ("lvedv", "lvef"):
        for q in range(30):
            rank = float(rng.integers(2, 6))
            for model, first in (("good", rank - 1), ("level", rank)):
                rows.append(
                    {
                        "model": model,
                        "phenotype": phenotype,
                        "ecg": f"e{q}",
                        "patient": f"p{q // 2}",
                        "top_hit": float(first == 1),
                        "first_rank": first,
                        "random_top_hit": 0.25,
                        "random_rank": rank - 1,
                        "n_gallery": 8,
                    }
                )
    pd.DataFrame(rows).to_csv(evidence / "retrieval_queries.csv", index=False)
    labels = np.arange(60) % 3
    scores = []
    for model in ("good", "level"):
        probabilities = np.eye(3)[labels] if model == "good" else rng.dirichlet(np.ones(3), 60)
        for i, label in enumerate(labels):
            scores.append(
                {
                    "model": model,
                    "cohort": "internal",
                    "ecg": f"e{i}",
                    "patient": f"p{i // 3}",
                    "label": int(label),
                    **{f"score_{c}": probabilities[i, c] for c in range(3)},
                }
            )
    pd.DataFrame(scores).to_csv(evidence / "lvef_knn_scores.csv", index=False)


def smoke() -> dict:
    """Three planted runs: gains of exactly +1 rank against ``level``, 0 against random,
    and a perfect LVEF AUROC against a random one."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        runs = [Path(folder) / f"run{i}" for i in range(3)]
        for run in runs:
            _plant(run, rng)
        result = pooled(runs, "good", ["level", RANDOM], 200, 0)
    by = {(r["versus"], r["phenotype"]): r for r in result["retrieval"]}
    assert by["level", "all"]["rank_gain"] == 1.0 and by["level", "all"]["rank_gain_ci"] == [
        1.0,
        1.0,
    ]
    assert by["level", "all"]["n_queries"] == 180 and by["level", "all"]["n_patients"] == 45
    assert by[RANDOM, "lvef"]["rank_gain"] == 0.0
    assert by["level", "lvef"]["p_at_1_difference"] > 0
    (lvef,) = result["lvef_knn"]
    assert (
        lvef["versus"] == "level" and lvef["n_runs"] == 3 and lvef["auroc_difference_ci"][0] > 0.2
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=Path, nargs="+", help="finished run folders, one per seed")
    parser.add_argument("--model", default="echo2ecg")
    parser.add_argument(
        "--versus", nargs="+", default=["single_view", RANDOM, "mean_pool", "cls_pool", "no_align"]
    )
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parse_args(parser, {})
    if args.smoke:
        result = smoke()
    else:
        if not args.runs:
            parser.error("--runs is required (or --smoke)")
        result = pooled(args.runs, args.model, args.versus, args.resamples, args.seed)
    for row in result["retrieval"]:
        print(
            f"{row['model']} vs {row['versus']:>11} {row['phenotype']:>5}: rank gain "
            f"{row['rank_gain']:+.3f} {row['rank_gain_ci']}, P@1 {row['p_at_1_difference']:+.3f} "
            f"{row['p_at_1_difference_ci']} "
            f"({row['n_queries']} queries, {row['n_patients']} patients)"
        )
    for row in result["lvef_knn"]:
        print(
            f"{row['model']} vs {row['versus']:>11} LVEF {row['cohort']}: AUROC "
            f"{row['auroc_difference']:+.3f} {row['auroc_difference_ci']} per run {row['per_run']}"
        )
    write_figures(result, args.json)


if __name__ == "__main__":
    main()
