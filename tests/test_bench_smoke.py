"""Every benchmark script at its ``--smoke`` size, so that a benchmark that no longer runs
(an API or config check moved under it) fails here instead of on the next full run.

Each runs as a user runs it: ``python bench/NAME.py --smoke`` from the repository root,
one thread (``demo_world``, nothing but MViTv2-S forward passes, on every core: nothing
else runs beside it). A smoke run keeps its benchmark's assertions (equal outputs and the
like).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (script, extra arguments, timeout s); the slow ones embed clips with the MViTv2-S on CPU.
SCRIPTS = [
    pytest.param("figures", [], 60, id="figures"),
    pytest.param("bench_bootstrap", [], 120, id="bench_bootstrap"),
    pytest.param("bench_ecg_prep", [], 120, id="bench_ecg_prep"),
    pytest.param("bench_ecg_read", [], 120, id="bench_ecg_read"),
    pytest.param("bench_trace", [], 120, id="bench_trace"),
    pytest.param("bench_dryrun", [], 180, id="bench_dryrun"),
    pytest.param("demo_seeds", [], 180, id="demo_seeds"),
    pytest.param("joint_space_probe", [], 120, id="joint_space_probe"),
    pytest.param(
        "poor_planes", ["--variants", "single_view", "echo2ecg", "cls_pool"], 120, id="poor_planes"
    ),
    pytest.param("marked_planes", [], 60, id="marked_planes"),
    pytest.param("marked_planes", ["--leave-out"], 60, id="marked_planes_leave_out"),
    pytest.param("pooled_seeds", [], 60, id="pooled_seeds"),
    pytest.param("training_seeds", ["--set", "train.lr=0.002"], 180, id="training_seeds"),
    # the runner's own plumbing; the benchmarks it runs have their tests here
    pytest.param("run_all", ["--only", "bench_bootstrap", "bench_ecg_prep"], 180, id="run_all"),
    pytest.param("bench_echo_extract", [], 300, id="bench_echo_extract", marks=pytest.mark.slow),
    pytest.param("bench_train", [], 300, id="bench_train", marks=pytest.mark.slow),
    pytest.param("bench_embed", [], 300, id="bench_embed", marks=pytest.mark.slow),
    pytest.param("demo_world", [], 300, id="demo_world", marks=pytest.mark.slow),
]
ALL_CORES = {"demo_world"}


def test_every_script_has_a_smoke_test():
    tested = {param.values[0] for param in SCRIPTS}
    assert tested == {path.stem for path in (ROOT / "bench").glob("*.py")}


@pytest.mark.parametrize("script, extra, timeout", SCRIPTS)
def test_smoke_run(script, extra, timeout):
    threads = os.cpu_count() if script in ALL_CORES else 1
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{script}.py"), "--smoke", *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (
        f"{script} --smoke exited with {done.returncode}:\n"
        f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )


def test_training_seeds_refuses_a_setting_the_config_lacks():
    # a mistyped control must not retrain under the run's own settings and pass for one
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "training_seeds.py"),
            "--smoke",
            "--set",
            "train.single_view_sampleing=one_per_study",
        ],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "no train.single_view_sampleing" in done.stderr
