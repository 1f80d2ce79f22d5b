"""Burned-in ECG extraction on the demo's clips: views per second on one core against the
clip recipe on the same files, and how well the trace matches the lead II the scanner drew.

The clips are the demo's internal cohort's first views, written as the demo writes them
(its encodings, with and without the Ultrasound Regions and the ECG-trace region, by the
demo's own plan). For every clip that passes the quality checks the extracted signal is
correlated with the drawn lead II at the same instants (Pearson r), and again at the best
shift within one strip column (the strip's time resolution: where inside its last column
the sweep head stood is not in the image); the rejections are counted by reason.
pydicom's ``examples_ybr_color.dcm`` (a real scanner's clip, without an ECG strip) is
timed as well.

    .venv/bin/python bench/bench_trace.py --n-views 120 --json bench/out/trace.json
    .venv/bin/python bench/bench_trace.py --smoke   # 6 views, 1 repeat
"""

from __future__ import annotations

import os

# One core, before numpy loads its BLAS: the figure is per core.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from figures import parse_args, write_figures  # noqa: E402
from pydicom.data import get_testdata_file  # noqa: E402

from echo2ecg.data.echo import extract_clip  # noqa: E402
from echo2ecg.data.echo_trace import extract_trace  # noqa: E402
from echo2ecg.data.errors import InputRejected  # noqa: E402
from echo2ecg.synth.cohort import demo_specs, plan_cohort, view_clip  # noqa: E402
from echo2ecg.synth.echo_dicom import DicomIdentity, DicomInstance, write_echo  # noqa: E402

SMOKE = {"n_views": 6, "repeats": 1}
ACQUIRED = datetime(2021, 1, 1, 9, 0, 0)
IDENTITY = DicomIdentity(
    "DOE^JANE", "MRN0000001", "19500101", "F", "1.2.3.4", "ACC1", ACQUIRED, "Bench Hospital"
)
R_GOAL = 0.9


def demo_views(folder: Path, n_views: int) -> list[tuple[Path, object, str]]:
    """(path, rendered clip, strip source) of the demo's first ``n_views`` planned views."""
    spec = demo_specs()[0]
    out = []
    for patient in plan_cohort(spec):
        for study_index, study in enumerate(patient.studies):
            for number, plan in enumerate(study.views, start=1):
                if plan.kind != "view" or len(out) == n_views:
                    continue
                clip = view_clip(spec, patient, study_index, number)
                path = folder / f"view{len(out):04d}.dcm"
                instance = DicomInstance(plan.series_uid, plan.sop_uid, plan.acquired, number, 1)
                write_echo(
                    path,
                    clip.frames,
                    plan.encoding,
                    spec.fps,
                    IDENTITY,
                    instance,
                    clip.sector if plan.with_regions else None,
                    clip.strip if plan.with_ecg_region else None,
                )
                out.append((path, clip, plan.encoding))
    return out


def truth_r(clip, trace) -> tuple[float, float, int]:
    """Pearson r of the trace against the drawn lead II at the trace's own instants, the
    best r within one strip column's shift, and that shift (samples; negative: the trace
    lags behind the drawing, its newest column being up to a column old)."""
    n = len(trace.signal)
    times = clip.frame_times[-1] - (n - 1 - np.arange(n)) / trace.fs
    truth = np.interp(times, clip.trace_t, clip.trace_mv)
    column = int(np.ceil(trace.seconds_per_px * trace.fs))

    def r(lag: int) -> float:
        a, b = trace.signal[: n - lag], truth[lag:]
        if lag < 0:
            a, b = trace.signal[-lag:], truth[: n + lag]
        return float(np.corrcoef(a, b)[0, 1])

    best = max(range(-column, column + 1), key=r)
    return r(0), r(best), best


