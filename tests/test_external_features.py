"""Other models' ECG features as baseline rows: read, pseudonymised, checked for coverage."""

import numpy as np
import pandas as pd
import pytest

from echo2ecg.data.pseudonym import pseudonymise_all
from echo2ecg.evaluate.downstream import lvef_table
from echo2ecg.evaluate.external import external_feature_file

KEY = b"test-only-key-" + b"0" * 32


def cohort_pairs(n_ecgs=40):
    """Pairs of ECGs e0..e{n−1} (manifest ids), split train / test / val by index."""
    raw = [f"e{i}" for i in range(n_ecgs)]
    splits = np.array(["train", "test", "val", "train"] * (n_ecgs // 4))
    rng = np.random.default_rng(0)
    return raw, pd.DataFrame(
        {
            "patient": pseudonymise_all([f"p{i // 2}" for i in range(n_ecgs)], KEY),
            "ecg": pseudonymise_all(raw, KEY),
            "study": [f"s{i // 2}" for i in range(n_ecgs)],
            "split": splits,
            "lvef": rng.choice([30.0, 45.0, 60.0], n_ecgs),
            "lvedv": 100.0,
            "lvesv": 50.0,
            "lvsv": 50.0,
            "shd": np.nan,
        }
    )


def feature_table(raw, dim=3, seed=1):
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(rng.normal(size=(len(raw), dim)), columns=[f"f{i}" for i in range(dim)])
    return table.assign(ecg_id=raw)[["ecg_id", *table.columns]]


def test_ids_are_pseudonymised_and_only_the_cohorts_ecgs_kept():
    raw, pairs = cohort_pairs()
    table = pd.concat([feature_table(raw), feature_table(["other-cohort-1"])], ignore_index=True)
    features = external_feature_file(table, pairs, KEY, "otis", "internal")
    assert set(features["ecg"]) == set(pairs["ecg"])
    assert not set(raw) & set(features["ecg"])  # no manifest id leaves the reader
    assert features["ecg_features"].shape == (40, 3) and features["ecg_joint"].shape == (40, 0)
    row = list(features["ecg"]).index(pairs["ecg"].iloc[5])
    assert features["ecg_features"][row] == pytest.approx(table.iloc[5, 1:].to_numpy(float))
    # the kNN table reads it like any variant's features
    table, _ = lvef_table(
        {("otis", "internal"): features}, {"internal": pairs}, 3, False, 50, 0, None
    )
    assert table["model"].tolist() == ["otis"] and table["n_test"].iloc[0] == 10


def test_missing_train_or_test_ecgs_are_an_error_with_the_count():
    raw, pairs = cohort_pairs()
    table = feature_table(raw)
    # e2, e6, ... are validation ECGs: missing them is fine
    feature_table_without_val = table[~table["ecg_id"].isin(raw[2::4])]
    external_feature_file(feature_table_without_val, pairs, KEY, "otis", "internal")
    with pytest.raises(ValueError, match="covers 27 of the 30 train and test ECGs.*3 are missing"):
        external_feature_file(table.iloc[4:], pairs, KEY, "otis", "internal")  # e0, e1, e3


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.drop(columns="ecg_id"), "no 'ecg_id' column"),
        (lambda t: t[["ecg_id"]], "no feature columns"),
        (lambda t: t.assign(f0="x"), "1 feature columns are not numeric"),
        (lambda t: pd.concat([t, t.iloc[:2]]), "2 ECGs appear more than once"),
        (lambda t: t.assign(f1=np.where(t.index == 4, np.nan, t["f1"])), "1 ECGs of cohort"),
    ],
)
def test_malformed_files_are_named_errors(change, message):
    raw, pairs = cohort_pairs()
    with pytest.raises(ValueError, match=message) as error:
        external_feature_file(change(feature_table(raw)), pairs, KEY, "otis", "internal")
    assert str(error.value).startswith("evaluation.external_features.otis:")
