"""The demo's poor planes made the case an attention pool is built for: another heart along
the good planes' own directions, told apart by a mark alone.

In the demo a poor apical plane draws another heart behind a rib's shadow, and the shadow
moves where that heart lies in the view embedding, so a per-view linear map learns to look
past it (``bench/poor_planes.py``). This benchmark removes that way out at the embedding
level. It copies a finished demo run folder and replaces each poor plane's view embedding
with a good clip of the same view type from another study of the same split (another
heart, along exactly the directions a good plane shows one), plus ``--mark`` times the
typical length of a centred view embedding along one fixed random direction. A mean of
views can no longer separate the two hearts; an attention pool can, by the mark. With
``--mark 0`` nothing tells them apart (the control). With ``--leave-out`` the copy keeps
the embeddings and instead marks each poor plane ``left_out`` in the echo ledgers, so
that every variant trains and tests without it: what a pool that gated perfectly would
see. ECGs, pairs and splits are the run's (linked, not copied). Retrain and score the
copy with ``bench/training_seeds.py``:

    .venv/bin/python bench/marked_planes.py --run <demo run> --out <copy> --mark 1
    .venv/bin/python bench/marked_planes.py --run <demo run> --out <copy> --leave-out
    .venv/bin/python bench/training_seeds.py --run <copy> --seeds 42 1 2 3
    .venv/bin/python bench/marked_planes.py --smoke   # a planted run folder
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
import zarr
from figures import parse_args
from poor_planes import demo_clips
from training_seeds import run_pairs, run_stores, write_smoke_run

from echo2ecg.data.ledger import read_shard_ledgers
from echo2ecg.synth.echo_views import APICAL_VIEWS
from echo2ecg.train.pretrain import read_rows


def mark_poor_planes(
    clips: pd.DataFrame, raw: np.ndarray, mark: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) float32 embeddings with every ``poor`` row replaced by a donor: a good row of
    the same ``type`` and ``split`` from another ``study``, plus ``mark`` × the RMS norm of
    the centred embeddings along one random unit direction; and (N,) the donor row of each
    replaced row (−1 elsewhere). ``clips``: one row per ``raw`` row."""
    centred = raw - raw.mean(axis=0)
    length = float(np.sqrt((centred**2).sum(axis=1).mean()))
    direction = rng.normal(size=raw.shape[1])
    direction /= np.linalg.norm(direction)
    marked = raw.astype(np.float32, copy=True)
    donors = np.full(len(clips), -1)
    poor = clips["poor"].to_numpy(bool)
    good = clips[~poor]
    for i in np.flatnonzero(poor):
        row = clips.iloc[i]
        pool = good.index[
            (good["type"] == row["type"])
            & (good["split"] == row["split"])
            & (good["study"] != row["study"])
        ]
        if not len(pool):
            raise SystemExit(f"no good {row['type']} clip in another {row['split']} study")
        donors[i] = clips.index.get_loc(pool[rng.integers(len(pool))])
        marked[i] = raw[donors[i]] + mark * length * direction
    return marked, donors


def _start_copy(out: Path, config: dict) -> None:
    """``out``'s results folder, and ``config`` (the run's) as its config.yaml."""
    (out / "results").mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _link(run: Path, out: Path, path: Path | str) -> None:
    """``out``'s results/``path`` as a link to ``run``'s, unless it is there already."""
    target = out / "results" / path
    if not target.exists():
        target.symlink_to((run / "results" / path).resolve())


def write_marked_run(run: Path, out: Path, config: dict, clips: pd.DataFrame, marked: np.ndarray):
    """A run folder at ``out``: ``config`` (the run's), its ``data`` and ``pairs`` linked, and its
    view-embedding shards copied with the rows of ``clips`` (the ledger's embedded views,
    their ``shard`` and ``row``, in the order of ``marked``) set to ``marked``."""
    results = out / "results"
    _start_copy(out, config)
    _link(run, out, "data")
    _link(run, out, "pairs")
    shutil.rmtree(results / "embeddings", ignore_errors=True)
    shutil.copytree(run / "results" / "embeddings", results / "embeddings")
    stores = run_stores(out, config)["embeddings"]
    for shard, rows in clips.groupby("shard"):
        array = zarr.open_group(stores[shard], mode="r+")["embeddings"]
        for position, row in zip(rows.index, rows["row"]):
            array[int(row)] = marked[position]


