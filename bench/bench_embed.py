"""Clips per second of ``echo2ecg.embed.views.embed_clip_store`` against the reference way
of embedding.

The reference embeds as the Echo2ECG/EchoPrime scripts do: one clip at a time (batch 1), read
in the main process, normalised to float32 on the CPU, copied to the device, forward in
float32. ``embed_clip_store`` reads with DataLoader workers, sends uint8 clips in batches
(pinned memory on CUDA), normalises on the device and runs under bf16 autocast on CUDA. Both
use the same MViTv2-S (random init: the weights do not change the speed) on the same
synthetic clips (random uint8, written to a temporary clip store), in the same run, each after
one warm-up forward. Reported: clips/s of each, the speed-up, and how far the embeddings agree
(max |difference| and the lowest cosine similarity between matching rows).

    .venv/bin/python bench/bench_embed.py --json bench/out/bench_embed.json
    .venv/bin/python bench/bench_embed.py --smoke   # 2 clips, batch 2, 1 worker, any device
    .venv/bin/python bench/bench_embed.py --sweep 32,64,128,256 --json bench/out/gpu.json

``--sweep`` also times ``embed_clip_store`` at each batch size (bf16 where native), then at
the fastest one with the encoder in channels-last-3d memory format and under
``torch.compile``, each on the same clips after a warm-up pass; on CUDA it samples the
GPU's utilisation (``nvidia-smi``) while each runs.

Defaults follow the device: CPU 6 clips, batch 2, 1 worker; CUDA 512 clips, batch 64,
4 workers.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch loads its thread pools

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import zarr  # noqa: E402
from figures import parse_args, write_figures  # noqa: E402

from echo2ecg.data.store import ShardWriter, open_rows  # noqa: E402
from echo2ecg.embed.devices import choose_device  # noqa: E402
from echo2ecg.embed.views import embed_clip_store  # noqa: E402
from echo2ecg.models import EchoEncoderOrigin, build_echo_encoder, normalise_clips  # noqa: E402

CLIP_SHAPE = (16, 224, 224, 3)
DEFAULTS = {
    "cpu": {"n_clips": 6, "batch_size": 2, "workers": 1},
    "cuda": {"n_clips": 512, "batch_size": 64, "workers": 4},
}
# Still a batch and a worker, so that the smoke run goes through the DataLoader as the full one.
SMOKE = {"n_clips": 2, "batch_size": 2, "workers": 1}


def write_random_clips(path: Path, n_clips: int, seed: int = 0) -> None:
    """A clip store of ``n_clips`` random uint8 (16, 224, 224, 3) clips, one per chunk."""
    rng = np.random.default_rng(seed)
    writer = ShardWriter(path, "clips", CLIP_SHAPE, np.uint8, capacity=n_clips)
    for _ in range(n_clips):
        writer.append(rng.integers(0, 256, CLIP_SHAPE, dtype=np.uint8))
    writer.commit()


def reference_embed(clips_store: Path, encoder: torch.nn.Module, device: str) -> np.ndarray:
    """One clip at a time, float32, normalised on the CPU → (N, 512)."""
    clips = open_rows(clips_store, "clips")
    rows = []
    with torch.no_grad():
        for index in range(clips.shape[0]):
            inputs = normalise_clips(clips[index : index + 1]).to(device)
            rows.append(encoder(inputs).float().cpu().numpy())
    return np.concatenate(rows)


def warm_up(encoder: torch.nn.Module, device: str) -> None:
    """One forward pass, so that CUDA start-up and cuDNN tuning are not timed."""
    with torch.no_grad():
        encoder(normalise_clips(np.zeros((1, *CLIP_SHAPE), np.uint8)).to(device))
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(function, *args, **kwargs) -> tuple[object, float]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def agreement(a: np.ndarray, b: np.ndarray) -> dict:
    """Max |a − b| and the lowest row-wise cosine similarity of two (N, 512) arrays."""
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"max_abs_diff": float(np.abs(a - b).max()), "min_cosine": float(cosine.min())}


def compare(
    folder: Path,
    encoder: torch.nn.Module,
    device: str,
    n_clips: int,
    batch_size: int,
    workers: int,
    precision: str,
) -> dict:
    """Time both ways on the same ``n_clips`` random clips written under ``folder``."""
    clips_store, embedding_store = folder / "clips.zarr", folder / "embeddings.zarr"
    write_random_clips(clips_store, n_clips)
    warm_up(encoder, device)
    reference, reference_s = timed(reference_embed, clips_store, encoder, device)
    warm_up(encoder, device)
    _, optimised_s = timed(
        embed_clip_store,
        clips_store,
        embedding_store,
        encoder,
        EchoEncoderOrigin(None),
        device=device,
        batch_size=batch_size,
        num_workers=workers,
        precision=precision,
    )
    embeddings = open_rows(embedding_store, "embeddings")[:]
    return {
        "reference": {
            "batch_size": 1,
            "workers": 0,
            "precision": "float32",
            "seconds": reference_s,
            "clips_per_s": n_clips / reference_s,
        },
        "embed_clip_store": {
            "batch_size": batch_size,
            "workers": workers,
            "precision": zarr.open_group(embedding_store, mode="r").attrs["precision"],
            "seconds": optimised_s,
            "clips_per_s": n_clips / optimised_s,
        },
        "speedup": reference_s / optimised_s,
        "agreement": agreement(embeddings, reference),
    }


class GpuUtilisation:
    """Mean GPU utilisation (%) from ``nvidia-smi``, sampled every 0.2 s while in the block;
    None on the CPU or where nvidia-smi is missing."""

    def __init__(self, device: str):
        # nvidia-smi ignores CUDA_VISIBLE_DEVICES: name the GPU by its UUID, not torch's index.
        self.gpu = None
        if device.startswith("cuda"):
            index = torch.device(device).index or 0
            self.gpu = f"GPU-{torch.cuda.get_device_properties(index).uuid}"
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        command = [
            "nvidia-smi",
            f"--id={self.gpu}",
            "--query-gpu=utilization.gpu",
            "--format=csv,noheader,nounits",
        ]
        while not self._stop.wait(0.2):
            try:
                self.samples.append(float(subprocess.check_output(command, text=True).strip()))
            except (OSError, ValueError, subprocess.CalledProcessError):
                return

    def __enter__(self):
        if self.gpu is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None


def sweep(
    folder: Path,
    encoder: torch.nn.Module,
    device: str,
    n_clips: int,
    batch_sizes: list[int],
    workers: int,
    precision: str,
) -> list[dict]:
    """clips/s of ``embed_clip_store`` per batch size, then channels-last and torch.compile at
    the fastest batch size; each setting after one untimed pass (compilation, autotuning)."""
    clips_store = folder / "sweep_clips.zarr"
    write_random_clips(clips_store, n_clips, seed=1)

    def measure(label: str, model: torch.nn.Module, batch_size: int) -> dict:
        for attempt in ("warm-up", "timed"):
            out = folder / f"sweep_{label}_{batch_size}_{attempt}.zarr"
            with GpuUtilisation(device) as gpu:
                _, seconds = timed(
                    embed_clip_store,
                    clips_store,
                    out,
                    model,
                    EchoEncoderOrigin(None),
                    device=device,
                    batch_size=batch_size,
                    num_workers=workers,
                    precision=precision,
                )
        row = {
            "setting": label,
            "batch_size": batch_size,
            "seconds": seconds,
            "clips_per_s": n_clips / seconds,
            "gpu_utilisation_pct": gpu.mean,
        }
        logging.info("%s", row)
        return row

    rows = [measure("eager", encoder, b) for b in batch_sizes]
    best = max(rows, key=lambda row: row["clips_per_s"])["batch_size"]
    channels_last = copy.deepcopy(encoder).to(memory_format=torch.channels_last_3d)
    rows.append(measure("channels_last_3d", channels_last, best))
    rows.append(measure("torch_compile", torch.compile(copy.deepcopy(encoder)), best))
    return rows


def run(
    n_clips: int | None,
    batch_size: int | None,
    workers: int | None,
    precision: str,
    batch_sweep: list[int] | None = None,
) -> dict:
    """Lease a device, fill in the device's defaults, compare → the figures."""
    with choose_device() as lease:
        device = lease.device
        defaults = DEFAULTS["cuda" if device.startswith("cuda") else "cpu"]
        n_clips = n_clips or defaults["n_clips"]
        batch_size = batch_size or defaults["batch_size"]
        workers = defaults["workers"] if workers is None else workers
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # random init is expected here
            encoder = build_echo_encoder().to(device)
        with tempfile.TemporaryDirectory() as tmp:
            figures = compare(Path(tmp), encoder, device, n_clips, batch_size, workers, precision)
            if batch_sweep:
                figures["sweep"] = sweep(
                    Path(tmp), encoder, device, n_clips, batch_sweep, workers, precision
                )
        name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
    return {
        "device": device,
        "device_name": name,
        "torch_threads": torch.get_num_threads(),
        "n_clips": n_clips,
        **figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-clips", type=int, help="clips to embed (default by device)")
    parser.add_argument("--batch-size", type=int, help="embed_clip_store batch size")
    parser.add_argument("--workers", type=int, help="embed_clip_store DataLoader workers")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "float32"))
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--sweep",
        type=lambda text: [int(b) for b in text.split(",")],
        help="batch sizes to time, e.g. 32,64,128 (then channels-last and torch.compile)",
    )
    args = parse_args(parser, SMOKE)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = run(args.n_clips, args.batch_size, args.workers, args.precision, args.sweep)
    print(json.dumps(result, indent=2))
    write_figures(result, args.json)


if __name__ == "__main__":
    main()
