"""The two other seed systems' objectives (docs/variants.md): PCME++ (probabilistic,
EchoingECG) and the hierarchical mined losses with the shifted-pair term (Echo-Enhanced
ECG), checked by hand on small cases, then trained on planted data."""

import math

import numpy as np
import pytest
import torch
from conftest import train_outputs
from test_train import N_SAMPLES, VIEW_DIM, planted_cohort

from echo2ecg.models import ECGEncoder, build_echo2ecg
from echo2ecg.models.hierarchical import (
    HierarchicalEcho2ECG,
    ShiftClassifier,
    dual_margin_mask,
    mined_contrastive_loss,
    shift_alignment_loss,
)
from echo2ecg.models.probabilistic import (
    MatchProbability,
    MeanCentre,
    gaussian_kl,
    pcme_loss,
    pseudo_positives,
    sampled_distance,
)
from echo2ecg.train.inference import ecg_readouts, ecg_uncertainties, embed_ecgs, project_ecgs
from echo2ecg.train.loop import train
from echo2ecg.train.objectives import batch_loss
from echo2ecg.train.pair_data import PairBatches, PairData
from echo2ecg.train.settings import HierarchicalParams, TrainSettings

torch.set_num_threads(1)
NOISE = 1.0  # white noise added to every other planted ECG, in units of its std


def tiny(objective: str, seed: int = 0):
    torch.manual_seed(seed)
    encoder = ECGEncoder(
        embed_dim=48, depth=2, num_heads=3, patch_size=24, n_samples=N_SAMPLES, drop_path=0.0
    )
    return build_echo2ecg(
        encoder, "attention", objective, view_dim=VIEW_DIM, study_dim=64, joint_dim=32
    )


# --------------------------------------------------------------------------- PCME++


def test_pcme_loss_matches_a_hand_computed_two_by_two_case():
    ecg_mu = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    echo_mu = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    ecg_logvar = torch.log(torch.tensor([[0.1, 0.2], [0.3, 0.1]]))
    echo_logvar = torch.log(torch.tensor([[0.05, 0.05], [0.2, 0.2]]))
    matched = torch.tensor([[True, False], [False, True]])
    # distances by hand: ‖μ_e − μ_s‖² + Σσ_e² + Σσ_s²
    squared = [[0.16 + 0.64, 1 + 1], [0.36 + 0.04, 0.0]]
    spread_e, spread_s = [0.3, 0.4], [0.1, 0.4]
    distance = [[squared[i][k] + spread_e[i] + spread_s[k] for k in range(2)] for i in range(2)]
    assert sampled_distance(ecg_mu, ecg_logvar, echo_mu, echo_logvar).numpy() == pytest.approx(
        np.array(distance), abs=1e-6
    )
    a = b = 5.0
    logits = [[-a * distance[i][k] + b for k in range(2)] for i in range(2)]
    probability = [[1 / (1 + math.exp(-x)) for x in row] for row in logits]
    bce = -np.mean(
        [
            math.log(probability[i][k]) if i == k else math.log(1 - probability[i][k])
            for i in range(2)
            for k in range(2)
        ]
    )

    def kl(mu, var):  # per element, averaged
        return np.mean([-0.5 * (1 + math.log(v) - m**2 - v) for m, v in zip(mu, var)])

    vib = kl([1, 0, 0, 1], [0.1, 0.2, 0.3, 0.1]) + kl([0.6, 0.8, 0, 1], [0.05, 0.05, 0.2, 0.2])
    assert float(gaussian_kl(ecg_mu, ecg_logvar)) == pytest.approx(
        kl([1, 0, 0, 1], [0.1, 0.2, 0.3, 0.1]), rel=1e-6
    )
    loss, parts = pcme_loss(
        ecg_mu, ecg_logvar, echo_mu, echo_logvar, matched, MatchProbability(), vib_beta=0.01
    )
    assert parts["matching"] == pytest.approx(bce, rel=1e-5)
    assert parts["vib"] == pytest.approx(vib, rel=1e-5)
    assert float(loss.detach()) == pytest.approx(2 * bce + 0.01 * vib, rel=1e-5)


