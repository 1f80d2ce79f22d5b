"""Echo2ECG: the ECG encoder and a view aggregator meeting in one 512-d space (docs/method.md 5).

    ECG (B, 12, T) ─ ECGEncoder ─ (B, 192) ─ ecg_proj: Linear(192 → 512, no bias) ─┐
                                                                                   ├─ clip_loss
    views (B, V, 512) + mask ─ view_pool ─ (B, 1024) ─ echo_proj: Linear(1024 → 512, no bias) ─┘

The view embeddings come from the frozen echo encoder, computed once and cached; the echo
encoder is not part of this module. Pooling variants (the paper's ablation):

    attention  ViewAttentionPool (the Echo2ECG model)
    mean       ViewMeanPool
    cls        ViewClsPool (the reference's class query with a transformer step)
    single     the single-view baseline as the reference builds it: no 512 → 1024 layer and no
               pool; echo_proj maps a view embedding straight into the joint space
               (Linear(512 → 512, no bias)). It trains on (ECG, view) samples, one per view of
               each paired study; at evaluation a study is the mean of its view embeddings
               (ViewMean), docs/method.md section 7's rule for models without an aggregator.

State-dict keys: ``ecg_encoder.*`` (see ecg_encoder), ``view_mean``, ``view_scale`` (the fixed
view standardisation), ``view_pool.view_proj.*``,
``view_pool.attention.*`` (attention, cls), ``view_pool.cls_token``, ``view_pool.norm1.*``,
``view_pool.ffn.*``, ``view_pool.norm2.*`` (cls), ``ecg_proj.weight``, ``echo_proj.weight``
(single: no ``view_pool`` keys). Trainable parameters with the defaults: attention 12,470,368;
mean 8,271,968; cls 20,869,216; single 7,484,512.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from echo2ecg.models.aggregators import ViewAttentionPool, ViewClsPool, ViewMean, ViewMeanPool
from echo2ecg.models.ecg_encoder import ECGEncoder

POOLINGS = ("attention", "mean", "cls", "single")


def build_view_pool(
    pooling: str, view_dim: int = 512, study_dim: int = 1024, num_heads: int = 4
) -> nn.Module:
    """The aggregator for one of ``POOLINGS``: (B, V, view_dim), (B, V) → (B, study_dim)
    (→ (B, view_dim) for ``single``, which has no view projection)."""
    if pooling == "attention":
        return ViewAttentionPool(view_dim, study_dim, num_heads)
    if pooling == "cls":
        return ViewClsPool(view_dim, study_dim, num_heads)
    if pooling == "mean":
        return ViewMeanPool(view_dim, study_dim)
    if pooling == "single":
        return ViewMean()
    raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")


class Echo2ECG(nn.Module):
    """ECG encoder + view aggregator + the two projections into the joint space.

    ecg_encoder: an :class:`ECGEncoder` (random init or OTiS weights).
    pooling: one of ``POOLINGS``.
    view_dim: echo view embedding size (512, EchoPrime). study_dim: aggregated study size.
    joint_dim: size of the contrastive space. num_heads: heads of the attention/cls pools.
    """

    def __init__(
        self,
        ecg_encoder: ECGEncoder,
        pooling: str = "attention",
        view_dim: int = 512,
        study_dim: int = 1024,
        joint_dim: int = 512,
        num_heads: int = 4,
    ):
        super().__init__()
        self.pooling = pooling
        self.ecg_encoder = ecg_encoder
        # A fixed standardisation of the cached view embeddings (identity until fitted, see
        # fit_view_standardization); buffers, so checkpoints carry it.
        self.register_buffer("view_mean", torch.zeros(view_dim))
        self.register_buffer("view_scale", torch.ones(()))
        self.view_pool = build_view_pool(pooling, view_dim, study_dim, num_heads)
        self.ecg_proj = nn.Linear(ecg_encoder.embed_dim, joint_dim, bias=False)
        echo_dim = view_dim if pooling == "single" else study_dim
        self.echo_proj = nn.Linear(echo_dim, joint_dim, bias=False)

    @torch.no_grad()
    def fit_view_standardization(self, views: torch.Tensor) -> None:
        """Centre and scale view embeddings by training statistics: ``views`` (N, view_dim)
        gives the mean vector and one scale (the root mean square deviation per dimension).

        A random-init echo encoder puts every clip in nearly one direction (mean cosine
        between clips about 0.86 on the demo), and contrastive training from there does not
        start: every study looks alike. Standardising is an affine change of the input to
        the first learned layer, so it changes how training starts, not what the model can
        express.
        """
        views = views.to(self.view_mean.device, torch.float32)
        mean = views.mean(dim=0)
        self.view_mean.copy_(mean)
        self.view_scale.copy_((views - mean).pow(2).mean().sqrt().clamp(min=1e-6))

    def encode_ecg(self, ecg: torch.Tensor, lead_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 12, T) ECG (+ (B, 12) bool recorded leads, None: all) → (B, joint_dim)
        joint-space vector, not normalised."""
        return self.ecg_proj(self.ecg_encoder(ecg, lead_mask))

    def ecg_readouts(self, token: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the model reads from one pass of its ECG encoder: (B, embed_dim) tokens →
        {"joint": (B, joint_dim)}, the vectors :meth:`encode_ecg` returns."""
        return {"joint": self.ecg_proj(token)}

    def encode_study(self, views: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V, view_dim) views + (B, V) bool valid-view mask → (B, joint_dim), not normalised.

        A (B, view_dim) tensor is read as one view per study; mask None means all views valid.
        """
        if views.ndim == 2:
            views = views.unsqueeze(1)
        if mask is None:
            mask = torch.ones(views.shape[:2], dtype=torch.bool, device=views.device)
        views = (views - self.view_mean) / self.view_scale
        return self.echo_proj(self.view_pool(views, mask))

    def forward(
        self,
        ecg: torch.Tensor,
        views: torch.Tensor,
        mask: torch.Tensor | None = None,
        lead_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """→ (ECG vectors (B, joint_dim), study vectors (B, joint_dim)), row i a pair."""
        return self.encode_ecg(ecg, lead_mask), self.encode_study(views, mask)


def clip_loss(ecg_z: torch.Tensor, echo_z: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of B pairs (row i of each input is pair i) → scalar.

    Both (B, D) inputs are L2-normalised; logits = cosine similarity / temperature (fixed);
    loss = ½·CE(ECG → echo) + ½·CE(echo → ECG) with the diagonal as targets. Computed in
    float32 whatever the input precision.
    """
    ecg_z = F.normalize(ecg_z.float(), dim=-1)
    echo_z = F.normalize(echo_z.float(), dim=-1)
    logits = ecg_z @ echo_z.T / temperature
    targets = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable, by default) parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
