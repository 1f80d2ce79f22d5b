"""The ``echo2ecg`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from echo2ecg import __version__
from echo2ecg.vocabulary import LEADS


def _extract_echo(args: argparse.Namespace) -> int:
    from echo2ecg.data.shard_run import extract_echo_shard, inputs_from_paths

    options = {"frames": args.frames, "stride": args.stride, "size": args.size, "zoom": args.zoom}
    out = Path(args.out)
    ledger = extract_echo_shard(
        inputs_from_paths(args.files), out / "clips.zarr", out / "ledger.csv", options
    )
    return _report(ledger, out / "clips.zarr", out / "ledger.csv")


def _prep_ecg(args: argparse.Namespace) -> int:
    from echo2ecg.data.shard_run import inputs_from_paths, prep_ecg_shard

    reader = {k: v for k, v in (("fmt", args.format), ("fs", args.fs)) if v is not None}
    out = Path(args.out)
    ledger = prep_ecg_shard(
        inputs_from_paths(args.files, **reader), out / "ecg.zarr", out / "ledger.csv"
    )
    return _report(ledger, out / "ecg.zarr", out / "ledger.csv")


def _extract_trace(args: argparse.Namespace) -> int:
    from echo2ecg.data.shard_run import inputs_from_paths
    from echo2ecg.data.trace_shard import extract_trace_shard

    out = Path(args.out)
    ledger = extract_trace_shard(
        inputs_from_paths(args.files),
        out / "ecg.zarr",
        out / "ledger.csv",
        {"duration_s": args.duration},
    )
    return _report(ledger, out / "ecg.zarr", out / "ledger.csv")


def _demo_cohort(args: argparse.Namespace) -> int:
    from echo2ecg.synth.cohort import demo_specs, generate_demo

    internal, external = demo_specs(seed=args.seed, scale=args.scale)
    manifests = generate_demo(args.out, internal, external)
    for name, path in sorted(manifests.items()):
        print(f"{name}: {path}")
    return 0


def _embed_ecg(args: argparse.Namespace) -> int:
    from echo2ecg.evaluate.extractor import embed_ecg_files

    table = embed_ecg_files(
        args.checkpoint, args.files, args.device, tuple(args.leads) if args.leads else None
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        table.to_csv(out, index=False)
    else:
        table.to_parquet(out, index=False)
    n_ok = int((table["status"] == "ok").sum())
    print(f"{n_ok} ok, {len(table) - n_ok} rejected -> {out}")
    return 0


def _retrieve(args: argparse.Namespace) -> int:
    from echo2ecg.evaluate.extractor import retrieve_studies

    print(
        retrieve_studies(args.checkpoint, args.ecg, args.gallery, args.k, args.device).to_string(
            index=False, float_format=lambda v: f"{v:.4f}"
        )
    )
    return 0


def _report(ledger, store: Path, ledger_path: Path) -> int:
    n_ok = int((ledger["status"] == "ok").sum())
    print(f"{n_ok} ok, {len(ledger) - n_ok} rejected -> {store} (ledger: {ledger_path})")
    for reason, count in ledger.loc[ledger["status"] != "ok", "reason"].value_counts().items():
        print(f"  rejected x{count}: {reason}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="echo2ecg", description=__doc__)
    parser.add_argument("--version", action="version", version=f"echo2ecg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    echo = commands.add_parser(
        "extract-echo", help="DICOM echo views -> DIR/clips.zarr + DIR/ledger.csv"
    )
    echo.add_argument("--out", required=True, help="output folder")
    echo.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    echo.add_argument("--stride", type=int, default=2, help="frame stride from frame 0 (default 2)")
    echo.add_argument("--size", type=int, default=224, help="output side in pixels (default 224)")
    echo.add_argument(
        "--zoom", type=float, default=0.1, help="fraction cut from each edge (default 0.1)"
    )
    echo.add_argument("files", nargs="+", help="DICOM ultrasound multi-frame files")
    echo.set_defaults(run=_extract_echo)

    trace = commands.add_parser(
        "extract-trace",
        help="the ECG burned into DICOM echo views -> DIR/ecg.zarr (lead II) + DIR/ledger.csv",
    )
    trace.add_argument("--out", required=True, help="output folder")
    trace.add_argument(
        "--duration",
        type=float,
        default=2.2,
        help="seconds kept, the most recent; shorter traces are rejected (default 2.2)",
    )
    trace.add_argument("files", nargs="+", help="DICOM ultrasound multi-frame files")
    trace.set_defaults(run=_extract_trace)

    ecg = commands.add_parser("prep-ecg", help="12-lead ECGs -> DIR/ecg.zarr + DIR/ledger.csv")
    ecg.add_argument("--out", required=True, help="output folder")
    ecg.add_argument(
        "--format",
        choices=("wfdb", "dicom", "numpy"),
        help="file format (default: from the suffix: .hea, .dcm, .npy/.npz)",
    )
    ecg.add_argument("--fs", type=float, help="sampling rate in Hz, for bare .npy arrays")
    ecg.add_argument("files", nargs="+", help="ECG files (WFDB by the .hea path)")
    ecg.set_defaults(run=_prep_ecg)

    embed = commands.add_parser("embed-ecg", help="ECG files -> features (one row per file)")
    embed.add_argument("--checkpoint", required=True, help="a trained variant's best.pt")
    embed.add_argument("--out", required=True, help="output table (.parquet, or .csv)")
    embed.add_argument("--device", default="cpu", help="torch device (default cpu)")
    embed.add_argument(
        "--leads",
        nargs="+",
        choices=LEADS,
        metavar="LEAD",
        help="embed only these leads, e.g. --leads II (default: all 12)",
    )
    embed.add_argument("files", nargs="+", help="ECG files (WFDB .hea, DICOM, .npy/.npz)")
    embed.set_defaults(run=_embed_ecg)

    retrieve = commands.add_parser("retrieve", help="the echo studies most similar to an ECG")
    retrieve.add_argument("--checkpoint", required=True, help="a trained variant's best.pt")
    retrieve.add_argument("--ecg", required=True, help="one ECG file")
    retrieve.add_argument(
        "--gallery",
        required=True,
        help="study embeddings: a feature file results/features/VARIANT/COHORT.npz",
    )
    retrieve.add_argument("-k", type=int, default=5, help="studies to list (default 5)")
    retrieve.add_argument("--device", default="cpu", help="torch device (default cpu)")
    retrieve.set_defaults(run=_retrieve)

    demo = commands.add_parser(
        "demo-cohort", help="write the synthetic demo cohort and its manifests"
    )
    demo.add_argument("--out", required=True, help="output folder")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument(
        "--scale", type=float, default=1.0, help="multiply the number of patients (default 1.0)"
    )
    demo.set_defaults(run=_demo_cohort)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        import logging

        from echo2ecg.runlog import FORMAT

        logging.basicConfig(level=logging.INFO, format=FORMAT)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
