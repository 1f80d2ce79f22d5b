"""A trained model as a function of arrays: ECG embeddings, their projection into the
joint space, and study embeddings."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from echo2ecg.embed.devices import resolve_device
from echo2ecg.models import ECGEncoder, Echo2ECG, ProbabilisticEcho2ECG
from echo2ecg.train.augment import eval_crop
from echo2ecg.train.pair_data import pad_views


def _batches(n: int, batch_size: int):
    return (slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size))


def _encoder_of(model_or_encoder: nn.Module) -> ECGEncoder:
    return (
        model_or_encoder.ecg_encoder if isinstance(model_or_encoder, Echo2ECG) else model_or_encoder
    )


@contextlib.contextmanager
def _eval_mode(module: nn.Module):
    """``module`` in eval mode for the block; its training mode is restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


@torch.no_grad()
def _run_eval(
    module: nn.Module, forward: Callable[[slice], torch.Tensor], n: int, batch_size: int
) -> np.ndarray:
    """``forward`` over consecutive slices of n items in eval mode → stacked float32 rows;
    the module's training mode is restored afterwards."""
    with _eval_mode(module):
        chunks = [forward(part).float().cpu().numpy() for part in _batches(n, batch_size)]
    return np.concatenate(chunks) if chunks else np.empty((0, 0), np.float32)


def _ecg_batch(ecgs: np.ndarray, part: slice, n_samples: int, device: torch.device) -> torch.Tensor:
    return eval_crop(torch.from_numpy(np.asarray(ecgs[part], np.float32)), n_samples).to(device)


def _batch_lead_mask(
    lead_mask: np.ndarray | None, n: int, device: torch.device
) -> torch.Tensor | None:
    """The (12,) recorded-lead mask every ECG shares as (n, 12) on ``device`` (None: all)."""
    if lead_mask is None:
        return None
    return torch.as_tensor(np.asarray(lead_mask, bool), device=device).expand(n, -1)


def embed_ecgs(
    model_or_encoder: nn.Module,
    ecgs: np.ndarray,
    batch_size: int = 256,
    n_samples: int = 1008,
    device: str | torch.device | None = None,
    lead_mask: np.ndarray | None = None,
) -> np.ndarray:
    """ECG features, docs/method.md section 7: (N, 12, T) preprocessed ECGs → (N, embed_dim) float32
    (mean patch token → LayerNorm; 192-d for the paper's encoder), first n_samples, eval mode.
    ``lead_mask`` (12,) bool: the leads every ECG recorded (None: all). Accepts an Echo2ECG
    or a bare ECGEncoder; the encoder is moved to ``device``."""
    device = resolve_device(device)
    encoder = _encoder_of(model_or_encoder).to(device)

    def forward(part: slice) -> torch.Tensor:
        batch = _ecg_batch(ecgs, part, n_samples, device)
        return encoder(batch, _batch_lead_mask(lead_mask, len(batch), device))

    return _run_eval(encoder, forward, len(ecgs), batch_size)


def project_ecgs(
    model: Echo2ECG,
    ecgs: np.ndarray,
    batch_size: int = 256,
    n_samples: int = 1008,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Joint-space ECG vectors: (N, 12, T) → (N, joint_dim) float32 (512-d), not
    normalised; first n_samples, eval mode; the model is moved to ``device``."""
    return ecg_readouts(model, ecgs, batch_size, n_samples, device)["joint"]


def ecg_uncertainties(
    model: ProbabilisticEcho2ECG,
    ecgs: np.ndarray,
    batch_size: int = 256,
    n_samples: int = 1008,
    device: str | torch.device | None = None,
    lead_mask: np.ndarray | None = None,
) -> np.ndarray:
    """The probabilistic variant's uncertainty of each ECG: (N, 12, T) → (N,) float32, the
    mean σ² of its joint-space Gaussian; first n_samples, eval mode. ``lead_mask`` (12,)
    bool: the leads every ECG recorded (None: all)."""
    return ecg_readouts(model, ecgs, batch_size, n_samples, device, lead_mask)["uncertainty"]


def ecg_readouts(
    model: Echo2ECG,
    ecgs: np.ndarray,
    batch_size: int = 256,
    n_samples: int = 1008,
    device: str | torch.device | None = None,
    lead_mask: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Everything a trained model reads from an ECG, from one encoder pass per batch:
    (N, 12, T) → {"embedding": (N, embed_dim) as :func:`embed_ecgs`, "joint":
    (N, joint_dim), and for a probabilistic variant "uncertainty": (N,), each ECG's mean
    σ²}, float32; first n_samples, eval mode; the model is moved to ``device``.
    ``lead_mask`` (12,) bool: the leads every ECG recorded (None: all)."""
    device = resolve_device(device)
    model = model.to(device)
    parts: dict[str, list[np.ndarray]] = {}

    def read(token: torch.Tensor) -> None:
        for name, value in {"embedding": token, **model.ecg_readouts(token)}.items():
            parts.setdefault(name, []).append(value.float().cpu().numpy())

    with _eval_mode(model), torch.no_grad():
        for part in _batches(len(ecgs), batch_size):
            batch = _ecg_batch(ecgs, part, n_samples, device)
            read(model.ecg_encoder(batch, _batch_lead_mask(lead_mask, len(batch), device)))
        if not parts:  # no ECGs: empty arrays of the right widths
            read(torch.zeros(0, model.ecg_encoder.embed_dim, device=device))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def embed_studies(
    model: Echo2ECG,
    study_views: list[np.ndarray],
    batch_size: int = 256,
    max_views: int = 128,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Joint-space study vectors: per-study (V_i, D) view embeddings → (S, joint_dim)
    float32, not normalised; the first ``max_views`` views of each study, eval mode; the
    model is moved to ``device``."""
    device = resolve_device(device)
    model = model.to(device)

    def forward(part: slice) -> torch.Tensor:
        views, mask = pad_views([v[:max_views] for v in study_views[part]])
        return model.encode_study(views.to(device), mask.to(device))

    return _run_eval(model, forward, len(study_views), batch_size)
