"""The trained ECG encoder: a ViT in the OTiS layout (docs/method.md section 5).

Each lead is cut into patches of 24 samples (Conv2d(1, D, (1, 24)) → LayerNorm → GELU), so a
(12, 1008) ECG becomes 12 × 42 = 504 tokens of D = 192, plus a class token. A token's position
is split in halves: channels [0, D/2) hold a learned per-lead embedding, channels [D/2, D) a
fixed 1-D sin-cos of its patch index. Twelve pre-norm transformer blocks follow; the output is
the mean of the patch tokens (class token excluded) → LayerNorm: a (B, 192) embedding.

State-dict keys (stable: checkpoints and the layer-wise learning-rate decay rely on them;
they follow OTiS where the tensor is the same, so OTiS weights map one to one):

    cls_token                      (1, 1, D)
    patch_embed.proj.{weight,bias} Conv2d(1, D, (1, 24))
    patch_embed.norm.{weight,bias} LayerNorm(D), ε 1e-5 (torch's default, as OTiS)
    lead_pos_embed.weight          (n_leads + 1, D/2); row 0 = padding (zero, never used),
                                   row i = lead i (1-based, docs/method.md section 2's order)
    time_pos_embed                 (n_samples / 24, D/2) buffer, not trained: row j = patch j
    blocks.{i}.norm1 / norm2       LayerNorm(D), ε 1e-6
    blocks.{i}.attn.qkv            Linear(D, 3D), then
    blocks.{i}.attn.mha.*          nn.MultiheadAttention(D, heads) (in_proj_*, out_proj.*), then
    blocks.{i}.attn.proj           Linear(D, D): OTiS projects twice, and so do we
    blocks.{i}.mlp.fc1 / fc2       Linear(D, 4D), GELU, Linear(4D, D)
    fc_norm                        LayerNorm(D), ε 1e-6, after mean pooling

With the defaults: 7,124,064 parameters (and a 42 × 96 buffer).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

BLOCK_NORM_EPS = 1e-6


def sincos_embedding(n_positions: int, dim: int) -> torch.Tensor:
    """(n_positions, dim) fixed embedding of positions 0…n−1: [sin(p·ω) | cos(p·ω)].

    ω_k = 10000^(−k / (dim/2)), k = 0…dim/2 − 1 (the MAE/OTiS 1-D sin-cos).
    """
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even dimension, got {dim}")
    frequencies = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = torch.arange(n_positions, dtype=torch.float64)[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1).to(torch.float32)


class PatchEmbed(nn.Module):
    """Per-lead tokeniser: (B, leads, T) → (B, leads, T / patch_size, embed_dim)."""

    def __init__(self, patch_size: int = 24, embed_dim: int = 192):
        super().__init__()
        self.proj = nn.Conv2d(1, embed_dim, kernel_size=(1, patch_size), stride=(1, patch_size))
        self.norm = nn.LayerNorm(embed_dim)
        self.act = nn.GELU()

    def forward(self, ecg: torch.Tensor) -> torch.Tensor:
        tokens = self.proj(ecg.unsqueeze(1))  # (B, D, leads, patches)
        return self.act(self.norm(tokens.permute(0, 2, 3, 1)))


class Attention(nn.Module):
    """OTiS self-attention: Linear qkv → nn.MultiheadAttention → Linear proj. (B, N, D) → same."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.mha = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``key_padding_mask`` (B, N) bool, True = a token no other token attends to."""
        query, key, value = self.qkv(x).chunk(3, dim=-1)
        attended, _ = self.mha(
            query, key, value, key_padding_mask=key_padding_mask, need_weights=False
        )
        return self.proj(attended)


