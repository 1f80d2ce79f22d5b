"""Reading ultrasound DICOM clips: validate the header, decode only the frames asked for.

This module knows DICOM and nothing about echo preprocessing. It answers two questions:

* :func:`read_ultrasound_header` — is this file a multi-frame ultrasound clip we can decode,
  and what are its dimensions? It reads the header without the pixel data and checks the
  declared size against the bytes actually present *before* anything is allocated.
* :func:`read_frames` — the requested frames as RGB uint8, decoding only those frames
  (for compressed syntaxes each frame is its own set of fragments; for native syntaxes
  only that frame's bytes are read from disk). Before a compressed frame is decoded its
  own frame header (JPEG SOF, JPEG-LS SOF55, JPEG 2000 SIZ, RLE segment table) must agree
  with the DICOM header: decoders allocate what the codestream declares, so a clip whose
  frames claim 65535×65535 pixels would otherwise be decoded into gigabytes.

Files are opened with :func:`~echo2ecg.data.files.open_regular` (a FIFO, directory or device
is refused before a byte is read). Everything wrong with a file raises
:class:`~echo2ecg.data.errors.InputRejected`. Reasons are built from what went wrong, never
from an exception's text: attribute names, SOP class and transfer syntax *names*, sizes
and counts, never patient identifiers, dates, UIDs, paths or file content.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.pixels import apply_color_lut, get_decoder, iter_pixels
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
    RLELossless,
)

from echo2ecg.data.errors import InputRejected
from echo2ecg.data.files import open_regular

DEFAULT_MAX_BYTES = 8 * 1024**3
"""Default limit on a clip's declared decoded size (all frames, stored samples): 8 GiB."""

US_MULTIFRAME_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame Image Storage",
    "1.2.840.10008.5.1.4.1.1.3": "Ultrasound Multi-frame Image Storage (Retired)",
}
MIN_SIDE, MAX_SIDE = 16, 4096  # pixels
MAX_FRAMES = 10_000

# A compressed frame larger than this is not a compressed frame (pure noise as JPEG at
# quality 100 comes to 1.4× its decoded size, RLE at most 129/128), and the bound keeps a
# lying fragment from being read into memory whole.
MAX_CODESTREAM_RATIO, CODESTREAM_SLACK = 4, 1024**2  # × decoded frame bytes, + bytes
# Bytes of a codestream searched for its frame header: 64 KiB, then 1 MiB (APP segments
# such as ICC profiles can precede it).
_FRAME_HEADER_PREFIXES = (64 * 1024, 1024**2)
MAX_J2K_TILES = 4096  # openjpeg allocates per tile; 4096 tiles is 64×64 tiles of 4096²

# Samples per pixel each supported Photometric Interpretation must have. YBR_RCT/YBR_ICT
# only occur in JPEG 2000, whose decoder returns RGB.
SAMPLES_FOR_PHOTOMETRIC = {
    "MONOCHROME1": 1,
    "MONOCHROME2": 1,
    "PALETTE COLOR": 1,
    "RGB": 3,
    "YBR_FULL": 3,
    "YBR_FULL_422": 3,
    "YBR_RCT": 3,
    "YBR_ICT": 3,
}

# Only these header elements are parsed (everything else is skipped unread), so no patient
# attribute is ever decoded.
_HEADER_TAGS = [
    "SOPClassUID",
    "Modality",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "SequenceOfUltrasoundRegions",
    "FrameTime",
    "CineRate",
    "RecommendedDisplayFrameRate",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
]
_PIXEL_DATA_TAG = 0x7FE00010
_ITEM_TAG, _SEQUENCE_END_TAG = 0xFFFEE000, 0xFFFEE0DD
_UNDEFINED_LENGTH = 0xFFFFFFFF
_JPEG_END_MARKER = b"\xff\xd9"  # EOI (JPEG, JPEG-LS) and EOC (JPEG 2000) share it
_SPATIAL_FORMAT_2D = 1  # Region Spatial Format (0018,6012): 1 = 2D (tissue or colour flow)
_REGION_ECG_TRACE = 0x000A  # Region Data Type (0018,6014): ECG trace
_UNIT_SECONDS = 4  # Physical Units X Direction (0018,6024): seconds

# JPEG markers whose segment declares the image size: SOF0–3, 5–7, 9–11, 13–15 (ITU-T
# T.81), DHP (hierarchical) and SOF55 (JPEG-LS, T.87); all share the layout
# length, precision, height, width, components.
_JPEG_SIZE_MARKERS = frozenset(
    {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0), 0xDE, 0xF7}
)
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0–7: no length
_JPEG_SOI, _JPEG_EOI, _JPEG_SOS = 0xD8, 0xD9, 0xDA
_J2K_SOC_SIZ = b"\xff\x4f\xff\x51"  # a J2K codestream opens with SOC, then SIZ
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_RLE_HEADER_BYTES = 64


@dataclass(frozen=True)
class EcgTraceRegion:
    """An ultrasound region of Region Data Type ECG trace (000AH): its box in pixels,
    half-open and clipped to the image like :attr:`UltrasoundHeader.region`, and seconds
    per pixel across (Physical Delta X when its unit is seconds, else ``None``)."""

    x0: int
    y0: int
    x1: int
    y1: int
    seconds_per_px: float | None


