"""Embedding clip shards: rows aligned with clips, loader plumbing, provenance, atomicity.

The plumbing tests use a tiny stand-in encoder; one test runs the real MViTv2-S on 2 clips
(about 1.3 s per clip forward on a small CPU).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import zarr
from torch import nn

from echo2ecg.data.store import ShardWriter, open_rows
from echo2ecg.embed.views import embed_clip_store, embed_clips, resolve_precision
from echo2ecg.models import EchoEncoderOrigin, build_echo_encoder, normalise_clips

CLIP_SHAPE = (16, 224, 224, 3)


class TinyEncoder(nn.Module):
    """(B, 3, 16, 224, 224) → (B, 512): pooled to 3×2×4×4 values, then one linear layer."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool3d((2, 4, 4))
        self.head = nn.Linear(3 * 2 * 4 * 4, 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(x).flatten(1))


class FailingEncoder(TinyEncoder):
    """Fails on its second batch, after the first one has been written."""

    calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("encoder failed")
        return super().forward(x)


def write_clip_store(path, n_clips: int, seed: int = 0) -> np.ndarray:
    """A clip store of random clips at ``path`` → the clips, uint8 (n_clips, 16, 224, 224, 3)."""
    clips = np.random.default_rng(seed).integers(0, 256, (n_clips, *CLIP_SHAPE), dtype=np.uint8)
    writer = ShardWriter(path, "clips", CLIP_SHAPE, np.uint8, capacity=n_clips)
    for clip in clips:
        writer.append(clip)
    writer.commit()
    return clips


def reference_rows(encoder: nn.Module, clips: np.ndarray) -> np.ndarray:
    """Each clip on its own: encoder(normalise_clips(clips[i:i+1])) → (N, 512)."""
    with torch.no_grad():
        return np.concatenate(
            [encoder(normalise_clips(clips[i : i + 1])).numpy() for i in range(len(clips))]
        )


def store_attributes(store) -> dict:
    return dict(zarr.open_group(store, mode="r").attrs)


@pytest.fixture
def tiny_encoder() -> TinyEncoder:
    torch.manual_seed(0)
    return TinyEncoder()


# what the tiny encoder stands in for: EchoPrime weights from a local path
PRETRAINED = EchoEncoderOrigin("/local/weights/echo_prime_encoder.pt")


def test_rows_follow_the_clip_store(tmp_path, tiny_encoder, caplog):
    clips = write_clip_store(tmp_path / "clips.zarr", 5)
    with caplog.at_level(logging.INFO, logger="echo2ecg.embed.views"):
        n = embed_clip_store(
            tmp_path / "clips.zarr",
            tmp_path / "embeddings.zarr",
            tiny_encoder,
            PRETRAINED,
            batch_size=2,
            num_workers=0,
            precision="float32",
        )
    embeddings = open_rows(tmp_path / "embeddings.zarr", "embeddings")
    assert n == 5
    assert embeddings.shape == (5, 512) and embeddings.dtype == np.float32
    np.testing.assert_allclose(
        embeddings[:], reference_rows(tiny_encoder, clips), rtol=1e-5, atol=1e-5
    )
    assert "embedded 5 clips" in caplog.text


def test_worker_processes_give_the_same_rows(tmp_path, tiny_encoder):
    write_clip_store(tmp_path / "clips.zarr", 5)
    for workers in (0, 2):
        embed_clip_store(
            tmp_path / "clips.zarr",
            tmp_path / f"w{workers}.zarr",
            tiny_encoder,
            PRETRAINED,
            batch_size=2,
            num_workers=workers,
        )
    np.testing.assert_array_equal(
        open_rows(tmp_path / "w0.zarr", "embeddings")[:],
        open_rows(tmp_path / "w2.zarr", "embeddings")[:],
    )


def test_in_memory_clips_embed_like_the_store(tmp_path, tiny_encoder):
    clips = write_clip_store(tmp_path / "clips.zarr", 3)
    embedded = embed_clips(tiny_encoder, clips, device="cpu", precision="float32")
    assert embedded.shape == (3, 512) and embedded.dtype == np.float32
    np.testing.assert_allclose(embedded, reference_rows(tiny_encoder, clips), rtol=1e-5, atol=1e-5)