def test_pcme_gradients_reach_the_match_scale_and_shift_and_both_variance_heads():
    model = tiny("probabilistic")
    (_, data) = planted_cohort(8, 4)
    batch = next(iter(PairBatches(data, 8, N_SAMPLES, 8, train=True)))
    loss = batch_loss(
        model,
        batch,
        TrainSettings(n_samples=N_SAMPLES, objective="probabilistic"),
        False,
        torch.device("cpu"),
    )
    loss.backward()
    for parameter in (
        model.match.scale,
        model.match.shift,
        model.ecg_logvar.weight,
        model.echo_logvar.weight,
    ):
        assert parameter.grad is not None and float(parameter.grad.abs().sum()) > 0


def test_pcme_spread_shrinks_when_a_row_expects_too_few_matches_and_grows_when_too_many():
    # ∂loss/∂(log σ²_ij) = 2a/B² · (Σ_k y_ik − Σ_k p_ik) · σ²_ij: descent on a row's spread
    # brings its expected number of matches to its true number (docs/variants.md)
    ecg_mu = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    echo_mu = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])  # studies 1, 2 look alike
    ecg_logvar = torch.full((3, 2), -6.0, requires_grad=True)
    echo_logvar = torch.full((3, 2), -6.0)
    matched = torch.eye(3, dtype=torch.bool)
    match = MatchProbability()
    loss, _ = pcme_loss(ecg_mu, ecg_logvar, echo_mu, echo_logvar, matched, match, vib_beta=0.0)
    loss.backward()
    with torch.no_grad():
        p = torch.sigmoid(match(sampled_distance(ecg_mu, ecg_logvar, echo_mu, echo_logvar)))
    expected_rows = p.sum(dim=1)
    # ECG 0 is far from every study (fewer than one match expected); ECGs 1 and 2 sit on
    # two studies at once (about two expected)
    assert expected_rows[0] < 0.1 and (expected_rows[1:] > 1.9).all()
    by_hand = 2 * 5.0 / 9 * (1 - expected_rows)[:, None] * math.exp(-6.0)
    np.testing.assert_allclose(ecg_logvar.grad.numpy(), by_hand.expand(3, 2).numpy(), rtol=1e-4)
    assert (ecg_logvar.grad[0] > 0).all() and (ecg_logvar.grad[1:] < 0).all()


def test_pseudo_positives_add_every_pair_at_least_as_likely_as_the_match():
    logits = torch.tensor([[2.0, 3.0, 1.0], [0.5, 0.4, 0.6]])
    matched = torch.tensor([[True, False, False], [False, True, False]])
    assert pseudo_positives(logits, matched).tolist() == [
        [True, True, False],
        [True, True, True],
    ]


def test_probabilistic_model_keeps_the_means_as_its_joint_vectors():
    model = tiny("probabilistic").eval()
    _, data = planted_cohort(4, 5)
    ecgs = torch.from_numpy(data.ecgs[:, :, :N_SAMPLES])
    mu, logvar = model.ecg_gaussian(ecgs)
    assert torch.equal(mu, model.encode_ecg(ecgs))
    assert torch.allclose(model.ecg_uncertainty(ecgs), logvar.exp().mean(-1))
    # small variances at the start: the means drive early training
    assert float(model.ecg_uncertainty(ecgs).max().detach()) < 1e-3


@pytest.mark.parametrize("objective", ["clip", "probabilistic"])
def test_one_encoder_pass_gives_every_ecg_readout(objective):
    model = tiny(objective)
    model.train()
    _, data = planted_cohort(5, 6)
    calls = []
    hook = model.ecg_encoder.register_forward_hook(lambda *_: calls.append(1))
    read = ecg_readouts(model, data.ecgs, batch_size=2, n_samples=N_SAMPLES, device="cpu")
    hook.remove()
    assert len(calls) == 3 and model.training  # one pass per batch of 2; mode restored
    # against the model's own methods, each its own encoder pass
    ecgs = torch.from_numpy(data.ecgs[:, :, :N_SAMPLES])
    with torch.no_grad():
        model.eval()
        expected = {
            "embedding": embed_ecgs(model, data.ecgs, n_samples=N_SAMPLES, device="cpu"),
            "joint": model.encode_ecg(ecgs).numpy(),
        }
        if objective == "probabilistic":
            expected["uncertainty"] = model.ecg_uncertainty(ecgs).numpy()
            np.testing.assert_allclose(
                ecg_uncertainties(model, data.ecgs, n_samples=N_SAMPLES, device="cpu"),
                expected["uncertainty"],
                rtol=1e-5,
            )
        np.testing.assert_allclose(
            project_ecgs(model, data.ecgs, n_samples=N_SAMPLES, device="cpu"),
            expected["joint"],
            rtol=1e-5,
            atol=1e-6,
        )
    assert read.keys() == expected.keys()
    for name, values in expected.items():
        np.testing.assert_allclose(read[name], values, rtol=1e-5, atol=1e-6)
    empty = ecg_readouts(model, data.ecgs[:0], n_samples=N_SAMPLES, device="cpu")
    assert {name: value.shape[1:] for name, value in empty.items()} == {
        name: value.shape[1:] for name, value in expected.items()
    }
    assert all(len(value) == 0 for value in empty.values())


