"""Augmentations, batching, optimiser set-up and contrastive training (docs/method.md
sections 3, 6, 7).

The learning tests train a tiny model on planted data, where the truth is known: a latent
phenotype vector z per patient shapes both the ECG and the study's view embeddings, each
view seeing only part of z. Alignment must then make the ECG features predict z better
than the untrained encoder does, and must fail to when the pairs are shuffled.
"""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import train_outputs
from sklearn.neighbors import KNeighborsRegressor

from echo2ecg.models import ECGEncoder, Echo2ECG
from echo2ecg.report.plots import plot_history
from echo2ecg.train.augment import (
    AugmentParams,
    EcgAugment,
    eval_crop,
    ft_surrogate,
    random_crop,
    sign_flip,
    time_flip,
)
from echo2ecg.train.inference import embed_ecgs, embed_studies, project_ecgs
from echo2ecg.train.loop import evaluate_loss, train
from echo2ecg.train.pair_data import PairBatches, PairData, per_view_pairs
from echo2ecg.train.schedule import lr_at, param_groups
from echo2ecg.train.settings import TrainSettings

torch.set_num_threads(1)

N_SAMPLES = 240  # model input of the tiny encoder (10 patches of 24 per lead)
RECORD_SAMPLES = 480  # stored ECG length: training crops a random 240-sample window
VIEW_DIM = 16
N_LATENTS = 4


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_model(seed: int = 0) -> Echo2ECG:
    torch.manual_seed(seed)
    encoder = ECGEncoder(
        embed_dim=48, depth=2, num_heads=3, patch_size=24, n_samples=N_SAMPLES, drop_path=0.0
    )
    return Echo2ECG(encoder, "attention", view_dim=VIEW_DIM, study_dim=64, joint_dim=32)


# --------------------------------------------------------------------------- augmentations


def test_random_crop_is_a_window_of_each_sample_inside_bounds():
    x = torch.arange(4 * 500, dtype=torch.float32).reshape(4, 1, 500).expand(4, 12, 500) % 500
    crop = random_crop(x, 100, generator(1))
    assert crop.shape == (4, 12, 100)
    starts = crop[:, 0, 0]
    assert ((starts >= 0) & (starts <= 400)).all()
    expected = starts[:, None, None] + torch.arange(100.0)
    assert torch.equal(crop, expected.expand(4, 12, 100))  # contiguous, same start for all leads
    assert len(set(random_crop(x.repeat(8, 1, 1), 100, generator(2))[:, 0, 0].tolist())) > 1
    with pytest.raises(ValueError, match="T ≥ 600"):
        random_crop(x, 600, generator())


def test_random_crop_stays_inside_each_recorded_length():
    x = torch.arange(500, dtype=torch.float32).expand(64, 12, 500).clone()
    lengths = torch.tensor([100, 150, 500, 120] * 16)
    starts = random_crop(x, 100, generator(3), lengths)[:, 0, 0]
    assert (starts + 100 <= lengths).all()
    assert (starts[lengths == 100] == 0).all()
    assert len(set(starts[lengths == 500].tolist())) > 4  # the full-length ones still move


def test_augment_shapes_and_determinism_with_a_seeded_generator():
    x = torch.randn(16, 12, 1200, generator=generator(3))
    augment = EcgAugment()
    first, again = augment(x, generator(7)), augment(x, generator(7))
    assert first.shape == (16, 12, 1008) and first.dtype == torch.float32
    assert torch.equal(first, again)
    assert not torch.allclose(first, augment(x, generator(8)))
    assert torch.isfinite(first).all()


def test_flips_happen_at_about_their_rate():
    x = torch.randn(4000, 2, 30, generator=generator(4))
    time_flipped = (time_flip(x, 0.33, generator(5)) != x).any(dim=(1, 2)).float().mean()
    sign_flipped = (sign_flip(x, 0.33, generator(6)) != x).any(dim=(1, 2)).float().mean()
    assert abs(time_flipped - 0.33) < 0.03 and abs(sign_flipped - 0.33) < 0.03
    assert torch.equal(time_flip(x[:3], 1.0, generator()), x[:3].flip(-1))
    assert torch.equal(sign_flip(x[:3], 1.0, generator()), -x[:3])


