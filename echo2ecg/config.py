"""Configuration checking: one clear message that names the offending key."""

from __future__ import annotations

import math
from pathlib import Path

import jsonschema
import yaml


class ConfigError(ValueError):
    """A configuration that does not match the schema."""


def _key_name(path) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def _is_strict_integer(_checker, instance) -> bool:
    # JSON Schema counts 2.0 as an integer; range() and shard counts do not.
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", _is_strict_integer
    ),
)

# Bound violations carry the key's schema `description` (why the bound is where it is).
_BOUNDS = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"}


def _non_finite(value, path=()):
    """(path, value) of every inf or nan float in a nested config."""
    if isinstance(value, float) and not math.isfinite(value):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _non_finite(item, (*path, i))


def check_config(config: dict, schema_path: str | Path) -> None:
    """Validate ``config`` against the JSON schema (YAML) at ``schema_path``.

    Stricter than plain JSON Schema in two ways: an ``integer`` key refuses floats such
    as 2.0, and an inf or nan float anywhere in the config is an error. Raises
    ConfigError with one line per problem, most relevant first, e.g.
    ``config key echo.stride: 'two' is not of type 'integer'``.
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    non_finite = dict(_non_finite(config))
    lines = [
        f"config key {_key_name(path)}: {value!r} is not a finite number"
        for path, value in non_finite.items()
    ]
    errors = sorted(_Validator(schema).iter_errors(config), key=jsonschema.exceptions.relevance)
    for error in errors:
        if tuple(error.absolute_path) in non_finite:
            continue  # already named above; a bound it also breaks adds nothing
        if error.validator == "additionalProperties":
            allowed = ", ".join(sorted(error.schema.get("properties", {})))
            unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            for key in unknown:
                where = _key_name([*error.absolute_path, key])
                lines.append(f"config key {where}: unknown key (allowed here: {allowed})")
        else:
            line = f"config key {_key_name(error.absolute_path)}: {error.message}"
            if error.validator in _BOUNDS and "description" in error.schema:
                line += f" ({error.schema['description']})"
            lines.append(line)
    if lines:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))


def check_cohort_references(config: dict) -> None:
    """Keys that name cohorts or variants must name ones that exist (and the training
    cohort must have echo).

    Raises ConfigError naming the key, e.g. ``config key evaluation.shd_cohort: 'echonext'
    is not a cohort (cohorts: internal, external)``.
    """
    cohorts = config["cohorts"]
    with_echo = [name for name, cohort in cohorts.items() if "echo_views" in cohort]
    known = ", ".join(cohorts)
    problems = []
    train = config["pairing"]["train_cohort"]
    if train not in with_echo:
        problems.append(
            f"config key pairing.train_cohort: {train!r} is not a cohort with "
            f"echo_views (cohorts with echo: {', '.join(with_echo) or 'none'})"
        )
    evaluation = config["evaluation"]
    for i, name in enumerate(evaluation["lvef_cohorts"]):
        if name not in cohorts:
            problems.append(
                f"config key evaluation.lvef_cohorts.{i}: {name!r} is not a cohort "
                f"(cohorts: {known})"
            )
    if evaluation["shd_cohort"] not in cohorts:
        problems.append(
            f"config key evaluation.shd_cohort: {evaluation['shd_cohort']!r} is not "
            f"a cohort (cohorts: {known})"
        )
    for name in evaluation.get("external_features") or {}:
        if name in config["variants"]:
            problems.append(
                f"config key evaluation.external_features.{name}: {name!r} is already a "
                "variant; give the other model's features another name"
            )
    if evaluation["baseline"] not in config["variants"]:
        problems.append(
            f"config key evaluation.baseline: {evaluation['baseline']!r} is not a "
            f"variant (variants: {', '.join(config['variants'])})"
        )
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def _integer(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _real(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return None


# Split fractions may miss 1 by float rounding (0.7 + 0.1 + 0.2), not by more.
SPLIT_TOLERANCE = 1e-6


def _split_problems(key: str, splits) -> list[str]:
    if not isinstance(splits, dict):
        return []
    problems = []
    fractions = {name: _real(value) for name, value in splits.items()}
    for name, value in fractions.items():
        if value is not None and value < 0:
            problems.append(f"config key {key}.{name}: {value!r} is negative")
    test = fractions.get("test")
    if test == 0:
        problems.append(f"config key {key}.test: {test!r} leaves no test patients")
    if fractions and None not in fractions.values():
        total = sum(fractions.values())
        if abs(total - 1) > SPLIT_TOLERANCE:
            terms = " + ".join(f"{name} {value!r}" for name, value in fractions.items())
            problems.append(f"config key {key}: fractions sum to {total:.6g} ({terms}), not 1")
    return problems


def _length_problems(key: str, n_samples, patch_size, stored) -> list[str]:
    """An ECG input length must be whole tokens and must fit in the stored signal."""
    if n_samples is None:
        return []
    problems = []
    if patch_size and n_samples % patch_size:
        problems.append(
            f"config key ecg_encoder.patch_size: {patch_size!r} does not divide "
            f"{key} ({n_samples!r})"
        )
    if stored is not None and n_samples > stored[0]:
        samples, fs, duration = stored
        problems.append(
            f"config key {key}: {n_samples!r} samples is longer than the stored "
            f"ECG (ecg.fs {fs!r} * ecg.duration_s {duration!r} = {samples} samples)"
        )
    return problems


def check_semantics(config: dict) -> None:
    """Rules that tie keys to one another, which a schema cannot say: the ECG encoder's
    shape, input lengths against the stored ECG, split fractions, the warm-up.

    Meant for a config that passed :func:`check_config`; keys it cannot read (missing,
    or of the wrong type) are left to that check. Raises ConfigError with one line per
    problem, each naming its key, e.g. ``config key ecg_encoder.num_heads: 5 does not
    divide ecg_encoder.embed_dim (64)``.
    """
    problems = []
    encoder = config.get("ecg_encoder", {})
    embed_dim, num_heads = _integer(encoder.get("embed_dim")), _integer(encoder.get("num_heads"))
    patch_size = _integer(encoder.get("patch_size"))
    if embed_dim is not None and num_heads and embed_dim % num_heads:
        problems.append(
            f"config key ecg_encoder.num_heads: {num_heads!r} does not divide "
            f"ecg_encoder.embed_dim ({embed_dim!r})"
        )
    if embed_dim is not None and embed_dim % 4:
        # Tokens carry [lead | time] halves, the time half a sin-cos pair per frequency.
        problems.append(f"config key ecg_encoder.embed_dim: {embed_dim!r} is not a multiple of 4")

    ecg = config.get("ecg", {})
    fs, duration = _real(ecg.get("fs")), _real(ecg.get("duration_s"))
    # prepare_ecg stores round(duration_s * fs) samples per lead.
    stored = (round(fs * duration), fs, duration) if fs and duration else None
    problems += _length_problems(
        "ecg_encoder.n_samples", _integer(encoder.get("n_samples")), patch_size, stored
    )
    # Evaluation may read more samples than the model trained on, never more than stored.
    evaluation = config.get("evaluation", {})
    problems += _length_problems(
        "evaluation.n_samples", _integer(evaluation.get("n_samples")), patch_size, stored
    )

    train = config.get("train", {})
    epochs, warmup = _integer(train.get("epochs")), _real(train.get("warmup_epochs"))
    if epochs is not None and warmup is not None and warmup >= epochs:
        # The schedule would never leave warm-up: no cosine phase, min_lr never reached.
        problems.append(
            f"config key train.warmup_epochs: {warmup!r} is not shorter than "
            f"train.epochs ({epochs!r})"
        )

    problems += _split_problems("pairing.splits", config.get("pairing", {}).get("splits"))
    problems += _trace_problems(config, _integer(encoder.get("n_samples")), fs)
    for name, cohort in config.get("cohorts", {}).items():
        if isinstance(cohort, dict) and "splits" in cohort:
            problems += _split_problems(f"cohorts.{name}.splits", cohort["splits"])
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def _trace_problems(config: dict, n_samples, fs) -> list[str]:
    """The burned-in ECG source: listed where it trains, configured, and long enough for
    the encoder's input where it trains."""
    problems = []
    sources = config.get("ecg_sources", ["ecg_files"])
    source = config.get("pairing", {}).get("ecg_source", "ecg_files")
    if source in ("echo_trace", "both") and "echo_trace" not in sources:
        problems.append(
            f"config key pairing.ecg_source: {source!r} needs echo_trace in ecg_sources"
        )
    if source in ("ecg_files", "both") and "ecg_files" not in sources:
        problems.append(f"config key pairing.ecg_source: {source!r} needs ecg_files in ecg_sources")
    trace = config.get("echo_trace")
    if "echo_trace" in sources and not isinstance(trace, dict):
        problems.append("config key echo_trace: missing, and ecg_sources lists echo_trace")
    if not isinstance(trace, dict):
        return problems
    lower, upper = trace.get("hsv_lower"), trace.get("hsv_upper")
    for key, bound in (("hsv_lower", lower), ("hsv_upper", upper)):
        hue = _integer(bound[0]) if isinstance(bound, list) and bound else None
        if hue is not None and hue > 179:
            problems.append(f"config key echo_trace.{key}: hue {hue} is above 179 (OpenCV)")
    if (
        isinstance(lower, list)
        and isinstance(upper, list)
        and any(a > b for a, b in zip(lower, upper))
    ):
        problems.append(f"config key echo_trace.hsv_lower: {lower} is above hsv_upper {upper}")
    duration = _real(trace.get("duration_s"))
    trains = source in ("echo_trace", "both")
    if trains and duration and fs and n_samples and round(duration * fs) < n_samples:
        problems.append(
            f"config key echo_trace.duration_s: {duration!r} s is {round(duration * fs)} "
            f"samples at ecg.fs, fewer than ecg_encoder.n_samples ({n_samples})"
        )
    return problems


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with a repeated key (plain YAML loading keeps
    the last value and drops the others without a word)."""

    source = "<yaml>"

    def construct_document(self, node):
        lines = []
        self._find_duplicates(node, (), set(), lines)
        if lines:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
        return super().construct_document(node)

    def _find_duplicates(self, node, path, visited, lines) -> None:
        if id(node) in visited:  # an alias: its anchor's node was walked already
            return
        visited.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._find_duplicates(item, (*path, i), visited, lines)
        elif isinstance(node, yaml.MappingNode):
            first_line = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue  # `<<` merges are meant to be overridden
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                if key in first_line:
                    where = f"in {_key_name(path)}" if path else "at top level"
                    lines.append(
                        f"{self.source} line {line}: duplicate key {key!r} "
                        f"({where}, first at line {first_line[key]})"
                    )
                else:
                    first_line[key] = line
                self._find_duplicates(value_node, (*path, key), visited, lines)


def load_yaml_strict(path: str | Path):
    """The YAML file at ``path``, like ``yaml.safe_load``, but a key repeated within one
    mapping is a ConfigError naming the file, line and key, e.g.
    ``config.yaml line 42: duplicate key 'lr' (in train, first at line 40)``."""
    loader = _StrictLoader(Path(path).read_text())
    loader.source = str(path)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def check_no_duplicate_keys(path: str | Path) -> None:
    """Raise ConfigError if a mapping in the YAML file at ``path`` repeats a key."""
    load_yaml_strict(path)