@dataclass(frozen=True)
class UltrasoundHeader:
    """What :func:`read_frames` and the echo recipe need to know about a clip.

    ``region`` is the scan area from the Sequence of Ultrasound Regions (0018,6011): the
    bounding box of the union of all 2D regions, in pixels, half-open
    ``(x0, y0, x1, y1)`` (``x1``/``y1`` one past the last column/row, so
    ``frame[y0:y1, x0:x1]`` is the region), clipped to the image; ``None`` when the file
    declares no usable 2D region.

    ``frame_time_ms``: milliseconds between frames, from Frame Time (0018,1063), else Cine
    Rate (0018,0040) or Recommended Display Frame Rate (0008,2144); ``None`` when none is
    usable. ``ecg_region``: the first region of (0018,6011) tagged ECG trace, if any.

    ``frame_fragments`` (encapsulated data only, else ``None``): for each frame, the
    ``(file position, bytes)`` of every fragment value it spans, as pydicom will read it.
    """

    n_frames: int
    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    transfer_syntax_uid: str
    region: tuple[int, int, int, int] | None
    frame_time_ms: float | None = None
    ecg_region: EcgTraceRegion | None = None
    frame_fragments: tuple[tuple[tuple[int, int], ...], ...] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def frame_bytes(self) -> int:
        """Bytes of one stored frame in a native (uncompressed) syntax."""
        n_bytes = self.rows * self.columns * self.samples_per_pixel * self.bits_allocated // 8
        # Native YBR_FULL_422 stores two chroma samples per two pixels: 2 samples per pixel.
        return n_bytes * 2 // 3 if self.photometric == "YBR_FULL_422" else n_bytes

    @property
    def decoded_frame_bytes(self) -> int:
        """Bytes of one frame once decoded (stored samples, no subsampling)."""
        return self.rows * self.columns * self.samples_per_pixel * self.bits_allocated // 8

    @property
    def decoded_bytes(self) -> int:
        """Bytes of the whole clip once decoded (all frames, stored samples)."""
        return self.n_frames * self.decoded_frame_bytes


# --------------------------------------------------------------------------- header


def read_ultrasound_header(
    path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES
) -> UltrasoundHeader:
    """Read and validate a clip's header without reading its pixel data.

    Checks, in order, each failure raising :class:`InputRejected` with its own reason: a
    regular file (not a FIFO, directory or device); a readable DICOM file whose transfer
    syntax, read from the file meta information alone, is not deflated; a multi-frame
    ultrasound clip (Ultrasound Multi-frame Image Storage, current or retired, or Modality
    US with more than one frame); a transfer syntax with an installed decoder; pixel data
    present; supported photometric interpretation, samples and bit depth; a plausible size
    (sides 16–4096 pixels, 1–10,000 frames, Number of Frames a whole number when present,
    declared decoded size at most ``max_bytes``); and that the pixel data matches the
    declared frame count (native: exactly that many frames of bytes, one pad byte allowed;
    encapsulated: exactly that many frames recoverable from ascending offset tables or the
    fragments, none longer than ``MAX_CODESTREAM_RATIO`` × its decoded size + 1 MiB).

    Args:
        path: the DICOM file.
        max_bytes: limit on the declared decoded size, bytes (default 8 GiB).
    """
    with open_regular(path) as file:
        ds = _read_header_dataset(file)
        _check_is_ultrasound_clip(ds)
        transfer_syntax = UID(ds.file_meta.get("TransferSyntaxUID", ""))
        _check_transfer_syntax(transfer_syntax)
        pixel_length = _read_pixel_data_element_header(file, transfer_syntax)
        header = _header_from_dataset(ds, transfer_syntax)
        _check_plausible_size(header, max_bytes)
        frame_fragments = _check_frame_count(file, header, ds, pixel_length)
    return replace(header, frame_fragments=frame_fragments)


