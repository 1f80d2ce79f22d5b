import json
import logging

import numpy as np
import pandas as pd
import pytest

from echo2ecg.evaluate.downstream import (
    ablation_table,
    ecg_labels,
    lvef_table,
    retrieval_table,
    shd_table,
)
from echo2ecg.evaluate.metrics import lvef_class
from echo2ecg.report.provenance import file_checksum, table_provenance
from echo2ecg.report.tables import html_table, write_report_table


def planted(n_patients=240, informative=True, seed=0):
    """Pairs and features where feature 0 carries LVEF (when informative) and SHD."""
    rng = np.random.default_rng(seed)
    lvef = rng.uniform(20, 70, n_patients)
    shd = (rng.random(n_patients) < 0.3).astype(int)
    signal = np.c_[lvef / 10, shd * 3.0] if informative else rng.normal(size=(n_patients, 2))
    features = np.c_[signal, rng.normal(scale=0.5, size=(n_patients, 6))].astype(np.float32)
    split = np.where(np.arange(n_patients) % 4 == 0, "test", "train")
    pairs = pd.DataFrame(
        {
            "patient": [f"p{i}" for i in range(n_patients)],
            "ecg": [f"e{i}" for i in range(n_patients)],
            "study": [f"s{i}" for i in range(n_patients)],
            "split": split,
            "lvef": lvef,
            "lvedv": 100 + lvef,
            "lvesv": 100 - lvef,
            "lvsv": lvef * 2,
            "shd": shd,
        }
    )
    joint = np.c_[lvef, np.ones(n_patients)]
    return pairs, {
        "ecg": pairs["ecg"].to_numpy(),
        "ecg_features": features,
        "ecg_joint": joint.astype(np.float32),
        "study": pairs["study"].to_numpy(),
        "study_joint": joint.astype(np.float32),
    }


def test_ecg_labels_average_phenotypes_and_take_any_shd():
    pairs = pd.DataFrame(
        {
            "patient": ["p1", "p1"],
            "ecg": ["e1", "e1"],
            "study": ["s1", "s2"],
            "split": ["test", "test"],
            "lvef": [40.0, 50.0],
            "lvedv": [1.0, 3.0],
            "lvesv": [1.0, 1.0],
            "lvsv": [0.0, 2.0],
            "shd": [0, 1],
        }
    )
    row = ecg_labels(pairs).loc["e1"]
    assert (row["lvef"], row["lvedv"], row["shd"], row["patient"]) == (45.0, 2.0, 1, "p1")


def test_lvef_table_finds_planted_signal_and_not_noise():
    pairs, good = planted()
    _, noise = planted(informative=False)
    table, scores = lvef_table(
        {("good", "c"): good, ("noise", "c"): noise},
        {"c": pairs},
        k=5,
        balance=True,
        n_resamples=200,
        seed=0,
        baseline="noise",
    )
    table = table.set_index("model")
    assert table.loc["good", "auroc"] > 0.85
    assert table.loc["good", "ci_low"] < table.loc["good", "auroc"] < table.loc["good", "ci_high"]
    assert table.loc["good", "n_test"] == 60 and table.loc["good", "n_train"] < 180  # balanced
    assert table.loc["good", "n_test_patients"] == 60
    assert abs(table.loc["noise", "auroc"] - 0.5) < 0.15
    assert table.loc["good", "vs_baseline_ci_low"] > 0  # paired, against the noise model
    assert np.isnan(table.loc["noise", "vs_baseline"])
    assert len(scores) == 120 and set(scores.columns) >= {
        "model",
        "cohort",
        "ecg",
        "patient",
        "label",
        "score_0",
        "score_2",
    }
    np.testing.assert_allclose(scores[["score_0", "score_1", "score_2"]].sum(axis=1), 1.0)


