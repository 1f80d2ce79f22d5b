"""A hostile archive in miniature: mutants of real echo and ECG files through the data stage.

The tests build the corpus themselves (byte flips in headers and data, truncations,
swapped transfer syntaxes, frame-header and deflate bombs, special files, odd names) and
run the three shard stages (clips, ECGs, the clips' burned-in traces) on it in a child
process under an address-space limit and a time limit, so that a bomb fails the test
instead of taking the machine down. Every file must
get exactly one ledger row whose reason holds no path, bytes, address or traceback.
"""

import json
import os
import subprocess
import sys
import textwrap
import zipfile
import zlib
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from echo2ecg.data.ecg_formats import LEADS
from echo2ecg.synth.ecg_files import write_dicom_ecg, write_npy, write_npz, write_wfdb
from echo2ecg.synth.echo_dicom import DicomIdentity, DicomInstance, echo_dataset
from echo2ecg.synth.echo_views import ScanSector

pytestmark = pytest.mark.slow

IDENTITY = DicomIdentity(
    patient_name="CANARY^PATIENTNAME",
    patient_id="MRNCANARY4242",
    birth_date="19450203",
    sex="F",
    study_uid="1.2.826.0.1.4242.1",
    accession="ACCCANARY77",
    study_time=datetime(2021, 3, 4, 9, 30),
    institution="Canary General Hospital",
)
INSTANCE = DicomInstance(
    series_uid="1.2.826.0.1.4242.2",
    sop_uid="1.2.826.0.1.4242.3",
    acquired=datetime(2021, 3, 4, 9, 31),
    series_number=1,
    instance_number=1,
)
ADDRESS_SPACE = 6 * 2**30  # bytes: far above an honest file's needs, far below the machine
PEAK_RSS_LIMIT_MB = 1500
TIME_LIMIT_S = 600
SECRETS = ("CANARY", "MRNCANARY4242", "ACCCANARY77", "1.2.826.0.1.4242", "19450203")


def moving_frames(n_frames=20, rows=96, cols=128, seed=0) -> np.ndarray:
    """(F, rows, cols, 3) uint8: a fan of moving speckle under a static text band."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols]
    fan = (np.hypot(x - cols / 2, y) < rows * 0.9) & (np.abs(x - cols / 2) < y * 0.9 + 2)
    frames = np.zeros((n_frames, rows, cols, 3), np.uint8)
    for f in range(n_frames):
        speckle = rng.integers(30, 220, (rows, cols), dtype=np.uint8)
        frames[f][fan] = speckle[fan, None]
    frames[:, :8, :40] = 200  # burned-in text that never moves
    return frames


SECTOR = ScanSector(apex_x=64.0, apex_y=0.0, radius=86.0, half_angle=0.7, depth_cm=15.0)


def dicom_bytes(encoding: str) -> bytes:
    import io

    ds = echo_dataset(moving_frames(), encoding, 30.0, IDENTITY, INSTANCE, SECTOR)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def with_transfer_syntax(data: bytes, old: str, new: str) -> bytes:
    """The file with its meta header claiming another transfer syntax of the same length
    (the pixel data left as it is)."""
    assert len(old) == len(new) and old.encode() in data
    return data.replace(old.encode(), new.encode(), 1)


def pixel_offset(data: bytes) -> int:
    """Byte offset of the Pixel Data element (7FE0,0010), little endian."""
    return data.rfind(b"\xe0\x7f\x10\x00")


def flipped(data: bytes, rng: np.random.Generator, low: int, high: int, n: int) -> bytes:
    out = bytearray(data)
    for position in rng.integers(low, max(low + 1, high), n):
        out[position] ^= int(rng.integers(1, 256))
    return bytes(out)


def jpeg_frame_header_bomb(data: bytes) -> bytes:
    """Every JPEG frame's SOF0 says 65535 x 65535 while the DICOM header says 96 x 128."""
    out = bytearray(data)
    start = 0
    while (at := out.find(b"\xff\xc0", start)) != -1:
        out[at + 5 : at + 9] = b"\xff\xff\xff\xff"  # height, width (big endian)
        start = at + 2
    return bytes(out)


