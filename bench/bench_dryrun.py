"""Time `snakemake -n` on a large manifest: 200,000 echo views in 1,000 shards.

Builds a cohort of empty placeholder files (the dry run only plans; it reads no pixels),
writes a config that points at it, and times the dry run end to end as a user runs it.
The plan must hold one extraction job per echo shard and one preparation job per ECG
shard (asserted), so that a dry run that planned nothing is never timed as a fast one.

    .venv/bin/python bench/bench_dryrun.py --views 200000 --shards 1000 --json bench/out/dryrun.json
    .venv/bin/python bench/bench_dryrun.py --smoke   # 150 views in 3 shards, in a temp dir
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from figures import parse_args, write_figures

ROOT = Path(__file__).resolve().parents[1]
# The cohort is empty placeholders, but a cohort other than the demo's refuses the public
# demo key and any key under 32 bytes.
BENCH_KEY = "bench-dryrun-placeholder-key-" + "0" * 32
SMOKE = {"views": 150, "shards": 3, "ecgs": 20, "ecg_shards": 2}


def build_cohort(folder: Path, n_views: int, views_per_study: int, n_ecgs: int) -> dict:
    files = folder / "files"
    files.mkdir(parents=True, exist_ok=True)
    views, ecgs = (
        ["path,patient_id,study_id,acquisition_time"],
        ["path,patient_id,ecg_id,acquisition_time,format"],
    )
    for i in range(n_views):
        study = i // views_per_study
        name = f"files/v{i:07d}.dcm"
        (folder / name).touch()
        views.append(f"{name},P{study // 2:06d},S{study:07d},2024-01-01T00:00:00")
    for i in range(n_ecgs):
        name = f"files/e{i:07d}.hea"
        (folder / name).touch()
        ecgs.append(f"{name},P{i:06d},E{i:07d},2024-01-01T00:00:00,wfdb")
    (folder / "echo_views.csv").write_text("\n".join(views) + "\n")
    (folder / "ecgs.csv").write_text("\n".join(ecgs) + "\n")
    (folder / "labels.csv").write_text(
        "patient_id,study_id,acquisition_time,lvef,lvedv,lvesv,lvsv,shd\n"
    )
    return {
        "echo_views": str(folder / "echo_views.csv"),
        "ecgs": str(folder / "ecgs.csv"),
        "labels": str(folder / "labels.csv"),
    }


def bench_config(manifests: dict, echo_shards: int, ecg_shards: int) -> dict:
    """The shipped config with the demo off and one cohort, ``big``, in every cohort key."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["demo"]["enabled"] = False
    config["cohorts"] = {"big": {**manifests, "echo_shards": echo_shards, "ecg_shards": ecg_shards}}
    config["pairing"]["train_cohort"] = "big"
    config["evaluation"].update(lvef_cohorts=["big"], shd_cohort="big")
    config["privacy"]["pseudonym_key"] = BENCH_KEY
    return config


def planned_jobs(output: str) -> dict[str, int]:
    """Rule → job count from a dry run's job-stats table."""
    jobs = {}
    for line in output.splitlines():
        match = re.fullmatch(r"\s*([a-z_]+)\s+(\d+)\s*", line)
        if match and match.group(1) != "total":
            jobs[match.group(1)] = int(match.group(2))
    return jobs


def run(workdir: Path, args: argparse.Namespace) -> dict:
    cohort_dir = workdir / "cohort"
    manifests = build_cohort(cohort_dir, args.views, args.views_per_study, args.ecgs)
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(bench_config(manifests, args.shards, args.ecg_shards)))

    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-n",
        "--quiet",
        "rules",
        "--cores",
        "2",
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config_path),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"dry run failed:\n{done.stdout}\n{done.stderr}")
    jobs = planned_jobs(done.stdout + "\n" + done.stderr)
    expected = {"extract_echo": args.shards, "prep_ecg": args.ecg_shards}
    planned = {rule: jobs.get(rule) for rule in expected}
    assert planned == expected, f"dry run planned {planned} shard jobs, not {expected}"
    return {
        "views": args.views,
        "echo_shards": args.shards,
        "ecgs": args.ecgs,
        "ecg_shards": args.ecg_shards,
        "dry_run_seconds": round(seconds, 2),
        "goal_seconds": 15,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--views", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--views-per-study", type=int, default=15)
    parser.add_argument("--ecgs", type=int, default=20_000)
    parser.add_argument("--ecg-shards", type=int, default=100)
    parser.add_argument(
        "--workdir", type=Path, help="default bench/out/dryrun; with --smoke a temporary folder"
    )
    parser.add_argument("--json", type=Path)
    args = parse_args(parser, SMOKE)

    if args.workdir is None and args.smoke:
        with tempfile.TemporaryDirectory(prefix="bench_dryrun_") as folder:
            result = run(Path(folder), args)
    else:
        result = run(args.workdir or ROOT / "bench/out/dryrun", args)
    print(json.dumps(result, indent=2))
    write_figures(result, args.json)


if __name__ == "__main__":
    main()
