"""The paper's downstream tables from feature files and pairs (docs/method.md section 7).

Labels attach to ECGs through their pairs: an ECG paired with several studies takes the
mean of their phenotypes (LVEF, volumes) and SHD when any of them shows it. Every
confidence interval resamples **patients** (a patient's ECGs enter and leave a bootstrap
resample together), and every comparison of two models is paired: both are scored on the
same resamples of the same test ECGs.

Each table comes with its per-row evidence, which the findings are computed from:

- LVEF kNN: one row per (model, cohort, test ECG) with the kNN class probabilities;
- SHD data scaling: one row per (model, fraction, subset seed, test ECG) with the score;
- retrieval: one row per (model, phenotype, query ECG) with whether its top hit matched,
  the rank of its first match, and both of these' exact expectations at random.

A row that cannot be computed (an empty or one-class split, a subset too small for k)
keeps its place in the table with empty values and says why in ``note``, and the reason
is logged as a warning. ``evaluation.knn_k`` larger than a reference set a kNN would be
fitted on is an error: the kNN would silently use fewer neighbours than configured.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from echo2ecg.evaluate.metrics import (
    balanced_subset,
    bootstrap_auroc,
    bootstrap_mean,
    cosine_similarity,
    first_match_ranks,
    knn_scores,
    lvef_class,
    macro_auroc,
    paired_auroc_difference,
    percentile_interval,
    phenotype_matches,
    random_first_match,
    resample_weights,
    stratified_subset,
)
from echo2ecg.vocabulary import LVEF_CLASSES

log = logging.getLogger(__name__)

RETRIEVAL_PHENOTYPES = ("lvedv", "lvesv", "lvsv", "lvef")
LVEF_COLUMNS = [
    "model",
    "cohort",
    "auroc",
    "ci_low",
    "ci_high",
    "n_train",
    "n_test",
    "n_test_patients",
    "vs_baseline",
    "vs_baseline_ci_low",
    "vs_baseline_ci_high",
    "note",
]
SHD_COLUMNS = [
    "model",
    "fraction",
    "n_train",
    "auroc",
    "ci_low",
    "ci_high",
    "n_seeds",
    "n_test",
    "n_test_patients",
    "note",
]
RETRIEVAL_COLUMNS = [
    "model",
    "phenotype",
    "p_at_1",
    "p_at_1_ci_low",
    "p_at_1_ci_high",
    "mean_rank",
    "mean_rank_ci_low",
    "mean_rank_ci_high",
    "n_queries",
    "n_patients",
    "n_gallery",
    "p_at_1_vs_random",
    "p_at_1_vs_random_ci_low",
    "p_at_1_vs_random_ci_high",
    "rank_gain_vs_random",
    "rank_gain_vs_random_ci_low",
    "rank_gain_vs_random_ci_high",
    "rank_gain_vs_baseline",
    "rank_gain_vs_baseline_ci_low",
    "rank_gain_vs_baseline_ci_high",
    "note",
]


def ecg_labels(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per ECG (index): patient, split, mean LVEF/volumes over its paired studies, SHD if
    any study has it."""
    return pairs.groupby("ecg").agg(
        patient=("patient", "first"),
        split=("split", "first"),
        lvef=("lvef", "mean"),
        lvedv=("lvedv", "mean"),
        lvesv=("lvesv", "mean"),
        lvsv=("lvsv", "mean"),
        shd=("shd", "max"),
    )


def _split_rows(features: dict, labels: pd.DataFrame, column: str, split: str):
    """(features (n, D), label values (n,), patients (n,), ECG ids (n,)) of a split's ECGs
    with a known ``column``, in ECG-id order (the same for every model)."""
    part = labels[(labels["split"] == split) & labels[column].notna()].sort_index()
    index = pd.Series(range(len(features["ecg"])), index=features["ecg"])
    rows = index[part.index].to_numpy()
    return (
        features["ecg_features"][rows],
        part[column].to_numpy(),
        part["patient"].to_numpy(),
        part.index.to_numpy(),
    )


# --------------------------------------------------------------------------- LVEF


