"""View aggregators: a study's view embeddings → one study vector (docs/method.md section 5).

Every pool takes ``views`` (B, V, in_dim) float, V ≤ 128 views per study padded to a common
V, and ``mask`` (B, V) bool, True where a view is real. Each view is first projected by
Linear(in_dim → dim, bias); the pools differ in how the projected views are combined into
(B, dim). Padded views have no influence on the result, whatever they hold (NaN included):
they are zeroed before projection and masked out of every mean and attention.
"""

from __future__ import annotations

import torch
from torch import nn


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of (B, V, D) where mask (B, V) is True → (B, D)."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def valid_views(views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, V, D) views with the padded ones zeroed, after checking that ``mask`` is a
    (B, V) bool with at least one valid view per study."""
    if mask.shape != views.shape[:2] or mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be bool of shape {tuple(views.shape[:2])}, "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )
    if not bool(mask.any(dim=1).all()):
        raise ValueError("every study needs at least one valid view")
    return views.masked_fill(~mask.unsqueeze(-1), 0.0)


class _ViewPool(nn.Module):
    """Shared part: check the mask, zero padded views, project each view."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.view_proj = nn.Linear(in_dim, dim)

    def project(self, views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, V, in_dim), (B, V) → (B, V, dim) projected views, padded ones from zeros."""
        return self.view_proj(valid_views(views, mask))


class ViewMeanPool(_ViewPool):
    """Mean of the projected valid views → (B, dim)."""

    def __init__(self, in_dim: int = 512, dim: int = 1024):
        super().__init__(in_dim, dim)

    def forward(self, views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_mean(self.project(views, mask), mask)


class _QueryPool(_ViewPool):
    """Shared by the attention and CLS pools: one query per study (``query``) attends over
    the projected valid views through ``self.attention`` (an nn.MultiheadAttention)."""

    def query(self, projected: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, V, dim) projected views → (B, 1, dim) the query that attends over them."""
        raise NotImplementedError

    def attend(self, views: torch.Tensor, mask: torch.Tensor, need_weights: bool = False):
        """(B, V, in_dim), (B, V) → (query (B, 1, dim), attended (B, 1, dim), the
        head-averaged weights (B, 1, V) or None without ``need_weights``)."""
        projected = self.project(views, mask)
        query = self.query(projected, mask)
        attended, weights = self.attention(
            query, projected, projected, key_padding_mask=~mask, need_weights=need_weights
        )
        return query, attended, weights

    def view_weights(self, views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, V) the weight the query gives each view, averaged over heads; padded views
        0, each row sums to 1 (in eval mode: in training they carry attention dropout)."""
        return self.attend(views, mask, need_weights=True)[2].squeeze(1)


class ViewAttentionPool(_QueryPool):
    """Attention pooling: the mean of the valid projected views queries all of them.

    query = masked mean (B, 1, dim); keys = values = projected views with a key-padding mask;
    nn.MultiheadAttention(dim, num_heads) → (B, dim).
    """

    def __init__(self, in_dim: int = 512, dim: int = 1024, num_heads: int = 4):
        super().__init__(in_dim, dim)
        self.attention = nn.MultiheadAttention(dim, num_heads, batch_first=True)

    def query(self, projected: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_mean(projected, mask).unsqueeze(1)

    def forward(self, views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.attend(views, mask)[1].squeeze(1)


class ViewClsPool(_QueryPool):
    """CLS pooling as the reference builds it: a learned (1, 1, dim) class query attends
    over the projected valid views, then a post-norm transformer step:

        c = LayerNorm(c + MHA(c, views, views))        (attention dropout ``dropout``)
        c = LayerNorm(c + Dropout(FFN(c)))             FFN: Linear(dim, 4·dim) → GELU → Linear

    → (B, dim). State-dict keys: ``cls_token``, ``attention.*``, ``norm1.*``,
    ``ffn.0.*``, ``ffn.2.*``, ``norm2.*`` (and ``view_proj.*``).
    """

    def __init__(
        self,
        in_dim: int = 512,
        dim: int = 1024,
        num_heads: int = 4,
        dropout: float = 0.1,
        mlp_ratio: float = 4.0,
    ):
        super().__init__(in_dim, dim)
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.attention = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.ffn = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )
        self.norm2 = nn.LayerNorm(dim)

    def query(self, projected: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.cls_token.expand(projected.shape[0], -1, -1)  # the same for every study

    def forward(self, views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        query, attended, _ = self.attend(views, mask)
        token = self.norm1(query + attended)
        token = self.norm2(token + self.ffn(token))
        return token.squeeze(1)


class ViewMean(nn.Module):
    """The single-view baseline's study: the mean of the valid raw view embeddings, with
    no projection and no parameters, (B, V, D), (B, V) → (B, D). In training the baseline
    sees one view per sample (V = 1: the view itself)."""

    def forward(self, views: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_mean(valid_views(views, mask), mask)
