"""Models (docs/method.md section 5): echo encoder loading, ECG encoder and OTiS weights,
view aggregators, the Echo2ECG module and its loss."""

import argparse
import math

import numpy as np
import pytest
import torch

from echo2ecg.models import torchvision_ops
from echo2ecg.models.aggregators import ViewAttentionPool, ViewClsPool, ViewMean, ViewMeanPool
from echo2ecg.models.ecg_encoder import ECGEncoder, load_otis_checkpoint
from echo2ecg.models.echo2ecg import POOLINGS, Echo2ECG, clip_loss, count_parameters
from echo2ecg.models.echo_encoder import (
    ECHO_MEAN,
    ECHO_STD,
    EchoEncoderOrigin,
    build_echo_encoder,
    normalise_clips,
)
from echo2ecg.models.torchvision_ops import import_torchvision

torch.set_num_threads(1)


def small_ecg_encoder(**kwargs):
    """A two-block encoder: same layout, quick to build and run."""
    return ECGEncoder(depth=2, **kwargs)


# --------------------------------------------------------------------------- torchvision


def test_import_torchvision_gives_a_working_module_and_is_idempotent():
    torchvision = import_torchvision()
    assert import_torchvision() is torchvision
    torchvision_ops._declare_missing_op_schemas()  # a second declaration must be a no-op
    assert hasattr(torch.ops.torchvision, "nms")
    assert callable(torchvision.models.video.mvit_v2_s)


# --------------------------------------------------------------------------- echo encoder


@pytest.fixture(scope="module")
def random_echo_encoder():
    with pytest.warns(UserWarning, match="random init"):
        return build_echo_encoder(None)


@pytest.fixture(scope="module")
def echo_weights(random_echo_encoder, tmp_path_factory):
    path = tmp_path_factory.mktemp("echoprime") / "echo_prime_encoder.pt"
    torch.save(random_echo_encoder.state_dict(), path)
    return path


def test_random_echo_encoder_is_frozen_and_sized(random_echo_encoder):
    assert not random_echo_encoder.training
    assert count_parameters(random_echo_encoder) == 0
    assert count_parameters(random_echo_encoder, trainable_only=False) == 34_623_872


def test_random_init_is_the_same_network_in_every_job(random_echo_encoder):
    # Shards are embedded by separate jobs: each must rebuild the identical random network.
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with pytest.warns(UserWarning, match="random init"):
        again = build_echo_encoder(None, init_seed=0)
        other = build_echo_encoder(None, init_seed=1)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's RNG stream is untouched
    reference = random_echo_encoder.state_dict()
    assert all(torch.equal(reference[k], v) for k, v in again.state_dict().items())
    assert not torch.equal(reference["head.1.weight"], other.state_dict()["head.1.weight"])


def test_echoprime_state_dict_reproduces_the_forward_pass(random_echo_encoder, echo_weights):
    loaded = build_echo_encoder(echo_weights)

    reference = import_torchvision().models.video.mvit_v2_s(weights=None)
    reference.head[-1] = torch.nn.Linear(768, 512)
    reference.load_state_dict(torch.load(echo_weights, weights_only=True))
    reference.eval()

    clip = np.random.default_rng(0).integers(0, 256, (1, 16, 224, 224, 3), dtype=np.uint8)
    with torch.no_grad():
        x = normalise_clips(clip)
        original, reloaded, torchvision_own = (random_echo_encoder(x), loaded(x), reference(x))
    assert reloaded.shape == (1, 512)
    assert torch.equal(reloaded, original)
    assert torch.equal(reloaded, torchvision_own)


def test_the_origin_names_weights_by_file_and_a_random_init_by_seed():
    assert EchoEncoderOrigin("/site/models/echo_prime_encoder.pt", init_seed=3).attributes() == {
        "encoder_pretrained": True,
        "encoder_weights": "echo_prime_encoder.pt",
        "encoder_init_seed": None,
    }
    assert EchoEncoderOrigin(None, init_seed=3).attributes() == {
        "encoder_pretrained": False,
        "encoder_weights": None,
        "encoder_init_seed": 3,
    }


def test_strict_loading_rejects_a_wrong_key(echo_weights, tmp_path):
    state = torch.load(echo_weights, weights_only=True)
    state["head.2.weight"] = state.pop("head.1.weight")
    torch.save(state, tmp_path / "renamed.pt")
    with pytest.raises(RuntimeError, match="head"):
        build_echo_encoder(tmp_path / "renamed.pt")


