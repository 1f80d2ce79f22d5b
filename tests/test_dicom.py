"""echo2ecg.data.dicom: real ultrasound files of every transfer syntax, and broken files.

Real files: pydicom's ``examples_ybr_color.dcm`` and the pydicom-data package (imported
as ``data_store``; both found through ``pydicom.data.get_testdata_file``).
"""

import struct
import tracemalloc

import numpy as np
import pydicom
import pytest
from conftest import PATIENT, US_MULTIFRAME, write_clip
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import convert_color_space
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from echo2ecg.data.dicom import read_frames, read_ultrasound_header
from echo2ecg.data.errors import InputRejected


def real(name: str) -> str:
    path = get_testdata_file(name)
    assert path is not None, f"{name} missing: pip install pydicom-data (see requirements.lock)"
    return path


def as_multiframe(name: str, path, n_frames: int) -> str:
    """A real single-frame US file turned into an n-frame clip in its own transfer syntax.

    Native data: frame k is the real frame rolled k·7 columns (distinct frames, real
    values). Encapsulated data: the real codestream repeated, one frame per item.
    """
    ds = pydicom.dcmread(real(name))
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        codestream = next(generate_frames(ds.PixelData, number_of_frames=1))
        ds.PixelData = encapsulate([codestream] * n_frames, has_bot=True)
    else:
        frame_bytes = ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8
        row_bytes = frame_bytes // ds.Rows
        pixel_bytes = ds.SamplesPerPixel * ds.BitsAllocated // 8
        frame = np.frombuffer(ds.PixelData[:frame_bytes], np.uint8).reshape(ds.Rows, row_bytes)
        ds.PixelData = b"".join(
            np.roll(frame, 7 * k * pixel_bytes, axis=1).tobytes() for k in range(n_frames)
        )
    ds.NumberOfFrames = n_frames
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = US_MULTIFRAME
    ds.save_as(path)
    return str(path)


def full_decode_rgb(path: str) -> np.ndarray:
    """Every frame the plain way: ds.pixel_array (YBR → RGB by pydicom) plus conversion."""
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array
    if ds.get("NumberOfFrames", 1) == 1:
        frames = frames[None]
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        rgb = pydicom.pixels.apply_color_lut(frames, ds)
        return (rgb >> 8 if rgb.max() > 255 else rgb).astype(np.uint8)
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=3)
    return frames


# ------------------------------------------------------------------ real clips

REAL_CLIPS = {  # name: (frames, rows, columns, photometric, transfer syntax)
    "examples_ybr_color.dcm": (30, 240, 320, "YBR_FULL_422", "JPEG Baseline (Process 1)"),
    "color3d_jpeg_baseline.dcm": (120, 480, 640, "YBR_FULL_422", "JPEG Baseline (Process 1)"),
    "OBXXXX1A_rle_2frame.dcm": (2, 600, 800, "PALETTE COLOR", "RLE Lossless"),
    "OBXXXX1A_2frame.dcm": (2, 600, 800, "PALETTE COLOR", "Explicit VR Little Endian"),
    "OBXXXX1A_expb_2frame.dcm": (2, 600, 800, "PALETTE COLOR", "Explicit VR Big Endian"),
}


@pytest.mark.parametrize("name", REAL_CLIPS)
def test_real_clip_header_and_frames(name):
    n_frames, rows, columns, photometric, syntax = REAL_CLIPS[name]
    header = read_ultrasound_header(real(name))
    assert (header.n_frames, header.rows, header.columns) == (n_frames, rows, columns)
    assert header.photometric == photometric
    assert pydicom.uid.UID(header.transfer_syntax_uid).name == syntax
    frames = read_frames(real(name), [0, n_frames - 1], header)
    assert frames.shape == (2, rows, columns, 3) and frames.dtype == np.uint8
    assert frames.max() > 150 and (frames[0] <= 2).all(axis=2).mean() > 0.3  # dark background
    assert not np.array_equal(frames[0], frames[1])


@pytest.mark.parametrize("name", ["examples_ybr_color.dcm", "color3d_jpeg_baseline.dcm"])
def test_jpeg_ybr_echo_becomes_gray_rgb(name):
    # Echo B-mode is gray: after YCbCr → RGB the channels agree; unconverted YCbCr would
    # put the black background at (0, 128, 128).
    frame = read_frames(real(name), [5])[0].astype(int)
    assert np.median(np.abs(frame[..., 0] - frame[..., 1])) <= 2
    assert np.median(frame[..., 2]) < 10


def test_region_comes_from_the_2d_ultrasound_region():
    header = read_ultrasound_header(real("OBXXXX1A_rle_2frame.dcm"))
    # (0018,6011) holds a 2D region x 120..800, y 60..518 (clipped to 800 columns) and an
    # ECG waveform region (spatial format 4) that must not count.
    assert header.region == (120, 60, 800, 519)