def _class_names(classes) -> str:
    return " or ".join(LVEF_CLASSES[c] for c in classes)


def lvef_scores(
    features: dict, pairs: pd.DataFrame, k: int, balance: bool, seed: int, cohort: str = ""
) -> tuple[pd.DataFrame, int, str]:
    """3-class LVEF kNN on the ECG features: the train split as reference set (cut to
    equal class counts with ``balance``), the test split scored.

    Returns (one row per test ECG: ecg, patient, label, score_0..score_2; the reference
    set's size; a note, empty unless something is missing). No scores (an empty frame)
    when the reference set or the test split is empty, and the note says which. Raises
    ValueError when ``k`` exceeds the reference set.
    """
    labels = ecg_labels(pairs)
    train_x, train_lvef, _, _ = _split_rows(features, labels, "lvef", "train")
    test_x, test_lvef, patients, ecgs = _split_rows(features, labels, "lvef", "test")
    train_y, test_y = lvef_class(train_lvef), lvef_class(test_lvef)
    where = f" in cohort {cohort}" if cohort else ""
    n_unbalanced = len(train_y)
    if balance and len(train_y):
        keep = balanced_subset(train_y, seed)
        train_x, train_y = train_x[keep], train_y[keep]
    columns = ["ecg", "patient", "label", "score_0", "score_1", "score_2"]
    empty = [name for name, y in (("train", train_y), ("test", test_y)) if len(y) == 0]
    if empty:
        note = f"no {' and no '.join(empty)} ECGs with an LVEF{where}"
        return pd.DataFrame(columns=columns), len(train_y), note
    if k > len(train_y):
        size, remedy = f"{len(train_y)} train ECGs", "lower evaluation.knn_k"
        if balance:
            size += f", {len(train_y) // len(np.unique(train_y))} per class after balancing"
            if n_unbalanced >= k:
                remedy += " or set evaluation.balance_lvef_train: false"
        raise ValueError(
            f"evaluation.knn_k = {k} is larger than the LVEF reference set"
            f"{where} ({size}); {remedy}"
        )
    # the kNN never predicts a class it has no reference for: that class's AUROC is 0.5
    absent = sorted(set(range(3)) - set(train_y.tolist()))
    note = f"the train split holds no {_class_names(absent)} ECGs" if absent else ""
    scores = knn_scores(train_x, train_y, test_x, k, 3)
    frame = pd.DataFrame({"ecg": ecgs, "patient": patients, "label": test_y})
    for c in range(3):
        frame[f"score_{c}"] = scores[:, c]
    return frame[columns], len(train_y), note


def _score_matrix(frame: pd.DataFrame) -> np.ndarray:
    return frame[[c for c in frame.columns if c.startswith("score_")]].to_numpy(float)


def _all_classes(frame: pd.DataFrame, n_classes: int) -> bool:
    return len(frame) > 0 and frame["label"].nunique() == n_classes


def auroc_point(frame: pd.DataFrame, n_classes: int) -> float:
    """Macro AUROC of a score frame (NaN when a class is missing from the test set)."""
    if not _all_classes(frame, n_classes):
        return np.nan
    return float(macro_auroc(_score_matrix(frame), frame["label"].to_numpy(int))[0])


def auroc_summary(
    frame: pd.DataFrame, n_classes: int, n_resamples: int, seed: int
) -> tuple[float, float, float]:
    """Macro AUROC of a score frame with its patient-level bootstrap CI (NaN when a class
    is missing from the test set)."""
    if not _all_classes(frame, n_classes):
        return np.nan, np.nan, np.nan
    return bootstrap_auroc(
        _score_matrix(frame),
        frame["label"].to_numpy(int),
        n_resamples,
        seed,
        groups=frame["patient"].to_numpy(),
    )


