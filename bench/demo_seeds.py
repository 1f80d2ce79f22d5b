"""The demo from nothing under several demo seeds: stage times and the findings of each.

Each seed runs in its own copy of the working tree (tracked and untracked files that git
does not ignore) with ``demo.seed`` set in that copy's ``config.yaml``, so a seed's cohort,
embeddings and tables never mix with another's. Per seed: the wall time of the whole
``snakemake --cores N`` run, the summed wall time of each rule's jobs (from the rules'
``benchmark:`` files), and ``findings.csv``. The seed's results folder is kept under
``--keep`` when given.

    .venv/bin/python bench/demo_seeds.py --seeds 7 11 23 --json bench/out/demo_seeds.json

``--smoke`` runs no pipeline (even the tiny demo takes minutes: it embeds every view): it
checks the helpers a seed's run goes through (the copy of the working tree, the seed set
in its config, the per-rule times) and that Snakemake plans the seeded copy's run (``-n``).
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml
from figures import parse_args, write_figures

from echo2ecg.evaluate.findings import FINDINGS_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
SHOWN = [
    "claim",
    "cohort",
    "metric",
    "model",
    "versus",
    "model_value",
    "versus_value",
    "difference",
    "ci_low",
    "ci_high",
    "holds",
]  # of findings.csv, per seed


def copy_working_tree(destination: Path) -> None:
    """Copy what git tracks or would track (no results, no environment) to ``destination``."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def set_demo_seed(config: Path, seed: int) -> None:
    text = config.read_text()
    changed, count = re.subn(r"(?m)^(  seed: )\d+", rf"\g<1>{seed}", text, count=1)
    if count != 1:
        raise SystemExit(f"{config}: no demo seed line to set")
    config.write_text(changed)


def rule_times(benchmarks: Path) -> dict[str, float]:
    """Summed wall seconds per rule, from Snakemake's benchmark files (benchmarks/RULE/...)."""
    times: dict[str, float] = {}
    for path in sorted(benchmarks.rglob("*.tsv")):
        rule = path.relative_to(benchmarks).parts[0]
        seconds = float(pd.read_csv(path, sep="\t")["s"].iloc[0])
        times[rule] = round(times.get(rule, 0.0) + seconds, 1)
    return times


def snakemake_command(cores: int, *extra: str) -> list[str]:
    """The run of a seed's copy, from inside it."""
    return [str(SNAKEMAKE), "--cores", str(cores), *extra]


def run_seed(seed: int, cores: int, keep: Path | None) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"demo_seed{seed}_") as folder:
        work = Path(folder)
        copy_working_tree(work)
        set_demo_seed(work / "config.yaml", seed)
        started = time.perf_counter()
        with open(work / "snakemake.log", "w") as log:
            done = subprocess.run(
                snakemake_command(cores), cwd=work, stdout=log, stderr=subprocess.STDOUT
            )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            print((work / "snakemake.log").read_text()[-4000:], file=sys.stderr)
            raise SystemExit(f"seed {seed}: snakemake exited with {done.returncode}")
        findings = pd.read_csv(work / "results/tables/findings.csv")
        if keep is not None:
            target = keep / f"seed_{seed}"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(work / "results", target)
        return {
            "seed": seed,
            "wall_s": round(wall, 1),
            "rule_s": rule_times(work / "benchmarks"),
            "findings": findings.to_dict(orient="records"),
        }


def smoke(seed: int, cores: int) -> None:
    """Everything of a seed's run but the run: copy, seed, plan (``snakemake -n``), times."""
    with tempfile.TemporaryDirectory(prefix=f"demo_seed{seed}_smoke_") as folder:
        work = Path(folder)
        copy_working_tree(work)
        assert (work / "Snakefile").is_file() and not (work / "results").exists()
        shipped = yaml.safe_load((work / "config.yaml").read_text())
        set_demo_seed(work / "config.yaml", seed)
        seeded = yaml.safe_load((work / "config.yaml").read_text())
        expected = copy.deepcopy(shipped)
        expected["demo"]["seed"] = seed
        assert seeded == expected, "set_demo_seed changed more than demo.seed"
        planned = subprocess.run(
            snakemake_command(cores, "-n", "--quiet", "rules"),
            cwd=work,
            capture_output=True,
            text=True,
        )
        if planned.returncode != 0:
            raise SystemExit(
                f"seed {seed}: snakemake -n exited with {planned.returncode}:\n"
                f"{planned.stdout[-3000:]}\n{planned.stderr[-3000:]}"
            )
        benchmarks = work / "benchmarks"
        for name, seconds in (
            ("prep_ecg/internal_0000.tsv", 1.5),
            ("prep_ecg/internal_0001.tsv", 2.0),
            ("pretrain/echo2ecg.tsv", 4.0),
        ):
            (benchmarks / name).parent.mkdir(parents=True, exist_ok=True)
            (benchmarks / name).write_text(f"s\th:m:s\n{seconds}\t0:00:0{seconds:.0f}\n")
        times = rule_times(benchmarks)
        assert times == {"prep_ecg": 3.5, "pretrain": 4.0}, times
    missing = set(SHOWN) - set(FINDINGS_COLUMNS)
    assert not missing, f"findings.csv has no column {sorted(missing)}"
    print(f"== seed {seed}: copied, seeded and planned; per-rule times add up")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11, 23])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="copy each seed's results/ here")
    parser.add_argument("--json", type=Path)
    args = parse_args(parser, {"seeds": [11]})
    if args.smoke:
        for seed in args.seeds:
            smoke(seed, args.cores)
        return
    runs = []
    for seed in args.seeds:
        run = run_seed(seed, args.cores, args.keep)
        runs.append(run)
        table = pd.DataFrame(run["findings"])
        print(f"== seed {seed}: {run['wall_s']:.0f} s; per rule {run['rule_s']}")
        print(table[SHOWN].to_string(index=False), flush=True)
    write_figures({"cores": args.cores, "runs": runs}, args.json)


if __name__ == "__main__":
    main()
