"""The loss of one batch under each training objective (docs/variants.md).

    clip           symmetric InfoNCE between ECG and study vectors (the paper)
    probabilistic  PCME++ between their Gaussians, matched = the same study (EchoingECG)
    hierarchical   mined losses at study, patient and token level, plus the shifted-pair
                   term on synchronised trace rows (Echo-Enhanced ECG)

Every loss is float32 whatever the forward pass's precision.
"""

from __future__ import annotations

import torch

from echo2ecg.models import Echo2ECG, clip_loss
from echo2ecg.models.hierarchical import mined_contrastive_loss, shift_alignment_loss
from echo2ecg.models.probabilistic import pcme_loss
from echo2ecg.train.pair_data import PairBatch
from echo2ecg.train.settings import TrainSettings


def _same(ids: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) and (M,) ids → (N, M) bool, True where they are equal."""
    other = ids if other is None else other
    return ids[:, None] == other[None, :]


def probabilistic_loss(model, batch: PairBatch, settings: TrainSettings) -> torch.Tensor:
    """PCME++ over the batch; ECG i matches study k when they are the same study."""
    ecg_mu, ecg_logvar = model.ecg_gaussian(batch.ecgs, batch.lead_mask)
    echo_mu, echo_logvar = model.study_gaussian(batch.views, batch.mask)
    params = settings.probabilistic
    loss, _ = pcme_loss(
        ecg_mu,
        ecg_logvar,
        echo_mu,
        echo_logvar,
        _same(batch.study),
        model.match,
        params.vib_beta,
        params.pseudo_positive_alpha,
    )
    return loss


def hierarchical_loss(model, batch: PairBatch, settings: TrainSettings) -> torch.Tensor:
    """Weighted sum of the study, patient and token levels and the shifted-pair term."""
    params = settings.hierarchical
    margins = (params.margin_same_patient, params.margin, params.temperature)
    ecg_z = model.encode_ecg(batch.ecgs, batch.lead_mask)
    echo_z = model.encode_study(batch.views, batch.mask)
    same_patient = _same(batch.patient)
    loss = params.study_weight * mined_contrastive_loss(
        ecg_z, echo_z, _same(batch.study), same_patient, *margins
    )
    loss = loss + params.patient_weight * mined_contrastive_loss(
        ecg_z, echo_z, same_patient, same_patient, *margins
    )
    if params.token_weight:
        tokens = model.view_tokens(batch.views, batch.mask)[batch.mask]  # (views in batch, J)
        rows = torch.arange(len(batch.mask), device=batch.mask.device)
        owner = rows[:, None].expand_as(batch.mask)[batch.mask]  # the row each view came from
        loss = loss + params.token_weight * mined_contrastive_loss(
            ecg_z,
            tokens,
            _same(batch.study, batch.study[owner]),
            _same(batch.patient, batch.patient[owner]),
            *margins,
        )
    if params.shift_weight and bool(batch.synchronised.any()):
        synced = batch.synchronised
        shifted_z = model.encode_ecg(batch.shifted, batch.lead_mask[synced])
        loss = loss + params.shift_weight * shift_alignment_loss(
            model.shift_classifier, ecg_z[synced], shifted_z, echo_z[synced]
        )
    return loss


def clip_objective_loss(model: Echo2ECG, batch: PairBatch, settings: TrainSettings):
    """The paper's symmetric InfoNCE, diagonal targets, fixed temperature."""
    ecg_z, echo_z = model(batch.ecgs, batch.views, batch.mask, batch.lead_mask)
    return clip_loss(ecg_z, echo_z, settings.temperature)


_LOSSES = {
    "clip": clip_objective_loss,
    "probabilistic": probabilistic_loss,
    "hierarchical": hierarchical_loss,
}


def batch_loss(
    model: Echo2ECG,
    batch: PairBatch,
    settings: TrainSettings,
    bf16: bool,
    device: torch.device,
) -> torch.Tensor:
    """The loss of ``settings.objective`` on one batch (autocast to bf16 when asked)."""
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
        return _LOSSES[settings.objective](model, batch, settings)
