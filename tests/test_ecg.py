"""ECG preprocessing (docs/method.md section 3): resampling, cropping, clipping, ALS, z-score."""

import numpy as np
import pybaselines._banded_utils
import pytest
from conftest import spsolve_asls, synthetic_beats, synthetic_ecg
from pydicom.data import get_testdata_file

from echo2ecg.data.ecg import (
    asls_baseline,
    clip_outliers,
    crop_or_pad,
    groupwise_zscore,
    prepare_ecg,
    remove_baseline,
    resample_to,
)
from echo2ecg.data.ecg_formats import RawEcg, read_ecg
from echo2ecg.data.errors import InputRejected

# --- resampling, cropping, clipping ------------------------------------------------------


@pytest.mark.parametrize("fs_in", [250.0, 1000.0, 360.0])
def test_resample_keeps_a_5_hz_sine(fs_in):
    seconds = 10.0
    sine = np.sin(2 * np.pi * 5 * np.arange(round(fs_in * seconds)) / fs_in)
    resampled = resample_to(np.tile(sine, (12, 1)), fs_in, 500.0)
    assert resampled.shape == (12, 5000)
    expected = np.sin(2 * np.pi * 5 * np.arange(5000) / 500.0)
    np.testing.assert_allclose(
        resampled[:, 50:-50], np.tile(expected, (12, 1))[:, 50:-50], atol=2e-3
    )


def test_resample_is_identity_at_equal_rates():
    signal = synthetic_ecg()
    assert resample_to(signal, 500.0, 500.0) is signal


def test_crop_or_pad():
    signal = np.arange(12 * 7000, dtype=float).reshape(12, 7000)
    np.testing.assert_array_equal(crop_or_pad(signal, 5000), signal[:, :5000])
    padded = crop_or_pad(signal[:, :3000], 5000)
    assert padded.shape == (12, 5000)
    np.testing.assert_array_equal(padded[:, :3000], signal[:, :3000])
    assert not padded[:, 3000:].any()


def test_clip_outliers_zeroes_nan_and_clips_at_4_sigma_of_the_whole_array():
    x = synthetic_ecg()
    x[3, 100] = 50.0
    x[7, 200] = -80.0
    x[5, 300] = np.nan
    clipped = clip_outliers(x, n_sigma=4)
    zeroed = np.where(np.isnan(x), 0.0, x)
    limit = 4 * zeroed.std()
    assert clipped[5, 300] == 0.0
    assert clipped[3, 100] == pytest.approx(limit) and clipped[7, 200] == pytest.approx(-limit)
    inside = np.abs(zeroed) <= limit
    np.testing.assert_array_equal(clipped[inside], zeroed[inside])


# --- ALS drift removal -------------------------------------------------------------------


def test_asls_removes_slow_sinusoidal_drift():
    fs, clean = 500.0, synthetic_beats()
    drift = 0.8 * np.sin(2 * np.pi * 0.15 * np.arange(clean.size) / fs + 0.4)
    corrected = (clean + drift) - asls_baseline(clean + drift, lam=1e7, p=0.3, max_iter=5)
    # ALS sits near the isoelectric line of the clean beats too; the drift must be what
    # it adds on top of that, so the corrected signal equals the corrected clean one.
    clean_corrected = clean - asls_baseline(clean, lam=1e7, p=0.3, max_iter=5)
    assert np.std(drift) > 0.5
    assert np.std(corrected - clean_corrected) < 0.01


@pytest.mark.parametrize("max_iter", [1, 5])
def test_asls_matches_spsolve_reference(max_iter):
    fs = 500.0
    y = synthetic_beats(fs) + 0.5 * np.sin(2 * np.pi * 0.2 * np.arange(5000) / fs)
    reference = spsolve_asls(y, lam=1e7, p=0.3, n_solves=max_iter)
    np.testing.assert_allclose(asls_baseline(y, 1e7, 0.3, max_iter), reference, atol=1e-5)


def test_asls_runs_exactly_max_iter_pentapy_solves(monkeypatch):
    # pybaselines reaches pentapy through this module-level name (private, pinned version):
    # counting its calls shows both that pentapy solves and how many solves happen.
    calls = []
    pentapy_solve = pybaselines._banded_utils._pentapy_solve

    def counting_solve(*args, **kwargs):
        calls.append(1)
        return pentapy_solve(*args, **kwargs)

    monkeypatch.setattr(pybaselines._banded_utils, "_pentapy_solve", counting_solve)
    asls_baseline(synthetic_beats(), lam=1e7, p=0.3, max_iter=5)
    assert len(calls) == 5


def test_remove_baseline_works_per_lead():
    x = synthetic_ecg()
    corrected = remove_baseline(x, lam=1e7, p=0.3, max_iter=5)
    np.testing.assert_allclose(corrected[4], x[4] - asls_baseline(x[4], 1e7, 0.3, 5))
    assert corrected.shape == x.shape