def test_ft_surrogate_keeps_each_leads_amplitude_spectrum_and_changes_the_signal():
    x = torch.randn(64, 12, 1008, generator=generator(9))
    surrogate = ft_surrogate(x, 0.075, 1.0, generator(10))
    assert surrogate.shape == x.shape
    torch.testing.assert_close(
        torch.fft.rfft(surrogate).abs(), torch.fft.rfft(x).abs(), atol=1e-3, rtol=1e-4
    )
    changed = (surrogate - x).abs().amax(dim=(1, 2))
    assert (changed > 0.05).all()
    # one phase for all leads: a cross-lead product of spectra keeps its phase
    cross = torch.fft.rfft(x)[:, 0] * torch.fft.rfft(x)[:, 1].conj()
    cross_surrogate = torch.fft.rfft(surrogate)[:, 0] * torch.fft.rfft(surrogate)[:, 1].conj()
    torch.testing.assert_close(cross_surrogate, cross, atol=2e-2, rtol=1e-3)
    # the phase shift is bounded by phase_noise·2π
    shift = torch.angle(torch.fft.rfft(surrogate) * torch.fft.rfft(x).conj())[..., 1:-1]
    assert shift.min() > -1e-3 and shift.max() < 0.075 * 2 * math.pi + 1e-3


def test_ft_surrogate_probability_applies_per_sample():
    x = torch.randn(2000, 1, 64, generator=generator(11))
    changed = (ft_surrogate(x, 0.075, 0.5, generator(12)) - x).abs().amax(dim=(1, 2)) > 1e-4
    assert abs(changed.float().mean() - 0.5) < 0.04
    assert torch.allclose(ft_surrogate(x[:5], 0.075, 0.0, generator()), x[:5], atol=1e-5)


def test_eval_crop_is_the_first_samples():
    x = torch.randn(3, 12, 1100)
    assert torch.equal(eval_crop(x), x[..., :1008])
    assert torch.equal(eval_crop(x, 240), x[..., :240])


# --------------------------------------------------------------------------- batches


def toy_pairs(n_views: list[int], n_samples: int = 300, seed: int = 0) -> PairData:
    rng = np.random.default_rng(seed)
    ecgs = rng.normal(size=(len(n_views), 12, n_samples)).astype(np.float32)
    views = [rng.normal(size=(v, VIEW_DIM)).astype(np.float32) for v in n_views]
    return PairData(ecgs, views, np.stack([np.arange(len(n_views))] * 2, axis=1))


def test_batches_pad_and_mask_views_and_sample_them_in_training_only():
    data = toy_pairs([1, 3, 200, 2])
    evaluation = PairBatches(data, 4, N_SAMPLES, max_views=128, train=False)[0]
    assert evaluation.ecgs.shape == (4, 12, N_SAMPLES)
    assert torch.equal(evaluation.ecgs, torch.from_numpy(data.ecgs[:, :, :N_SAMPLES]))
    assert evaluation.views.shape == (4, 128, VIEW_DIM)
    assert evaluation.mask.sum(dim=1).tolist() == [1, 3, 128, 2]
    assert torch.equal(evaluation.views[2], torch.from_numpy(data.study_views[2][:128]))
    assert (evaluation.views[0, 1:] == 0).all()

    training = PairBatches(data, 4, N_SAMPLES, max_views=128, train=True, seed=1)
    batch = training[0]
    big = int(np.flatnonzero(data.pairs[training.order, 1] == 2)[0])
    chosen = batch.views[big]
    assert batch.mask[big].sum() == 128
    assert not torch.equal(chosen, torch.from_numpy(data.study_views[2][:128]))  # a random subset
    rows = {tuple(v) for v in data.study_views[2].round(5).tolist()}
    assert all(tuple(v) in rows for v in chosen.numpy().round(5).tolist())
    assert torch.equal(batch.views, training[0].views)  # seeded per (seed, epoch, batch)

    single = PairBatches(data, 4, N_SAMPLES, max_views=128, train=True, single_view=True)[0]
    # (the one_per_study sampling of the single-view baseline; every_view: per_view_pairs)
    assert single.views.shape == (4, 1, VIEW_DIM) and single.mask.all()
    single_eval = PairBatches(data, 4, N_SAMPLES, max_views=128, train=False, single_view=True)[0]
    assert single_eval.mask.sum(dim=1).tolist() == [1, 3, 128, 2]  # all views at evaluation