def test_shd_table_grows_with_data_and_says_when_a_subset_is_too_small():
    pairs, features = planted(n_patients=800)
    table, scores = shd_table(
        {"good": features}, pairs, [0.005, 0.01, 1.0], n_seeds=3, k=5, n_resamples=100, seed=0
    )
    tiny, small, full = table.to_dict("records")
    assert tiny["n_train"] == 5 and np.isnan(tiny["auroc"]) and "same neighbours" in tiny["note"]
    assert small["n_train"] == 6 and small["n_seeds"] == 3
    assert full["n_train"] == 600 and full["auroc"] > 0.9
    assert full["ci_low"] <= full["auroc"] <= full["ci_high"]
    assert full["n_test"] == 200 and full["n_test_patients"] == 200
    assert len(scores) == 3 * 3 * 200 and set(scores["subset"]) == {0, 1, 2}


def test_retrieval_beats_random_on_planted_joint_space():
    pairs, features = planted()
    _, noise = planted(informative=False)
    noise["ecg_joint"] = np.random.default_rng(1).normal(size=noise["ecg_joint"].shape)
    table, queries = retrieval_table(
        {"good": features, "noise": noise}, pairs, 0.5, n_resamples=200, seed=0, baseline="noise"
    )
    good = table[table["model"] == "good"].set_index("phenotype")
    chance = table[table["model"] == "random"].set_index("phenotype")
    assert list(good.index) == ["lvedv", "lvesv", "lvsv", "lvef"]
    assert (good["p_at_1"] == 1.0).all() and (good["mean_rank"] == 1.0).all()  # joint = LVEF
    assert (chance["p_at_1"] < 0.6).all() and (chance["mean_rank"] > 1.2).all()
    assert (good["p_at_1_vs_random_ci_low"] > 0).all()
    assert (good["rank_gain_vs_random_ci_low"] > 0).all()
    assert (good["rank_gain_vs_baseline_ci_low"] > 0).all()
    assert (good["n_queries"] == 60).all() and (good["n_gallery"] == 60).all()
    assert len(queries) == 2 * 4 * 60


def test_ablation_names_variants_by_their_pooling():
    lvef = pd.DataFrame(
        {
            "model": ["echo2ecg", "echo2ecg", "single_view"],
            "cohort": ["internal", "external", "internal"],
            "auroc": [0.8, 0.7, 0.75],
            "ci_low": [0.7, 0.6, 0.65],
            "ci_high": [0.9, 0.8, 0.85],
        }
    )
    shd = pd.DataFrame(
        {
            "model": ["echo2ecg", "echo2ecg", "single_view"],
            "fraction": [0.01, 0.1, 0.01],
            "auroc": [0.76, 0.8, 0.74],
            "ci_low": [0.7, 0.7, 0.7],
            "ci_high": [0.8, 0.9, 0.8],
        }
    )
    variants = {
        "echo2ecg": {"pooling": "attention"},
        "single_view": {"pooling": "single"},
        "no_align": {"pooling": "attention", "train": False},
    }
    table = ablation_table(lvef, shd, variants, "internal", 0.01).set_index("model")
    assert table.loc["echo2ecg", "lvef_auroc"] == 0.8 and table.loc["echo2ecg", "shd_auroc"] == 0.76
    assert table.loc["single_view", "setting"] == "single-view"
    assert "no_align" not in table.index


def test_provenance_carries_real_checksums(tmp_path):
    features = tmp_path / "f.npz"
    np.savez(features, x=np.arange(3))
    record = table_provenance(
        {"knn_k": 5}, [str(features)], {"echo_encoder": False, "ecg_encoder": False}
    )
    import hashlib

    assert (
        record["inputs_sha256"][str(features)] == hashlib.sha256(features.read_bytes()).hexdigest()
    )
    assert record["config"] == {"knn_k": 5} and len(record["config_sha256"]) == 64
    assert record["encoders_pretrained"] == {"echo_encoder": False, "ecg_encoder": False}
    for library in ("torch", "torchvision", "numpy", "scikit-learn", "pydicom", "zarr"):
        assert record["libraries"][library]
    write_report_table(pd.DataFrame({"a": [1.23456]}), tmp_path / "t.csv", "T", record)
    assert "1.235" in (tmp_path / "t.md").read_text()
    assert '<td class="number">1.235</td>' in (tmp_path / "t.html").read_text()
    assert json.loads((tmp_path / "t.provenance.json").read_text())["config"] == {"knn_k": 5}


