import json

import numpy as np
import pandas as pd
import pytest

from echo2ecg.downstream import ablation_table, ecg_labels, lvef_knn, retrieval, shd_scaling
from echo2ecg.provenance import file_checksum, table_provenance
from echo2ecg.tables import write_report_table


def planted(n_patients=240, informative=True, seed=0):
    """Pairs and features where feature 0 carries LVEF (when informative) and SHD."""
    rng = np.random.default_rng(seed)
    lvef = rng.uniform(20, 70, n_patients)
    shd = (rng.random(n_patients) < 0.3).astype(int)
    signal = np.c_[lvef / 10, shd * 3.0] if informative else rng.normal(size=(n_patients, 2))
    features = np.c_[signal, rng.normal(scale=0.5, size=(n_patients, 6))].astype(np.float32)
    split = np.where(np.arange(n_patients) % 4 == 0, "test", "train")
    pairs = pd.DataFrame({
        "patient": [f"p{i}" for i in range(n_patients)], "ecg": [f"e{i}" for i in range(n_patients)],
        "study": [f"s{i}" for i in range(n_patients)], "split": split, "lvef": lvef,
        "lvedv": 100 + lvef, "lvesv": 100 - lvef, "lvsv": lvef * 2, "shd": shd})
    joint = np.c_[lvef, np.ones(n_patients)]
    return pairs, {"ecg": pairs["ecg"].to_numpy(), "ecg_features": features,
                   "ecg_joint": joint.astype(np.float32), "study": pairs["study"].to_numpy(),
                   "study_joint": joint.astype(np.float32)}


def test_ecg_labels_average_phenotypes_and_take_any_shd():
    pairs = pd.DataFrame({"ecg": ["e1", "e1"], "study": ["s1", "s2"], "split": ["test", "test"],
                          "lvef": [40.0, 50.0], "lvedv": [1.0, 3.0], "lvesv": [1.0, 1.0],
                          "lvsv": [0.0, 2.0], "shd": [0, 1]})
    row = ecg_labels(pairs).loc["e1"]
    assert (row["lvef"], row["lvedv"], row["shd"]) == (45.0, 2.0, 1)


def test_lvef_knn_finds_planted_signal_and_not_noise():
    pairs, features = planted()
    good = lvef_knn(features, pairs, k=5, balance=True, n_resamples=200, seed=0)
    assert good["auroc"] > 0.85 and good["ci_low"] < good["auroc"] < good["ci_high"]
    assert good["n_test"] == 60 and good["n_train"] < 180  # balanced: classes cut to the rarest
    pairs, noise = planted(informative=False)
    assert abs(lvef_knn(noise, pairs, 5, True, 200, 0)["auroc"] - 0.5) < 0.15


def test_shd_scaling_grows_with_data_and_keeps_k_examples():
    pairs, features = planted(n_patients=800)
    rows = shd_scaling(features, pairs, [0.01, 1.0], n_seeds=3, k=5, n_resamples=100, seed=0)
    small, full = rows
    assert small["n_train"] >= 5 and full["n_train"] == 600
    assert full["auroc"] > 0.9 and full["ci_low"] <= full["auroc"] <= full["ci_high"]
    assert small["n_seeds"] == 3


def test_retrieval_beats_random_on_planted_joint_space():
    pairs, features = planted()
    model, random = retrieval(features, pairs, 0.5)
    assert [r["phenotype"] for r in model] == ["lvedv", "lvesv", "lvsv", "lvef"]
    for ours, chance in zip(model, random):
        assert ours["p_at_1"] == 1.0 and ours["mean_rank"] == 1.0  # joint space = LVEF itself
        assert chance["p_at_1"] < 0.6 and chance["mean_rank"] > 1.2
        assert ours["n_queries"] == ours["n_gallery"] == 60


def test_ablation_picks_internal_lvef_and_one_percent_shd():
    lvef = pd.DataFrame({"model": ["echo2ecg", "echo2ecg", "single_view"], "cohort": ["internal", "external", "internal"],
                         "auroc": [0.8, 0.7, 0.75], "ci_low": [0.7, 0.6, 0.65], "ci_high": [0.9, 0.8, 0.85]})
    shd = pd.DataFrame({"model": ["echo2ecg", "echo2ecg", "single_view"], "fraction": [0.01, 0.1, 0.01],
                        "auroc": [0.76, 0.8, 0.74], "ci_low": [0.7, 0.7, 0.7], "ci_high": [0.8, 0.9, 0.8]})
    table = ablation_table(lvef, shd, "internal", 0.01).set_index("model")
    assert table.loc["echo2ecg", "lvef_auroc"] == 0.8 and table.loc["echo2ecg", "shd_auroc"] == 0.76
    assert table.loc["single_view", "setting"] == "single-view"


def test_provenance_carries_real_checksums(tmp_path):
    features = tmp_path / "f.npz"
    np.savez(features, x=np.arange(3))
    record = table_provenance({"knn_k": 5}, [str(features)], {"echo_encoder": False, "ecg_encoder": False})
    import hashlib
    assert record["inputs_sha256"][str(features)] == hashlib.sha256(features.read_bytes()).hexdigest()
    assert record["config"] == {"knn_k": 5} and len(record["config_sha256"]) == 64
    assert record["encoders_pretrained"] == {"echo_encoder": False, "ecg_encoder": False}
    for library in ("torch", "torchvision", "numpy", "scikit-learn", "pydicom", "zarr"):
        assert record["libraries"][library]
    write_report_table(pd.DataFrame({"a": [1.23456]}), tmp_path / "t.csv", "T", record)
    assert "1.235" in (tmp_path / "t.md").read_text()
    assert json.loads((tmp_path / "t.provenance.json").read_text())["config"] == {"knn_k": 5}


def test_folder_checksum_changes_with_content(tmp_path):
    (tmp_path / "a").write_text("1")
    first = file_checksum(tmp_path)
    (tmp_path / "a").write_text("2")
    assert file_checksum(tmp_path) != first