def test_single_view_samples_are_every_ecg_view_combination():
    data = toy_pairs([1, 3, 2])  # three pairs: studies of 1, 3 and 2 views
    expanded = per_view_pairs(data)
    assert len(expanded) == 1 + 3 + 2  # samples per epoch: one per (ECG, view)
    assert all(len(views) == 1 for views in expanded.study_views)
    assert expanded.ecgs is data.ecgs
    for (ecg, view), (source_ecg, source_study) in zip(
        expanded.pairs, np.repeat(data.pairs, [1, 3, 2], axis=0)
    ):
        assert ecg == source_ecg
        assert any(
            np.array_equal(expanded.study_views[view][0], v) for v in data.study_views[source_study]
        )
    assert len(per_view_pairs(PairData(data.ecgs, data.study_views, np.empty((0, 2))))) == 0


def test_a_trailing_single_pair_is_dropped_in_training_and_kept_at_evaluation():
    data = toy_pairs([2] * 9)
    training = PairBatches(data, 4, N_SAMPLES, 128, train=True)
    evaluation = PairBatches(data, 4, N_SAMPLES, 128, train=False)
    assert [len(training[i].ecgs) for i in range(len(training))] == [4, 4]
    assert [len(evaluation[i].ecgs) for i in range(len(evaluation))] == [4, 5]
    orders = {tuple(training.order)}
    training.set_epoch(1)
    assert tuple(training.order) not in orders  # reshuffled each epoch


# --------------------------------------------------------------------------- optimisation


def test_lr_schedule_warm_up_and_cosine_end_points():
    settings = TrainSettings()  # the reference's 5 warm-up epochs
    assert lr_at(0.0, settings) == pytest.approx(0.1 * 5e-4)
    assert lr_at(2.5, settings) == pytest.approx(0.55 * 5e-4)
    assert lr_at(5.0, settings) == pytest.approx(5e-4)
    assert lr_at(27.5, settings) == pytest.approx(0.55 * 5e-4)  # cosine half-way
    assert lr_at(50.0, settings) == pytest.approx(0.1 * 5e-4)
    values = [lr_at(e / 10, settings) for e in range(0, 501)]
    assert max(values) == pytest.approx(5e-4)
    assert all(b <= a + 1e-15 for a, b in zip(values[50:], values[51:]))  # falls after warm-up
    two = TrainSettings(warmup_epochs=2)  # docs/method.md section 6
    assert lr_at(1.0, two) == pytest.approx(0.55 * 5e-4) and lr_at(2.0, two) == pytest.approx(5e-4)