def test_html_table_is_escaped_rounded_and_colours_verdicts():
    table = pd.DataFrame(
        {
            "claim": ["<b>a & b</b>"],
            "difference": [0.04567],
            "n_test": [12],
            "note": [None],
            "holds": ["no"],
        }
    )
    page = html_table(table, "Findings <1>")
    assert "<title>Findings &lt;1&gt;</title>" in page and "<b>" not in page
    assert "<td>&lt;b&gt;a &amp; b&lt;/b&gt;</td>" in page
    assert '<td class="number">0.046</td><td class="number">12</td><td></td>' in page
    assert '<td class="no">no</td>' in page
    # a value in a verdict column that is not a verdict gets no class of its own
    assert 'class="maybe"' not in html_table(table.assign(holds="maybe"), "T")
    # a value too small for three decimals keeps three significant digits; 0 stays 0.000
    tiny = html_table(pd.DataFrame({"variance": [0.000188, 0.0]}), "T")
    assert ">0.000188<" in tiny and ">0.000<" in tiny


def test_folder_checksum_changes_with_content(tmp_path):
    (tmp_path / "a").write_text("1")
    first = file_checksum(tmp_path)
    (tmp_path / "a").write_text("2")
    assert file_checksum(tmp_path) != first


def test_lvef_rows_that_cannot_be_computed_say_why(caplog):
    pairs, features = planted()
    no_test = pairs.assign(split="train")
    one_class = pairs.copy()
    one_class.loc[one_class["split"] == "test", "lvef"] = 60.0  # all normal
    no_reference = pairs.copy()
    no_reference.loc[(no_reference["split"] == "train") & (no_reference["lvef"] <= 40), "lvef"] = (
        45.0
    )
    cohorts = {"c": pairs, "ext": no_test, "normal": one_class, "unref": no_reference}
    with caplog.at_level(logging.WARNING, logger="echo2ecg.evaluate.downstream"):
        table, scores = lvef_table(
            {("good", name): features for name in cohorts},
            cohorts,
            k=5,
            balance=True,
            n_resamples=50,
            seed=0,
            baseline=None,
        )
    table = table.set_index("cohort")
    assert table.loc["c", "note"] == "" and table.loc["c", "auroc"] > 0.85
    assert table.loc["ext", "note"] == "no test ECGs with an LVEF in cohort ext"
    assert table.loc["ext", "n_test"] == 0 and np.isnan(table.loc["ext", "auroc"])
    assert table.loc["normal", "note"] == "the test split holds no reduced or mildly reduced ECGs"
    assert np.isnan(table.loc["normal", "auroc"]) and table.loc["normal", "n_test"] == 60
    # scored, but the class without reference ECGs can only get AUROC 0.5: the row says so
    assert table.loc["unref", "note"] == "the train split holds no reduced ECGs"
    assert 0.5 < table.loc["unref", "auroc"] < table.loc["c", "auroc"]
    assert "no test ECGs with an LVEF in cohort ext" in caplog.text
    assert "holds no reduced or mildly reduced" in caplog.text
    assert set(scores["cohort"]) == {"c", "normal", "unref"}


def test_lvef_knn_k_larger_than_the_balanced_reference_set_is_an_error():
    pairs, features = planted()
    train = pairs[pairs["split"] == "train"]
    per_class = np.bincount(lvef_class(train["lvef"].to_numpy())).min()
    with pytest.raises(
        ValueError,
        match=(
            rf"^evaluation.knn_k = 150 is larger than the LVEF reference set in cohort c "
            rf"\({3 * per_class} train ECGs, {per_class} per class after balancing\); lower "
            r"evaluation.knn_k or set evaluation.balance_lvef_train: false$"
        ),
    ):
        lvef_table(
            {("good", "c"): features},
            {"c": pairs},
            k=150,
            balance=True,
            n_resamples=50,
            seed=0,
            baseline=None,
        )
    # unbalanced, the same k fits in the 180 train ECGs
    table, _ = lvef_table(
        {("good", "c"): features},
        {"c": pairs},
        k=150,
        balance=False,
        n_resamples=50,
        seed=0,
        baseline=None,
    )
    assert table["n_train"].iloc[0] == 180


