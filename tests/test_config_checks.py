"""Configs that would fail late (after extraction or embedding) or run silently wrong are
refused up front, each with a line naming its key."""

import re

import pytest
import yaml
from conftest import ROOT, SCHEMA, shipped_config

from echo2ecg.config import (
    ConfigError,
    check_cohort_references,
    check_config,
    check_no_duplicate_keys,
    check_semantics,
    load_yaml_strict,
)


def check_all(config):
    """The checks rules/common.smk runs before any job, in its order."""
    check_config(config, SCHEMA)
    check_cohort_references(config)
    check_semantics(config)


def problem_lines(config):
    with pytest.raises(ConfigError) as error:
        check_all(config)
    return str(error.value).splitlines()[1:]


def line_for(config, key):
    """The one message line that names ``key`` as the offending key."""
    lines = [
        line.strip()
        for line in problem_lines(config)
        if line.strip().startswith(f"config key {key}:")
    ]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("name", ["config.yaml", "config.paper.yaml"])
def test_shipped_configs_pass_every_check(name):
    check_no_duplicate_keys(ROOT / name)
    check_all(load_yaml_strict(ROOT / name))


def test_num_heads_must_divide_embed_dim():
    config = shipped_config()
    config["ecg_encoder"]["num_heads"] = 5  # embed_dim 64
    line = line_for(config, "ecg_encoder.num_heads")
    assert "does not divide ecg_encoder.embed_dim (64)" in line


def test_patch_size_must_divide_n_samples():
    config = shipped_config()
    config["ecg_encoder"]["n_samples"] = 1000  # patch_size 48
    line = line_for(config, "ecg_encoder.patch_size")
    assert "does not divide ecg_encoder.n_samples (1000)" in line


def test_n_samples_must_fit_in_the_stored_signal():
    config = shipped_config()
    config["ecg_encoder"]["n_samples"] = 48 * 105  # 5040 > 500 Hz * 10 s
    line = line_for(config, "ecg_encoder.n_samples")
    assert "longer than the stored ECG" in line and "= 5000 samples" in line
    config["ecg_encoder"]["n_samples"] = 48 * 104  # 4992 fits
    check_all(config)


def test_the_trace_source_must_be_listed_configured_and_long_enough_to_train():
    config = shipped_config()
    config["ecg_sources"] = ["ecg_files"]
    config["pairing"]["ecg_source"] = "both"
    line = line_for(config, "pairing.ecg_source")
    assert "'both' needs echo_trace in ecg_sources" in line
    config = shipped_config()
    config["pairing"]["ecg_source"] = "echo_trace"
    config["echo_trace"]["duration_s"] = 2.0  # 1000 samples < the encoder's 1008
    line = line_for(config, "echo_trace.duration_s")
    assert "1000 samples at ecg.fs, fewer than ecg_encoder.n_samples (1008)" in line
    config["pairing"]["ecg_source"] = "ecg_files"  # traces extracted, not trained on
    check_all(config)
    config["echo_trace"]["hsv_lower"] = [95, 97, 113]
    assert "above hsv_upper" in line_for(config, "echo_trace.hsv_lower")
    config["echo_trace"]["hsv_lower"] = [64, 97, 113]
    config["echo_trace"]["hsv_upper"] = [200, 255, 198]
    assert "hue 200 is above 179" in line_for(config, "echo_trace.hsv_upper")
    config = shipped_config()
    del config["echo_trace"]
    assert "ecg_sources lists echo_trace" in line_for(config, "echo_trace")


def test_evaluation_length_obeys_the_same_rules():
    config = shipped_config()
    config["evaluation"]["n_samples"] = 5050  # > 5000 stored, not whole tokens of 48
    lines = problem_lines(config)
    assert any(line.strip().startswith("config key evaluation.n_samples:") for line in lines)
    assert any("does not divide evaluation.n_samples (5050)" in line for line in lines)


@pytest.mark.parametrize(
    "section, key, value", [("train", "epochs", 2.0), ("cohorts", "internal.echo_shards", 3.0)]
)
def test_integer_keys_refuse_floats(section, key, value):
    config = shipped_config()
    target = config[section]
    *parents, last = key.split(".")
    for part in parents:
        target = target[part]
    target[last] = value
    line = line_for(config, f"{section}.{key}")
    assert f"{value!r} is not of type 'integer'" in line


def integer_paths(value, path=()):
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from integer_paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from integer_paths(item, (*path, i))


def schema_type(path):
    """The `type` the schema gives the config key at ``path``."""
    root = node = yaml.safe_load(SCHEMA.read_text())
    for part in path:
        if "$ref" in node:
            node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        node = (
            node["items"]
            if isinstance(part, int)
            else node.get("properties", {}).get(part, node.get("additionalProperties"))
        )
    return node.get("type")