def test_param_groups_decay_lr_by_layer_and_spare_biases_norms_and_tokens():
    encoder = ECGEncoder(embed_dim=48, depth=4, num_heads=3, n_samples=N_SAMPLES)
    model = Echo2ECG(encoder, "cls", view_dim=VIEW_DIM, study_dim=64, joint_dim=32)
    groups = param_groups(model, lr=1e-3, layer_decay=0.75, weight_decay=0.05)
    by_name = {name: group for group in groups for name in group["names"]}
    assert set(by_name) == {name for name, _ in model.named_parameters()}

    def scale(name):
        return by_name[name]["lr_scale"]

    assert scale("ecg_encoder.blocks.0.attn.qkv.weight") == pytest.approx(0.75**3)
    assert scale("ecg_encoder.blocks.3.mlp.fc2.weight") == pytest.approx(1.0)
    for name in (
        "ecg_encoder.patch_embed.proj.weight",
        "ecg_encoder.cls_token",
        "ecg_encoder.lead_pos_embed.weight",
    ):
        assert scale(name) == pytest.approx(0.75**3)  # block 0's rate, as the reference
    below = param_groups(model, 1e-3, 0.75, 0.05, embeddings_share_block0=False)
    below = {name: group["lr_scale"] for group in below for name in group["names"]}
    assert below["ecg_encoder.cls_token"] == pytest.approx(0.75**4)  # docs/method.md section 6
    assert below["ecg_encoder.blocks.0.attn.qkv.weight"] == pytest.approx(0.75**3)
    for name in (
        "ecg_encoder.fc_norm.weight",
        "ecg_proj.weight",
        "echo_proj.weight",
        "view_pool.attention.in_proj_weight",
    ):
        assert scale(name) == 1.0
    for group in groups:
        assert group["lr"] == pytest.approx(1e-3 * group["lr_scale"])
    no_decay = {name for name, group in by_name.items() if group["weight_decay"] == 0.0}
    decayed = set(by_name) - no_decay
    for name in (
        "ecg_encoder.blocks.0.attn.qkv.bias",
        "ecg_encoder.blocks.1.norm1.weight",
        "ecg_encoder.fc_norm.bias",
        "ecg_encoder.patch_embed.norm.weight",
        "ecg_encoder.cls_token",
        "ecg_encoder.lead_pos_embed.weight",
        "view_pool.cls_token",
        "view_pool.view_proj.bias",
    ):
        assert name in no_decay
    for name in (
        "ecg_encoder.blocks.0.attn.qkv.weight",
        "ecg_encoder.patch_embed.proj.weight",
        "ecg_proj.weight",
        "view_pool.view_proj.weight",
    ):
        assert name in decayed
    assert all(by_name[name]["weight_decay"] == 0.05 for name in decayed)


# --------------------------------------------------------------------------- planted data


def planted_cohort(n: int, seed: int) -> tuple[np.ndarray, PairData]:
    """n patients with latents z (n, 4) ~ N(0, 1), one ECG and one study each.

    ECG (12, 480) at 100 Hz: a pulse train whose rate follows z0 and whose per-lead pulse
    width and second-wave height are fixed random mixtures of z; plus a nuisance sinusoid
    (random frequency and per-lead amplitude) and white noise; z-scored per ECG. Shape, not
    amplitude, carries z: the tokeniser's LayerNorm discards a token's scale.
    Study: 2-4 of 4 view kinds; kind k sees latents (k, k+1 mod 4) through a fixed linear
    map to 16-d plus noise, so no single view sees all of z.
    """
    rng = np.random.default_rng(seed)
    fixed = np.random.default_rng(0)  # the "physiology": the same for every cohort
    width_mix, height_mix = fixed.normal(size=(N_LATENTS, 12)), fixed.normal(size=(N_LATENTS, 12))
    view_maps = fixed.normal(size=(N_LATENTS, 2, VIEW_DIM))

    z = rng.normal(size=(n, N_LATENTS))
    time_s = np.arange(RECORD_SAMPLES) / 100.0
    rate = 1.2 + 0.3 * np.tanh(z[:, :1])  # beats per second
    beat_phase = np.mod(rate * time_s + rng.uniform(0, 1, (n, 1)), 1.0)[:, None, :]
    width = 0.04 * np.exp(0.35 * np.tanh(z @ width_mix))[:, :, None]  # fraction of a beat
    height = np.tanh(z @ height_mix)[:, :, None]
    beats = np.exp(-0.5 * ((beat_phase - 0.3) / width) ** 2) + height * np.exp(
        -0.5 * ((beat_phase - 0.6) / 0.06) ** 2
    )
    nuisance_hz = rng.uniform(0.3, 3.0, (n, 1, 1))
    nuisance = (
        0.3
        * rng.normal(size=(n, 12, 1))
        * np.sin(2 * np.pi * nuisance_hz * time_s + rng.uniform(0, 2 * np.pi, (n, 12, 1)))
    )
    ecgs = beats + nuisance + 0.1 * rng.normal(size=beats.shape)
    ecgs = (ecgs - ecgs.mean(axis=(1, 2), keepdims=True)) / ecgs.std(axis=(1, 2), keepdims=True)

    studies = []
    for patient in range(n):
        kinds = rng.choice(N_LATENTS, size=rng.integers(2, 5), replace=False)
        studies.append(
            np.stack(
                [
                    z[patient, [k, (k + 1) % N_LATENTS]] @ view_maps[k]
                    + 0.3 * rng.normal(size=VIEW_DIM)
                    for k in kinds
                ]
            ).astype(np.float32)
        )
    pairs = np.stack([np.arange(n), np.arange(n)], axis=1)
    return z, PairData(ecgs.astype(np.float32), studies, pairs)


