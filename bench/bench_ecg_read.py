"""ECGs per second of reading each ECG file format on one core, WFDB as the reference.

Every format holds the same synthetic 12-lead, 10 s, 500 Hz recordings (written by the
demo's writers, echo2ecg.synth.ecg_files), read by ``echo2ecg.data.ecg_formats.read_ecg``
with the format the manifest would give: WFDB (the reference, format 16), DICOM waveform,
and the XML exports of GE CardioSoft, GE MUSE (8 leads stored) and HL7 aECG. Every read
must give back the recording within the format's quantisation (asserted).

    .venv/bin/python bench/bench_ecg_read.py --n-ecgs 40 --json bench/out/ecg_read.json
    .venv/bin/python bench/bench_ecg_read.py --smoke   # 2 ECGs, 1 repeat
"""

from __future__ import annotations

import os

# One core, before numpy loads its BLAS: the figure is per core.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from bench_ecg_prep import synthetic_ecgs  # noqa: E402
from figures import parse_args, write_figures  # noqa: E402

from echo2ecg.data.ecg_formats import read_ecg  # noqa: E402
from echo2ecg.synth import ecg_files  # noqa: E402
from echo2ecg.synth.echo_dicom import DicomIdentity, DicomInstance  # noqa: E402
from echo2ecg.vocabulary import LEADS  # noqa: E402

FS = 500.0
SMOKE = {"n_ecgs": 2, "repeats": 1}
ACQUIRED = datetime(2021, 1, 1, 9, 0, 0)
IDENTITY = DicomIdentity(
    "DOE^JANE", "MRN0000001", "19500101", "F", "1.2.3.4", "ACC1", ACQUIRED, "Bench Hospital"
)
TOLERANCE_MV = 0.01  # well above every format's quantisation step (2.5 to 5 uV)


def einthoven(signal: np.ndarray) -> np.ndarray:
    """The recording with III, aVR, aVL, aVF made from I and II, as a heart's are, so that
    MUSE's derived limb leads equal the written ones."""
    out = signal.copy()
    lead_i, lead_ii = out[0], out[1]
    out[2:6] = [
        lead_ii - lead_i,
        -(lead_i + lead_ii) / 2,
        lead_i - lead_ii / 2,
        lead_ii - lead_i / 2,
    ]
    return out


def write_all(folder: Path, signals: list[np.ndarray]) -> dict[str, list[tuple[Path, str]]]:
    """{format label: [(path, manifest format)]} of every recording in every format."""
    files: dict[str, list[tuple[Path, str]]] = {}
    for i, signal in enumerate(signals):
        instance = DicomInstance("1.2.3.5", f"1.2.3.6.{i}", ACQUIRED, 1, 1)
        ecg_files.write_wfdb(folder / f"w{i}.hea", signal, FS, LEADS, ACQUIRED)
        ecg_files.write_dicom_ecg(folder / f"d{i}.dcm", signal, FS, LEADS, IDENTITY, instance)
        for name, write in (
            ("cardiosoft", ecg_files.write_cardiosoft_xml),
            ("muse", ecg_files.write_muse_xml),
            ("hl7aecg", ecg_files.write_hl7_aecg),
        ):
            write(folder / f"{name}{i}.xml", signal, FS, LEADS, IDENTITY, ACQUIRED)
        for label, path, fmt in (
            ("wfdb", folder / f"w{i}.hea", "wfdb"),
            ("dicom", folder / f"d{i}.dcm", "dicom"),
            ("cardiosoft xml", folder / f"cardiosoft{i}.xml", "cardiosoft"),
            ("muse xml", folder / f"muse{i}.xml", "muse"),
            ("hl7 aecg xml", folder / f"hl7aecg{i}.xml", "hl7aecg"),
        ):
            files.setdefault(label, []).append((path, fmt))
    return files


def _file_bytes(path: Path) -> int:
    """Bytes of a file, with a WFDB header's signal file."""
    dat = path.with_suffix(".dat")
    return os.path.getsize(path) + (os.path.getsize(dat) if path.suffix == ".hea" else 0)


def run(n_ecgs: int, repeats: int) -> dict:
    signals = [einthoven(x) for x in synthetic_ecgs(n_ecgs)]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        files = write_all(Path(folder), signals)
        for label, paths in files.items():
            read_ecg(*paths[0][:1], fmt=paths[0][1])  # warm: a reader's imports are not timed
            best = np.inf
            for _ in range(repeats):
                start = time.perf_counter()
                ecgs = [read_ecg(path, fmt=fmt) for path, fmt in paths]
                best = min(best, (time.perf_counter() - start) / len(paths))
            error = max(float(np.abs(e.signal - s).max()) for e, s in zip(ecgs, signals))
            assert error <= TOLERANCE_MV, f"{label}: read back off by {error:.3g} mV"
            size = np.mean([_file_bytes(p) for p, _ in paths])
            rows.append(
                {"format": label, "ecgs_per_s": 1 / best, "bytes": size, "max_abs_mv": error}
            )
    reference = next(r for r in rows if r["format"] == "wfdb")["ecgs_per_s"]
    for row in rows:
        row["vs_wfdb"] = row["ecgs_per_s"] / reference
    return {
        "n_ecgs": n_ecgs,
        "ecg_shape": [12, int(10 * FS)],
        "fs_hz": FS,
        "repeats": repeats,
        "threads": 1,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "rows": rows,
    }


def print_table(result: dict) -> None:
    print(f"{result['n_ecgs']} ECGs of 12 x 5000 per format, one core, best of {result['repeats']}")
    print(f"{'format':<16} {'ECG/s':>8} {'vs WFDB':>8} {'kB/file':>8} {'max |diff| mV':>14}")
    for row in result["rows"]:
        print(
            f"{row['format']:<16} {row['ecgs_per_s']:>8.1f} {row['vs_wfdb']:>7.2f}x "
            f"{row['bytes'] / 1e3:>8.0f} {row['max_abs_mv']:>14.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n-ecgs", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parse_args(parser, SMOKE)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    result = run(args.n_ecgs, args.repeats)
    print_table(result)
    write_figures(result, args.json)


if __name__ == "__main__":
    main()