def test_mean_centring_uses_the_batch_in_training_and_its_running_mean_at_evaluation():
    centre = MeanCentre(2, momentum=0.5)
    batch = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    assert centre(batch).tolist() == [[-1.0, -2.0], [1.0, 2.0]]
    assert centre.running_mean.tolist() == [1.0, 2.0]  # halfway from 0 to the mean (2, 4)
    centre.eval()
    assert centre(batch).tolist() == [[0.0, 0.0], [2.0, 4.0]]
    # plain PCME++ has no centring, and its means are the projections themselves
    encoder = ECGEncoder(embed_dim=48, depth=1, num_heads=3, patch_size=24, n_samples=N_SAMPLES)
    plain = build_echo2ecg(encoder, "attention", "probabilistic", False, view_dim=VIEW_DIM)
    assert not any("centre" in key for key in plain.state_dict())
    centred = build_echo2ecg(encoder, "attention", "probabilistic", True, view_dim=VIEW_DIM)
    assert {"ecg_centre.running_mean", "echo_centre.running_mean"} <= set(centred.state_dict())


# --------------------------------------------------------------------------- hierarchical


def test_dual_margin_mask_keeps_the_negatives_within_each_margin_of_the_positive():
    similarity = torch.tensor(
        [
            # pos   same-patient negatives   other-patient negatives
            [0.80, 0.75, 0.60, 0.90, 0.60, 0.45, 0.85],
        ]
    )
    positive = torch.tensor([[True, False, False, False, False, False, False]])
    same_patient = torch.tensor([[True, True, True, True, False, False, False]])
    keep = dual_margin_mask(similarity, positive, same_patient, margin_same=0.1, margin=0.3)
    # same patient: 0.75 is within 0.1 below 0.80, 0.60 is not, 0.90 is above the positive;
    # other patients: 0.60 is within 0.3, 0.45 is not, 0.85 is above
    assert keep.tolist() == [[True, True, False, True, True, False, True]]
    # several positives: their mean is the anchor
    two = dual_margin_mask(
        torch.tensor([[0.9, 0.7, 0.75]]),
        torch.tensor([[True, True, False]]),
        torch.tensor([[True, True, False]]),
        0.1,
        0.3,
    )
    assert two.tolist() == [[True, True, True]]


def test_mined_loss_is_the_cross_entropy_over_the_kept_positions():
    ecg = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    echo = torch.tensor([[0.8, 0.6], [0.6, 0.8]])  # cosines: [[0.8, 0.6], [0.6, 0.8]]
    positive = torch.eye(2, dtype=torch.bool)
    other = torch.zeros(2, 2, dtype=torch.bool)
    tau = 0.1
    # margin 0.3 keeps the negative (0.2 below the positive): a 2-way CE per row
    expected = -math.log(math.exp(8) / (math.exp(8) + math.exp(6)))
    assert float(mined_contrastive_loss(ecg, echo, positive, other, 0.1, 0.3, tau)) == (
        pytest.approx(expected, rel=1e-5)
    )
    # margin 0.1 drops it: nothing left to contrast, the loss is 0
    assert float(mined_contrastive_loss(ecg, echo, positive, other, 0.1, 0.1, tau)) == (
        pytest.approx(0.0, abs=1e-6)
    )


