import pandas as pd
import pytest

from echo2ecg.manifest import ManifestError, load_ecgs, load_echo_views, load_labels, shard_of


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_echo_views_resolve_paths_and_keep_listed_ones(tmp_path):
    path = write(tmp_path, "views.csv",
                 "path,patient_id,study_id,acquisition_time\n"
                 "echo/a.dcm,MRN1,ACC1,2024-01-02T10:00:00\n"
                 "/abs/b.dcm,MRN1,ACC1,2024-01-02T10:05:00\n")
    views = load_echo_views(path)
    assert list(views["path"]) == [str(tmp_path / "echo/a.dcm"), "/abs/b.dcm"]
    assert list(views["listed_path"]) == ["echo/a.dcm", "/abs/b.dcm"]
    assert list(views["view_id"]) == ["echo/a.dcm", "/abs/b.dcm"]  # defaults to the path
    assert list(views["manifest_row"]) == [0, 1]
    assert views["acquisition_time"].dt.year.tolist() == [2024, 2024]


def test_identifiers_stay_strings(tmp_path):
    # Leading zeros in MRNs must survive: they are identifiers, not numbers.
    path = write(tmp_path, "ecgs.csv",
                 "path,patient_id,ecg_id,acquisition_time,format,fs\n"
                 "a.hea,000123,0042,2024-01-02,WFDB,\n"
                 "b.npy,000124,0043,2024-01-03,numpy,250\n")
    ecgs = load_ecgs(path)
    assert list(ecgs["patient_id"]) == ["000123", "000124"]
    assert list(ecgs["format"]) == ["wfdb", "numpy"]
    assert pd.isna(ecgs["fs"].iloc[0]) and ecgs["fs"].iloc[1] == 250.0


@pytest.mark.parametrize("text, message", [
    ("path,patient_id,acquisition_time\na.dcm,1,2024-01-01\n", "missing column(s) study_id"),
    ("path,patient_id,study_id,acquisition_time\na.dcm,,S,2024-01-01\n", "empty patient_id on line(s) 2"),
    ("path,patient_id,study_id,acquisition_time\na.dcm,P,S,yesterday\n", "not an ISO 8601 time on line(s) 2"),
    ("path,patient_id,study_id,acquisition_time\na.dcm,P,S,2024-01-01\na.dcm,P,S,2024-01-01\n",
     "file listed twice: a.dcm"),
])
def test_bad_echo_manifests_name_the_problem(tmp_path, text, message):
    with pytest.raises(ManifestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_echo_views(write(tmp_path, "v.csv", text))


def test_unknown_ecg_format_is_refused(tmp_path):
    path = write(tmp_path, "e.csv", "path,patient_id,ecg_id,acquisition_time,format\n"
                                    "a.xml,P,E1,2024-01-01,hl7\n")
    with pytest.raises(ManifestError, match="unknown ECG format"):
        load_ecgs(path)


def test_labels_one_row_per_study(tmp_path):
    header = "patient_id,study_id,acquisition_time,lvef,lvedv,lvesv,lvsv,shd\n"
    labels = load_labels(write(tmp_path, "l.csv", header + "P,S1,2024-01-01,55,120,54,66,0\n"))
    assert labels["lvef"].iloc[0] == 55.0
    with pytest.raises(ManifestError, match="study_id is not unique"):
        load_labels(write(tmp_path, "l2.csv", header + "P,S1,2024-01-01,55,120,54,66,0\n"
                                                        "P,S1,2024-01-01,50,120,60,60,0\n"))


def test_shards_are_stable_and_spread():
    ids = [f"study-{i}" for i in range(4000)]
    first = [shard_of(s, 8) for s in ids]
    assert first == [shard_of(s, 8) for s in ids]  # same answer every time (no salted hash())
    counts = pd.Series(first).value_counts()
    assert set(counts.index) == set(range(8))
    assert counts.min() > 400  # roughly even: 500 expected per shard
