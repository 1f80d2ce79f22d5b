"""The EchoPrime clip recipe (docs/method.md §4) on arrays: mask, crop and scale, sample, pad.

One echo view (a DICOM clip of F frames, H×W) becomes a (16, 224, 224, 3) uint8 RGB clip,
unnormalised (normalisation happens when embedding):

1. decode only the frames that are used: 0, 2, …, 30 (those that exist) plus the last;
2. ultrasound-region mask from those frames (removes text, annotations, the ECG strip);
3. every used frame × mask; centre-crop to a square, cut 10 % per edge, bicubic 224×224;
4. zero frames appended when the clip has fewer than 32 frames.

Gray levels for the mask are OpenCV's ``COLOR_RGB2GRAY``
(0.299 R + 0.587 G + 0.114 B, rounded), on the 0–255 scale.

A clip is never stored black: a mask under ``MIN_MASK_FRACTION`` of the frame (frames that
do not move, e.g. a still image saved as a clip or an offset table naming one fragment for
every frame) falls back to the DICOM scan region or is refused, and a clip whose used
frames are one constant value is refused.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from echo2ecg.data.dicom import DEFAULT_MAX_BYTES, read_frames, read_ultrasound_header
from echo2ecg.data.errors import InputRejected

MORPH_KERNEL = np.ones((3, 3), np.uint8)
MORPH_ITERATIONS = 10
CORNER = 20  # pixels: EchoPrime zeroes this top-left square (a stray dot on some machines)
_FLOOD_VALUE = 100  # any value other than 0/1 marks what the flood fill reached
# Smallest plausible scan sector, as a fraction of the frame: echo sectors cover roughly a
# fifth to a half of it; what moves in less than 5 % is a cursor, a clock or noise.
MIN_MASK_FRACTION = 0.05


def clip_frame_indices(n_frames: int, n_out: int = 16, stride: int = 2) -> list[int]:
    """Frames a clip uses: 0, stride, …, (n_out − 1)·stride, those below ``n_frames``."""
    return list(range(0, min(n_frames, n_out * stride), stride))


def frames_to_decode(n_frames: int, n_out: int = 16, stride: int = 2) -> list[int]:
    """The frames :func:`extract_clip` decodes: the used frames plus the last frame.

    The mask needs the first and last frames (static overlays never change between
    them); its union of non-black pixels is taken over these frames too, so nothing else
    is ever decoded. Sorted, without repeats; the first entry is frame 0 and the last
    entry is frame ``n_frames − 1``.
    """
    return sorted(set(clip_frame_indices(n_frames, n_out, stride)) | {n_frames - 1})


def to_gray(frames: np.ndarray) -> np.ndarray:
    """(K, H, W, 3) uint8 RGB → (K, H, W) uint8 gray (OpenCV RGB2GRAY, one call)."""
    k, h, w, _ = frames.shape
    stacked = np.ascontiguousarray(frames).reshape(k * h, w, 3)
    return cv2.cvtColor(stacked, cv2.COLOR_RGB2GRAY).reshape(k, h, w)


def ultrasound_mask(
    gray: np.ndarray, region: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """The scan sector of a clip, as EchoPrime finds it.

    Args:
        gray: (K, H, W) uint8 gray frames, K ≥ 1; ``gray[0]`` must be the clip's first
            frame and ``gray[-1]`` its last. In :func:`extract_clip` these are the frames
            of :func:`frames_to_decode` (the used frames plus the last), not every frame
            of the clip: EchoPrime's union runs over all frames, ours over those decoded.
        region: optional scan-region box ``(x0, y0, x1, y1)``, half-open pixels, from the
            DICOM Sequence of Ultrasound Regions; the mask is limited to it.

    Returns:
        (H, W) uint8 mask, 1 inside the ultrasound sector, 0 elsewhere.

    Steps: union of (gray > 0) over frames; erode 3×3 ×10 (thin moving lines such as the
    ECG trace vanish); AND (first ≠ last) (static text and icons vanish); zero the
    top-left 20×20; dilate 3×3 ×10 (grow back); flood-fill from (0, 0) and keep what is
    not reached (fills holes); draw the filled convex hull of each outer contour;
    flood-fill again; AND the region box when given. (EchoPrime draws each hull as a
    3-pixel-thick outline and lets the second flood fill fill it, so its mask reaches one
    pixel further at the hull's edge.)
    """
    seen = (gray > 0).any(axis=0).astype(np.uint8)
    seen = cv2.erode(seen, MORPH_KERNEL, iterations=MORPH_ITERATIONS)
    changing = (gray[0] != gray[-1]).astype(np.uint8)
    mask = seen & changing  # both are {0, 1}: binarised
    mask[:CORNER, :CORNER] = 0
    mask = cv2.dilate(mask, MORPH_KERNEL, iterations=MORPH_ITERATIONS)
    mask = _fill_from_corner(mask)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    for contour in contours:
        cv2.drawContours(mask, [cv2.convexHull(contour)], -1, 1, thickness=cv2.FILLED)
    mask = _fill_from_corner(mask)
    if region is not None:
        x0, y0, x1, y1 = region
        inside = np.zeros_like(mask)
        inside[y0:y1, x0:x1] = 1
        mask &= inside
    return mask


def scan_sector(
    gray: np.ndarray,
    region: tuple[int, int, int, int] | None = None,
    notes: list[str] | None = None,
) -> np.ndarray:
    """:func:`ultrasound_mask`, refusing a mask too small to be a scan sector.

    Args:
        gray: (K, H, W) uint8 gray frames, as for :func:`ultrasound_mask`.
        region: the DICOM scan-region box ``(x0, y0, x1, y1)``, half-open pixels, or None.
        notes: when given, a sentence is appended to it if the region replaced the mask.

    Returns:
        (H, W) uint8 {0, 1} mask covering at least ``MIN_MASK_FRACTION`` of the frame: the
        moving sector, else (it moves in less than that, e.g. all frames identical) the
        region box itself.

    Raises:
        InputRejected: the moving sector is too small and there is no usable region.
    """
    mask = ultrasound_mask(gray, region)
    fraction = float(mask.mean())
    if fraction >= MIN_MASK_FRACTION:
        return mask
    why = (
        "frames do not move"
        if (gray == gray[0]).all()
        else f"the moving area is {100 * fraction:.1f} % of the frame"
    )
    if region is not None:
        x0, y0, x1, y1 = region
        box = np.zeros_like(mask)
        box[y0:y1, x0:x1] = 1
        if box.mean() >= MIN_MASK_FRACTION:
            if notes is not None:
                notes.append(f"scan sector from the ultrasound regions: {why}")
            return box
    if why == "frames do not move":
        raise InputRejected("no moving scan sector: all frames identical")
    raise InputRejected(f"no moving scan sector: {why} (minimum {100 * MIN_MASK_FRACTION:g} %)")


def _fill_from_corner(mask: np.ndarray) -> np.ndarray:
    """(H, W) {0, 1} → 1 where a 4-connected flood fill from (0, 0) does not reach."""
    filled = mask.copy()
    cv2.floodFill(filled, None, (0, 0), _FLOOD_VALUE)
    return (filled != _FLOOD_VALUE).astype(np.uint8)


def crop_and_resize(frames: np.ndarray, size: int = 224, zoom: float = 0.1) -> np.ndarray:
    """EchoPrime's crop and scale of each frame.

    Args:
        frames: (K, H, W, C) uint8.
        size: output side, pixels.
        zoom: fraction of each side cut from each of its edges after squaring.

    Returns:
        (K, size, size, C) uint8: centre-cropped to a square by cutting
        ``round((long − short) / 2)`` pixels from each end of the long axis (Python's
        round-half-even, as EchoPrime: an odd difference leaves the long side one pixel
        longer or shorter than the short one), then
        ``int(side · zoom)`` pixels from each edge, then resized with bicubic
        interpolation (``cv2.INTER_CUBIC``).
    """
    k, h, w, c = frames.shape
    cut = round(abs(w - h) / 2)
    if w > h:
        frames = frames[:, :, cut : w - cut]
    elif h > w:
        frames = frames[:, cut : h - cut]
    h, w = frames.shape[1:3]
    cut_y, cut_x = int(h * zoom), int(w * zoom)
    frames = frames[:, cut_y : h - cut_y, cut_x : w - cut_x]
    out = np.empty((k, size, size, c), np.uint8)
    # One call per frame: resizing all frames as one many-channel image takes OpenCV's
    # slower generic path, which also rounds differently from the 3-channel one.
    for i, frame in enumerate(frames):
        out[i] = cv2.resize(frame, (size, size), interpolation=cv2.INTER_CUBIC).reshape(
            size, size, c
        )
    return out


def extract_clip(
    path: str | os.PathLike,
    frames: int = 16,
    stride: int = 2,
    size: int = 224,
    zoom: float = 0.1,
    max_decoded_gib: float = DEFAULT_MAX_BYTES / 2**30,
    notes: list[str] | None = None,
) -> np.ndarray:
    """One DICOM echo view → (frames, size, size, 3) uint8 RGB, unnormalised.

    The keyword arguments are the config's ``echo`` section (EchoPrime's recipe by default).

    Reads the header (refusing bad files with :class:`~echo2ecg.data.errors.InputRejected`),
    decodes only :func:`frames_to_decode`, masks the used frames with
    :func:`scan_sector` (the DICOM scan region as a prior when present, and as the mask
    when nothing moves), crops and resizes them with :func:`crop_and_resize`, and appends
    zero frames up to ``frames`` when the clip is shorter than ``frames · stride`` frames.
    A clip whose used frames come out as one constant value (all black) is refused.

    Args:
        path: the DICOM file.
        frames: frames in the output clip.
        stride: step between used frames, from frame 0.
        size: output side, pixels.
        zoom: fraction of the square's side cut from each edge.
        max_decoded_gib: refuse files whose declared decoded size exceeds this (GiB).
        notes: when given, sentences about how the clip was made are appended to it
            (e.g. "scan sector from the ultrasound regions: frames do not move").
    """
    header = read_ultrasound_header(path, max_bytes=int(max_decoded_gib * 2**30))
    decoded = read_frames(path, frames_to_decode(header.n_frames, frames, stride), header)
    clip = clip_from_decoded(
        decoded, header.n_frames, header.region, frames, stride, size, zoom, notes
    )
    used = clip[: len(clip_frame_indices(header.n_frames, frames, stride))]
    if used.min() == used.max():
        raise InputRejected(f"blank clip: every pixel of every used frame is {int(used.max())}")
    return clip


def clip_from_decoded(
    decoded: np.ndarray,
    n_frames: int,
    region: tuple[int, int, int, int] | None = None,
    n_out: int = 16,
    stride: int = 2,
    size: int = 224,
    zoom: float = 0.1,
    notes: list[str] | None = None,
) -> np.ndarray:
    """The recipe on decoded frames: ``decoded`` (K, H, W, 3) uint8 RGB are the frames
    :func:`frames_to_decode` names for a clip of ``n_frames`` (in that order); ``region``
    the scan-region box or None; ``notes`` as for :func:`scan_sector`.
    → (n_out, size, size, 3) uint8 (see :func:`extract_clip`).
    """
    decoded_indices = frames_to_decode(n_frames, n_out, stride)
    mask = scan_sector(to_gray(decoded), region, notes)
    position = {index: k for k, index in enumerate(decoded_indices)}
    used = decoded[[position[i] for i in clip_frame_indices(n_frames, n_out, stride)]]
    # A contiguous (H, W, 3) mask keeps numpy on its fast inner loop (≈8× a 4-D broadcast).
    used *= np.repeat(mask[:, :, None], 3, axis=2)
    clip = np.zeros((n_out, size, size, 3), np.uint8)
    clip[: len(used)] = crop_and_resize(used, size, zoom)
    return clip


def clip_from_frames(
    frames: np.ndarray,
    region: tuple[int, int, int, int] | None = None,
    n_out: int = 16,
    stride: int = 2,
    size: int = 224,
    zoom: float = 0.1,
) -> np.ndarray:
    """The recipe on a whole clip in memory, (F, H, W, 3) uint8 RGB → (n_out, size, size, 3)."""
    decoded = frames[frames_to_decode(len(frames), n_out, stride)]
    return clip_from_decoded(decoded, len(frames), region, n_out, stride, size, zoom)