def test_normalise_clips_layout_and_values():
    clips = np.zeros((2, 16, 224, 224, 3), dtype=np.uint8)
    clips[1, 3, 10, 20] = (255, 0, 128)
    x = normalise_clips(clips)
    assert x.shape == (2, 3, 16, 224, 224) and x.dtype == torch.float32
    expected = [(v - m) / s for v, m, s in zip((255, 0, 128), ECHO_MEAN, ECHO_STD)]
    assert x[1, :, 3, 10, 20].tolist() == pytest.approx(expected, rel=1e-6)
    assert x[0, 2, 0, 0, 0].item() == pytest.approx(-ECHO_MEAN[2] / ECHO_STD[2], rel=1e-6)


# --------------------------------------------------------------------------- ECG encoder


def test_ecg_encoder_shapes_and_input_checks():
    encoder = small_ecg_encoder().eval()
    with torch.no_grad():
        assert encoder(torch.randn(3, 12, 1008)).shape == (3, 192)
        assert encoder(torch.randn(1, 12, 480)).shape == (1, 192)  # shorter: first positions
        assert encoder(torch.randn(1, 12, 1992)).shape == (1, 192)  # longer: interpolated
    for bad in ((1, 12, 1000), (1, 11, 1008), (1, 12, 0)):
        with pytest.raises(ValueError):
            encoder(torch.randn(bad))


def test_a_lead_subset_embeds_as_those_leads_given_alone():
    torch.manual_seed(0)
    encoder = ECGEncoder(embed_dim=32, depth=2, num_heads=2, patch_size=24, n_samples=240).eval()
    ecg = torch.randn(3, 12, 240)
    lead_ii = torch.zeros(3, 12, dtype=torch.bool)
    lead_ii[:, 1] = True
    alone = encoder.forward_leads(ecg[:, [1]], [1])  # 10 tokens + class token
    with torch.no_grad():
        assert torch.allclose(encoder(ecg, lead_ii), alone, atol=1e-6)
        # a mixed batch pads the other leads out: row 0 lead II only, rows 1-2 all leads
        mixed = torch.ones(3, 12, dtype=torch.bool)
        mixed[0] = lead_ii[0]
        out = encoder(ecg, mixed)
        assert torch.allclose(out[0], alone[0], atol=1e-5)
        assert torch.allclose(out[1:], encoder(ecg[1:]), atol=1e-5)
        # what a masked lead holds does not matter
        noisy = ecg.clone()
        noisy[0, [0, *range(2, 12)]] = 100 * torch.randn(11, 240)
        assert torch.allclose(encoder(noisy, mixed)[0], out[0], atol=1e-5)
        # the lead embedding says which lead it is: lead II's samples as lead I differ
        assert not torch.allclose(encoder.forward_leads(ecg[:, [1]], [0]), alone, atol=1e-3)
        # leads in any order, as named
        two = encoder.forward_leads(ecg[:, [7, 1]], [7, 1])
        assert torch.allclose(two, encoder.forward_leads(ecg[:, [1, 7]], [1, 7]), atol=1e-5)
    with pytest.raises(ValueError, match="at least one lead"):
        encoder(ecg, torch.zeros(3, 12, dtype=torch.bool))
    with pytest.raises(ValueError, match="distinct indices"):
        encoder.forward_leads(ecg[:, [1, 1]], [1, 1])


def test_time_positions_are_the_table_or_its_interpolation():
    encoder = ECGEncoder()
    table = encoder.time_pos_embed
    assert torch.equal(encoder.time_positions(20), table[:20])
    stretched = encoder.time_positions(83)  # 1992 samples, as the reference evaluates
    assert stretched.shape == (83, 96)
    expected = torch.nn.functional.interpolate(
        table.T[None], size=83, mode="linear", align_corners=False
    )[0].T
    assert torch.allclose(stretched, expected)
    assert torch.allclose(stretched[0], table[0]) and torch.allclose(stretched[-1], table[-1])


def test_layer_ids_and_no_weight_decay_live_on_the_encoder():
    encoder = ECGEncoder(depth=4)
    assert encoder.layer_id("blocks.0.attn.qkv.weight") == 1
    assert encoder.layer_id("blocks.3.mlp.fc1.bias") == 4
    assert encoder.layer_id("fc_norm.weight") == 5
    for name in ("patch_embed.proj.weight", "cls_token", "lead_pos_embed.weight"):
        assert encoder.layer_id(name) == 1  # block 0's, as the reference assigns them
        assert encoder.layer_id(name, embeddings_share_block0=False) == 0
    assert encoder.no_weight_decay() == {"cls_token", "lead_pos_embed.weight"}
    assert encoder.no_weight_decay() <= {name for name, _ in encoder.named_parameters()}


