"""ECG training augmentations (docs/method.md section 3), batched on torch tensors.

Every function takes a batch ``x`` (B, leads, T) of preprocessed (z-scored) ECGs and a
``torch.Generator``; all random numbers are drawn from that generator on its device, so a
seeded generator gives the same augmented batch on any run. Each sample of the batch gets
its own draw. The recipe follows OTiS, as used by Echo2ECG, applied in this order:

    random crop of n_samples → FT surrogate (p 0.5) → multiplicative jitter → rescaling
    → time flip (p 0.33) → sign flip (p 0.33)

Evaluation uses no augmentation, only :func:`eval_crop` (the first n_samples).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class AugmentParams:
    """Strengths of the training augmentation; the defaults are the paper's (OTiS)."""

    ft_phase_noise: float = 0.075  # FT-surrogate phase noise magnitude
    ft_prob: float = 0.5  # FT-surrogate probability
    jitter_scale: float = 0.6  # x + 0.6·x·N(0, 0.2)
    jitter_sigma: float = 0.2
    rescale_sigma: float = 0.5  # one scalar ~ N(1, 0.5) per ECG
    time_flip_p: float = 0.33
    sign_flip_p: float = 0.33

    def __post_init__(self) -> None:
        if not 0.0 <= self.ft_phase_noise <= 1.0:
            raise ValueError(f"ft_phase_noise must lie in [0, 1], got {self.ft_phase_noise}")
        for name in ("ft_prob", "time_flip_p", "sign_flip_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability, got {getattr(self, name)}")


def _uniform(
    shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    """U[0, 1) of ``shape`` from ``generator``, on ``like``'s device and dtype."""
    values = torch.rand(shape, generator=generator, device=generator.device)
    return values.to(device=like.device, dtype=like.dtype)


def _normal(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """N(0, 1) of ``shape`` from ``generator``, on ``like``'s device and dtype."""
    values = torch.randn(shape, generator=generator, device=generator.device)
    return values.to(device=like.device, dtype=like.dtype)


def _check_length(x: torch.Tensor, n_samples: int) -> None:
    if x.ndim != 3 or x.shape[-1] < n_samples:
        raise ValueError(f"expected ECGs (B, leads, T) with T ≥ {n_samples}, got {tuple(x.shape)}")


def eval_crop(x: torch.Tensor, n_samples: int = 1008) -> torch.Tensor:
    """(B, leads, T) → (B, leads, n_samples): the first n_samples (evaluation input)."""
    _check_length(x, n_samples)
    return x[..., :n_samples]


def random_crop(
    x: torch.Tensor,
    n_samples: int,
    generator: torch.Generator,
    lengths: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, leads, T) → (B, leads, n_samples): one window per sample, start uniform in
    [0, T − n_samples] (or [0, lengths[i] − n_samples] for ECGs recorded over their first
    ``lengths`` (B,) samples only, zero-padded beyond), the same start for all its leads."""
    _check_length(x, n_samples)
    batch, n_leads, length = x.shape
    if lengths is None:
        starts = torch.randint(
            0, length - n_samples + 1, (batch,), generator=generator, device=generator.device
        ).to(x.device)
    else:
        room = (lengths.clamp(max=length) - n_samples).clamp(min=0) + 1
        draws = torch.rand(batch, generator=generator, device=generator.device).to(x.device)
        starts = (draws * room.to(x.device)).long().clamp(max=room.to(x.device) - 1)
    index = starts[:, None] + torch.arange(n_samples, device=x.device)[None, :]
    return x.gather(2, index[:, None, :].expand(batch, n_leads, n_samples))


def ft_surrogate(
    x: torch.Tensor, phase_noise: float, prob: float, generator: torch.Generator
) -> torch.Tensor:
    """Fourier-transform surrogate (Schwabedal et al. 2018; braindecode, OTiS).

    With probability ``prob`` per sample, every frequency bin strictly between DC and
    Nyquist has its phase shifted by φ ~ U[0, phase_noise·2π); one φ per bin is shared by
    all leads of the sample, so the inter-lead relations are kept. The amplitude spectrum
    |FFT| of every lead is unchanged. (B, leads, T) → same shape and dtype.
    """
    batch, _, length = x.shape
    spectrum = torch.fft.rfft(x, dim=-1)  # (B, leads, T // 2 + 1)
    phase = phase_noise * 2 * math.pi * _uniform((batch, 1, spectrum.shape[-1]), generator, x)
    phase[..., 0] = 0.0  # DC stays real
    if length % 2 == 0:
        phase[..., -1] = 0.0  # so does the Nyquist bin of an even-length signal
    applied = _uniform((batch, 1, 1), generator, x) < prob
    phase = phase * applied
    return torch.fft.irfft(spectrum * torch.polar(torch.ones_like(phase), phase), n=length, dim=-1)


def jitter(x: torch.Tensor, scale: float, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Multiplicative noise: x + scale·x·N(0, sigma²), drawn per element."""
    return x + scale * x * sigma * _normal(tuple(x.shape), generator, x)


def rescale(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """x·s with one s ~ N(1, sigma²) per sample (all leads, all time)."""
    factor = 1.0 + sigma * _normal((x.shape[0], 1, 1), generator, x)
    return x * factor


def time_flip(x: torch.Tensor, prob: float, generator: torch.Generator) -> torch.Tensor:
    """Reverse time (all leads) of each sample with probability ``prob``."""
    flipped = _uniform((x.shape[0], 1, 1), generator, x) < prob
    return torch.where(flipped, x.flip(-1), x)


def sign_flip(x: torch.Tensor, prob: float, generator: torch.Generator) -> torch.Tensor:
    """Negate (all leads) each sample with probability ``prob``."""
    flipped = _uniform((x.shape[0], 1, 1), generator, x) < prob
    return torch.where(flipped, -x, x)


class EcgAugment:
    """docs/method.md section 3's training augmentation as one callable: ``(x, generator) → x``.

    x: (B, leads, T) float ECGs with T ≥ n_samples; returns (B, leads, n_samples).
    """

    def __init__(self, n_samples: int = 1008, params: AugmentParams = AugmentParams()):
        self.n_samples = n_samples
        self.params = params

    def __call__(
        self, x: torch.Tensor, generator: torch.Generator, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        p = self.params
        x = random_crop(x, self.n_samples, generator, lengths)
        x = ft_surrogate(x, p.ft_phase_noise, p.ft_prob, generator)
        x = jitter(x, p.jitter_scale, p.jitter_sigma, generator)
        x = rescale(x, p.rescale_sigma, generator)
        x = time_flip(x, p.time_flip_p, generator)
        return sign_flip(x, p.sign_flip_p, generator)

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v}" for k, v in asdict(self.params).items())
        return f"EcgAugment(n_samples={self.n_samples}, {values})"