def knn_r2(train_features, train_target, test_features, test_target, k: int = 5) -> float:
    """R² of a k-NN regression (Euclidean, uniform weights) on held-out patients."""
    predicted = KNeighborsRegressor(k).fit(train_features, train_target).predict(test_features)
    return 1.0 - np.mean((predicted - test_target) ** 2) / np.var(test_target)


def retrieval_mean_rank(model: Echo2ECG, data: PairData) -> float:
    """Mean 1-based rank of each ECG's own study among all studies, by joint-space cosine."""
    ecg_z = project_ecgs(model, data.ecgs, n_samples=N_SAMPLES, device="cpu")
    study_z = embed_studies(model, data.study_views, device="cpu")
    ecg_z /= np.linalg.norm(ecg_z, axis=1, keepdims=True)
    study_z /= np.linalg.norm(study_z, axis=1, keepdims=True)
    similarity = ecg_z @ study_z.T
    own = similarity[data.pairs[:, 0], data.pairs[:, 1]]
    return float(((similarity[data.pairs[:, 0]] > own[:, None]).sum(axis=1) + 1).mean())


PLANTED_SETTINGS = dict(
    epochs=15, batch_size=32, lr=2e-3, warmup_epochs=1, n_samples=N_SAMPLES, seed=0
)


class PlantedRun:
    """One training run on the planted cohort and what the tests measure of it."""

    def __init__(self, cohorts, out_dir, shuffle_pairs: bool):
        (z_train, train_data), (_, val_data), (z_test, test_data) = cohorts
        if shuffle_pairs:  # ECG i with a random other patient's study
            permuted = np.random.default_rng(5).permutation(len(train_data))
            train_data = PairData(
                train_data.ecgs,
                train_data.study_views,
                np.stack([np.arange(len(train_data)), permuted], axis=1),
            )
        self.model = tiny_model()
        self.settings = TrainSettings(**PLANTED_SETTINGS)
        self.out_dir = out_dir
        self.history = train(
            self.model,
            train_data,
            val_data,
            self.settings,
            train_outputs(out_dir),
            device="cpu",
            extra={"variant": "planted"},
        )
        self.val_data = val_data
        features = [
            embed_ecgs(self.model, d.ecgs, n_samples=N_SAMPLES, device="cpu")
            for d in (train_data, test_data)
        ]
        self.knn_r2 = knn_r2(features[0], z_train[:, 0], features[1], z_test[:, 0])
        self.mean_rank = retrieval_mean_rank(self.model, test_data)


@pytest.fixture(scope="module")
def cohorts():
    return planted_cohort(384, 1), planted_cohort(64, 2), planted_cohort(200, 3)


@pytest.fixture(scope="module")
def no_align(cohorts):
    """The untrained encoder's scores (same initialisation as the trained runs)."""
    (z_train, train_data), _, (z_test, test_data) = cohorts
    model = tiny_model()
    features = [
        embed_ecgs(model.ecg_encoder, d.ecgs, n_samples=N_SAMPLES, device="cpu")
        for d in (train_data, test_data)
    ]
    assert features[0].shape == (len(train_data), 48)
    return {
        "knn_r2": knn_r2(features[0], z_train[:, 0], features[1], z_test[:, 0]),
        "mean_rank": retrieval_mean_rank(model, test_data),
    }


@pytest.fixture(scope="module")
def aligned(cohorts, tmp_path_factory):
    return PlantedRun(cohorts, tmp_path_factory.mktemp("aligned"), shuffle_pairs=False)


@pytest.fixture(scope="module")
def shuffled(cohorts, tmp_path_factory):
    return PlantedRun(cohorts, tmp_path_factory.mktemp("shuffled"), shuffle_pairs=True)