def deflated_dicom_bomb() -> bytes:
    """A Deflated Explicit VR Little Endian file whose dataset inflates to about 1 GiB."""
    import io

    import pydicom
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = echo_dataset(moving_frames(n_frames=2), "mono_raw", 30.0, IDENTITY, INSTANCE, None)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    pydicom.filewriter.write_file_meta_info(buffer, ds.file_meta, enforce_standard=True)
    head = b"\x00" * 128 + b"DICM" + buffer.getvalue()
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    # Explicit VR LE: (7FE0,0010) OB, length 1 GiB, then zeros.
    size = 2**30
    body = [squeeze.compress(b"\xe0\x7f\x10\x00OB\x00\x00" + size.to_bytes(4, "little"))]
    zeros = b"\x00" * 2**24
    body += [squeeze.compress(zeros) for _ in range(size // len(zeros))]
    return head + b"".join(body) + squeeze.flush()


def special_files(folder: Path, suffix: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    fifo, directory, loop, dangling, device, empty = (
        folder / f"{name}{suffix}"
        for name in ("fifo", "directory", "loop", "dangling", "device", "empty")
    )
    os.mkfifo(fifo)
    directory.mkdir()
    loop.symlink_to(loop)
    dangling.symlink_to(folder / "nowhere")
    device.symlink_to("/dev/zero")
    empty.write_bytes(b"")
    long_name = folder / ("CANARY" + "n" * 240 + suffix)
    long_name.write_bytes(b"x" * 10)
    odd = Path(os.fsdecode(os.fsencode(str(folder)) + b"/odd_\xff\xfe" + suffix.encode()))
    odd.write_bytes(b"\x00" * 200)
    newline = folder / f"new\nline{suffix}"
    newline.write_bytes(b"DICM")
    return [fifo, directory, loop, dangling, device, empty, long_name, odd, newline]


def echo_corpus(root: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    files: dict[str, bytes] = {}
    for encoding in ("rgb", "jpeg_ybr", "mono_rle", "mono_raw"):
        data = dicom_bytes(encoding)
        pixels = pixel_offset(data)
        files[f"{encoding}_intact.dcm"] = data
        for i in range(14):
            files[f"{encoding}_headerflip{i}.dcm"] = flipped(data, rng, 132, pixels, 1 + i % 3)
        for i in range(10):
            files[f"{encoding}_pixelflip{i}.dcm"] = flipped(data, rng, pixels, len(data), 1 + i % 4)
        for i, cut in enumerate(np.linspace(0.02, 0.98, 8)):
            files[f"{encoding}_cut{i}.dcm"] = data[: int(len(data) * cut)]
    explicit, big_endian, rle = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.5"
    baseline, lossless, ls, j2k = (
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.90",
    )
    for encoding, old, new in (
        ("rgb", explicit, big_endian),
        ("rgb", explicit, rle),
        ("rgb", explicit, "1.2.3.4.5.6.7.8.9.1"),
        ("mono_raw", explicit, rle),
        ("mono_raw", explicit, big_endian),
        ("mono_rle", rle, explicit),
        ("mono_rle", rle, big_endian),
        ("jpeg_ybr", baseline, lossless),
        ("jpeg_ybr", baseline, ls),
        ("jpeg_ybr", baseline, j2k),
    ):
        files[f"{encoding}_as_{new}.dcm"] = with_transfer_syntax(dicom_bytes(encoding), old, new)
    files["jpeg_sof_bomb.dcm"] = jpeg_frame_header_bomb(dicom_bytes("jpeg_ybr"))
    files["deflate_bomb.dcm"] = deflated_dicom_bomb()
    files["not_dicom.dcm"] = b"%PDF-1.4 CANARY report"
    folder = root / "echo"
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return sorted(folder / name for name in files) + special_files(root / "echo_special", ".dcm")


def ecg_signal(seed=0, fs=500.0, seconds=10.0) -> np.ndarray:
    """(12, T) mV: a 1.2 Hz beat train with noise."""
    t = np.arange(int(fs * seconds)) / fs
    rng = np.random.default_rng(seed)
    beat = np.exp(-((((t * 1.2) % 1.0 - 0.3) / 0.02) ** 2))
    return np.stack([beat * (0.5 + 0.1 * i) + rng.normal(0, 0.02, t.size) for i in range(12)])


def ecg_corpus(root: Path) -> list[tuple[Path, dict]]:
    """(path, reader options) of every ECG mutant."""
    rng = np.random.default_rng(1)
    folder = root / "ecg"
    folder.mkdir(parents=True)
    signal = ecg_signal()
    write_wfdb(folder / "base.hea", signal, 500.0, LEADS, datetime(2021, 3, 4, 9, 0))
    write_dicom_ecg(folder / "base.dcm", signal, 500.0, LEADS, IDENTITY, INSTANCE)
    write_npz(folder / "base.npz", signal, 500.0, LEADS)
    write_npy(folder / "base.npy", signal)
    items: list[tuple[Path, dict]] = [
        (folder / "base.hea", {}),
        (folder / "base.dcm", {}),
        (folder / "base.npz", {}),
        (folder / "base.npy", {"fs": 500.0}),
    ]
    header = (folder / "base.hea").read_text()
    dat = (folder / "base.dat").read_bytes()
    for i in range(12):  # WFDB: flipped header text, flipped and cut signal files
        name = folder / f"wfdb_headerflip{i}"
        name.with_suffix(".hea").write_bytes(
            flipped(header.replace("base", name.name).encode(), rng, 0, len(header), 1 + i % 3)
        )
        name.with_suffix(".dat").write_bytes(dat)
        items.append((name.with_suffix(".hea"), {}))
    for i in range(8):
        name = folder / f"wfdb_datflip{i}"
        name.with_suffix(".hea").write_text(header.replace("base", name.name))
        name.with_suffix(".dat").write_bytes(flipped(dat, rng, 0, len(dat), 50 * (i + 1)))
        items.append((name.with_suffix(".hea"), {}))
    for i, cut in enumerate((0.0, 0.3, 0.7, 0.999)):
        name = folder / f"wfdb_datcut{i}"
        name.with_suffix(".hea").write_text(header.replace("base", name.name))
        name.with_suffix(".dat").write_bytes(dat[: int(len(dat) * cut)])
        items.append((name.with_suffix(".hea"), {}))
    first, *signal_lines = header.splitlines()
    fields = first.split()
    for tag, replacement in (("fs_negative", "-500"), ("fs_nan", "nan"), ("fs_zero", "0")):
        name = folder / f"wfdb_{tag}"
        name.with_suffix(".hea").write_text(
            "\n".join(
                [
                    " ".join([name.name, fields[1], replacement, *fields[3:]]),
                    *(line.replace("base", name.name) for line in signal_lines),
                ]
            )
            + "\n"
        )
        name.with_suffix(".dat").write_bytes(dat)
        items.append((name.with_suffix(".hea"), {}))
    nocount = folder / "wfdb_nocount"
    nocount.with_suffix(".hea").write_text(
        "\n".join(
            [
                " ".join([nocount.name, fields[1], fields[2]]),
                *(line.replace("base", nocount.name) for line in signal_lines),
            ]
        )
        + "\n"
    )
    nocount.with_suffix(".dat").write_bytes(dat * 40)  # 400 s of signal
    items.append((nocount.with_suffix(".hea"), {}))
    fifo_dat = folder / "wfdb_fifodat"
    fifo_dat.with_suffix(".hea").write_text(header.replace("base", fifo_dat.name))
    os.mkfifo(fifo_dat.with_suffix(".dat"))
    items.append((fifo_dat.with_suffix(".hea"), {}))
    for source, stem in (
        (folder / "base.dcm", "dicom"),
        (folder / "base.npz", "npz"),
        (folder / "base.npy", "npy"),
    ):
        data = source.read_bytes()
        options = {"fs": 500.0} if stem == "npy" else {}
        for i in range(10):
            path = folder / f"{stem}_flip{i}{source.suffix}"
            path.write_bytes(flipped(data, rng, 0, len(data), 1 + i % 4))
            items.append((path, options))
        for i, cut in enumerate((0.05, 0.4, 0.8, 0.99)):
            path = folder / f"{stem}_cut{i}{source.suffix}"
            path.write_bytes(data[: int(len(data) * cut)])
            items.append((path, options))
    tiny_gain = folder / "wfdb_tinygain"
    tiny_gain.with_suffix(".hea").write_text(
        "\n".join(
            [
                first.replace("base", tiny_gain.name),
                *(
                    " ".join(
                        line.replace("base", tiny_gain.name).split()[:2]
                        + ["1e-300"]
                        + line.split()[3:]
                    )
                    for line in signal_lines
                ),
            ]
        )
        + "\n"
    )
    tiny_gain.with_suffix(".dat").write_bytes(dat)
    items.append((tiny_gain.with_suffix(".hea"), {}))
    huge = folder / "npy_huge_values.npy"
    np.save(huge, (signal * 1e160).astype(np.float64))
    items.append((huge, {"fs": 500.0}))
    bomb = folder / "npz_deflate_bomb.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("signal.npy", "w", force_zip64=True) as entry:
            np.lib.format.write_array_header_1_0(
                entry, {"descr": "<f8", "fortran_order": False, "shape": (12, 25_000_000)}
            )
            zeros = b"\x00" * 2**24
            for _ in range(12 * 25_000_000 * 8 // len(zeros)):
                entry.write(zeros)
    items.append((bomb, {}))
    items += [
        (path, {"fmt": "numpy", "fs": 500.0})
        for path in special_files(root / "ecg_special", ".npy")
    ]
    return items


RUNNER = textwrap.dedent("""
    import json, sys
    from echo2ecg.data.shard_run import (ShardInput, extract_echo_shard, prep_ecg_shard,
                                         printable_path)
    from echo2ecg.data.trace_shard import extract_trace_shard
    spec = json.load(open(sys.argv[1]))
    echo = [ShardInput(path=p, source=printable_path(p)) for p in spec["echo"]]
    ecg = [ShardInput(path=p, source=printable_path(p), options=o) for p, o in spec["ecg"]]
    out = spec["out"]
    extract_echo_shard(echo, out + "/echo/clips.zarr", out + "/echo/ledger.csv",
                       {"size": 112, "max_decoded_gib": 1.0})
    prep_ecg_shard(ecg, out + "/ecg/ecg.zarr", out + "/ecg/ledger.csv")
    extract_trace_shard(echo, out + "/trace/ecg.zarr", out + "/trace/ledger.csv")
    # VmHWM: this program's own peak (ru_maxrss would count the parent's pages at fork)
    peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status")
                   if line.startswith("VmHWM"))
    print(json.dumps({"peak_rss_mb": peak_kb / 1024}))
""")


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    echo = echo_corpus(root / "corpus")
    ecg = ecg_corpus(root / "corpus")
    spec = root / "spec.json"
    # surrogateescape names survive JSON as escaped text and come back as the same str
    spec.write_text(
        json.dumps(
            {
                "echo": [str(p) for p in echo],
                "ecg": [[str(p), o] for p, o in ecg],
                "out": str(root / "out"),
            }
        )
    )
    command = ["prlimit", f"--as={ADDRESS_SPACE}", sys.executable, "-c", RUNNER, str(spec)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT_S,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return {
        "root": root,
        "echo": echo,
        "trace": echo,
        "ecg": [p for p, _ in ecg],
        "peak_rss_mb": json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"],
        "log": done.stderr,
    }


def ledger(run, stage):
    return pd.read_csv(run["root"] / "out" / stage / "ledger.csv", keep_default_na=False)


def test_corpus_is_large_enough(corpus_run):
    assert len(corpus_run["echo"]) + len(corpus_run["ecg"]) >= 200


@pytest.mark.parametrize("stage", ["echo", "ecg", "trace"])
def test_every_file_has_exactly_one_row(corpus_run, stage):
    rows = ledger(corpus_run, stage)
    files = corpus_run[stage]
    assert len(rows) == len(files)
    assert rows["source"].is_unique
    assert set(rows["status"]) <= {"ok", "rejected"}
    assert (rows.loc[rows["status"] == "rejected", "reason"] != "").all()


@pytest.mark.parametrize("stage", ["echo", "ecg", "trace"])
def test_no_reason_holds_a_path_bytes_an_address_or_a_traceback(corpus_run, stage):
    rows = ledger(corpus_run, stage)
    root = str(corpus_run["root"])
    for source, reason in zip(rows["source"], rows["reason"]):
        stem = Path(source).stem  # short stems (fifo, directory) are words a reason may use
        assert root not in reason and (len(stem) < 12 or stem not in reason), reason
        for marker in ("Traceback", "b'", 'b"', "\\x", "0x", "Errno", "object at", *SECRETS):
            assert marker not in reason, reason


def test_the_log_holds_no_path_or_identifier(corpus_run):
    for marker in (str(corpus_run["root"]), *SECRETS):
        lines = [line for line in corpus_run["log"].splitlines() if marker in line]
        assert not lines, lines[:3]


def test_intact_files_are_accepted_and_no_stored_clip_is_blank(corpus_run):
    rows = ledger(corpus_run, "echo")
    intact = rows[rows["source"].str.endswith("_intact.dcm")]
    assert list(intact["status"]) == ["ok"] * 4
    clips = zarr.open_group(corpus_run["root"] / "out/echo/clips.zarr", mode="r")["clips"]
    for row in rows.loc[rows["status"] == "ok", "row"].astype(int):
        clip = clips[row]
        assert clip.max() > 0 and clip.std() > 0, rows.loc[rows["row"] == row, "source"]
    ecg_rows = ledger(corpus_run, "ecg")
    assert (ecg_rows[ecg_rows["source"].str.contains("/base\\.")]["status"] == "ok").all()


@pytest.mark.parametrize("echo_stage", ["echo", "trace"])
def test_bombs_and_special_files_are_rejected(corpus_run, echo_stage):
    rows = pd.concat([ledger(corpus_run, echo_stage), ledger(corpus_run, "ecg")])
    by_name = {
        Path(s).name: (status, reason)
        for s, status, reason in zip(rows["source"], rows["status"], rows["reason"])
    }
    for name in (
        "jpeg_sof_bomb.dcm",
        "deflate_bomb.dcm",
        "npz_deflate_bomb.npz",
        "fifo.dcm",
        "directory.dcm",
        "loop.dcm",
        "device.dcm",
        "fifo.npy",
        "wfdb_fifodat.hea",
        "wfdb_fs_negative.hea",
        "wfdb_fs_nan.hea",
        "wfdb_tinygain.hea",
        "npy_huge_values.npy",
    ):
        assert by_name[name][0] == "rejected", (name, by_name[name])


def test_peak_memory_stays_bounded(corpus_run):
    assert corpus_run["peak_rss_mb"] < PEAK_RSS_LIMIT_MB, corpus_run["peak_rss_mb"]