def test_region_is_the_union_of_2d_regions_only(tmp_path):
    def region(x0, y0, x1, y1, spatial_format):
        item = Dataset()
        item.RegionSpatialFormat = spatial_format
        item.RegionLocationMinX0, item.RegionLocationMinY0 = x0, y0
        item.RegionLocationMaxX1, item.RegionLocationMaxY1 = x1, y1
        return item

    frames = np.zeros((2, 64, 80, 3), np.uint8)
    regions = [region(10, 5, 39, 50, 1), region(40, 8, 69, 44, 1), region(0, 52, 79, 63, 4)]
    path = write_clip(tmp_path / "r.dcm", frames, "RGB", SequenceOfUltrasoundRegions=regions)
    assert read_ultrasound_header(path).region == (10, 5, 70, 51)
    assert read_ultrasound_header(write_clip(tmp_path / "n.dcm", frames, "RGB")).region is None


# ------------------------------------------------------------------ subset == full decode


def _multiframe(name, n_frames=4):
    return lambda tmp_path: as_multiframe(name, tmp_path / f"mf_{name}", n_frames)


def _distinct_jpeg2000(tmp_path):
    rng = np.random.default_rng(1)
    frames = np.stack([np.full((48, 64, 3), 40 * k, np.uint8) for k in range(5)])
    frames += rng.integers(0, 30, frames.shape, dtype=np.uint8)
    return write_clip(tmp_path / "j2k.dcm", frames, "RGB", syntax=JPEG2000Lossless)


SYNTAX_CASES = {
    "jpeg-baseline-with-offset-table": lambda tmp_path: real("examples_ybr_color.dcm"),
    "jpeg-baseline-no-offset-table": lambda tmp_path: real("color3d_jpeg_baseline.dcm"),
    "rle-palette": lambda tmp_path: real("OBXXXX1A_rle_2frame.dcm"),
    "explicit-little-palette": lambda tmp_path: real("OBXXXX1A_2frame.dcm"),
    "explicit-big-palette": lambda tmp_path: real("OBXXXX1A_expb_2frame.dcm"),
    "jpeg2000-lossless-ybr-rct": _multiframe("US1_J2KR.dcm"),
    "jpeg2000-ybr-ict": _multiframe("US1_J2KI.dcm"),
    "jpeg2000-distinct-frames": _distinct_jpeg2000,
    "jpeg-lossless-monochrome": _multiframe("JPGLosslessP14SV1_1s_1f_8b.dcm"),
    "explicit-little-rgb": _multiframe("US1_UNCR.dcm"),
    "implicit-little-16bit-palette": _multiframe("gdcm-US-ALOKA-16.dcm"),
    "explicit-big-16bit-palette": _multiframe("gdcm-US-ALOKA-16_big.dcm"),
}