def timed(function, paths, repeats: int) -> float:
    """Best seconds per file over ``repeats`` passes."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for path in paths:
            try:
                function(path)
            except InputRejected:
                pass
        best = min(best, (time.perf_counter() - start) / len(paths))
    return best


def run(n_views: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        views = demo_views(folder, n_views)
        rs, aligned, lags, reasons, by_strip = [], [], [], Counter(), {}
        for path, clip, _ in views:
            try:
                trace = extract_trace(path)
            except InputRejected as error:
                reasons[error.reason] += 1
                continue
            r, r_aligned, lag = truth_r(clip, trace)
            rs.append(r)
            aligned.append(r_aligned)
            lags.append(lag)
            by_strip.setdefault(f"{trace.strip_from}/{trace.time_scale_from}", []).append(r)
        paths = [path for path, _, _ in views]
        trace_s = timed(extract_trace, paths, repeats)
        clip_s = timed(extract_clip, paths, repeats)
        real = folder / "examples_ybr_color.dcm"
        shutil.copy(get_testdata_file("examples_ybr_color.dcm"), real)
        real_trace_s = timed(extract_trace, [real], max(repeats, 3))
        real_clip_s = timed(extract_clip, [real], max(repeats, 3))
    rs, aligned, lags = np.array(rs), np.array(aligned), np.array(lags)
    return {
        "n_views": len(views),
        "encodings": dict(Counter(encoding for _, _, encoding in views)),
        "repeats": repeats,
        "threads": 1,
        "opencv_threads": cv2.getNumThreads(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "passed": len(rs),
        "rejected": dict(reasons.most_common()),
        "r_median": float(np.median(rs)) if len(rs) else None,
        "r_min": float(rs.min()) if len(rs) else None,
        "share_r_at_least_0_9": float((rs >= R_GOAL).mean()) if len(rs) else None,
        "r_within_a_column_median": float(np.median(aligned)) if len(rs) else None,
        "share_r_within_a_column_at_least_0_9": (
            float((aligned >= R_GOAL).mean()) if len(rs) else None
        ),
        "lag_samples_median": float(np.median(lags)) if len(rs) else None,
        "lag_samples_range": [int(lags.min()), int(lags.max())] if len(rs) else None,
        "r_median_by_strip": {k: float(np.median(v)) for k, v in sorted(by_strip.items())},
        "n_by_strip": {k: len(v) for k, v in sorted(by_strip.items())},
        "trace_views_per_s": 1 / trace_s,
        "clip_views_per_s": 1 / clip_s,
        "trace_vs_clip": clip_s / trace_s,
        "real_clip": {
            "file": "pydicom examples_ybr_color.dcm (30 frames, 320 x 240, JPEG YBR 4:2:2)",
            "trace_views_per_s": 1 / real_trace_s,
            "clip_views_per_s": 1 / real_clip_s,
        },
    }


def print_table(result: dict) -> None:
    print(
        f"{result['n_views']} demo views {result['encodings']}, one core, "
        f"best of {result['repeats']}"
    )
    print(
        f"trace extraction {result['trace_views_per_s']:.1f} views/s, clip recipe "
        f"{result['clip_views_per_s']:.1f} views/s ({result['trace_vs_clip']:.2f}x)"
    )
    print(f"passed {result['passed']}; rejected: {result['rejected']}")
    if result["passed"]:
        print(
            f"r against the drawn lead II: median {result['r_median']:.3f}, min "
            f"{result['r_min']:.3f}, share >= 0.9 {result['share_r_at_least_0_9']:.1%}; "
            f"within one column's shift: median {result['r_within_a_column_median']:.3f}, "
            f"share >= 0.9 {result['share_r_within_a_column_at_least_0_9']:.1%} "
            f"(shift {result['lag_samples_median']:+.0f} samples median, "
            f"range {result['lag_samples_range']})"
        )
        for strip, r in result["r_median_by_strip"].items():
            print(f"  {strip:<14} n {result['n_by_strip'][strip]:>4}  median r {r:.3f}")
    real = result["real_clip"]
    print(
        f"{real['file']}: trace {real['trace_views_per_s']:.1f} views/s (no strip: rejected), "
        f"clip recipe {real['clip_views_per_s']:.1f} views/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n-views", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parse_args(parser, SMOKE)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cv2.setNumThreads(1)
    result = run(args.n_views, args.repeats)
    print_table(result)
    write_figures(result, args.json)


if __name__ == "__main__":
    main()