def paired_auroc_summary(
    frame: pd.DataFrame, other: pd.DataFrame, n_classes: int, n_resamples: int, seed: int
) -> tuple[float, float, float]:
    """AUROC(frame) − AUROC(other) on the same test ECGs, with a paired patient-level CI."""
    if (
        not _all_classes(frame, n_classes)
        or len(other) != len(frame)
        or not (frame["ecg"].to_numpy() == other["ecg"].to_numpy()).all()
    ):
        return np.nan, np.nan, np.nan
    return paired_auroc_difference(
        _score_matrix(frame),
        _score_matrix(other),
        frame["label"].to_numpy(int),
        n_resamples,
        seed,
        groups=frame["patient"].to_numpy(),
    )


def lvef_table(
    features: dict[tuple[str, str], dict],
    pairs_by_cohort: dict[str, pd.DataFrame],
    k: int,
    balance: bool,
    n_resamples: int,
    seed: int,
    baseline: str | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table lvef_knn (LVEF_COLUMNS) and its per-ECG scores.

    ``features`` maps (model, cohort) to a loaded feature file. ``vs_baseline`` is the
    model's AUROC minus the ``baseline`` model's on the same cohort, with a paired
    patient-level bootstrap CI (empty for the baseline itself or without one). A row
    without an AUROC (no train or test ECGs, a class missing from the test split) says
    why in ``note``, as does one whose reference set lacks a class.
    """
    scores, n_train, notes = {}, {}, {}
    for (model, cohort), feature in features.items():
        scores[model, cohort], n_train[model, cohort], notes[model, cohort] = lvef_scores(
            feature, pairs_by_cohort[cohort], k, balance, seed, cohort
        )
    rows = []
    for (model, cohort), frame in scores.items():
        auroc, low, high = auroc_summary(frame, 3, n_resamples, seed)
        note = notes[model, cohort]
        if len(frame) and not _all_classes(frame, 3):
            missing = sorted(set(range(3)) - set(frame["label"].astype(int)))
            note = "; ".join(
                filter(None, [note, f"the test split holds no {_class_names(missing)} ECGs"])
            )
        if note:
            log.warning("lvef_knn, model %s, cohort %s: %s", model, cohort, note)
        versus = (np.nan, np.nan, np.nan)
        if baseline and model != baseline and (baseline, cohort) in scores:
            versus = paired_auroc_summary(frame, scores[baseline, cohort], 3, n_resamples, seed)
        rows.append(
            {
                "model": model,
                "cohort": cohort,
                "auroc": auroc,
                "ci_low": low,
                "ci_high": high,
                "n_train": n_train[model, cohort],
                "n_test": len(frame),
                "n_test_patients": frame["patient"].nunique(),
                "vs_baseline": versus[0],
                "vs_baseline_ci_low": versus[1],
                "vs_baseline_ci_high": versus[2],
                "note": note,
            }
        )
    per_ecg = [
        frame.assign(model=model, cohort=cohort) for (model, cohort), frame in scores.items()
    ]
    per_ecg = pd.concat(per_ecg, ignore_index=True) if per_ecg else pd.DataFrame()
    order = ["model", "cohort"] + [c for c in per_ecg.columns if c not in ("model", "cohort")]
    return pd.DataFrame(rows, columns=LVEF_COLUMNS), per_ecg[order] if len(per_ecg) else per_ecg


# --------------------------------------------------------------------------- SHD scaling


def shd_scores(
    features: dict, pairs: pd.DataFrame, fractions: list[float], n_seeds: int, k: int, seed: int
) -> tuple[pd.DataFrame, dict[float, int]]:
    """Binary SHD kNN trained on stratified fractions of the train split, ``n_seeds``
    subsets per fraction (seeds seed, seed + 1, ...), each scored on the whole test split.

    Returns (one row per fraction, subset seed and test ECG: fraction, subset, n_train
    (the subset's size), ecg, patient, label, score_0, score_1; the subset size per
    fraction). No scores when the train or the test split is empty. Raises ValueError
    when ``k`` exceeds the train split (every subset has at least k ECGs otherwise).
    """
    labels = ecg_labels(pairs)
    train_x, train_y, _, _ = _split_rows(features, labels, "shd", "train")
    test_x, test_y, patients, ecgs = _split_rows(features, labels, "shd", "test")
    train_y, test_y = train_y.astype(int), test_y.astype(int)
    if len(test_y) and 0 < len(train_y) < k:
        raise ValueError(
            f"evaluation.knn_k = {k} is larger than the SHD training set "
            f"({len(train_y)} train ECGs with an SHD label), which every "
            "data-scaling subset is drawn from; lower evaluation.knn_k"
        )
    frames, sizes = [], {}
    for fraction in fractions:
        sizes[fraction] = 0
        if len(train_y) == 0 or len(test_y) == 0:
            continue
        for s in range(n_seeds):
            subset = stratified_subset(train_y, fraction, seed + s, minimum=k)
            sizes[fraction] = len(subset)
            scores = knn_scores(train_x[subset], train_y[subset], test_x, k, 2)
            frames.append(
                pd.DataFrame(
                    {
                        "fraction": fraction,
                        "subset": s,
                        "n_train": len(subset),
                        "ecg": ecgs,
                        "patient": patients,
                        "label": test_y,
                        "score_0": scores[:, 0],
                        "score_1": scores[:, 1],
                    }
                )
            )
    columns = ["fraction", "subset", "n_train", "ecg", "patient", "label", "score_0", "score_1"]
    return (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns),
        sizes,
    )


def _subset_aurocs(frame: pd.DataFrame, weights: np.ndarray | None) -> np.ndarray:
    """(n_subsets, B) AUROCs of each subset's scores under the row weights (one unweighted
    row with ``weights`` None); every subset scores the same test ECGs in the same order."""
    out = []
    for _, part in frame.groupby("subset", sort=True):
        out.append(macro_auroc(_score_matrix(part), part["label"].to_numpy(int), weights))
    return np.stack(out)


def mean_subset_auroc(
    frame: pd.DataFrame,
    n_resamples: int | None = None,
    seed: int = 0,
    other: pd.DataFrame | None = None,
):
    """The mean over subsets of the AUROC (minus ``other``'s mean, when given); with
    ``n_resamples``, (that, ci_low, ci_high) with a patient-level bootstrap CI: each
    resample of the test patients scores every subset (of both models), and the CI is
    over the resamples' means."""
    first = frame[frame["subset"] == frame["subset"].min()]
    if first["label"].nunique() < 2:
        return np.nan if n_resamples is None else (np.nan, np.nan, np.nan)
    if n_resamples is None:
        point = _subset_aurocs(frame, None).mean()
        return float(point - (_subset_aurocs(other, None).mean() if other is not None else 0.0))
    weights = resample_weights(len(first), n_resamples, seed, first["patient"].to_numpy())
    point = _subset_aurocs(frame, None).mean()
    resampled = _subset_aurocs(frame, weights).mean(axis=0)
    if other is not None:
        point -= _subset_aurocs(other, None).mean()
        resampled = resampled - _subset_aurocs(other, weights).mean(axis=0)
    return (float(point), *percentile_interval(resampled))


def shd_table(
    features: dict[str, dict],
    pairs: pd.DataFrame,
    fractions: list[float],
    n_seeds: int,
    k: int,
    n_resamples: int,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table shd_scaling (SHD_COLUMNS) and its per-ECG scores; ``features`` maps a model
    to its feature file of the SHD cohort.

    ``auroc`` is the mean over the subsets of a fraction. When a subset holds no more than
    k ECGs, every query has the same k neighbours and the AUROC says nothing (it is
    exactly 0.5), as it does when the train split holds one class only: such a row has
    no AUROC and says so in ``note``, as does one without train or test ECGs or with a
    one-class test split.
    """
    labels = ecg_labels(pairs)
    known = labels[labels["shd"].notna()]
    n_classes = {
        split: known.loc[known["split"] == split, "shd"].nunique() for split in ("train", "test")
    }
    empty = [split for split, n in n_classes.items() if n == 0]
    rows, per_ecg = [], []
    for model, feature in features.items():
        frame, sizes = shd_scores(feature, pairs, fractions, n_seeds, k, seed)
        per_ecg.append(frame.assign(model=model))
        for fraction in fractions:
            part = frame[np.isclose(frame["fraction"].astype(float), fraction)]
            n_train, note = sizes[fraction], ""
            auroc = low = high = np.nan
            if empty:
                note = f"no {' and no '.join(empty)} ECGs with an SHD label"
            elif n_classes["train"] < 2:
                note = "the train split holds one class only"
            elif n_train <= k:
                note = f"{n_train} training ECGs for k = {k}: every query has the same neighbours"
            elif n_classes["test"] < 2:
                note = "the test split holds one class only"
            else:
                auroc, low, high = mean_subset_auroc(part, n_resamples, seed)
            if note:
                log.warning("shd_scaling, model %s, fraction %g: %s", model, fraction, note)
            first = part[part["subset"] == 0] if len(part) else part
            rows.append(
                {
                    "model": model,
                    "fraction": fraction,
                    "n_train": n_train,
                    "auroc": auroc,
                    "ci_low": low,
                    "ci_high": high,
                    "n_seeds": part["subset"].nunique() if len(part) else 0,
                    "n_test": len(first),
                    "n_test_patients": first["patient"].nunique() if len(first) else 0,
                    "note": note,
                }
            )
    per_ecg = pd.concat(per_ecg, ignore_index=True) if per_ecg else pd.DataFrame()
    if len(per_ecg):
        per_ecg = per_ecg[["model"] + [c for c in per_ecg.columns if c != "model"]]
    return pd.DataFrame(rows, columns=SHD_COLUMNS), per_ecg


# --------------------------------------------------------------------------- retrieval


def retrieval_queries(
    features: dict, pairs: pd.DataFrame, tolerance_sd: float, phenotypes=RETRIEVAL_PHENOTYPES
) -> pd.DataFrame:
    """ECG → echo-study retrieval on the test split, in the joint space.

    Per phenotype, the gallery is every test study with view embeddings and a known
    value of it; the queries are the test ECGs paired with these studies whose value is
    known too (a query's value is the mean over its paired studies): a study or query of
    unknown phenotype can be judged neither a match nor a miss. A study matches when its
    phenotype lies within ``tolerance_sd`` SDs (over the gallery) of the query's. One row
    per (phenotype, query): phenotype, ecg, patient, top_hit (0/1), first_rank (1-based;
    n_gallery + 1 without a match), random_top_hit and random_rank (their exact
    expectations over random rankings), n_gallery. A phenotype that cannot be scored has
    no rows (see :func:`retrieval_table`).
    """
    return _retrieval(features, pairs, tolerance_sd, phenotypes)[0]


def _retrieval(
    features: dict, pairs: pd.DataFrame, tolerance_sd: float, phenotypes
) -> tuple[pd.DataFrame, dict[str, str], dict[str, int]]:
    """(:func:`retrieval_queries`'s rows; phenotype → why it has none; phenotype → gallery
    size)."""
    columns = [
        "phenotype",
        "ecg",
        "patient",
        "top_hit",
        "first_rank",
        "random_top_hit",
        "random_rank",
        "n_gallery",
    ]
    test = pairs[pairs["split"] == "test"]
    studies = test.drop_duplicates("study").set_index("study")
    ecg_index = pd.Series(range(len(features["ecg"])), index=features["ecg"])
    study_index = pd.Series(range(len(features["study"])), index=features["study"])
    studies = studies[studies.index.isin(study_index.index)].sort_index()
    queries = ecg_labels(test[test["study"].isin(studies.index)]).sort_index()
    if queries.empty:
        reason = (
            "no test ECGs paired with an echo study in this cohort"
            if test.empty
            else "no test study has view embeddings"
        )
        return (
            pd.DataFrame(columns=columns),
            dict.fromkeys(phenotypes, reason),
            dict.fromkeys(phenotypes, len(studies)),
        )
    similarity = cosine_similarity(
        features["ecg_joint"][ecg_index[queries.index].to_numpy()],
        features["study_joint"][study_index[studies.index].to_numpy()],
    )
    frames, notes, sizes = [], {}, {}
    for phenotype in phenotypes:
        # every study of known phenotype has a query of known phenotype: its own ECGs
        known = queries[phenotype].notna().to_numpy()
        shown = studies[phenotype].notna().to_numpy()
        sizes[phenotype] = int(shown.sum())
        if sizes[phenotype] < 2:
            notes[phenotype] = (
                f"fewer than 2 test studies with a known {phenotype}: no SD "
                "to set the match tolerance"
            )
            continue
        part, gallery = queries[known], studies[shown]
        tolerance = tolerance_sd * gallery[phenotype].std(ddof=1)
        matches = phenotype_matches(
            part[phenotype].to_numpy(), gallery[phenotype].to_numpy(), tolerance
        )
        top_hit, first_rank = first_match_ranks(similarity[np.ix_(known, shown)], matches)
        random_top_hit, random_rank = random_first_match(matches)
        frames.append(
            pd.DataFrame(
                {
                    "phenotype": phenotype,
                    "ecg": part.index.to_numpy(),
                    "patient": part["patient"].to_numpy(),
                    "top_hit": top_hit,
                    "first_rank": first_rank,
                    "random_top_hit": random_top_hit,
                    "random_rank": random_rank,
                    "n_gallery": len(gallery),
                }
            )
        )
    frame = (
        pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    )
    return frame, notes, sizes


def _mean_ci(values: np.ndarray, patients: np.ndarray, n_resamples: int, seed: int):
    if not len(values):
        return np.nan, np.nan, np.nan
    return bootstrap_mean(values, n_resamples, seed, groups=patients)


def retrieval_table(
    features: dict[str, dict],
    pairs: pd.DataFrame,
    tolerance_sd: float,
    n_resamples: int,
    seed: int,
    baseline: str | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table retrieval (RETRIEVAL_COLUMNS) and its per-query rows; ``features`` maps a
    model to its feature file of the retrieval cohort.

    Per model and phenotype: P@1 and mean rank with patient-level CIs; their paired
    differences from random retrieval's exact expectation (``p_at_1_vs_random``;
    ``rank_gain_vs_random`` = random's expected rank − the model's, so positive is
    better) and from the ``baseline`` model (``rank_gain_vs_baseline``). A ``random``
    row per phenotype gives the expectation itself. A phenotype that cannot be scored (no
    test ECG paired with a study, no test study with view embeddings, fewer than 2 test
    studies of known value) keeps its rows, empty but for ``note``, which says why.
    """
    per_query, notes, galleries = {}, {}, {}
    for model, feature in features.items():
        per_query[model], notes[model], galleries[model] = _retrieval(
            feature, pairs, tolerance_sd, RETRIEVAL_PHENOTYPES
        )
    rows, random_rows = [], {}
    for model, frame in per_query.items():
        for phenotype in RETRIEVAL_PHENOTYPES:
            if phenotype in notes[model]:
                note = notes[model][phenotype]
                log.warning("retrieval, model %s, %s: %s", model, phenotype, note)
                empty = {
                    "phenotype": phenotype,
                    "n_queries": 0,
                    "n_patients": 0,
                    "n_gallery": galleries[model][phenotype],
                    "note": note,
                }
                rows.append({"model": model, **empty})
                random_rows.setdefault(phenotype, {"model": "random", **empty})
                continue
            part = frame[frame["phenotype"] == phenotype]
            patients = part["patient"].to_numpy()
            p1 = _mean_ci(part["top_hit"].to_numpy(), patients, n_resamples, seed)
            rank = _mean_ci(part["first_rank"].to_numpy(), patients, n_resamples, seed)
            p1_random = _mean_ci(
                (part["top_hit"] - part["random_top_hit"]).to_numpy(), patients, n_resamples, seed
            )
            gain_random = _mean_ci(
                (part["random_rank"] - part["first_rank"]).to_numpy(), patients, n_resamples, seed
            )
            gain_baseline = (np.nan, np.nan, np.nan)
            if baseline and model != baseline and baseline in per_query:
                other = per_query[baseline]
                other = other[other["phenotype"] == phenotype]
                if (
                    len(other) == len(part)
                    and (other["ecg"].to_numpy() == part["ecg"].to_numpy()).all()
                ):
                    gain_baseline = _mean_ci(
                        (other["first_rank"].to_numpy() - part["first_rank"].to_numpy()),
                        patients,
                        n_resamples,
                        seed,
                    )
            common = {
                "phenotype": phenotype,
                "n_queries": len(part),
                "n_patients": part["patient"].nunique(),
                "n_gallery": int(part["n_gallery"].iloc[0]),
                "note": "",
            }
            rows.append(
                {
                    "model": model,
                    **common,
                    **_triple("p_at_1", p1),
                    **_triple("mean_rank", rank),
                    **_triple("p_at_1_vs_random", p1_random),
                    **_triple("rank_gain_vs_random", gain_random),
                    **_triple("rank_gain_vs_baseline", gain_baseline),
                }
            )
            random_rows[phenotype] = {
                "model": "random",
                **common,
                **_triple(
                    "p_at_1",
                    _mean_ci(part["random_top_hit"].to_numpy(), patients, n_resamples, seed),
                ),
                **_triple(
                    "mean_rank",
                    _mean_ci(part["random_rank"].to_numpy(), patients, n_resamples, seed),
                ),
            }
    frames = [frame.assign(model=model) for model, frame in per_query.items() if len(frame)]
    first = next(iter(per_query.values()), pd.DataFrame())
    # without any rows the evidence keeps its header, which its readers look up
    queries = (
        pd.concat(frames, ignore_index=True)
        if frames
        else first.assign(model=pd.Series(dtype=object))
    )
    if len(queries.columns):
        queries = queries[["model"] + [c for c in queries.columns if c != "model"]]
    table = pd.DataFrame(rows + list(random_rows.values()), columns=RETRIEVAL_COLUMNS)
    return table, queries


def _triple(name: str, values: tuple[float, float, float]) -> dict:
    return {name: values[0], f"{name}_ci_low": values[1], f"{name}_ci_high": values[2]}


# --------------------------------------------------------------------------- ablation

ABLATION_NAMES = {
    "single": "single-view",
    "mean": "multi-view, mean pool",
    "cls": "multi-view, CLS pool",
    "attention": "multi-view, attention pool",
}
OBJECTIVE_SUFFIXES = {  # the paper's objective has none
    "clip": "",
    "probabilistic": ", PCME++ (EchoingECG)",
    "hierarchical": ", hierarchical (Echo-Enhanced ECG)",
}


def ablation_table(
    lvef: pd.DataFrame,
    shd: pd.DataFrame,
    variants: dict[str, dict],
    internal_cohort: str,
    shd_fraction: float,
) -> pd.DataFrame:
    """Table ablation: LVEF AUROC (internal cohort) and SHD AUROC at one training fraction,
    for every trained variant, named by its pooling (``variants`` as in the config)."""
    rows = []
    for variant, spec in variants.items():
        if not spec.get("train", True):
            continue
        lv = lvef[(lvef["model"] == variant) & (lvef["cohort"] == internal_cohort)]
        sh = shd[(shd["model"] == variant) & np.isclose(shd["fraction"], shd_fraction)]
        if lv.empty and sh.empty:
            continue
        rows.append(
            {
                "model": variant,
                "setting": ABLATION_NAMES[spec["pooling"]]
                + OBJECTIVE_SUFFIXES[spec.get("objective", "clip")],
                "lvef_auroc": lv["auroc"].iloc[0] if len(lv) else np.nan,
                "lvef_ci_low": lv["ci_low"].iloc[0] if len(lv) else np.nan,
                "lvef_ci_high": lv["ci_high"].iloc[0] if len(lv) else np.nan,
                "shd_auroc": sh["auroc"].iloc[0] if len(sh) else np.nan,
                "shd_ci_low": sh["ci_low"].iloc[0] if len(sh) else np.nan,
                "shd_ci_high": sh["ci_high"].iloc[0] if len(sh) else np.nan,
            }
        )
    return pd.DataFrame(rows)
