"""What each trained variant's joint space holds of the phenotypes, study side and ECG side.

Reads a finished run's ``results/`` folder: the internal cohort's pairs (splits and
phenotypes) and each variant's ``features/<variant>/internal.npz`` (``study_joint``,
``ecg_joint``). Per variant and phenotype, a ridge regression (RidgeCV over alphas 1e-3
to 1e3) is fit on the training split's L2-normalised joint-space vectors and scored on
the test split (Pearson r): ``study`` for the echo studies, ``ecg`` for the ECGs (an
ECG's labels as the evaluation takes them, ``downstream.ecg_labels``). For the
studies the same probe also runs 5-fold within the training split (``study_train_cv``):
a study side that reads a phenotype well there and badly on the test studies has fit
its training studies rather than learnt what their views show.

    .venv/bin/python bench/joint_space_probe.py --results results \
        --json bench/out/joint_space_probe.json
    .venv/bin/python bench/joint_space_probe.py --smoke   # a planted phenotype, temporary folder
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from figures import parse_args, write_figures
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import cross_val_predict

from echo2ecg.evaluate.downstream import ecg_labels
from echo2ecg.evaluate.feature_files import load_features
from echo2ecg.train.pairs import read_id_table
from echo2ecg.vocabulary import PHENOTYPES

ALPHAS = np.logspace(-3, 3, 13)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12)


def _r(a: np.ndarray, b: np.ndarray) -> float:
    return round(float(np.corrcoef(a, b)[0, 1]), 3)


def probe(vectors: np.ndarray, table: pd.DataFrame) -> dict[str, float]:
    """Test-split r per phenotype of a ridge fit on the training split's rows.

    vectors (N, D) float, one row per entry of ``table`` (columns ``split`` and the
    phenotypes)."""
    x = _unit(vectors)
    train = (table["split"] == "train").to_numpy()
    test = (table["split"] == "test").to_numpy()
    return {
        name: _r(RidgeCV(alphas=ALPHAS).fit(x[train], y[train]).predict(x[test]), y[test])
        for name in PHENOTYPES
        for y in [table[name].to_numpy(float)]
    }


def probe_within_train(vectors: np.ndarray, table: pd.DataFrame) -> dict[str, float]:
    """5-fold cross-validated r per phenotype within the training split's rows."""
    train = (table["split"] == "train").to_numpy()
    x = _unit(vectors)[train]
    result = {}
    for name in PHENOTYPES:
        y = table[name].to_numpy(float)[train]
        result[name] = _r(cross_val_predict(RidgeCV(alphas=ALPHAS), x, y, cv=5), y)
    return result


def label_tables(pairs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per study, per ECG) split and phenotypes, indexed by pseudonym."""
    studies = pairs.drop_duplicates("study").set_index("study")[["split", *PHENOTYPES]]
    return studies, ecg_labels(pairs)


def variant_probes(features: dict, studies: pd.DataFrame, ecgs: pd.DataFrame) -> dict:
    """The three probes of one variant's features: study, study_train_cv and ecg."""
    out = {}
    for side, ids, vectors, table in (
        ("study", features["study"], features["study_joint"], studies),
        ("ecg", features["ecg"], features["ecg_joint"], ecgs),
    ):
        rows = table.reindex(ids)
        known = rows["split"].notna().to_numpy()  # studies or ECGs of no pair
        out[side] = probe(vectors[known], rows[known])
        if side == "study":
            out["study_train_cv"] = probe_within_train(vectors[known], rows[known])
        out[f"n_{side}_test"] = int((rows["split"] == "test").sum())
    return out


def write_smoke_results(folder: Path) -> None:
    """A results folder of one variant whose study vectors carry LVEF linearly (60
    studies, 2 ECGs each) and whose ECG vectors carry nothing."""
    rng = np.random.default_rng(0)
    n = 60
    phenotypes = pd.DataFrame(rng.normal(size=(n, len(PHENOTYPES))), columns=list(PHENOTYPES))
    studies = [f"s{i}" for i in range(n)]
    split = np.where(np.arange(n) < 40, "train", "test")
    pairs = pd.DataFrame(
        {
            "patient": np.repeat(studies, 2),
            "ecg": [f"e{i}" for i in range(2 * n)],
            "study": np.repeat(studies, 2),
            "split": np.repeat(split, 2),
            **{name: np.repeat(phenotypes[name].to_numpy(), 2) for name in PHENOTYPES},
            "ecg_source": "ecg_files",
        }
    )
    (folder / "pairs" / "internal").mkdir(parents=True)
    pairs.to_csv(folder / "pairs" / "internal" / "pairs.csv", index=False)
    direction = rng.normal(size=16)
    study_joint = 3.0 + np.outer(phenotypes["lvef"], direction) + 0.3 * rng.normal(size=(n, 16))
    (folder / "features" / "toy").mkdir(parents=True)
    np.savez(
        folder / "features" / "toy" / "internal.npz",
        ecg=pairs["ecg"].to_numpy(str),
        ecg_joint=rng.normal(size=(2 * n, 16)).astype(np.float32),
        study=np.array(studies, dtype=str),
        study_joint=study_joint.astype(np.float32),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--variants", nargs="+", help="default: every features/ folder")
    parser.add_argument("--json", type=Path)
    args = parse_args(parser, {})
    with tempfile.TemporaryDirectory() as scratch:
        results = args.results
        if args.smoke:
            results = Path(scratch)
            write_smoke_results(results)
        pairs = read_id_table(results / "pairs" / "internal" / "pairs.csv")
        studies, ecgs = label_tables(pairs[pairs["ecg_source"] == "ecg_files"])
        variants = args.variants or sorted(p.name for p in (results / "features").iterdir())
        result = {
            v: variant_probes(
                load_features(results / "features" / v / "internal.npz"), studies, ecgs
            )
            for v in variants
        }
    print(json.dumps(result, indent=2))
    if args.smoke:
        toy = result["toy"]
        assert toy["study"]["lvef"] > 0.8 and toy["study_train_cv"]["lvef"] > 0.8, toy
        assert abs(toy["ecg"]["lvef"]) < 0.5, toy  # the ECG vectors carry nothing
    write_figures(result, args.json)


if __name__ == "__main__":
    main()
