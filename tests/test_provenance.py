"""Reruns follow the code: a rule's code digest covers exactly what its script imports."""

import re
from pathlib import Path

import pytest

from echo2ecg.report.provenance import code_digest, imported_modules

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "workflow_scripts").glob("*.py"))


@pytest.fixture
def package(tmp_path):
    """pkg/{__init__, a (imports b inside a function), b, c (imported by nobody)}."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg.sub import b\n    return b\n")
    (pkg / "sub" / "b.py").write_text("import os\nVALUE = 1\n")
    (pkg / "c.py").write_text("VALUE = 2\n")
    script = tmp_path / "script.py"
    script.write_text("import numpy\nfrom pkg import a\n")
    return tmp_path, script


def test_closure_follows_imports_inside_functions_and_package_inits(package):
    root, script = package
    assert imported_modules(script.read_text(), "pkg", root) == [
        "pkg",
        "pkg.a",
        "pkg.sub",
        "pkg.sub.b",
    ]


def test_digest_changes_with_the_code_a_script_runs_and_only_with_it(package):
    root, script = package
    before = code_digest(script, "pkg", root)
    (root / "pkg" / "c.py").write_text("VALUE = 3\n")  # imported by nobody
    assert code_digest(script, "pkg", root) == before
    (root / "pkg" / "sub" / "b.py").write_text("VALUE = 4\n")  # imported inside a function
    assert code_digest(script, "pkg", root) != before


def rule_scripts() -> dict[str, str]:
    """Rule name -> its workflow script, from the rules' text."""
    found = {}
    for rules in (ROOT / "rules").glob("*.smk"):
        for name, body in re.findall(
            r"(?ms)^(?:rule|checkpoint) (\w+):\n(.*?)(?=^\S|\Z)", rules.read_text()
        ):
            script = re.search(r'script:\s*"\.\./workflow_scripts/(\w+)\.py"', body)
            if script:
                assert f'code=script_code("{script.group(1)}")' in body, name
                found[name] = script.group(1)
    return found


def test_every_rule_with_a_script_carries_its_code_digest():
    assert set(rule_scripts().values()) == {script.stem for script in SCRIPTS}


@pytest.mark.parametrize(
    "module, expected",
    [
        ("echo2ecg.data.dicom", {"extract_echo", "prep_ecg", "extract_trace"}),
        ("echo2ecg.data.echo_trace", {"extract_trace"}),
        ("echo2ecg.models.echo_encoder", {"embed_echo", "pretrain", "features"}),
        (
            "echo2ecg.evaluate.metrics",
            {
                "lvef_knn",
                "shd_scaling",
                "retrieval",
                "ablation",
                "findings",
                "uncertainty",
                "uncertainty_noise",
                "external_features",
            },
        ),
        ("echo2ecg.evaluate.findings", {"findings"}),
        ("echo2ecg.synth.echo_views", {"demo_cohort"}),
    ],
)
def test_a_module_reruns_exactly_the_rules_that_import_it(module, expected):
    rerun = {
        rule
        for rule, script in rule_scripts().items()
        if module in imported_modules((ROOT / "workflow_scripts" / f"{script}.py").read_text())
    }
    assert rerun == expected
