"""What produced an output: code digests for reruns, provenance records for tables."""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import importlib.util
import json
import platform
import subprocess
from pathlib import Path

from . import __version__


def module_digest(*modules: str) -> str:
    """SHA-256 (first 16 hex digits) over the source of the named ``echo2ecg`` modules.

    Snakemake's code trigger sees a script's own text, not the library it calls; a rule
    that puts this digest in its params reruns when one of the modules it uses changes,
    and only then.
    """
    digest = hashlib.sha256()
    for name in sorted(modules):
        spec = importlib.util.find_spec(f"echo2ecg.{name}")
        if spec is None or spec.origin is None:
            raise ValueError(f"no module echo2ecg.{name}")
        with open(spec.origin, "rb") as source:
            digest.update(name.encode() + b"\0" + source.read())
    return digest.hexdigest()[:16]


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
    for name in ("torch", "torchvision", "numpy", "scikit-learn", "pydicom", "zarr", "pandas",
                 "pybaselines", "snakemake"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(folder: str | Path | None = None) -> str:
    """The checkout's commit (with "-dirty" when it has uncommitted changes), or "unknown"."""
    folder = folder or Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=folder, capture_output=True, text=True, check=True).stdout
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
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "echo2ecg_version": __version__,
        "git_commit": git_commit(),
        "config": config_subset,
        "config_sha256": config_hash(config_subset),
        "encoders_pretrained": pretrained,
        "inputs_sha256": {str(p): file_checksum(p) for p in inputs},
        "libraries": library_versions(),
    }