def test_ecg_encoder_layout():
    encoder = ECGEncoder()
    assert count_parameters(encoder) == 7_124_064
    assert encoder.lead_pos_embed.weight.shape == (13, 96)
    assert torch.all(encoder.lead_pos_embed.weight[0] == 0)
    assert "time_pos_embed" not in dict(encoder.named_parameters())
    assert encoder.state_dict()["time_pos_embed"].shape == (42, 96)
    # sin-cos over the patch index: position 0 is (sin 0 …, cos 0 …) = (0 …, 1 …)
    assert torch.equal(encoder.time_pos_embed[0], torch.cat([torch.zeros(48), torch.ones(48)]))


def otis_checkpoint(source: ECGEncoder, n_time_positions: int, domain_offset: int):
    """An OTiS-layout checkpoint built from ``source``'s weights.

    pos_embed_y: 30 rows, row r filled with r; pos_embed_x: class row + n_time_positions rows,
    row 1 + p filled with p. Pre-training extras: decoder keys and the per-token ``norm``; no
    fc_norm (pre-training has none); one key OTiS would not have.
    """
    state = {
        key: value.clone()
        for key, value in source.state_dict().items()
        if not key.startswith(("lead_pos_embed", "time_pos_embed", "fc_norm"))
    }
    state["pos_embed_y.weight"] = torch.arange(30.0)[:, None].expand(30, 96).clone()
    positions = torch.arange(n_time_positions, dtype=torch.float32)
    state["pos_embed_x"] = (
        torch.cat([torch.zeros(1), positions])[None, :, None]
        .expand(1, 1 + n_time_positions, 96)
        .clone()
    )
    state.update(
        {
            "decoder_embed.weight": torch.zeros(4, 4),
            "mask_token": torch.zeros(1, 1, 4),
            "norm.weight": torch.ones(192),
            "norm.bias": torch.zeros(192),
            "surprise.weight": torch.zeros(2),
        }
    )
    return {
        "model": state,
        "domain_offsets": {"eeg": 0, "ecg": domain_offset},
        "args": argparse.Namespace(patch_width=24),
    }


def test_otis_checkpoint_loads_lead_rows_and_interpolates_time(tmp_path):
    source = small_ecg_encoder()
    path = tmp_path / "otis.pth"
    torch.save(otis_checkpoint(source, n_time_positions=21, domain_offset=5), path)
    encoder = small_ecg_encoder()
    report = load_otis_checkpoint(encoder, path, domain="ecg")

    lead = encoder.lead_pos_embed.weight
    assert torch.all(lead[0] == 0)
    assert lead[1:, 0].tolist() == list(range(6, 18))  # rows k+1 … k+12 of pos_embed_y
    # Linear interpolation 21 → 42 positions (align_corners=False): patch j sits at
    # checkpoint position j/2 − 1/4, clamped to the table's ends.
    expected = [min(max(j / 2 - 0.25, 0.0), 20.0) for j in range(42)]
    assert encoder.time_pos_embed[:, 0].tolist() == pytest.approx(expected, abs=1e-6)
    assert "interpolated from 21 to 42" in report.time_positions
    assert torch.equal(
        encoder.blocks[1].attn.mha.in_proj_weight, source.blocks[1].attn.mha.in_proj_weight
    )
    assert report.domain_offset == 5
    assert sorted(report.missing) == ["fc_norm.bias", "fc_norm.weight"]
    assert report.unexpected == ["surprise.weight"]
    assert sorted(report.ignored) == [
        "decoder_embed.weight",
        "mask_token",
        "norm.bias",
        "norm.weight",
    ]


def test_otis_checkpoint_with_more_time_positions_uses_the_first_ones():
    encoder = small_ecg_encoder()
    load_otis_checkpoint(encoder, otis_checkpoint(small_ecg_encoder(), 104, domain_offset=0))
    assert encoder.time_pos_embed[:, 0].tolist() == list(range(42))
    assert encoder.lead_pos_embed.weight[1:, 0].tolist() == list(range(1, 13))
    with pytest.raises(ValueError, match="domain 'eeg2'"):
        load_otis_checkpoint(encoder, otis_checkpoint(encoder, 104, 0), domain="eeg2")


