"""The paper's downstream tables from feature files and pairs (METHOD.md section 7).

Labels attach to ECGs through their pairs: an ECG paired with several studies takes the
mean of their phenotypes (LVEF, volumes) and SHD when any of them shows it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .evaluate import (balanced_subset, bootstrap_auroc, bootstrap_aurocs, cosine_similarity, knn_scores,
                       lvef_class, macro_auroc, phenotype_matches, random_retrieval_metrics,
                       retrieval_metrics, stratified_subset)

RETRIEVAL_PHENOTYPES = ("lvedv", "lvesv", "lvsv", "lvef")


def ecg_labels(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per ECG: split, mean LVEF/volumes over its paired studies, SHD if any study has it."""
    return pairs.groupby("ecg").agg(split=("split", "first"), lvef=("lvef", "mean"),
                                    lvedv=("lvedv", "mean"), lvesv=("lvesv", "mean"),
                                    lvsv=("lvsv", "mean"), shd=("shd", "max"))


def _split_arrays(features: dict, labels: pd.DataFrame, column: str, split: str):
    part = labels[(labels["split"] == split) & labels[column].notna()]
    index = pd.Series(range(len(features["ecg"])), index=features["ecg"])
    rows = index[part.index].to_numpy()
    return features["ecg_features"][rows], part[column].to_numpy()


def lvef_knn(features: dict, pairs: pd.DataFrame, k: int, balance: bool, n_resamples: int,
             seed: int) -> dict:
    """3-class LVEF kNN on the ECG features: train split as reference, test split scored."""
    labels = ecg_labels(pairs)
    train_x, train_lvef = _split_arrays(features, labels, "lvef", "train")
    test_x, test_lvef = _split_arrays(features, labels, "lvef", "test")
    train_y, test_y = lvef_class(train_lvef), lvef_class(test_lvef)
    if balance and len(train_y):
        keep = balanced_subset(train_y, seed)
        train_x, train_y = train_x[keep], train_y[keep]
    auroc, low, high = _scored(train_x, train_y, test_x, test_y, k, 3, n_resamples, seed)
    return {"auroc": auroc, "ci_low": low, "ci_high": high, "n_train": len(train_y),
            "n_test": len(test_y)}


def _scored(train_x, train_y, test_x, test_y, k, n_classes, n_resamples, seed):
    if len(train_y) == 0 or len(np.unique(test_y)) < n_classes:
        return np.nan, np.nan, np.nan  # no reference set, or a class absent from the test set
    scores = knn_scores(train_x, train_y, test_x, k, n_classes)
    return bootstrap_auroc(scores, test_y, n_resamples, seed)


def shd_scaling(features: dict, pairs: pd.DataFrame, fractions: list[float], n_seeds: int,
                k: int, n_resamples: int, seed: int) -> list[dict]:
    """Binary SHD kNN trained on stratified fractions of the train split.

    Per fraction: the mean AUROC over ``n_seeds`` subsets, and a 95 % CI from the pooled
    bootstrap distributions of all seeds (subset and test-set variability together).
    """
    labels = ecg_labels(pairs)
    train_x, train_y = _split_arrays(features, labels, "shd", "train")
    test_x, test_y = _split_arrays(features, labels, "shd", "test")
    train_y, test_y = train_y.astype(int), test_y.astype(int)
    rows = []
    for fraction in fractions:
        points, pooled, size = [], [], 0
        for s in range(n_seeds):
            subset = stratified_subset(train_y, fraction, seed + s, minimum=k)
            size = len(subset)
            if len(np.unique(test_y)) < 2 or len(subset) == 0:
                continue
            scores = knn_scores(train_x[subset], train_y[subset], test_x, k, 2)
            points.append(macro_auroc(scores, test_y)[0])
            pooled.append(bootstrap_aurocs(scores, test_y, n_resamples, seed + s))
        values = np.concatenate(pooled) if pooled else np.array([np.nan])
        low, high = (np.nanpercentile(values, [2.5, 97.5]) if np.isfinite(values).any()
                     else (np.nan, np.nan))
        rows.append({"fraction": fraction, "n_train": size,
                     "auroc": float(np.mean(points)) if points else np.nan,
                     "ci_low": float(low), "ci_high": float(high), "n_seeds": len(points)})
    return rows


