"""Hostile and broken ultrasound files: every one ends as InputRejected, in bounded memory.

A file crafted to make a decoder allocate (a frame header declaring 65535×65535 pixels, a
deflate bomb) or to hang (a FIFO) is only ever read in a child process under an
address-space limit (RLIMIT_AS) and a wall-clock timeout, so a regression fails the test
instead of taking the machine down; the child reports its outcome and its peak resident
memory: VmHWM, the high-water mark of its own address space (Linux carries the parent's
resident size at fork into a child's ru_maxrss across exec, so a large pytest process
would inflate ru_maxrss), else ru_maxrss.
"""

import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
from conftest import US_MULTIFRAME
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames
from pydicom.filewriter import write_file_meta_info
from pydicom.pixels.decoders.base import DecodeRunner
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)

from echo2ecg.data.dicom import read_frames, read_ultrasound_header
from echo2ecg.data.echo import MIN_MASK_FRACTION, extract_clip
from echo2ecg.data.errors import InputRejected
from echo2ecg.data.limits import time_limit
from echo2ecg.data.shard_run import ShardInput, extract_echo_shard

PATIENT = {"PatientName": "Doe^Jane", "PatientID": "MRN99887766"}
REPO = Path(__file__).resolve().parents[1]
CHILD_MEMORY_LIMIT = 1_500_000_000  # bytes of address space (a bare child maps ~0.35 GB)
PEAK_LIMIT_MB = 400  # resident memory a rejected file may cost, MB

# The child: limit its address space first, then extract one clip and report.
_CHILD = r"""
import json, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from echo2ecg.data.echo import extract_clip
from echo2ecg.data.errors import InputRejected
notes = []
try:
    clip = extract_clip(sys.argv[2], notes=notes, **json.loads(sys.argv[3]))
    outcome = {"ok": True, "max": int(clip.max()), "notes": notes}
except InputRejected as rejected:
    outcome = {"reason": rejected.reason}
except BaseException as error:
    outcome = {"error": type(error).__name__}
try:
    with open("/proc/self/status") as status:
        peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
outcome["peak_mb"] = peak_kb / 1024
print(json.dumps(outcome))
"""


def in_child(path, timeout: float = 120, **kwargs) -> dict:
    """extract_clip(path, **kwargs) in a memory-limited child: {"reason" | "ok" | "error",
    "peak_mb"}. A hang fails the test through ``timeout`` (seconds)."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(CHILD_MEMORY_LIMIT), str(path), json.dumps(kwargs)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def rejected_in_child(path, **kwargs) -> str:
    outcome = in_child(path, **kwargs)
    assert "reason" in outcome, outcome
    assert outcome["peak_mb"] < PEAK_LIMIT_MB, outcome
    for value in (*PATIENT.values(), str(path)):  # no identifier, no path
        assert value not in outcome["reason"]
    assert not re.search(r"0x[0-9a-f]{6,}", outcome["reason"])  # no memory address
    return outcome["reason"]


# ------------------------------------------------------------------ writers


def new_dataset(
    path,
    syntax: str,
    rows: int,
    columns: int,
    n_frames,
    samples: int,
    photometric: str,
    bits: int = 8,
) -> FileDataset:
    """An Ultrasound Multi-frame dataset with its image pixel module, no pixel data."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = US_MULTIFRAME
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = FileDataset(str(path), Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = US_MULTIFRAME, meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    for key, value in PATIENT.items():
        setattr(ds, key, value)
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, columns, n_frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = samples, photometric
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit, ds.PixelRepresentation = bits - 1, 0
    return ds


def save_encapsulated(ds: FileDataset, pixel_data: bytes, path) -> str:
    ds.PixelData = pixel_data
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def moving_frames(n_frames: int = 15, rows: int = 480, columns: int = 640) -> np.ndarray:
    """(F, rows, columns, 3) uint8: a smooth bright pattern drifting inside a central disc
    (a scan sector ~40 % of the frame), black elsewhere; compresses to a few kB a frame."""
    y, x = np.mgrid[:rows, :columns]
    disc = (y - rows / 2) ** 2 + (x - columns / 2) ** 2 < (0.45 * min(rows, columns)) ** 2
    frames = np.zeros((n_frames, rows, columns, 3), np.uint8)
    for t in range(n_frames):
        level = 120 + 100 * np.sin((x + 9 * t) / 23.0) * np.cos((y - 5 * t) / 31.0)
        frames[t][disc] = level[disc, None].astype(np.uint8)
    return frames


def jpeg_codestreams(frames: np.ndarray) -> list[bytes]:
    """One JPEG baseline codestream per RGB frame (Pillow: YCbCr, 4:2:2 chroma)."""
    out = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame, mode="RGB").save(buffer, format="JPEG", quality=88, subsampling=1)
        out.append(buffer.getvalue())
    return out