def test_alignment_teaches_the_ecg_encoder_the_planted_phenotype(aligned, no_align, cohorts):
    n_test = len(cohorts[2][1])
    random_rank = (n_test + 1) / 2
    print(
        f"\nplanted: kNN R² of z0 from ECG features: aligned {aligned.knn_r2:.3f}, "
        f"no_align {no_align['knn_r2']:.3f}; retrieval mean rank aligned "
        f"{aligned.mean_rank:.1f}, no_align {no_align['mean_rank']:.1f}, random {random_rank}"
    )
    assert aligned.history["val_loss"].iloc[-1] < aligned.history["val_loss"].iloc[0] - 0.2
    assert aligned.knn_r2 > no_align["knn_r2"] + 0.1
    assert aligned.mean_rank < 0.65 * random_rank


def test_shuffled_pairs_teach_nothing(shuffled, aligned, no_align, cohorts):
    n_test = len(cohorts[2][1])
    random_rank = (n_test + 1) / 2
    print(
        f"\nplanted, shuffled pairs: kNN R² of z0 {shuffled.knn_r2:.3f} (aligned "
        f"{aligned.knn_r2:.3f}, no_align {no_align['knn_r2']:.3f}); retrieval mean rank "
        f"{shuffled.mean_rank:.1f} (random {random_rank})"
    )
    assert shuffled.knn_r2 < no_align["knn_r2"] + 0.1
    assert shuffled.knn_r2 < aligned.knn_r2 - 0.1
    assert 0.8 * random_rank < shuffled.mean_rank < 1.2 * random_rank


# --------------------------------------------------------------------------- outputs


def test_history_and_checkpoints(aligned):
    history = pd.read_csv(aligned.out_dir / "history.csv")
    assert list(history.columns) == ["epoch", "train_loss", "val_loss", "lr", "seconds"]
    assert history["epoch"].tolist() == list(range(1, 16))
    pd.testing.assert_frame_equal(history, aligned.history, check_dtype=False)
    assert history["lr"].iloc[-1] < history["lr"].max()

    best = torch.load(aligned.out_dir / "best.pt", weights_only=True)
    last = torch.load(aligned.out_dir / "last.pt", weights_only=True)
    for checkpoint in (best, last):
        assert set(checkpoint) == {"model", "settings", "epoch", "val_loss", "extra"}
        assert checkpoint["settings"]["lr"] == 2e-3
        assert checkpoint["extra"] == {"variant": "planted"}
    assert last["epoch"] == 15
    best_row = history["val_loss"].idxmin()
    assert best["epoch"] == history["epoch"][best_row]
    assert best["val_loss"] == pytest.approx(history["val_loss"].min())

    restored = tiny_model(seed=1)
    restored.load_state_dict(best["model"])
    batches = PairBatches(
        aligned.val_data, aligned.settings.batch_size, N_SAMPLES, 128, train=False
    )
    loader = torch.utils.data.DataLoader(batches, batch_size=None)
    recomputed = evaluate_loss(restored, loader, aligned.settings, torch.device("cpu"))
    assert recomputed == pytest.approx(best["val_loss"], abs=1e-5)


def test_training_twice_with_the_same_seed_gives_the_same_history(tmp_path):
    data, val = toy_pairs([2, 3, 1, 4] * 6, seed=1), toy_pairs([2, 3] * 4, seed=2)
    settings = TrainSettings(epochs=2, batch_size=8, lr=1e-3, warmup_epochs=1, n_samples=N_SAMPLES)
    seen = []
    first = train(
        tiny_model(),
        data,
        val,
        settings,
        train_outputs(tmp_path / "a"),
        device="cpu",
        progress=seen.append,
    )
    second = train(tiny_model(), data, val, settings, train_outputs(tmp_path / "b"), device="cpu")
    with_worker = train(
        tiny_model(),
        data,
        val,
        dataclasses.replace(settings, num_workers=1),
        train_outputs(tmp_path / "w"),
        device="cpu",
    )
    columns = ["epoch", "train_loss", "val_loss", "lr"]
    pd.testing.assert_frame_equal(first[columns], second[columns])
    pd.testing.assert_frame_equal(first[columns], with_worker[columns])
    assert [row["epoch"] for row in seen] == [1, 2]
    other = train(
        tiny_model(),
        data,
        val,
        dataclasses.replace(settings, seed=7),
        train_outputs(tmp_path / "c"),
        device="cpu",
    )
    assert not np.allclose(first["train_loss"], other["train_loss"])


