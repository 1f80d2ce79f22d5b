import pandas as pd
import pytest

from echo2ecg.data.manifest import (
    ManifestError,
    check_time_zones_agree,
    load_ecgs,
    load_echo_views,
    load_labels,
    shard_of,
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_echo_views_resolve_paths_and_keep_listed_ones(tmp_path):
    path = write(
        tmp_path,
        "views.csv",
        "path,patient_id,study_id,acquisition_time\n"
        "echo/a.dcm,MRN1,ACC1,2024-01-02T10:00:00\n"
        "/abs/b.dcm,MRN1,ACC1,2024-01-02T10:05:00\n",
    )
    views = load_echo_views(path)
    assert list(views["path"]) == [str(tmp_path / "echo/a.dcm"), "/abs/b.dcm"]
    assert list(views["listed_path"]) == ["echo/a.dcm", "/abs/b.dcm"]
    assert list(views["view_id"]) == ["echo/a.dcm", "/abs/b.dcm"]  # defaults to the path
    assert list(views["manifest_row"]) == [0, 1]
    assert views["acquisition_time"].dt.year.tolist() == [2024, 2024]


def test_identifiers_stay_strings(tmp_path):
    # Leading zeros in MRNs must survive: they are identifiers, not numbers.
    path = write(
        tmp_path,
        "ecgs.csv",
        "path,patient_id,ecg_id,acquisition_time,format,fs\n"
        "a.hea,000123,0042,2024-01-02,WFDB,\n"
        "b.npy,000124,0043,2024-01-03,numpy,250\n",
    )
    ecgs = load_ecgs(path)
    assert list(ecgs["patient_id"]) == ["000123", "000124"]
    assert list(ecgs["format"]) == ["wfdb", "numpy"]
    assert pd.isna(ecgs["fs"].iloc[0]) and ecgs["fs"].iloc[1] == 250.0


@pytest.mark.parametrize(
    "text, message",
    [
        ("path,patient_id,acquisition_time\na.dcm,1,2024-01-01\n", "missing column(s) study_id"),
        (
            "path,patient_id,study_id,acquisition_time\na.dcm,,S,2024-01-01\n",
            "empty patient_id on line(s) 2",
        ),
        (
            "path,patient_id,study_id,acquisition_time\na.dcm,P,S,yesterday\n",
            "not an ISO 8601 time on line(s) 2",
        ),
        (
            "path,patient_id,study_id,acquisition_time\na.dcm,P,S,2024-01-01\na.dcm,P,S,2024-01-01\n",
            "path lists the same file more than once, on line(s) 2, 3",
        ),
    ],
)
def test_bad_echo_manifests_name_the_problem(tmp_path, text, message):
    with pytest.raises(ManifestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_echo_views(write(tmp_path, "v.csv", text))


def test_unknown_ecg_format_is_refused(tmp_path):
    path = write(
        tmp_path,
        "e.csv",
        "path,patient_id,ecg_id,acquisition_time,format\na.xml,P,E1,2024-01-01,hl7\n",
    )
    with pytest.raises(
        ManifestError, match=r"unknown ECG format\(s\) hl7 in format on line\(s\) 2;"
    ):
        load_ecgs(path)


def test_labels_one_row_per_study(tmp_path):
    header = "patient_id,study_id,acquisition_time,lvef,lvedv,lvesv,lvsv,shd\n"
    labels = load_labels(write(tmp_path, "l.csv", header + "P,S1,2024-01-01,55,120,54,66,0\n"))
    assert labels["lvef"].iloc[0] == 55.0
    with pytest.raises(
        ManifestError,
        match=r"study_id is not unique \(one report row per study\): "
        r"the same value on line\(s\) 2, 3$",
    ):
        load_labels(
            write(
                tmp_path,
                "l2.csv",
                header + "P,S1,2024-01-01,55,120,54,66,0\nP,S1,2024-01-01,50,120,60,60,0\n",
            )
        )


def test_shards_are_stable_and_spread():
    ids = [f"study-{i}" for i in range(4000)]
    first = [shard_of(s, 8) for s in ids]
    assert first == [shard_of(s, 8) for s in ids]  # same answer every time (no salted hash())
    counts = pd.Series(first).value_counts()
    assert set(counts.index) == set(range(8))
    assert counts.min() > 400  # roughly even: 500 expected per shard


VIEWS = "path,patient_id,study_id,acquisition_time\n"
LABELS = "patient_id,study_id,acquisition_time,lvef,lvedv,lvesv,lvsv,shd\n"


def test_zoned_times_become_utc_even_across_offsets(tmp_path):
    # daylight saving time: one site, two offsets; both must land on the same clock
    views = load_echo_views(
        write(
            tmp_path,
            "v.csv",
            VIEWS + "a.dcm,P,S,2020-01-01T10:00+01:00\n"
            "b.dcm,P,S,2020-07-01T10:00+02:00\n"
            "c.dcm,P,S,2020-07-02T08:00Z\n",
        )
    )
    assert str(views["acquisition_time"].dt.tz) == "UTC"
    assert views["acquisition_time"].dt.hour.tolist() == [9, 8, 8]
    naive = load_echo_views(write(tmp_path, "n.csv", VIEWS + "a.dcm,P,S,2020-01-01T10:00\n"))
    assert naive["acquisition_time"].dt.tz is None
    assert naive["acquisition_time"].dt.hour.tolist() == [10]


@pytest.mark.parametrize(
    "time",
    [
        "2020-01-01T10:00:00+01",
        "2020-01-01T10+01",
        "2020-01-01 10:00:00 -05:00",
        "2020-01-01T10:00:00.123456+0100",
        "20200101T100000Z",
        "2020-01-01",
        "2020-01",
        "2020-01-01T10",
        "2020-01-01 10:00:00",
    ],
)
def test_zone_detection_agrees_with_pandas(tmp_path, time):
    views = load_echo_views(write(tmp_path, "v.csv", VIEWS + f"a.dcm,P,S,{time}\n"))
    alone = pd.to_datetime(pd.Series([time]), format="ISO8601")
    assert (views["acquisition_time"].dt.tz is None) == (alone.dt.tz is None)
    assert views["acquisition_time"].iloc[0] == (
        alone.dt.tz_convert("UTC").iloc[0] if alone.dt.tz else alone.iloc[0]
    )


@pytest.mark.parametrize(
    "rows",
    [
        "a.dcm,P,S,2020-01-01T10:00+01:00\nb.dcm,P,S,2020-01-02T10:00\n",
        "a.dcm,P,S,2020-01-02T10:00\nb.dcm,P,S,2020-01-01T10:00Z\n",
    ],
)
def test_a_mix_of_zoned_and_naive_times_is_refused(tmp_path, rows):
    path = write(tmp_path, "v.csv", VIEWS + rows)
    with pytest.raises(ManifestError) as error:
        load_echo_views(path)
    message = str(error.value)
    assert str(path) in message and "acquisition_time" in message
    assert "time zone on line(s)" in message and "none on line(s)" in message
    zoned_line = 2 if "+01:00" in rows.splitlines()[0] else 3
    assert f"time zone on line(s) {zoned_line} but none on line(s) {5 - zoned_line}" in message


def test_a_cohort_whose_manifests_disagree_on_zones_is_refused(tmp_path):
    ecgs = load_ecgs(
        write(
            tmp_path,
            "e.csv",
            "path,patient_id,ecg_id,acquisition_time,format\na.hea,P,E1,2020-01-01T10:00Z,wfdb\n",
        )
    )
    labels = load_labels(write(tmp_path, "l.csv", LABELS + "P,S1,2020-01-01T10:00,55,,,,0\n"))
    check_time_zones_agree({"e.csv": ecgs})
    with pytest.raises(ManifestError, match="time zone in e.csv but none in l.csv"):
        check_time_zones_agree({"e.csv": ecgs, "l.csv": labels})


def test_lines_count_blank_lines_and_quoted_line_breaks(tmp_path):
    # line 3 is blank and the row on line 4 spans two lines: the bad time is on line 6
    path = write(
        tmp_path,
        "v.csv",
        VIEWS + 'a.dcm,P,S,2024-01-01\n\n"b\nc.dcm",P,S,2024-01-01\nd.dcm,P,S,2024-13-01\n',
    )
    with pytest.raises(ManifestError, match=r"not an ISO 8601 time on line\(s\) 6 "):
        load_echo_views(path)
    many = write(tmp_path, "m.csv", VIEWS + "".join(f"{i}.dcm,P,S,soon\n" for i in range(8)))
    with pytest.raises(ManifestError, match=r"line\(s\) 2, 3, 4, 5, 6 and 3 more"):
        load_echo_views(many)


def test_a_latin_1_manifest_names_its_first_undecodable_line(tmp_path):
    path = tmp_path / "v.csv"
    path.write_bytes(
        (VIEWS + "a.dcm,P1,S1,2024-01-01\nb.dcm,Müller,S2,2024-01-01\n").encode("latin-1")
    )
    with pytest.raises(ManifestError) as error:
        load_echo_views(path)
    message = str(error.value)
    assert message.startswith(f"{path}: line 3 ") and "UTF-8" in message
    assert "ller" not in message  # the patient's name is not quoted


@pytest.mark.parametrize("value", ["55%", "n/a", "abc", "NaN", '"55,0"', "inf"])
def test_a_label_that_is_not_a_number_is_refused_not_dropped(tmp_path, value):
    path = write(
        tmp_path,
        "labels.csv",
        LABELS + f"P1,S1,2024-01-01,60,120,50,70,0\nP2,S2,2024-01-01,{value},120,50,70,1\n",
    )
    with pytest.raises(ManifestError) as error:
        load_labels(path)
    message = str(error.value)
    assert message.startswith(f"{path}: lvef is not a number on line(s) 3 (expected a percentage")
    assert value not in message.replace(str(path), "") and "P2" not in message


def test_empty_label_cells_are_missing_labels(tmp_path):
    labels = load_labels(
        write(
            tmp_path,
            "l.csv",
            LABELS + "P1,S1,2024-01-01,,120,50,70,\nP2,S2,2024-01-01,55,,50,70,1\n",
        )
    )
    assert labels["lvef"].isna().tolist() == [True, False]
    assert labels["shd"].isna().tolist() == [True, False] and labels["shd"].iloc[1] == 1.0


@pytest.mark.parametrize("value", ["2", "0.5", "yes", "-1"])
def test_shd_must_be_0_or_1(tmp_path, value):
    path = write(tmp_path, "l.csv", LABELS + f"P1,S1,2024-01-01,55,120,50,70,{value}\n")
    with pytest.raises(
        ManifestError,
        match=r"shd is (not a number|neither 0 nor 1) on line\(s\) 2 "
        r"\(expected 0 or 1",
    ):
        load_labels(path)


def test_ecg_sampling_rate_must_be_a_number(tmp_path):
    path = write(
        tmp_path,
        "e.csv",
        "path,patient_id,ecg_id,acquisition_time,format,fs\n"
        "a.npy,P,E1,2024-01-01,numpy,500\n"
        "b.npy,P,E2,2024-01-01,numpy,500Hz\n",
    )
    with pytest.raises(
        ManifestError,
        match=r"fs is not a number on line\(s\) 3 \(expected a "
        "sampling rate in Hz",
    ):
        load_ecgs(path)


def test_parquet_manifests_name_data_rows(tmp_path):
    path = tmp_path / "l.parquet"
    pd.DataFrame(
        {
            "patient_id": ["P1", "P2"],
            "study_id": ["S1", "S2"],
            "acquisition_time": ["2024-01-01", "2024-01-02"],
            "lvef": ["55", "high"],
            "lvedv": [1.0, 2.0],
            "lvesv": [1.0, 1.0],
            "lvsv": [0.0, 1.0],
            "shd": [True, False],
        }
    ).to_parquet(path)
    with pytest.raises(ManifestError, match=r"lvef is not a number on row\(s\) 2 "):
        load_labels(path)


@pytest.mark.parametrize(
    "loader, header",
    [
        (load_echo_views, VIEWS),
        (load_labels, LABELS),
        (load_ecgs, "path,patient_id,ecg_id,acquisition_time,format,fs\n"),
    ],
)
def test_a_header_only_manifest_is_refused(tmp_path, loader, header):
    path = write(tmp_path, "m.csv", header)
    with pytest.raises(ManifestError, match=f"^{path}: no rows"):
        loader(path)
    with pytest.raises(ManifestError, match="empty file"):
        loader(write(tmp_path, "zero.csv", ""))


def test_parquet_times_keep_their_type(tmp_path):
    path = tmp_path / "v.parquet"
    times = pd.Series(pd.to_datetime(["2024-01-01T10:00", "2024-07-01T10:00"]))
    table = pd.DataFrame(
        {
            "path": ["a.dcm", "b.dcm"],
            "patient_id": "P",
            "study_id": "S",
            "acquisition_time": times.dt.tz_localize("Europe/Zurich"),
        }
    )
    table.to_parquet(path)
    assert load_echo_views(path)["acquisition_time"].dt.hour.tolist() == [9, 8]
    table.assign(acquisition_time=times).to_parquet(path)
    views = load_echo_views(path)
    assert views["acquisition_time"].dt.tz is None and views["acquisition_time"].equals(times)
    table.assign(acquisition_time=[times[0], pd.NaT]).to_parquet(path)
    with pytest.raises(ManifestError, match=r"empty acquisition_time on row\(s\) 2"):
        load_echo_views(path)
