"""The ECG an echo scanner burns into each clip, read back as a single-lead signal.

Scanners draw one ECG lead (lead II) in a strip below the sector, swept left to right with
a small erase bar ahead of the sweep head, so the last frame shows the most recent
``strip width × seconds per pixel`` seconds. :func:`extract_trace` follows the recipe of
the Echo-Enhanced ECG paper (docs/method.md section 9), with the strip and its time scale
taken from the file where it says them:

1. the strip: the Sequence of Ultrasound Regions' region of type ECG trace (000AH) when
   present, else the bottom ``band_fraction`` of the frame;
2. the trace: pixels of the last frame inside HSV bounds (OpenCV's H 0–179, S and V 0–255),
   grouped into 8-connected pieces; pieces at least ``min_piece_fraction`` of the strip
   wide are the trace, smaller ones (labels, specks) are strays unless they are the sweep
   head's first columns after a wrap (:func:`trace_columns`);
3. four quality checks, each a reason of its own when it fails: the trace stays inside the
   strip (``max_clipped_fraction`` of its columns may touch the top or bottom row),
   continuity (no gap wider than ``max_gap_fraction`` of the strip besides the erase bar,
   the gap that moves between two frames),
   few strays (``max_stray_fraction`` of the trace's pixels), coverage (the trace in at
   least ``min_coverage`` of the strip's columns);
4. the signal: each column's mean trace row, up positive, in strip heights (DICOM has no
   unit for voltage, so the amplitude stays relative; the ECG preprocessing z-scores it),
   put in time order at the erase bar and resampled linearly to ``fs``;
5. the time scale: the region's Physical Delta X in seconds; without it, the sweep is
   followed over ``sweep_frames`` frames: the erase bar's movement against the clip's
   frame time gives the pixels per second.

Every failure raises :class:`~echo2ecg.data.errors.InputRejected` with a reason built from
counts and fractions, never from the file's content.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import cv2
import numpy as np

from echo2ecg.data.dicom import UltrasoundHeader, read_frames, read_ultrasound_header
from echo2ecg.data.errors import InputRejected

TRACE_LEAD = "II"  # what scanners draw; no DICOM attribute names the lead
MAX_PIECES_LOOKED_AT = 200  # narrow pieces looked at as the sweep head's first columns


@dataclass(frozen=True)
class TraceSettings:
    """The arguments of :func:`extract_trace` (the config's ``echo_trace`` section).

    The HSV bounds are the Echo-Enhanced ECG paper's for its scanner; the check bounds are
    this project's (the paper names its checks, not their thresholds).
    """

    hsv_lower: tuple[int, int, int] = (64, 97, 113)
    hsv_upper: tuple[int, int, int] = (91, 255, 198)
    band_fraction: float = 0.3
    min_piece_fraction: float = 0.03
    max_clipped_fraction: float = 0.01
    max_gap_fraction: float = 0.02
    max_stray_fraction: float = 0.1
    min_coverage: float = 0.5
    sweep_frames: int = 32
    fs: float = 500.0


@dataclass(frozen=True)
class BurnedInTrace:
    """``signal`` (T,) float32 at ``fs`` Hz in strip heights, oldest sample first, ending
    at the last frame; ``seconds_per_px`` and where it came from (``"region"`` or
    ``"sweep"``); ``strip_from`` ``"region"`` or ``"band"``."""

    signal: np.ndarray
    fs: float
    seconds_per_px: float
    time_scale_from: str
    strip_from: str

    @property
    def duration_s(self) -> float:
        return len(self.signal) / self.fs


@dataclass(frozen=True)
class _Strip:
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0


@dataclass(frozen=True)
class _TraceColumns:
    """The trace in one frame's strip: ``rows`` (W,) mean trace row per column (NaN where
    none), the stray and trace pixel counts, and columns touching the strip's edge."""

    rows: np.ndarray
    n_trace_px: int
    n_stray_px: int
    n_clipped: int
    thickness: int


def strip_box(header: UltrasoundHeader, band_fraction: float = 0.3) -> tuple[tuple, str]:
    """The ECG strip ``(x0, y0, x1, y1)`` (half-open pixels) and where it came from:
    the ECG-trace region, else the bottom ``band_fraction`` of the frame, full width."""
    if header.ecg_region is not None:
        region = header.ecg_region
        return (region.x0, region.y0, region.x1, region.y1), "region"
    top = header.rows - max(2, int(round(band_fraction * header.rows)))
    return (0, top, header.columns, header.rows), "band"