def jpeg_clip(
    path,
    frames: np.ndarray | None = None,
    codestreams: list[bytes] | None = None,
    n_frames=None,
    has_bot: bool = True,
) -> str:
    """A JPEG baseline YBR_FULL_422 clip; ``codestreams`` replace the encoded frames."""
    frames = moving_frames() if frames is None else frames
    codestreams = jpeg_codestreams(frames) if codestreams is None else codestreams
    ds = new_dataset(
        path,
        JPEGBaseline8Bit,
        frames.shape[1],
        frames.shape[2],
        len(codestreams) if n_frames is None else n_frames,
        3,
        "YBR_FULL_422",
    )
    return save_encapsulated(ds, encapsulate(codestreams, has_bot=has_bot), path)


def patch_sof(codestream: bytes, height: int, width: int, components: int | None = None):
    """A JPEG codestream whose SOF0 declares another height, width or component count."""
    data = bytearray(codestream)
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    if components is not None:
        data[sof + 9] = components
    return bytes(data)


def compressed_clip(path, frames: np.ndarray, photometric: str, syntax: str) -> Dataset:
    """A native clip compressed by pydicom (RLE, JPEG 2000), returned as a dataset."""
    ds = new_dataset(
        path,
        ExplicitVRLittleEndian,
        frames.shape[1],
        frames.shape[2],
        len(frames),
        1 if frames.ndim == 3 else 3,
        photometric,
    )
    ds.set_pixel_data(frames, photometric, 8)
    ds.compress(syntax)
    return ds


def recompress(ds: Dataset, path, patch) -> str:
    """``ds`` saved with every frame's codestream passed through ``patch``."""
    codestreams = list(generate_frames(ds.PixelData, number_of_frames=ds.NumberOfFrames))
    return save_encapsulated(ds, encapsulate([patch(c) for c in codestreams]), path)


def native_clip(path, frames: np.ndarray, regions=None) -> str:
    ds = new_dataset(
        path, ExplicitVRLittleEndian, frames.shape[1], frames.shape[2], len(frames), 3, "RGB"
    )
    ds.set_pixel_data(frames, "RGB", 8)
    if regions is not None:
        ds.SequenceOfUltrasoundRegions = regions
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def region_item(x0: int, y0: int, x1: int, y1: int) -> Dataset:
    item = Dataset()
    item.RegionSpatialFormat = 1
    item.RegionLocationMinX0, item.RegionLocationMinY0 = x0, y0
    item.RegionLocationMaxX1, item.RegionLocationMaxY1 = x1, y1
    return item


def rejection(path, **kwargs) -> str:
    """For files that are only read, never decoded, past their header: in this process."""
    with pytest.raises(InputRejected) as caught:
        extract_clip(path, **kwargs)
    return caught.value.reason


# ------------------------------------------------------------------ not a regular file


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "clip.dcm"
    os.mkfifo(fifo)  # opening it for reading blocks until a writer comes: none will
    assert rejected_in_child(fifo, timeout=60) == "not a regular file: a FIFO (named pipe)"


def test_a_directory_is_refused(tmp_path):
    (tmp_path / "clip.dcm").mkdir()
    assert rejection(tmp_path / "clip.dcm") == "not a regular file: a directory"
    assert rejection(tmp_path / "missing.dcm") == "file not found"


# ------------------------------------------------------------------ frame-header bombs


def test_jpeg_frames_declaring_65535_squared_are_refused_before_decoding(tmp_path):
    codestreams = [patch_sof(c, 65535, 65535) for c in jpeg_codestreams(moving_frames())]
    path = jpeg_clip(tmp_path / "bomb.dcm", codestreams=codestreams)
    assert os.path.getsize(path) < 400_000  # decoded as declared: 15 × 12.9 GB
    assert rejected_in_child(path) == (
        "frame header does not match the DICOM header: "
        "frame 0 is 65535x65535 pixels, the header says 640x480"
    )


