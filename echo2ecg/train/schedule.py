"""AdamW parameter groups (layer-wise lr decay, no-decay names from the model) and the
warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from echo2ecg.models import Echo2ECG
from echo2ecg.train.settings import TrainSettings


def param_groups(
    model: nn.Module,
    lr: float,
    layer_decay: float,
    weight_decay: float,
    embeddings_share_block0: bool = True,
) -> list[dict]:
    """AdamW parameter groups with layer-wise lr decay over the ECG encoder's blocks.

    ``model`` is an Echo2ECG (its ``ecg_encoder`` is decayed; view pool and projections get
    the full lr) or a bare ECGEncoder. The encoder says which layer each parameter belongs
    to (:meth:`ECGEncoder.layer_id`: block i trains at lr·decay^(depth − 1 − i), the
    tokeniser and embeddings at block 0's rate with ``embeddings_share_block0`` (the
    reference code) or one step below it) and which parameters are not decayed
    (:meth:`ECGEncoder.no_weight_decay`; biases and norms, 1-D, never are; nor is the CLS
    pool's class token). Each group holds ``params``, ``lr_scale`` (the multiplier the
    scheduler applies: lr = base lr at the step · lr_scale), ``lr`` (= lr·lr_scale),
    ``weight_decay``, ``exponent`` and ``names``. Frozen parameters are left out.
    """
    encoder = model.ecg_encoder if isinstance(model, Echo2ECG) else model
    depth = len(encoder.blocks)
    prefix = "" if encoder is model else "ecg_encoder."
    spared = {prefix + name for name in encoder.no_weight_decay()} | {"view_pool.cls_token"}
    groups: dict[tuple[int, bool], dict] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        exponent = 0
        if name.startswith(prefix):
            layer = encoder.layer_id(name[len(prefix) :], embeddings_share_block0)
            exponent = max(0, depth - layer)
        decayed = parameter.ndim > 1 and name not in spared
        group = groups.setdefault(
            (exponent, decayed),
            {
                "params": [],
                "names": [],
                "exponent": exponent,
                "lr_scale": layer_decay**exponent,
                "lr": lr * layer_decay**exponent,
                "weight_decay": weight_decay if decayed else 0.0,
            },
        )
        group["params"].append(parameter)
        group["names"].append(name)
    return [groups[key] for key in sorted(groups, reverse=True)]


def lr_at(epoch: float, settings: TrainSettings) -> float:
    """Base learning rate at a (fractional) epoch: linear warm-up from warmup_start·lr to lr
    over warmup_epochs, then half a cosine down to min_lr·lr at ``settings.epochs``."""
    peak, floor = settings.lr, settings.min_lr * settings.lr
    if epoch < settings.warmup_epochs:
        start = settings.warmup_start * peak
        return start + (peak - start) * epoch / settings.warmup_epochs
    cosine_epochs = settings.epochs - settings.warmup_epochs
    if cosine_epochs <= 0 or epoch >= settings.epochs:
        return floor
    progress = (epoch - settings.warmup_epochs) / cosine_epochs
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = base_lr * group["lr_scale"]