# --------------------------------------------------------------------------- aggregators


@pytest.mark.parametrize("pool_class", [ViewAttentionPool, ViewMeanPool, ViewClsPool, ViewMean])
def test_padded_views_change_nothing(pool_class):
    torch.manual_seed(0)
    pool = (ViewMean() if pool_class is ViewMean else pool_class(in_dim=16, dim=32)).eval()
    n_valid = [1, 3, 5]
    views = torch.randn(3, 5, 16)
    mask = torch.arange(5)[None, :] < torch.tensor(n_valid)[:, None]
    with torch.no_grad():
        pooled = pool(views, mask)
        garbage = views.masked_fill(~mask[..., None], 1e6)
        garbage[0, 1] = float("nan")
        assert torch.equal(pool(garbage, mask), pooled)
        for study, n in enumerate(n_valid):  # the same study alone, without padding
            alone = pool(views[study : study + 1, :n], torch.ones(1, n, dtype=torch.bool))
            assert torch.allclose(alone[0], pooled[study], atol=1e-5)
    assert pooled.shape == (3, 16 if pool_class is ViewMean else 32)


@pytest.mark.parametrize("pool_class", [ViewAttentionPool, ViewClsPool])
def test_view_weights_are_the_weights_the_pool_attends_with(pool_class):
    torch.manual_seed(2)
    pool = pool_class(in_dim=16, dim=32, num_heads=1).eval()
    views = torch.randn(2, 4, 16)
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    with torch.no_grad():
        weights = pool.view_weights(views, mask)
        # one head: the attended vector is out_proj of the weighted sum of the value rows
        projected = pool.project(views, mask)
        values = torch.nn.functional.linear(
            projected, pool.attention.in_proj_weight[64:], pool.attention.in_proj_bias[64:]
        )
        by_weights = pool.attention.out_proj(torch.einsum("bv,bvd->bd", weights, values))
        query = pool.query(projected, mask)
        attended = pool.attention(query, projected, projected, key_padding_mask=~mask)[0]
    assert weights.shape == (2, 4) and weights[0, 3] == 0
    assert torch.allclose(weights.sum(1), torch.ones(2))
    assert torch.allclose(by_weights, attended.squeeze(1), atol=1e-6)
    if pool_class is ViewAttentionPool:
        assert torch.allclose(pool(views, mask), by_weights, atol=1e-6)


def test_cls_pool_is_the_references_transformer_step():
    pool = ViewClsPool(in_dim=16, dim=32, num_heads=4).eval()
    assert pool.attention.dropout == 0.1 and isinstance(pool.ffn[-1], torch.nn.Dropout)
    assert [type(layer).__name__ for layer in pool.ffn] == ["Linear", "GELU", "Linear", "Dropout"]
    assert pool.ffn[0].out_features == 4 * 32
    torch.manual_seed(1)
    views, mask = torch.randn(2, 3, 16), torch.ones(2, 3, dtype=torch.bool)
    with torch.no_grad():  # by hand: c = LN(c + MHA(c, v, v)); c = LN(c + FFN(c))
        projected = pool.view_proj(views)
        query = pool.cls_token.expand(2, -1, -1)
        attended = pool.attention(query, projected, projected, need_weights=False)[0]
        token = pool.norm1(query + attended)
        expected = pool.norm2(token + pool.ffn(token)).squeeze(1)
        assert torch.allclose(pool(views, mask), expected, atol=1e-6)


def test_single_view_baseline_has_no_view_layer():
    model = Echo2ECG(ECGEncoder(), pooling="single")
    assert count_parameters(model.view_pool) == 0
    assert model.echo_proj.in_features == 512
    assert count_parameters(model) == 7_484_512
    assert not any(key.startswith("view_pool.") for key in model.state_dict())
    views = torch.randn(1, 3, 512)
    with torch.no_grad():  # at evaluation a study is the projected mean of its views
        assert torch.allclose(
            model.encode_study(views), model.echo_proj(views.mean(dim=1)), atol=1e-5
        )