def test_one_lying_frame_among_good_ones_is_found(tmp_path):
    codestreams = jpeg_codestreams(moving_frames())
    codestreams[14] = patch_sof(codestreams[14], 480, 4096)  # the last frame: decoded
    path = jpeg_clip(tmp_path / "one.dcm", codestreams=codestreams)
    assert rejected_in_child(path) == (
        "frame header does not match the DICOM header: "
        "frame 14 is 4096x480 pixels, the header says 640x480"
    )


def test_jpeg_component_count_must_match_samples_per_pixel(tmp_path):
    codestreams = [patch_sof(c, 480, 640, components=4) for c in jpeg_codestreams(moving_frames())]
    path = jpeg_clip(tmp_path / "c.dcm", codestreams=codestreams)
    assert rejected_in_child(path) == (
        "frame header does not match the DICOM header: "
        "frame 0 has 4 components, the header says 3 samples "
        "per pixel"
    )


def test_jpeg_height_given_later_by_dnl_is_refused(tmp_path):
    # Height 0 in SOF: T.81 lets a DNL marker give it after the first scan, so the size is
    # unknown until decoding. Refused (libjpeg-turbo does not support DNL either).
    codestreams = [patch_sof(c, 0, 640) for c in jpeg_codestreams(moving_frames())]
    path = jpeg_clip(tmp_path / "dnl.dcm", codestreams=codestreams)
    assert rejected_in_child(path) == (
        "unsupported frame: frame 0 declares a zero height or "
        "width (its size is only known once decoded)"
    )


def test_a_frame_that_is_not_jpeg_is_refused_before_decoding(tmp_path):
    codestreams = jpeg_codestreams(moving_frames())
    codestreams[0] = b"\x00\x00" + codestreams[0][2:]
    path = jpeg_clip(tmp_path / "x.dcm", codestreams=codestreams)
    assert rejected_in_child(path) == (
        "decoding failed: frame 0 is not a JPEG codestream (no start-of-image marker)"
    )


def _patch_siz(codestream: bytes, **fields) -> bytes:
    """A J2K codestream with SIZ fields replaced: Xsiz, Ysiz, XTsiz, YTsiz (32-bit)."""
    assert codestream[:4] == b"\xff\x4f\xff\x51"
    offsets = {"Xsiz": 8, "Ysiz": 12, "XTsiz": 24, "YTsiz": 28}
    data = bytearray(codestream)
    for name, value in fields.items():
        struct.pack_into(">I", data, offsets[name], value)
    return bytes(data)


def _j2k_clip(tmp_path) -> Dataset:
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 255, (3, 64, 96), dtype=np.uint8)
    return compressed_clip(tmp_path / "j2k.dcm", frames, "MONOCHROME2", JPEG2000Lossless)


def test_jpeg2000_siz_declaring_65535_squared_is_refused(tmp_path):
    path = recompress(
        _j2k_clip(tmp_path), tmp_path / "j2k.dcm", lambda c: _patch_siz(c, Xsiz=65535, Ysiz=65535)
    )
    assert rejected_in_child(path) == (
        "frame header does not match the DICOM header: "
        "frame 0 is 65535x65535 pixels, the header says 96x64"
    )


def test_jpeg2000_with_a_tile_per_pixel_is_refused(tmp_path):
    path = recompress(
        _j2k_clip(tmp_path), tmp_path / "j2k.dcm", lambda c: _patch_siz(c, XTsiz=1, YTsiz=1)
    )
    assert rejected_in_child(path) == (
        "unsupported frame: frame 0 has 6144 JPEG 2000 tiles (limit 4096)"
    )


def test_jpeg_ls_sof55_is_checked_past_its_app_segments(tmp_path):
    # A real JPEG-LS codestream (SPIFF APP8 segments before SOF55), as a 3-frame clip.
    source = pydicom.dcmread(get_testdata_file("SC_rgb_jls_lossy_sample.dcm"))
    codestream = bytearray(next(generate_frames(source.PixelData, number_of_frames=1)))
    sof55 = codestream.index(b"\xff\xf7")
    struct.pack_into(">HH", codestream, sof55 + 5, 65535, 65535)
    ds = new_dataset(
        tmp_path / "jls.dcm", source.file_meta.TransferSyntaxUID, 100, 100, 3, 3, "RGB"
    )
    path = save_encapsulated(ds, encapsulate([bytes(codestream)] * 3), tmp_path / "jls.dcm")
    assert rejected_in_child(path) == (
        "frame header does not match the DICOM header: "
        "frame 0 is 65535x65535 pixels, the header says 100x100"
    )


