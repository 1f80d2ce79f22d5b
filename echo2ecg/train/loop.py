"""Contrastive training of Echo2ECG on cached embeddings (docs/method.md sections 3, 5, 6).

The echo encoder is never run here: a study is its cached view embeddings, (V, 512) each,
computed once by the frozen encoder. One training sample is one (ECG, study) pair:

    ECG (12, T) ─ random 1008 crop + augmentations ─┐
                                                    ├─ Echo2ECG ─ CLIP loss (τ fixed)
    study views (V ≤ 128, 512) + mask ───────────────┘

Batches are built whole (vectorised augmentation) by :class:`PairBatches`; every batch's
randomness comes from a generator seeded by (seed, epoch, batch index), so a run is
reproducible whatever the number of loader workers.

Outputs of :func:`train`, at the paths of a :class:`TrainOutputs`: the history CSV (epoch,
train_loss, val_loss, lr, seconds; rewritten after every epoch), the best checkpoint (lowest
validation loss) and the last one, each ``{"model", "settings", "epoch", "val_loss",
"extra"}``.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from echo2ecg.embed.devices import resolve_device
from echo2ecg.models import Echo2ECG
from echo2ecg.train.objectives import batch_loss
from echo2ecg.train.pair_data import PairBatch, PairBatches, PairData, per_view_pairs
from echo2ecg.train.schedule import lr_at, param_groups, set_lr
from echo2ecg.train.settings import TrainSettings

log = logging.getLogger(__name__)


HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "lr", "seconds"]


@dataclass(frozen=True)
class TrainOutputs:
    """Where training writes: the checkpoint of the lowest validation loss (``best``), the
    last epoch's (``last``) and the per-epoch history CSV."""

    best: str | Path
    last: str | Path
    history: str | Path


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (drop-path and other global-RNG draws)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether to autocast to bfloat16: 'auto' means on CUDA only."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def _loader(batches: PairBatches, settings: TrainSettings, device: torch.device) -> DataLoader:
    return DataLoader(
        batches,
        batch_size=None,
        shuffle=False,
        num_workers=settings.num_workers,
        pin_memory=device.type == "cuda",
    )


def _to_device(batch: PairBatch, device: torch.device) -> PairBatch:
    return PairBatch(*(t.to(device, non_blocking=True) for t in batch))


