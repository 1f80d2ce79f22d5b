"""The paper's claims, checked on the user's own cohort (``results/tables/findings.csv``).

One row per claim and cohort (and phenotype, for retrieval), computed from the per-row
evidence of the evaluation tables (see :mod:`echo2ecg.evaluate.downstream`): the two numbers
compared, their paired difference oriented so that a positive value is in the claim's
favour, its 95 % CI from a paired patient-level bootstrap, and a verdict:

- ``yes``: the whole CI lies above 0;
- ``no``: the whole CI lies below 0 (the data say the opposite);
- ``undetermined``: the CI spans 0, or the claim cannot be computed (a model or a class
  is missing); ``note`` says which.

The models a claim compares are found by their role in the config's ``variants``: the
method (attention pooling, trained with the CLIP objective), the unaligned encoder
(``train: false``), the single-view, mean-pool and CLS-pool ablations, and the two other
seed systems' objectives (``probabilistic``, ``hierarchical``), which the method is
compared with on LVEF and retrieval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from echo2ecg.evaluate.downstream import auroc_point, mean_subset_auroc, paired_auroc_summary
from echo2ecg.evaluate.metrics import bootstrap_mean
from echo2ecg.vocabulary import OBJECTIVES

# the verdict next to its claim: what a reader looks for first
FINDINGS_COLUMNS = [
    "claim",
    "cohort",
    "holds",
    "metric",
    "model",
    "versus",
    "model_value",
    "versus_value",
    "difference",
    "ci_low",
    "ci_high",
    "n_test",
    "n_patients",
    "note",
]
ROLES = ("method", "unaligned", "single_view", "mean_pool", "cls_pool", *OBJECTIVES[1:])
OBJECTIVE_NAMES = {
    "probabilistic": "the probabilistic objective (EchoingECG's PCME++)",
    "hierarchical": "the hierarchical objective (Echo-Enhanced ECG)",
}


def variant_roles(variants: dict[str, dict]) -> dict[str, str]:
    """Role → variant name, from the config's ``variants`` (the first match of each):
    method = attention pooling, trained with the CLIP objective; unaligned = not trained;
    single_view, mean_pool, cls_pool = trained with that pooling and the CLIP objective;
    probabilistic, hierarchical = trained with that objective."""
    roles: dict[str, str] = {}
    for name, spec in variants.items():
        objective = spec.get("objective", "clip")
        if not spec.get("train", True):
            role = "unaligned"
        elif objective != "clip":
            role = objective
        else:
            role = {
                "attention": "method",
                "single": "single_view",
                "mean": "mean_pool",
                "cls": "cls_pool",
            }[spec["pooling"]]
        roles.setdefault(role, name)
    return roles


def verdict(low: float, high: float) -> str:
    """yes (CI above 0), no (CI below 0) or undetermined (spans 0, or not computed)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "undetermined"
    if low > 0:
        return "yes"
    return "no" if high < 0 else "undetermined"


def _row(
    claim,
    cohort,
    metric,
    model,
    versus,
    model_value,
    versus_value,
    difference,
    n_test,
    n_patients,
    note="",
) -> dict:
    point, low, high = difference
    if not np.isfinite(point) and not note:
        note = "not computed: a model or a class is missing"
    return {
        "claim": claim,
        "cohort": cohort,
        "metric": metric,
        "model": model,
        "versus": versus,
        "model_value": model_value,
        "versus_value": versus_value,
        "difference": point,
        "ci_low": low,
        "ci_high": high,
        "n_test": n_test,
        "n_patients": n_patients,
        "holds": verdict(low, high),
        "note": note,
    }


_MISSING = (np.nan, np.nan, np.nan)


