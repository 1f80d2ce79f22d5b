"""One variant's pretraining from cached stores (echo2ecg.train.pretrain), called the way
workflow_scripts/pretrain.py calls it, on a tiny cohort built in tmp_path."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import (
    by_shard,
    tiny_encoder_config,
    tiny_train_config,
    variant_outputs,
    write_tiny_cohort,
)

from echo2ecg.data.ledger import read_shard_ledgers
from echo2ecg.evaluate.features import load_variant
from echo2ecg.train.pairs import read_id_table
from echo2ecg.train.pretrain import build_model, load_pair_data, pretrain_variant

torch.set_num_threads(1)

RECIPE = {
    "fs": 500,
    "duration_s": 10.0,
    "clip_sigma": 4.0,
    "asls_lam": 1e7,
    "asls_p": 0.3,
    "asls_iterations": 5,
    "zscore_eps": 1e-10,
}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_tiny_cohort(tmp_path_factory.mktemp("cohort"))


def pipeline_inputs(cohort, max_views=128):
    """What workflow_scripts/pretrain.py reads: train and val PairData."""
    pairs = read_id_table(cohort.pairs_path)
    ecg_stores = by_shard(cohort.ecg_stores)
    embedding_stores = by_shard(cohort.embedding_stores)
    echo_ledger = read_shard_ledgers(by_shard(cohort.echo_ledgers))
    return {
        split: load_pair_data(pairs, split, ecg_stores, echo_ledger, embedding_stores, max_views)
        for split in ("train", "val")
    }


def test_ledgers_are_labelled_by_the_shards_they_are_given(cohort):
    ledger = read_shard_ledgers(by_shard(cohort.echo_ledgers))
    assert sorted(set(ledger["shard"])) == sorted(by_shard(cohort.echo_ledgers))


def test_pair_data_holds_the_splits_pairs_with_their_stored_rows(cohort):
    data = pipeline_inputs(cohort)
    pairs = cohort.pairs
    for split, patients in (("train", range(8)), ("val", range(8, 10))):
        part = data[split]
        expected = pairs[(pairs["split"] == split) & (pairs["n_views"] > 0)]
        assert len(part.pairs) == len(expected) == 2 * len(patients)  # report-only s0r left out
        ecg_ids = expected["ecg"].drop_duplicates().tolist()
        study_ids = expected["study"].drop_duplicates().tolist()
        assert part.ecgs.shape == (len(ecg_ids), 12, 480) and part.ecgs.dtype == np.float32
        for index, ecg in enumerate(ecg_ids):  # rows come from the right shard and row
            np.testing.assert_array_equal(part.ecgs[index], cohort.signals[ecg])
        assert len(part.study_views) == len(study_ids)
        for index, study in enumerate(study_ids):  # ok views only, in ledger order
            np.testing.assert_array_equal(part.study_views[index], cohort.views[study])
        assert [(ecg_ids[e], study_ids[s]) for e, s in part.pairs] == list(
            zip(expected["ecg"], expected["study"])
        )


def test_trace_and_file_ecgs_train_together_with_their_leads_and_lengths(cohort, tmp_path):
    """pairing.ecg_source both: lead-II traces (a shorter store) beside 12-lead files."""
    from echo2ecg.data.store import ShardWriter

    pairs = read_id_table(cohort.pairs_path)
    studies = pairs.drop_duplicates("study").query("n_views > 0").reset_index(drop=True)
    writer = ShardWriter(
        tmp_path / "trace/ecg.zarr",
        "signals",
        (12, 300),
        np.float32,
        len(studies),
        attributes={"leads": ["II"]},
    )
    traces = np.zeros((len(studies), 12, 300), np.float32)
    traces[:, 1] = np.random.default_rng(0).normal(size=(len(studies), 300))
    rows = [writer.append(trace) for trace in traces]
    writer.commit()
    trace_pairs = studies.assign(
        ecg="trace-" + studies["study"],
        ecg_shard="0000",
        ecg_row=rows,
        days_apart=0.0,
        ecg_source="echo_trace",
    )
    both = pd.concat([pairs.assign(ecg_source="ecg_files"), trace_pairs], ignore_index=True)
    echo_ledger = read_shard_ledgers(by_shard(cohort.echo_ledgers))
    data = load_pair_data(
        both,
        "train",
        by_shard(cohort.ecg_stores),
        echo_ledger,
        by_shard(cohort.embedding_stores),
        128,
        {"0000": str(tmp_path / "trace/ecg.zarr")},
    )
    part = both.query("split == 'train' and n_views > 0").drop_duplicates("ecg")
    is_trace = (part["ecg_source"] == "echo_trace").to_numpy()
    assert data.ecgs.shape == (len(part), 12, 480)
    assert (data.lengths == np.where(is_trace, 300, 480)).all()
    assert (data.lead_masks.sum(axis=1) == np.where(is_trace, 1, 12)).all()
    assert data.lead_masks[is_trace][:, 1].all()
    assert not data.ecgs[is_trace][:, :, 300:].any()
    np.testing.assert_array_equal(data.ecgs[is_trace][0, :, :300], traces[0])
    history = pretrain_variant(
        "echo2ecg",
        {"pooling": "attention"},
        tiny_encoder_config(),
        tiny_train_config(epochs=1),
        data,
        data,
        *variant_outputs(tmp_path / "model"),
    )
    assert np.isfinite(history[["train_loss", "val_loss"]].to_numpy()).all()


def test_max_views_keeps_the_first_views_in_ledger_order(cohort):
    data = pipeline_inputs(cohort, max_views=2)["train"]
    study_ids = cohort.pairs.query("split == 'train' and n_views > 0")["study"].unique()
    for index, study in enumerate(study_ids):
        np.testing.assert_array_equal(data.study_views[index], cohort.views[study][:2])
    assert max(len(v) for v in data.study_views) == 2
    assert max(len(cohort.views[s]) for s in study_ids) == 3


def test_a_variant_trains_end_to_end_and_its_checkpoint_reloads(cohort, tmp_path):
    data = pipeline_inputs(cohort)
    encoder, train_config = tiny_encoder_config(), tiny_train_config()
    spec = {"pooling": "attention"}
    history = pretrain_variant(
        "echo2ecg",
        spec,
        encoder,
        train_config,
        data["train"],
        data["val"],
        *variant_outputs(tmp_path / "echo2ecg"),
        device="cpu",
        extra={"ecg_recipe": RECIPE},
    )
    out = tmp_path / "echo2ecg"
    assert sorted(p.name for p in out.iterdir()) == [
        "best.pt",
        "history.csv",
        "last.pt",
        "loss.png",
    ]
    assert history["epoch"].tolist() == [1, 2]
    assert np.isfinite(history[["train_loss", "val_loss"]].to_numpy()).all()
    pd.testing.assert_frame_equal(pd.read_csv(out / "history.csv"), history, check_dtype=False)
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    last = torch.load(out / "last.pt", weights_only=False)
    assert last["epoch"] == 2
    assert last["extra"] == {
        "variant": "echo2ecg",
        "variant_spec": spec,
        "ecg_encoder": encoder,
        "aggregator": None,
        "ecg_recipe": RECIPE,
    }
    assert last["settings"]["n_samples"] == 240 and last["settings"]["batch_size"] == 4
    assert last["settings"]["standardize_views"] is True  # the shipped train section's value
    model, checkpoint = load_variant(out / "last.pt")
    assert not model.training and model.ecg_encoder.embed_dim == 16
    for name, value in model.state_dict().items():
        assert torch.equal(value, checkpoint["model"][name]), name
    # fitted on the training views: the view standardisation is not the identity
    train_views = torch.from_numpy(np.concatenate(data["train"].study_views))
    torch.testing.assert_close(model.view_mean, train_views.mean(0))
    # training moved the weights away from the seed's initialisation
    torch.manual_seed(train_config["seed"])
    initial = build_model(encoder, "attention")
    assert not torch.equal(initial.ecg_proj.weight, model.ecg_proj.weight)


def test_pretraining_twice_gives_the_same_history_and_weights(cohort, tmp_path):
    data = pipeline_inputs(cohort)
    encoder, train_config = tiny_encoder_config(), tiny_train_config(epochs=1)
    histories = [
        pretrain_variant(
            "mean_pool",
            {"pooling": "mean"},
            encoder,
            train_config,
            data["train"],
            data["val"],
            *variant_outputs(tmp_path / name),
            device="cpu",
        )
        for name in ("a", "b")
    ]
    columns = ["epoch", "train_loss", "val_loss", "lr"]
    pd.testing.assert_frame_equal(histories[0][columns], histories[1][columns])
    first, second = (
        torch.load(tmp_path / name / "last.pt", weights_only=False)["model"] for name in ("a", "b")
    )
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_an_untrained_variant_is_saved_at_its_seeded_initialisation(cohort, tmp_path):
    data = pipeline_inputs(cohort)
    encoder, train_config = tiny_encoder_config(), tiny_train_config()
    history = pretrain_variant(
        "no_align",
        {"pooling": "attention", "train": False},
        encoder,
        train_config,
        data["train"],
        data["val"],
        *variant_outputs(tmp_path / "no_align"),
        device="cpu",
    )
    assert len(history) == 0
    assert list(pd.read_csv(tmp_path / "no_align/history.csv").columns) == [
        "epoch",
        "train_loss",
        "val_loss",
        "lr",
        "seconds",
    ]
    best, last = (
        torch.load(tmp_path / "no_align" / name, weights_only=False)
        for name in ("best.pt", "last.pt")
    )
    assert best["epoch"] == last["epoch"] == 0 and np.isnan(best["val_loss"])
    torch.manual_seed(train_config["seed"])
    initial = build_model(encoder, "attention").state_dict()
    for name, value in initial.items():
        assert torch.equal(best["model"][name], value), name
        assert torch.equal(last["model"][name], value), name


def test_the_aggregator_sizes_shape_the_model_and_travel_with_its_checkpoint(cohort, tmp_path):
    data = pipeline_inputs(cohort)
    aggregator = {"study_dim": 24, "num_heads": 2, "joint_dim": 16}
    pretrain_variant(
        "small",
        {"pooling": "attention", "train": False},
        tiny_encoder_config(),
        tiny_train_config(),
        data["train"],
        data["val"],
        *variant_outputs(tmp_path / "small"),
        device="cpu",
        aggregator=aggregator,
    )
    model, checkpoint = load_variant(tmp_path / "small" / "last.pt")
    assert checkpoint["extra"]["aggregator"] == aggregator
    assert model.view_pool.view_proj.out_features == 24
    assert model.view_pool.attention.num_heads == 2
    assert model.echo_proj.weight.shape == (16, 24)
    assert model.ecg_proj.out_features == 16


def test_unknown_train_settings_are_refused(cohort, tmp_path):
    data = pipeline_inputs(cohort)
    with pytest.raises(ValueError, match="train settings not understood: epoch$"):
        pretrain_variant(
            "x",
            {"pooling": "mean"},
            tiny_encoder_config(),
            {**tiny_train_config(), "epoch": 3},
            data["train"],
            data["val"],
            *variant_outputs(tmp_path / "x"),
            device="cpu",
        )
