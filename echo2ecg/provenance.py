"""What produced an output: code digests that make reruns follow library changes."""

from __future__ import annotations

import hashlib
import importlib.util


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