def retrieval(features: dict, pairs: pd.DataFrame, tolerance_sd: float,
              phenotypes=RETRIEVAL_PHENOTYPES) -> tuple[list[dict], list[dict]]:
    """ECG → echo-study retrieval on the test split, in the joint space.

    Returns (rows for this model, rows for random retrieval); each row: phenotype,
    p_at_1, mean_rank, n_queries, n_gallery.
    """
    test = pairs[pairs["split"] == "test"]
    studies = test.drop_duplicates("study").set_index("study")
    ecg_index = pd.Series(range(len(features["ecg"])), index=features["ecg"])
    study_index = pd.Series(range(len(features["study"])), index=features["study"])
    studies = studies[studies.index.isin(study_index.index)]
    queries = ecg_labels(test[test["study"].isin(studies.index)])
    if queries.empty:
        return [], []
    similarity = cosine_similarity(features["ecg_joint"][ecg_index[queries.index].to_numpy()],
                                   features["study_joint"][study_index[studies.index].to_numpy()])
    model_rows, random_rows = [], []
    for phenotype in phenotypes:
        tolerance = tolerance_sd * studies[phenotype].std(ddof=1)
        matches = phenotype_matches(queries[phenotype].to_numpy(), studies[phenotype].to_numpy(),
                                    tolerance)
        common = {"phenotype": phenotype, "n_queries": len(queries), "n_gallery": len(studies)}
        p1, rank = retrieval_metrics(similarity, matches)
        model_rows.append({**common, "p_at_1": p1, "mean_rank": rank})
        p1, rank = random_retrieval_metrics(matches)
        random_rows.append({**common, "p_at_1": p1, "mean_rank": rank})
    return model_rows, random_rows


def feature_file_key(path) -> tuple[str, str]:
    """(variant, cohort) of a feature file results/features/{variant}/{cohort}.npz."""
    from pathlib import Path

    path = Path(path)
    return path.parent.name, path.stem


def lvef_table(feature_paths: list[str], pairs_by_cohort: dict[str, pd.DataFrame], k: int,
               balance: bool, n_resamples: int, seed: int) -> pd.DataFrame:
    """Table lvef_knn: model, cohort, auroc, ci_low, ci_high, n_train, n_test."""
    from .features import load_features

    rows = []
    for path in feature_paths:
        variant, cohort = feature_file_key(path)
        result = lvef_knn(load_features(path), pairs_by_cohort[cohort], k, balance,
                          n_resamples, seed)
        rows.append({"model": variant, "cohort": cohort, **result})
    return pd.DataFrame(rows, columns=["model", "cohort", "auroc", "ci_low", "ci_high",
                                       "n_train", "n_test"])


def shd_table(feature_paths: list[str], pairs: pd.DataFrame, fractions: list[float],
              n_seeds: int, k: int, n_resamples: int, seed: int) -> pd.DataFrame:
    """Table shd_scaling: model, fraction, n_train, auroc, ci_low, ci_high, n_seeds."""
    from .features import load_features

    rows = []
    for path in feature_paths:
        variant, _ = feature_file_key(path)
        for row in shd_scaling(load_features(path), pairs, fractions, n_seeds, k, n_resamples,
                               seed):
            rows.append({"model": variant, **row})
    return pd.DataFrame(rows, columns=["model", "fraction", "n_train", "auroc", "ci_low",
                                       "ci_high", "n_seeds"])


def retrieval_table(feature_paths: list[str], pairs: pd.DataFrame,
                    tolerance_sd: float) -> pd.DataFrame:
    """Table retrieval: model, phenotype, p_at_1, mean_rank, n_queries, n_gallery; a
    ``random`` row per phenotype with the exact expectation over random rankings."""
    from .features import load_features

    rows, random_rows = [], []
    for path in feature_paths:
        variant, _ = feature_file_key(path)
        model_rows, random_rows = retrieval(load_features(path), pairs, tolerance_sd)
        rows += [{"model": variant, **row} for row in model_rows]
    rows += [{"model": "random", **row} for row in random_rows]
    return pd.DataFrame(rows, columns=["model", "phenotype", "p_at_1", "mean_rank", "n_queries",
                                       "n_gallery"])


ABLATION_NAMES = {"single_view": "single-view", "mean_pool": "multi-view, mean pool",
                  "cls_pool": "multi-view, CLS pool", "echo2ecg": "multi-view, attention pool"}


def ablation_table(lvef: pd.DataFrame, shd: pd.DataFrame, internal_cohort: str,
                   shd_fraction: float) -> pd.DataFrame:
    """Table ablation: LVEF AUROC (internal cohort) and SHD AUROC at one training fraction,
    for the single-view and multi-view variants."""
    rows = []
    for variant, name in ABLATION_NAMES.items():
        lv = lvef[(lvef["model"] == variant) & (lvef["cohort"] == internal_cohort)]
        sh = shd[(shd["model"] == variant) & np.isclose(shd["fraction"], shd_fraction)]
        if lv.empty and sh.empty:
            continue
        rows.append({"model": variant, "setting": name,
                     "lvef_auroc": lv["auroc"].iloc[0] if len(lv) else np.nan,
                     "lvef_ci_low": lv["ci_low"].iloc[0] if len(lv) else np.nan,
                     "lvef_ci_high": lv["ci_high"].iloc[0] if len(lv) else np.nan,
                     "shd_auroc": sh["auroc"].iloc[0] if len(sh) else np.nan,
                     "shd_ci_low": sh["ci_low"].iloc[0] if len(sh) else np.nan,
                     "shd_ci_high": sh["ci_high"].iloc[0] if len(sh) else np.nan})
    return pd.DataFrame(rows)