# --- z-score and the whole recipe --------------------------------------------------------


def test_groupwise_zscore_groups_have_mean_0_and_var_1():
    x = synthetic_ecg() * np.linspace(0.5, 3.0, 12)[:, None] + np.arange(12)[:, None]
    z = groupwise_zscore(x, groups=((0, 3), (3, 6), (6, 12)), eps=1e-10)
    for start, stop in ((0, 3), (3, 6), (6, 12)):
        assert z[start:stop].mean() == pytest.approx(0.0, abs=1e-12)
        assert z[start:stop].var() == pytest.approx(1.0, rel=1e-9)
    # One scale per group: leads keep their relative amplitudes inside a group.
    assert np.std(z[7]) / np.std(z[6]) == pytest.approx(np.std(x[7]) / np.std(x[6]))


def test_prepare_ecg_shape_dtype_from_1000_hz():
    prepared = prepare_ecg(RawEcg(synthetic_ecg(fs=1000.0, seconds=12.0), 1000.0))
    assert prepared.shape == (12, 5000) and prepared.dtype == np.float32
    assert np.isfinite(prepared).all()


def test_prepare_ecg_pads_short_recordings():
    prepared = prepare_ecg(RawEcg(synthetic_ecg(fs=250.0, seconds=6.0), 250.0))
    assert prepared.shape == (12, 5000)


def test_prepare_ecg_real_dicom():
    prepared = prepare_ecg(read_ecg(get_testdata_file("waveform_ecg.dcm")))
    assert prepared.shape == (12, 5000) and prepared.dtype == np.float32
    assert prepared[0:3].var() == pytest.approx(1.0, rel=1e-4)


def test_prepare_ecg_does_not_depend_on_units():
    signal = synthetic_ecg()
    np.testing.assert_allclose(
        prepare_ecg(RawEcg(signal * 1000.0, 500.0)), prepare_ecg(RawEcg(signal, 500.0)), atol=1e-4
    )


def test_prepare_ecg_zeroes_nan():
    signal = synthetic_ecg()
    signal[2, 1000:1100] = np.nan
    assert np.isfinite(prepare_ecg(RawEcg(signal, 500.0))).all()


def test_prepare_ecg_rejects_infinite_samples():
    signal = synthetic_ecg()
    signal[7, 10] = np.inf
    with pytest.raises(InputRejected, match="non-finite samples .* leads: V2$"):
        prepare_ecg(RawEcg(signal, 500.0))


def test_prepare_ecg_rejects_flat_signal():
    with pytest.raises(InputRejected, match="^flat signal: all leads constant$"):
        prepare_ecg(RawEcg(np.full((12, 5000), 0.3), 500.0))


def test_prepare_ecg_rejects_many_zero_leads_and_names_them():
    signal = synthetic_ecg()
    signal[6:10] = 0.0
    with pytest.raises(InputRejected, match=r"4 leads constant \(V1, V2, V3, V4\)"):
        prepare_ecg(RawEcg(signal, 500.0))
    signal[8:10] = synthetic_ecg()[8:10]  # two dead leads remain: still usable
    assert prepare_ecg(RawEcg(signal, 500.0)).shape == (12, 5000)


def test_prepare_ecg_of_a_lead_subset_sees_those_leads_alone():
    """Lead II alone (an echo clip's trace): its own σ, drift removal and z-score; the
    other rows zero whatever they held; a flat recorded lead is named."""
    signal = synthetic_ecg(fs=500.0, seconds=2.4)
    garbage = signal.copy()
    garbage[[0, *range(2, 12)]] = np.nan
    garbage[0, :10] = 1e6
    alone = prepare_ecg(RawEcg(garbage, 500.0), duration_s=2.4, leads=("II",))
    assert alone.shape == (12, 1200)
    assert not alone[[0, *range(2, 12)]].any()
    assert alone[1].mean() == pytest.approx(0, abs=1e-5)
    assert alone[1].std() == pytest.approx(1, abs=1e-4)
    # the same lead in a full ECG is clipped and scaled with its group: not the same row
    full = prepare_ecg(RawEcg(signal, 500.0), duration_s=2.4)
    assert not np.allclose(full[1], alone[1], atol=1e-3)
    two = prepare_ecg(RawEcg(signal, 500.0), duration_s=2.4, leads=("II", "V2"))
    assert np.count_nonzero(two.any(axis=1)) == 2
    assert two[[1, 7]].std(axis=1) == pytest.approx([1, 1], abs=1e-4)  # a group each
    flat = signal.copy()
    flat[1] = 0.3
    with pytest.raises(InputRejected, match=r"flat signal: recorded leads constant \(II\)"):
        prepare_ecg(RawEcg(flat, 500.0), duration_s=2.4, leads=("II", "V2"))
    with pytest.raises(ValueError, match="leads must name"):
        prepare_ecg(RawEcg(signal, 500.0), leads=("IIx",))
