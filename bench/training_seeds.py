"""How much one training run decides the retrieval comparison: variants retrained under
several training seeds on a finished run's caches.

The demo's findings come from one training run per variant (``train.seed``). With a few
dozen training studies the run itself moves a variant's retrieval mean ranks as much as
the difference between two variants does. This benchmark reads a finished run folder
(its ``config.yaml`` and ``results/``: the pairs, ECG shards, echo ledgers and
view-embedding shards of ``pairing.train_cohort``), retrains each named variant once
per seed with the run's settings and only ``train.seed`` changed (and what ``--set``
changes: a control, such as the single-view baseline at multi-view's number of steps),
and scores ECG → study retrieval on the test split (the pipeline's ``retrieval_table``;
mean rank, lower is better). Per seed and on the mean over seeds it counts the
phenotypes on which ``--model`` ranks ahead of ``--versus``.

    .venv/bin/python bench/training_seeds.py --run . --seeds 42 1 2 3 \
        --json bench/out/training_seeds.json
    .venv/bin/python bench/training_seeds.py --run . --seeds 42 1 2 --variants single_view \
        --set train.single_view_sampling=one_per_study
    .venv/bin/python bench/training_seeds.py --run . --seeds 42 --keep <folder>
    .venv/bin/python bench/training_seeds.py --smoke   # a tiny run folder, 2 epochs

With ``--keep`` each retrained model stays in ``<folder>/<variant>@<seed>/last.pt``
(``bench/poor_planes.py --models <folder> --variants echo2ecg@42`` reads it).
"""

from __future__ import annotations

import os

# One thread per process, as the pipeline's pretrain jobs run.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from figures import parse_args, write_figures  # noqa: E402

from echo2ecg.data.ledger import read_shard_ledgers  # noqa: E402
from echo2ecg.data.shard_plan import shard_label  # noqa: E402
from echo2ecg.data.store import ShardWriter, write_table  # noqa: E402
from echo2ecg.evaluate.downstream import RETRIEVAL_PHENOTYPES, retrieval_table  # noqa: E402
from echo2ecg.evaluate.features import cohort_features, load_variant  # noqa: E402
from echo2ecg.train.loop import TrainOutputs  # noqa: E402
from echo2ecg.train.pairs import read_id_table  # noqa: E402
from echo2ecg.train.pretrain import load_pair_data, pretrain_variant  # noqa: E402
from echo2ecg.vocabulary import PHENOTYPES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run_stores(run: Path, config: dict) -> dict[str, dict[str, str]]:
    """The training cohort's stores of a run folder, shard label → path, in the
    pipeline's results layout (rules/common.smk, ``SHARD_DIRS``)."""
    cohort = config["cohorts"][config["pairing"]["train_cohort"]]
    name = config["pairing"]["train_cohort"]
    results = run / "results"

    def shards(stage: str, n: int, file: str) -> dict[str, str]:
        return {
            shard_label(i): str(results / stage.format(name) / f"shard_{shard_label(i)}" / file)
            for i in range(n)
        }

    return {
        "ecg": shards("data/{}/ecg", cohort["ecg_shards"], "ecg.zarr"),
        "ledgers": shards("data/{}/echo", cohort["echo_shards"], "ledger.csv"),
        "embeddings": shards("embeddings/{}", cohort["echo_shards"], "embeddings.zarr"),
    }


def run_pairs(run: Path, config: dict) -> pd.DataFrame:
    """The pairs table of a run folder's training cohort (``pairing.train_cohort``)."""
    return read_id_table(
        run / "results" / "pairs" / config["pairing"]["train_cohort"] / "pairs.csv"
    )


