"""Time `snakemake -n` on a large manifest: 200,000 echo views in 1,000 shards.

Builds a cohort of empty placeholder files (the dry run only plans; it reads no pixels),
writes a config that points at it, and times the dry run end to end as a user runs it.

    .venv/bin/python bench/bench_dryrun.py --views 200000 --shards 1000 --json bench/out/dryrun.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from figures import write_figures

ROOT = Path(__file__).resolve().parents[1]


def build_cohort(folder: Path, n_views: int, views_per_study: int, n_ecgs: int) -> dict:
    files = folder / "files"
    files.mkdir(parents=True, exist_ok=True)
    views, ecgs = ["path,patient_id,study_id,acquisition_time"], \
        ["path,patient_id,ecg_id,acquisition_time,format"]
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
        "patient_id,study_id,acquisition_time,lvef,lvedv,lvesv,lvsv,shd\n")
    return {"echo_views": str(folder / "echo_views.csv"), "ecgs": str(folder / "ecgs.csv"),
            "labels": str(folder / "labels.csv")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--views", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--views-per-study", type=int, default=15)
    parser.add_argument("--ecgs", type=int, default=20_000)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench/out/dryrun")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    cohort_dir = args.workdir / "cohort"
    manifests = build_cohort(cohort_dir, args.views, args.views_per_study, args.ecgs)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["demo"]["enabled"] = False
    config["cohorts"] = {"big": {**manifests, "echo_shards": args.shards, "ecg_shards": 100}}
    config_path = args.workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))

    command = [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--cores", "2",
               "--snakefile", str(ROOT / "Snakefile"), "--directory", str(args.workdir),
               "--configfile", str(config_path)]
    started = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        sys.exit(f"dry run failed:\n{run.stdout}\n{run.stderr}")
    result = {"views": args.views, "echo_shards": args.shards, "ecgs": args.ecgs,
              "dry_run_seconds": round(seconds, 2), "goal_seconds": 15}
    print(json.dumps(result, indent=2))
    write_figures(result, args.json)


if __name__ == "__main__":
    main()
