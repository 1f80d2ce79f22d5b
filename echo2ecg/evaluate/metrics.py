"""Downstream evaluation (docs/method.md section 7): kNN probes, bootstrap AUROC, retrieval.

Everything here works on plain arrays: features (N, D) float, labels (N,) int, scores
(N, C) float. Figures and tables are built by the callers.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import KNeighborsClassifier

from echo2ecg.vocabulary import LVEF_NORMAL_MIN, LVEF_REDUCED_MAX


def lvef_class(lvef: np.ndarray) -> np.ndarray:
    """LVEF (%) → 0 reduced (≤ 40), 1 mildly reduced (41–49), 2 normal (≥ 50)."""
    lvef = np.asarray(lvef, dtype=float)
    return np.where(lvef <= LVEF_REDUCED_MAX, 0, np.where(lvef < LVEF_NORMAL_MIN, 1, 2))


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
    chosen = [
        rng.choice(np.flatnonzero(labels == c), min(k, n), replace=False)
        for c, k, n in zip(classes, per_class, counts)
    ]
    return np.sort(np.concatenate(chosen))


def knn_scores(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    k: int = 5,
    n_classes: int | None = None,
) -> np.ndarray:
    """kNN class probabilities (N_test, C): k nearest by Euclidean distance, uniform weights.

    Columns are classes 0..C−1 even when the training set lacks some (zero column).
    Raises ValueError when the training set has fewer than k rows: the scores would not be
    a k-neighbour vote.
    """
    if k > len(train_y):
        raise ValueError(f"k = {k} neighbours asked of a reference set of {len(train_y)} rows")
    n_classes = n_classes or int(max(train_y.max(), 0)) + 1
    model = KNeighborsClassifier(n_neighbors=k, metric="euclidean", weights="uniform").fit(
        train_x, train_y
    )
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
    pos = np.add.reduceat(w * positive[order], starts, axis=1)  # (B, G) per tie group
    neg = np.add.reduceat(w * ~positive[order], starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negatives strictly lower
    wins = (pos * (below + 0.5 * neg)).sum(axis=1)
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), wins / (n_pos * n_neg), np.nan)


def macro_auroc(
    scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
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


def resample_weights(
    n_rows: int, n_resamples: int, seed: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """Row weights of ``n_resamples`` bootstrap resamples, (B, n_rows) float64.

    With ``groups`` (n_rows,) (a patient id per row), each resample draws as many patients
    as there are, with replacement, and a row's weight is the number of times its patient
    was drawn: a patient's ECGs enter and leave a resample together, as they must when
    they are correlated. Without groups every row is its own patient. Deterministic in
    ``seed``; two calls with the same arguments give the same resamples, which is what a
    paired comparison of two models on one test set needs.
    """
    if groups is None:
        codes, n_groups = np.arange(n_rows), n_rows
    else:
        _, codes = np.unique(np.asarray(groups), return_inverse=True)
        n_groups = int(codes.max()) + 1 if n_rows else 0
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(n_resamples, n_groups))
    offsets = (np.arange(n_resamples) * n_groups)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=n_resamples * n_groups)
    return counts.reshape(n_resamples, n_groups)[:, codes].astype(np.float64)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the finite ``values`` (NaN, NaN when there are none)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_aurocs(
    scores: np.ndarray,
    labels: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Macro AUROC of each of ``n_resamples`` seeded resamples of the test set, (B,).

    Resamples patients when ``groups`` gives each row's patient (see
    :func:`resample_weights`); each resample is scored as row weights, so no copy is made.
    """
    weights = resample_weights(len(labels), n_resamples, seed, groups)
    return macro_auroc(scores, labels, weights)


def bootstrap_auroc(
    scores: np.ndarray,
    labels: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    groups: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """Macro AUROC with a percentile bootstrap CI over resamples of the test set
    (of its patients, with ``groups``).

    Returns (auroc, ci_low, ci_high). Resamples where the AUROC is undefined (a class
    drawn without positives or negatives) are left out of the percentiles.
    """
    values = bootstrap_aurocs(scores, labels, n_resamples, seed, groups)
    low, high = percentile_interval(values, level)
    return float(macro_auroc(scores, labels)[0]), low, high


def paired_auroc_difference(
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    labels: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    groups: np.ndarray | None = None,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """AUROC(a) − AUROC(b) of two models scored on the same test rows, with a paired
    percentile bootstrap CI: both models are scored on the same resamples (of patients,
    with ``groups``), so what they share cancels in each resample's difference.

    Returns (difference, ci_low, ci_high).
    """
    weights = resample_weights(len(labels), n_resamples, seed, groups)
    differences = macro_auroc(scores_a, labels, weights) - macro_auroc(scores_b, labels, weights)
    point = macro_auroc(scores_a, labels)[0] - macro_auroc(scores_b, labels)[0]
    return (float(point), *percentile_interval(differences, level))


def bootstrap_mean(
    values: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    groups: np.ndarray | None = None,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Mean of per-row ``values`` (N,) with a percentile bootstrap CI over resamples of the
    rows (of their patients, with ``groups``). A paired difference of two models is the
    mean of their per-row differences. Returns (mean, ci_low, ci_high)."""
    values = np.asarray(values, dtype=float)
    weights = resample_weights(len(values), n_resamples, seed, groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = weights @ values / weights.sum(axis=1)
    return (float(values.mean()), *percentile_interval(means, level))


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, D) × (M, D) → (N, M) cosine similarities."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def first_match_ranks(similarity: np.ndarray, matches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query: whether the top hit matches, and the rank of the first match.

    similarity (Q, N): query × gallery; matches (Q, N) bool. Ranks are 1-based in order of
    decreasing similarity (ties broken by gallery order); N + 1 when a query has no match.
    Returns (top_hit (Q,) float 0/1, first_rank (Q,) float).
    """
    order = np.argsort(-similarity, axis=1, kind="stable")
    ranked = np.take_along_axis(matches, order, axis=1)
    has_match = ranked.any(axis=1)
    first = np.where(has_match, ranked.argmax(axis=1) + 1, similarity.shape[1] + 1)
    return ranked[:, 0].astype(float), first.astype(float)


def random_first_match(matches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the exact expectation over uniformly random rankings of the top hit
    matching (m / N for m matches among N) and of the first match's rank ((N + 1) / (m + 1);
    N + 1 when m = 0, as for a ranked query). Returns ((Q,), (Q,)) float."""
    n = matches.shape[1]
    m = matches.sum(axis=1)
    return m / n, (n + 1) / (m + 1)


def retrieval_metrics(similarity: np.ndarray, matches: np.ndarray) -> tuple[float, float]:
    """P@1 and mean rank of the first match (see :func:`first_match_ranks`)."""
    top_hit, first = first_match_ranks(similarity, matches)
    return float(top_hit.mean()), float(first.mean())


def random_retrieval_metrics(matches: np.ndarray) -> tuple[float, float]:
    """Expected P@1 and mean rank of the first match over uniformly random rankings."""
    p_at_1, rank = random_first_match(matches)
    return float(p_at_1.mean()), float(rank.mean())


def phenotype_matches(
    query_values: np.ndarray, gallery_values: np.ndarray, tolerance: float
) -> np.ndarray:
    """(Q, N) bool: gallery phenotype within ``tolerance`` of the query's."""
    return np.abs(query_values[:, None] - gallery_values[None, :]) <= tolerance
