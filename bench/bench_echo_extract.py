"""Views per second of ``echo2ecg.data.echo.extract_clip`` against a straightforward reference.

The reference does what EchoPrime's own script does, frame by frame: decode *every* frame
(``ds.pixel_array``, which pydicom already converts from YBR to RGB), build the mask,
multiply every frame by it, crop and resize every frame, then take frames 0, 2, …, 30 and
pad with zero frames. So that both give the same pixels, its mask is built from the same
frames as ``extract_clip``'s (the used frames plus the last; EchoPrime takes all frames)
and it applies the same DICOM scan-region prior. ``extract_clip`` decodes only those
frames and masks, crops and resizes only the 16 it keeps.

Both run on one core (OpenCV and BLAS threads 1), on real JPEG baseline clips from
pydicom's test data (``examples_ybr_color.dcm``, 30 frames 240×320) and pydicom-data
(``color3d_jpeg_baseline.dcm``, 120 frames 480×640); their outputs must be identical.

    .venv/bin/python bench/bench_echo_extract.py --json bench/out/echo_extract.json
    .venv/bin/python bench/bench_echo_extract.py --smoke   # both clips, 1 timed call each
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy loads its BLAS
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pydicom  # noqa: E402
from figures import parse_args, write_figures  # noqa: E402
from pydicom.data import get_testdata_file  # noqa: E402

from echo2ecg.data.echo import extract_clip  # noqa: E402

CLIPS = ["examples_ybr_color.dcm", "color3d_jpeg_baseline.dcm"]
# Both clips even so: the 120-frame one is the one that needs pydicom-data.
SMOKE = {"repeats": 1}


# ------------------------------------------------------------------ reference, frame by frame


def reference_extract_clip(
    path: str, n_out: int = 16, stride: int = 2, size: int = 224, zoom: float = 0.1
) -> np.ndarray:
    """The recipe written plainly: decode all, mask all, crop and resize all, then sample."""
    ds = pydicom.dcmread(path)
    video = ds.pixel_array  # (F, H, W, 3) RGB
    n_frames = len(video)
    used = list(range(0, min(n_frames, n_out * stride), stride))
    mask = reference_mask(
        [video[i] for i in sorted(set(used) | {n_frames - 1})], reference_region(ds)
    )
    scaled = []
    for frame in video:
        masked = frame * mask[:, :, None]
        scaled.append(reference_crop_and_scale(masked, size, zoom))
    clip = [scaled[i] for i in used]
    clip += [np.zeros((size, size, 3), np.uint8)] * (n_out - len(clip))
    return np.stack(clip)


def reference_mask(frames: list[np.ndarray], region) -> np.ndarray:
    """EchoPrime's mask_outside_ultrasound, on RGB frames (first and last at the ends)."""
    kernel = np.ones((3, 3), np.uint8)
    grays = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    frame_sum = np.zeros(grays[0].shape, np.int32)
    for gray in grays:
        frame_sum += np.where(gray > 0, 1, 0)
    frame_sum = cv2.erode(np.uint8(frame_sum), kernel, iterations=10)
    frame_sum = np.where(frame_sum > 0, 1, 0)
    frame_diff = np.where(np.abs(grays[0].astype(int) - grays[-1].astype(int)) > 0, 1, 0)
    frame_diff[0:20, 0:20] = 0
    overlap = np.where(frame_sum + frame_diff > 1, 1, 0).astype(np.uint8)
    overlap = cv2.dilate(overlap, kernel, iterations=10).astype(np.uint8)
    cv2.floodFill(overlap, None, (0, 0), 100)
    overlap = np.where(overlap != 100, 255, 0).astype(np.uint8)
    contours, _ = cv2.findContours(overlap, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    for contour in contours:
        cv2.drawContours(overlap, [cv2.convexHull(contour)], -1, 255, thickness=-1)
    overlap = np.where(overlap > 0, 1, 0).astype(np.uint8)
    cv2.floodFill(overlap, None, (0, 0), 100)
    mask = np.where(overlap != 100, 1, 0).astype(np.uint8)
    if region is not None:
        x0, y0, x1, y1 = region
        box = np.zeros_like(mask)
        box[y0:y1, x0:x1] = 1
        mask = mask * box
    return mask


def reference_region(ds):
    """Union of the 2D (spatial format 1) ultrasound regions, half-open, or None."""
    boxes = [
        (
            r.RegionLocationMinX0,
            r.RegionLocationMinY0,
            r.RegionLocationMaxX1 + 1,
            r.RegionLocationMaxY1 + 1,
        )
        for r in ds.get("SequenceOfUltrasoundRegions", [])
        if r.RegionSpatialFormat == 1
    ]
    if not boxes:
        return None
    return (
        max(min(b[0] for b in boxes), 0),
        max(min(b[1] for b in boxes), 0),
        min(max(b[2] for b in boxes), ds.Columns),
        min(max(b[3] for b in boxes), ds.Rows),
    )


def reference_crop_and_scale(img: np.ndarray, size: int, zoom: float) -> np.ndarray:
    """EchoPrime's crop_and_scale for a square output."""
    h, w = img.shape[:2]
    if w > h:
        padding = int(round((w - h) / 2))
        img = img[:, padding:-padding]
    if h > w:
        padding = int(round((h - w) / 2))
        img = img[padding:-padding]
    pad_x, pad_y = int(img.shape[1] * zoom), int(img.shape[0] * zoom)
    img = img[pad_y:-pad_y, pad_x:-pad_x]
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)


# ------------------------------------------------------------------ timing


def seconds_per_view(function, path: str, repeats: int) -> float:
    """Median wall time of one call, seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(path)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_clip(name: str, repeats: int) -> dict:
    path = get_testdata_file(name)
    if path is None:
        raise SystemExit(f"{name} not found: install pydicom-data")
    fast, reference = extract_clip(path), reference_extract_clip(path)  # also warms up
    if not np.array_equal(fast, reference):
        raise SystemExit(f"{name}: extract_clip differs from the reference")
    ref_s = seconds_per_view(reference_extract_clip, path, repeats)
    fast_s = seconds_per_view(extract_clip, path, repeats)
    n_frames = int(pydicom.dcmread(path, stop_before_pixels=True).NumberOfFrames)
    return {
        "file": name,
        "frames": n_frames,
        "ref_views_per_s": round(1 / ref_s, 2),
        "fast_views_per_s": round(1 / fast_s, 2),
        "speedup": round(ref_s / fast_s, 2),
        "identical": True,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per clip and method")
    parser.add_argument("--json", type=Path, help="write the table here as JSON")
    args = parse_args(parser, SMOKE)
    cv2.setNumThreads(1)

    rows = [bench_clip(name, args.repeats) for name in CLIPS]
    print(f"{'file':<28}{'frames':>7}{'ref views/s':>13}{'fast views/s':>14}{'speed-up':>10}")
    for row in rows:
        print(
            f"{row['file']:<28}{row['frames']:>7}{row['ref_views_per_s']:>13.2f}"
            f"{row['fast_views_per_s']:>14.2f}{row['speedup']:>9.2f}x"
        )
    write_figures({"threads": 1, "repeats": args.repeats, "clips": rows}, args.json)


if __name__ == "__main__":
    main()
