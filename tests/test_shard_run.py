"""The shard runners (echo2ecg.data.shard_run): one ledger row per input, ok rows pointing
at store rows in input order, rejected rows with a reason and no store row, and the store
finished before the ledger is written."""

import os
import time

import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_ecg, synthetic_echo, write_clip

from echo2ecg.data import shard_run
from echo2ecg.data.ecg import prepare_ecg
from echo2ecg.data.ecg_formats import read_ecg
from echo2ecg.data.echo import extract_clip
from echo2ecg.data.shard_run import ShardInput, extract_echo_shard, prep_ecg_shard
from echo2ecg.data.store import LEDGER_COLUMNS, ShardWriter, open_rows, read_ledger

CLIP_OPTIONS = {"size": 32, "frames": 8}  # small clips: the runner, not the recipe, is tested
ECG_OPTIONS = {"duration_s": 4.0}  # (12, 2000) rows


def echo_inputs(folder):
    """good, not DICOM, good, all black: (inputs, paths of the good ones)."""
    folder.mkdir()
    good_a = write_clip(folder / "a.dcm", synthetic_echo(16, seed=1))
    (folder / "b.dcm").write_bytes(b"not a dicom file")
    good_c = write_clip(folder / "c.dcm", synthetic_echo(16, seed=2))
    black = write_clip(folder / "d.dcm", np.zeros((16, 60, 80, 3), np.uint8))
    paths = [good_a, str(folder / "b.dcm"), good_c, black]
    inputs = [
        ShardInput(
            path=p, source=f"view-{i}", fields={"manifest_row": 10 + i, "study": f"s{i // 2}"}
        )
        for i, p in enumerate(paths)
    ]
    return inputs, [good_a, good_c]


def test_echo_shard_has_a_ledger_row_per_input_and_store_rows_in_order(tmp_path):
    inputs, good = echo_inputs(tmp_path / "in")
    ledger = extract_echo_shard(
        inputs, tmp_path / "out/clips.zarr", tmp_path / "out/ledger.csv", CLIP_OPTIONS
    )

    assert list(ledger.columns) == [*LEDGER_COLUMNS, "manifest_row", "study"]
    assert ledger["source"].tolist() == ["view-0", "view-1", "view-2", "view-3"]
    assert ledger["status"].tolist() == ["ok", "rejected", "ok", "rejected"]
    assert ledger["row"].tolist()[::2] == [0, 1] and ledger["row"].isna().tolist() == [
        False,
        True,
        False,
        True,
    ]
    assert ledger["reason"][0] == ledger["reason"][2] == ""
    assert ledger["reason"][1] == "not a DICOM file"
    assert ledger["reason"][3] == "no moving scan sector: all frames identical"
    assert ledger["manifest_row"].tolist() == [10, 11, 12, 13]
    assert ledger["study"].tolist() == ["s0", "s0", "s1", "s1"]

    clips = open_rows(tmp_path / "out/clips.zarr", "clips")
    assert clips.shape == (2, 8, 32, 32, 3) and clips.dtype == np.uint8
    for row, path in enumerate(good):
        np.testing.assert_array_equal(clips[row], extract_clip(path, **CLIP_OPTIONS))
    assert not np.array_equal(clips[0], clips[1])

    on_disk = read_ledger(tmp_path / "out/ledger.csv")
    assert on_disk["status"].tolist() == ledger["status"].tolist()
    assert on_disk["row"].tolist()[::2] == [0, 1] and on_disk["row"].isna().sum() == 2
    assert on_disk["reason"].fillna("").tolist() == ledger["reason"].tolist()
    assert sorted(os.listdir(tmp_path / "out")) == ["clips.zarr", "ledger.csv"]


def test_the_store_is_committed_before_the_ledger_is_written(tmp_path, monkeypatch):
    inputs, _ = echo_inputs(tmp_path / "in")
    seen = []
    write_table = shard_run.write_table

    def checking_write_table(table, path):
        out = path.parent
        seen.append(
            {
                "store_rows": open_rows(out / "clips.zarr", "clips").shape[0],
                "leftovers": [name for name in os.listdir(out) if ".tmp-" in name],
            }
        )
        return write_table(table, path)

    monkeypatch.setattr(shard_run, "write_table", checking_write_table)
    extract_echo_shard(
        inputs, tmp_path / "out/clips.zarr", tmp_path / "out/ledger.csv", CLIP_OPTIONS
    )
    assert seen == [{"store_rows": 2, "leftovers": []}]


def test_a_store_that_cannot_be_committed_leaves_no_ledger(tmp_path, monkeypatch):
    inputs, _ = echo_inputs(tmp_path / "in")

    def failing_commit(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ShardWriter, "commit", failing_commit)
    with pytest.raises(OSError):
        extract_echo_shard(
            inputs, tmp_path / "out/clips.zarr", tmp_path / "out/ledger.csv", CLIP_OPTIONS
        )
    assert os.listdir(tmp_path / "out") == []  # no ledger, no store, no temporary store