def test_every_integer_key_refuses_a_float():
    config = shipped_config()
    paths = list(integer_paths(config))
    assert len(paths) > 20
    for path in paths:
        target = config
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = float(target[path[-1]])
    with pytest.raises(ConfigError) as error:
        check_config(config, SCHEMA)
    named = set(re.findall(r"config key (\S+): \S+ is not of type 'integer'", str(error.value)))
    # Keys the schema types as `number` (ecg.fs: 500 in the file) may be floats.
    expected = {".".join(map(str, path)) for path in paths if schema_type(path) == "integer"}
    assert "train.epochs" in expected and "ecg.fs" not in expected
    assert named == expected


@pytest.mark.parametrize("where", ["pairing", "cohorts.internal"])
def test_split_fractions_must_sum_to_one(where):
    config = shipped_config()
    target = config
    for part in where.split("."):
        target = target[part]
    target["splits"] = {"train": 0.7, "val": 0.2, "test": 0.2}
    line = line_for(config, f"{where}.splits")
    assert "fractions sum to 1.1" in line
    target["splits"] = {"train": 0.7, "val": 0.1, "test": 0.2}  # 0.99999... in floats
    check_all(config)


def test_split_fractions_may_not_be_negative():
    config = shipped_config()
    config["cohorts"]["external"]["splits"] = {"train": 0.9, "val": -0.1, "test": 0.2}
    assert "config key cohorts.external.splits.val:" in "\n".join(problem_lines(config))
    # check_semantics says so too, for a config it is handed directly
    with pytest.raises(ConfigError) as error:
        check_semantics(config)
    assert "config key cohorts.external.splits.val: -0.1 is negative" in str(error.value)


def test_a_split_needs_test_patients():
    config = shipped_config()
    config["pairing"]["splits"] = {"train": 0.8, "val": 0.2, "test": 0}
    line = line_for(config, "pairing.splits.test")
    assert "leaves no test patients" in line


@pytest.mark.parametrize(
    "key, value, bound", [("fs", 50, "minimum of 100"), ("duration_s", 0.5, "minimum of 1")]
)
def test_implausible_ecg_rate_or_length(key, value, bound):
    config = shipped_config()
    config["ecg"][key] = value
    line = line_for(config, f"ecg.{key}")
    assert bound in line and "12-lead ECG" in line


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("train", "lr", float("inf")),
        ("train", "weight_decay", float("nan")),
        ("train", "temperature", float("-inf")),
        ("ecg", "asls_p", float("inf")),
    ],
)
def test_non_finite_floats_are_refused(section, key, value):
    config = shipped_config()
    config[section][key] = value
    line = line_for(config, f"{section}.{key}")  # one line, even where a bound also fails
    assert line.endswith(f"{value!r} is not a finite number")


def test_non_finite_list_items_are_refused():
    config = shipped_config()
    config["evaluation"]["shd_fractions"][1] = float("nan")
    assert "not a finite number" in line_for(config, "evaluation.shd_fractions.1")


def test_warmup_must_be_shorter_than_training():
    config = shipped_config()
    config["train"]["warmup_epochs"] = config["train"]["epochs"]
    line = line_for(config, "train.warmup_epochs")
    assert f"is not shorter than train.epochs ({config['train']['epochs']})" in line


def test_every_problem_is_listed_at_once():
    config = shipped_config()
    config["ecg_encoder"]["num_heads"] = 3
    config["train"]["warmup_epochs"] = 100
    with pytest.raises(ConfigError) as error:
        check_semantics(config)
    assert "ecg_encoder.num_heads" in str(error.value)
    assert "train.warmup_epochs" in str(error.value)


def test_duplicate_yaml_keys_are_named_with_file_and_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "train:\n  lr: 1.0e-3\n  epochs: 5\n  lr: 5.0e-4\necg: {fs: 500}\necg: {fs: 250}\n"
    )
    with pytest.raises(ConfigError) as error:
        check_no_duplicate_keys(path)
    message = str(error.value)
    assert f"{path} line 4: duplicate key 'lr' (in train, first at line 2)" in message
    assert f"{path} line 6: duplicate key 'ecg' (at top level, first at line 5)" in message
    # without duplicates it reads like yaml.safe_load
    path.write_text("train:\n  lr: 1.0e-3\n  epochs: 5\nlist: [{a: 1}, {a: 2}]\n")
    assert load_yaml_strict(path) == yaml.safe_load(path.read_text())


def test_merge_keys_are_not_duplicates(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("base: &base {fs: 500, duration_s: 10}\necg:\n  <<: *base\n  fs: 250\n")
    assert load_yaml_strict(path)["ecg"] == {"fs": 250, "duration_s": 10}


def test_variant_objectives_and_their_keys_are_checked():
    config = shipped_config()
    config["variants"]["echo2ecg"]["objective"] = "triplet"
    assert "triplet" in line_for(config, "variants.echo2ecg.objective")
    config = shipped_config()
    config["train"]["hierarchical"]["margin"] = -0.1
    assert "minimum" in line_for(config, "train.hierarchical.margin") or "less than" in line_for(
        config, "train.hierarchical.margin"
    )
    config = shipped_config()
    config["train"]["probabilistic"]["vib"] = 1.0
    assert "unknown key" in line_for(config, "train.probabilistic.vib")
