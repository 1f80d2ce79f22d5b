"""Probabilistic embeddings and the PCME++ objective: the ``probabilistic`` variant
(EchoingECG; docs/variants.md).

Each side embeds as a diagonal Gaussian in the joint space, N(μ, diag σ²):

    ECG token (B, embed_dim) ─┬─ ecg_proj ──── μ_e (B, J), L2-normalised
                              └─ ecg_logvar ── log σ_e² (B, J)
    study (B, study_dim) ─────┬─ echo_proj ─── μ_s (B, J), L2-normalised
                              └─ echo_logvar ─ log σ_s² (B, J)

PCME++ compares two Gaussians by the closed-form sampled distance, the expected squared
distance between a draw of each,

    d(e, s) = ‖μ_e − μ_s‖² + Σ_j (σ_e,j² + σ_s,j²),

and turns it into a match probability sigmoid(−a·d + b) with learnable a and b. The loss
is a binary cross-entropy over every (ECG, study) combination of the batch, matched ones
(the same study) and unmatched ones, plus the variational information bottleneck: the
KL divergence of each Gaussian from N(0, I), weighted by ``vib_beta``. The means are what
retrieval and projection features read, so the variant is evaluated like every other;
the uncertainty of an ECG is its mean σ² over the J dimensions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from echo2ecg.models.ecg_encoder import ECGEncoder
from echo2ecg.models.echo2ecg import Echo2ECG


class MatchProbability(nn.Module):
    """sigmoid(−a·d + b) as logits −a·d + b, with learnable a (``scale``) and b
    (``shift``); both start at 5, PCME++'s initialisation."""

    def __init__(self, init_scale: float = 5.0, init_shift: float = 5.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init_scale)))
        self.shift = nn.Parameter(torch.tensor(float(init_shift)))

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        """Distances (any shape) → match logits of the same shape."""
        return -self.scale * distance + self.shift


def sampled_distance(
    mu_a: torch.Tensor, logvar_a: torch.Tensor, mu_b: torch.Tensor, logvar_b: torch.Tensor
) -> torch.Tensor:
    """Closed-form sampled distance of every pair: (N, J) and (M, J) Gaussians → (N, M),
    ‖μ_a,i − μ_b,k‖² + Σ_j (σ_a,ij² + σ_b,kj²)."""
    squared = (mu_a.unsqueeze(1) - mu_b.unsqueeze(0)).pow(2).sum(-1)
    spread = logvar_a.exp().sum(-1).unsqueeze(1) + logvar_b.exp().sum(-1).unsqueeze(0)
    return squared + spread


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) per element, averaged over all of them (PCME++'s VIB term):
    −½ · mean(1 + log σ² − μ² − σ²)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).mean()


def pseudo_positives(logits: torch.Tensor, matched: torch.Tensor) -> torch.Tensor:
    """PCME++'s pseudo-positives: the match targets (N, M) with, in each row, every
    combination at least as likely as the row's first matched one also counted matched."""
    first = matched.float().argmax(dim=1)
    reference = logits.gather(1, first.unsqueeze(1))
    has_match = matched.any(dim=1, keepdim=True)
    return matched | ((logits >= reference) & has_match)


