"""What the demo's poor acoustic windows cost a mean of a study's views, raw and through
each trained variant's per-view map.

Reads a finished demo run folder (``demo.enabled``): its ``config.yaml``, the training
cohort's echo ledgers and view-embedding shards (``results/``) and each named variant's
``results/models/<variant>/last.pt``. Which views were taken through a poor window is
the demo plan's (``synth.cohort.plan_cohort`` of the run's ``demo.seed`` and
``demo.scale``, matched by view pseudonym): the pipeline never reads it. Over the studies
that hold both apical views:

- ``detect_auroc``: a logistic regression (5-fold over studies) telling poor apical
  clips from good ones in the raw view embeddings;
- ``probe``: per space (``raw``, the view embeddings standardised as the variants
  standardise them, by the training views' statistics; then each variant's per-view
  linear map of them: ``single_view``'s ``echo_proj``, a pool's ``view_proj``), a ridge
  regression fit on good apical clips of four folds of studies and read on the fifth
  fold's studies with a poor plane: from their good apical clips (``good_clips``, the
  probe's mean over them) and from the mean of all their apical clips (``apical_mean``),
  Pearson r per phenotype. The gap between the two is what a mean of views pays for the
  poor plane in that space; a map trained to ignore poor planes narrows it;
- ``attention_weight``: for attention and CLS pools, the mean weight the trained pool
  gives a study's poor plane and its other views.

    .venv/bin/python bench/poor_planes.py --run <run folder> \
        --variants single_view echo2ecg mean_pool --json bench/out/poor_planes.json
    .venv/bin/python bench/poor_planes.py --run <run folder> --models <folder> \
        --variants echo2ecg@42   # a model bench/training_seeds.py --keep retrained
    .venv/bin/python bench/poor_planes.py --smoke   # planted embeddings, untrained models
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from figures import parse_args, write_figures
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from training_seeds import run_stores

from echo2ecg.data.ledger import read_shard_ledgers
from echo2ecg.data.pseudonym import pseudonymise, resolve_key
from echo2ecg.evaluate.features import load_variant
from echo2ecg.models.echo2ecg import Echo2ECG
from echo2ecg.synth.cohort import demo_specs, plan_cohort
from echo2ecg.synth.echo_views import APICAL_VIEWS
from echo2ecg.train.pretrain import build_model, read_rows

PROBED = ("lvedv", "lvesv", "lvef")
ALPHAS = np.logspace(-1, 6, 15)


def demo_clips(run: Path, config: dict) -> tuple[pd.DataFrame, np.ndarray]:
    """The training cohort's embedded views (one row each: ``study``, ``type``, ``poor``,
    the study's phenotypes, and the ledger's ``shard``, ``row`` and ``source``) and their
    (N, 512) raw embeddings, from the demo plan."""
    stores = run_stores(run, config)
    ledger = read_shard_ledgers(stores["ledgers"])
    ok = ledger[ledger["status"] == "ok"].reset_index(drop=True)
    key = resolve_key(config["privacy"]["pseudonym_key"], demo=True)
    spec = demo_specs(config["demo"]["seed"], config["demo"]["scale"])[0]
    plan = pd.DataFrame(
        {
            "view": pseudonymise(view.sop_uid, key),
            "type": view.view,
            "poor": view.poor_window,
            **{name: getattr(study.phenotype, name) for name in PROBED},
        }
        for patient in plan_cohort(spec)
        for study in patient.studies
        for view in study.views
        if view.kind == "view"
    )
    clips = ok[["study", "view", "shard", "row", "source"]].merge(
        plan, on="view", how="left", validate="one_to_one"
    )
    if clips["type"].isna().any():
        raise SystemExit(
            f"{int(clips['type'].isna().sum())} embedded views are not in the demo plan of "
            f"seed {config['demo']['seed']}: is this a demo run folder?"
        )
    return clips, read_rows(stores["embeddings"], "embeddings", ok["shard"], ok["row"])


def with_both_planes(clips: pd.DataFrame, raw: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """The clips of studies holding every apical view type, with a ``study_poor`` column,
    and their rows of ``raw`` (one row per clip of ``clips``), both in the same order."""
    types = clips[clips["type"].isin(APICAL_VIEWS)].groupby("study")["type"].nunique()
    kept = clips["study"].isin(types[types == len(APICAL_VIEWS)].index).to_numpy()
    keep = clips[kept].copy()
    keep["study_poor"] = keep.groupby("study")["poor"].transform("any")
    return keep.reset_index(drop=True), raw[kept]


def detect_auroc(clips: pd.DataFrame, vectors: np.ndarray) -> float:
    """Cross-validated AUROC of telling poor apical clips from good ones (folds by study)."""
    apical = clips["type"].isin(APICAL_VIEWS).to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    score = cross_val_predict(
        model,
        vectors[apical],
        clips["poor"][apical],
        groups=clips["study"][apical],
        cv=GroupKFold(5),
        method="predict_proba",
    )[:, 1]
    return round(float(roc_auc_score(clips["poor"][apical], score)), 3)


def mean_cost(clips: pd.DataFrame, vectors: np.ndarray, folds: int = 5) -> dict:
    """Per phenotype, r of a good-clip ridge probe on held-out poor studies' good apical
    clips and on the mean of all their apical clips (see the module docstring)."""
    studies = np.array(sorted(clips["study"].unique()))
    order = np.random.default_rng(0).permutation(len(studies))
    fold_of = dict(zip(studies[order], np.arange(len(studies)) % folds))
    fold = clips["study"].map(fold_of).to_numpy()
    apical = clips["type"].isin(APICAL_VIEWS).to_numpy()
    poor = clips["poor"].to_numpy()
    held_out = clips[apical & clips["study_poor"].to_numpy()]
    result = {}
    for name in PROBED:
        truth, good_clips, apical_mean = [], [], []
        for k in range(folds):
            fit = apical & ~poor & (fold != k)
            probe = RidgeCV(alphas=ALPHAS).fit(vectors[fit], clips[name][fit])
            for _, rows in held_out[fold[held_out.index] == k].groupby("study"):
                truth.append(rows[name].iloc[0])
                good = rows.index[~rows["poor"]]
                good_clips.append(probe.predict(vectors[good]).mean())
                apical_mean.append(probe.predict(vectors[rows.index].mean(0, keepdims=True))[0])
        result[name] = {
            "good_clips": round(float(np.corrcoef(good_clips, truth)[0, 1]), 3),
            "apical_mean": round(float(np.corrcoef(apical_mean, truth)[0, 1]), 3),
        }
    result["n_poor_studies"] = int(held_out["study"].nunique())
    return result


def per_view_map(model: Echo2ECG, standardised: torch.Tensor) -> np.ndarray:
    """(N, D) each view through the variant's linear map before any pooling."""
    with torch.no_grad():
        if hasattr(model.view_pool, "view_proj"):
            return model.view_pool.view_proj(standardised).numpy()
        return model.echo_proj(standardised).numpy()  # the single-view baseline


