"""echo2ecg.data.echo: frame sampling, the ultrasound mask, crop geometry, the whole clip."""

import cv2
import numpy as np
import pytest
from conftest import ECHO_ECG_ROWS as ECG_ROWS
from conftest import H, W, sector_mask, synthetic_echo, write_clip
from pydicom.data import get_testdata_file

from echo2ecg.data import echo
from echo2ecg.data.dicom import read_frames, read_ultrasound_header
from echo2ecg.data.echo import (
    clip_frame_indices,
    crop_and_resize,
    extract_clip,
    frames_to_decode,
    to_gray,
    ultrasound_mask,
)
from echo2ecg.data.errors import InputRejected


def static_overlay_pixels() -> np.ndarray:
    text = synthetic_echo(1)[0].astype(int) - synthetic_echo(1, overlays=False)[0]
    moving = np.zeros((H, W), bool)
    moving[ECG_ROWS] = True
    return (text != 0).any(axis=2) & ~moving


# ------------------------------------------------------------------ frame sampling


def test_clip_frame_indices():
    assert clip_frame_indices(100) == list(range(0, 32, 2))
    assert clip_frame_indices(32) == list(range(0, 32, 2))
    assert clip_frame_indices(7) == [0, 2, 4, 6]
    assert clip_frame_indices(1) == [0]
    assert clip_frame_indices(100, n_out=4, stride=3) == [0, 3, 6, 9]


def test_frames_to_decode_are_the_used_frames_plus_the_last():
    assert frames_to_decode(100) == list(range(0, 32, 2)) + [99]
    assert frames_to_decode(30) == list(range(0, 30, 2)) + [29]
    assert frames_to_decode(7) == [0, 2, 4, 6]
    assert frames_to_decode(1) == [0]


# ------------------------------------------------------------------ mask


def synthetic_mask(frames: np.ndarray, region=None) -> np.ndarray:
    indices = frames_to_decode(len(frames))
    return ultrasound_mask(to_gray(frames[indices]), region)


def test_mask_keeps_the_sector_and_drops_static_text_and_the_ecg_trace():
    frames = synthetic_echo()
    mask = synthetic_mask(frames)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    sector = sector_mask()
    # Erosion then dilation (an opening) rounds the fan's sharp apex and corners; all the
    # rest of the sector stays, i.e. every pixel at least 10 pixels inside it.
    core = cv2.erode(sector, np.ones((3, 3), np.uint8), iterations=10).astype(bool)
    assert mask[core].all() and mask[sector.astype(bool)].mean() > 0.97
    assert not mask[static_overlay_pixels()].any()
    ecg = (frames[..., 1].astype(int) - frames[..., 0] > 100).any(axis=0)
    assert ecg.sum() > 200 and not mask[ecg].any() and not mask[ECG_ROWS].any()
    # Dilation and the convex hull grow the mask only a little past the sector.
    assert mask.sum() < 1.15 * sector.sum()


def test_mask_ignores_what_never_changes():
    still = np.repeat(synthetic_echo(1), 5, axis=0)
    assert not synthetic_mask(still).any()


def test_mask_fills_holes_inside_the_sector():
    frames = synthetic_echo()
    frames[:, 100:120, 140:160] = 0  # a black chamber inside the sector
    assert synthetic_mask(frames)[100:120, 140:160].all()


def test_region_prior_limits_the_mask():
    frames = synthetic_echo()
    free = synthetic_mask(frames)
    limited = synthetic_mask(frames, region=(0, 0, 150, H))
    assert not limited[:, 150:].any()
    np.testing.assert_array_equal(limited[:, :150], free[:, :150])


def test_mask_of_a_real_clip_drops_its_text_and_toolbar():
    path = get_testdata_file("examples_ybr_color.dcm")
    header = read_ultrasound_header(path)
    gray = to_gray(read_frames(path, frames_to_decode(header.n_frames), header))
    mask = ultrasound_mask(gray)
    burned_in = (gray[0] > 60) & (gray[0] == gray[-1])  # bright pixels that never change
    assert burned_in[:30, :70].sum() > 30 and burned_in[225:].sum() > 100  # text, toolbar
    assert not mask[:30, :70].any() and not mask[225:].any()
    assert mask[60:200, 120:220].all()  # the sector's centre


def test_to_gray_is_opencv_rgb2gray():
    frames = synthetic_echo(3)
    expected = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    np.testing.assert_array_equal(to_gray(frames), expected)


# ------------------------------------------------------------------ crop and resize


