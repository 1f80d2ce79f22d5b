"""Patient-level bootstrap AUROC: 1,000 resamples of 2,000 patients' 5,000 test ECGs, 3 classes.

`echo2ecg.evaluate.metrics.bootstrap_aurocs` draws patients with replacement and scores every
resample at once from one sort (a resample is a row weight per ECG: how often its patient
was drawn); the reference stacks each resample's ECGs (every drawn patient's, with
repeats) and calls scikit-learn's `roc_auc_score`. Both see the same draws; their 1,000
AUROCs must agree to 1e-12.

    .venv/bin/python bench/bench_bootstrap.py --json bench/out/bench_bootstrap.json
    .venv/bin/python bench/bench_bootstrap.py --smoke   # 300 ECGs, 20 resamples
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from figures import parse_args, write_figures
from sklearn.metrics import roc_auc_score

from echo2ecg.evaluate.metrics import bootstrap_aurocs, knn_scores

SMOKE = {"n_test": 300, "patients": 100, "resamples": 20}


def _ecgs_per_patient(rng: np.random.Generator, n_patients: int, n_ecgs: int) -> np.ndarray:
    """Counts of 1 or more per patient adding up to ``n_ecgs``."""
    counts = np.ones(n_patients, int)
    extra = rng.choice(n_patients, n_ecgs - n_patients, replace=True)
    np.add.at(counts, extra, 1)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-test", type=int, default=5000)
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parse_args(parser, SMOKE)

    rng = np.random.default_rng(0)
    train_x, test_x = rng.normal(size=(3000, 16)), rng.normal(size=(args.n_test, 16))
    train_y = (train_x[:, 0] > 0.4).astype(int) + (train_x[:, 1] > 0).astype(int)
    test_y = (test_x[:, 0] > 0.4).astype(int) + (test_x[:, 1] > 0).astype(int)
    scores = knn_scores(train_x, train_y, test_x, k=5)  # kNN probabilities: heavy ties
    # 2,000 patients with 1 to 4 ECGs each (5,000 in all), in random order
    patients = rng.permutation(
        np.repeat(np.arange(args.patients), _ecgs_per_patient(rng, args.patients, args.n_test))
    )
    rows_of = [np.flatnonzero(patients == p) for p in range(args.patients)]
    seed = 11
    draws = np.random.default_rng(seed).integers(0, args.patients, (args.resamples, args.patients))

    started = time.perf_counter()
    reference = []
    for drawn in draws:
        rows = np.concatenate([rows_of[p] for p in drawn])
        reference.append(
            roc_auc_score(test_y[rows], scores[rows], multi_class="ovr", average="macro")
        )
    reference = np.array(reference)
    reference_s = time.perf_counter() - started

    started = time.perf_counter()
    fast = bootstrap_aurocs(scores, test_y, args.resamples, seed, groups=patients)
    fast_s = time.perf_counter() - started

    max_diff = float(np.abs(fast - reference).max())
    assert max_diff < 1e-12, f"bootstrap AUROCs differ by {max_diff}"
    result = {
        "n_test": args.n_test,
        "patients": args.patients,
        "classes": 3,
        "resamples": args.resamples,
        "reference_seconds": round(reference_s, 3),
        "vectorised_seconds": round(fast_s, 3),
        "speedup": round(reference_s / fast_s, 1),
        "max_abs_difference": max_diff,
    }
    print(json.dumps(result, indent=2))
    write_figures(result, args.json)


if __name__ == "__main__":
    main()