def train_epoch(
    model: Echo2ECG,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    settings: TrainSettings,
    device: torch.device,
) -> tuple[float, float]:
    """One pass over the training batches → (mean batch loss, base lr at the last step)."""
    model.train()
    bf16 = uses_bf16(settings.precision, device)
    steps = len(loader)
    losses, base_lr = [], lr_at(epoch, settings)
    for step, batch in enumerate(loader):
        base_lr = lr_at(epoch + step / steps, settings)
        set_lr(optimizer, base_lr)
        loss = batch_loss(model, _to_device(batch, device), settings, bf16, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return float(np.mean(losses)), base_lr


@torch.no_grad()
def evaluate_loss(
    model: Echo2ECG, loader: DataLoader, settings: TrainSettings, device: torch.device
) -> float:
    """Validation loss (the variant's objective) in eval mode: mean over the fixed
    batches, weighted by size."""
    model.eval()
    bf16 = uses_bf16(settings.precision, device)
    total, count = 0.0, 0
    for batch in loader:
        loss = batch_loss(model, _to_device(batch, device), settings, bf16, device)
        total += loss.item() * len(batch.ecgs)
        count += len(batch.ecgs)
    return total / count


def _save_atomic(write: Callable[[Path], None], path: str | Path) -> None:
    """Write through a temporary file and rename, so a killed job leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)


def save_checkpoint(
    model: nn.Module,
    settings: TrainSettings,
    epoch: int,
    val_loss: float,
    extra: dict,
    path: str | Path,
) -> None:
    """{"model": CPU state dict, "settings", "epoch", "val_loss", "extra"} → path."""
    checkpoint = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "settings": asdict(settings),
        "epoch": epoch,
        "val_loss": val_loss,
        "extra": extra,
    }
    _save_atomic(lambda partial: torch.save(checkpoint, partial), path)


def write_history(history: pd.DataFrame, path: str | Path) -> None:
    _save_atomic(lambda partial: history.to_csv(partial, index=False), path)


def _check_data(data: PairData, what: str, n_samples: int) -> None:
    if len(data) < 2:
        raise ValueError(f"{what} data has {len(data)} pairs; the CLIP loss needs at least 2")
    if data.ecgs.shape[-1] < n_samples:
        raise ValueError(
            f"{what} ECGs have {data.ecgs.shape[-1]} samples, fewer than the "
            f"model input of {n_samples}"
        )


def train(
    model: Echo2ECG,
    train_data: PairData,
    val_data: PairData,
    settings: TrainSettings,
    outputs: TrainOutputs,
    device: str | torch.device | None = None,
    progress: Callable[[dict], None] | None = None,
    extra: dict | None = None,
) -> pd.DataFrame:
    """Train ``model`` contrastively on cached pairs; returns the per-epoch history.

    model: an Echo2ECG (its initial weights are the caller's: random or OTiS).
    train_data / val_data: pairs; validation runs in eval mode without augmentation, on the
        same batches every epoch.
    outputs: where the history and the best and last checkpoints go.
    device: None → CUDA when available, else CPU. progress: called with each epoch's
        history row (a dict). extra: stored in every checkpoint under "extra".
    History columns: epoch (1-based), train_loss (mean over batches), val_loss, lr (base
    learning rate at the epoch's last step), seconds (wall time of the epoch).
    """
    _check_data(train_data, "training", settings.n_samples)
    validate = len(val_data) >= 2
    if validate:
        _check_data(val_data, "validation", settings.n_samples)
    else:  # a small cohort's validation split can hold fewer pairs than one CLIP batch needs
        log.warning(
            "validation split has %d pairs: no validation loss, the best checkpoint "
            "is the last epoch's",
            len(val_data),
        )
    if settings.single_view and settings.single_view_sampling == "every_view":
        train_data, val_data = per_view_pairs(train_data), per_view_pairs(val_data)
    device = resolve_device(device)
    extra = dict(extra or {})
    seed_everything(settings.seed)
    if settings.standardize_views:
        model.fit_view_standardization(torch.from_numpy(np.concatenate(train_data.study_views)))
    model.to(device)

    train_batches = PairBatches(
        train_data,
        settings.batch_size,
        settings.n_samples,
        settings.max_views,
        train=True,
        single_view=settings.single_view,
        augment=settings.augment() if settings.augmentation else None,
        seed=settings.seed,
        shift_samples=settings.shift_samples,
    )
    val_batches = PairBatches(
        val_data,
        settings.batch_size,
        settings.n_samples,
        settings.max_views,
        train=False,
        single_view=settings.single_view,
        shift_samples=settings.shift_samples,
    )
    optimizer = torch.optim.AdamW(
        param_groups(
            model,
            settings.lr,
            settings.layer_decay,
            settings.weight_decay,
            settings.embeddings_share_block0,
        ),
        lr=settings.lr,
        betas=settings.betas,
    )
    log.info(
        "training %d pairs (%d batches of ≤ %d) for %d epochs on %s, precision %s",
        len(train_data),
        len(train_batches),
        settings.batch_size,
        settings.epochs,
        device,
        "bf16" if uses_bf16(settings.precision, device) else "float32",
    )

    if settings.objective == "hierarchical":
        log.info(
            "hierarchical objective: the shifted-pair term on %d of %d training pairs "
            "(synchronised traces)",
            int(train_data.synchronised.sum()),
            len(train_data),
        )
    rows: list[dict] = []
    best_loss = math.inf
    for epoch in range(settings.epochs):
        started = time.perf_counter()
        train_batches.set_epoch(epoch)
        train_loss, lr = train_epoch(
            model, _loader(train_batches, settings, device), optimizer, epoch, settings, device
        )
        val_loss = (
            evaluate_loss(model, _loader(val_batches, settings, device), settings, device)
            if validate
            else math.nan
        )
        row = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "lr": lr,
            "seconds": time.perf_counter() - started,
        }
        rows.append(row)
        write_history(pd.DataFrame(rows, columns=HISTORY_COLUMNS), outputs.history)
        if val_loss < best_loss or not validate:
            best_loss = val_loss
            save_checkpoint(model, settings, epoch + 1, val_loss, extra, outputs.best)
        save_checkpoint(model, settings, epoch + 1, val_loss, extra, outputs.last)
        log.info(
            "epoch %d/%d  train %.4f  val %.4f  lr %.2e  %.1f s",
            epoch + 1,
            settings.epochs,
            train_loss,
            val_loss,
            lr,
            row["seconds"],
        )
        if progress is not None:
            progress(row)
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)
