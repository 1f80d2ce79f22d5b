"""Bootstrap AUROC: 1,000 resamples of a 3-class, 5,000-sample test set.

`echo2ecg.evaluate.macro_auroc` scores every resample at once from one sort (resamples
as row weights); the reference loops over scikit-learn's `roc_auc_score` on each drawn
resample. Both see the same draws; their 1,000 AUROCs must agree to 1e-12.

    .venv/bin/python bench/bench_bootstrap.py --json bench/out/bench_bootstrap.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from echo2ecg.evaluate import knn_scores, macro_auroc

from figures import write_figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-test", type=int, default=5000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    train_x, test_x = rng.normal(size=(3000, 16)), rng.normal(size=(args.n_test, 16))
    train_y = (train_x[:, 0] > 0.4).astype(int) + (train_x[:, 1] > 0).astype(int)
    test_y = (test_x[:, 0] > 0.4).astype(int) + (test_x[:, 1] > 0).astype(int)
    scores = knn_scores(train_x, train_y, test_x, k=5)  # kNN probabilities: heavy ties
    draws = rng.integers(0, args.n_test, (args.resamples, args.n_test))

    started = time.perf_counter()
    reference = np.array([roc_auc_score(test_y[d], scores[d], multi_class="ovr", average="macro")
                          for d in draws])
    reference_s = time.perf_counter() - started

    started = time.perf_counter()
    counts = np.stack([np.bincount(d, minlength=args.n_test) for d in draws]).astype(np.float64)
    fast = macro_auroc(scores, test_y, counts)
    fast_s = time.perf_counter() - started

    max_diff = float(np.abs(fast - reference).max())
    assert max_diff < 1e-12, f"bootstrap AUROCs differ by {max_diff}"
    result = {"n_test": args.n_test, "classes": 3, "resamples": args.resamples,
              "reference_seconds": round(reference_s, 3), "vectorised_seconds": round(fast_s, 3),
              "speedup": round(reference_s / fast_s, 1), "max_abs_difference": max_diff}
    print(json.dumps(result, indent=2))
    write_figures(result, args.json)


if __name__ == "__main__":
    main()
