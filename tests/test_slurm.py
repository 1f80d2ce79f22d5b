"""The cluster path: the SLURM profile's sbatch requests, and a real one-node SLURM cluster.

The resource-mapping tests run everywhere. The cluster tests need root and Debian's
slurm-wlm and munge (`.ci/run` installs them); they start the cluster of
`tests/slurm/start-cluster`, which leaves nothing running when stopped. The tiny demo
through SLURM runs with ECHO2ECG_SLURM_E2E=1 (`make test-slurm`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles/slurm/config.yaml"
START, STOP = ROOT / "tests/slurm/start-cluster", ROOT / "tests/slurm/stop-cluster"
GPU_RULES = ("embed_echo", "pretrain", "features")


class FakeResources(dict):
    """Rule resources as the plugin reads them: attribute access and .get."""

    __getattr__ = dict.__getitem__


def sbatch_call(threads: int, **resources) -> str:
    """The sbatch command line the pinned plugin builds for a job with these resources."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = SimpleNamespace(resources=FakeResources(resources), threads=threads)
    params = {
        "run_uuid": "run",
        "slurm_logfile": "log",
        "comment_str": "rule",
        "account": "",
        "partition": "",
        "workdir": "/work",
    }
    return get_submit_command(job, params) + set_gres_string(job)


def rule_resources(rule: str) -> dict:
    """The literal resources block of a rule in rules/*.smk (name -> value text)."""
    for path in (ROOT / "rules").glob("*.smk"):
        text = path.read_text()
        match = re.search(rf"^rule {rule}:\n(.*?)(?=^rule |\Z)", text, re.S | re.M)
        if match:
            block = re.search(r"^    resources:\n((?:        .*\n)+)", match.group(1), re.M)
            assert block, f"rule {rule} has no resources"
            pairs = re.findall(r"^        (\w+)=([^,\n]+),?$", block.group(1), re.M)
            return dict(pairs)
    raise AssertionError(f"rule {rule} not found")


@pytest.mark.parametrize("rule", GPU_RULES)
def test_gpu_rules_ask_slurm_for_one_gpu_their_memory_and_time(rule):
    resources = rule_resources(rule)
    assert resources["gpu"] == "1"
    mem_mb, runtime = int(resources["mem_mb"]), int(resources["runtime"])
    call = sbatch_call(2, gpu=1, mem_mb=mem_mb, runtime=runtime)
    assert " --gpus=1" in call and "--gres" not in call
    assert f"--mem {mem_mb}" in call and f"-t {runtime}" in call
    assert "--cpus-per-task=2" in call and "--ntasks" not in call


def test_a_named_gpu_model_and_cpu_only_rules():
    assert sbatch_call(1, gpu=1, gpu_model="h100", mem_mb=100).endswith(" --gpus=h100:1")
    cpu = sbatch_call(4, mem_mb=3000, runtime=30)
    assert "--gpus" not in cpu and "--ntasks=1" in cpu and "--cpus-per-task=4" in cpu


def test_the_profile_is_what_the_plugin_accepts():
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["executor"] == "slurm"
    assert profile["retries"] >= 1 and profile["slurm-requeue"] is True
    assert "--gres" not in PROFILE.read_text().split("Never put --gres")[1].split("\n", 1)[1]
    assert set(profile["default-resources"]) == {"mem_mb", "runtime"}
    assert "software-deployment-method" not in profile  # the shared .venv by default


# --- a real cluster -------------------------------------------------------------------------

