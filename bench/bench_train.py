"""Training throughput on cached embeddings, against running the frozen echo encoder.

Echo2ECG trains on view embeddings computed once by the frozen MViTv2-S; a training that
ran the echo encoder instead would pay, every epoch, one encoder forward per view of every
pair. This benchmark measures, on CPU:

- training steps (batch building with augmentation, forward, CLIP loss, backward, AdamW)
  of Echo2ECG with attention pooling, for the paper-size ECG encoder (192-d, 12 blocks) and
  the demo-size one (96-d, 4 blocks), on synthetic pairs with 15 views per study;
- the frozen echo encoder's forward per clip (no gradient), random init, batch 1;

and reports the ratio of an epoch's cost with the encoder in the loop to its cost on
cached embeddings: (pairs · views/study · s per clip + pairs / throughput) / (pairs /
throughput) for 15 views per study (the paper: 179,571 views / 11,859 pairs).

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_train.py --json bench/out/bench_train.json
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_train.py --smoke   # batch 2, 1 timed step
"""

from __future__ import annotations

import os

# One core, before torch loads its thread pool: the figures are per core.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from figures import parse_args, write_figures  # noqa: E402

from echo2ecg.models import ECGEncoder, Echo2ECG, build_echo_encoder  # noqa: E402
from echo2ecg.train.objectives import batch_loss  # noqa: E402
from echo2ecg.train.pair_data import PairBatches, PairData  # noqa: E402
from echo2ecg.train.schedule import param_groups  # noqa: E402
from echo2ecg.train.settings import TrainSettings  # noqa: E402

PAPER_PAIRS, PAPER_VIEWS = 11_859, 179_571
VIEWS_PER_STUDY = 15  # ≈ PAPER_VIEWS / PAPER_PAIRS
SMOKE = {"steps": 1, "batch_size": 2, "clips": 1, "repeats": 1}
ENCODERS = {
    "paper (192-d, 12 blocks)": dict(embed_dim=192, depth=12, num_heads=3),
    "demo (96-d, 4 blocks)": dict(embed_dim=96, depth=4, num_heads=3),
}


def synthetic_pairs(n_pairs: int, views_per_study: int, seed: int = 0) -> PairData:
    """n_pairs of a (12, 5000) ECG and a study of views_per_study 512-d view embeddings."""
    rng = np.random.default_rng(seed)
    ecgs = rng.normal(size=(n_pairs, 12, 5000)).astype(np.float32)
    views = [rng.normal(size=(views_per_study, 512)).astype(np.float32) for _ in range(n_pairs)]
    return PairData(ecgs, views, np.stack([np.arange(n_pairs)] * 2, axis=1))


def time_training_steps(encoder_kwargs: dict, batch_size: int, steps: int) -> dict:
    """Median seconds per training step (after one warm-up step) → pairs per second."""
    torch.manual_seed(0)
    model = Echo2ECG(ECGEncoder(**encoder_kwargs), "attention")
    settings = TrainSettings(batch_size=batch_size)
    data = synthetic_pairs(batch_size * (steps + 1), VIEWS_PER_STUDY)
    batches = PairBatches(
        data,
        batch_size,
        settings.n_samples,
        settings.max_views,
        train=True,
        augment=settings.augment(),
        seed=settings.seed,
    )
    optimizer = torch.optim.AdamW(
        param_groups(model, settings.lr, settings.layer_decay, settings.weight_decay),
        betas=settings.betas,
    )
    model.train()
    seconds = []
    for index in range(len(batches)):
        start = time.perf_counter()
        loss = batch_loss(model, batches[index], settings, False, torch.device("cpu"))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seconds.append(time.perf_counter() - start)
    step_s = statistics.median(seconds[1:])
    return {
        "batch_size": batch_size,
        "timed_steps": len(seconds) - 1,
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds_per_step": step_s,
        "pairs_per_s": batch_size / step_s,
    }


def time_echo_encoder(clips: int, repeats: int) -> float:
    """Best-of-repeats seconds per clip of the frozen MViTv2-S forward, batch ``clips``."""
    with warnings.catch_warnings():  # random init is fine for timing: silence its warning
        warnings.simplefilter("ignore", UserWarning)
        logging.getLogger("echo2ecg.models.echo_encoder").setLevel(logging.ERROR)
        encoder = build_echo_encoder(None)
    clip = torch.randn(clips, 3, 16, 224, 224)
    best = float("inf")
    with torch.no_grad():
        encoder(clip)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            encoder(clip)
            best = min(best, (time.perf_counter() - start) / clips)
    return best


def epoch_costs(pairs_per_s: float, clip_s: float, n_pairs: int, views_per_study: float) -> dict:
    """Seconds per epoch on cached embeddings and with the echo encoder in the loop."""
    cached = n_pairs / pairs_per_s
    with_encoder = cached + n_pairs * views_per_study * clip_s
    return {
        "epoch_s_cached": cached,
        "epoch_s_with_echo_encoder": with_encoder,
        "ratio": with_encoder / cached,
    }


def run(steps: int, batch_size: int, clips: int, repeats: int) -> dict:
    clip_s = time_echo_encoder(clips, repeats)
    rows = []
    for name, kwargs in ENCODERS.items():
        row = {"ecg_encoder": name, **time_training_steps(kwargs, batch_size, steps)}
        row.update(epoch_costs(row["pairs_per_s"], clip_s, PAPER_PAIRS, VIEWS_PER_STUDY))
        rows.append(row)
    return {
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "views_per_study": VIEWS_PER_STUDY,
        "paper_pairs": PAPER_PAIRS,
        "paper_views": PAPER_VIEWS,
        "echo_encoder_s_per_clip": clip_s,
        "echo_encoder_batch": clips,
        "one_off_embedding_s_paper": PAPER_VIEWS * clip_s,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "rows": rows,
    }


def print_table(result: dict) -> None:
    print(
        f"CPU, {result['threads']} thread(s); echo encoder "
        f"{result['echo_encoder_s_per_clip']:.2f} s per clip; "
        f"{result['views_per_study']} views per study, "
        f"{result['paper_pairs']:,} pairs per epoch (paper)"
    )
    print(
        f"{'ECG encoder':<26} {'pairs/s':>8} {'epoch cached':>13} {'epoch w/ encoder':>17} "
        f"{'ratio':>7}"
    )
    for row in result["rows"]:
        print(
            f"{row['ecg_encoder']:<26} {row['pairs_per_s']:>8.2f} "
            f"{row['epoch_s_cached'] / 3600:>12.2f}h "
            f"{row['epoch_s_with_echo_encoder'] / 3600:>16.2f}h {row['ratio']:>6.1f}x"
        )
    print(
        f"one-off embedding of the paper's {result['paper_views']:,} views: "
        f"{result['one_off_embedding_s_paper'] / 3600:.1f} h"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per encoder")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--clips", type=int, default=1, help="clips per echo encoder forward")
    parser.add_argument("--repeats", type=int, default=2, help="timed echo encoder forwards")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parse_args(parser, SMOKE)
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    result = run(args.steps, args.batch_size, args.clips, args.repeats)
    print_table(result)
    write_figures(result, args.json)


if __name__ == "__main__":
    main()
