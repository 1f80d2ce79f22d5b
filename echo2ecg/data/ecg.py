"""ECG preprocessing (docs/method.md section 3, the OTiS recipe), on arrays.

:func:`prepare_ecg` turns a :class:`~echo2ecg.data.ecg_formats.RawEcg` ((12, T) at any rate) into
the model's stored input, (12, 5000) float32 at 500 Hz, unitless (group-wise z-scores):

0. resample to 500 Hz (polyphase) and crop or zero-pad to 10 s — the pipeline's addition,
   done before step 1 because cohorts come at 250, 500 or 1000 Hz;
1. NaN → 0;
2. clip to ±4·σ, σ the standard deviation of the whole 12×T array;
3. per-lead baseline drift removal by asymmetric least squares (Eilers; lam 1e7, p 0.3,
   5 iterations);
4. group-wise z-score over (I, II, III), (aVR, aVL, aVF), (V1–V6).
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
from pybaselines import Baseline
from scipy.signal import resample_poly

from echo2ecg.data.ecg_formats import LEADS, RawEcg, check_sampling_rate
from echo2ecg.data.errors import InputRejected

LEAD_GROUPS = ((0, 3), (3, 6), (6, 12))  # (I, II, III), (aVR, aVL, aVF), (V1–V6)
# A lead whose peak-to-peak range is below this (signal units, mV for most formats; far
# below one ADC step of any ECG recorder) carries no signal.
FLAT_PEAK_TO_PEAK = 1e-6
# More constant leads than this and the recording is unusable (a whole group may vanish).
MAX_FLAT_LEADS = 3
# After drift removal a lead is also flat when what is left is below this share of its range
# before: it held nothing but drift (or was clipped to a constant), and z-scoring would
# blow its numerical residue up to unit variance.
FLAT_AFTER_DRIFT_RATIO = 1e-3


def resample_to(signal: np.ndarray, fs_in: float, fs_out: float = 500.0) -> np.ndarray:
    """Polyphase resampling of (12, T) from fs_in to fs_out Hz → (12, ceil(T·fs_out/fs_in)).

    The rate ratio is taken as an exact fraction (any integer rate up to 10 kHz is exact).
    Edges are padded with a fitted line, not zeros, so a DC offset does not ring at the ends.
    """
    if fs_in == fs_out:
        return signal
    ratio = (Fraction(fs_out) / Fraction(fs_in)).limit_denominator(10_000)
    return resample_poly(signal, ratio.numerator, ratio.denominator, axis=-1, padtype="line")


def crop_or_pad(signal: np.ndarray, n_samples: int = 5000) -> np.ndarray:
    """(12, T) → (12, n_samples): the first n_samples, zero-padded at the end when shorter."""
    cropped = signal[:, :n_samples]
    missing = n_samples - cropped.shape[1]
    return np.pad(cropped, ((0, 0), (0, missing))) if missing > 0 else cropped


def clip_outliers(x: np.ndarray, n_sigma: float = 4.0) -> np.ndarray:
    """NaN → 0, then clip (12, T) to ±n_sigma·σ, σ the std over the whole array (about 0)."""
    x = np.where(np.isnan(x), 0.0, x)
    limit = n_sigma * np.std(x)
    return np.clip(x, -limit, limit)


@lru_cache(maxsize=8)
def _fitter(n_samples: int) -> Baseline:
    """One pybaselines fitter per signal length, reused for every lead of every ECG.

    With pentapy installed (a pinned dependency) pybaselines' default banded solver is
    pentapy's pentadiagonal solver, about 2x faster than scipy's banded solvers.
    """
    return Baseline(np.arange(n_samples, dtype=np.float64), assume_sorted=True)


def asls_baseline(y: np.ndarray, lam: float = 1e7, p: float = 0.3, max_iter: int = 5) -> np.ndarray:
    """Asymmetric least squares baseline (Eilers) of one lead, (T,) → (T,), same units.

    Second-difference penalty lam; points above the baseline weigh p, below 1 − p.
    ``max_iter`` is the number of weighted solves, as in the reference spsolve loop
    (``for i in range(max_iter): solve; reweight``), whose last solve is the baseline.
    pybaselines' ``asls`` instead solves ``max_iter + 1`` times unless the weights settle
    below ``tol`` first, so it is called with ``max_iter - 1`` and ``tol=-1``: a relative
    weight change is never negative, so the early exit never fires and exactly
    ``max_iter`` solves happen in both.
    """
    if max_iter < 1:
        raise ValueError("max_iter must be at least 1")
    baseline, _params = _fitter(len(y)).asls(y, lam=lam, p=p, max_iter=max_iter - 1, tol=-1.0)
    return baseline


def remove_baseline(
    x: np.ndarray, lam: float = 1e7, p: float = 0.3, max_iter: int = 5
) -> np.ndarray:
    """Subtract each lead's ALS baseline: (12, T) → (12, T), same units."""
    return np.stack([lead - asls_baseline(lead, lam, p, max_iter) for lead in x])


def groupwise_zscore(x: np.ndarray, groups=LEAD_GROUPS, eps: float = 1e-10) -> np.ndarray:
    """Z-score (12, T) per lead group: one mean and one population variance over all of a
    group's leads and samples; x ← (x − μ) / sqrt(var + eps). Unitless output."""
    out = np.empty_like(x, dtype=np.float64)
    for start, stop in groups:
        block = x[start:stop]
        out[start:stop] = (block - block.mean()) / np.sqrt(block.var() + eps)
    return out


