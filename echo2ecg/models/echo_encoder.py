"""The frozen echo encoder: EchoPrime's MViTv2-S video model (docs/method.md section 5).

torchvision's ``mvit_v2_s`` with its last head layer replaced by Linear(768 → 512): one
512-d, not L2-normalised, vector per view clip. EchoPrime's ``echo_prime_encoder.pt`` is a
plain state dict of exactly that module (keys as torchvision names them, the new head layer
being ``head.1.*``) and is loaded strictly. 34,623,872 parameters.

Clips are stored unnormalised (uint8, (16, 224, 224, 3) RGB); :func:`normalise_clips` turns
a batch into the encoder's input.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from echo2ecg.models.torchvision_ops import import_torchvision

log = logging.getLogger(__name__)

# EchoPrime's per-channel (R, G, B) statistics on the 0–255 scale.
ECHO_MEAN = (29.110628, 28.076836, 29.096405)
ECHO_STD = (47.989223, 46.456997, 47.20083)

ECHO_EMBED_DIM = 512
RANDOM_INIT_WARNING = (
    "echo encoder: no EchoPrime weights given, MViTv2-S starts from random "
    "init; its view embeddings are not EchoPrime's and every report must say so"
)


@dataclass(frozen=True)
class EchoEncoderOrigin:
    """What an echo encoder is built from: an EchoPrime state dict, or a seeded random init
    (``weights`` None). Embedding stores record it as provenance."""

    weights: str | Path | None = None
    init_seed: int = 0

    @property
    def pretrained(self) -> bool:
        return self.weights is not None

    def attributes(self) -> dict:
        """Store attributes: the weights by file name (never the local path), the seed only
        for a random init."""
        return {
            "encoder_pretrained": self.pretrained,
            "encoder_weights": Path(self.weights).name if self.pretrained else None,
            "encoder_init_seed": None if self.pretrained else self.init_seed,
        }


def normalise_clips(clips: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(B, 16, 224, 224, 3) uint8 RGB clips → (B, 3, 16, 224, 224) float32 encoder input.

    Per channel: (value − ECHO_MEAN) / ECHO_STD, values on the 0–255 scale. Zero frames that
    pad a short clip become −mean/std like any black pixel (the Echo2ECG reference order:
    pad first, normalise after).
    """
    clips = torch.as_tensor(clips)
    if clips.ndim != 5 or clips.shape[-1] != 3:
        raise ValueError(f"expected clips of shape (B, frames, H, W, 3), got {tuple(clips.shape)}")
    mean = torch.tensor(ECHO_MEAN, dtype=torch.float32, device=clips.device)
    std = torch.tensor(ECHO_STD, dtype=torch.float32, device=clips.device)
    normalised = (clips.to(torch.float32) - mean) / std
    return normalised.permute(0, 4, 1, 2, 3).contiguous()


def build_echo_encoder(weights: str | Path | None = None, init_seed: int = 0) -> nn.Module:
    """MViTv2-S with a 512-d head, frozen and in eval mode.

    weights: path to an EchoPrime-format state dict (``torch.load(..., weights_only=True)``),
        loaded strictly: a missing, extra or misshapen key raises. None → random init, with a
        ``UserWarning`` and a log warning.
    init_seed: seeds the random init. Every embedding job of a run must build the same
        network, or views embedded in different shards land in unrelated spaces. The global
        torch RNG is left as it was.

    Input (B, 3, 16, 224, 224) from :func:`normalise_clips`; output (B, 512). Provenance is
    the caller's :class:`EchoEncoderOrigin` of the same two arguments.
    """
    video_models = import_torchvision().models.video
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        encoder = video_models.mvit_v2_s(weights=None)
        encoder.head[-1] = nn.Linear(encoder.head[-1].in_features, ECHO_EMBED_DIM)
    if weights is None:
        warnings.warn(RANDOM_INIT_WARNING, UserWarning, stacklevel=2)
        log.warning(RANDOM_INIT_WARNING)
    else:
        state_dict = torch.load(Path(weights), map_location="cpu", weights_only=True)
        encoder.load_state_dict(state_dict, strict=True)
    encoder.requires_grad_(False)
    return encoder.eval()