def coordinate_frames(h: int, w: int) -> np.ndarray:
    """(2, h, w, 3) uint8 whose pixels name their own position: (x, y, frame)."""
    y, x = np.mgrid[:h, :w]
    frames = np.stack([np.stack([x, y, np.full_like(x, k)], axis=-1) for k in range(2)])
    return frames.astype(np.uint8)


@pytest.mark.parametrize(
    "h, w, rows, cols",
    [
        (100, 160, slice(10, 90), slice(40, 120)),  # landscape: 30 columns off each side
        (160, 100, slice(40, 120), slice(10, 90)),  # portrait: 30 rows off each end
        (100, 100, slice(10, 90), slice(10, 90)),  # square: zoom only
    ],
)
def test_crop_geometry(h, w, rows, cols):
    frames = coordinate_frames(h, w)
    out = crop_and_resize(frames, size=80, zoom=0.1)  # 80×80 crop: resize is the identity
    np.testing.assert_array_equal(out, frames[:, rows, cols])


def test_crop_of_an_odd_difference_follows_echoprime_rounding():
    # (163 − 100) / 2 = 31.5 rounds to 32 (Python's round, as EchoPrime), leaving 99
    # columns; with no zoom those 100×99 pixels are resized as they are.
    frames = coordinate_frames(100, 163)
    expected = [cv2.resize(f[:, 32:131], (224, 224), interpolation=cv2.INTER_CUBIC) for f in frames]
    np.testing.assert_array_equal(crop_and_resize(frames, zoom=0.0), np.stack(expected))


def test_resize_is_bicubic_to_size():
    frames = synthetic_echo(2)
    out = crop_and_resize(frames, size=224, zoom=0.1)
    assert out.shape == (2, 224, 224, 3) and out.dtype == np.uint8
    crop = frames[1, 24:216, 54:246]
    np.testing.assert_array_equal(
        out[1], cv2.resize(crop, (224, 224), interpolation=cv2.INTER_CUBIC)
    )
    assert not np.array_equal(out[1], cv2.resize(crop, (224, 224), interpolation=cv2.INTER_LINEAR))


# ------------------------------------------------------------------ whole clip


def test_overlays_leave_no_trace_in_the_clip(tmp_path):
    with_overlays = extract_clip(write_clip(tmp_path / "a.dcm", synthetic_echo()))
    clean = extract_clip(write_clip(tmp_path / "b.dcm", synthetic_echo(overlays=False)))
    assert with_overlays.shape == (16, 224, 224, 3) and with_overlays.dtype == np.uint8
    assert clean.mean() > 30
    np.testing.assert_array_equal(with_overlays, clean)


def test_short_clip_is_sampled_at_stride_2_and_padded_with_zero_frames(tmp_path):
    inside = sector_mask().astype(bool)
    frames = np.zeros((7, H, W, 3), np.uint8)
    for k in range(7):
        frames[k][inside] = 60 + 20 * k  # each frame's brightness names it
    clip = extract_clip(write_clip(tmp_path / "short.dcm", frames))
    assert clip.shape == (16, 224, 224, 3)
    assert clip[:4, 112, 112, 0].tolist() == [60, 100, 140, 180]  # frames 0, 2, 4, 6
    assert not clip[4:].any()


def test_extract_clip_decodes_only_the_frames_it_needs(tmp_path, monkeypatch):
    path = write_clip(tmp_path / "long.dcm", synthetic_echo(50))
    requested = []

    def recording_read_frames(path, indices, header=None):
        requested.append(list(indices))
        return read_frames(path, indices, header)

    monkeypatch.setattr(echo, "read_frames", recording_read_frames)
    extract_clip(path)
    assert requested == [list(range(0, 32, 2)) + [49]]


def test_extract_clip_of_a_real_30_frame_clip():
    clip = extract_clip(get_testdata_file("examples_ybr_color.dcm"))
    assert clip.shape == (16, 224, 224, 3) and clip.dtype == np.uint8
    assert all(frame.mean() > 5 for frame in clip[:15])  # frames 0, 2, ..., 28
    assert not clip[15].any()  # no frame 30: padding
    assert np.median(np.abs(clip[0, ..., 0].astype(int) - clip[0, ..., 2])) <= 2  # gray echo


def test_extract_clip_refuses_a_bad_file(tmp_path):
    path = tmp_path / "x.dcm"
    path.write_text("not an echo")
    with pytest.raises(InputRejected, match="not a DICOM file"):
        extract_clip(path)
