import os

import numpy as np
import pytest
import zarr

from echo2ecg.data.store import ShardWriter, open_rows, read_ledger, write_table


def test_rows_land_in_order_and_array_is_cut_to_rows_written(tmp_path):
    rows = [np.full((2, 3), i, dtype=np.float32) for i in range(5)]
    writer = ShardWriter(
        tmp_path / "s.zarr",
        "signals",
        (2, 3),
        np.float32,
        capacity=8,
        rows_per_chunk=2,
        attributes={"recipe": {"fs": 500}},
    )
    assert [writer.append(r) for r in rows] == [0, 1, 2, 3, 4]
    writer.commit()
    stored = open_rows(tmp_path / "s.zarr", "signals")
    assert stored.shape == (5, 2, 3)
    np.testing.assert_array_equal(stored[:], np.stack(rows))
    group = zarr.open_group(tmp_path / "s.zarr", mode="r")
    assert group.metadata.zarr_format == 3
    assert group.attrs["recipe"] == {"fs": 500}


def test_nothing_is_visible_until_commit(tmp_path):
    writer = ShardWriter(tmp_path / "s.zarr", "x", (4,), np.uint8, capacity=2)
    writer.append(np.ones(4, np.uint8))
    assert not (tmp_path / "s.zarr").exists()
    assert writer.tmp_path.exists()
    writer.commit()
    assert (tmp_path / "s.zarr").exists() and not writer.tmp_path.exists()


def test_failure_inside_the_writer_leaves_no_store(tmp_path):
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path / "s.zarr", "x", (4,), np.uint8, capacity=2) as writer:
            writer.append(np.ones(4, np.uint8))
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []


def test_leftover_temporary_store_of_a_killed_job_is_replaced(tmp_path):
    stale = tmp_path / ".s.zarr.tmp-999999"  # another, killed process
    stale.mkdir()
    (stale / "junk").write_text("half a chunk")
    writer = ShardWriter(tmp_path / "s.zarr", "x", (1,), np.uint8, capacity=1)
    writer.append(np.zeros(1, np.uint8))
    writer.commit()
    assert sorted(os.listdir(tmp_path)) == ["s.zarr"]


def test_wrong_row_shape_is_refused(tmp_path):
    writer = ShardWriter(tmp_path / "s.zarr", "x", (4,), np.uint8, capacity=1)
    with pytest.raises(ValueError, match="row shape"):
        writer.append(np.zeros(5, np.uint8))


def test_empty_shard_commits_an_empty_array(tmp_path):
    writer = ShardWriter(tmp_path / "s.zarr", "x", (3,), np.float32, capacity=0)
    writer.commit()
    assert open_rows(tmp_path / "s.zarr", "x").shape == (0, 3)


def test_ledger_round_trip_keeps_empty_rows_empty(tmp_path):
    import pandas as pd

    ledger = pd.DataFrame(
        {
            "source": ["a", "b"],
            "status": ["ok", "rejected"],
            "reason": ["", "no pixel data"],
            "row": pd.array([0, None], "Int64"),
        }
    )
    write_table(ledger, tmp_path / "ledger.csv")
    back = read_ledger(tmp_path / "ledger.csv")
    assert back["row"].tolist()[0] == 0 and back["row"].isna().tolist() == [False, True]
    assert back["reason"].fillna("").tolist() == ["", "no pixel data"]