def test_store_attributes_record_the_encoder(tmp_path, tiny_encoder):
    write_clip_store(tmp_path / "clips.zarr", 1)
    embed_clip_store(
        tmp_path / "clips.zarr",
        tmp_path / "embeddings.zarr",
        tiny_encoder,
        PRETRAINED,
        num_workers=0,
        precision="float32",
    )
    assert store_attributes(tmp_path / "embeddings.zarr") == {
        "encoder_pretrained": True,
        "encoder_weights": "echo_prime_encoder.pt",
        "encoder_init_seed": None,
        "precision": "float32",
        "device_type": "cpu",
    }


def test_empty_clip_store_gives_an_empty_embedding_store(tmp_path, tiny_encoder):
    write_clip_store(tmp_path / "clips.zarr", 0)
    n = embed_clip_store(
        tmp_path / "clips.zarr",
        tmp_path / "embeddings.zarr",
        tiny_encoder,
        PRETRAINED,
        num_workers=2,
    )
    assert n == 0
    embeddings = open_rows(tmp_path / "embeddings.zarr", "embeddings")
    assert embeddings.shape == (0, 512) and embeddings.dtype == np.float32


def test_failing_encoder_leaves_no_store(tmp_path):
    write_clip_store(tmp_path / "clips.zarr", 4)
    with pytest.raises(RuntimeError, match="encoder failed"):
        embed_clip_store(
            tmp_path / "clips.zarr",
            tmp_path / "embeddings.zarr",
            FailingEncoder(),
            PRETRAINED,
            batch_size=2,
            num_workers=0,
        )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clips.zarr"]


def test_precision_choice_on_cpu_without_native_bf16(caplog, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "float32"
    assert resolve_precision("float32", cpu) == "float32"
    with caplog.at_level(logging.WARNING, logger="echo2ecg.embed.views"):
        assert resolve_precision("bf16", cpu) == "float32"
    assert "bf16 is not available" in caplog.text
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp16", cpu)


@pytest.mark.parametrize("probe", ["_is_amx_tile_supported", "_is_avx512_bf16_supported"])
def test_bf16_cpu_embeds_in_bf16_close_to_fp32(tmp_path, tiny_encoder, monkeypatch, probe):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, probe, lambda: True)
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "bf16"
    assert resolve_precision("float32", cpu) == "float32"
    clips = write_clip_store(tmp_path / "clips.zarr", 3)
    embed_clip_store(
        tmp_path / "clips.zarr",
        tmp_path / "embeddings.zarr",
        tiny_encoder,
        PRETRAINED,
        num_workers=0,
        precision="auto",
    )
    assert store_attributes(tmp_path / "embeddings.zarr")["precision"] == "bf16"
    bf16 = open_rows(tmp_path / "embeddings.zarr", "embeddings")[:]
    fp32 = reference_rows(tiny_encoder, clips)
    assert not np.array_equal(bf16, fp32)  # autocast really ran
    cosine = (bf16 * fp32).sum(1) / np.linalg.norm(bf16, axis=1) / np.linalg.norm(fp32, axis=1)
    assert cosine.min() > 0.999


def test_real_encoder_rows_match_one_clip_at_a_time(tmp_path):
    with pytest.warns(UserWarning, match="random init"):
        encoder = build_echo_encoder()
    clips = write_clip_store(tmp_path / "clips.zarr", 2)
    embed_clip_store(
        tmp_path / "clips.zarr",
        tmp_path / "embeddings.zarr",
        encoder,
        EchoEncoderOrigin(None, init_seed=0),
        batch_size=2,
        num_workers=0,
        precision="float32",
    )
    stored = open_rows(tmp_path / "embeddings.zarr", "embeddings")[:]
    expected = reference_rows(encoder, clips)
    np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-4)
    attributes = store_attributes(tmp_path / "embeddings.zarr")
    assert attributes["encoder_pretrained"] is False and attributes["encoder_weights"] is None
    assert attributes["encoder_init_seed"] == 0  # a random network is named by its seed