def write_run_without(run: Path, out: Path, config: dict, left_out: set[str]) -> int:
    """A run folder at ``out``: ``config``, the run's pairs, embeddings and the rest of its
    data linked, and the training cohort's echo ledgers copied with the views in ``left_out``
    (their ``source`` pseudonyms) set to status ``left_out``; returns how many rows that
    set."""
    results, source = out / "results", run / "results"
    cohort = Path("data") / config["pairing"]["train_cohort"]
    _start_copy(out, config)
    (results / cohort / "echo").mkdir(parents=True, exist_ok=True)
    _link(run, out, "pairs")
    _link(run, out, "embeddings")
    for folder, skip in ((Path("data"), cohort.name), (cohort, "echo")):
        for entry in (source / folder).iterdir():
            if entry.name != skip:
                _link(run, out, folder / entry.name)
    changed = 0
    for shard in sorted((source / cohort / "echo").glob("shard_*")):
        (results / cohort / "echo" / shard.name).mkdir(exist_ok=True)
        for entry in shard.iterdir():
            if entry.name != "ledger.csv":
                _link(run, out, cohort / "echo" / shard.name / entry.name)
        ledger = pd.read_csv(shard / "ledger.csv", dtype=str, keep_default_na=False)
        hit = ledger["source"].isin(left_out)
        ledger.loc[hit, "status"] = "left_out"
        changed += int(hit.sum())
        ledger.to_csv(results / cohort / "echo" / shard.name / "ledger.csv", index=False)
    return changed


def study_splits(run: Path, config: dict) -> pd.Series:
    """Study → split of the run's training cohort."""
    return run_pairs(run, config).drop_duplicates("study").set_index("study")["split"]


def smoke_clips(run: Path, config: dict) -> tuple[pd.DataFrame, np.ndarray]:
    """The smoke run folder's views as clips (with the ledger's ``shard``, ``row`` and
    ``source``): A4C, A2C, then PLAX in each study, the second apical plane poor in every
    other study."""
    stores = run_stores(run, config)
    ledger = read_shard_ledgers(stores["ledgers"])
    ok = ledger[ledger["status"] == "ok"].reset_index(drop=True)
    clips = ok[["study", "shard", "row", "source"]].copy()
    order = clips.groupby("study").cumcount().to_numpy()
    clips["type"] = np.array(["A4C", "A2C", "PLAX"])[order]
    number = clips["study"].str[1:].astype(int).to_numpy()
    clips["poor"] = (order == 1) & (number % 2 == 0)
    return clips, read_rows(stores["embeddings"], "embeddings", ok["shard"], ok["row"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("."), help="a finished demo run folder")
    parser.add_argument("--out", type=Path, help="the marked copy to write")
    parser.add_argument("--mark", type=float, default=1.0, help="in RMS centred-view norms")
    parser.add_argument("--seed", type=int, default=0, help="donors and the mark's direction")
    parser.add_argument(
        "--leave-out", action="store_true", help="leave the poor planes out instead of marking"
    )
    args = parse_args(parser, {})
    with tempfile.TemporaryDirectory() as scratch:
        if args.smoke:
            run, out = Path(scratch) / "run", Path(scratch) / "marked"
            config = write_smoke_run(run)
            clips, raw = smoke_clips(run, config)
        else:
            if args.out is None:
                raise SystemExit("--out: where to write the marked copy")
            run, out = args.run, args.out
            config = yaml.safe_load((run / "config.yaml").read_text())
            clips, raw = demo_clips(run, config)
        clips["split"] = clips["study"].map(study_splits(run, config))
        poor = clips["poor"].to_numpy(bool)
        apical = int(clips["type"].isin(APICAL_VIEWS).sum())
        if args.leave_out:
            changed = write_run_without(run, out, config, set(clips["source"][poor]))
            print(f"{changed} poor planes of {apical} apical clips left out → {out}")
            if args.smoke:  # the copy's ledgers lose exactly the poor planes
                copy = read_shard_ledgers(run_stores(out, config)["ledgers"])
                assert changed == int(poor.sum()) > 0
                kept = copy[copy["status"] == "ok"].reset_index(drop=True)
                assert kept["source"].tolist() == clips["source"][~poor].tolist()
            return
        marked, donors = mark_poor_planes(clips, raw, args.mark, np.random.default_rng(args.seed))
        write_marked_run(run, out, config, clips, marked)
        print(
            f"{int(poor.sum())} poor planes of {apical} apical clips marked ({args.mark}) → {out}"
        )
        if args.smoke:  # the copy holds exactly the marked rows; the run is untouched
            stores = run_stores(out, config)["embeddings"]
            written = read_rows(stores, "embeddings", clips["shard"], clips["row"])
            assert np.array_equal(written, marked)
            assert np.array_equal(written[~poor], raw[~poor])
            donor = clips.iloc[donors[poor]]
            assert (donor["type"].to_numpy() == clips["type"][poor].to_numpy()).all()
            assert (donor["split"].to_numpy() == clips["split"][poor].to_numpy()).all()
            assert (donor["study"].to_numpy() != clips["study"][poor].to_numpy()).all()
            shift = written[poor] - raw[donors[poor]]
            assert np.allclose(shift, shift[0], atol=1e-5) and np.linalg.norm(shift[0]) > 0
            original = run_stores(run, config)["embeddings"]
            rows = read_rows(original, "embeddings", clips["shard"], clips["row"])
            assert np.array_equal(rows, raw)


if __name__ == "__main__":
    main()