needs_slurm = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("slurmctld", "slurmd", "munged")),
    reason="needs root and Debian's slurm-wlm and munge (apt-get install slurm-wlm munge)",
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run([START, state], capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    env = dict(os.environ, SLURM_CONF=str(state / "slurm.conf"))
    yield SimpleNamespace(state=state, env=env)
    subprocess.run([STOP, state], timeout=120, check=True)
    for pattern in (["-f", str(state)], ["-x", "slurmstepd"]):
        left = subprocess.run(["pgrep", *pattern], capture_output=True, text=True)
        assert left.stdout == "", f"left running: {left.stdout}"
    assert not Path("/etc/slurm/slurm.conf").is_symlink()


def slurm(cluster, *command: str) -> str:
    run = subprocess.run(command, capture_output=True, text=True, env=cluster.env, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


def completed_jobs(cluster) -> pd.DataFrame:
    """Every finished job of the cluster, from jobcomp (`sacct --completion`)."""
    fields = "--format=jobid,jobname,state,start,end"
    text = slurm(cluster, "sacct", "--completion", "--parsable2", fields)
    rows = [line.split("|") for line in text.strip().splitlines()]
    return pd.DataFrame(rows[1:], columns=rows[0])


def wait_until_finished(cluster, job_ids, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = completed_jobs(cluster)
        if set(job_ids) <= set(done["JobID"]):
            return done.set_index("JobID").loc[list(job_ids)]
        time.sleep(0.5)
    raise AssertionError(f"jobs {job_ids} did not finish in {timeout_s} s")


@needs_slurm
def test_four_gpu_jobs_at_once_get_four_distinct_gpus(cluster, tmp_path):
    script = "echo $CUDA_VISIBLE_DEVICES; sleep 3"
    ids = [
        slurm(
            cluster,
            "sbatch",
            "--parsable",
            "--gpus=1",
            "--mem=200",
            "--cpus-per-task=1",
            f"--output={tmp_path}/{i}.out",
            "--wrap",
            script,
        ).strip()
        for i in range(4)
    ]
    done = wait_until_finished(cluster, ids)
    assert (done["State"] == "COMPLETED").all()
    seen = sorted((tmp_path / f"{i}.out").read_text().strip() for i in range(4))
    assert seen == ["0", "1", "2", "3"]


@needs_slurm
def test_a_cancelled_job_is_recorded_as_cancelled(cluster, tmp_path):
    out = f"--output={tmp_path}/cancelled.out"
    job = slurm(cluster, "sbatch", "--parsable", "--mem=100", out, "--wrap", "sleep 60").strip()
    for _ in range(40):
        if (
            slurm(cluster, "squeue", "--noheader", "--jobs", job, "--format=%T").strip()
            == "RUNNING"
        ):
            break
        time.sleep(0.25)
    slurm(cluster, "scancel", job)
    assert wait_until_finished(cluster, [job]).loc[job, "State"] == "CANCELLED"


# --- the tiny demo through SLURM (make test-slurm) -------------------------------------------

needs_e2e = pytest.mark.skipif(
    os.environ.get("ECHO2ECG_SLURM_E2E") != "1",
    reason="the tiny demo through SLURM takes minutes: make test-slurm",
)
# The test cluster's node has 24 GB: the GPU rules' cluster-sized memory would let only
# two run at once, and the test is about four.
TEST_RESOURCES = [f"{rule}:mem_mb=2000" for rule in GPU_RULES]


def snakemake_on_slurm(workdir: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    from test_workflow import snakemake

    return snakemake(
        workdir,
        "--workflow-profile",
        str(ROOT / "profiles/slurm"),
        "--slurm-status-command",
        "squeue",  # no slurmdbd on the test cluster
        "--slurm-init-seconds-before-status-checks",
        "5",
        "--slurm-no-account",
        "--latency-wait",
        "5",
        "--jobs",
        "8",
        "--resources",
        "gpu=4",
        "--set-resources",
        *TEST_RESOURCES,
        *args,
        env=env,
        timeout=1800,
    )


def cancel_first_running_pretrain(cluster, workdir: Path, cancelled: list, stop: threading.Event):
    """scancel one pretrain job midway, once: the profile's retries must resubmit it."""
    logs = workdir / ".snakemake/slurm_logs/rule_pretrain"
    while not stop.is_set():
        running = slurm(cluster, "squeue", "--noheader", "--states=RUNNING", "--format=%i")
        for job in running.split():
            if list(logs.glob(f"*/{job}.log")):
                time.sleep(3)  # midway: the job has started its script
                slurm(cluster, "scancel", job)
                cancelled.append(job)
                return
        time.sleep(1)


def gpu_placements(workdir: Path) -> pd.DataFrame:
    """SLURM job id and CUDA_VISIBLE_DEVICES of every GPU rule's job, from its log."""
    rows = []
    for rule in GPU_RULES:
        for log in (workdir / "logs" / rule).rglob("*.log"):
            for job, visible in re.findall(
                r"SLURM job (\d+), CUDA_VISIBLE_DEVICES=(\S+)", log.read_text()
            ):
                rows.append({"rule": rule, "JobID": job, "visible": visible})
    return pd.DataFrame(rows)


@needs_slurm
@needs_e2e
def test_the_tiny_demo_runs_on_slurm_like_it_runs_locally(cluster, tmp_path):
    from test_workflow import snakemake, tiny_config

    config = yaml.safe_dump(tiny_config())
    local, remote = tmp_path / "local", tmp_path / "slurm"
    for workdir in (local, remote):
        workdir.mkdir()
        (workdir / "config.yaml").write_text(config)
    started = time.monotonic()
    run = snakemake(local)
    local_s = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-3000:]

    cancelled, stop = [], threading.Event()
    killer = threading.Thread(
        target=cancel_first_running_pretrain, args=(cluster, remote, cancelled, stop)
    )
    killer.start()
    started = time.monotonic()
    run = snakemake_on_slurm(remote, cluster.env)
    slurm_s = time.monotonic() - started
    stop.set()
    killer.join()
    assert run.returncode == 0, run.stderr[-5000:]

    # Every job ran as a SLURM job; the cancelled one failed once and was submitted again.
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", run.stderr)
    jobs = completed_jobs(cluster).set_index("JobID").loc[submitted]
    assert len(cancelled) == 1 and jobs.loc[cancelled[0], "State"] == "CANCELLED"
    assert (jobs.drop(index=cancelled)["State"] == "COMPLETED").all()
    assert "Trying to restart job" in run.stderr
    n_jobs = int(re.search(r"^total\s+(\d+)", run.stdout + run.stderr, re.M).group(1))
    n_local = len(re.findall(r"^localrule ", run.stderr, re.M))  # the target rule `all`
    assert n_local == 1 and len(submitted) == n_jobs - n_local + len(cancelled)

    # GPU jobs saw the GPU SLURM gave them; jobs that ran at once never shared one.
    placements = gpu_placements(remote).merge(jobs.reset_index()[["JobID", "Start", "End"]])
    assert len(placements) >= 4 and placements["visible"].isin(["0", "1", "2", "3"]).all()
    start = pd.to_datetime(placements["Start"]).to_numpy()
    end = pd.to_datetime(placements["End"]).to_numpy()
    overlap = (start[:, None] < end[None, :]) & (start[None, :] < end[:, None])
    same_gpu = (
        placements["visible"].to_numpy()[:, None] == placements["visible"].to_numpy()[None, :]
    )
    others = ~np.eye(len(start), dtype=bool)
    assert not (overlap & same_gpu & others).any(), "two GPU jobs at once on one GPU"
    # Jobs running at the moment each job started (itself included).
    running_at_start = (start[None, :] <= start[:, None]) & (start[:, None] < end[None, :])
    assert running_at_start.sum(axis=1).max() >= 4, "four GPU jobs never ran at once"

    # The same tables as the local run, and nothing left to do.
    for table in sorted((local / "results/tables").glob("*.csv")):
        pd.testing.assert_frame_equal(
            pd.read_csv(table), pd.read_csv(remote / "results/tables" / table.name)
        )
    again = snakemake_on_slurm(remote, cluster.env, "--dry-run")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    print(
        f"\nlocal {local_s:.0f} s, SLURM {slurm_s:.0f} s, {n_jobs} jobs, placements:\n{placements}"
    )