def _lvef_claim(
    scores: pd.DataFrame,
    claim: str,
    cohort: str,
    model: str | None,
    versus: str | None,
    n_resamples: int,
    seed: int,
) -> dict:
    def frame(name):
        if name is None:
            return pd.DataFrame(columns=scores.columns)
        return scores[(scores["model"] == name) & (scores["cohort"] == cohort)].reset_index(
            drop=True
        )

    ours, theirs = frame(model), frame(versus)
    value, other = auroc_point(ours, 3), auroc_point(theirs, 3)
    difference = (
        paired_auroc_summary(ours, theirs, 3, n_resamples, seed)
        if len(ours) and len(theirs)
        else _MISSING
    )
    return _row(
        claim,
        cohort,
        "LVEF kNN AUROC",
        model or "",
        versus or "",
        value,
        other,
        difference,
        len(ours),
        ours["patient"].nunique() if len(ours) else 0,
    )


def _retrieval_rows(
    queries: pd.DataFrame, roles: dict, cohort: str, n_resamples: int, seed: int
) -> list[dict]:
    rows = []
    method, single = roles.get("method"), roles.get("single_view")
    ours_all = queries[queries["model"] == method] if method else queries.iloc[:0]
    for phenotype in dict.fromkeys(queries["phenotype"]):
        ours = ours_all[ours_all["phenotype"] == phenotype].reset_index(drop=True)
        patients = ours["patient"].to_numpy()
        n, n_patients = len(ours), ours["patient"].nunique()

        def mean_difference(values, patients=patients, n=n):  # this phenotype's queries
            return bootstrap_mean(values, n_resamples, seed, groups=patients) if n else _MISSING

        label = phenotype.upper()
        rows.append(
            _row(
                f"retrieval of {label} beats random (P@1)",
                cohort,
                f"P@1 {label}",
                method or "",
                "random",
                ours["top_hit"].mean(),
                ours["random_top_hit"].mean(),
                mean_difference((ours["top_hit"] - ours["random_top_hit"]).to_numpy()),
                n,
                n_patients,
            )
        )
        rows.append(
            _row(
                f"retrieval of {label} beats random (mean rank)",
                cohort,
                f"mean rank {label}",
                method or "",
                "random",
                ours["first_rank"].mean(),
                ours["random_rank"].mean(),
                mean_difference((ours["random_rank"] - ours["first_rank"]).to_numpy()),
                n,
                n_patients,
            )
        )
        comparisons = [(f"multi-view retrieves {label} better than single-view", single)]
        comparisons += [
            (f"the CLIP objective retrieves {label} better than {OBJECTIVE_NAMES[role]}", other)
            for role in OBJECTIVES[1:]
            if (other := roles.get(role))
        ]
        for claim, other in comparisons:
            theirs = (
                queries[
                    (queries["model"] == other) & (queries["phenotype"] == phenotype)
                ].reset_index(drop=True)
                if other
                else queries.iloc[:0]
            )
            paired = (
                n
                and len(theirs) == n
                and (theirs["ecg"].to_numpy() == ours["ecg"].to_numpy()).all()
            )
            rows.append(
                _row(
                    f"{claim} (mean rank)",
                    cohort,
                    f"mean rank {label}",
                    method or "",
                    other or "",
                    ours["first_rank"].mean(),
                    theirs["first_rank"].mean() if len(theirs) else np.nan,
                    mean_difference((theirs["first_rank"] - ours["first_rank"]).to_numpy())
                    if paired
                    else _MISSING,
                    n,
                    n_patients,
                )
            )
    return rows