def attention_weights(model: Echo2ECG, clips: pd.DataFrame, standardised: torch.Tensor):
    """(poor plane, other views) mean weights of an attention or CLS pool over the
    studies with a poor plane; None for pools without attention."""
    pool = model.view_pool
    if not hasattr(pool, "view_weights"):
        return None
    on_poor, on_others = [], []
    for _, rows in clips[clips["study_poor"]].groupby("study"):
        views = standardised[rows.index.tolist()][None]
        with torch.no_grad():
            weights = pool.view_weights(views, torch.ones(views.shape[:2], dtype=torch.bool))
        weights = weights[0].numpy()
        flags = rows["poor"].to_numpy()
        on_poor.append(weights[flags].mean())
        on_others.append(weights[~flags].mean())
    return {
        "poor_plane": round(float(np.mean(on_poor)), 3),
        "other_views": round(float(np.mean(on_others)), 3),
    }


def poor_plane_costs(clips: pd.DataFrame, raw: np.ndarray, models: dict[str, Echo2ECG]) -> dict:
    """Every measurement of the module docstring; ``clips`` from :func:`with_both_planes`."""
    raw = torch.from_numpy(np.asarray(raw, dtype=np.float32))
    standardised = {v: (raw - m.view_mean) / m.view_scale for v, m in models.items()}
    result = {
        "n_studies": int(clips["study"].nunique()),
        "detect_auroc": detect_auroc(clips, raw.numpy()),
        # every variant standardises by the same training views: any one stands for all
        "probe": {"raw": mean_cost(clips, next(iter(standardised.values()), raw).numpy())},
        "attention_weight": {},
    }
    for variant, model in models.items():
        views = standardised[variant]
        result["probe"][variant] = mean_cost(clips, per_view_map(model, views))
        result["attention_weight"][variant] = attention_weights(model, clips, views)
    return result