def test_an_empty_shard_gives_an_empty_store_and_ledger(tmp_path):
    ledger = extract_echo_shard(
        [], tmp_path / "out/clips.zarr", tmp_path / "out/ledger.csv", CLIP_OPTIONS
    )
    assert len(ledger) == 0 and list(ledger.columns) == list(LEDGER_COLUMNS)
    assert open_rows(tmp_path / "out/clips.zarr", "clips").shape == (0, 8, 32, 32, 3)
    assert len(read_ledger(tmp_path / "out/ledger.csv")) == 0


def ecg_inputs(folder):
    folder.mkdir()
    np.savez(folder / "a.npz", signal=synthetic_ecg(seed=1), fs=500.0)
    np.save(folder / "b.npy", synthetic_ecg(fs=250.0, seed=2))
    np.save(folder / "no_rate.npy", synthetic_ecg(seed=3))
    np.savez(folder / "flat.npz", signal=np.zeros((12, 5000)), fs=500.0)
    np.savez(folder / "d.npz", signal=synthetic_ecg(fs=1000.0, seed=4), fs=1000.0)
    return [
        ShardInput(str(folder / "a.npz"), "ecg-a", {"ecg": "a"}),
        ShardInput(str(folder / "b.npy"), "ecg-b", {"ecg": "b"}, {"fs": 250.0}),
        ShardInput(str(folder / "no_rate.npy"), "ecg-c", {"ecg": "c"}),
        ShardInput(str(folder / "missing.npz"), "ecg-m", {"ecg": "m"}),
        ShardInput(str(folder / "flat.npz"), "ecg-f", {"ecg": "f"}),
        ShardInput(str(folder / "d.npz"), "ecg-d", {"ecg": "d"}),
    ]


def test_ecg_shard_rows_are_the_prepared_signals_in_input_order(tmp_path):
    inputs = ecg_inputs(tmp_path / "in")
    ledger = prep_ecg_shard(
        inputs,
        tmp_path / "out/ecg.zarr",
        tmp_path / "out/ledger.csv",
        ECG_OPTIONS,
        rows_per_chunk=2,
    )

    assert ledger["source"].tolist() == ["ecg-a", "ecg-b", "ecg-c", "ecg-m", "ecg-f", "ecg-d"]
    assert ledger["ecg"].tolist() == ["a", "b", "c", "m", "f", "d"]
    assert ledger["status"].tolist() == ["ok", "ok", "rejected", "rejected", "rejected", "ok"]
    assert ledger["row"].tolist()[:2] == [0, 1] and ledger["row"][5] == 2
    assert ledger["row"].isna().tolist() == [False, False, True, True, True, False]
    assert ledger["reason"].tolist() == [
        "",
        "",
        "bare .npy ECG has no sampling rate: give fs",
        "ECG file not found (numpy)",
        "flat signal: all leads constant",
        "",
    ]

    signals = open_rows(tmp_path / "out/ecg.zarr", "signals")
    assert signals.shape == (3, 12, 2000) and signals.dtype == np.float32
    for row, item in zip(ledger["row"].dropna(), [inputs[0], inputs[1], inputs[5]]):
        expected = prepare_ecg(read_ecg(item.path, **item.options), **ECG_OPTIONS)
        np.testing.assert_array_equal(signals[int(row)], expected)
    # the per-file rate was used: without it the .npy would have been rejected above
    assert not np.allclose(signals[0], signals[1])

    on_disk = read_ledger(tmp_path / "out/ledger.csv")
    pd.testing.assert_series_equal(on_disk["row"], ledger["row"], check_names=False)
    assert on_disk["reason"].fillna("").tolist() == ledger["reason"].tolist()


def test_a_file_over_the_time_limit_is_rejected_and_the_shard_goes_on(tmp_path, monkeypatch):
    inputs = ecg_inputs(tmp_path / "in")[:2]
    read = shard_run.read_ecg

    def slow_for_a(path, **options):
        if path.endswith("a.npz"):
            time.sleep(5)
        return read(path, **options)

    monkeypatch.setattr(shard_run, "read_ecg", slow_for_a)
    started = time.monotonic()
    ledger = prep_ecg_shard(
        inputs,
        tmp_path / "out/ecg.zarr",
        tmp_path / "out/ledger.csv",
        ECG_OPTIONS,
        time_limit_s=0.3,
    )
    assert time.monotonic() - started < 4
    assert ledger["status"].tolist() == ["rejected", "ok"]
    assert ledger["reason"][0] == "reading took longer than the time limit of 0.3 s"
    assert ledger["row"].isna().tolist() == [True, False] and ledger["row"][1] == 0
    assert open_rows(tmp_path / "out/ecg.zarr", "signals").shape == (1, 12, 2000)