def seed_ranks(
    run: Path, config: dict, variants: list[str], seeds: list[int], scratch: Path
) -> pd.DataFrame:
    """Retrain each variant under each seed; → one row per (variant, seed, phenotype)
    with ``mean_rank``, ``p_at_1`` and the run's training seconds ``train_s``."""
    stores = run_stores(run, config)
    pairs = run_pairs(run, config)
    ledger = read_shard_ledgers(stores["ledgers"])
    max_views = config["train"]["max_views"]
    data = {
        split: load_pair_data(pairs, split, stores["ecg"], ledger, stores["embeddings"], max_views)
        for split in ("train", "val")
    }
    test = pairs[pairs["split"] == "test"]  # retrieval reads the test split only
    features, seconds = {}, {}
    for variant in variants:
        for seed in seeds:
            key = f"{variant}@{seed}"
            folder = scratch / key
            folder.mkdir(parents=True)
            train = {**config["train"], "seed": seed}
            outputs = TrainOutputs(folder / "best.pt", folder / "last.pt", folder / "history.csv")
            started = time.perf_counter()
            pretrain_variant(
                variant,
                config["variants"][variant],
                config["ecg_encoder"],
                train,
                data["train"],
                data["val"],
                outputs,
                folder / "loss.png",
                aggregator=config["aggregator"],
            )
            seconds[key] = time.perf_counter() - started
            model, _ = load_variant(folder / "last.pt")
            features[key] = cohort_features(
                model,
                config["evaluation"]["n_samples"],
                test,
                stores["ecg"],
                ledger,
                stores["embeddings"],
                max_views,
                kind=config["evaluation"]["features"],
            )
            logging.info("%s trained in %.0f s", key, seconds[key])
    evaluation = config["evaluation"]
    table, _ = retrieval_table(
        features, pairs, evaluation["retrieval_tolerance_sd"], 100, evaluation["seed"], None
    )
    table = table[table["model"] != "random"].copy()
    table[["variant", "seed"]] = table["model"].str.split("@", expand=True)
    table["seed"] = table["seed"].astype(int)
    table["train_s"] = table["model"].map(seconds).round(1)
    return table[["variant", "seed", "phenotype", "mean_rank", "p_at_1", "train_s"]]


def compare(ranks: pd.DataFrame, model: str, versus: str) -> dict:
    """Phenotypes on which ``model``'s mean rank is below ``versus``'s: per seed (the
    same seed for both) and on the mean over seeds."""
    wide = ranks.pivot_table(index=["seed", "phenotype"], columns="variant", values="mean_rank")
    ahead = (wide[model] < wide[versus]).groupby(level="seed").sum().astype(int)
    means = wide.groupby(level="phenotype").mean()
    return {
        "ahead_per_seed": {int(seed): int(n) for seed, n in ahead.items()},
        "mean_rank_over_seeds": {
            v: {p: round(float(means.loc[p, v]), 3) for p in RETRIEVAL_PHENOTYPES}
            for v in (model, versus)
        },
        "ahead_on_mean": int((means[model] < means[versus]).sum()),
    }


def with_settings(config: dict, settings: list[str]) -> dict:
    """``config`` with each ``SECTION.KEY=VALUE`` applied (the value read as YAML); an
    unknown section or key is an error, so that a typo cannot pass for a control run."""
    config = {
        section: dict(values) if isinstance(values, dict) else values
        for section, values in config.items()
    }
    for setting in settings:
        name, sep, value = setting.partition("=")
        section, dot, key = name.partition(".")
        if not sep or not dot:
            raise SystemExit(f"--set {setting!r}: expected SECTION.KEY=VALUE")
        if key not in config.get(section, {}):
            raise SystemExit(f"--set {setting!r}: the run's config has no {section}.{key}")
        config[section][key] = yaml.safe_load(value)
    return config


