"""ECG-study pairs as training batches.

A study is its cached view embeddings, (V, 512) each. Batches are built whole
(vectorised augmentation) by :class:`PairBatches`; every batch's randomness comes from a
generator seeded by (seed, epoch, batch index), so a run is reproducible whatever the
number of loader workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from echo2ecg.train.augment import EcgAugment, eval_crop, random_crop


@dataclass
class PairData:
    """Training or evaluation pairs held in memory.

    ecgs: (N_ecg, 12, T) float32 preprocessed ECGs (T ≥ the model's n_samples).
    study_views: one (V_i, D) float32 array of cached view embeddings per study, V_i ≥ 1
        (D = 512 for EchoPrime).
    pairs: (P, 2) int64 rows (ECG index, study index); one sample per row.
    lead_masks: (N_ecg, 12) bool, the leads each ECG recorded (None: all 12).
    lengths: (N_ecg,) int, samples each ECG recorded, zero-padded beyond (None: all T).
    study_patients: (S,) int64, a patient index per study (None: every study its own).
    synchronised: (P,) bool, the pair's ECG is its clip's burned-in trace, recorded with
        it (None: none is).
    """

    ecgs: np.ndarray
    study_views: list[np.ndarray]
    pairs: np.ndarray
    lead_masks: np.ndarray | None = None
    lengths: np.ndarray | None = None
    study_patients: np.ndarray | None = None
    synchronised: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.pairs = np.asarray(self.pairs, dtype=np.int64).reshape(-1, 2)
        if len(self.pairs) and (
            self.pairs[:, 0].max() >= len(self.ecgs)
            or self.pairs[:, 1].max() >= len(self.study_views)
            or self.pairs.min() < 0
        ):
            raise ValueError("pairs refer to ECGs or studies that are not in the data")
        if any(len(views) == 0 for views in self.study_views):
            raise ValueError("every study needs at least one view embedding")
        if self.study_patients is None:
            self.study_patients = np.arange(len(self.study_views), dtype=np.int64)
        self.study_patients = np.asarray(self.study_patients, np.int64)
        if self.synchronised is None:
            self.synchronised = np.zeros(len(self.pairs), bool)
        self.synchronised = np.asarray(self.synchronised, bool)
        if self.study_patients.shape != (len(self.study_views),):
            raise ValueError("study_patients needs one patient per study")
        if self.synchronised.shape != (len(self.pairs),):
            raise ValueError("synchronised needs one flag per pair")

    def __len__(self) -> int:
        return len(self.pairs)


def per_view_pairs(data: PairData) -> PairData:
    """Every (ECG, view) combination of ``data``'s pairs as its own sample, each view a
    study of one view: how the reference trains its single-view baseline. P pairs of
    studies with V_i views become sum of V_i samples."""
    offsets = np.cumsum([0] + [len(views) for views in data.study_views])
    views = [study[i : i + 1] for study in data.study_views for i in range(len(study))]
    rows = [
        (ecg, offsets[study] + i)
        for ecg, study in data.pairs
        for i in range(offsets[study + 1] - offsets[study])
    ]
    patients = [
        data.study_patients[study]
        for study in range(len(data.study_views))
        for _ in range(len(data.study_views[study]))
    ]
    synchronised = [
        flag
        for (_, study), flag in zip(data.pairs, data.synchronised)
        for _ in range(offsets[study + 1] - offsets[study])
    ]
    return PairData(
        data.ecgs,
        views,
        np.array(rows, np.int64),
        data.lead_masks,
        data.lengths,
        np.array(patients, np.int64),
        np.array(synchronised, bool),
    )


class PairBatch(NamedTuple):
    """One batch of B pairs: ecgs (B, 12, n_samples) float32, views (B, V, D) float32
    (zero-padded to the batch's largest V), mask (B, V) bool (True = a real view),
    lead_mask (B, 12) bool (True = a recorded lead), study and patient (B,) int64 (the
    pair's study and its patient, as indices of the data), synchronised (B,) bool (the
    row's ECG is its clip's trace, the latest n_samples of it) and shifted
    (B_sync, 12, n_samples) float32, those rows' traces shifted back in time (empty unless
    the batches are asked for shifts)."""

    ecgs: torch.Tensor
    views: torch.Tensor
    mask: torch.Tensor
    lead_mask: torch.Tensor
    study: torch.Tensor
    patient: torch.Tensor
    synchronised: torch.Tensor
    shifted: torch.Tensor


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


def pick_views(
    views: np.ndarray,
    max_views: int,
    single_view: bool,
    train: bool,
    generator: torch.Generator | None,
) -> np.ndarray:
    """The views of one study that a sample sees, (V', D).

    Training: a random subset of ``max_views`` when there are more (one random view with
    ``single_view``). Evaluation: the first ``max_views`` (also with ``single_view``: at
    evaluation the single-view model is given all views and averages them, docs/method.md
    section 7).
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
        views[row, : len(study)] = torch.from_numpy(np.asarray(study, dtype=np.float32))
        mask[row, : len(study)] = True
    return views, mask


class PairBatches(Dataset):
    """The batches of one pass over ``data``; item i is the whole batch i (a PairBatch).

    train=True: pairs in a new random order each epoch (:meth:`set_epoch`), ECGs cropped and
    augmented, views sampled as in :func:`pick_views`; every batch's randomness is seeded by
    (seed, epoch, i). train=False: pairs in their given order, ECGs = first n_samples, no
    randomness. Use with ``DataLoader(batches, batch_size=None)``.

    shift_samples > 0 (the hierarchical objective's shifted-pair term): a synchronised
    row long enough for it sees the latest n_samples of its trace, unaugmented, and
    ``shifted`` holds the n_samples ending ``shift_samples`` earlier.
    """

    def __init__(
        self,
        data: PairData,
        batch_size: int,
        n_samples: int,
        max_views: int,
        train: bool,
        single_view: bool = False,
        augment: EcgAugment | None = None,
        seed: int = 0,
        shift_samples: int = 0,
    ):
        self.data = data
        self.shift_samples = shift_samples
        self.n_samples = n_samples
        self.max_views = max_views
        self.train = train
        self.single_view = single_view
        self.augment = augment
        self.seed = seed
        self.bounds = batch_bounds(len(data), batch_size, train)
        # Crops need the recorded lengths only where some ECG is shorter than its row.
        short = data.lengths is not None and bool((data.lengths < data.ecgs.shape[-1]).any())
        self.lengths = torch.from_numpy(np.asarray(data.lengths, np.int64)) if short else None
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Fix the pair order (training: shuffled by (seed, epoch)) and batch seeds."""
        self.epoch = epoch
        if self.train:
            self.order = torch.randperm(
                len(self.data), generator=derived_generator(self.seed, epoch)
            ).numpy()
        else:
            self.order = np.arange(len(self.data))

    def __len__(self) -> int:
        return len(self.bounds)

    def __getitem__(self, index: int) -> PairBatch:
        start, stop = self.bounds[index]
        pairs = self.data.pairs[self.order[start:stop]]
        generator = derived_generator(self.seed, self.epoch, index) if self.train else None
        recordings = torch.from_numpy(np.ascontiguousarray(self.data.ecgs[pairs[:, 0]], np.float32))
        lengths = None if self.lengths is None else self.lengths[pairs[:, 0]]
        ecgs = recordings
        if not self.train:
            ecgs = eval_crop(ecgs, self.n_samples).contiguous()
        elif self.augment is not None:
            ecgs = self.augment(ecgs, generator, lengths)
        else:
            ecgs = random_crop(ecgs, self.n_samples, generator, lengths)
        if self.data.lead_masks is None:
            lead_mask = torch.ones(ecgs.shape[:2], dtype=torch.bool)
        else:
            lead_mask = torch.from_numpy(self.data.lead_masks[pairs[:, 0]])
        view_sets = [
            pick_views(
                self.data.study_views[s], self.max_views, self.single_view, self.train, generator
            )
            for s in pairs[:, 1]
        ]
        views, mask = pad_views(view_sets)
        synchronised = torch.zeros(len(pairs), dtype=torch.bool)
        shifted = torch.empty(0, ecgs.shape[1], self.n_samples)
        if self.shift_samples:
            ecgs, synchronised, shifted = self._synchronised_windows(
                ecgs, recordings, lengths, self.data.synchronised[self.order[start:stop]]
            )
        study = torch.from_numpy(pairs[:, 1].copy())
        patient = torch.from_numpy(self.data.study_patients[pairs[:, 1]])
        return PairBatch(ecgs, views, mask, lead_mask, study, patient, synchronised, shifted)

    def _synchronised_windows(
        self,
        ecgs: torch.Tensor,
        recordings: torch.Tensor,
        lengths: torch.Tensor | None,
        flagged: np.ndarray,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Replace the crops of synchronised rows by their trace's latest window and cut
        the shifted windows from the batch's uncropped ``recordings`` (B, 12, T) and their
        recorded ``lengths`` (None: all T); rows too short for the shift stay
        unsynchronised."""
        n, shift = self.n_samples, self.shift_samples
        recorded = (
            np.full(len(recordings), recordings.shape[-1]) if lengths is None else lengths.numpy()
        )
        usable = flagged & (recorded >= n + shift)
        ecgs = ecgs.clone()
        shifted = []
        for row in np.flatnonzero(usable):
            end = int(recorded[row])
            ecgs[row] = recordings[row, :, end - n : end]
            shifted.append(recordings[row, :, end - n - shift : end - shift])
        windows = torch.stack(shifted) if shifted else torch.empty(0, ecgs.shape[1], n)
        return ecgs, torch.from_numpy(usable), windows
