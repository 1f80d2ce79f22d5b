"""The package's layout and style are checked, not hoped for: stages import only earlier
stages, Python passes ruff (lint and format), the Snakemake files pass snakefmt and
Snakemake's own linter."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run_tool(name: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    tool = shutil.which(name, path=str(BIN))
    assert tool, f"{name} is not installed (requirements.lock)"
    return subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    done = run_tool("lint-imports", "--config", str(ROOT / "pyproject.toml"))
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    "args",
    [("check", "--output-format", "concise"), ("format", "--check")],
    ids=["check", "format"],
)
def test_python_passes_ruff(args):
    done = run_tool("ruff", *args, ".")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


def test_snakemake_files_are_formatted():
    done = run_tool("snakefmt", "--check", "Snakefile", "rules")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


def test_snakemake_lint_is_clean(tmp_path):
    # in a scratch folder: linting plans the DAG, which must not write into the checkout
    done = run_tool(
        "snakemake",
        "--lint",
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--configfile",
        str(ROOT / "config.yaml"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "Lints for" not in done.stdout + done.stderr