def trace_mask(frame: np.ndarray, lower, upper) -> np.ndarray:
    """(H, W) bool: pixels of an RGB uint8 frame (H, W, 3) inside the HSV bounds."""
    hsv = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2HSV)
    return cv2.inRange(hsv, np.array(lower, np.uint8), np.array(upper, np.uint8)) > 0


def trace_columns(
    mask: np.ndarray,
    min_piece_px: int,
    previous_mask: np.ndarray | None = None,
    previous_trace: np.ndarray | None = None,
) -> _TraceColumns:
    """Split a strip's colour mask (H, W) into trace pieces and strays (see the module
    docstring) and reduce the trace to one mean row per column.

    ``previous_mask`` (H, W) and ``previous_trace`` (W,) bool: the same strip's mask and
    trace columns in an earlier frame. A piece narrower than ``min_piece_px`` is trace too
    when it is the sweep head's first columns after a wrap: beside it a gap that held trace
    then (the erase bar has just passed), and either its box changed by more than half its
    pixels or its columns held trace then too (drawn over the old sweep, perhaps on the
    very same rows). A label or speck is static and held no trace.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    trace = stats[:, cv2.CC_STAT_WIDTH] >= min_piece_px
    trace[0] = False  # label 0 is the background
    small = np.flatnonzero(~trace)[1:]
    # A strip of specks (colour Doppler, noise) is strays whatever moved: not looked at.
    looked_at = previous_mask is not None and previous_trace is not None
    if looked_at and 0 < len(small) <= MAX_PIECES_LOOKED_AT:
        occupied = np.flatnonzero(mask.any(axis=0))
        for label in small:
            left, top, width, height, area = stats[label]
            after = occupied[occupied >= left + width]
            before = occupied[occupied < left]
            gaps = [
                gap
                for gap in (
                    slice(left + width, after[0]) if len(after) else None,
                    slice(before[-1] + 1, left) if len(before) else None,
                )
                if gap is not None and gap.stop > gap.start
            ]
            box = (slice(top, top + height), slice(left, left + width))
            changed = (mask[box] != previous_mask[box]).sum() > 0.5 * area
            over_old_sweep = previous_trace[left : left + width].mean() > 0.5
            erased_beside = any(previous_trace[gap].any() for gap in gaps)
            trace[label] = bool(erased_beside and (changed or over_old_sweep))
    on_trace = np.isin(labels, np.flatnonzero(trace))
    counts = on_trace.sum(axis=0)
    row_sums = (on_trace * np.arange(mask.shape[0])[:, None]).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rows = np.where(counts > 0, row_sums / counts, np.nan)
    touching = on_trace[0] | on_trace[-1]
    return _TraceColumns(
        rows=rows,
        n_trace_px=int(on_trace.sum()),
        n_stray_px=int(mask.sum() - on_trace.sum()),
        n_clipped=int(touching.sum()),
        thickness=int(np.median(counts[counts > 0])) if counts.any() else 0,
    )


def trim_line_caps(
    rows: np.ndarray, thickness: int, bar: tuple[int, int] | None, at_ends: bool
) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Column rows less the columns a line reaches past its first and last sample, half
    its vertical ``thickness`` less the centre row (a 2-pixel line covers 3 rows and
    overhangs 1 column): beside the erase bar (which widens by as much) and,
    with ``at_ends`` (a strip found without a region, whose box is not the sweep's), at
    the trace's two ends. Left in, those columns would repeat a neighbour's moment."""
    trim = max(thickness - 1, 0) // 2
    present = np.flatnonzero(~np.isnan(rows))
    if trim == 0 or len(present) <= 4 * trim:
        return rows, bar
    rows = rows.copy()
    if bar is not None:
        bar = (max(bar[0] - trim, 0), min(bar[1] + trim, len(rows)))
        rows[bar[0] : bar[1]] = np.nan
    if at_ends:
        rows[present[:trim]] = np.nan
        rows[present[-trim:]] = np.nan
    return rows, bar