def test_shift_alignment_loss_is_the_bce_of_synced_against_shifted():
    classifier = ShiftClassifier(2)
    with torch.no_grad():
        classifier.linear.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
        classifier.linear.bias.zero_()
    synced = torch.tensor([[1.0, 0.0]])  # logit 1
    shifted = torch.tensor([[-1.0, 0.0]])  # logit −1
    echo = torch.tensor([[0.0, 1.0]])
    expected = -0.5 * (math.log(1 / (1 + math.exp(-1))) + math.log(1 - 1 / (1 + math.exp(1))))

    def loss(*args):
        return shift_alignment_loss(classifier, *args).item()

    assert loss(synced, shifted, echo) == pytest.approx(expected, rel=1e-6)
    # the swapped roles cost more: the loss tells synced from shifted
    assert loss(shifted, synced, echo) > expected + 1
    assert loss(synced[:0], shifted[:0], echo[:0]) == 0.0


def trace_pairs(lengths: list[int], synchronised: list[bool], record: int = 400) -> PairData:
    rng = np.random.default_rng(0)
    ecgs = rng.normal(size=(len(lengths), 12, record)).astype(np.float32)
    for row, length in enumerate(lengths):
        ecgs[row, :, length:] = 0.0
    views = [rng.normal(size=(2, VIEW_DIM)).astype(np.float32) for _ in lengths]
    pairs = np.stack([np.arange(len(lengths))] * 2, axis=1)
    return PairData(
        ecgs,
        views,
        pairs,
        lengths=np.array(lengths),
        study_patients=np.array([0, 0, 1, 2][: len(lengths)]),
        synchronised=np.array(synchronised),
    )


def test_synchronised_rows_see_their_latest_window_and_a_shifted_one():
    data = trace_pairs([400, 300, 250, 400], [True, True, True, False])
    shift = 20
    batches = PairBatches(data, 4, N_SAMPLES, 8, train=True, shift_samples=shift)
    batch = batches[0]
    order = batches.order
    rows = {int(batch.study[i]): i for i in range(4)}
    # row lengths 400 and 300 are long enough (≥ 240 + 20); 250 is not; the last is a file
    assert batch.synchronised[[rows[0], rows[1], rows[2], rows[3]]].tolist() == [
        True,
        True,
        False,
        False,
    ]
    synced_rows = [i for i in range(4) if batch.synchronised[i]]
    for k, i in enumerate(synced_rows):
        ecg = int(data.pairs[order[i], 0])
        end = int(data.lengths[ecg])
        assert torch.equal(batch.ecgs[i], torch.from_numpy(data.ecgs[ecg, :, end - 240 : end]))
        assert torch.equal(
            batch.shifted[k], torch.from_numpy(data.ecgs[ecg, :, end - 260 : end - 20])
        )
    assert batch.patient[rows[0]] == batch.patient[rows[1]] == 0
    # without shifts asked, nothing is synchronised and every row is a random crop
    plain = PairBatches(data, 4, N_SAMPLES, 8, train=True)[0]
    assert not plain.synchronised.any() and plain.shifted.shape == (0, 12, N_SAMPLES)


def test_hierarchical_loss_uses_every_level_and_the_shift_term_only_on_trace_rows():
    model = tiny("hierarchical")
    assert isinstance(model, HierarchicalEcho2ECG)
    data = trace_pairs([400, 400, 400, 400], [True, True, False, False])
    device = torch.device("cpu")

    def loss_with(**weights):
        params = HierarchicalParams(**weights)
        settings = TrainSettings(n_samples=N_SAMPLES, objective="hierarchical", hierarchical=params)
        batch = PairBatches(
            data, 4, N_SAMPLES, 8, train=False, shift_samples=settings.shift_samples
        )[0]
        return batch_loss(model, batch, settings, False, device).item(), batch

    full, batch = loss_with()
    assert int(batch.synchronised.sum()) == 2
    parts = [
        loss_with(study_weight=1, patient_weight=0, token_weight=0, shift_weight=0)[0],
        loss_with(study_weight=0, patient_weight=1, token_weight=0, shift_weight=0)[0],
        loss_with(study_weight=0, patient_weight=0, token_weight=1, shift_weight=0)[0],
        loss_with(study_weight=0, patient_weight=0, token_weight=0, shift_weight=1)[0],
    ]
    assert full == pytest.approx(sum(parts), rel=1e-5)
    assert parts[3] == pytest.approx(math.log(2), abs=0.2)  # an untrained classifier
    # without trace rows the shift term is off
    files = trace_pairs([400, 400, 400, 400], [False] * 4)
    settings = TrainSettings(n_samples=N_SAMPLES, objective="hierarchical")
    batch = PairBatches(files, 4, N_SAMPLES, 8, train=False, shift_samples=settings.shift_samples)[
        0
    ]
    assert not batch.synchronised.any()