def pcme_loss(
    ecg_mu: torch.Tensor,
    ecg_logvar: torch.Tensor,
    echo_mu: torch.Tensor,
    echo_logvar: torch.Tensor,
    matched: torch.Tensor,
    match: MatchProbability,
    vib_beta: float = 1e-4,
    pseudo_positive_alpha: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The PCME++ loss of a batch → (scalar, its parts as floats).

    ecg_mu, echo_mu (B, J): means (normalised here); ecg_logvar, echo_logvar (B, J): log σ²;
    matched (B, B) bool: ECG i and study k are a match (the same study). Loss =
    2·BCE(logits, matched) (averaged over the B² combinations; the factor 2 counts both
    directions, which are equal in closed form) + vib_beta · (KL_ecg + KL_echo)
    + pseudo_positive_alpha · (BCE with pseudo-positives, both directions). Float32.
    """
    ecg_mu = F.normalize(ecg_mu.float(), dim=-1)
    echo_mu = F.normalize(echo_mu.float(), dim=-1)
    ecg_logvar, echo_logvar = ecg_logvar.float(), echo_logvar.float()
    logits = match(sampled_distance(ecg_mu, ecg_logvar, echo_mu, echo_logvar))
    matching = F.binary_cross_entropy_with_logits(logits, matched.float())
    vib = gaussian_kl(ecg_mu, ecg_logvar) + gaussian_kl(echo_mu, echo_logvar)
    loss = 2 * matching + vib_beta * vib
    parts = {"matching": float(matching.detach()), "vib": float(vib.detach())}
    if pseudo_positive_alpha:
        smoothed = sum(
            F.binary_cross_entropy_with_logits(
                side, pseudo_positives(side.detach(), targets).float()
            )
            for side, targets in ((logits, matched), (logits.T, matched.T))
        )
        loss = loss + pseudo_positive_alpha * smoothed
        parts["pseudo_positive"] = float(smoothed.detach())
    return loss, parts


class MeanCentre(nn.Module):
    """Subtracts the mean vector: the batch's in training (and folds it into a running
    mean, momentum ``momentum``), the running mean at evaluation, (B, J) → (B, J).
    Buffer: ``running_mean``."""

    def __init__(self, dim: int, momentum: float = 0.1):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x - self.running_mean.to(x.dtype)
        mean = x.mean(dim=0)
        with torch.no_grad():
            self.running_mean.lerp_(mean.detach().float(), self.momentum)
        return x - mean


class ProbabilisticEcho2ECG(Echo2ECG):
    """Echo2ECG whose two sides are Gaussians (module docstring). Same constructor as
    :class:`Echo2ECG`, plus ``centre_means``; adds the log-variance heads ``ecg_logvar``
    (Linear(embed_dim → J)) and ``echo_logvar`` (Linear(study_dim → J)), the match
    probability's ``match.scale`` and ``match.shift`` and, with ``centre_means``, the
    centring of each side's means (``ecg_centre.running_mean``, ``echo_centre.running_mean``).
    :meth:`encode_ecg` and :meth:`encode_study` return the means.

    centre_means: subtract each side's mean vector before the means are normalised (the
    batch's in training, a running mean at evaluation). PCME++ has no such step; without
    it, at demo scale, BCE over the batch rewards moving every ECG to one point (the
    ECG means' mean cosine reaches 1.000 and the loss stays at the base rate's), a
    common-mode collapse that the CLIP loss's softmax cannot see (docs/variants.md).
    """

    def __init__(
        self,
        ecg_encoder: ECGEncoder,
        pooling: str = "attention",
        centre_means: bool = True,
        **sizes,
    ):
        super().__init__(ecg_encoder, pooling, **sizes)
        joint_dim = self.ecg_proj.out_features
        self.ecg_centre = MeanCentre(joint_dim) if centre_means else nn.Identity()
        self.echo_centre = MeanCentre(joint_dim) if centre_means else nn.Identity()
        self.ecg_logvar = nn.Linear(ecg_encoder.embed_dim, self.ecg_proj.out_features)
        self.echo_logvar = nn.Linear(self.echo_proj.in_features, self.echo_proj.out_features)
        # Start with small variances (σ² e^-8 per dimension: a summed spread of 0.17 over
        # 512 dimensions against squared mean distances of up to 4), so that early training
        # is driven by the means.
        for head in (self.ecg_logvar, self.echo_logvar):
            nn.init.zeros_(head.weight)
            nn.init.constant_(head.bias, -8.0)
        self.match = MatchProbability()

    def ecg_gaussian(
        self, ecg: torch.Tensor, lead_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 12, T) ECG → (μ (B, J) not normalised, log σ² (B, J))."""
        return self.token_gaussian(self.ecg_encoder(ecg, lead_mask))

    def token_gaussian(self, token: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, embed_dim) ECG encoder tokens → (μ (B, J) not normalised, log σ² (B, J))."""
        return self.ecg_centre(self.ecg_proj(token)), self.ecg_logvar(token)

    def study_gaussian(
        self, views: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, V, view_dim) views + (B, V) mask → (μ (B, J) not normalised, log σ² (B, J))."""
        study = self.view_pool((views - self.view_mean) / self.view_scale, mask)
        return self.echo_centre(self.echo_proj(study)), self.echo_logvar(study)

    def encode_ecg(self, ecg: torch.Tensor, lead_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 12, T) ECG → (B, J) the mean of its Gaussian, not normalised."""
        return self.ecg_centre(super().encode_ecg(ecg, lead_mask))

    def encode_study(self, views: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V, view_dim) views + (B, V) mask → (B, J) the mean of its Gaussian."""
        return self.echo_centre(super().encode_study(views, mask))

    def ecg_readouts(self, token: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, embed_dim) tokens → {"joint": the means (B, J) of :meth:`encode_ecg`,
        "uncertainty": (B,) the mean σ² of :meth:`ecg_uncertainty`}."""
        mu, logvar = self.token_gaussian(token)
        return {"joint": mu, "uncertainty": logvar.exp().mean(-1)}

    def ecg_uncertainty(
        self, ecg: torch.Tensor, lead_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, 12, T) ECG → (B,) mean σ² over the joint dimensions."""
        return self.ecg_logvar(self.ecg_encoder(ecg, lead_mask)).exp().mean(-1)