def _gaps(present: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of False strictly between the first and last True."""
    columns = np.flatnonzero(present)
    if len(columns) < 2:
        return []
    inner = present[columns[0] : columns[-1] + 1]
    edges = np.diff(np.concatenate([[1], inner.astype(np.int8), [1]]))
    starts, stops = np.flatnonzero(edges == -1), np.flatnonzero(edges == 1)
    return [(int(a) + columns[0], int(b) + columns[0]) for a, b in zip(starts, stops)]


def erase_bar(present: np.ndarray, elsewhere: np.ndarray | None = None) -> tuple[int, int] | None:
    """Where the sweep head is: the widest gap inside the trace (None if there is none).

    ``present`` (W,) bool: columns holding trace in this frame; ``elsewhere``: the same in
    another frame of the clip. The erase bar moves with the sweep and a dropout does not,
    so gaps with no trace in ``elsewhere`` either are passed over while a moving one is left.
    """
    gaps = _gaps(present)
    if elsewhere is not None:
        moving = [(a, b) for a, b in gaps if elsewhere[a:b].any()]
        gaps = moving or gaps  # a frozen clip: nothing moves, take the widest
    return max(gaps, key=lambda gap: gap[1] - gap[0]) if gaps else None


def check_trace(
    columns: _TraceColumns,
    strip_width: int,
    settings: TraceSettings,
    bar: tuple[int, int] | None,
) -> None:
    """The four quality checks; raises InputRejected naming the first that fails.
    ``bar``: the erase bar (:func:`erase_bar`), the one gap allowed."""
    present = ~np.isnan(columns.rows)
    if columns.n_trace_px == 0:
        raise InputRejected(
            "no ECG trace: no pixels of the trace colour in the strip"
            if columns.n_stray_px == 0
            else "no ECG trace: only scattered pixels of the trace colour in the strip"
        )
    n_present = int(present.sum())
    if columns.n_clipped > settings.max_clipped_fraction * n_present:
        raise InputRejected(
            f"ECG trace clipped: it touches the strip's top or bottom in "
            f"{columns.n_clipped} of {n_present} columns"
        )
    widest = max((b - a for a, b in _gaps(present) if (a, b) != bar), default=0)
    if widest > settings.max_gap_fraction * strip_width:
        raise InputRejected(
            f"ECG trace broken: a gap of {widest} columns "
            f"({widest / strip_width:.0%} of the strip) besides the sweep's erase bar"
        )
    stray_share = columns.n_stray_px / columns.n_trace_px
    if stray_share > settings.max_stray_fraction:
        raise InputRejected(
            f"stray pixels of the trace colour: {columns.n_stray_px} outside the trace "
            f"({stray_share:.0%} of its {columns.n_trace_px})"
        )
    coverage = n_present / strip_width
    if coverage < settings.min_coverage:
        raise InputRejected(f"ECG trace too short: it covers {coverage:.0%} of the strip's columns")


def trace_in_time_order(
    rows: np.ndarray, strip_height: int, bar: tuple[int, int] | None
) -> np.ndarray:
    """Column rows (W,) → the signal (N,) in strip heights, up positive, oldest first.

    Columns after the erase bar ``bar`` are the oldest, the sweep's newest end just before
    it; other gaps are bridged linearly. Without an erase bar the strip reads left to right.
    """
    columns = np.flatnonzero(~np.isnan(rows))
    first, last = columns[0], columns[-1]
    order = (
        np.concatenate([np.arange(bar[1], last + 1), np.arange(first, bar[0])])
        if bar is not None
        else np.arange(first, last + 1)
    )
    values = rows[order]
    known = ~np.isnan(values)
    positions = np.arange(len(values))
    values = np.interp(positions, positions[known], values[known])
    return (np.median(values) - values) / strip_height


def _frame_indices(n_frames: int, n_sampled: int) -> list[int]:
    """``n_sampled`` frame indices spread evenly over the clip, the last frame last."""
    n_sampled = max(2, min(n_frames, n_sampled))
    return sorted({int(round(i)) for i in np.linspace(0, n_frames - 1, n_sampled)})


def sweep_seconds_per_px(
    heads: list[float | None], frame_indices: list[int], frame_time_ms: float, width: float
) -> float:
    """Seconds per pixel from the sweep head's column in frames of a clip.

    ``heads``: the head's column in each frame (None where no erase bar was seen); the head
    wraps around every ``width`` columns and is assumed to move less than half the width
    between two sampled frames. Raises InputRejected when fewer than two frames show the
    head or its steps disagree (more than 25 %, or 2 pixels, from their mean speed).
    """
    seen = [(index, head) for index, head in zip(frame_indices, heads) if head is not None]
    if len(seen) < 2:
        raise InputRejected(
            "ECG strip without a time scale: no ECG-trace region, and no sweep to follow"
        )
    steps = np.array([(b[1] - a[1]) % width for a, b in zip(seen, seen[1:])])
    seconds = np.array([(b[0] - a[0]) * frame_time_ms / 1000.0 for a, b in zip(seen, seen[1:])])
    # Least squares over all sampled frames: each head is a whole column, so two frames
    # alone would leave a pixel's error over the clip's whole sweep.
    times = np.concatenate([[0.0], np.cumsum(seconds)])
    positions = np.concatenate([[0.0], np.cumsum(steps)])
    speed = float(np.polyfit(times, positions, 1)[0]) if times[-1] > 0 else 0.0  # px / s
    expected = speed * seconds
    if speed <= 0 or np.any(np.abs(steps - expected) > np.maximum(0.25 * expected, 2.0)):
        raise InputRejected("ECG sweep could not be followed: the erase bar moves unevenly")
    return 1.0 / speed


def extract_trace(
    path: str | os.PathLike, settings: TraceSettings = TraceSettings()
) -> BurnedInTrace:
    """The burned-in ECG of one DICOM echo clip (see the module docstring).

    Returns:
        :class:`BurnedInTrace`: the signal (T,) float32 at ``settings.fs`` Hz.

    Raises:
        InputRejected: the file is refused (as by :func:`read_ultrasound_header`), is
            monochrome (no trace colour), has no time scale, or fails a quality check.
    """
    header = read_ultrasound_header(path)
    if header.samples_per_pixel == 1 and header.photometric != "PALETTE COLOR":
        raise InputRejected("no ECG trace colour: a monochrome clip")
    (x0, y0, x1, y1), strip_from = strip_box(header, settings.band_fraction)
    strip = _Strip(x0, y0, x1, y1)
    region_seconds = header.ecg_region.seconds_per_px if header.ecg_region else None
    if region_seconds is None and header.frame_time_ms is None:
        raise InputRejected(
            "ECG strip without a time scale: no ECG-trace region and no frame timing"
        )
    min_piece = max(3, int(round(settings.min_piece_fraction * strip.width)))

    def strip_masks(indices: list[int]) -> list[np.ndarray]:
        frames = read_frames(path, indices, header)[:, y0:y1, x0:x1]
        return [trace_mask(frame, settings.hsv_lower, settings.hsv_upper) for frame in frames]

    # The last two frames first, so that a clip without a usable trace is rejected before
    # the sweep's frames are decoded: the erase bar is the gap that moves between them.
    last_two = [max(header.n_frames - 2, 0), header.n_frames - 1][-min(header.n_frames, 2) :]
    before, last = ([None] + strip_masks(last_two))[-2:]
    earlier = None if before is None else ~np.isnan(trace_columns(before, min_piece).rows)
    final = trace_columns(last, min_piece, before, earlier)
    bar = erase_bar(~np.isnan(final.rows), earlier)
    rows, bar = trim_line_caps(final.rows, final.thickness, bar, strip_from == "band")
    final = dataclasses.replace(final, rows=rows)
    check_trace(final, strip.width, settings, bar)

    if region_seconds is not None:
        seconds_per_px, time_from = region_seconds, "region"
    else:
        indices = _frame_indices(header.n_frames, settings.sweep_frames)
        present: list[np.ndarray] = []
        masks = strip_masks(indices)
        for k, mask in enumerate(masks):
            previous = (masks[k - 1], present[k - 1]) if k else (None, None)
            present.append(~np.isnan(trace_columns(mask, min_piece, *previous).rows))
        heads = []
        for k, now in enumerate(present):
            elsewhere = present[k - 1] if k else (present[1] if len(present) > 1 else None)
            head = erase_bar(now, elsewhere)
            heads.append(None if head is None else float(head[0]))
        kept = np.flatnonzero(~np.isnan(final.rows))
        span = float(kept[-1] - kept[0] + 1)
        seconds_per_px = sweep_seconds_per_px(heads, indices, header.frame_time_ms, span)
        time_from = "sweep"

    values = trace_in_time_order(final.rows, y1 - y0, bar)
    # Samples at 1/fs steps back from the newest column, the moment of the last frame.
    columns_ago = np.arange(len(values))[::-1] * seconds_per_px
    n_samples = int(columns_ago[0] * settings.fs) + 1
    ago = np.arange(n_samples)[::-1] / settings.fs
    signal = np.interp(-ago, -columns_ago, values)
    return BurnedInTrace(
        signal=signal.astype(np.float32),
        fs=settings.fs,
        seconds_per_px=float(seconds_per_px),
        time_scale_from=time_from,
        strip_from=strip_from,
    )
