import pandas as pd
import pytest

from echo2ecg.data.pseudonym import pseudonymise
from echo2ecg.train.pairs import (
    assign_splits,
    build_pairs,
    build_trace_pairs,
    pair_within_window,
    split_counts,
)

T0 = pd.Timestamp("2024-03-01 12:00")
KEY = b"test-key"


def test_window_is_inclusive_and_per_patient():
    ecgs = pd.DataFrame(
        {
            "patient": ["a", "a", "a", "b"],
            "ecg": ["e1", "e2", "e3", "e4"],
            "time": [T0, T0 + pd.Timedelta(days=7), T0 - pd.Timedelta(days=7, hours=1), T0],
        }
    )
    studies = pd.DataFrame(
        {"patient": ["a", "c"], "study": ["s1", "s2"], "time": [T0, T0], "lvef": [55, 30]}
    )
    pairs = pair_within_window(ecgs, studies, 7)
    assert sorted(pairs["ecg"]) == ["e1", "e2"]  # e3 is 7 d 1 h away; e4's patient has no study
    assert sorted(pairs["days_apart"]) == [0.0, 7.0]
    assert "time" not in "".join(pairs.columns) and set(pairs["lvef"]) == {55}


def test_an_ecg_pairs_with_every_study_in_its_window():
    ecgs = pd.DataFrame({"patient": ["a"], "ecg": ["e1"], "time": [T0]})
    studies = pd.DataFrame(
        {
            "patient": ["a", "a", "a"],
            "study": ["s1", "s2", "s3"],
            "time": [
                T0 - pd.Timedelta(days=2),
                T0 + pd.Timedelta(days=3),
                T0 + pd.Timedelta(days=30),
            ],
        }
    )
    assert sorted(pair_within_window(ecgs, studies, 7)["study"]) == ["s1", "s2"]


def test_splits_are_by_patient_stable_and_near_their_fractions():
    patients = pd.Series([f"p{i}" for i in range(3000)]).repeat(3).reset_index(drop=True)
    fractions = {"train": 0.7, "val": 0.15, "test": 0.15}
    splits = assign_splits(patients, fractions, seed=42)
    per_patient = pd.DataFrame({"p": patients, "s": splits}).drop_duplicates()
    assert per_patient["p"].is_unique  # one split per patient
    share = per_patient["s"].value_counts(normalize=True)
    assert abs(share["train"] - 0.7) < 0.03 and abs(share["test"] - 0.15) < 0.03
    more = pd.concat([patients, pd.Series(["new1", "new2"])], ignore_index=True)
    assert (
        assign_splits(more, fractions, 42)[: len(patients)] == splits
    ).all()  # adding patients moves nobody
    assert not (assign_splits(patients, fractions, 43) == splits).all()
    with pytest.raises(ValueError, match="sum"):
        assign_splits(patients, {"train": 0.5, "test": 0.2}, 1)


def cohort_tables():
    manifest = pd.DataFrame(
        {
            "patient_id": ["MRN1", "MRN1", "MRN2", "MRN3"],
            "ecg_id": ["E1", "E2", "E3", "E4"],
            "acquisition_time": [T0, T0 + pd.Timedelta(days=20), T0, T0],
        }
    )
    labels = pd.DataFrame(
        {
            "patient_id": ["MRN1", "MRN2", "MRN3"],
            "study_id": ["S1", "S2", "S3"],
            "acquisition_time": [T0, T0 + pd.Timedelta(days=1), T0],
            "lvef": [60.0, 35.0, 45.0],
            "lvedv": [120.0, 200.0, 150.0],
            "lvesv": [48.0, 130.0, 82.0],
            "lvsv": [72.0, 70.0, 68.0],
            "shd": [0, 1, 0],
        }
    )
    ledger = pd.DataFrame(
        {
            "ecg": [pseudonymise(e, KEY) for e in ["E1", "E2", "E3", "E4"]],
            "status": ["ok", "ok", "ok", "rejected"],
            "row": [0, 1, 0, None],
            "shard": ["0000", "0000", "0001", "0001"],
        }
    )
    return manifest, labels, ledger


