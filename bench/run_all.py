"""Run every benchmark once, one after another, and collect their JSON under bench/out/.

    .venv/bin/python bench/run_all.py
    .venv/bin/python bench/run_all.py --smoke   # each at its smoke size; no JSON unless --out

The demo benchmarks (demo_seeds.py, demo_world.py) run the whole pipeline or embed
hundreds of clips, and joint_space_probe.py, marked_planes.py, poor_planes.py,
pooled_seeds.py and training_seeds.py read (or retrain on) finished runs' results, so
they are left to be run by hand.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

from figures import parse_args

ROOT = Path(__file__).resolve().parents[1]
BENCHES = (
    "bench_echo_extract",
    "bench_ecg_prep",
    "bench_ecg_read",
    "bench_trace",
    "bench_dryrun",
    "bench_bootstrap",
    "bench_train",
    "bench_embed",
)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=BENCHES,
        default=list(BENCHES),
        help="run these benchmarks only, in this order",
    )
    parser.add_argument(
        "--out", type=Path, help="folder of the JSON figures (default bench/out; with --smoke none)"
    )
    args = parse_args(parser, {})
    out = args.out or (None if args.smoke else ROOT / "bench/out")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in args.only:
        print(f"== {name}", flush=True)
        command = [sys.executable, str(ROOT / "bench" / f"{name}.py")]
        command += ["--smoke"] if args.smoke else []
        command += ["--json", str(out / f"{name}.json")] if out is not None else []
        subprocess.run(command, check=True, env=env)
