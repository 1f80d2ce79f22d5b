"""Reading ultrasound DICOM clips: validate the header, decode only the frames asked for.

This module knows DICOM and nothing about echo preprocessing. It answers two questions:

* :func:`read_ultrasound_header` — is this file a multi-frame ultrasound clip we can decode,
  and what are its dimensions? It reads the header without the pixel data and checks the
  declared size against the bytes actually present *before* anything is allocated.
* :func:`read_frames` — the requested frames as RGB uint8, decoding only those frames
  (for compressed syntaxes each frame is its own set of fragments; for native syntaxes
  only that frame's bytes are read from disk).

Everything wrong with a file raises :class:`~echo2ecg.errors.InputRejected`. Reasons never
contain patient identifiers, dates or UIDs: only attribute names, SOP class and transfer
syntax *names*, sizes and counts.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO, Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, get_decoder, iter_pixels
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, RLELossless

from .errors import InputRejected

DEFAULT_MAX_BYTES = 8 * 1024**3
"""Default limit on a clip's declared decoded size (all frames, stored samples): 8 GiB."""

US_MULTIFRAME_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame Image Storage",
    "1.2.840.10008.5.1.4.1.1.3": "Ultrasound Multi-frame Image Storage (Retired)",
}
MIN_SIDE, MAX_SIDE = 16, 4096  # pixels
MAX_FRAMES = 10_000

# Samples per pixel each supported Photometric Interpretation must have. YBR_RCT/YBR_ICT
# only occur in JPEG 2000, whose decoder returns RGB.
SAMPLES_FOR_PHOTOMETRIC = {
    "MONOCHROME1": 1, "MONOCHROME2": 1, "PALETTE COLOR": 1,
    "RGB": 3, "YBR_FULL": 3, "YBR_FULL_422": 3, "YBR_RCT": 3, "YBR_ICT": 3,
}

# Only these header elements are parsed (everything else is skipped unread), so no patient
# attribute is ever decoded.
_HEADER_TAGS = [
    "SOPClassUID", "Modality", "NumberOfFrames", "Rows", "Columns", "SamplesPerPixel",
    "BitsAllocated", "BitsStored", "PixelRepresentation", "PhotometricInterpretation",
    "SequenceOfUltrasoundRegions", "ExtendedOffsetTable",
]
_PIXEL_DATA_TAG = 0x7FE00010
_ITEM_TAG, _SEQUENCE_END_TAG = 0xFFFEE000, 0xFFFEE0DD
_UNDEFINED_LENGTH = 0xFFFFFFFF
_JPEG_END_MARKER = b"\xff\xd9"  # EOI (JPEG, JPEG-LS) and EOC (JPEG 2000) share it
_SPATIAL_FORMAT_2D = 1  # Region Spatial Format (0018,6012): 1 = 2D (tissue or colour flow)