def test_shd_rows_without_test_ecgs_or_a_second_class_say_why(caplog):
    pairs, features = planted(n_patients=400)
    no_test = pairs.assign(shd=pairs["shd"].where(pairs["split"] == "train"))
    one_class_train = pairs.assign(shd=pairs["shd"].where(pairs["split"] == "test", 0))
    with caplog.at_level(logging.WARNING, logger="echo2ecg.evaluate.downstream"):
        empty, _ = shd_table(
            {"good": features}, no_test, [0.5, 1.0], n_seeds=2, k=5, n_resamples=50, seed=0
        )
        flat, _ = shd_table(
            {"good": features}, one_class_train, [1.0], n_seeds=1, k=5, n_resamples=50, seed=0
        )
    assert (empty["note"] == "no test ECGs with an SHD label").all()
    assert empty["auroc"].isna().all() and (empty["n_test"] == 0).all()
    assert flat["note"].tolist() == ["the train split holds one class only"]
    assert np.isnan(flat["auroc"].iloc[0])
    assert caplog.text.count("no test ECGs with an SHD label") == 2


def test_shd_knn_k_larger_than_the_training_set_is_an_error():
    pairs, features = planted()
    train = pairs.index[pairs["split"] == "train"]
    few = pairs.assign(shd=pairs["shd"].astype(float))
    few.loc[train[3:], "shd"] = np.nan  # three train ECGs keep an SHD label
    with pytest.raises(
        ValueError,
        match=r"^evaluation.knn_k = 5 is larger than the SHD training "
        r"set \(3 train ECGs with an SHD label\)",
    ):
        shd_table({"good": features}, few, [0.1, 1.0], n_seeds=2, k=5, n_resamples=50, seed=0)


def test_retrieval_without_test_pairs_says_why_and_keeps_its_header(caplog):
    pairs, features = planted()
    with caplog.at_level(logging.WARNING, logger="echo2ecg.evaluate.downstream"):
        table, queries = retrieval_table(
            {"good": features, "noise": features},
            pairs.assign(split="train"),
            0.5,
            n_resamples=50,
            seed=0,
            baseline="noise",
        )
    assert len(table) == 3 * 4  # good, noise and random, each phenotype
    assert (table["note"] == "no test ECGs paired with an echo study in this cohort").all()
    assert (table["n_queries"] == 0).all() and table["p_at_1"].isna().all()
    assert queries.empty and {"model", "phenotype", "ecg", "first_rank"} <= set(queries.columns)
    assert "retrieval, model good, lvef: no test ECGs paired" in caplog.text


def test_retrieval_leaves_out_queries_of_unknown_phenotype():
    pairs, features = planted()
    test = pairs.index[pairs["split"] == "test"]
    pairs.loc[test[:10], "lvef"] = np.nan
    pairs["lvsv"] = np.nan
    table, queries = retrieval_table(
        {"good": features}, pairs, 0.5, n_resamples=50, seed=0, baseline=None
    )
    good = table[table["model"] == "good"].set_index("phenotype")
    assert good.loc["lvef", "n_queries"] == 50 and good.loc["lvedv", "n_queries"] == 60
    assert good.loc["lvef", "n_gallery"] == 50 and good.loc["lvedv", "n_gallery"] == 60
    # studies and queries of unknown LVEF are neither matches nor misses
    assert good.loc["lvef", "p_at_1"] == 1.0 and good.loc["lvef", "mean_rank"] == 1.0
    assert (
        good.loc["lvsv", "note"] == "fewer than 2 test studies with a known lvsv: no SD to "
        "set the match tolerance"
    )
    assert np.isnan(good.loc["lvsv", "p_at_1"]) and good.loc["lvedv", "note"] == ""
    assert set(queries["phenotype"]) == {"lvedv", "lvesv", "lvef"}