def test_honest_jpeg_ls_frames_decode(tmp_path):
    source = pydicom.dcmread(get_testdata_file("SC_rgb_jls_lossy_sample.dcm"))
    codestream = next(generate_frames(source.PixelData, number_of_frames=1))
    ds = new_dataset(
        tmp_path / "jls.dcm", source.file_meta.TransferSyntaxUID, 100, 100, 3, 3, "RGB"
    )
    path = save_encapsulated(ds, encapsulate([codestream] * 3), tmp_path / "jls.dcm")
    np.testing.assert_array_equal(read_frames(path, [2])[0], source.pixel_array)


def test_a_frame_far_larger_than_its_decoded_size_is_refused_unread(tmp_path):
    frames = moving_frames(3, 16, 16)
    codestreams = [c + b"\0" * (1024**2 + 4096) for c in jpeg_codestreams(frames)]
    path = jpeg_clip(tmp_path / "fat.dcm", frames, codestreams=codestreams)
    with pytest.raises(InputRejected) as caught:
        read_ultrasound_header(path)
    assert caught.value.reason.startswith("pixel data is implausible: frame 0 is ")
    assert caught.value.reason.endswith(" bytes compressed, 768 decoded")


def _rle_clip(tmp_path) -> Dataset:
    frames = np.stack([np.full((48, 64), 30 * k, np.uint8) for k in range(4)])
    return compressed_clip(tmp_path / "rle.dcm", frames, "MONOCHROME2", RLELossless)


def test_rle_segment_count_must_match_the_header(tmp_path):
    def three_segments(codestream: bytes) -> bytes:
        header = bytearray(codestream[:64])
        struct.pack_into("<4L", header, 0, 3, 64, 66, 68)
        return bytes(header) + codestream[64:]

    path = recompress(_rle_clip(tmp_path), tmp_path / "rle.dcm", three_segments)
    assert rejected_in_child(path) == (
        "frame header does not match the DICOM header: "
        "frame 0 has 3 RLE segments, the header implies 1"
    )


def test_rle_segment_that_would_expand_past_its_plane_is_refused(tmp_path):
    # 20,000 two-byte runs of 128 zeros: 2.5 MB decoded for a 3 kB byte plane.
    bomb = struct.pack("<16L", 1, 64, *[0] * 14) + b"\x81\x00" * 20_000
    path = recompress(_rle_clip(tmp_path), tmp_path / "rle.dcm", lambda c: bomb)
    assert rejected_in_child(path) == (
        "decoding failed: frame 0 has an RLE segment longer than its decoded size allows"
    )


# ------------------------------------------------------------------ deflate bomb