def prepare_ecg(
    raw: RawEcg,
    fs: float = 500.0,
    duration_s: float = 10.0,
    clip_sigma: float = 4.0,
    asls_lam: float = 1e7,
    asls_p: float = 0.3,
    asls_iterations: int = 5,
    zscore_eps: float = 1e-10,
    leads: tuple[str, ...] | None = None,
) -> np.ndarray:
    """A raw 12-lead ECG → the model's stored input, (12, round(duration_s·fs)) float32.

    With the defaults (OTiS; the config's ``ecg`` section): (12, 5000) at 500 Hz, leads in
    LEADS order, clipped to ±4 σ, drift removed by ALS, group-wise z-scored.
    ``leads``: the leads recorded (None: all 12), e.g. ``("II",)`` for an echo clip's trace;
    every step then sees those leads alone (σ, the flat checks, each group's z-score over
    its recorded leads) and the other rows are zeros.
    Raises InputRejected for a sampling rate outside the readers' range (a tiny one would
    make the resampling ratio huge), infinite samples, and flat recordings (all leads
    constant, or more than MAX_FLAT_LEADS constant leads, named), judged on the recorded
    samples, after drift removal (drift alone, or a signal clipped to one constant, leaves
    nothing) and on the output (amplitudes too large to normalise come out as zeros).
    """
    if leads is not None:
        return _prepare_lead_subset(
            raw, leads, fs, duration_s, clip_sigma, asls_lam, asls_p, asls_iterations, zscore_eps
        )
    fs_in = check_sampling_rate(raw.fs)
    signal = np.asarray(raw.signal, dtype=np.float64)
    _reject_infinite(signal)
    # NaN would spread over the resampling filter's length; step 1 zeroes it anyway.
    signal = np.where(np.isnan(signal), 0.0, signal)
    signal = resample_to(signal, fs_in, fs)
    n_samples = round(duration_s * fs)
    _reject_flat(_flat_leads(signal[:, :n_samples]))  # recorded samples, not padding
    signal = crop_or_pad(signal, n_samples)
    # Amplitudes near float64's range overflow in σ and the variance; what comes out is
    # judged instead (zeros or non-finite values are flat).
    with np.errstate(over="ignore", invalid="ignore"):
        clipped = clip_outliers(signal, clip_sigma)
        signal = remove_baseline(clipped, asls_lam, asls_p, asls_iterations)
        _reject_flat(_flat_leads(signal, before=clipped), " after drift removal")
        signal = groupwise_zscore(signal, LEAD_GROUPS, zscore_eps)
    _reject_flat(_flat_leads(signal) | ~np.isfinite(signal).all(axis=1), " after preprocessing")
    return signal.astype(np.float32)


def _prepare_lead_subset(raw: RawEcg, leads, fs, duration_s, *steps) -> np.ndarray:
    """:func:`prepare_ecg` of the recorded ``leads`` alone, scattered into (12, T) zeros."""
    unknown = sorted(set(leads) - set(LEADS))
    if unknown or not leads:
        raise ValueError(f"leads must name some of {', '.join(LEADS)}; got {list(leads)}")
    recorded = np.array([lead in leads for lead in LEADS])
    clip_sigma, asls_lam, asls_p, asls_iterations, zscore_eps = steps
    signal = resample_to(
        np.asarray(raw.signal, np.float64)[recorded], check_sampling_rate(raw.fs), fs
    )
    if np.isinf(signal).any():
        raise InputRejected("non-finite samples (infinite) in the recorded leads")
    signal = crop_or_pad(np.where(np.isnan(signal), 0.0, signal), round(duration_s * fs))
    with np.errstate(over="ignore", invalid="ignore"):
        clipped = clip_outliers(signal, clip_sigma)
        signal = remove_baseline(clipped, asls_lam, asls_p, asls_iterations)
        flat = _flat_leads(signal, before=clipped)
        groups = [
            (int(recorded[:start].sum()), int(recorded[:stop].sum()))
            for start, stop in LEAD_GROUPS
            if recorded[start:stop].any()
        ]
        signal = groupwise_zscore(signal, groups, zscore_eps)
    flat |= _flat_leads(signal) | ~np.isfinite(signal).all(axis=1)
    if flat.any():
        names = [lead for lead, kept in zip(LEADS, recorded) if kept]
        which = ", ".join(name for name, bad in zip(names, flat) if bad)
        raise InputRejected(f"flat signal: recorded leads constant ({which})")
    out = np.zeros((len(LEADS), signal.shape[1]), np.float32)
    out[recorded] = signal
    return out


def _reject_infinite(signal: np.ndarray) -> None:
    infinite = np.isinf(signal).any(axis=1)
    if infinite.any():
        raise InputRejected(f"non-finite samples (infinite) in leads: {_lead_names(infinite)}")


def _flat_leads(signal: np.ndarray, before: np.ndarray | None = None) -> np.ndarray:
    """(12,) bool: leads of (12, T) spanning less than FLAT_PEAK_TO_PEAK or, given the
    signal ``before`` a step, less than FLAT_AFTER_DRIFT_RATIO of its span there."""
    span = np.ptp(signal, axis=1)
    flat = span < FLAT_PEAK_TO_PEAK
    if before is not None:
        flat |= span < FLAT_AFTER_DRIFT_RATIO * np.ptp(before, axis=1)
    return flat


def _reject_flat(flat: np.ndarray, stage: str = "") -> None:
    if flat.all():
        raise InputRejected(f"flat signal{stage}: all leads constant")
    if flat.sum() > MAX_FLAT_LEADS:
        raise InputRejected(
            f"flat signal{stage}: {flat.sum()} leads constant ({_lead_names(flat)})"
        )


def _lead_names(mask: np.ndarray) -> str:
    return ", ".join(lead for lead, chosen in zip(LEADS, mask) if chosen)