@pytest.mark.parametrize("case", SYNTAX_CASES)
def test_subset_decode_equals_the_same_frames_of_a_full_decode(case, tmp_path):
    path = SYNTAX_CASES[case](tmp_path)
    full = full_decode_rgb(path)
    n_frames = len(full)
    indices = sorted({n_frames - 1, 0, n_frames // 2}, reverse=True)  # any order
    subset = read_frames(path, indices)
    assert subset.shape == (len(indices), *full.shape[1:3], 3) and subset.dtype == np.uint8
    np.testing.assert_array_equal(subset, full[indices])
    assert subset.max() > 100


def test_only_the_requested_frames_are_decoded(monkeypatch):
    path = real("color3d_jpeg_baseline.dcm")
    decoded = []
    decoder_class = pydicom.pixels.decoders.base.DecodeRunner
    original = decoder_class.decode

    def counting_decode(self, index):
        decoded.append(index)
        return original(self, index)

    monkeypatch.setattr(decoder_class, "decode", counting_decode)
    read_frames(path, [0, 2, 119])
    assert decoded == [0, 2, 119]


def test_palette_goes_through_the_lookup_table():
    path = real("OBXXXX1A_2frame.dcm")
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array[1]  # (H, W) palette indices
    lut = [
        np.frombuffer(ds[f"{c}PaletteColorLookupTableData"].value, "<u2") >> 8
        for c in ("Red", "Green", "Blue")
    ]
    expected = np.stack([table[stored] for table in lut], axis=-1).astype(np.uint8)
    rgb = read_frames(path, [1])[0]
    np.testing.assert_array_equal(rgb, expected)
    assert (rgb[..., 2].astype(int) - rgb[..., 0] > 40).mean() > 0.05  # the blue banner


@pytest.mark.parametrize(
    "little, big",
    [
        ("OBXXXX1A_2frame.dcm", "OBXXXX1A_expb_2frame.dcm"),
        ("gdcm-US-ALOKA-16.dcm", "gdcm-US-ALOKA-16_big.dcm"),
    ],
)
def test_big_endian_equals_its_little_endian_twin(little, big, tmp_path):
    def path(name):
        if pydicom.dcmread(real(name), stop_before_pixels=True).get("NumberOfFrames", 1) > 1:
            return real(name)
        return as_multiframe(name, tmp_path / name, 3)

    little_path, big_path = path(little), path(big)
    indices = list(range(read_ultrasound_header(little_path).n_frames))
    big_frames = read_frames(big_path, indices)
    np.testing.assert_array_equal(big_frames, read_frames(little_path, indices))
    assert big_frames.max() > 100


# ------------------------------------------------------------------ colour and bit depth


def test_16_bit_gray_is_scaled_by_its_stored_bits_and_monochrome1_inverted(tmp_path):
    values = np.array([0, 2048, 4095, 4095], np.uint16)  # 12 bits stored
    frames = np.broadcast_to(values[None, None, :], (2, 16, 4)).repeat(4, axis=2)
    frames = np.ascontiguousarray(frames)
    mono2 = read_frames(write_clip(tmp_path / "m2.dcm", frames, "MONOCHROME2", 12), [0])[0]
    mono1 = read_frames(write_clip(tmp_path / "m1.dcm", frames, "MONOCHROME1", 12), [0])[0]
    assert mono2[0, ::4].tolist() == [[0] * 3, [128] * 3, [255] * 3, [255] * 3]
    np.testing.assert_array_equal(mono1, 255 - mono2)


def test_native_ybr_full_is_converted_to_rgb(tmp_path):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (2, 16, 20, 3), dtype=np.uint8)
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    decoded = read_frames(write_clip(tmp_path / "y.dcm", ybr, "YBR_FULL"), [1, 0])
    assert np.abs(decoded.astype(int) - rgb[[1, 0]]).max() <= 3


def test_index_outside_the_clip_is_a_caller_error():
    with pytest.raises(IndexError):
        read_frames(real("examples_ybr_color.dcm"), [30])


# ------------------------------------------------------------------ broken inputs


def _rejection(path, **kwargs) -> str:
    with pytest.raises(InputRejected) as caught:
        read_ultrasound_header(path, **kwargs)
    reason = caught.value.reason
    for value in PATIENT.values():  # never a patient identifier in a reason
        assert value not in reason
    return reason


def test_text_file_is_not_dicom(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("patient Doe^Jane, echo of 2024-02-29\n" * 20)
    assert _rejection(path) == "not a DICOM file"


def test_truncated_compressed_clip(tmp_path):
    data = open(real("examples_ybr_color.dcm"), "rb").read()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: len(data) * 2 // 3])
    assert _rejection(path) == "pixel data is truncated: the file ends inside a fragment"


def test_truncated_native_clip(tmp_path):
    data = open(real("OBXXXX1A_2frame.dcm"), "rb").read()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:700_000])
    assert _rejection(path).startswith("pixel data is truncated: header declares 960000 bytes")


def test_ct_single_frame_is_not_an_ultrasound_clip():
    reason = _rejection(real("CT_small.dcm"))
    assert reason == (
        "not a multi-frame ultrasound clip (SOP class CT Image Storage, modality CT, 1 frame)"
    )


def test_single_frame_ultrasound_is_not_a_clip():
    reason = _rejection(real("US1_J2KR.dcm"))
    assert reason.startswith(
        "not a multi-frame ultrasound clip (SOP class Ultrasound Image Storage,"
    )


def test_private_sop_class_uid_is_not_revealed(tmp_path):
    path = write_clip(
        tmp_path / "p.dcm",
        np.zeros((2, 16, 16), np.uint8),
        "MONOCHROME2",
        SOPClassUID="1.2.826.0.1.3680043.99.1",
        Modality="OT",
    )
    reason = _rejection(path)
    assert "unrecognised" in reason and "1.2.826" not in reason


def test_no_pixel_data(tmp_path):
    path = write_clip(tmp_path / "x.dcm", np.zeros((3, 16, 16, 3), np.uint8), "RGB")
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    assert _rejection(path) == "no pixel data"