class Mlp(nn.Module):
    """Linear(D, hidden) → GELU → Linear(hidden, D)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a residual branch per sample with probability rate."""

    def __init__(self, rate: float = 0.0):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)). (B, N, D)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=BLOCK_NORM_EPS)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=BLOCK_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(
        self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), key_padding_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ECGEncoder(nn.Module):
    """OTiS-style ViT: (B, n_leads, T) float32 ECG → (B, embed_dim) embedding.

    Any subset of leads can be embedded: :meth:`forward_leads` takes the recorded leads
    alone (a single lead II is 1 + T / patch_size tokens with lead II's embedding), and
    :meth:`forward` a ``lead_mask`` over the full lead layout, whose masked leads are
    neither attended to nor averaged (the same embedding, to float rounding).

    T must be a multiple of patch_size. Shorter inputs than ``n_samples`` use the first
    T / patch_size time positions, as OTiS does; longer ones (evaluation on more samples
    than the model trained on) an interpolated time embedding, see :meth:`time_positions`.
    Drop-path rates grow linearly from 0 in the first block to ``drop_path`` in the last.
    """

    def __init__(
        self,
        embed_dim: int = 192,
        depth: int = 12,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        patch_size: int = 24,
        n_leads: int = 12,
        n_samples: int = 1008,
        drop_path: float = 0.1,
    ):
        super().__init__()
        if n_samples % patch_size:
            raise ValueError(f"n_samples {n_samples} is not a multiple of patch_size {patch_size}")
        if embed_dim % 4:
            raise ValueError(f"embed_dim {embed_dim} must be a multiple of 4 (two sin-cos halves)")
        self.embed_dim = embed_dim
        self.patch_size = patch_size
        self.n_leads = n_leads
        self.n_samples = n_samples
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.lead_pos_embed = nn.Embedding(n_leads + 1, embed_dim // 2, padding_idx=0)
        self.register_buffer(
            "time_pos_embed", sincos_embedding(n_samples // patch_size, embed_dim // 2)
        )
        rates = torch.linspace(0.0, drop_path, depth).tolist()
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, rate) for rate in rates)
        self.fc_norm = nn.LayerNorm(embed_dim, eps=BLOCK_NORM_EPS)
        self._init_weights()

    def _init_weights(self) -> None:
        """OTiS initialisation: xavier-uniform linears and tokeniser, N(0, 0.02) tokens."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        conv = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(conv.view(conv.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        with torch.no_grad():
            nn.init.trunc_normal_(self.lead_pos_embed.weight[1:], std=0.02)
            self.lead_pos_embed.weight[0].zero_()

    def no_weight_decay(self) -> set[str]:
        """Parameter names AdamW must not decay (besides biases and norms): the class token
        and the learned lead embedding."""
        return {"cls_token", "lead_pos_embed.weight"}

    def layer_id(self, name: str, embeddings_share_block0: bool = True) -> int:
        """Layer id of a parameter for layer-wise lr decay: block i → i + 1; the tokeniser,
        class token and lead embedding → 0, or 1 (block 0's) with
        ``embeddings_share_block0``, as the reference code assigns them; ``fc_norm`` →
        depth + 1. A layer id l trains at lr · decay^max(0, depth − l)."""
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        if name.startswith(("patch_embed.", "cls_token", "lead_pos_embed.")):
            return 1 if embeddings_share_block0 else 0
        return len(self.blocks) + 1

    def time_positions(self, n_patches: int) -> torch.Tensor:
        """(n_patches, embed_dim / 2) time embedding: the first ``n_patches`` rows of the
        table, or, for inputs longer than the model's ``n_samples``, the table linearly
        interpolated to ``n_patches`` rows (as the reference code and OTiS stretch it for
        longer downstream inputs)."""
        table = self.time_pos_embed
        if n_patches <= table.shape[0]:
            return table[:n_patches]
        return F.interpolate(table.T[None], size=n_patches, mode="linear", align_corners=False)[0].T

    def position_embedding(self, n_patches: int, leads: list[int] | None = None) -> torch.Tensor:
        """(L, n_patches, embed_dim): [lead embedding | time embedding of the patch] for
        the lead indices ``leads`` (0-based, docs/method.md section 2's order; None: all)."""
        half = self.embed_dim // 2
        rows = self.lead_pos_embed.weight[1:]
        if leads is not None:
            rows = rows[torch.as_tensor(leads, dtype=torch.long, device=rows.device)]
        lead = rows[:, None, :].expand(-1, n_patches, half)
        time = self.time_positions(n_patches)[None].expand(len(rows), -1, half)
        return torch.cat([lead, time], dim=-1)

    def _check_input(self, ecg: torch.Tensor, n_leads: int) -> None:
        if (
            ecg.ndim != 3
            or ecg.shape[1] != n_leads
            or ecg.shape[2] % self.patch_size
            or (ecg.shape[2] == 0)
        ):
            raise ValueError(
                f"expected ECG (B, {n_leads}, T) with T a positive multiple of "
                f"{self.patch_size}, got {tuple(ecg.shape)}"
            )

    def _encode(self, tokens: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens (B, L, P, D) with positions → (B, D): class token, blocks, mean, norm.
        ``padding`` (B, L·P) bool marks tokens to ignore."""
        tokens = tokens.flatten(1, 2)  # lead-major, as OTiS
        batch = tokens.shape[0]
        # The class token carries no position (OTiS adds the zero cls row of its table).
        x = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1)
        if padding is None:
            for block in self.blocks:
                x = block(x)
            return self.fc_norm(x[:, 1:].mean(dim=1))
        key_padding = torch.cat([padding.new_zeros(batch, 1), padding], dim=1)
        for block in self.blocks:
            x = block(x, key_padding)
        keep = (~padding).to(x.dtype)[..., None]
        return self.fc_norm((x[:, 1:] * keep).sum(dim=1) / keep.sum(dim=1))

    def forward_leads(self, ecg: torch.Tensor, leads: list[int]) -> torch.Tensor:
        """(B, len(leads), T) ECG holding only the leads ``leads`` (0-based indices into
        the full layout, in that order) → (B, embed_dim)."""
        leads = [int(lead) for lead in leads]
        if (
            not leads
            or len(set(leads)) != len(leads)
            or not all(0 <= lead < self.n_leads for lead in leads)
        ):
            raise ValueError(f"leads must be distinct indices in 0..{self.n_leads - 1}: {leads}")
        self._check_input(ecg, len(leads))
        tokens = self.patch_embed(ecg)  # (B, leads, patches, D)
        return self._encode(tokens + self.position_embedding(tokens.shape[2], leads))

    def forward(self, ecg: torch.Tensor, lead_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n_leads, T) ECG → (B, embed_dim).

        ``lead_mask`` (B, n_leads) bool, True = the lead was recorded (None: all were).
        A batch whose ECGs share one subset runs on those leads alone
        (:meth:`forward_leads`); a mixed batch pads the others' tokens out of attention
        and out of the mean.
        """
        self._check_input(ecg, self.n_leads)
        if lead_mask is not None and lead_mask.shape == ecg.shape[:2] and bool(lead_mask.all()):
            lead_mask = None  # all recorded: the plain forward pass, exactly
        if lead_mask is None:
            return self._encode(
                self.patch_embed(ecg) + self.position_embedding(ecg.shape[2] // self.patch_size)
            )
        if lead_mask.shape != ecg.shape[:2] or lead_mask.dtype != torch.bool:
            raise ValueError(
                f"lead_mask must be bool {tuple(ecg.shape[:2])}, got {lead_mask.shape}"
            )
        if not lead_mask.any(dim=1).all():
            raise ValueError("every ECG needs at least one lead in lead_mask")
        if bool((lead_mask == lead_mask[:1]).all()):
            leads = lead_mask[0].nonzero().flatten().tolist()
            return self.forward_leads(ecg[:, leads], leads)
        tokens = self.patch_embed(ecg)
        tokens = tokens + self.position_embedding(tokens.shape[2])
        padding = (~lead_mask)[:, :, None].expand(-1, -1, tokens.shape[2]).flatten(1)
        return self._encode(tokens, padding)


# --------------------------------------------------------------------------- OTiS weights

# OTiS checkpoint entries that this encoder has no use for: decoders and prediction heads of
# pre-training, fine-tuning heads, and the encoder's per-token output norm (mean pooling is
# followed by a fresh fc_norm, as in MAE/OTiS fine-tuning with global pooling).
OTIS_IGNORED_PREFIXES = (
    "decoder_",
    "mask_token",
    "head.",
    "norm.",
    "attention_pool.",
    "mlp.",
    "mlp_norm.",
    "mlp_pred.",
    "projector.",
    "predictor.",
)


@dataclass
class OtisLoadReport:
    """What :func:`load_otis_checkpoint` did.

    missing: encoder keys the checkpoint did not provide (left at their initial values).
    unexpected: checkpoint keys neither loaded nor known to be irrelevant.
    ignored: checkpoint keys skipped on purpose (``OTIS_IGNORED_PREFIXES``).
    domain_offset: k, the lead embedding took rows k+1 … k+n_leads of ``pos_embed_y``.
    time_positions: how ``pos_embed_x`` was fitted to the encoder's patch count.
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    domain_offset: int = 0
    time_positions: str = ""


def _read_checkpoint(path_or_dict: str | Path | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(path_or_dict, Mapping):
        return path_or_dict
    # OTiS saves its argparse.Namespace of training arguments beside the weights.
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(Path(path_or_dict), map_location="cpu", weights_only=True)


def _fit_time_positions(otis_pos_embed_x: torch.Tensor, n_patches: int) -> tuple[torch.Tensor, str]:
    """OTiS (1, 1 + P_ckpt, D/2) table (row 0 = class token) → (n_patches, D/2).

    As OTiS: with at least n_patches positions, the first n_patches are used; with fewer,
    the table is linearly interpolated (align_corners=False) to n_patches.
    """
    table = otis_pos_embed_x.reshape(-1, otis_pos_embed_x.shape[-1])[1:].to(torch.float32)
    n_checkpoint = table.shape[0]
    if n_checkpoint >= n_patches:
        return table[:n_patches], f"first {n_patches} of {n_checkpoint} checkpoint positions"
    stretched = F.interpolate(table.T[None], size=n_patches, mode="linear", align_corners=False)
    return stretched[0].T, f"interpolated from {n_checkpoint} to {n_patches} positions"


def load_otis_checkpoint(
    encoder: ECGEncoder, path_or_dict: str | Path | Mapping[str, Any], domain: str = "ecg"
) -> OtisLoadReport:
    """Load OTiS pre-trained weights into ``encoder`` (in place) and report what happened.

    path_or_dict: an OTiS checkpoint (file or loaded dict) holding ``model`` (its state dict)
        and ``domain_offsets`` ({domain name: k}).
    domain: whose rows of the shared ``pos_embed_y`` table become the per-lead embedding:
        rows k+1 … k+n_leads, with a zero padding row prepended.

    ``pos_embed_x`` becomes ``time_pos_embed`` (see :func:`_fit_time_positions`); the other
    encoder keys carry OTiS's names. Keys under ``OTIS_IGNORED_PREFIXES`` are skipped; other
    leftovers and missing keys are reported (and logged), not raised. A tensor whose shape
    does not fit raises.
    """
    checkpoint = _read_checkpoint(path_or_dict)
    for required in ("model", "domain_offsets"):
        if required not in checkpoint:
            raise ValueError(
                f"not an OTiS checkpoint: no {required!r} entry (found {sorted(checkpoint)})"
            )
    if domain not in checkpoint["domain_offsets"]:
        raise ValueError(
            f"domain {domain!r} not in the checkpoint's domain_offsets "
            f"{dict(checkpoint['domain_offsets'])}"
        )
    offset = int(checkpoint["domain_offsets"][domain])
    otis_state = dict(checkpoint["model"])
    report = OtisLoadReport(domain_offset=offset)

    state: dict[str, torch.Tensor] = {}
    if "pos_embed_y.weight" in otis_state:
        table = otis_state.pop("pos_embed_y.weight")
        rows = table[offset + 1 : offset + 1 + encoder.n_leads]
        if rows.shape[0] != encoder.n_leads:
            raise ValueError(
                f"pos_embed_y has {table.shape[0]} rows: too few for "
                f"{encoder.n_leads} leads at domain offset {offset}"
            )
        state["lead_pos_embed.weight"] = torch.cat([rows.new_zeros(1, rows.shape[1]), rows])
    if "pos_embed_x" in otis_state:
        state["time_pos_embed"], report.time_positions = _fit_time_positions(
            otis_state.pop("pos_embed_x"), encoder.time_pos_embed.shape[0]
        )

    for key, tensor in otis_state.items():
        if key.startswith(OTIS_IGNORED_PREFIXES):
            report.ignored.append(key)
        else:
            state[key] = tensor

    result = encoder.load_state_dict(state, strict=False)
    report.missing = list(result.missing_keys)
    report.unexpected = list(result.unexpected_keys)
    log.info(
        "OTiS checkpoint loaded (domain %r, offset %d; time positions: %s); %d keys ignored",
        domain,
        offset,
        report.time_positions or "not in checkpoint",
        len(report.ignored),
    )
    if report.missing or report.unexpected:
        log.warning(
            "OTiS checkpoint: missing keys %s; unexpected keys %s",
            report.missing,
            report.unexpected,
        )
    return report