def smoke_clips(n_studies: int = 60) -> tuple[pd.DataFrame, np.ndarray]:
    """Planted clips: both apical planes per study, three studies in four with one plane
    showing another patient's LVEDV along the same direction, plus a quality cue; every
    tenth study, the first among them, holds its A4C alone (the read-outs leave it out)."""
    rng = np.random.default_rng(0)
    direction, cue = rng.normal(size=(2, 512))
    rows, vectors = [], []
    for s in range(n_studies):
        values = {name: rng.normal(100, 20) for name in PROBED}
        poor_plane = int(rng.integers(2)) if s % 4 else -1
        for i, view in enumerate(APICAL_VIEWS[:1] if s % 10 == 0 else APICAL_VIEWS):
            poor = i == poor_plane
            shown = rng.normal(100, 20) if poor else values["lvedv"]
            vector = (shown - 100) / 20 * direction + 0.3 * rng.normal(size=512) + poor * cue
            rows.append(
                {"study": f"s{s:02d}", "view": f"v{s}{i}", "type": view, "poor": poor, **values}
            )
            vectors.append(vector)
    return pd.DataFrame(rows), np.array(vectors, dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("."), help="a finished demo run folder")
    parser.add_argument("--variants", nargs="+", default=["single_view", "echo2ecg"])
    parser.add_argument(
        "--models",
        type=Path,
        help="where each variant's <variant>/last.pt lies (default: the run's results/models)",
    )
    parser.add_argument("--json", type=Path)
    args = parse_args(parser, {})
    torch.set_num_threads(1)
    if args.smoke:
        clips, raw = smoke_clips()
        config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
        encoder = {**config["ecg_encoder"], "weights": None}
        models = {}
        for variant in args.variants:
            torch.manual_seed(0)
            models[variant] = build_model(
                encoder, config["variants"][variant]["pooling"], config["aggregator"]
            ).eval()
            models[variant].fit_view_standardization(torch.from_numpy(raw))
    else:
        config = yaml.safe_load((args.run / "config.yaml").read_text())
        clips, raw = demo_clips(args.run, config)
        folder = args.models if args.models is not None else args.run / "results" / "models"
        models = {v: load_variant(folder / v / "last.pt")[0] for v in args.variants}
    clips, raw = with_both_planes(clips, raw)
    result = {
        "run": "smoke" if args.smoke else str(args.run),
        **poor_plane_costs(clips, raw, models),
    }
    print(json.dumps(result, indent=1))
    if args.smoke:  # the planted cue is found, and a plain mean pays for the other heart
        assert result["detect_auroc"] > 0.95, result
        raw_lvedv = result["probe"]["raw"]["lvedv"]
        assert raw_lvedv["good_clips"] > 0.9 > 0.8 > raw_lvedv["apical_mean"], raw_lvedv
        weights = result["attention_weight"]["echo2ecg"]
        assert 0 < weights["poor_plane"] < 1 and 0 < weights["other_views"] < 1, weights
    write_figures(result, args.json)


if __name__ == "__main__":
    main()
