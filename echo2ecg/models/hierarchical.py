"""Hierarchical contrastive losses with dual-margin semi-hard negative mining, and the
shifted-pair alignment loss: the ``hierarchical`` variant (Echo-Enhanced ECG;
docs/variants.md).

One similarity matrix per level, the cosine of every ECG of the batch against every echo
item, with a positive mask saying which items are the ECG's own:

    study level    items: the batch's studies      positive: the ECG's study
    patient level  items: the batch's studies      positive: any study of the ECG's patient
    token level    items: every view of the batch  positive: the views of the ECG's study

Each row keeps its positives and only the negatives that are still hard: those above,
or less than a margin below, the row's positive similarity (the mean over its positives).
The margin is ``margin_same`` for an item of the same patient and the wider ``margin`` for
another patient's: another study of the ECG's own patient is nearly the same heart, so it
is pushed only to a little below the positive, while other patients are pushed further.
A negative beyond its margin is done with and leaves the row. Every other position is set
to a large negative logit, and the loss is the symmetric multi-positive cross-entropy at
temperature τ. Mining uses the similarities without their gradient.

The alignment term: a linear classifier on [ECG vector | echo vector] tells a
synchronised ECG (the burned-in trace of the clip, its latest window) from the same trace
shifted back in time; it is only computed for trace rows, so it is off with 12-lead files.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from echo2ecg.models.ecg_encoder import ECGEncoder
from echo2ecg.models.echo2ecg import Echo2ECG

MASKED_LOGIT = -1.0e4  # positions a row does not contrast against


def dual_margin_mask(
    similarity: torch.Tensor,
    positive: torch.Tensor,
    same_patient: torch.Tensor,
    margin_same: float,
    margin: float,
) -> torch.Tensor:
    """Which positions of (N, M) ``similarity`` a row contrasts against → (N, M) bool.

    positive, same_patient (N, M) bool. Kept: every positive, and every negative k of row i
    with s_ik > p_i − width, where p_i is the mean similarity of row i's positives and
    width is ``margin_same`` when k belongs to row i's patient, else ``margin``. Rows
    without a positive keep nothing.
    """
    similarity = similarity.detach()
    n_positive = positive.sum(dim=1, keepdim=True)
    anchor = (similarity * positive).sum(dim=1, keepdim=True) / n_positive.clamp(min=1)
    gap = anchor - similarity
    width = torch.where(
        same_patient, torch.full_like(gap, margin_same), torch.full_like(gap, margin)
    )
    hard = ~positive & (gap < width) & (n_positive > 0)
    return positive | hard


def _multi_positive_ce(logits: torch.Tensor, positive: torch.Tensor, keep: torch.Tensor):
    """Mean over rows with a positive of −log(Σ_positives e^logit / Σ_kept e^logit)."""
    masked = logits.masked_fill(~keep, MASKED_LOGIT)
    rows = positive.any(dim=1)
    if not bool(rows.any()):
        return logits.sum() * 0.0
    numerator = torch.logsumexp(masked.masked_fill(~positive, MASKED_LOGIT), dim=1)
    return (torch.logsumexp(masked, dim=1) - numerator)[rows].mean()


def mined_contrastive_loss(
    ecg_z: torch.Tensor,
    echo_z: torch.Tensor,
    positive: torch.Tensor,
    same_patient: torch.Tensor,
    margin_same: float,
    margin: float,
    temperature: float,
) -> torch.Tensor:
    """Symmetric contrastive loss with dual-margin mining → scalar (float32).

    ecg_z (N, D), echo_z (M, D): vectors, normalised here; positive, same_patient (N, M)
    bool. ½ · (ECG → echo rows + echo → ECG rows), each mined by :func:`dual_margin_mask`.
    """
    ecg_z = F.normalize(ecg_z.float(), dim=-1)
    echo_z = F.normalize(echo_z.float(), dim=-1)
    similarity = ecg_z @ echo_z.T
    logits = similarity / temperature
    forward = _multi_positive_ce(
        logits, positive, dual_margin_mask(similarity, positive, same_patient, margin_same, margin)
    )
    backward = _multi_positive_ce(
        logits.T,
        positive.T,
        dual_margin_mask(similarity.T, positive.T, same_patient.T, margin_same, margin),
    )
    return 0.5 * (forward + backward)


class ShiftClassifier(nn.Module):
    """Linear(2·J → 1) on [normalised ECG vector | normalised echo vector]: the logit that
    the ECG is synchronised with the echo it is shown with."""

    def __init__(self, joint_dim: int = 512):
        super().__init__()
        self.linear = nn.Linear(2 * joint_dim, 1)

    def forward(self, ecg_z: torch.Tensor, echo_z: torch.Tensor) -> torch.Tensor:
        """(B, J), (B, J) → (B,) logits."""
        pair = torch.cat(
            [F.normalize(ecg_z.float(), dim=-1), F.normalize(echo_z.float(), dim=-1)], -1
        )
        return self.linear(pair).squeeze(-1)


def shift_alignment_loss(
    classifier: ShiftClassifier,
    synced_z: torch.Tensor,
    shifted_z: torch.Tensor,
    echo_z: torch.Tensor,
) -> torch.Tensor:
    """BCE of the classifier on B synchronised (target 1) and B shifted (target 0) ECG
    vectors (B, J) against their echo vectors (B, J) → scalar; 0 for B = 0."""
    if len(synced_z) == 0:
        return echo_z.sum() * 0.0
    logits = torch.cat([classifier(synced_z, echo_z), classifier(shifted_z, echo_z)])
    targets = torch.cat([torch.ones(len(synced_z)), torch.zeros(len(shifted_z))]).to(logits)
    return F.binary_cross_entropy_with_logits(logits, targets)


class HierarchicalEcho2ECG(Echo2ECG):
    """Echo2ECG with the view tokens the token level contrasts and the shifted-pair
    classifier (``shift_classifier.linear.*``). Same constructor as :class:`Echo2ECG`;
    the pooling must have a view projection (attention, mean, cls)."""

    def __init__(self, ecg_encoder: ECGEncoder, pooling: str = "attention", **sizes):
        super().__init__(ecg_encoder, pooling, **sizes)
        if not hasattr(self.view_pool, "view_proj"):
            raise ValueError(f"the hierarchical objective needs a view pool, not {pooling!r}")
        self.shift_classifier = ShiftClassifier(self.echo_proj.out_features)

    def view_tokens(self, views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, V, view_dim) views + (B, V) mask → (B, V, J) each view in the joint space
        (the pool's view projection, then echo_proj); padded views give zeros' image."""
        views = ((views - self.view_mean) / self.view_scale).masked_fill(~mask.unsqueeze(-1), 0.0)
        return self.echo_proj(self.view_pool.view_proj(views))
