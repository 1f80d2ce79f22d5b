"""What produced an output: code digests for reruns, provenance records for tables."""

from __future__ import annotations

import ast
import datetime
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import platform
import subprocess
from pathlib import Path

from echo2ecg import __version__


def imported_modules(
    source: str, package: str = "echo2ecg", root: str | Path | None = None
) -> list[str]:
    """The ``package`` modules a Python source imports, directly or through one another
    (imports inside functions included), sorted: the code a workflow script runs.

    ``root`` is the folder holding the package (default: where it is installed). Each
    module's package ``__init__`` counts too, since importing the module runs it.
    """
    root = _package_root(package, root)
    seen: set[str] = set()
    pending = set(_imports_of(source, package, root))
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending |= _imports_of(_module_file(name, root).read_text(), package, root)
    return sorted(seen)


def code_digest(
    script: str | Path, package: str = "echo2ecg", root: str | Path | None = None
) -> str:
    """SHA-256 (first 16 hex digits) of the sources of every ``package`` module that
    ``script`` imports, transitively (:func:`imported_modules`).

    Snakemake's code trigger sees a script's own text, not the library it calls; a rule
    that puts this digest in its params reruns when, and only when, code it runs changes.
    """
    root = _package_root(package, root)
    digest = hashlib.sha256()
    for name in imported_modules(Path(script).read_text(), package, root):
        digest.update(name.encode() + b"\0" + _module_file(name, root).read_bytes())
    return digest.hexdigest()[:16]


def _package_root(package: str, root: str | Path | None) -> Path:
    """``root`` as given, else the folder the installed ``package`` lives in."""
    return (
        Path(root)
        if root is not None
        else Path(importlib.util.find_spec(package).origin).parents[1]
    )


def _module_file(name: str, root: Path) -> Path:
    base = root.joinpath(*name.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


@functools.lru_cache(maxsize=1024)  # every rule's digest walks the same modules
def _imports_of(source: str, package: str, root: Path) -> frozenset[str]:
    """Modules of ``package`` named by the import statements of ``source``, with the
    packages above them (``from a.b import c`` is module a.b.c when c is a module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            targets = [f"{node.module}.{alias.name}" for alias in node.names]
            targets = [t if _module_file(t, root).exists() else node.module for t in targets]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            if parts[0] != package:
                continue
            for depth in range(1, len(parts) + 1):  # the package inits run too
                name = ".".join(parts[:depth])
                if _module_file(name, root).exists():
                    names.add(name)
    return frozenset(names)


def file_checksum(path: str | Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative names and contents, sorted)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour the numbers depend on."""
    versions = {"python": platform.python_version(), "echo2ecg": __version__}
    for name in (
        "torch",
        "torchvision",
        "numpy",
        "scikit-learn",
        "pydicom",
        "zarr",
        "pandas",
        "pybaselines",
        "snakemake",
    ):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(folder: str | Path | None = None) -> str:
    """The checkout's commit (with "-dirty" when it has uncommitted changes), or "unknown"."""
    folder = folder or Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty.strip() else "")


def config_hash(config_subset: dict) -> str:
    """SHA-256 of the config subset as canonical JSON (sorted keys)."""
    text = json.dumps(config_subset, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def table_provenance(config_subset: dict, inputs: list[str], pretrained: dict[str, bool]) -> dict:
    """Everything needed to audit a results table: the config subset that made it and its
    hash, code version and commit, checksums of every file read, library versions, whether
    the encoders were pretrained or random-init, and the creation time (UTC)."""
    return {
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "echo2ecg_version": __version__,
        "git_commit": git_commit(),
        "config": config_subset,
        "config_sha256": config_hash(config_subset),
        "encoders_pretrained": pretrained,
        "inputs_sha256": {str(p): file_checksum(p) for p in inputs},
        "libraries": library_versions(),
    }