def test_objectives_other_than_clip_need_a_view_pool():
    encoder = ECGEncoder(embed_dim=48, depth=1, num_heads=3, patch_size=24, n_samples=N_SAMPLES)
    with pytest.raises(ValueError, match="needs a view pool"):
        build_echo2ecg(encoder, "single", "probabilistic", view_dim=VIEW_DIM)
    with pytest.raises(ValueError, match="unknown objective"):
        build_echo2ecg(encoder, "attention", "triplet", view_dim=VIEW_DIM)
    with pytest.raises(ValueError, match="margins"):
        HierarchicalParams(margin_same_patient=0.5, margin=0.3)


# --------------------------------------------------------------------------- learning


def noisy_cohort(n: int, seed: int) -> tuple[np.ndarray, PairData]:
    """The planted cohort with strong white noise over every other patient's ECG."""
    _, data = planted_cohort(n, seed)
    noisy = np.arange(n) % 2 == 1
    rng = np.random.default_rng(seed + 100)
    ecgs = data.ecgs.copy()
    ecgs[noisy] += NOISE * rng.normal(size=ecgs[noisy].shape).astype(np.float32)
    ecgs = (ecgs - ecgs.mean(axis=(1, 2), keepdims=True)) / ecgs.std(axis=(1, 2), keepdims=True)
    return noisy, PairData(ecgs.astype(np.float32), data.study_views, data.pairs)


@pytest.fixture(scope="module")
def probabilistic_run(tmp_path_factory):
    _, train_data = noisy_cohort(384, 1)
    _, val_data = noisy_cohort(64, 2)
    model = tiny("probabilistic")
    settings = TrainSettings(
        epochs=30,
        batch_size=32,
        lr=2e-3,
        warmup_epochs=1,
        n_samples=N_SAMPLES,
        seed=0,
        objective="probabilistic",
    )
    outputs = train_outputs(tmp_path_factory.mktemp("pcme"))
    history = train(model, train_data, val_data, settings, outputs, device="cpu")
    return model.eval(), history


def test_pcme_training_learns_the_pairs_and_gives_noisy_ecgs_the_smaller_spread(
    probabilistic_run,
):
    model, history = probabilistic_run
    # chance: every one of the 32 × 32 combinations at p = 1/32, both directions
    chance = -2 * (math.log(1 / 32) / 32 + 31 / 32 * math.log(31 / 32))
    noisy, test = noisy_cohort(200, 3)
    with torch.no_grad():
        ecgs = torch.from_numpy(test.ecgs[:, :, :N_SAMPLES])
        uncertainty = model.ecg_uncertainty(ecgs).numpy()
    ranks = uncertainty.argsort().argsort()
    auroc = (ranks[noisy].mean() - (noisy.sum() - 1) / 2) / (~noisy).sum()
    print(
        f"\nPCME++ planted: val loss {history['val_loss'].iloc[0]:.3f} → "
        f"{history['val_loss'].iloc[-1]:.3f} (chance {chance:.3f}); uncertainty noisy "
        f"{uncertainty[noisy].mean():.4g} vs clean {uncertainty[~noisy].mean():.4g}, "
        f"AUROC {auroc:.3f}"
    )
    assert history["val_loss"].iloc[-1] < chance - 0.01
    # uncertainty is an input-dependent output of the trained head, not its constant init
    assert uncertainty.std() > 0 and not np.allclose(uncertainty, math.exp(-8.0))
    # PCME++'s spread calibrates each row's expected number of matches (the test above): a
    # noisy ECG, which matches its study less well, expects too few and gets the SMALLER
    # spread, the reverse of "uncertain = noisy" (docs/variants.md); measured AUROC 0.02
    assert auroc < 0.3