def _read_header_dataset(file: BinaryIO) -> Dataset:
    """The header elements this module uses; ``file`` is left at the pixel data element.

    The file meta information is read first, on its own: pydicom inflates a deflated data
    set whole before reading any element of it (``stop_before_pixels`` and
    ``specific_tags`` included; measured: a 0.6 MB file inflating to 600 MB peaked at
    1.2 GB), so a deflated file is refused before anything is inflated.
    """
    try:
        read_preamble(file, False)
        transfer_syntax = _read_file_meta_info(file).get("TransferSyntaxUID", "")
    except InvalidDicomError:
        raise InputRejected("not a DICOM file") from None
    except Exception as error:  # pydicom raises many types on malformed file meta
        raise InputRejected(
            f"not a readable DICOM file ({type(error).__name__} while "
            "reading the file meta information)"
        ) from None
    # Deflated files are compressed as a whole, so frames cannot be read one at a time.
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        raise InputRejected(f"unsupported transfer syntax {_uid_name(transfer_syntax)}")
    file.seek(0)
    try:
        ds = pydicom.dcmread(file, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
    except InvalidDicomError:
        raise InputRejected("not a DICOM file") from None
    except Exception as error:  # pydicom raises many types on malformed headers
        raise InputRejected(
            f"not a readable DICOM file ({type(error).__name__} while reading the header)"
        ) from None
    for keyword in _HEADER_TAGS:  # values are converted on first access: do it here
        try:
            ds.get(keyword)
        except Exception:
            raise InputRejected(f"malformed header: {keyword} cannot be read") from None
    return ds


def _check_is_ultrasound_clip(ds: Dataset) -> None:
    sop_class = str(ds.get("SOPClassUID", ""))
    n_frames = _declared_frames(ds)
    if sop_class in US_MULTIFRAME_SOP_CLASSES:
        return
    if ds.get("Modality") == "US" and n_frames > 1:
        return
    frames = "1 frame" if n_frames == 1 else f"{n_frames} frames"
    raise InputRejected(
        f"not a multi-frame ultrasound clip (SOP class {_uid_name(sop_class)}, "
        f"modality {ds.get('Modality') or 'missing'}, {frames})"
    )


def _declared_frames(ds: Dataset) -> int:
    """Number of Frames (0028,0008); 1 when absent, as the standard says.

    Present but empty, or not a whole number, is refused: the Multi-frame module makes it
    Type 1 (a value is required), and reading 3.5 as 3 would keep 2 of a clip's frames. The
    count is not derived from the fragments instead: an empty value is a broken header, and
    the frame count check below is what tells a lost frame from a lying table.
    """
    if "NumberOfFrames" not in ds:
        return 1
    value = ds.get("NumberOfFrames")
    if value is None or value == "":
        raise InputRejected("implausible size: Number of Frames is empty")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputRejected("implausible size: Number of Frames is not a number") from None
    if not number.is_integer():
        raise InputRejected(f"implausible size: Number of Frames is {number:g}, not a whole number")
    return int(number)


def _uid_name(uid: str) -> str:
    """A UID's registered name; never the UID itself (UIDs can identify a site)."""
    if not uid:
        return "missing"
    name = UID(uid).name
    return "unrecognised" if name == uid else name


def _read_pixel_data_element_header(file: BinaryIO, transfer_syntax: UID) -> int:
    """Read the Pixel Data element's tag, VR and length; return the length (bytes).

    ``file`` must be at the element (where ``stop_before_pixels`` leaves it) and is left
    at the start of its value. Returns ``0xFFFFFFFF`` for encapsulated (undefined length).
    """
    endian = "<" if transfer_syntax.is_little_endian else ">"
    raw_tag = file.read(4)
    if len(raw_tag) < 4:
        raise InputRejected("no pixel data")
    group, element = struct.unpack(f"{endian}HH", raw_tag)
    if (group << 16 | element) != _PIXEL_DATA_TAG:
        raise InputRejected("no pixel data (only float pixel data, not an image)")
    # Implicit VR: 4-byte length; explicit VR (OB/OW): VR, 2 reserved bytes, 4-byte length.
    header_size = 4 if transfer_syntax.is_implicit_VR else 8
    raw_length = file.read(header_size)
    if len(raw_length) < header_size:
        raise InputRejected("pixel data is truncated: the file ends in its header")
    return struct.unpack(f"{endian}L", raw_length[-4:])[0]


def _check_transfer_syntax(transfer_syntax: UID) -> None:
    if not transfer_syntax:
        raise InputRejected("unsupported transfer syntax: the file meta information has none")
    name = _uid_name(transfer_syntax)
    if transfer_syntax == DeflatedExplicitVRLittleEndian:  # see _read_header_dataset
        raise InputRejected(f"unsupported transfer syntax {name}")
    try:
        decoder = get_decoder(transfer_syntax)
    except NotImplementedError:
        raise InputRejected(f"unsupported transfer syntax {name}") from None
    if not decoder.is_available:
        raise InputRejected(f"unsupported transfer syntax {name} (no decoder installed)")
    if transfer_syntax.is_encapsulated and _codec_family(transfer_syntax) is None:
        raise InputRejected(
            f"unsupported transfer syntax {name} (its frame headers cannot "
            "be checked before decoding)"
        )


def _codec_family(transfer_syntax: str) -> str | None:
    """ "jpeg" (JPEG and JPEG-LS: SOF-style frame headers), "j2k", "rle" or None."""
    if transfer_syntax in JPEGTransferSyntaxes or transfer_syntax in JPEGLSTransferSyntaxes:
        return "jpeg"
    if transfer_syntax in JPEG2000TransferSyntaxes:
        return "j2k"
    return "rle" if transfer_syntax == RLELossless else None


def _header_from_dataset(ds: Dataset, transfer_syntax: UID) -> UltrasoundHeader:
    missing = [
        key
        for key in ("Rows", "Columns", "BitsAllocated", "PhotometricInterpretation")
        if ds.get(key) in (None, "")
    ]
    if missing:
        raise InputRejected(f"incomplete image header: {', '.join(missing)} missing")
    photometric = str(ds.PhotometricInterpretation).strip()
    try:
        samples = int(ds.get("SamplesPerPixel") or 1)
        bits_allocated = int(ds.BitsAllocated)
        rows, columns = int(ds.Rows), int(ds.Columns)
        bits_stored = int(ds.get("BitsStored") or bits_allocated)
        pixel_representation = int(ds.get("PixelRepresentation") or 0)
    except (TypeError, ValueError):  # a multi-valued or non-numeric element
        raise InputRejected("malformed header: an image pixel element is not a number") from None
    if photometric not in SAMPLES_FOR_PHOTOMETRIC:
        raise InputRejected(f"unsupported photometric interpretation {photometric[:20]}")
    if samples != SAMPLES_FOR_PHOTOMETRIC[photometric]:
        raise InputRejected(f"unsupported image: {photometric} with {samples} samples per pixel")
    if bits_allocated not in (8, 16):
        raise InputRejected(f"unsupported bit depth: {bits_allocated} bits allocated")
    if not 1 <= bits_stored <= bits_allocated:
        raise InputRejected(
            f"unsupported bit depth: {bits_stored} bits stored of {bits_allocated} allocated"
        )
    return UltrasoundHeader(
        n_frames=_declared_frames(ds),
        rows=rows,
        columns=columns,
        samples_per_pixel=samples,
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        pixel_representation=pixel_representation,
        photometric=photometric,
        transfer_syntax_uid=str(transfer_syntax),
        region=_scan_region(ds, rows, columns),
        frame_time_ms=_frame_time_ms(ds),
        ecg_region=_ecg_trace_region(ds, rows, columns),
    )


def _frame_time_ms(ds: Dataset) -> float | None:
    """Milliseconds per frame: Frame Time, else 1000 / a frame rate; None if none is usable."""
    for keyword, to_ms in (
        ("FrameTime", lambda value: value),
        ("CineRate", lambda value: 1000.0 / value),
        ("RecommendedDisplayFrameRate", lambda value: 1000.0 / value),
    ):
        try:
            value = float(ds.get(keyword) or 0.0)
        except (TypeError, ValueError):  # multi-valued or not a number: try the next one
            continue
        if 0.0 < value < 1e6 and math.isfinite(value):
            return to_ms(value)
    return None


def _region_box(item: Dataset, rows: int, columns: int) -> tuple[int, int, int, int] | None:
    """A region item's corners as a half-open box clipped to the image; None if unreadable
    or empty."""
    corners = [
        item.get(key)
        for key in (
            "RegionLocationMinX0",
            "RegionLocationMinY0",
            "RegionLocationMaxX1",
            "RegionLocationMaxY1",
        )
    ]
    if any(value is None for value in corners):
        return None
    x0, y0, x1, y1 = (int(value) for value in corners)
    box = (max(x0, 0), max(y0, 0), min(x1 + 1, columns), min(y1 + 1, rows))
    return box if box[0] < box[2] and box[1] < box[3] else None


def _ecg_trace_region(ds: Dataset, rows: int, columns: int) -> EcgTraceRegion | None:
    """The first readable region tagged ECG trace; None if there is none."""
    for item in ds.get("SequenceOfUltrasoundRegions") or []:
        try:
            if item.get("RegionDataType") != _REGION_ECG_TRACE:
                continue
            box = _region_box(item, rows, columns)
            if box is None:
                continue
            seconds_per_px = None
            if item.get("PhysicalUnitsXDirection") == _UNIT_SECONDS:
                delta = float(item.get("PhysicalDeltaX") or 0.0)
                seconds_per_px = delta if 0.0 < delta < 10.0 else None
        except Exception:  # a malformed value: pydicom converts on access
            continue
        return EcgTraceRegion(*box, seconds_per_px)
    return None


def _scan_region(ds: Dataset, rows: int, columns: int) -> tuple[int, int, int, int] | None:
    """Bounding box of the 2D regions of (0018,6011), half-open, clipped; None if none.

    An item whose corners cannot be read is skipped: the region is optional."""
    boxes = []
    for item in ds.get("SequenceOfUltrasoundRegions") or []:
        try:
            if item.get("RegionSpatialFormat") != _SPATIAL_FORMAT_2D:
                continue
            box = _region_box(item, rows, columns)
        except Exception:  # a malformed value: pydicom converts on access
            continue
        if box is not None:
            boxes.append(box)
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _check_plausible_size(header: UltrasoundHeader, max_bytes: int) -> None:
    if not (MIN_SIDE <= header.rows <= MAX_SIDE and MIN_SIDE <= header.columns <= MAX_SIDE):
        raise InputRejected(f"implausible size: {header.columns}x{header.rows} pixels")
    if not 1 <= header.n_frames <= MAX_FRAMES:
        raise InputRejected(f"implausible size: {header.n_frames} frames")
    if header.decoded_bytes > max_bytes:
        raise InputRejected(
            f"implausible size: {header.decoded_bytes / 1024**3:.1f} GiB once "
            f"decoded (limit {max_bytes / 1024**3:.1f} GiB)"
        )


def _check_frame_count(
    file: BinaryIO, header: UltrasoundHeader, ds: Dataset, pixel_length: int
) -> tuple[tuple[tuple[int, int], ...], ...] | None:
    """Native pixel data must be exactly ``n_frames`` frames long (plus one pad byte at
    most); encapsulated data must hold exactly ``n_frames`` recoverable frames, none
    implausibly long. ``file`` is at the start of the pixel data value. Returns each
    frame's fragments (see :class:`UltrasoundHeader`), None for native data."""
    available = os.fstat(file.fileno()).st_size - file.tell()
    encapsulated = UID(header.transfer_syntax_uid).is_encapsulated
    if encapsulated != (pixel_length == _UNDEFINED_LENGTH):
        raise InputRejected(
            "pixel data is malformed: its encoding does not match the transfer syntax"
        )
    frames = None
    if encapsulated:
        frames = _frame_fragments(file, _read_fragment_table(file, available), header, ds)
        frames_in_data = len(frames)
        mismatch = frames_in_data != header.n_frames
    else:
        if pixel_length > available:
            raise InputRejected(
                f"pixel data is truncated: header declares {pixel_length} "
                f"bytes, the file holds {available}"
            )
        expected = header.frame_bytes * header.n_frames
        frames_in_data = pixel_length / header.frame_bytes
        mismatch = pixel_length not in (expected, expected + 1)  # one pad byte: even length
    if mismatch:
        holds = (
            f"{int(frames_in_data)}"
            if float(frames_in_data).is_integer()
            else f"{frames_in_data:.2f}"
        )
        raise InputRejected(
            f"frame count does not match the data: header says "
            f"{header.n_frames} frames, data holds {holds}"
        )
    if frames is None:
        return None
    limit = MAX_CODESTREAM_RATIO * header.decoded_frame_bytes + CODESTREAM_SLACK
    for index, pieces in enumerate(frames):
        if (length := sum(n for _, n in pieces)) > limit:
            raise InputRejected(
                f"pixel data is implausible: frame {index} is {length} bytes "
                f"compressed, {header.decoded_frame_bytes} decoded"
            )
    return tuple(tuple(pieces) for pieces in frames)


@dataclass(frozen=True)
class _Fragments:
    """Encapsulated pixel data, located: offsets relative to the first fragment's item tag
    (the origin the offset tables use), file positions of each fragment's value."""

    basic_offsets: list[int]
    item_offsets: list[int]
    value_positions: list[int]
    lengths: list[int]


def _read_fragment_table(file: BinaryIO, available: int) -> _Fragments:
    """Walk the encapsulated items reading only their 8-byte headers (seeking past values).

    ``file`` is at the first item (the basic offset table); ``available`` bytes follow.
    """
    end = file.tell() + available
    table_length = _read_item_header(file, end)
    basic_offsets = [] if table_length is None else _parse_basic_offsets(file.read(table_length))
    first_item = file.tell()
    item_offsets, positions, lengths = [], [], []
    while (length := _read_item_header(file, end)) is not None:
        item_offsets.append(file.tell() - 8 - first_item)
        positions.append(file.tell())
        lengths.append(length)
        file.seek(length, os.SEEK_CUR)
    return _Fragments(basic_offsets, item_offsets, positions, lengths)


def _read_item_header(file: BinaryIO, end: int) -> int | None:
    """Length of the next item's value; None at the sequence delimiter or the file's end
    (a missing delimiter is tolerated: the frame count still catches lost frames)."""
    raw = file.read(8)
    if len(raw) == 0:
        return None
    if len(raw) < 8:
        raise InputRejected("pixel data is truncated: the file ends inside a fragment header")
    group, element, length = struct.unpack("<HHL", raw)
    tag = group << 16 | element
    if tag == _SEQUENCE_END_TAG:
        return None
    if tag != _ITEM_TAG or length == _UNDEFINED_LENGTH:
        raise InputRejected("pixel data is malformed: unexpected element among its fragments")
    if file.tell() + length > end:
        raise InputRejected("pixel data is truncated: the file ends inside a fragment")
    return length


def _parse_basic_offsets(value: bytes) -> list[int]:
    if len(value) % 4:
        raise InputRejected(
            "pixel data is malformed: basic offset table length is not a multiple of 4"
        )
    return list(struct.unpack(f"<{len(value) // 4}L", value))


def _frame_fragments(
    file: BinaryIO, fragments: _Fragments, header: UltrasoundHeader, ds: Dataset
) -> list[list[tuple[int, int]]]:
    """Each frame's ``(file position, bytes)`` pieces, following pydicom's own rules: the
    extended offset table (one fragment per frame, its stated length), else the basic
    offset table, else one fragment per frame, else (JPEG family) one frame per run of
    fragments ending with an EOI/EOC marker.

    Offset tables must point at fragments in strictly ascending order: a table that names
    one fragment for every frame decodes the same picture F times (a clip that never
    moves), one out of order shuffles time.
    """
    pieces = list(zip(fragments.value_positions, fragments.lengths))
    where = {offset: k for k, offset in enumerate(fragments.item_offsets)}
    extended = _extended_offset_table(ds)
    if extended is not None:
        offsets, lengths = extended
        _check_offset_table(offsets, where)
        frames = []
        for offset, length in zip(offsets, lengths):
            position, fragment_length = pieces[where[offset]]
            if not fragment_length - 1 <= length <= fragment_length:  # one pad byte
                raise InputRejected(
                    "pixel data is malformed: its extended offset table "
                    "lengths do not match the fragments"
                )
            frames.append([(position, length)])
        return frames
    if fragments.basic_offsets:
        _check_offset_table(fragments.basic_offsets, where)
        starts = [where[offset] for offset in fragments.basic_offsets] + [len(pieces)]
        return [pieces[start:stop] for start, stop in zip(starts, starts[1:])]
    if len(pieces) == header.n_frames or header.transfer_syntax_uid == RLELossless:
        return [[piece] for piece in pieces]
    frames, current = [], []
    for piece in pieces:
        current.append(piece)
        if _ends_with_marker(file, *piece):
            frames.append(current)
            current = []
    return frames


def _extended_offset_table(ds: Dataset) -> tuple[list[int], list[int]] | None:
    """(offsets, lengths) of (7FE0,0001)/(7FE0,0002); None when there is no table."""
    offsets, lengths = ds.get("ExtendedOffsetTable"), ds.get("ExtendedOffsetTableLengths")
    if not offsets:
        return None
    if not lengths or len(offsets) % 8 or len(offsets) != len(lengths):
        raise InputRejected(
            "pixel data is malformed: its extended offset table and its lengths do not match"
        )
    count = len(offsets) // 8
    return list(struct.unpack(f"<{count}Q", offsets)), list(struct.unpack(f"<{count}Q", lengths))


def _check_offset_table(offsets: list[int], item_offsets: dict[int, int]) -> None:
    if any(offset not in item_offsets for offset in offsets):
        raise InputRejected("pixel data is malformed: its offset table does not point at fragments")
    if any(later <= earlier for earlier, later in zip(offsets, offsets[1:])):
        raise InputRejected("pixel data is malformed: its offset table is not in ascending order")


def _ends_with_marker(file: BinaryIO, position: int, length: int) -> bool:
    """Whether a fragment's last 10 bytes hold the JPEG end marker (pydicom's frame rule)."""
    tail = min(length, 10)
    file.seek(position + length - tail)
    return _JPEG_END_MARKER in file.read(tail)


# --------------------------------------------------------------------------- frame headers


class _BadFrame(Exception):
    """A codestream's own header is unreadable; ``what`` completes "frame N ..."."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


def _check_frame_headers(file: BinaryIO, header: UltrasoundHeader, indices: Sequence[int]) -> None:
    """Refuse any of the frames at ``indices`` whose codestream declares another size than
    the DICOM header: height × width × components (JPEG SOF / JPEG-LS SOF55 / JPEG 2000
    SIZ), or RLE segments (samples × bytes per sample); also JPEG-family frames without
    their end marker (decoders fill a truncated frame with grey instead of failing). Reads
    at most 1 MiB and the last 10 bytes of each frame."""
    family = _codec_family(header.transfer_syntax_uid)
    for index in sorted(set(indices)):
        pieces = header.frame_fragments[index]
        length = sum(n for _, n in pieces)
        try:
            if family == "rle":
                _check_rle_header(
                    _read_pieces(file, pieces, _RLE_HEADER_BYTES), length, header, index
                )
                continue
            if not _ends_with_marker(file, *pieces[-1]):
                raise _BadFrame("is truncated (no end-of-image marker)")
            rows, columns, components, tiles = _frame_size(file, pieces, length, family)
        except _BadFrame as bad:
            raise InputRejected(f"decoding failed: frame {index} {bad.what}") from None
        except (struct.error, IndexError):  # a header cut short
            raise InputRejected(
                f"decoding failed: frame {index} has a truncated frame header"
            ) from None
        if rows == 0 or columns == 0:
            # JPEG may give the height after the first scan (DNL marker), JPEG-LS the size in
            # an LSE segment: the size is then unknown until decoding, which is what this
            # check exists to avoid (libjpeg-turbo refuses DNL as well).
            raise InputRejected(
                f"unsupported frame: frame {index} declares a zero height or "
                "width (its size is only known once decoded)"
            )
        if (rows, columns) != (header.rows, header.columns):
            raise InputRejected(
                f"frame header does not match the DICOM header: frame {index} "
                f"is {columns}x{rows} pixels, the header says "
                f"{header.columns}x{header.rows}"
            )
        if components != header.samples_per_pixel:
            raise InputRejected(
                f"frame header does not match the DICOM header: frame {index} "
                f"has {components} components, the header says "
                f"{header.samples_per_pixel} samples per pixel"
            )
        if tiles > MAX_J2K_TILES:
            raise InputRejected(
                f"unsupported frame: frame {index} has {tiles} JPEG 2000 "
                f"tiles (limit {MAX_J2K_TILES})"
            )


def _frame_size(
    file: BinaryIO, pieces: Sequence[tuple[int, int]], length: int, family: str
) -> tuple[int, int, int, int]:
    """(height, width, components, tiles) of a JPEG-family frame of ``length`` bytes."""
    for limit in _FRAME_HEADER_PREFIXES:
        prefix = _read_pieces(file, pieces, limit)
        try:
            return _jpeg_frame_size(prefix) if family == "jpeg" else _j2k_frame_size(prefix)
        except (_BadFrame, struct.error, IndexError):
            if len(prefix) >= length or limit == _FRAME_HEADER_PREFIXES[-1]:
                raise
    raise AssertionError("unreachable")


def _read_pieces(file: BinaryIO, pieces: Sequence[tuple[int, int]], limit: int) -> bytes:
    """The first ``limit`` bytes of a frame's fragments, joined."""
    parts, left = [], limit
    for position, length in pieces:
        if left <= 0:
            break
        file.seek(position)
        parts.append(file.read(min(length, left)))
        left -= len(parts[-1])
    return b"".join(parts)


def _jpeg_frame_size(codestream: bytes) -> tuple[int, int, int, int]:
    """(height, width, components, 1 tile) from the first size-declaring marker segment of
    a JPEG or JPEG-LS codestream, walking the marker segments from SOI; the scan data is
    never reached (the frame header must precede the first SOS)."""
    if codestream[:2] != b"\xff\xd8":
        raise _BadFrame("is not a JPEG codestream (no start-of-image marker)")
    position = 2
    while True:
        if position >= len(codestream):
            raise _BadFrame("has no JPEG frame header")
        if codestream[position] != 0xFF:
            raise _BadFrame("has a malformed JPEG marker segment")
        while position < len(codestream) and codestream[position] == 0xFF:  # fill bytes
            position += 1
        marker = codestream[position]
        position += 1
        if marker in _JPEG_STANDALONE_MARKERS:
            continue
        if marker in (_JPEG_SOI, _JPEG_EOI, _JPEG_SOS):
            raise _BadFrame("has no JPEG frame header before its image data")
        (length,) = struct.unpack_from(">H", codestream, position)
        if marker in _JPEG_SIZE_MARKERS:
            if length < 8:
                raise _BadFrame("has a malformed JPEG frame header")
            height, width, components = struct.unpack_from(">HHB", codestream, position + 3)
            return height, width, components, 1
        if length < 2:
            raise _BadFrame("has a malformed JPEG marker segment")
        position += length


def _j2k_frame_size(codestream: bytes) -> tuple[int, int, int, int]:
    """(height, width, components, tiles) from a JPEG 2000 codestream's SIZ segment (a
    bare codestream, or the ``jp2c`` box of a JP2 file)."""
    start = _jp2_codestream_start(codestream) if codestream.startswith(_JP2_SIGNATURE) else 0
    if codestream[start : start + 4] != _J2K_SOC_SIZ:
        raise _BadFrame("is not a JPEG 2000 codestream (no SOC and SIZ markers)")
    (
        _,
        _,
        x_size,
        y_size,
        x_offset,
        y_offset,
        tile_width,
        tile_height,
        tile_x,
        tile_y,
        components,
    ) = struct.unpack_from(">HHIIIIIIIIH", codestream, start + 4)
    if (
        x_offset >= x_size
        or y_offset >= y_size
        or not tile_width
        or not tile_height
        or tile_x > x_offset
        or tile_y > y_offset
    ):
        raise _BadFrame("has a malformed JPEG 2000 image size (SIZ)")
    tiles = (-(-(x_size - tile_x) // tile_width)) * (-(-(y_size - tile_y) // tile_height))
    return y_size - y_offset, x_size - x_offset, components, tiles


def _jp2_codestream_start(data: bytes) -> int:
    """Offset of the codestream in a JP2 file: the value of its ``jp2c`` box."""
    position = 0
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        header = 8
        if length == 1:  # a 64-bit length follows
            (length,) = struct.unpack_from(">Q", data, position + 8)
            header = 16
        if kind == b"jp2c":
            return position + header
        if length < header:  # 0 (to the end) on any box but jp2c, or malformed
            break
        position += length
    raise _BadFrame("is not a JPEG 2000 codestream (no codestream box)")


def _check_rle_header(prefix: bytes, length: int, header: UltrasoundHeader, index: int) -> None:
    """The 64-byte RLE header (PS3.5 G.5): one segment per sample byte, offsets ascending
    from 64 inside the frame, no segment longer than its byte plane allows (pydicom's
    decoder grows a segment without bound: up to 64× its encoded length)."""
    if len(prefix) < _RLE_HEADER_BYTES:
        raise _BadFrame("has a truncated RLE header")
    n_segments, *offsets = struct.unpack_from("<16L", prefix)
    expected = header.samples_per_pixel * header.bits_allocated // 8
    if n_segments != expected:
        raise InputRejected(
            f"frame header does not match the DICOM header: frame {index} has "
            f"{n_segments} RLE segments, the header implies {expected}"
        )
    bounds = offsets[:n_segments] + [length]
    if bounds[0] < _RLE_HEADER_BYTES or any(b <= a for a, b in zip(bounds, bounds[1:])):
        raise _BadFrame("has malformed RLE segment offsets")
    plane = header.rows * header.columns  # one byte per pixel per segment
    # Worst-case RLE: a literal run of 128 bytes costs 129; + a pad byte and a run header.
    if any(b - a > plane * 129 // 128 + 2 for a, b in zip(bounds, bounds[1:])):
        raise _BadFrame("has an RLE segment longer than its decoded size allows")


# --------------------------------------------------------------------------- frames


def read_frames(
    path: str | os.PathLike, indices: Sequence[int], header: UltrasoundHeader | None = None
) -> np.ndarray:
    """Decode only the frames at ``indices`` (0-based, any order, repeats allowed) as RGB.

    Compressed frames are decoded only once their own frame headers match ``header``
    (see :func:`_check_frame_headers`). Colour conversion to RGB uint8, per photometric
    interpretation:

    * RGB as stored; YBR_FULL / YBR_FULL_422 (e.g. JPEG baseline) through pydicom's
      YCbCr→RGB (ISO/IEC 10918-5 coefficients); YBR_RCT / YBR_ICT (JPEG 2000) are returned
      as RGB by the decoder.
    * PALETTE COLOR through the file's red/green/blue lookup tables; 16-bit table entries
      are scaled to 8 bits by keeping the high byte (tables whose entries never exceed 255
      are taken as 8-bit).
    * MONOCHROME2 repeated to 3 channels; MONOCHROME1 inverted (255 − v) first.
    * More than 8 stored bits (e.g. 16-bit samples): scaled linearly from the *declared*
      range ``0 .. 2**BitsStored − 1`` to 0–255 (rounded), signed data shifted up by
      ``2**(BitsStored − 1)`` first. The declared range, not the frames' observed range,
      so a frame's pixels do not depend on which other frames were decoded.

    Args:
        path: the DICOM file.
        indices: frame indices to decode, each in ``0 .. n_frames − 1``.
        header: the file's :func:`read_ultrasound_header` result; read when not given.

    Returns:
        (K, H, W, 3) uint8 RGB, K = ``len(indices)``, in the order of ``indices``.

    Raises:
        InputRejected: the header is refused, a frame header disagrees with it, or
            decoding fails.
        IndexError: an index is outside the clip (a caller's bug, not the file's).
    """
    header = header if header is not None else read_ultrasound_header(path)
    indices = [int(index) for index in indices]
    if any(not 0 <= index < header.n_frames for index in indices):
        raise IndexError(f"frame indices must lie in 0..{header.n_frames - 1}")
    out = np.empty((len(indices), header.rows, header.columns, 3), np.uint8)
    pixel_module = Dataset()  # iter_pixels fills it with group 0028 (the palette tables)
    palette = None
    if UID(header.transfer_syntax_uid).is_encapsulated and header.frame_fragments is None:
        header = read_ultrasound_header(path)  # a header built by hand: locate the frames
    with open_regular(path) as file:
        if header.frame_fragments is not None:
            _check_frame_headers(file, header, indices)
        done = 0  # frames decoded: indices[done] is the one being decoded
        try:
            # closing(): a time limit's exception must not leave the generator to be
            # finalised after the file is closed.
            with closing(iter_pixels(file, ds_out=pixel_module, indices=indices)) as frames:
                for frame in frames:
                    _check_frame_shape(frame, header, indices[done])
                    if header.photometric == "PALETTE COLOR":
                        palette = (
                            _palette_table(pixel_module, frame.dtype)
                            if palette is None
                            else palette
                        )
                        out[done] = palette[frame]
                    else:
                        out[done] = _to_rgb8(frame, header)
                    done += 1
        except InputRejected:
            raise
        except Exception as error:  # any decoder failure is a property of the file
            which = f"frame {indices[done]}" if done < len(indices) else "a frame"
            raise InputRejected(
                f"decoding failed: {which} could not be decoded "
                f"({_uid_name(header.transfer_syntax_uid)}, "
                f"{type(error).__name__})"
            ) from None
    return out


def _check_frame_shape(frame: np.ndarray, header: UltrasoundHeader, index: int) -> None:
    expected = (header.rows, header.columns) + ((3,) if header.samples_per_pixel == 3 else ())
    if frame.shape != expected:
        shape = "x".join(str(n) for n in frame.shape)
        raise InputRejected(
            f"decoding failed: frame {index} decoded to {shape}, the header "
            f"says {'x'.join(str(n) for n in expected)}"
        )


def _palette_table(pixel_module: Dataset, dtype: np.dtype) -> np.ndarray:
    """(N, 3) uint8 RGB for every possible stored value (N = 256 or 65536).

    Built once per file with pydicom's own lookup (its clipping of unmapped values
    included). 16-bit table entries are scaled to 8 bits by keeping the high byte; tables
    declared 16-bit whose entries never exceed 255 (written that way by some devices and
    converters) are taken as 8-bit values.
    """
    missing = [
        colour
        for colour in ("Red", "Green", "Blue")
        if f"{colour}PaletteColorLookupTableDescriptor" not in pixel_module
    ]
    if missing:
        raise InputRejected(f"palette colour lookup table missing: {', '.join(missing)} descriptor")
    stored_values = np.arange(np.iinfo(dtype).max + 1, dtype=dtype)
    try:
        rgb = apply_color_lut(stored_values, pixel_module)
    except Exception as error:
        raise InputRejected(
            f"palette colour lookup table invalid ({type(error).__name__})"
        ) from None
    return (rgb >> 8 if rgb.max() > 255 else rgb).astype(np.uint8)


def _to_rgb8(frame: np.ndarray, header: UltrasoundHeader) -> np.ndarray:
    """A decoded non-palette frame, (H, W) or (H, W, 3) in stored units → uint8, RGB or
    (H, W, 3)-broadcastable grey."""
    frame = _scale_to_8_bits(frame, header.bits_stored, header.pixel_representation)
    if header.photometric == "MONOCHROME1":
        frame = 255 - frame
    return frame[:, :, None] if frame.ndim == 2 else frame


def _scale_to_8_bits(frame: np.ndarray, bits_stored: int, signed: int) -> np.ndarray:
    """Stored values → uint8 over the declared range ``0 .. 2**bits_stored − 1``."""
    if frame.dtype == np.uint8 and bits_stored == 8:
        return frame
    values = frame.astype(np.int64)
    if signed:
        values += 1 << (bits_stored - 1)
    top = (1 << bits_stored) - 1
    values = np.clip(values, 0, top)
    return ((values * 255 + top // 2) // top).astype(np.uint8)
