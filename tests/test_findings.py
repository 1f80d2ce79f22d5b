"""findings.csv: each claim of the paper on constructed evidence where it holds or fails."""

import numpy as np
import pandas as pd
import pytest

from echo2ecg.evaluate.findings import FINDINGS_COLUMNS, findings_table, variant_roles, verdict

VARIANTS = {
    "echo2ecg": {"pooling": "attention"},
    "mean_pool": {"pooling": "mean"},
    "cls_pool": {"pooling": "cls"},
    "single_view": {"pooling": "single"},
    "no_align": {"pooling": "attention", "train": False},
}
N_PATIENTS = 90


def lvef_scores(quality: dict[str, float], cohorts=("internal", "external"), seed=0):
    """Per-ECG kNN scores: each model's scores point at the true class with ``quality``
    (0: pure noise); two ECGs per patient."""
    rng = np.random.default_rng(seed)
    patients = np.repeat([f"p{i}" for i in range(N_PATIENTS)], 2)
    labels = rng.integers(0, 3, len(patients))
    noise = rng.random((len(patients), 3))
    frames = []
    for cohort in cohorts:
        for model, q in quality.items():
            scores = noise * (1 - q) + np.eye(3)[labels] * q
            frame = pd.DataFrame(
                {
                    "model": model,
                    "cohort": cohort,
                    "ecg": [f"e{i}" for i in range(len(patients))],
                    "patient": patients,
                    "label": labels,
                }
            )
            for c in range(3):
                frame[f"score_{c}"] = scores[:, c]
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def retrieval_queries(first_rank: dict[str, float], seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for model, rank in first_rank.items():
        for phenotype in ("lvedv", "lvesv", "lvsv", "lvef"):
            ranks = np.clip(np.round(rank + rng.normal(0, 0.3, 60)), 1, 11)
            frames.append(
                pd.DataFrame(
                    {
                        "model": model,
                        "phenotype": phenotype,
                        "ecg": [f"e{i}" for i in range(60)],
                        "patient": np.repeat([f"p{i}" for i in range(30)], 2),
                        "top_hit": (ranks == 1).astype(float),
                        "first_rank": ranks,
                        "random_top_hit": 0.3,
                        "random_rank": 3.0,
                        "n_gallery": 10,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def shd_scores(quality: dict[str, float], n_train=50, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 120)
    frames = []
    for model, q in quality.items():
        for subset in range(3):
            noise = rng.random(120)
            score = noise * (1 - q) + labels * q
            frames.append(
                pd.DataFrame(
                    {
                        "model": model,
                        "fraction": 0.01,
                        "subset": subset,
                        "n_train": n_train,
                        "ecg": [f"e{i}" for i in range(120)],
                        "patient": np.repeat([f"p{i}" for i in range(60)], 2),
                        "label": labels,
                        "score_0": 1 - score,
                        "score_1": score,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def findings(lvef, retrieval, shd):
    return findings_table(
        lvef,
        retrieval,
        shd,
        VARIANTS,
        ["internal", "external"],
        "internal",
        "external",
        0.01,
        5,
        300,
        0,
    )


def test_roles_come_from_pooling_and_training():
    assert variant_roles(VARIANTS) == {
        "method": "echo2ecg",
        "mean_pool": "mean_pool",
        "cls_pool": "cls_pool",
        "single_view": "single_view",
        "unaligned": "no_align",
    }


def test_verdicts():
    assert verdict(0.01, 0.2) == "yes" and verdict(-0.3, -0.01) == "no"
    assert verdict(-0.1, 0.1) == "undetermined" and verdict(np.nan, np.nan) == "undetermined"


def test_every_claim_holds_where_the_evidence_says_so():
    table = findings(
        lvef_scores(
            {
                "echo2ecg": 0.6,
                "mean_pool": 0.3,
                "cls_pool": 0.3,
                "single_view": 0.3,
                "no_align": 0.05,
            }
        ),
        retrieval_queries({"echo2ecg": 1.0, "single_view": 3.0}),
        shd_scores({"echo2ecg": 0.6, "no_align": 0.05}),
    )
    assert list(table.columns) == FINDINGS_COLUMNS
    assert len(table) == 2 + 2 * 3 + 4 * 3 + 1
    assert (table["holds"] == "yes").all(), table[table["holds"] != "yes"]
    assert (table["difference"] > 0).all()
    aligned = table.iloc[0]
    assert (aligned["model"], aligned["versus"], aligned["cohort"]) == (
        "echo2ecg",
        "no_align",
        "internal",
    )
    assert aligned["model_value"] - aligned["versus_value"] == pytest.approx(aligned["difference"])
    assert aligned["n_test"] == 2 * N_PATIENTS and aligned["n_patients"] == N_PATIENTS
    rank = table[table["claim"] == "retrieval of LVEF beats random (mean rank)"].iloc[0]
    assert rank["difference"] == pytest.approx(rank["versus_value"] - rank["model_value"])


def test_claims_fail_or_stay_open_where_the_evidence_says_so():
    table = findings(
        lvef_scores(
            {
                "echo2ecg": 0.05,
                "mean_pool": 0.05,
                "cls_pool": 0.5,
                "single_view": 0.5,
                "no_align": 0.5,
            }
        ),
        retrieval_queries({"echo2ecg": 5.0, "single_view": 5.0}),
        shd_scores({"echo2ecg": 0.05, "no_align": 0.6}),
    )
    by_claim = table.set_index(["claim", "cohort"])["holds"]
    assert by_claim["aligned ECG encoder beats the unaligned one", "internal"] == "no"
    # the same model twice: a difference of exactly 0 proves nothing either way
    assert (
        by_claim["attention pooling is at least as good as mean pooling", "external"]
        == "undetermined"
    )
    assert by_claim["retrieval of LVEF beats random (mean rank)", "internal"] == "no"
    assert (
        by_claim["multi-view retrieves LVEF better than single-view (mean rank)", "internal"]
        == "undetermined"
    )
    assert table.iloc[-1]["holds"] == "no"  # SHD at 1 %


def test_missing_models_and_tiny_subsets_are_undetermined_with_a_note():
    lvef = lvef_scores({"echo2ecg": 0.6, "no_align": 0.05})
    table = findings(
        lvef,
        retrieval_queries({"echo2ecg": 1.0}),
        shd_scores({"echo2ecg": 0.6, "no_align": 0.05}, n_train=5),
    )
    single = table[table["claim"] == "multi-view alignment beats single-view"]
    assert (single["holds"] == "undetermined").all() and single["note"].str.len().gt(0).all()
    assert "same neighbours" in table.iloc[-1]["note"]
    assert table.iloc[-1]["holds"] == "undetermined"


OBJECTIVE_VARIANTS = {
    **VARIANTS,
    "probabilistic": {"pooling": "attention", "objective": "probabilistic"},
    "hierarchical": {"pooling": "attention", "objective": "hierarchical"},
}


def test_other_objectives_have_their_own_roles_and_are_compared_with_the_method():
    roles = variant_roles(OBJECTIVE_VARIANTS)
    assert roles["method"] == "echo2ecg"  # the CLIP attention model, whatever comes after
    assert roles["probabilistic"] == "probabilistic"
    assert roles["hierarchical"] == "hierarchical"
    table = findings_table(
        lvef_scores({"echo2ecg": 0.6, "no_align": 0.05, "probabilistic": 0.6, "hierarchical": 0.1}),
        retrieval_queries({"echo2ecg": 1.0, "probabilistic": 1.0, "hierarchical": 4.0}),
        shd_scores({"echo2ecg": 0.6, "no_align": 0.05}),
        OBJECTIVE_VARIANTS,
        ["internal", "external"],
        "internal",
        "external",
        0.01,
        5,
        300,
        0,
    )
    lvef = table[table["claim"].str.startswith("the CLIP objective is at least as good as")]
    assert len(lvef) == 4  # two objectives, two cohorts
    against = lvef.set_index(["versus", "cohort"])["holds"]
    assert against[("hierarchical", "internal")] == "yes"  # 0.6 against 0.1
    assert against[("probabilistic", "external")] == "undetermined"  # the same scores
    retrieval = table[table["claim"].str.contains("the CLIP objective retrieves")]
    assert len(retrieval) == 8  # two objectives, four phenotypes
    assert (retrieval[retrieval["versus"] == "hierarchical"]["holds"] == "yes").all()
    assert (retrieval["model"] == "echo2ecg").all()