def _shd_row(
    scores: pd.DataFrame,
    roles: dict,
    cohort: str,
    fraction: float,
    k: int,
    n_resamples: int,
    seed: int,
) -> dict:
    method, unaligned = roles.get("method"), roles.get("unaligned")

    def part(name):
        if name is None or scores.empty:
            return scores.iloc[:0]
        chosen = scores[
            (scores["model"] == name) & np.isclose(scores["fraction"].astype(float), fraction)
        ]
        return chosen.reset_index(drop=True)

    ours, theirs = part(method), part(unaligned)
    first = ours[ours["subset"] == 0]
    common = (
        f"aligned beats unaligned on SHD at {fraction:g} of the training set",
        cohort,
        "SHD kNN AUROC",
        method or "",
        unaligned or "",
    )
    counts = (len(first), first["patient"].nunique())
    if len(ours) and int(ours["n_train"].iloc[0]) <= k:
        return _row(
            *common,
            np.nan,
            np.nan,
            _MISSING,
            *counts,
            note=f"{int(ours['n_train'].iloc[0])} training ECGs for k = {k}: every "
            "query has the same neighbours",
        )
    if not (len(ours) and len(theirs)):
        return _row(*common, np.nan, np.nan, _MISSING, *counts)
    return _row(
        *common,
        mean_subset_auroc(ours),
        mean_subset_auroc(theirs),
        mean_subset_auroc(ours, n_resamples, seed, other=theirs),
        *counts,
    )


def findings_table(
    lvef_scores: pd.DataFrame,
    retrieval_queries: pd.DataFrame,
    shd_scores: pd.DataFrame,
    variants: dict[str, dict],
    lvef_cohorts: list[str],
    retrieval_cohort: str,
    shd_cohort: str,
    shd_fraction: float,
    k: int,
    n_resamples: int,
    seed: int,
    external_models: list[str] | tuple[str, ...] = (),
) -> pd.DataFrame:
    """Table findings (FINDINGS_COLUMNS): one row per claim of the paper (see the module
    docstring), in the order: alignment on LVEF (each cohort), the method against each of
    ``external_models`` (other models' features, evaluation.external_features) on LVEF
    (each cohort), multi- vs single-view and
    attention vs mean and CLS pooling on LVEF (each cohort), the CLIP objective against
    each other objective present on LVEF (each cohort), retrieval against random, against
    single-view and against each other objective (each phenotype), and SHD at
    ``shd_fraction``."""
    roles = variant_roles(variants)
    method = roles.get("method")
    rows = []
    for cohort in lvef_cohorts:
        rows.append(
            _lvef_claim(
                lvef_scores,
                "aligned ECG encoder beats the unaligned one",
                cohort,
                method,
                roles.get("unaligned"),
                n_resamples,
                seed,
            )
        )
    for name in external_models:
        for cohort in lvef_cohorts:
            rows.append(
                _lvef_claim(
                    lvef_scores,
                    f"the aligned ECG encoder beats {name}'s features",
                    cohort,
                    method,
                    name,
                    n_resamples,
                    seed,
                )
            )
    for cohort in lvef_cohorts:
        rows.append(
            _lvef_claim(
                lvef_scores,
                "multi-view alignment beats single-view",
                cohort,
                method,
                roles.get("single_view"),
                n_resamples,
                seed,
            )
        )
        rows.append(
            _lvef_claim(
                lvef_scores,
                "attention pooling is at least as good as mean pooling",
                cohort,
                method,
                roles.get("mean_pool"),
                n_resamples,
                seed,
            )
        )
        rows.append(
            _lvef_claim(
                lvef_scores,
                "attention pooling is at least as good as CLS pooling",
                cohort,
                method,
                roles.get("cls_pool"),
                n_resamples,
                seed,
            )
        )
    for role in OBJECTIVES[1:]:
        if role not in roles:
            continue
        for cohort in lvef_cohorts:
            rows.append(
                _lvef_claim(
                    lvef_scores,
                    f"the CLIP objective is at least as good as {OBJECTIVE_NAMES[role]}",
                    cohort,
                    method,
                    roles[role],
                    n_resamples,
                    seed,
                )
            )
    rows += _retrieval_rows(retrieval_queries, roles, retrieval_cohort, n_resamples, seed)
    rows.append(_shd_row(shd_scores, roles, shd_cohort, shd_fraction, k, n_resamples, seed))
    return pd.DataFrame(rows, columns=FINDINGS_COLUMNS)
