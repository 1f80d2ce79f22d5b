"""Shared by the benchmarks: where their figures go."""

import json
from pathlib import Path


def write_figures(result: dict, path: Path | None) -> None:
    """Write a benchmark's figures as JSON when ``--json PATH`` was given."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
