"""Shared by the benchmarks: where their figures go, and the ``--smoke`` sizes.

.venv/bin/python bench/figures.py --smoke   # checks the JSON round trip
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def write_figures(result: dict, path: Path | None) -> None:
    """Write a benchmark's figures as JSON when ``--json PATH`` was given."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def parse_args(
    parser: argparse.ArgumentParser, smoke: dict, argv: list[str] | None = None
) -> argparse.Namespace:
    """Add ``--smoke`` to ``parser`` and parse the command line.

    With ``--smoke`` the values in ``smoke`` (argument dest → value) replace the defaults, so
    the benchmark runs its whole code path, assertions included, at a seconds-long size;
    arguments given explicitly still win. Without it nothing changes.
    """
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="the same code path at a seconds-long size (for the tests)",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        parser.set_defaults(**smoke)
        args = parser.parse_args(argv)  # again, so that explicit arguments beat smoke sizes
    return args


def _probe_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    return parser


def main() -> None:
    """Check the helpers every benchmark leans on (with or without ``--smoke``: both are
    seconds long)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parse_args(parser, {})
    sizes = {"n": 3, "repeats": 1}
    assert vars(parse_args(_probe_parser(), sizes, [])) == {"n": 1000, "repeats": 5, "smoke": False}
    assert vars(parse_args(_probe_parser(), sizes, ["--smoke", "--n", "7"])) == {
        "n": 7,
        "repeats": 1,
        "smoke": True,
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sub/figures.json"
        write_figures({"speedup": 2.5, "rows": [{"step": "a"}]}, path)
        assert json.loads(path.read_text()) == {"speedup": 2.5, "rows": [{"step": "a"}]}
        write_figures({"speedup": 1.0}, None)  # no --json: nothing written anywhere
        assert sorted(p.name for p in Path(folder).rglob("*")) == ["figures.json", "sub"]
    print("figures: ok")


if __name__ == "__main__":
    main()
