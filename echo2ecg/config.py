"""Configuration checking: one clear message that names the offending key."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml


class ConfigError(ValueError):
    """A configuration that does not match the schema."""


def _key_name(path) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def check_config(config: dict, schema_path: str | Path) -> None:
    """Validate ``config`` against the JSON schema (YAML) at ``schema_path``.

    Raises ConfigError with one line per problem, most relevant first, e.g.
    ``config key echo.stride: 'two' is not of type 'integer'``.
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=jsonschema.exceptions.relevance)
    if not errors:
        return
    lines = []
    for error in errors:
        if error.validator == "additionalProperties":
            allowed = ", ".join(sorted(error.schema.get("properties", {})))
            unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            for key in unknown:
                where = _key_name([*error.absolute_path, key])
                lines.append(f"config key {where}: unknown key (allowed here: {allowed})")
        else:
            lines.append(f"config key {_key_name(error.absolute_path)}: {error.message}")
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
        problems.append(f"config key pairing.train_cohort: {train!r} is not a cohort with "
                        f"echo_views (cohorts with echo: {', '.join(with_echo) or 'none'})")
    evaluation = config["evaluation"]
    for i, name in enumerate(evaluation["lvef_cohorts"]):
        if name not in cohorts:
            problems.append(f"config key evaluation.lvef_cohorts.{i}: {name!r} is not a cohort "
                            f"(cohorts: {known})")
    if evaluation["shd_cohort"] not in cohorts:
        problems.append(f"config key evaluation.shd_cohort: {evaluation['shd_cohort']!r} is not "
                        f"a cohort (cohorts: {known})")
    if evaluation["baseline"] not in config["variants"]:
        problems.append(f"config key evaluation.baseline: {evaluation['baseline']!r} is not a "
                        f"variant (variants: {', '.join(config['variants'])})")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