def test_mean_pool_reads_a_study_as_one_affine_map_of_its_mean_view():
    # as the single-view baseline does at evaluation (above): the ablation between the two
    # compares how they are trained, not what a study can tell them
    torch.manual_seed(3)
    model = Echo2ECG(ECGEncoder(), pooling="mean", study_dim=32).eval()
    model.fit_view_standardization(torch.randn(50, 512) * 3 + 1)
    views = torch.randn(2, 4, 512)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    with torch.no_grad():
        proj = model.view_pool.view_proj
        weight = model.echo_proj.weight @ proj.weight  # (512, 512)
        bias = model.echo_proj(proj.bias)
        mean_view = torch.stack([views[0, :2].mean(0), views[1].mean(0)])
        standardised = (mean_view - model.view_mean) / model.view_scale
        assert torch.allclose(
            model.encode_study(views, mask), standardised @ weight.T + bias, atol=1e-5
        )


def test_parameter_counts_of_every_pooling():
    counts = {
        pooling: count_parameters(Echo2ECG(ECGEncoder(), pooling=pooling)) for pooling in POOLINGS
    }
    assert counts == {
        "attention": 12_470_368,
        "mean": 8_271_968,
        "cls": 20_869_216,
        "single": 7_484_512,
    }


def test_view_standardisation_is_fitted_saved_and_applied():
    torch.manual_seed(0)
    model = Echo2ECG(small_ecg_encoder(), pooling="mean").eval()
    views = 5.0 + torch.randn(40, 512) * 0.5
    before = model.encode_study(views[:4, None]).detach()
    model.fit_view_standardization(views)
    assert torch.allclose(model.view_mean, views.mean(dim=0))
    assert model.view_scale.item() == pytest.approx(0.5, rel=0.05)
    standardised = (views - views.mean(dim=0)) / model.view_scale
    with torch.no_grad():
        expected = model.echo_proj(
            model.view_pool(standardised[:4, None], torch.ones(4, 1, dtype=torch.bool))
        )
        assert torch.allclose(model.encode_study(views[:4, None]), expected, atol=1e-5)
    assert not torch.allclose(model.encode_study(views[:4, None]), before)
    copy = Echo2ECG(small_ecg_encoder(), pooling="mean")
    copy.load_state_dict(model.state_dict())  # checkpoints carry the standardisation
    assert torch.equal(copy.view_mean, model.view_mean)


def test_pool_rejects_a_study_without_views():
    with pytest.raises(ValueError, match="at least one valid view"):
        ViewMeanPool(16, 32)(torch.randn(2, 3, 16), torch.tensor([[True] * 3, [False] * 3]))


# --------------------------------------------------------------------------- Echo2ECG


def test_trainable_parameters_of_the_attention_variant():
    model = Echo2ECG(ECGEncoder(), pooling="attention")
    assert count_parameters(model) == 12_470_368
    assert count_parameters(model.view_pool) == 4_723_712
    assert model.ecg_proj.bias is None and model.echo_proj.bias is None


@pytest.mark.parametrize("pooling", POOLINGS)
def test_echo2ecg_output_shapes(pooling):
    model = Echo2ECG(small_ecg_encoder(), pooling=pooling).eval()
    views = torch.randn(2, 7, 512)
    mask = torch.tensor([[True] * 7, [True] * 2 + [False] * 5])
    with torch.no_grad():
        ecg_z, echo_z = model(torch.randn(2, 12, 1008), views, mask)
        assert ecg_z.shape == echo_z.shape == (2, 512)
        assert model.encode_study(views[:, 0]).shape == (2, 512)  # one view per study


def test_unknown_pooling_is_rejected():
    with pytest.raises(ValueError, match="unknown pooling"):
        Echo2ECG(small_ecg_encoder(), pooling="max")


def test_clip_loss_is_symmetric():
    torch.manual_seed(0)
    ecg_z, echo_z = torch.randn(6, 512), torch.randn(6, 512)
    assert clip_loss(ecg_z, echo_z).item() == pytest.approx(
        clip_loss(echo_z, ecg_z).item(), rel=1e-6
    )


def test_clip_loss_hand_checked_value():
    ecg_z = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    echo_z = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # lengths do not matter
    # cosines [[1, 0], [1/√2, 1/√2]], τ = 0.5 → logits [[2, 0], [√2, √2]]
    r = math.sqrt(2)
    ecg_to_echo = (math.log(1 + math.exp(-2)) + math.log(2)) / 2
    echo_to_ecg = (math.log(1 + math.exp(r - 2)) + math.log(1 + math.exp(-r))) / 2
    expected = (ecg_to_echo + echo_to_ecg) / 2
    assert clip_loss(ecg_z, echo_z, temperature=0.5).item() == pytest.approx(expected, rel=1e-6)