def test_absurd_size_is_refused_before_anything_is_allocated(tmp_path):
    path = write_clip(tmp_path / "x.dcm", np.zeros((2, 16, 16, 3), np.uint8), "RGB")
    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns = 60000, 60000  # 21.6 GB declared, 1.5 kB present
    ds.save_as(path)
    tracemalloc.start()
    reason = _rejection(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert reason == "implausible size: 60000x60000 pixels"
    assert peak < 2_000_000


def test_decoded_size_limit(tmp_path):
    path = write_clip(tmp_path / "x.dcm", np.zeros((40, 64, 64, 3), np.uint8), "RGB")
    assert read_ultrasound_header(path).decoded_bytes == 40 * 64 * 64 * 3
    assert (
        _rejection(path, max_bytes=100_000)
        == "implausible size: 0.0 GiB once decoded (limit 0.0 GiB)"
    )


@pytest.mark.parametrize(
    "declared, pixel_bytes, holds",
    [(30, 12 * 768, "12"), (3, 4 * 768, "4"), (4, 4 * 768 - 384, "3.50")],
)
def test_native_frame_count_must_match_the_data(tmp_path, declared, pixel_bytes, holds):
    path = write_clip(tmp_path / "x.dcm", np.ones((4, 16, 16, 3), np.uint8), "RGB")
    ds = pydicom.dcmread(path)  # 16 × 16 × 3 = 768 bytes per frame
    ds.NumberOfFrames, ds.PixelData = declared, b"\x01" * pixel_bytes
    ds.save_as(path)
    assert _rejection(path) == (
        f"frame count does not match the data: header says {declared} frames, data holds {holds}"
    )


def test_native_pad_byte_is_allowed(tmp_path):
    frames = np.ones((3, 17, 17), np.uint8)  # 867 bytes: odd, written with one pad byte
    path = write_clip(tmp_path / "x.dcm", frames, "MONOCHROME2")
    assert len(pydicom.dcmread(path).PixelData) == 868
    assert read_ultrasound_header(path).n_frames == 3
    assert read_frames(path, [2]).shape == (1, 17, 17, 3)


def test_compressed_frame_count_larger_than_the_offset_table(tmp_path):
    ds = pydicom.dcmread(real("examples_ybr_color.dcm"))
    ds.NumberOfFrames = 40
    ds.save_as(tmp_path / "x.dcm")
    assert (
        _rejection(tmp_path / "x.dcm")
        == "frame count does not match the data: header says 40 frames, data holds 30"
    )


def test_compressed_frame_count_larger_than_the_fragments(tmp_path):
    ds = pydicom.dcmread(real("examples_ybr_color.dcm"))
    frames = list(generate_frames(ds.PixelData, number_of_frames=30))[:12]
    ds.PixelData = encapsulate(frames, has_bot=False)
    ds.save_as(tmp_path / "x.dcm")
    assert (
        _rejection(tmp_path / "x.dcm")
        == "frame count does not match the data: header says 30 frames, data holds 12"
    )


def test_unsupported_transfer_syntax(tmp_path):
    path = write_clip(tmp_path / "x.dcm", np.zeros((2, 16, 16, 3), np.uint8), "RGB")
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path)
    assert _rejection(path) == "unsupported transfer syntax Deflated Explicit VR Little Endian"


def test_corrupt_codestream_fails_decoding_as_a_rejection(tmp_path):
    ds = pydicom.dcmread(real("examples_ybr_color.dcm"))
    frames = list(generate_frames(ds.PixelData, number_of_frames=30))
    frames[4] = b"\x00\x00" + frames[4][2:]  # no JPEG start-of-image marker
    ds.PixelData = encapsulate(frames, has_bot=True)
    ds.save_as(tmp_path / "x.dcm")
    read_frames(tmp_path / "x.dcm", [3, 5])  # the other frames still decode
    with pytest.raises(InputRejected) as caught:
        read_frames(tmp_path / "x.dcm", [4])
    assert caught.value.reason.startswith("decoding failed: ")


def test_rle_clip_roundtrip_keeps_frame_order(tmp_path):
    frames = np.stack([np.full((20, 24), 30 * k, np.uint8) for k in range(6)])
    path = write_clip(tmp_path / "rle.dcm", frames, "MONOCHROME2", syntax=RLELossless)
    assert read_frames(path, [5, 1])[:, 0, 0, 0].tolist() == [150, 30]


def test_offset_table_that_misses_the_fragments_is_malformed(tmp_path):
    ds = pydicom.dcmread(real("examples_ybr_color.dcm"))
    frames = list(generate_frames(ds.PixelData, number_of_frames=30))
    data = bytearray(encapsulate(frames, has_bot=True))
    # The table's second entry (after its 8-byte item header and the first entry) now
    # points 2 bytes inside frame 0's fragment instead of at frame 1's item.
    (offset,) = struct.unpack_from("<L", data, 12)
    struct.pack_into("<L", data, 12, offset - 2)
    ds.PixelData = bytes(data)
    ds.save_as(tmp_path / "x.dcm")
    assert (
        _rejection(tmp_path / "x.dcm")
        == "pixel data is malformed: its offset table does not point at fragments"
    )
