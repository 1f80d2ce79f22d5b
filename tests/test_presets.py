"""The shipped configurations: the demo default and the paper preset."""

import pytest
import yaml
from conftest import ROOT, SCHEMA

from echo2ecg.config import check_config
from echo2ecg.models import count_parameters
from echo2ecg.train.pretrain import build_model, train_settings


def load(name):
    config = yaml.safe_load((ROOT / name).read_text())
    check_config(config, SCHEMA)
    return config


def test_paper_preset_builds_the_papers_model():
    config = load("config.paper.yaml")
    model = build_model(
        config["ecg_encoder"], config["variants"]["echo2ecg"]["pooling"], config["aggregator"]
    )
    assert count_parameters(model.ecg_encoder) == pytest.approx(7.1e6, rel=0.01)
    assert count_parameters(model) == pytest.approx(12.5e6, rel=0.01)
    settings = train_settings(config["train"], config["ecg_encoder"], "attention")
    assert (
        settings.epochs,
        settings.batch_size,
        settings.lr,
        settings.layer_decay,
        settings.weight_decay,
        settings.warmup_epochs,
        settings.temperature,
        settings.seed,
    ) == (50, 256, 5e-4, 0.75, 1e-7, 5, 0.5, 42)


def test_demo_and_paper_differ_only_in_scale_and_data():
    demo, paper = load("config.yaml"), load("config.paper.yaml")
    assert demo["ecg"] == paper["ecg"] and demo["echo"] == paper["echo"]
    assert demo["pairing"] == paper["pairing"]
    # the demo leaves out the seed systems' variants; its comment gives their exact lines
    text = (ROOT / "config.yaml").read_text().splitlines()
    start = text.index("variants:") + 1
    stop = next(i for i in range(start, len(text)) if text[i][:1].isalpha())
    commented = yaml.safe_load(
        "\n".join(t.strip()[1:] for t in text[start:stop] if t.strip().startswith("#   "))
    )
    assert demo["variants"] == {k: v for k, v in paper["variants"].items() if k not in commented}
    assert {**demo["variants"], **commented} == paper["variants"]
    assert {spec["objective"] for spec in commented.values()} == {"probabilistic", "hierarchical"}
    assert demo["evaluation"] == paper["evaluation"]
    for key in (
        "weight_decay",
        "warmup_epochs",
        "warmup_start",
        "min_lr",
        "temperature",
        "max_views",
        "single_view_sampling",
        "embeddings_share_block0",
        "seed",
    ):
        assert demo["train"][key] == paper["train"][key]
    assert demo["ecg_encoder"]["depth"] < paper["ecg_encoder"]["depth"]
    # every key where the demo departs from the paper says DEMO SCALE on its line or above
    for section, keys in (
        (
            "train",
            ("epochs", "batch_size", "lr", "layer_decay", "augmentation", "standardize_views"),
        ),
        ("ecg_encoder", ("embed_dim", "depth", "num_heads", "patch_size")),
    ):
        for key in keys:
            if demo[section][key] == paper[section][key]:
                continue
            start = text.index(f"{section}:")
            line = next(
                i for i, t in enumerate(text) if i > start and t.strip().startswith(f"{key}:")
            )
            assert any("DEMO SCALE" in t for t in text[max(0, line - 5) : line + 1]), key
