"""Run every benchmark once, one after another, and collect their JSON under bench/out/.

    .venv/bin/python bench/run_all.py
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHES = ("bench_echo_extract", "bench_ecg_prep", "bench_dryrun", "bench_bootstrap",
           "bench_train", "bench_embed")

if __name__ == "__main__":
    out = ROOT / "bench/out"
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in BENCHES:
        print(f"== {name}", flush=True)
        subprocess.run([sys.executable, str(ROOT / "bench" / f"{name}.py"),
                        "--json", str(out / f"{name}.json")], check=True, env=env)