def test_training_needs_two_pairs_and_long_enough_ecgs(tmp_path):
    settings = TrainSettings(epochs=1, batch_size=8, n_samples=N_SAMPLES)
    with pytest.raises(ValueError, match="at least 2"):
        train(tiny_model(), toy_pairs([2]), toy_pairs([2, 2]), settings, train_outputs(tmp_path))
    with pytest.raises(ValueError, match="fewer than the model input"):
        train(
            tiny_model(),
            toy_pairs([2, 2], n_samples=100),
            toy_pairs([2, 2]),
            settings,
            train_outputs(tmp_path),
        )


def test_feature_helpers_use_the_first_samples_in_eval_mode():
    model = tiny_model()
    model.train()
    ecgs = np.random.default_rng(0).normal(size=(5, 12, 300)).astype(np.float32)
    features = embed_ecgs(model, ecgs, batch_size=2, n_samples=N_SAMPLES, device="cpu")
    assert features.shape == (5, 48) and model.training  # mode restored
    with torch.no_grad():
        model.eval()
        direct = model.ecg_encoder(torch.from_numpy(ecgs[:, :, :N_SAMPLES])).numpy()
        joint = model.encode_ecg(torch.from_numpy(ecgs[:, :, :N_SAMPLES])).numpy()
    np.testing.assert_allclose(features, direct, atol=1e-5)
    np.testing.assert_allclose(project_ecgs(model, ecgs, 2, N_SAMPLES, "cpu"), joint, atol=1e-5)
    studies = toy_pairs([1, 3, 2]).study_views
    study_z = embed_studies(model, studies, batch_size=2, device="cpu")
    with torch.no_grad():
        alone = model.encode_study(torch.from_numpy(studies[1])[None]).numpy()
    assert study_z.shape == (3, 32)
    np.testing.assert_allclose(study_z[1], alone[0], atol=1e-5)  # padding changes nothing


def test_plot_history_writes_a_png(tmp_path):
    history = pd.DataFrame(
        {
            "epoch": [1, 2],
            "train_loss": [4.0, 3.5],
            "val_loss": [4.1, 3.7],
            "lr": [1e-4, 5e-4],
            "seconds": [1.0, 1.0],
        }
    )
    for name, table in (("loss.png", history), ("empty.png", history.iloc[:0])):
        path = plot_history(table, tmp_path / name, "planted")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_settings_defaults_are_the_papers():
    settings = TrainSettings()
    assert (
        settings.epochs,
        settings.batch_size,
        settings.lr,
        settings.layer_decay,
        settings.weight_decay,
        settings.temperature,
        settings.seed,
    ) == (50, 256, 5e-4, 0.75, 1e-7, 0.5, 42)
    # where the paper is silent, the reference code's choices
    assert (
        settings.warmup_epochs,
        settings.single_view_sampling,
        settings.embeddings_share_block0,
        settings.augmentation,
        settings.standardize_views,
    ) == (5, "every_view", True, True, False)
    with pytest.raises(ValueError, match="single_view_sampling"):
        TrainSettings(single_view_sampling="random")
    assert repr(settings.augment()) == repr(EcgAugment())
    with pytest.raises(ValueError, match="precision"):
        TrainSettings(precision="fp16")


def test_augment_params_are_one_nested_setting():
    settings = TrainSettings(augment_params={"ft_prob": 0.2})  # as the config section gives it
    assert settings.augment_params == AugmentParams(ft_prob=0.2)
    assert settings.augment().params.ft_prob == 0.2 and settings.augment().n_samples == 1008
    assert dataclasses.asdict(settings)["augment_params"]["jitter_scale"] == 0.6  # checkpoints
    with pytest.raises(TypeError, match="ft_probability"):
        TrainSettings(augment_params={"ft_probability": 0.2})
    with pytest.raises(ValueError, match="ft_prob is a probability"):
        AugmentParams(ft_prob=1.5)
