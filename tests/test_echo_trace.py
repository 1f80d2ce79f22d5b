"""The burned-in ECG trace: extraction from the demo scanner's clips against the lead II it
drew, with and without the ECG-trace region, and each quality check failed on purpose."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from functools import cache

import cv2
import numpy as np
import pydicom
import pytest

from echo2ecg.data.echo_trace import TraceSettings, extract_trace
from echo2ecg.data.errors import InputRejected
from echo2ecg.synth.cohort import demo_specs, plan_cohort, view_clip
from echo2ecg.synth.echo_dicom import DicomIdentity, DicomInstance, write_echo
from echo2ecg.synth.echo_views import ECG_TRACE_RGB, draw_ecg_sweep

IDENTITY = DicomIdentity(
    "Doe^Jane",
    "MRN99887766",
    "19600229",
    "F",
    "1.2.826.0.1.3680043.9.1",
    "ACC1",
    datetime(2024, 2, 29, 9, 30),
    "St Elsewhere",
)
INSTANCE = DicomInstance(
    "1.2.826.0.1.3680043.9.2", "1.2.826.0.1.3680043.9.3", datetime(2024, 2, 29, 9, 32), 1, 1
)
FPS = 30.0


@cache
def demo_clip(index: int = 0):
    """A view of the demo's internal cohort (its scanner, strip geometry and sweep)."""
    spec = demo_specs()[0]
    patients = [p for p in plan_cohort(spec) if p.with_images]
    patient = patients[index // 2]
    return view_clip(spec, patient, 0, 1 + index % 2)


def write(tmp_path, clip, frames=None, encoding="jpeg_ybr", region=True, name="clip.dcm"):
    path = tmp_path / name
    write_echo(
        path,
        clip.frames if frames is None else frames,
        encoding,
        FPS,
        IDENTITY,
        INSTANCE,
        clip.sector if region else None,
        clip.strip if region else None,
    )
    return path


def truth_at(clip, n: int, fs: float) -> np.ndarray:
    """The drawn lead II (mV) at the n sample times of a trace ending at the last frame."""
    times = clip.frame_times[-1] - (n - 1 - np.arange(n)) / fs
    return np.interp(times, clip.trace_t, clip.trace_mv)


def best_lag(x: np.ndarray, y: np.ndarray, max_lag: int = 20) -> int:
    """The shift of x against y (samples) that correlates best."""

    def r(lag):
        a = x[max(0, lag) : len(x) + min(0, lag)]
        b = y[max(0, -lag) : len(y) + min(0, -lag)]
        return np.corrcoef(a, b)[0, 1]

    return max(range(-max_lag, max_lag + 1), key=r)


def blank_strip(clip, frames):
    """Frames with the ECG strip's trace area painted black (labels outside it kept)."""
    frames = frames.copy()
    s = clip.strip
    frames[:, s.y0 : s.y1, s.x0 - 2 : s.x1 + 2] = 0
    return frames


@pytest.mark.parametrize("region", [True, False], ids=["region", "sweep"])
@pytest.mark.parametrize("encoding", ["jpeg_ybr", "rgb"])
def test_trace_matches_the_drawn_lead_ii(tmp_path, encoding, region):
    for index in range(4):
        clip = demo_clip(index)
        trace = extract_trace(write(tmp_path, clip, encoding=encoding, region=region))
        assert trace.strip_from == ("region" if region else "band")
        assert trace.time_scale_from == ("region" if region else "sweep")
        # the region says the strip's seconds per pixel; the sweep must find it within 0.5 %
        assert trace.seconds_per_px == pytest.approx(clip.strip.seconds_per_px, rel=5e-3)
        # the last frame shows the sweep less its erase bar: about 2.4 of its 2.5 s
        assert 2.3 < trace.duration_s < clip.strip.sweep_s
        truth = truth_at(clip, len(trace.signal), trace.fs)
        assert np.corrcoef(trace.signal, truth)[0, 1] >= 0.9
        # timing: within one column of the strip (7.4 ms, 3.7 samples at 500 Hz)
        assert abs(best_lag(trace.signal, truth)) <= 4
        # up is positive: the R peaks are the trace's maxima
        assert np.corrcoef(trace.signal, truth)[0, 1] > 0


@pytest.mark.parametrize("region", [True, False], ids=["region", "sweep"])
def test_a_sweep_that_has_just_wrapped_keeps_its_newest_columns(tmp_path, region):
    """The head 3 columns past the strip's start: those columns, narrower than a trace
    piece, are the newest samples (the erase bar beside them moved), not strays, even
    where they lie on the very pixels the sweep before drew (both at the baseline)."""
    clip = demo_clip(0)
    width, sweep = clip.strip.x1 - clip.strip.x0, clip.strip.sweep_s
    shift = (3.05 / width * sweep - clip.frame_times[-1]) % sweep
    times, trace_t = clip.frame_times + shift, clip.trace_t + shift
    end = times[-1]
    flat = (np.abs(trace_t - end) < 0.06) | (np.abs(trace_t - (end - sweep)) < 0.06)
    trace_mv = np.where(flat, 0.0, clip.trace_mv)
    frames = blank_strip(clip, clip.frames)
    draw_ecg_sweep(frames, times, trace_t, trace_mv, clip.strip)
    trace = extract_trace(write(tmp_path, clip, frames, encoding="rgb", region=region))
    moved = dataclasses.replace(clip, frame_times=times, trace_t=trace_t, trace_mv=trace_mv)
    truth = truth_at(moved, len(trace.signal), trace.fs)
    assert np.corrcoef(trace.signal, truth)[0, 1] >= 0.9
    assert abs(best_lag(trace.signal, truth)) <= 4


def test_strip_from_region_ignores_labels_and_band_counts_them_stray(tmp_path):
    """The 'HR' label in the trace colour lies left of the strip: outside the region, and
    stray pixels (few) in the bottom band."""
    clip = demo_clip(0)
    label = np.zeros(clip.frames.shape[1:3], bool)
    label[clip.strip.y0 :, : clip.strip.x0 - 2] = True
    colour = (np.abs(clip.frames[-1].astype(int) - ECG_TRACE_RGB).sum(-1) < 60) & label
    assert colour.sum() > 10  # the label is there, in the trace's colour
    tight = TraceSettings(max_stray_fraction=0.0)
    extract_trace(write(tmp_path, clip, encoding="rgb", region=True), tight)
    with pytest.raises(InputRejected, match="stray pixels"):
        extract_trace(write(tmp_path, clip, encoding="rgb", region=False), tight)


def test_clipped_trace_is_rejected(tmp_path):
    clip = demo_clip(0)
    frames = blank_strip(clip, clip.frames)
    loud = dataclasses.replace(clip.strip, px_per_mv=clip.strip.px_per_mv * 4)
    draw_ecg_sweep(frames, clip.frame_times, clip.trace_t, clip.trace_mv, loud)
    with pytest.raises(InputRejected, match="ECG trace clipped: it touches the strip's top"):
        extract_trace(write(tmp_path, clip, frames))


def test_broken_trace_is_rejected(tmp_path):
    clip = demo_clip(0)
    frames = clip.frames.copy()
    middle = (clip.strip.x0 + clip.strip.x1) // 2
    head = (
        int(
            (clip.frame_times[-1] % clip.strip.sweep_s)
            / clip.strip.sweep_s
            * (clip.strip.x1 - clip.strip.x0)
        )
        + clip.strip.x0
    )
    cut = middle if abs(middle - head) > 40 else middle - 80  # away from the erase bar
    frames[:, clip.strip.y0 :, cut : cut + 20] = 0
    with pytest.raises(InputRejected, match="ECG trace broken: a gap of 2[0-9] columns"):
        extract_trace(write(tmp_path, clip, frames))


def test_stray_pixels_are_rejected(tmp_path):
    clip = demo_clip(0)
    frames = clip.frames.copy()
    rng = np.random.default_rng(0)
    s = clip.strip
    ys, xs = rng.integers(s.y0 + 2, s.y1 - 2, 400), rng.integers(s.x0, s.x1, 400)
    frames[:, ys, xs] = ECG_TRACE_RGB  # specks of the trace colour all over the strip
    with pytest.raises(InputRejected, match="stray pixels of the trace colour"):
        extract_trace(write(tmp_path, clip, frames, encoding="rgb"))


def test_short_trace_is_rejected(tmp_path):
    clip = demo_clip(0)
    frames = clip.frames.copy()
    s = clip.strip
    frames[:, s.y0 :, s.x0 + (s.x1 - s.x0) // 3 : s.x1 + 2] = 0  # the trace's left third only
    with pytest.raises(InputRejected, match=r"ECG trace too short: it covers 3[0-9]% of"):
        extract_trace(write(tmp_path, clip, frames))


def test_no_trace_and_monochrome_clips_are_rejected(tmp_path):
    clip = demo_clip(0)
    with pytest.raises(InputRejected, match="no pixels of the trace colour"):
        extract_trace(write(tmp_path, clip, blank_strip(clip, clip.frames)))
    with pytest.raises(InputRejected, match="no ECG trace colour: a monochrome clip"):
        extract_trace(write(tmp_path, clip, encoding="mono_rle"))
    # only specks, no line: nothing is trace
    frames = blank_strip(clip, clip.frames)
    frames[:, clip.strip.y0 + 5, clip.strip.x0 : clip.strip.x1 : 9] = ECG_TRACE_RGB
    with pytest.raises(InputRejected, match="only scattered pixels"):
        extract_trace(write(tmp_path, clip, frames, encoding="rgb"))


def test_a_sweep_that_does_not_move_has_no_time_scale(tmp_path):
    clip = demo_clip(0)
    frozen = np.repeat(clip.frames[-1:], len(clip.frames), axis=0)
    extract_trace(write(tmp_path, clip, frozen, region=True))  # the region gives the scale
    with pytest.raises(InputRejected, match="ECG sweep could not be followed"):
        extract_trace(write(tmp_path, clip, frozen, region=False))


def test_no_frame_timing_and_no_region_has_no_time_scale(tmp_path):
    clip = demo_clip(0)
    path = write(tmp_path, clip, region=False)
    ds = pydicom.dcmread(path)
    for keyword in ("FrameTime", "CineRate", "RecommendedDisplayFrameRate"):
        delattr(ds, keyword)
    del ds.FrameIncrementPointer
    ds.save_as(path)
    with pytest.raises(InputRejected, match="no ECG-trace region and no frame timing"):
        extract_trace(path)


def test_hsv_bounds_decide_what_is_trace(tmp_path):
    """Bounds that exclude the scanner's green find no trace: the colour is the filter."""
    clip = demo_clip(0)
    hsv = cv2.cvtColor(np.uint8([[ECG_TRACE_RGB]]), cv2.COLOR_RGB2HSV)[0, 0]
    assert (np.array((64, 97, 113)) <= hsv).all() and (hsv <= np.array((91, 255, 198))).all()
    red = TraceSettings(hsv_lower=(0, 97, 113), hsv_upper=(10, 255, 198))
    with pytest.raises(InputRejected, match="no ECG trace"):
        extract_trace(write(tmp_path, clip, encoding="rgb"), red)


def test_extract_trace_shard_and_cli(tmp_path, capsys):
    """A shard of clips → lead II rows (z-scored, the rest zero) and a ledger row per file;
    a monochrome clip and a non-DICOM file cost only themselves."""
    from echo2ecg.cli import main
    from echo2ecg.data.store import open_rows, read_ledger

    clip = demo_clip(1)
    files = [
        write(tmp_path, clip, region=True, name="tagged.dcm"),
        write(tmp_path, clip, region=False, name="untagged.dcm"),
        write(tmp_path, clip, encoding="mono_rle", name="mono.dcm"),
        tmp_path / "notes.dcm",
    ]
    files[-1].write_text("not a DICOM file")
    assert main(["extract-trace", "--out", str(tmp_path / "out"), *map(str, files)]) == 0
    assert "2 ok, 2 rejected" in capsys.readouterr().out
    ledger = read_ledger(tmp_path / "out/ledger.csv")
    assert ledger["status"].tolist() == ["ok", "ok", "rejected", "rejected"]
    assert ledger["note"][0] == "strip from the ECG-trace region, time scale from the region"
    assert ledger["note"][1] == "strip from the bottom band, time scale from the sweep"
    assert ledger["reason"][2] == "no ECG trace colour: a monochrome clip"
    assert ledger["reason"][3] == "not a DICOM file"
    signals = open_rows(tmp_path / "out/ecg.zarr", "signals")
    assert signals.shape == (2, 12, 1100)
    rows = signals[:]
    assert not rows[:, [0, *range(2, 12)]].any()
    assert np.allclose(rows[:, 1].mean(axis=1), 0, atol=1e-4)
    assert np.allclose(rows[:, 1].std(axis=1), 1, atol=1e-3)
    # both ways of reading the strip give the same ECG
    assert np.corrcoef(rows[0, 1], rows[1, 1])[0, 1] > 0.95


def test_a_trace_shorter_than_kept_is_rejected(tmp_path):
    from echo2ecg.data.shard_run import inputs_from_paths
    from echo2ecg.data.trace_shard import extract_trace_shard

    path = write(tmp_path, demo_clip(0))
    ledger = extract_trace_shard(
        inputs_from_paths([path]), tmp_path / "ecg.zarr", tmp_path / "l.csv", {"duration_s": 3.0}
    )
    assert ledger["reason"][0].startswith("ECG trace shorter than 3 s (2.4")