def test_build_pairs_uses_usable_files_and_carries_no_raw_ids():
    manifest, labels, ledger = cohort_tables()
    views = pd.Series({pseudonymise("S1", KEY): 3, pseudonymise("S2", KEY): 2})  # S3 has no views
    pairs = build_pairs(
        manifest, labels, ledger, views, KEY, 7, {"train": 0.5, "val": 0.25, "test": 0.25}, 0
    )
    # E2 is 20 days out, E4 was rejected, S3 has no usable view:
    assert sorted(pairs["ecg"]) == sorted(pseudonymise(e, KEY) for e in ["E1", "E3"])
    assert set(pairs["n_views"]) == {3, 2}
    row = pairs[pairs["ecg"] == pseudonymise("E3", KEY)].iloc[0]
    assert (row["ecg_shard"], row["ecg_row"], row["lvef"], row["days_apart"]) == (
        "0001",
        0,
        35.0,
        -1.0,
    )
    text = pairs.to_csv()
    assert not any(raw in text for raw in ("MRN", "E1,", "S1,", "2024"))


def test_evaluation_cohort_without_echo_pairs_on_reports_alone():
    manifest, labels, ledger = cohort_tables()
    pairs = build_pairs(
        manifest, labels, ledger, None, KEY, 7, {"train": 0.5, "val": 0.25, "test": 0.25}, 0
    )
    assert len(pairs) == 2 and set(pairs["n_views"]) == {0}


def test_split_counts_like_table_1():
    pairs = pd.DataFrame(
        {
            "patient": ["a", "a", "b", "c"],
            "ecg": ["e1", "e2", "e3", "e4"],
            "study": ["s1", "s1", "s2", "s3"],
            "n_views": [3, 3, 2, 4],
            "split": ["train", "train", "train", "test"],
        }
    )
    table = split_counts(pairs, "internal").set_index("split")
    assert table.loc["train", ["pairs", "patients", "ecgs", "studies", "views"]].tolist() == [
        3,
        2,
        3,
        2,
        5,
    ]
    assert table.loc["val", "pairs"] == 0 and table.loc["test", "views"] == 4


def test_each_trace_pairs_with_its_own_study_in_its_patients_split():
    key, fractions = KEY, {"train": 0.5, "val": 0.25, "test": 0.25}
    ecg_manifest, labels, ecg_ledger = cohort_tables()
    views = pd.Series({pseudonymise("S1", KEY): 3, pseudonymise("S2", KEY): 2})
    file_pairs = build_pairs(ecg_manifest, labels, ecg_ledger, views, key, 7, fractions, 42)
    studies = labels.assign(
        patient=[pseudonymise(p, key) for p in labels["patient_id"]],
        study=[pseudonymise(s, key) for s in labels["study_id"]],
    )
    rows = []
    for i, study in enumerate(studies.itertuples()):
        for view in range(2):
            rows.append(
                {
                    "status": "rejected" if view else "ok",  # the second view's trace failed
                    "row": None if view else i,
                    "patient": study.patient,
                    "study": study.study,
                    "view": f"v{i}{view}",
                    "shard": "0001",
                }
            )
    rows.append({**rows[0], "study": "no-report", "view": "vx", "row": 99})
    trace_ledger = pd.DataFrame(rows)
    pairs = build_trace_pairs(labels, trace_ledger, views, key, fractions, 42)
    assert len(pairs) == len(labels)  # one ok trace per study; the unreported study drops
    assert (pairs["ecg_source"] == "echo_trace").all() and (pairs["days_apart"] == 0).all()
    assert pairs["ecg"].str.startswith("trace-v").all() and pairs["ecg"].is_unique
    split_of = dict(zip(file_pairs["patient"], file_pairs["split"]))
    assert all(split_of.get(p, s) == s for p, s in zip(pairs["patient"], pairs["split"]))
    counts = split_counts(pairs, "internal", source="echo_trace")
    assert (counts["ecg_source"] == "echo_trace").all()
    assert counts["ecgs"].sum() == len(labels)
    assert dict(zip(pairs["study"], pairs["n_views"]))[pseudonymise("S1", KEY)] == 3
    assert not any(raw in pairs.to_csv() for raw in ("MRN", "S1,", "2024"))