def write_smoke_run(run: Path) -> dict:
    """A run folder of 24 patients, one study of 2 or 3 random views and 2 ECGs each;
    returns its config (the repository's, at 2 epochs, one shard a stage)."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["cohorts"]["internal"].update(ecg_shards=1, echo_shards=1)
    config["train"].update(epochs=2, batch_size=8, warmup_epochs=1)
    rng = np.random.default_rng(0)
    n = 24
    results = run / "results"
    n_views = rng.integers(2, 4, size=n)
    with ShardWriter(
        results / "data/internal/ecg/shard_0000/ecg.zarr", "signals", (12, 1200), np.float32, 2 * n
    ) as writer:
        for _ in range(2 * n):
            writer.append(rng.normal(size=(12, 1200)).astype(np.float32))
        writer.commit()
    with ShardWriter(
        results / "embeddings/internal/shard_0000/embeddings.zarr",
        "embeddings",
        (512,),
        np.float32,
        int(n_views.sum()),
    ) as writer:
        for _ in range(int(n_views.sum())):
            writer.append(rng.normal(size=512).astype(np.float32))
        writer.commit()
    studies = [f"s{i:02d}" for i in range(n)]
    ledger = pd.DataFrame(
        {
            "source": [f"file-{i}" for i in range(int(n_views.sum()))],
            "status": "ok",
            "reason": "",
            "note": "",
            "row": np.arange(int(n_views.sum())),
            "study": np.repeat(studies, n_views),
        }
    )
    write_table(ledger, results / "data/internal/echo/shard_0000/ledger.csv")
    split = np.array(["train"] * 14 + ["val"] * 2 + ["test"] * 8)
    phenotypes = pd.DataFrame(rng.uniform(20, 70, size=(n, len(PHENOTYPES))), columns=PHENOTYPES)
    phenotypes["shd"] = rng.integers(0, 2, size=n)
    pairs = pd.DataFrame(
        {
            "patient": np.repeat([f"p{i:02d}" for i in range(n)], 2),
            "ecg": [f"e{i:02d}" for i in range(2 * n)],
            "study": np.repeat(studies, 2),
            "days_apart": 1.0,
            "split": np.repeat(split, 2),
            "ecg_shard": "0000",
            "ecg_row": np.arange(2 * n),
            "n_views": np.repeat(n_views, 2),
            **{name: np.repeat(phenotypes[name].to_numpy(), 2) for name in PHENOTYPES},
            "ecg_source": "ecg_files",
        }
    )
    write_table(pairs, results / "pairs/internal/pairs.csv")
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("."), help="a finished run folder")
    parser.add_argument("--variants", nargs="+", default=["echo2ecg", "single_view"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2, 3])
    parser.add_argument("--model", default="echo2ecg")
    parser.add_argument("--versus", default="single_view")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="config values changed before retraining (YAML values), e.g. train.epochs=20",
    )
    parser.add_argument("--keep", type=Path, help="keep the retrained models in this folder")
    parser.add_argument("--json", type=Path)
    args = parse_args(parser, {})
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if args.smoke:
            run, seeds = scratch / "run", [0, 1]
            config = write_smoke_run(run)
            variants = [args.model, args.versus]
        else:
            run, seeds, variants = args.run, args.seeds, args.variants
            config = yaml.safe_load((run / "config.yaml").read_text())
        config = with_settings(config, args.set)
        models = args.keep if args.keep is not None else scratch / "m"
        ranks = seed_ranks(run, config, variants, sorted(set(seeds)), models)
        if args.smoke:  # the same seed twice must train the same model
            again = seed_ranks(run, config, variants[:1], [0], scratch / "again")
            first = ranks[(ranks["variant"] == variants[0]) & (ranks["seed"] == 0)]
            assert np.allclose(first["mean_rank"], again["mean_rank"]), (first, again)
            assert set(ranks["phenotype"]) == set(RETRIEVAL_PHENOTYPES)
    result = {
        "run": str(args.run) if not args.smoke else "smoke",
        "set": args.set,
        "ranks": ranks.round(3).to_dict(orient="records"),
    }
    # a control run may retrain one variant alone, to set beside another run's figures
    compared = {args.model, args.versus} <= set(ranks["variant"])
    if compared:
        result.update(compare(ranks, args.model, args.versus))
    wide = ranks.pivot_table(index=["variant", "seed"], columns="phenotype", values="mean_rank")
    print(wide[list(RETRIEVAL_PHENOTYPES)].round(3))
    if compared:
        print({k: result[k] for k in ("ahead_per_seed", "ahead_on_mean", "mean_rank_over_seeds")})
    write_figures(result, args.json)


if __name__ == "__main__":
    main()