def deflate_bomb(path, inflated: int = 512 * 1024**2) -> str:
    """File meta saying Deflated Explicit VR Little Endian, then ``inflated`` zero bytes
    deflated (≈ 2.3 MB on disk)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = US_MULTIFRAME
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    buffer.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buffer, meta)
    deflate = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunk = bytes(16 * 1024**2)
    with open(path, "wb") as file:
        file.write(buffer.getvalue())
        for _ in range(inflated // len(chunk)):
            file.write(deflate.compress(chunk))
        file.write(deflate.flush())
    return str(path)


def test_deflate_bomb_is_refused_from_the_file_meta_in_bounded_memory(tmp_path):
    path = deflate_bomb(tmp_path / "deflated.dcm")
    assert os.path.getsize(path) < 3_000_000
    outcome = in_child(path)
    assert outcome.get("reason") == (
        "unsupported transfer syntax Deflated Explicit VR Little Endian"
    )
    assert outcome["peak_mb"] < PEAK_LIMIT_MB  # inflating it would take > 512 MB


# ------------------------------------------------------------------ clips that would be black


def test_empty_number_of_frames_on_jpeg_data_is_refused(tmp_path):
    path = jpeg_clip(tmp_path / "x.dcm", n_frames="", has_bot=False)
    assert rejected_in_child(path) == "implausible size: Number of Frames is empty"


@pytest.mark.filterwarnings("ignore:.*3.5.*:UserWarning")  # pydicom, writing an invalid IS
def test_fractional_number_of_frames_is_refused(tmp_path):
    path = jpeg_clip(tmp_path / "x.dcm", n_frames="3.5")
    assert rejected_in_child(path) == (
        "implausible size: Number of Frames is 3.5, not a whole number"
    )


def test_fewer_frames_declared_than_the_offset_table_holds_is_refused(tmp_path):
    path = jpeg_clip(tmp_path / "x.dcm", n_frames=3)
    assert rejected_in_child(path) == (
        "frame count does not match the data: header says 3 frames, data holds 15"
    )


def _with_extended_offsets(tmp_path, edit) -> str:
    codestreams = jpeg_codestreams(moving_frames())
    pixel_data, offsets, lengths = encapsulate_extended(codestreams)
    offsets = list(struct.unpack(f"<{len(codestreams)}Q", offsets))
    lengths = list(struct.unpack(f"<{len(codestreams)}Q", lengths))
    offsets, lengths = edit(offsets, lengths)
    ds = new_dataset(
        tmp_path / "eot.dcm", JPEGBaseline8Bit, 480, 640, len(codestreams), 3, "YBR_FULL_422"
    )
    ds.ExtendedOffsetTable = struct.pack(f"<{len(offsets)}Q", *offsets)
    ds.ExtendedOffsetTableLengths = struct.pack(f"<{len(lengths)}Q", *lengths)
    return save_encapsulated(ds, pixel_data, tmp_path / "eot.dcm")


def test_honest_extended_offset_table_is_read(tmp_path):
    outcome = in_child(_with_extended_offsets(tmp_path, lambda o, n: (o, n)))
    assert outcome.get("ok") and outcome["max"] > 100 and outcome["notes"] == []


def test_extended_offset_table_naming_one_fragment_for_every_frame_is_refused(tmp_path):
    # Every entry at frame 0: decoded, the clip never moves and its mask is empty.
    path = _with_extended_offsets(tmp_path, lambda o, n: ([0] * len(o), [n[0]] * len(n)))
    assert rejected_in_child(path) == (
        "pixel data is malformed: its offset table is not in ascending order"
    )


def test_extended_offset_table_lengths_that_cut_frames_short_are_refused(tmp_path):
    path = _with_extended_offsets(tmp_path, lambda o, n: (o, [length // 4 for length in n]))
    assert rejected_in_child(path) == (
        "pixel data is malformed: its extended offset table lengths do not match the fragments"
    )


def test_frames_that_never_change_without_a_region_are_refused(tmp_path):
    still = np.repeat(moving_frames(1, 120, 160), 20, axis=0)
    path = native_clip(tmp_path / "still.dcm", still)
    assert rejection(path) == "no moving scan sector: all frames identical"


def test_frames_that_never_change_fall_back_to_the_ultrasound_region(tmp_path):
    still = np.repeat(moving_frames(1, 120, 160), 20, axis=0)
    path = native_clip(tmp_path / "still.dcm", still, [region_item(20, 10, 139, 109)])
    notes = []
    clip = extract_clip(path, notes=notes)
    assert notes == ["scan sector from the ultrasound regions: frames do not move"]
    assert clip[:10].max() > 100 and not clip[10:].any()  # 20 frames: 10 used, 6 padding
    np.testing.assert_array_equal(clip[0], clip[9])


def test_a_small_moving_spot_is_not_a_scan_sector(tmp_path):
    frames = np.repeat(moving_frames(1, 240, 320), 20, axis=0)
    for t, frame in enumerate(frames):  # a blinking 12×12 cursor: 1.3 % once dilated
        frame[100:112, 150:162] = 40 + 10 * t
    reason = rejection(native_clip(tmp_path / "cursor.dcm", frames))
    assert reason.startswith("no moving scan sector: the moving area is ")
    assert reason.endswith(f"% of the frame (minimum {100 * MIN_MASK_FRACTION:g} %)")


def test_an_all_black_clip_is_never_stored(tmp_path):
    black = np.zeros((20, 120, 160, 3), np.uint8)
    path = native_clip(tmp_path / "black.dcm", black, [region_item(20, 10, 139, 109)])
    assert rejection(path) == "blank clip: every pixel of every used frame is 0"


# ------------------------------------------------------------------ time limit


@pytest.fixture
def slow_decode(monkeypatch):
    """Every compressed frame takes ``slow_decode.seconds`` of (interruptible) sleep."""
    original = DecodeRunner.decode
    state = SimpleNamespace(seconds=30.0)

    def decode(self, index):
        time.sleep(state.seconds)
        return original(self, index)

    monkeypatch.setattr(DecodeRunner, "decode", decode)
    return state


def test_time_limit_turns_a_slow_decode_into_a_rejection(tmp_path, slow_decode):
    path = recompress(_rle_clip(tmp_path), tmp_path / "rle.dcm", lambda c: c)
    handler_before = signal.getsignal(signal.SIGALRM)
    started = time.monotonic()
    ledger = extract_echo_shard(
        [ShardInput(path=str(path), source="slow")],
        tmp_path / "out/clips.zarr",
        tmp_path / "out/ledger.csv",
        time_limit_s=0.5,
    )
    assert list(ledger["reason"]) == ["reading took longer than the time limit of 0.5 s"]
    assert time.monotonic() - started < 10
    assert signal.getsignal(signal.SIGALRM) is handler_before  # restored
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # disarmed


def test_time_limit_leaves_a_fast_file_alone(tmp_path, slow_decode):
    slow_decode.seconds = 0.0
    path = recompress(_rle_clip(tmp_path), tmp_path / "rle.dcm", lambda c: c)
    ledger = extract_echo_shard(
        [ShardInput(path=str(path), source="fast")],
        tmp_path / "out/clips.zarr",
        tmp_path / "out/ledger.csv",
        time_limit_s=60,
    )
    assert list(ledger["status"]) == ["ok"]
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_time_limit_is_a_no_op_off_the_main_thread(tmp_path, slow_decode):
    slow_decode.seconds = 0.1  # 3 decoded frames: over the limit, yet not interrupted
    path = recompress(_rle_clip(tmp_path), tmp_path / "rle.dcm", lambda c: c)
    result = {}

    def work():
        with time_limit(0.05):
            result["clip"] = extract_clip(path)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(60)
    assert result["clip"].max() > 0


# ------------------------------------------------------------------ reasons from facts


def test_a_truncated_jpeg_frame_is_refused(tmp_path):
    # Decoders return a truncated frame filled with grey, without an error.
    codestreams = jpeg_codestreams(moving_frames())
    codestreams[4] = codestreams[4][: len(codestreams[4]) // 2]
    path = jpeg_clip(tmp_path / "cut.dcm", codestreams=codestreams)
    assert rejected_in_child(path) == (
        "decoding failed: frame 4 is truncated (no end-of-image marker)"
    )


def test_decoder_failure_reason_names_the_frame_not_the_decoder_message(tmp_path):
    codestreams = jpeg_codestreams(moving_frames())
    corrupt = bytearray(codestreams[4])
    corrupt[corrupt.index(b"\xff\xdb") + 4] = 0x0F  # quantisation table 15: T.81 has 0-3
    codestreams[4] = bytes(corrupt)
    path = jpeg_clip(tmp_path / "cut.dcm", codestreams=codestreams)
    assert rejected_in_child(path) == (
        "decoding failed: frame 4 could not be decoded (JPEG Baseline (Process 1), RuntimeError)"
    )


def test_missing_palette_tables_are_named(tmp_path):
    frames = np.random.default_rng(4).integers(0, 255, (3, 32, 32), dtype=np.uint8)
    ds = new_dataset(tmp_path / "p.dcm", ExplicitVRLittleEndian, 32, 32, 3, 1, "PALETTE COLOR")
    ds.set_pixel_data(frames, "PALETTE COLOR", 8)
    ds.save_as(tmp_path / "p.dcm", enforce_file_format=True)
    with pytest.raises(InputRejected) as caught:
        read_frames(tmp_path / "p.dcm", [0])
    assert caught.value.reason == (
        "palette colour lookup table missing: Red, Green, Blue descriptor"
    )


def test_unreadable_header_element_is_named(tmp_path):
    path = native_clip(tmp_path / "x.dcm", moving_frames(3, 32, 32))
    data = Path(path).read_bytes()
    rows = b"\x28\x00\x10\x00US\x02\x00\x20\x00"  # (0028,0010) Rows = 32, explicit VR LE
    assert data.count(rows) == 1
    Path(path).write_bytes(data.replace(rows, rows[:6] + b"\x03\x00\x20\x00\x00"))  # 3 bytes
    with pytest.raises(InputRejected) as caught:
        read_ultrasound_header(path)
    assert caught.value.reason == "malformed header: Rows cannot be read"
