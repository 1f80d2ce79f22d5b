"""ECGs per second of the ECG preprocessing on one core, against the reference ALS.

The reference is the hand-written scipy loop the OTiS / Echo2ECG code used for drift
removal (rebuild the sparse system, ``spsolve``, reweight; 5 solves per lead). The
pipeline uses pybaselines' ``asls`` with pentapy's pentadiagonal solver (echo2ecg.data.ecg).
Both are timed on the drift-removal step alone and on the whole preparation (the other
steps are shared), on synthetic 12 x 5000 ECGs at 500 Hz, and their outputs must agree
to 1e-5 (asserted).

    .venv/bin/python bench/bench_ecg_prep.py --n-ecgs 50 --json bench/out/ecg_prep.json
    .venv/bin/python bench/bench_ecg_prep.py --smoke   # 2 ECGs, 1 repeat
"""

from __future__ import annotations

import os

# One core, before numpy loads its BLAS: the figure is per core.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pybaselines  # noqa: E402
import scipy  # noqa: E402
from figures import parse_args, write_figures  # noqa: E402
from scipy import sparse  # noqa: E402
from scipy.sparse.linalg import spsolve  # noqa: E402

from echo2ecg.data.ecg import (  # noqa: E402
    LEAD_GROUPS,
    clip_outliers,
    crop_or_pad,
    groupwise_zscore,  # noqa: E402
    prepare_ecg,
    remove_baseline,
)
from echo2ecg.data.ecg_formats import RawEcg  # noqa: E402

FS, N_SAMPLES = 500.0, 5000
LAM, P, N_SOLVES = 1e7, 0.3, 5
TOLERANCE = 1e-5
SMOKE = {"n_ecgs": 2, "repeats": 1}


def spsolve_asls(
    y: np.ndarray, lam: float = LAM, p: float = P, n_solves: int = N_SOLVES
) -> np.ndarray:
    """Reference ALS baseline of one lead (T,): Eilers' loop with scipy's sparse solver."""
    n = len(y)
    second_difference = sparse.diags([1.0, -2.0, 1.0], [0, 1, 2], shape=(n - 2, n))
    penalty = lam * (second_difference.T @ second_difference)
    weights = np.ones(n)
    for _ in range(n_solves):
        system = sparse.csc_matrix(sparse.diags(weights) + penalty)
        baseline = spsolve(system, weights * y)
        weights = np.where(y > baseline, p, 1 - p)
    return baseline


def reference_remove_baseline(x: np.ndarray) -> np.ndarray:
    return np.stack([lead - spsolve_asls(lead) for lead in x])


def reference_prepare(raw: RawEcg) -> np.ndarray:
    """The whole preparation of a 500 Hz, 10 s ECG with the reference drift removal."""
    x = clip_outliers(crop_or_pad(np.where(np.isnan(raw.signal), 0.0, raw.signal), N_SAMPLES))
    return groupwise_zscore(reference_remove_baseline(x), LEAD_GROUPS).astype(np.float32)


def synthetic_ecgs(n_ecgs: int, seed: int = 0) -> list[np.ndarray]:
    """n (12, 5000) mV ECG-like recordings: Gaussian P-QRS-T beats, drift, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(N_SAMPLES) / FS
    waves = np.array(
        [
            (-0.16, 0.025, 0.15),
            (-0.02, 0.01, -0.1),
            (0.0, 0.012, 1.2),
            (0.03, 0.01, -0.25),
            (0.25, 0.05, 0.3),
        ]
    )  # offset s, width s, mV
    ecgs = []
    for _ in range(n_ecgs):
        beat_times = np.arange(rng.uniform(0.1, 0.6), t[-1], 1 / rng.uniform(0.8, 1.8))
        lead = sum(
            a * np.exp(-0.5 * ((t - r - o) / w) ** 2) for r in beat_times for o, w, a in waves
        )
        scales = rng.uniform(-1.5, 1.5, (12, 1))
        drift = rng.uniform(0.1, 1.0, (12, 1)) * np.sin(
            2 * np.pi * rng.uniform(0.05, 0.5, (12, 1)) * t + rng.uniform(0, 2 * np.pi, (12, 1))
        )
        ecgs.append(scales * lead + drift + rng.normal(0, 0.02, (12, N_SAMPLES)))
    return ecgs


def time_per_ecg(function, inputs, repeats: int) -> tuple[float, list[np.ndarray]]:
    """Best-of-repeats seconds per input, and the outputs of the last run."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        outputs = [function(x) for x in inputs]
        best = min(best, (time.perf_counter() - start) / len(inputs))
    return best, outputs


def max_difference(outputs, reference_outputs) -> float:
    return max(float(np.abs(a - b).max()) for a, b in zip(outputs, reference_outputs))


def run(n_ecgs: int, repeats: int) -> dict:
    ecgs = synthetic_ecgs(n_ecgs)
    clipped = [clip_outliers(x) for x in ecgs]  # drift removal sees what it sees in the recipe
    raws = [RawEcg(x, FS) for x in ecgs]
    steps = {
        "drift removal (ALS, 12 leads)": (
            lambda x: remove_baseline(x, LAM, P, N_SOLVES),
            reference_remove_baseline,
            clipped,
        ),
        "prepare_ecg (whole recipe)": (
            lambda raw: prepare_ecg(raw, asls_lam=LAM, asls_p=P, asls_iterations=N_SOLVES),
            reference_prepare,
            raws,
        ),
    }
    rows = []
    for step, (pipeline, reference, inputs) in steps.items():
        seconds, outputs = time_per_ecg(pipeline, inputs, repeats)
        reference_seconds, reference_outputs = time_per_ecg(reference, inputs, repeats)
        difference = max_difference(outputs, reference_outputs)
        assert difference <= TOLERANCE, f"{step}: outputs differ by {difference:.2e}"
        rows.append(
            {
                "step": step,
                "pipeline_ecgs_per_s": 1 / seconds,
                "reference_ecgs_per_s": 1 / reference_seconds,
                "speedup": reference_seconds / seconds,
                "max_abs_difference": difference,
            }
        )
    return {
        "n_ecgs": n_ecgs,
        "ecg_shape": [12, N_SAMPLES],
        "fs_hz": FS,
        "repeats": repeats,
        "lam": LAM,
        "p": P,
        "solves_per_lead": N_SOLVES,
        "threads": 1,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pybaselines": pybaselines.__version__,
        "rows": rows,
    }


def print_table(result: dict) -> None:
    print(
        f"{result['n_ecgs']} synthetic ECGs of 12 x {N_SAMPLES}, one core, "
        f"best of {result['repeats']}"
    )
    print(
        f"{'step':<32} {'spsolve ECG/s':>14} {'pipeline ECG/s':>15} {'speed-up':>9} "
        f"{'max |diff|':>11}"
    )
    for row in result["rows"]:
        print(
            f"{row['step']:<32} {row['reference_ecgs_per_s']:>14.1f} "
            f"{row['pipeline_ecgs_per_s']:>15.1f} {row['speedup']:>8.1f}x "
            f"{row['max_abs_difference']:>11.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n-ecgs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parse_args(parser, SMOKE)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    result = run(args.n_ecgs, args.repeats)
    print_table(result)
    write_figures(result, args.json)


if __name__ == "__main__":
    main()
