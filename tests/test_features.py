"""A variant's feature file (echo2ecg.evaluate.features, feature_files): computed from the
cached stores of a tiny cohort, written, and read back as the evaluation tables read it."""

import numpy as np
import pytest
import torch
from conftest import by_shard, tiny_checkpoint, write_tiny_cohort

from echo2ecg.data.ledger import read_shard_ledgers
from echo2ecg.evaluate.feature_files import load_features, save_features
from echo2ecg.evaluate.features import cohort_features, load_variant
from echo2ecg.train.pairs import read_id_table

torch.set_num_threads(1)

N_SAMPLES = 240
KEYS = ["ecg", "ecg_features", "ecg_joint", "study", "study_joint"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_tiny_cohort(tmp_path_factory.mktemp("cohort"))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    model, _ = load_variant(tiny_checkpoint(tmp_path_factory.mktemp("variant")))
    return model


def features_of(cohort, model, kind="encoder", max_views=128, with_echo=True):
    """cohort_features called the way workflow_scripts/features.py calls it."""
    return cohort_features(
        model,
        N_SAMPLES,
        read_id_table(cohort.pairs_path),
        by_shard(cohort.ecg_stores),
        read_shard_ledgers(by_shard(cohort.echo_ledgers)) if with_echo else None,
        by_shard(cohort.embedding_stores) if with_echo else {},
        max_views,
        "cpu",
        kind=kind,
    )


def test_feature_arrays_hold_every_paired_ecg_and_every_study_with_views(cohort, model):
    features = features_of(cohort, model, max_views=2)
    assert sorted(features) == sorted(KEYS)
    pairs = cohort.pairs
    ecg_ids = list(dict.fromkeys(pairs["ecg"]))  # every split, in order of appearance
    assert features["ecg"].tolist() == ecg_ids and len(ecg_ids) == 24
    signals = torch.from_numpy(np.stack([cohort.signals[e][:, :N_SAMPLES] for e in ecg_ids]))
    with torch.no_grad():
        encoded = model.ecg_encoder(signals).numpy()
        joint = model.encode_ecg(signals).numpy()
    assert features["ecg_features"].shape == (24, 16)
    assert features["ecg_features"].dtype == np.float32
    np.testing.assert_allclose(features["ecg_features"], encoded, rtol=1e-4, atol=1e-5)
    assert features["ecg_joint"].shape == (24, 512)
    np.testing.assert_allclose(features["ecg_joint"], joint, rtol=1e-4, atol=1e-5)

    # s0r is paired but has no views: no study row; the others sorted by pseudonym
    assert features["study"].tolist() == sorted(f"s{i}" for i in range(12))
    assert features["study_joint"].shape == (12, 512)
    assert features["study_joint"].dtype == np.float32
    for row, study in enumerate(features["study"]):
        views = torch.from_numpy(cohort.views[study][:2])[None]  # the first max_views
        with torch.no_grad():
            expected = model.encode_study(views).numpy()[0]
        np.testing.assert_allclose(features["study_joint"][row], expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(features["study_joint"][0], features["study_joint"][1])


def test_projection_features_are_the_joint_vectors(cohort, model):
    encoder, projection = features_of(cohort, model), features_of(cohort, model, "projection")
    np.testing.assert_array_equal(projection["ecg_features"], projection["ecg_joint"])
    np.testing.assert_array_equal(projection["ecg_joint"], encoder["ecg_joint"])
    assert projection["ecg_features"].shape[1] != encoder["ecg_features"].shape[1]
    with pytest.raises(ValueError, match="kind must be one of"):
        features_of(cohort, model, "joint")


def test_a_cohort_without_echo_files_has_no_studies(cohort, model):
    features = features_of(cohort, model, with_echo=False)
    assert len(features["ecg"]) == 24
    assert features["study"].shape == (0,)
    assert features["study_joint"].shape == (0, 512) and features["study_joint"].dtype == np.float32


def test_a_feature_file_reads_back_as_it_was_written(cohort, model, tmp_path):
    features = features_of(cohort, model)
    path = save_features(features, tmp_path / "features/tiny/internal.npz")
    assert path == tmp_path / "features/tiny/internal.npz"
    assert sorted(p.name for p in path.parent.iterdir()) == ["internal.npz"]  # no .partial
    loaded = load_features(path)  # without pickle: ids must be stored as text
    assert sorted(loaded) == sorted(KEYS)
    for key in KEYS:
        assert loaded[key].dtype == features[key].dtype, key
        np.testing.assert_array_equal(loaded[key], features[key])
    assert loaded["ecg"].dtype.kind == "U" and loaded["study"].dtype.kind == "U"
