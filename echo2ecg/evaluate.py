"""Downstream evaluation (METHOD.md section 7): kNN probes, bootstrap AUROC, retrieval.

Everything here works on plain arrays: features (N, D) float, labels (N,) int, scores
(N, C) float. Figures and tables are built by the callers.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import KNeighborsClassifier

LVEF_CLASSES = ("reduced", "mildly reduced", "normal")  # ESC 2021: <=40, 41-49, >=50 %


def lvef_class(lvef: np.ndarray) -> np.ndarray:
    """LVEF (%) → 0 reduced (≤ 40), 1 mildly reduced (41–49), 2 normal (≥ 50)."""
    lvef = np.asarray(lvef, dtype=float)
    return np.where(lvef <= 40, 0, np.where(lvef < 50, 1, 2))


def balanced_subset(labels: np.ndarray, seed: int) -> np.ndarray:
    """Indices of a class-balanced subset: every class cut to the rarest class's count."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    keep = [rng.choice(np.flatnonzero(labels == c), counts.min(), replace=False) for c in classes]
    return np.sort(np.concatenate(keep))


def stratified_subset(labels: np.ndarray, fraction: float, seed: int, minimum: int) -> np.ndarray:
    """Indices of a stratified random subset of about ``fraction`` of the rows.

    Each class keeps its share (at least one row per class), and the subset never has
    fewer than ``minimum`` rows (a kNN with k neighbours needs k). Deterministic in seed.
    """
    rng = np.random.default_rng(seed)
    n_total = len(labels)
    target = min(n_total, max(minimum, int(round(fraction * n_total))))
    classes, counts = np.unique(labels, return_counts=True)
    per_class = np.maximum(1, np.floor(counts / n_total * target).astype(int))
    # Hand out what rounding left over to the classes with the largest remainders.
    remainders = counts / n_total * target - per_class
    for c in np.argsort(-remainders):
        if per_class.sum() >= target:
            break
        if per_class[c] < counts[c]:
            per_class[c] += 1
    chosen = [rng.choice(np.flatnonzero(labels == c), min(k, n), replace=False)
              for c, k, n in zip(classes, per_class, counts)]
    return np.sort(np.concatenate(chosen))


def knn_scores(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int = 5,
               n_classes: int | None = None) -> np.ndarray:
    """kNN class probabilities (N_test, C): k nearest by Euclidean distance, uniform weights.

    Columns are classes 0..C−1 even when the training set lacks some (zero column).
    """
    n_classes = n_classes or int(max(train_y.max(), 0)) + 1
    model = KNeighborsClassifier(n_neighbors=min(k, len(train_y)), metric="euclidean",
                                 weights="uniform").fit(train_x, train_y)
    scores = np.zeros((len(test_x), n_classes))
    scores[:, model.classes_.astype(int)] = model.predict_proba(test_x)
    return scores


def _weighted_auroc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Binary AUROC of one score column under many row weightings at once.

    scores (N,), positive (N,) bool, weights (B, N) non-negative (a bootstrap resample is
    the count of each row in it). Ties count one half, as in the Mann–Whitney statistic.
    Returns (B,) with NaN where a weighting has no positive or no negative weight.
    """
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    w = weights[:, order]
    pos = np.add.reduceat(w * positive[order], starts, axis=1)      # (B, G) per tie group
    neg = np.add.reduceat(w * ~positive[order], starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg                            # negatives strictly lower
    wins = (pos * (below + 0.5 * neg)).sum(axis=1)
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), wins / (n_pos * n_neg), np.nan)


def macro_auroc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
                ) -> np.ndarray:
    """One-vs-rest AUROC averaged over classes (binary: AUROC of the positive column).

    scores (N, C); labels (N,) in 0..C−1; weights (B, N) or None (one unweighted run).
    Returns (B,) (or shape (1,)). A weighting in which some class has no positive or no
    negative row gives NaN: its AUROC is undefined, as scikit-learn also refuses it.
    """
    weights = np.ones((1, len(labels))) if weights is None else weights
    n_classes = scores.shape[1]
    if n_classes == 2:
        return _weighted_auroc(scores[:, 1], labels == 1, weights)
    per_class = [_weighted_auroc(scores[:, c], labels == c, weights) for c in range(n_classes)]
    return np.mean(per_class, axis=0)


def bootstrap_aurocs(scores: np.ndarray, labels: np.ndarray, n_resamples: int = 1000,
                     seed: int = 0) -> np.ndarray:
    """Macro AUROC of each of ``n_resamples`` seeded resamples of the test set, (B,).

    A resample is scored as row weights (each row's count in it), so no copy is made.
    """
    rng = np.random.default_rng(seed)
    n = len(labels)
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_resamples)])
    return macro_auroc(scores, labels, counts.astype(np.float64))


def bootstrap_auroc(scores: np.ndarray, labels: np.ndarray, n_resamples: int = 1000,
                    seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Macro AUROC with a percentile bootstrap CI over resamples of the test set.

    Returns (auroc, ci_low, ci_high). Resamples where the AUROC is undefined (a class
    drawn without positives or negatives) are left out of the percentiles.
    """
    values = bootstrap_aurocs(scores, labels, n_resamples, seed)
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(macro_auroc(scores, labels)[0]), float(low), float(high)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, D) × (M, D) → (N, M) cosine similarities."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def retrieval_metrics(similarity: np.ndarray, matches: np.ndarray) -> tuple[float, float]:
    """P@1 and mean rank of the first match.

    similarity (Q, N): query × gallery; matches (Q, N) bool. The rank is 1-based in order
    of decreasing similarity (ties broken by gallery order); N + 1 when a query has no
    match. Returns (p_at_1, mean_rank).
    """
    order = np.argsort(-similarity, axis=1, kind="stable")
    ranked = np.take_along_axis(matches, order, axis=1)
    has_match = ranked.any(axis=1)
    first = np.where(has_match, ranked.argmax(axis=1) + 1, similarity.shape[1] + 1)
    return float(ranked[:, 0].mean()), float(first.mean())


def random_retrieval_metrics(matches: np.ndarray) -> tuple[float, float]:
    """Expected P@1 and mean rank of the first match over uniformly random rankings.

    For a query with m matches among N: P(top hit matches) = m / N, and the expected rank
    of the first match is (N + 1) / (m + 1) (N + 1 when m = 0, as for a ranked query).
    """
    n = matches.shape[1]
    m = matches.sum(axis=1)
    return float((m / n).mean()), float(((n + 1) / (m + 1)).mean())


def phenotype_matches(query_values: np.ndarray, gallery_values: np.ndarray,
                      tolerance: float) -> np.ndarray:
    """(Q, N) bool: gallery phenotype within ``tolerance`` of the query's."""
    return np.abs(query_values[:, None] - gallery_values[None, :]) <= tolerance