@dataclass(frozen=True)
class UltrasoundHeader:
    """What :func:`read_frames` and the echo recipe need to know about a clip.

    ``region`` is the scan area from the Sequence of Ultrasound Regions (0018,6011): the
    bounding box of the union of all 2D regions, in pixels, half-open
    ``(x0, y0, x1, y1)`` (``x1``/``y1`` one past the last column/row, so
    ``frame[y0:y1, x0:x1]`` is the region), clipped to the image; ``None`` when the file
    declares no usable 2D region.
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

    @property
    def frame_bytes(self) -> int:
        """Bytes of one stored frame in a native (uncompressed) syntax."""
        n_bytes = self.rows * self.columns * self.samples_per_pixel * self.bits_allocated // 8
        # Native YBR_FULL_422 stores two chroma samples per two pixels: 2 samples per pixel.
        return n_bytes * 2 // 3 if self.photometric == "YBR_FULL_422" else n_bytes

    @property
    def decoded_bytes(self) -> int:
        """Bytes of the whole clip once decoded (all frames, stored samples)."""
        return (self.n_frames * self.rows * self.columns * self.samples_per_pixel
                * self.bits_allocated // 8)


# --------------------------------------------------------------------------- header

def read_ultrasound_header(path: str | os.PathLike,
                           max_bytes: int = DEFAULT_MAX_BYTES) -> UltrasoundHeader:
    """Read and validate a clip's header without reading its pixel data.

    Checks, in order, each failure raising :class:`InputRejected` with its own reason: a
    readable DICOM file; a multi-frame ultrasound clip (Ultrasound Multi-frame Image
    Storage, current or retired, or Modality US with more than one frame); a transfer
    syntax with an installed decoder; pixel data present; supported photometric
    interpretation, samples and bit depth; a plausible size (sides 16–4096 pixels, 1–10,000
    frames, declared decoded size at most ``max_bytes``); and that the pixel data matches
    the declared frame count (native: exactly that many frames of bytes, one pad byte
    allowed; encapsulated: at least that many frames recoverable from the offset tables or
    fragments).

    Args:
        path: the DICOM file.
        max_bytes: limit on the declared decoded size, bytes (default 8 GiB).
    """
    with open(path, "rb") as file:
        ds = _read_header_dataset(file)
        _check_is_ultrasound_clip(ds)
        transfer_syntax = UID(ds.file_meta.get("TransferSyntaxUID", ""))
        _check_transfer_syntax(transfer_syntax)
        pixel_length = _read_pixel_data_element_header(file, transfer_syntax)
        header = _header_from_dataset(ds, transfer_syntax)
        _check_plausible_size(header, max_bytes)
        _check_frame_count(file, header, ds, pixel_length)
    return header


def _read_header_dataset(file: BinaryIO) -> Dataset:
    """The header elements this module uses; ``file`` is left at the pixel data element."""
    try:
        return pydicom.dcmread(file, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
    except InvalidDicomError:
        raise InputRejected("not a DICOM file") from None
    except Exception as error:  # pydicom raises many types on malformed headers
        raise InputRejected(f"not a readable DICOM file ({type(error).__name__} "
                            "while reading the header)") from None


def _check_is_ultrasound_clip(ds: Dataset) -> None:
    sop_class = str(ds.get("SOPClassUID", ""))
    n_frames = _declared_frames(ds)
    if sop_class in US_MULTIFRAME_SOP_CLASSES:
        return
    if ds.get("Modality") == "US" and n_frames > 1:
        return
    frames = "1 frame" if n_frames == 1 else f"{n_frames} frames"
    raise InputRejected(f"not a multi-frame ultrasound clip (SOP class {_uid_name(sop_class)}, "
                        f"modality {ds.get('Modality') or 'missing'}, {frames})")


def _declared_frames(ds: Dataset) -> int:
    """Number of Frames (0028,0008); 1 when absent, as the standard says."""
    value = ds.get("NumberOfFrames")
    if value in (None, ""):
        return 1
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputRejected("implausible size: Number of Frames is not a number") from None


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
    # Deflated files are compressed as a whole, so frames cannot be read one at a time.
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        raise InputRejected(f"unsupported transfer syntax {name}")
    try:
        decoder = get_decoder(transfer_syntax)
    except NotImplementedError:
        raise InputRejected(f"unsupported transfer syntax {name}") from None
    if not decoder.is_available:
        raise InputRejected(f"unsupported transfer syntax {name} (no decoder installed)")


def _header_from_dataset(ds: Dataset, transfer_syntax: UID) -> UltrasoundHeader:
    missing = [key for key in ("Rows", "Columns", "BitsAllocated", "PhotometricInterpretation")
               if ds.get(key) in (None, "")]
    if missing:
        raise InputRejected(f"incomplete image header: {', '.join(missing)} missing")
    photometric = str(ds.PhotometricInterpretation).strip()
    samples = int(ds.get("SamplesPerPixel") or 1)
    bits_allocated = int(ds.BitsAllocated)
    if photometric not in SAMPLES_FOR_PHOTOMETRIC:
        raise InputRejected(f"unsupported photometric interpretation {photometric[:20]}")
    if samples != SAMPLES_FOR_PHOTOMETRIC[photometric]:
        raise InputRejected(f"unsupported image: {photometric} with {samples} samples per pixel")
    if bits_allocated not in (8, 16):
        raise InputRejected(f"unsupported bit depth: {bits_allocated} bits allocated")
    rows, columns = int(ds.Rows), int(ds.Columns)
    return UltrasoundHeader(
        n_frames=_declared_frames(ds), rows=rows, columns=columns, samples_per_pixel=samples,
        bits_allocated=bits_allocated, bits_stored=int(ds.get("BitsStored") or bits_allocated),
        pixel_representation=int(ds.get("PixelRepresentation") or 0), photometric=photometric,
        transfer_syntax_uid=str(transfer_syntax), region=_scan_region(ds, rows, columns))


def _scan_region(ds: Dataset, rows: int, columns: int) -> tuple[int, int, int, int] | None:
    """Bounding box of the 2D regions of (0018,6011), half-open, clipped; None if none."""
    boxes = []
    for item in ds.get("SequenceOfUltrasoundRegions", []):
        if item.get("RegionSpatialFormat") != _SPATIAL_FORMAT_2D:
            continue
        corners = [item.get(key) for key in ("RegionLocationMinX0", "RegionLocationMinY0",
                                             "RegionLocationMaxX1", "RegionLocationMaxY1")]
        if any(value is None for value in corners):
            continue
        x0, y0, x1, y1 = (int(value) for value in corners)
        boxes.append((max(x0, 0), max(y0, 0), min(x1 + 1, columns), min(y1 + 1, rows)))
    boxes = [box for box in boxes if box[0] < box[2] and box[1] < box[3]]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def _check_plausible_size(header: UltrasoundHeader, max_bytes: int) -> None:
    if not (MIN_SIDE <= header.rows <= MAX_SIDE and MIN_SIDE <= header.columns <= MAX_SIDE):
        raise InputRejected(f"implausible size: {header.columns}x{header.rows} pixels")
    if not 1 <= header.n_frames <= MAX_FRAMES:
        raise InputRejected(f"implausible size: {header.n_frames} frames")
    if header.decoded_bytes > max_bytes:
        raise InputRejected(f"implausible size: {header.decoded_bytes / 1024**3:.1f} GiB once "
                            f"decoded (limit {max_bytes / 1024**3:.1f} GiB)")


def _check_frame_count(file: BinaryIO, header: UltrasoundHeader, ds: Dataset,
                       pixel_length: int) -> None:
    """Native pixel data must be exactly ``n_frames`` frames long (plus one pad byte at
    most); encapsulated data must hold at least ``n_frames`` recoverable frames. ``file``
    is at the start of the pixel data value."""
    available = os.fstat(file.fileno()).st_size - file.tell()
    encapsulated = UID(header.transfer_syntax_uid).is_encapsulated
    if encapsulated != (pixel_length == _UNDEFINED_LENGTH):
        raise InputRejected("pixel data is malformed: its encoding does not match the "
                            "transfer syntax")
    if encapsulated:
        frames_in_data = _frames_in_fragments(file, _read_fragment_table(file, available),
                                              header, ds)
        mismatch = frames_in_data < header.n_frames
    else:
        if pixel_length > available:
            raise InputRejected(f"pixel data is truncated: header declares {pixel_length} "
                                f"bytes, the file holds {available}")
        expected = header.frame_bytes * header.n_frames
        frames_in_data = pixel_length / header.frame_bytes
        mismatch = pixel_length not in (expected, expected + 1)  # one pad byte: even length
    if mismatch:
        holds = (f"{int(frames_in_data)}" if float(frames_in_data).is_integer()
                 else f"{frames_in_data:.2f}")
        raise InputRejected(f"frame count does not match the data: header says "
                            f"{header.n_frames} frames, data holds {holds}")


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
        raise InputRejected("pixel data is malformed: basic offset table length is not a "
                            "multiple of 4")
    return list(struct.unpack(f"<{len(value) // 4}L", value))


def _frames_in_fragments(file: BinaryIO, fragments: _Fragments, header: UltrasoundHeader,
                         ds: Dataset) -> int:
    """Frames pydicom can recover, following its own rules: the extended offset table,
    else the basic offset table, else one fragment per frame, else (JPEG family) one frame
    per fragment that ends with an EOI/EOC marker."""
    extended = ds.get("ExtendedOffsetTable")
    table = (list(struct.unpack(f"<{len(extended) // 8}Q", extended)) if extended
             else fragments.basic_offsets)
    if table:
        item_offsets = set(fragments.item_offsets)
        if any(offset not in item_offsets for offset in table):
            raise InputRejected("pixel data is malformed: its offset table does not point "
                                "at fragments")
        return len(table)
    n_fragments = len(fragments.lengths)
    if n_fragments == header.n_frames or header.transfer_syntax_uid == RLELossless:
        return n_fragments
    return sum(_ends_with_marker(file, position, length)
               for position, length in zip(fragments.value_positions, fragments.lengths))


def _ends_with_marker(file: BinaryIO, position: int, length: int) -> bool:
    """Whether a fragment's last 10 bytes hold the JPEG end marker (pydicom's frame rule)."""
    tail = min(length, 10)
    file.seek(position + length - tail)
    return _JPEG_END_MARKER in file.read(tail)


# --------------------------------------------------------------------------- frames

def read_frames(path: str | os.PathLike, indices: Sequence[int],
                header: UltrasoundHeader | None = None) -> np.ndarray:
    """Decode only the frames at ``indices`` (0-based, any order, repeats allowed) as RGB.

    Colour conversion to RGB uint8, per photometric interpretation:

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
        InputRejected: the header is refused, or decoding fails.
        IndexError: an index is outside the clip (a caller's bug, not the file's).
    """
    header = header if header is not None else read_ultrasound_header(path)
    indices = [int(index) for index in indices]
    if any(not 0 <= index < header.n_frames for index in indices):
        raise IndexError(f"frame indices must lie in 0..{header.n_frames - 1}")
    out = np.empty((len(indices), header.rows, header.columns, 3), np.uint8)
    pixel_module = Dataset()  # iter_pixels fills it with group 0028 (the palette tables)
    palette = None
    try:
        for k, frame in enumerate(iter_pixels(path, ds_out=pixel_module, indices=indices)):
            _check_frame_shape(frame, header)
            if header.photometric == "PALETTE COLOR":
                palette = _palette_table(pixel_module, frame.dtype) if palette is None else palette
                out[k] = palette[frame]
            else:
                out[k] = _to_rgb8(frame, header)
    except InputRejected:
        raise
    except Exception as error:  # any decoder failure is a property of the file
        raise InputRejected(f"decoding failed: {_short_message(error)}") from None
    return out


def _check_frame_shape(frame: np.ndarray, header: UltrasoundHeader) -> None:
    expected = (header.rows, header.columns) + ((3,) if header.samples_per_pixel == 3 else ())
    if frame.shape != expected:
        raise InputRejected(f"decoding failed: a frame is {frame.shape}, the header says "
                            f"{expected}")


def _palette_table(pixel_module: Dataset, dtype: np.dtype) -> np.ndarray:
    """(N, 3) uint8 RGB for every possible stored value (N = 256 or 65536).

    Built once per file with pydicom's own lookup (its clipping of unmapped values
    included). 16-bit table entries are scaled to 8 bits by keeping the high byte; tables
    declared 16-bit whose entries never exceed 255 (written that way by some devices and
    converters) are taken as 8-bit values.
    """
    stored_values = np.arange(np.iinfo(dtype).max + 1, dtype=dtype)
    try:
        rgb = apply_color_lut(stored_values, pixel_module)
    except Exception as error:
        raise InputRejected(f"palette colour lookup table missing or invalid: "
                            f"{_short_message(error)}") from None
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


def _short_message(error: Exception) -> str:
    """An error's type and first lines, shortened (decoder messages hold no patient data)."""
    lines = str(error).strip().splitlines()
    first = " ".join(line.strip() for line in lines[:3]) if lines else ""
    return f"{type(error).__name__}: {first[:200]}" if first else type(error).__name__
