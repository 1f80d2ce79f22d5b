"""The trained ECG encoder as a feature extractor for new files (echo2ecg.evaluate.extractor):
one row per file, the checkpoint's own preprocessing recipe, NaN features for rejected files."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import synthetic_ecg, tiny_checkpoint, write_wfdb

from echo2ecg.data.ecg import prepare_ecg
from echo2ecg.data.ecg_formats import LEADS, read_ecg
from echo2ecg.evaluate.extractor import embed_ecg_files, retrieve_studies
from echo2ecg.evaluate.feature_files import save_features
from echo2ecg.evaluate.features import load_variant
from echo2ecg.evaluate.metrics import cosine_similarity

torch.set_num_threads(1)

# Not prepare_ecg's defaults: a checkpoint's recipe must be the one the extractor applies.
RECIPE = {
    "fs": 500,
    "duration_s": 10.0,
    "clip_sigma": 2.0,
    "asls_lam": 1e7,
    "asls_p": 0.3,
    "asls_iterations": 2,
    "zscore_eps": 1e-10,
}
N_SAMPLES = 240


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("variant"), ecg_recipe=RECIPE)


@pytest.fixture(scope="module")
def ecg_files(tmp_path_factory):
    """good .npz (500 Hz), broken .npz, good WFDB record (250 Hz), missing file."""
    folder = tmp_path_factory.mktemp("ecgs")
    np.savez(folder / "a.npz", signal=synthetic_ecg(seed=1), fs=500.0)
    (folder / "broken.npz").write_bytes(b"PK\x03\x04 not a zip archive")
    header = write_wfdb(folder, LEADS, synthetic_ecg(fs=250.0, seed=2), fs=250, name="b")
    return [
        str(folder / "a.npz"),
        str(folder / "broken.npz"),
        str(header),
        str(folder / "missing.npz"),
    ]


def encoder_features(checkpoint, path, recipe=RECIPE):
    model, _ = load_variant(checkpoint)
    signal = prepare_ecg(read_ecg(path), **recipe)[None, :, :N_SAMPLES]
    with torch.no_grad():
        return model.ecg_encoder(torch.from_numpy(signal)).numpy()[0]


def test_one_row_per_file_with_the_encoders_features(checkpoint, ecg_files):
    table = embed_ecg_files(str(checkpoint), ecg_files)
    assert list(table.columns) == [
        "source",
        "status",
        "reason",
        *(f"feature_{i}" for i in range(16)),
    ]
    assert table["source"].tolist() == ecg_files
    assert table["status"].tolist() == ["ok", "rejected", "ok", "rejected"]
    assert table["reason"].tolist() == [
        "",
        "unreadable .npz file: no zip directory",
        "",
        "ECG file not found (numpy)",
    ]
    features = table.filter(like="feature_").to_numpy()
    assert features.dtype == np.float32
    assert np.isnan(features[[1, 3]]).all()
    assert np.isfinite(features[[0, 2]]).all()
    for row in (0, 2):
        np.testing.assert_allclose(
            features[row], encoder_features(checkpoint, ecg_files[row]), rtol=1e-4, atol=1e-5
        )
    assert not np.allclose(features[0], features[2])


def test_a_lead_subset_is_embedded_as_those_leads_alone(checkpoint, ecg_files):
    """embed-ecg --leads II: lead II preprocessed by itself and embedded alone."""
    table = embed_ecg_files(str(checkpoint), ecg_files[:1], leads=("II",))
    model, _ = load_variant(checkpoint)
    alone = prepare_ecg(read_ecg(ecg_files[0]), **RECIPE, leads=("II",))[None, 1:2, :N_SAMPLES]
    with torch.no_grad():
        expected = model.ecg_encoder.forward_leads(torch.from_numpy(alone), [1]).numpy()[0]
    features = table.filter(like="feature_").to_numpy()[0]
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(features, encoder_features(checkpoint, ecg_files[0]), atol=1e-3)


def test_the_checkpoints_recipe_is_the_one_applied(checkpoint, ecg_files):
    table = embed_ecg_files(str(checkpoint), ecg_files[:1])
    defaults = encoder_features(checkpoint, ecg_files[0], recipe={})
    assert not np.allclose(table.filter(like="feature_").to_numpy()[0], defaults, atol=1e-3)


def test_a_batch_of_rejected_files_gives_only_nan_rows(checkpoint, ecg_files):
    table = embed_ecg_files(str(checkpoint), [ecg_files[1], ecg_files[3]])
    assert table["status"].tolist() == ["rejected", "rejected"]
    assert table.filter(like="feature_").shape == (2, 16)
    assert table.filter(like="feature_").isna().all().all()


def test_no_files_give_an_empty_table(checkpoint):
    table = embed_ecg_files(str(checkpoint), [])
    assert len(table) == 0 and list(table.columns)[:3] == ["source", "status", "reason"]


def test_retrieval_ranks_the_gallery_by_joint_space_cosine(checkpoint, ecg_files, tmp_path):
    model, _ = load_variant(checkpoint)
    rng = np.random.default_rng(0)
    studies = np.array([f"s{i}" for i in range(6)])
    gallery = save_features(
        {
            "ecg": np.array([], str),
            "ecg_features": np.empty((0, 16), np.float32),
            "ecg_joint": np.empty((0, 512), np.float32),
            "study": studies,
            "study_joint": rng.normal(size=(6, 512)).astype(np.float32),
        },
        tmp_path / "gallery.npz",
    )
    top = retrieve_studies(str(checkpoint), ecg_files[0], str(gallery), k=3)
    signal = prepare_ecg(read_ecg(ecg_files[0]), **RECIPE)[None, :, :N_SAMPLES]
    with torch.no_grad():
        query = model.encode_ecg(torch.from_numpy(signal)).numpy()
    similarity = cosine_similarity(query, np.load(gallery)["study_joint"])[0]
    order = np.argsort(-similarity)[:3]
    pd.testing.assert_frame_equal(
        top,
        pd.DataFrame({"rank": [1, 2, 3], "study": studies[order], "similarity": similarity[order]}),
        check_dtype=False,
        rtol=1e-4,
    )
    with pytest.raises(ValueError, match="not found"):
        retrieve_studies(str(checkpoint), ecg_files[3], str(gallery))
