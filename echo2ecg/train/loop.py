"""Contrastive training of Echo2ECG on cached embeddings (METHOD.md sections 3, 5, 6).

The echo encoder is never run here: a study is its cached view embeddings, (V, 512) each,
computed once by the frozen encoder. One training sample is one (ECG, study) pair:

    ECG (12, T) ─ random 1008 crop + augmentations ─┐
                                                    ├─ Echo2ECG ─ CLIP loss (τ fixed)
    study views (V ≤ 128, 512) + mask ───────────────┘

Batches are built whole (vectorised augmentation) by :class:`PairBatches`; every batch's
randomness comes from a generator seeded by (seed, epoch, batch index), so a run is
reproducible whatever the number of loader workers.

Outputs of :func:`train` in ``out_dir``: ``history.csv`` (epoch, train_loss, val_loss,
lr, seconds; rewritten after every epoch), ``best.pt`` (lowest validation loss) and
``last.pt``, each ``{"model", "settings", "epoch", "val_loss", "extra"}``.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from echo2ecg.train.augment import EcgAugment, eval_crop, random_crop
from echo2ecg.models import ECGEncoder, Echo2ECG, clip_loss

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "lr", "seconds"]
PRECISIONS = ("auto", "bf16", "float32")
SINGLE_VIEW_SAMPLINGS = ("every_view", "one_per_study")


@dataclass
class PairData:
    """Training or evaluation pairs held in memory.

    ecgs: (N_ecg, 12, T) float32 preprocessed ECGs (T ≥ the model's n_samples).
    study_views: one (V_i, D) float32 array of cached view embeddings per study, V_i ≥ 1
        (D = 512 for EchoPrime).
    pairs: (P, 2) int64 rows (ECG index, study index); one sample per row.
    """

    ecgs: np.ndarray
    study_views: list[np.ndarray]
    pairs: np.ndarray

    def __post_init__(self) -> None:
        self.pairs = np.asarray(self.pairs, dtype=np.int64).reshape(-1, 2)
        if len(self.pairs) and (self.pairs[:, 0].max() >= len(self.ecgs)
                                or self.pairs[:, 1].max() >= len(self.study_views)
                                or self.pairs.min() < 0):
            raise ValueError("pairs refer to ECGs or studies that are not in the data")
        if any(len(views) == 0 for views in self.study_views):
            raise ValueError("every study needs at least one view embedding")

    def __len__(self) -> int:
        return len(self.pairs)


@dataclass
class TrainSettings:
    """Training hyperparameters; the defaults are the paper's (METHOD.md sections 3 and 6)."""

    epochs: int = 50                    # paper: 50
    batch_size: int = 256               # paper: 256 pairs
    lr: float = 5e-4                    # paper: base learning rate 5e-4
    layer_decay: float = 0.75           # paper: layer-wise lr decay 0.75 over the ECG blocks
    weight_decay: float = 1e-7          # paper: 1e-7 (not on biases, norms, tokens, positions)
    warmup_epochs: float = 5            # reference pretraining config: 5 (METHOD 6's text: 2)
    warmup_start: float = 0.1           # paper: warm-up starts at 0.1·lr
    min_lr: float = 0.1                 # paper: cosine ends at 0.1·lr at the last epoch
    betas: tuple[float, float] = (0.9, 0.999)  # paper: AdamW betas
    temperature: float = 0.5            # paper: fixed CLIP temperature τ = 0.5
    seed: int = 42                      # paper: 42
    n_samples: int = 1008               # paper: model input length (METHOD section 3)
    max_views: int = 128                # paper: up to 128 views per study
    single_view: bool = False           # the single-view ablation (set by the variant)
    single_view_sampling: str = "every_view"  # reference: every (ECG, view) row a sample;
    #                                     "one_per_study": one random view per study and epoch
    embeddings_share_block0: bool = True  # reference: tokeniser and embeddings decay as block 0
    num_workers: int = 0                # loader worker processes (0: in the training process)
    precision: str = "auto"             # auto: bf16 autocast on CUDA, float32 on CPU
    augmentation: bool = True           # paper (OTiS augmentations); False: random crop only
    standardize_views: bool = False     # reference: raw view embeddings; True: centre and
    #                                     scale them by the training views' statistics
    ft_phase_noise: float = 0.075       # paper (OTiS): FT-surrogate phase noise magnitude
    ft_prob: float = 0.5                # paper (OTiS): FT-surrogate probability
    jitter_scale: float = 0.6           # paper (OTiS): x + 0.6·x·N(0, 0.2)
    jitter_sigma: float = 0.2
    rescale_sigma: float = 0.5          # paper (OTiS): one scalar ~ N(1, 0.5) per ECG
    time_flip_p: float = 0.33           # paper (OTiS): time flip probability
    sign_flip_p: float = 0.33           # paper (OTiS): sign flip probability

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2 (the CLIP loss needs negatives)")
        if self.single_view_sampling not in SINGLE_VIEW_SAMPLINGS:
            raise ValueError(f"single_view_sampling must be one of {SINGLE_VIEW_SAMPLINGS}, "
                             f"got {self.single_view_sampling!r}")

    def augment(self) -> EcgAugment:
        """The training augmentation these settings describe."""
        return EcgAugment(self.n_samples, self.ft_phase_noise, self.ft_prob, self.jitter_scale,
                          self.jitter_sigma, self.rescale_sigma, self.time_flip_p,
                          self.sign_flip_p)


def per_view_pairs(data: PairData) -> PairData:
    """Every (ECG, view) combination of ``data``'s pairs as its own sample, each view a
    study of one view: how the reference trains its single-view baseline. P pairs of
    studies with V_i views become sum of V_i samples."""
    offsets = np.cumsum([0] + [len(views) for views in data.study_views])
    views = [study[i:i + 1] for study in data.study_views for i in range(len(study))]
    rows = [(ecg, offsets[study] + i) for ecg, study in data.pairs
            for i in range(offsets[study + 1] - offsets[study])]
    return PairData(ecgs=data.ecgs, study_views=views, pairs=np.array(rows, np.int64))


# --------------------------------------------------------------------------- batches

class PairBatch(NamedTuple):
    """One batch of B pairs: ecgs (B, 12, n_samples) float32, views (B, V, D) float32
    (zero-padded to the batch's largest V), mask (B, V) bool (True = a real view)."""

    ecgs: torch.Tensor
    views: torch.Tensor
    mask: torch.Tensor


def derived_generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded from integer keys (e.g. seed, epoch, batch index)."""
    seed = int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0])
    return torch.Generator().manual_seed(seed)


def batch_bounds(n_pairs: int, batch_size: int, train: bool) -> list[tuple[int, int]]:
    """(start, stop) of each batch. A trailing batch of one pair cannot be contrasted: in
    training it is dropped, at evaluation it joins the batch before it."""
    bounds = [(start, min(start + batch_size, n_pairs)) for start in range(0, n_pairs, batch_size)]
    if bounds and bounds[-1][1] - bounds[-1][0] < 2:
        last = bounds.pop()
        if not train and bounds:
            bounds[-1] = (bounds[-1][0], last[1])
    return bounds


def pick_views(views: np.ndarray, max_views: int, single_view: bool, train: bool,
               generator: torch.Generator | None) -> np.ndarray:
    """The views of one study that a sample sees, (V', D).

    Training: a random subset of ``max_views`` when there are more (one random view with
    ``single_view``). Evaluation: the first ``max_views`` (also with ``single_view``: at
    evaluation the single-view model is given all views and averages them, METHOD 7).
    """
    n_views = len(views)
    if not train:
        return views[:max_views]
    if single_view:
        return views[int(torch.randint(n_views, (1,), generator=generator))][None]
    if n_views > max_views:
        chosen = torch.randperm(n_views, generator=generator)[:max_views].sort().values
        return views[chosen.numpy()]
    return views


def pad_views(view_sets: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-study (V_i, D) arrays → views (B, max V_i, D) zero-padded, mask (B, max V_i) bool."""
    longest = max(len(v) for v in view_sets)
    views = torch.zeros(len(view_sets), longest, view_sets[0].shape[-1], dtype=torch.float32)
    mask = torch.zeros(len(view_sets), longest, dtype=torch.bool)
    for row, study in enumerate(view_sets):
        views[row, :len(study)] = torch.from_numpy(np.asarray(study, dtype=np.float32))
        mask[row, :len(study)] = True
    return views, mask


class PairBatches(Dataset):
    """The batches of one pass over ``data``; item i is the whole batch i (a PairBatch).

    train=True: pairs in a new random order each epoch (:meth:`set_epoch`), ECGs cropped and
    augmented, views sampled as in :func:`pick_views`; every batch's randomness is seeded by
    (seed, epoch, i). train=False: pairs in their given order, ECGs = first n_samples, no
    randomness. Use with ``DataLoader(batches, batch_size=None)``.
    """

    def __init__(self, data: PairData, batch_size: int, n_samples: int, max_views: int,
                 train: bool, single_view: bool = False, augment: EcgAugment | None = None,
                 seed: int = 0):
        self.data = data
        self.n_samples = n_samples
        self.max_views = max_views
        self.train = train
        self.single_view = single_view
        self.augment = augment
        self.seed = seed
        self.bounds = batch_bounds(len(data), batch_size, train)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Fix the pair order (training: shuffled by (seed, epoch)) and batch seeds."""
        self.epoch = epoch
        if self.train:
            self.order = torch.randperm(len(self.data), generator=derived_generator(
                self.seed, epoch)).numpy()
        else:
            self.order = np.arange(len(self.data))

    def __len__(self) -> int:
        return len(self.bounds)

    def __getitem__(self, index: int) -> PairBatch:
        start, stop = self.bounds[index]
        pairs = self.data.pairs[self.order[start:stop]]
        generator = derived_generator(self.seed, self.epoch, index) if self.train else None
        ecgs = torch.from_numpy(np.ascontiguousarray(self.data.ecgs[pairs[:, 0]], np.float32))
        if not self.train:
            ecgs = eval_crop(ecgs, self.n_samples).contiguous()
        elif self.augment is not None:
            ecgs = self.augment(ecgs, generator)
        else:
            ecgs = random_crop(ecgs, self.n_samples, generator)
        view_sets = [pick_views(self.data.study_views[s], self.max_views, self.single_view,
                                self.train, generator) for s in pairs[:, 1]]
        views, mask = pad_views(view_sets)
        return PairBatch(ecgs, views, mask)


# --------------------------------------------------------------------------- optimisation

def param_groups(model: nn.Module, lr: float, layer_decay: float, weight_decay: float,
                 embeddings_share_block0: bool = True) -> list[dict]:
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
            layer = encoder.layer_id(name[len(prefix):], embeddings_share_block0)
            exponent = max(0, depth - layer)
        decayed = parameter.ndim > 1 and name not in spared
        group = groups.setdefault((exponent, decayed), {
            "params": [], "names": [], "exponent": exponent,
            "lr_scale": layer_decay ** exponent, "lr": lr * layer_decay ** exponent,
            "weight_decay": weight_decay if decayed else 0.0})
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


# --------------------------------------------------------------------------- training

def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (drop-path and other global-RNG draws)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """None → CUDA when available (honouring CUDA_VISIBLE_DEVICES), else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether to autocast to bfloat16: 'auto' means on CUDA only."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def _loader(batches: PairBatches, settings: TrainSettings, device: torch.device) -> DataLoader:
    return DataLoader(batches, batch_size=None, shuffle=False, num_workers=settings.num_workers,
                      pin_memory=device.type == "cuda")


def _to_device(batch: PairBatch, device: torch.device) -> PairBatch:
    return PairBatch(*(t.to(device, non_blocking=True) for t in batch))


def batch_loss(model: Echo2ECG, batch: PairBatch, temperature: float, bf16: bool,
               device: torch.device) -> torch.Tensor:
    """CLIP loss of one batch (autocast to bf16 when asked; the loss itself is float32)."""
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
        ecg_z, echo_z = model(batch.ecgs, batch.views, batch.mask)
    return clip_loss(ecg_z, echo_z, temperature)


def train_epoch(model: Echo2ECG, loader: DataLoader, optimizer: torch.optim.Optimizer,
                epoch: int, settings: TrainSettings, device: torch.device) -> tuple[float, float]:
    """One pass over the training batches → (mean batch loss, base lr at the last step)."""
    model.train()
    bf16 = uses_bf16(settings.precision, device)
    steps = len(loader)
    losses, base_lr = [], lr_at(epoch, settings)
    for step, batch in enumerate(loader):
        base_lr = lr_at(epoch + step / steps, settings)
        set_lr(optimizer, base_lr)
        loss = batch_loss(model, _to_device(batch, device), settings.temperature, bf16, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return float(np.mean(losses)), base_lr


@torch.no_grad()
def evaluate_loss(model: Echo2ECG, loader: DataLoader, settings: TrainSettings,
                  device: torch.device) -> float:
    """Validation CLIP loss in eval mode: mean over the fixed batches, weighted by size."""
    model.eval()
    bf16 = uses_bf16(settings.precision, device)
    total, count = 0.0, 0
    for batch in loader:
        loss = batch_loss(model, _to_device(batch, device), settings.temperature, bf16, device)
        total += loss.item() * len(batch.ecgs)
        count += len(batch.ecgs)
    return total / count


def _save_atomic(write: Callable[[Path], None], path: Path) -> None:
    """Write through a temporary file and rename, so a killed job leaves no half file."""
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)


def save_checkpoint(model: nn.Module, settings: TrainSettings, epoch: int, val_loss: float,
                    extra: dict, path: Path) -> None:
    """{"model": CPU state dict, "settings", "epoch", "val_loss", "extra"} → path."""
    checkpoint = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                  "settings": asdict(settings), "epoch": epoch, "val_loss": val_loss,
                  "extra": extra}
    _save_atomic(lambda partial: torch.save(checkpoint, partial), path)


def write_history(history: pd.DataFrame, path: Path) -> None:
    _save_atomic(lambda partial: history.to_csv(partial, index=False), path)


def _check_data(data: PairData, what: str, n_samples: int) -> None:
    if len(data) < 2:
        raise ValueError(f"{what} data has {len(data)} pairs; the CLIP loss needs at least 2")
    if data.ecgs.shape[-1] < n_samples:
        raise ValueError(f"{what} ECGs have {data.ecgs.shape[-1]} samples, fewer than the "
                         f"model input of {n_samples}")


def train(model: Echo2ECG, train_data: PairData, val_data: PairData, settings: TrainSettings,
          out_dir: str | Path, device: str | torch.device | None = None,
          progress: Callable[[dict], None] | None = None,
          extra: dict | None = None) -> pd.DataFrame:
    """Train ``model`` contrastively on cached pairs; returns the per-epoch history.

    model: an Echo2ECG (its initial weights are the caller's: random or OTiS).
    train_data / val_data: pairs; validation runs in eval mode without augmentation, on the
        same batches every epoch.
    out_dir: receives history.csv, best.pt (lowest val loss) and last.pt.
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
        log.warning("validation split has %d pairs: no validation loss, best.pt is the last "
                    "epoch", len(val_data))
    if settings.single_view and settings.single_view_sampling == "every_view":
        train_data, val_data = per_view_pairs(train_data), per_view_pairs(val_data)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(device)
    extra = dict(extra or {})
    seed_everything(settings.seed)
    if settings.standardize_views:
        model.fit_view_standardization(torch.from_numpy(np.concatenate(train_data.study_views)))
    model.to(device)

    train_batches = PairBatches(train_data, settings.batch_size, settings.n_samples,
                                settings.max_views, train=True, single_view=settings.single_view,
                                augment=settings.augment() if settings.augmentation else None,
                                seed=settings.seed)
    val_batches = PairBatches(val_data, settings.batch_size, settings.n_samples,
                              settings.max_views, train=False, single_view=settings.single_view)
    optimizer = torch.optim.AdamW(
        param_groups(model, settings.lr, settings.layer_decay, settings.weight_decay,
                     settings.embeddings_share_block0),
        lr=settings.lr, betas=settings.betas)
    log.info("training %d pairs (%d batches of ≤ %d) for %d epochs on %s, precision %s",
             len(train_data), len(train_batches), settings.batch_size, settings.epochs, device,
             "bf16" if uses_bf16(settings.precision, device) else "float32")

    rows: list[dict] = []
    best_loss = math.inf
    for epoch in range(settings.epochs):
        started = time.perf_counter()
        train_batches.set_epoch(epoch)
        train_loss, lr = train_epoch(model, _loader(train_batches, settings, device), optimizer,
                                     epoch, settings, device)
        val_loss = (evaluate_loss(model, _loader(val_batches, settings, device), settings, device)
                    if validate else math.nan)
        row = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "lr": lr,
               "seconds": time.perf_counter() - started}
        rows.append(row)
        write_history(pd.DataFrame(rows, columns=HISTORY_COLUMNS), out_dir / "history.csv")
        if val_loss < best_loss or not validate:
            best_loss = val_loss
            save_checkpoint(model, settings, epoch + 1, val_loss, extra, out_dir / "best.pt")
        save_checkpoint(model, settings, epoch + 1, val_loss, extra, out_dir / "last.pt")
        log.info("epoch %d/%d  train %.4f  val %.4f  lr %.2e  %.1f s", epoch + 1,
                 settings.epochs, train_loss, val_loss, lr, row["seconds"])
        if progress is not None:
            progress(row)
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


def plot_history(history: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Train and validation loss per epoch → PNG at ``path`` (an empty history gives a
    figure that says so)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    if len(history):
        axes.plot(history["epoch"], history["train_loss"], marker="o", label="train")
        axes.plot(history["epoch"], history["val_loss"], marker="o", label="validation")
        axes.legend()
    else:
        axes.text(0.5, 0.5, "not trained", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("epoch")
    axes.set_ylabel("CLIP loss")
    axes.set_title(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


# --------------------------------------------------------------------------- features

def _batches(n: int, batch_size: int):
    return (slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size))


def _encoder_of(model_or_encoder: nn.Module) -> ECGEncoder:
    return model_or_encoder.ecg_encoder if isinstance(model_or_encoder, Echo2ECG) \
        else model_or_encoder


@torch.no_grad()
def _run_eval(module: nn.Module, forward: Callable[[slice], torch.Tensor], n: int,
              batch_size: int) -> np.ndarray:
    """``forward`` over consecutive slices of n items in eval mode → stacked float32 rows;
    the module's training mode is restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        chunks = [forward(part).float().cpu().numpy() for part in _batches(n, batch_size)]
    finally:
        module.train(was_training)
    return np.concatenate(chunks) if chunks else np.empty((0, 0), np.float32)


def _ecg_batch(ecgs: np.ndarray, part: slice, n_samples: int, device: torch.device) -> torch.Tensor:
    return eval_crop(torch.from_numpy(np.asarray(ecgs[part], np.float32)), n_samples).to(device)


def embed_ecgs(model_or_encoder: nn.Module, ecgs: np.ndarray, batch_size: int = 256,
               n_samples: int = 1008, device: str | torch.device | None = None) -> np.ndarray:
    """ECG features, METHOD 7: (N, 12, T) preprocessed ECGs → (N, embed_dim) float32
    (mean patch token → LayerNorm; 192-d for the paper's encoder), first n_samples, eval mode.
    Accepts an Echo2ECG or a bare ECGEncoder; the encoder is moved to ``device``."""
    device = resolve_device(device)
    encoder = _encoder_of(model_or_encoder).to(device)
    return _run_eval(encoder, lambda part: encoder(_ecg_batch(ecgs, part, n_samples, device)),
                     len(ecgs), batch_size)


def project_ecgs(model: Echo2ECG, ecgs: np.ndarray, batch_size: int = 256,
                 n_samples: int = 1008, device: str | torch.device | None = None) -> np.ndarray:
    """Joint-space ECG vectors: (N, 12, T) → (N, joint_dim) float32 (512-d), not
    normalised; first n_samples, eval mode; the model is moved to ``device``."""
    device = resolve_device(device)
    model = model.to(device)
    return _run_eval(model, lambda part: model.encode_ecg(
        _ecg_batch(ecgs, part, n_samples, device)), len(ecgs), batch_size)


def embed_studies(model: Echo2ECG, study_views: list[np.ndarray], batch_size: int = 256,
                  max_views: int = 128, device: str | torch.device | None = None) -> np.ndarray:
    """Joint-space study vectors: per-study (V_i, D) view embeddings → (S, joint_dim)
    float32, not normalised; the first ``max_views`` views of each study, eval mode; the
    model is moved to ``device``."""
    device = resolve_device(device)
    model = model.to(device)

    def forward(part: slice) -> torch.Tensor:
        views, mask = pad_views([v[:max_views] for v in study_views[part]])
        return model.encode_study(views.to(device), mask.to(device))

    return _run_eval(model, forward, len(study_views), batch_size)
