"""View embeddings from the frozen echo encoder (docs/method.md section 5), computed once per clip.

A clip shard (``clips.zarr``, array ``clips`` uint8 (N, 16, 224, 224, 3)) becomes an
embedding shard (array ``embeddings`` float32 (N, 512), row i = clip row i). Clips travel to
the device as uint8 (a quarter of float32's bytes) and are normalised there. The encoder
runs under bf16 autocast where the device computes bf16 natively (CUDA, AMX or AVX512-BF16
CPUs), in float32 elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from echo2ecg import vocabulary
from echo2ecg.data.store import ShardWriter, open_rows
from echo2ecg.models.echo_encoder import ECHO_EMBED_DIM, EchoEncoderOrigin, normalise_clips

log = logging.getLogger(__name__)

EMBEDDINGS_PER_CHUNK = 1024


class ClipDataset(Dataset):
    """Item i = clip row i of a clip store: a (16, 224, 224, 3) uint8 tensor.

    The Zarr array is opened lazily in whichever process reads, so each DataLoader worker
    opens the store itself instead of sharing the parent's handle.
    """

    def __init__(self, clips_store: str | Path):
        self.clips_store = str(clips_store)
        self.n_clips = open_rows(self.clips_store, "clips").shape[0]
        self._clips = None

    def __len__(self) -> int:
        return self.n_clips

    def __getitem__(self, index: int) -> torch.Tensor:
        if self._clips is None:
            self._clips = open_rows(self.clips_store, "clips")
        return torch.from_numpy(np.asarray(self._clips[index]))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_clips": None}


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA GPU with bf16 units, or a CPU with
    AMX tiles (Sapphire Rapids and later) or the AVX512-BF16 dot-product instructions (Cooper
    Lake, Zen 4 and later), where oneDNN runs bf16 matmuls faster than fp32 (MViTv2-S on
    two Zen 4 cores: 1.3 s against 2.2 s per clip). Elsewhere bf16 would be emulated and
    slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return False
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


def resolve_precision(precision: str, device: torch.device) -> str:
    """ "auto" / "bf16" / "float32" → the precision used on ``device``: "bf16" or "float32".

    "auto" and "bf16" take bf16 autocast where the device computes it natively
    (:func:`native_bf16`); everywhere else every choice becomes float32. bf16 view embeddings
    differ from fp32 ones by about 1 % (cosine similarity > 0.9999); each embedding store
    records the precision it was made with.
    """
    if precision not in vocabulary.PRECISIONS:
        raise ValueError(f"precision must be one of {vocabulary.PRECISIONS}, got {precision!r}")
    bf16_ok = native_bf16(device)
    if precision == "bf16" and not bf16_ok:
        log.warning("bf16 is not available on %s; embedding in float32", device)
    return "bf16" if precision in ("auto", "bf16") and bf16_ok else "float32"


def _encode_batch(encoder: nn.Module, clips: torch.Tensor, precision: str) -> torch.Tensor:
    """uint8 (B, 16, 224, 224, 3) on the encoder's device → float32 (B, 512) on the CPU."""
    autocast = (
        torch.autocast(clips.device.type, dtype=torch.bfloat16)
        if precision == "bf16"
        else contextlib.nullcontext()
    )
    with torch.inference_mode():
        inputs = normalise_clips(clips)
        with autocast:
            embeddings = encoder(inputs)
    return embeddings.float().cpu()


def _prepare_encoder(encoder: nn.Module, device: torch.device) -> None:
    """Move the encoder to ``device`` in eval mode (its head has dropout)."""
    encoder.to(device).eval()


def embed_clips(
    encoder: nn.Module, clips: np.ndarray, device: str = "cpu", precision: str = "auto"
) -> np.ndarray:
    """Embed a small in-memory batch: uint8 (B, 16, 224, 224, 3) → float32 (B, 512).

    Moves ``encoder`` to ``device`` in eval mode. All B clips go through in one forward pass.
    """
    device = torch.device(device)
    _prepare_encoder(encoder, device)
    batch = torch.as_tensor(clips).to(device)
    return _encode_batch(encoder, batch, resolve_precision(precision, device)).numpy()


def embed_clip_store(
    clips_store: str | Path,
    out_store: str | Path,
    encoder: nn.Module,
    origin: EchoEncoderOrigin,
    device: str = "cpu",
    batch_size: int = 8,
    num_workers: int = 2,
    precision: str = "auto",
    progress_every_s: float = 10.0,
) -> int:
    """Embed every clip of ``clips_store`` into a new store ``out_store``; returns N.

    ``out_store`` gets array ``embeddings`` float32 (N, 512), row i from clip row i, and the
    attributes of ``origin`` (what ``encoder`` was built from: ``encoder_pretrained``,
    ``encoder_weights``, ``encoder_init_seed``), ``precision``
    ("bf16"/"float32", as used) and ``device_type`` ("cuda"/"cpu"). The store appears only
    when complete: if anything fails, nothing is left at ``out_store``.

    device: torch device string (see :func:`echo2ecg.embed.devices.choose_device`); the encoder is
        moved there and put in eval mode. On CUDA, cuDNN autotuning is on for this call.
    batch_size: clips per forward pass. num_workers: DataLoader processes reading clips.
    precision: "auto" (bf16 autocast where the device has native bf16, else float32), "bf16"
        or "float32"; see :func:`resolve_precision`.
    progress_every_s: seconds between progress log lines.
    """
    device = torch.device(device)
    precision = resolve_precision(precision, device)
    _prepare_encoder(encoder, device)
    dataset = ClipDataset(clips_store)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    attributes = {**origin.attributes(), "precision": precision, "device_type": device.type}
    log.info(
        "embedding %d clips of %s on %s (%s, batch %d, %d workers)",
        len(dataset),
        clips_store,
        device,
        precision,
        batch_size,
        num_workers,
    )
    progress = _Progress(len(dataset), progress_every_s)
    # one clip shape throughout: cuDNN tunes once, for this call only
    with (
        _cudnn_benchmark(device.type == "cuda"),
        ShardWriter(
            out_store,
            "embeddings",
            (ECHO_EMBED_DIM,),
            np.float32,
            capacity=len(dataset),
            rows_per_chunk=EMBEDDINGS_PER_CHUNK,
            attributes=attributes,
        ) as writer,
    ):
        for clips in loader:
            clips = clips.to(device, non_blocking=True)
            for row in _encode_batch(encoder, clips, precision).numpy():
                writer.append(row)
            progress.update(len(clips))
        writer.commit()
    progress.finish()
    return len(dataset)


@contextlib.contextmanager
def _cudnn_benchmark(on: bool):
    """cuDNN autotuning on (when ``on``) inside the block, as it was after it."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = before or on
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


class _Progress:
    """Logs clips done and clips/s at most every ``every_s`` seconds, and a final summary."""

    def __init__(self, total: int, every_s: float):
        self.total = total
        self.every_s = every_s
        self.done = 0
        self.start = self.last_log = time.monotonic()

    def update(self, n_clips: int) -> None:
        self.done += n_clips
        now = time.monotonic()
        if now - self.last_log >= self.every_s:
            self.last_log = now
            log.info(
                "embedded %d/%d clips, %.2f clips/s",
                self.done,
                self.total,
                self.done / (now - self.start),
            )

    def finish(self) -> None:
        elapsed = time.monotonic() - self.start
        log.info(
            "embedded %d clips in %.1f s (%.2f clips/s)",
            self.done,
            elapsed,
            self.done / elapsed if elapsed > 0 else float("nan"),
        )
