"""Synthetic 12-lead ECGs from a moving cardiac dipole.

Each beat is a sum of Gaussian waves (P, Q, R, S, ST, T, and a second P hump) of a 3-D
heart vector; the 12 leads are projections of that vector. Limb leads follow Einthoven
and Goldberger exactly (III = II - I, aVR = -(I + II)/2, ...). Coordinates: x to the
patient's left, y to the feet, z to the front of the chest. Amplitudes are in mV, times
in seconds.

Phenotype links (what a model can learn):
- QRS voltage grows with LVEDV;
- low LVEF widens the QRS, depresses the ST segment and inverts the T wave;
- SHD adds a wide, bifid P wave with a negative terminal part in V1 (left atrial load).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .phenotypes import Phenotype

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def _unit(*xyz: float) -> np.ndarray:
    vector = np.asarray(xyz, dtype=float)
    return vector / np.linalg.norm(vector)


# Precordial electrodes in the horizontal plane, from right-anterior (V1) to left (V6).
_PRECORDIAL_ANGLES_DEG = (115.0, 95.0, 75.0, 55.0, 30.0, 5.0)
_PRECORDIAL_DIRECTIONS = np.stack([_unit(np.cos(np.radians(a)), 0.15, np.sin(np.radians(a)))
                                   for a in _PRECORDIAL_ANGLES_DEG])
_PRECORDIAL_GAIN = 1.4  # chest electrodes sit closer to the heart than limb electrodes
_LEAD_I = _unit(1.0, 0.0, 0.0)
_LEAD_II = _unit(np.cos(np.radians(60.0)), np.sin(np.radians(60.0)), 0.0)


@dataclass(frozen=True)
class BeatWaves:
    """The waves of one beat, K of them, relative to the R peak at a 1 s RR interval.

    ``centers`` (K,) s; ``widths`` (K,) s (Gaussian sigma); ``amplitudes`` (K,) mV;
    ``directions`` (K, 3) unit vectors; ``rate_scaled`` (K,) bool: the wave's delay
    scales with sqrt(RR) (repolarisation, Bazett) instead of staying fixed.
    """

    centers: np.ndarray
    widths: np.ndarray
    amplitudes: np.ndarray
    directions: np.ndarray
    rate_scaled: np.ndarray


@dataclass(frozen=True)
class EcgDevice:
    """What the recording device adds: ``gain`` (multiplies the heart's signal),
    ``noise_mv`` (white noise sigma), ``powerline_hz`` / ``powerline_mv`` (mains hum),
    ``wander_mv`` (typical amplitude of the slow baseline wander per lead)."""

    gain: float = 1.0
    noise_mv: float = 0.015
    powerline_hz: float = 50.0
    powerline_mv: float = 0.04
    wander_mv: float = 0.8


def _rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """A small random rotation (3, 3): the patient's individual heart axis."""
    angles = np.radians(rng.uniform(-max_deg, max_deg, size=3))
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def beat_waves(phenotype: Phenotype, rng: np.random.Generator) -> BeatWaves:
    """The wave model of one patient's beats, shaped by the phenotype (see module doc)."""
    voltage = (phenotype.lvedv / 120.0) ** 0.8
    low_ef = float(np.clip((50.0 - phenotype.lvef) / 35.0, 0.0, 1.0))  # 0 normal .. 1 severe
    qrs_width = 1.0 + 0.9 * low_ef
    t_amplitude = float(np.clip((phenotype.lvef - 38.0) / 15.0, -0.8, 1.0))
    p_width, p_height = (1.6, 1.3) if phenotype.shd else (1.0, 1.0)
    terminal_p = 0.15 if phenotype.shd else 0.0
    r_direction = _unit(0.7, 0.6, -0.2)
    waves = [  # name: center s, width s, amplitude mV, direction, rate-scaled
        ("P", -0.165, 0.024 * p_width, 0.15 * p_height, _unit(0.6, 0.7, 0.2), False),
        ("P2", -0.115, 0.022, terminal_p, _unit(0.45, 0.3, -0.85), False),
        ("Q", -0.026 * qrs_width, 0.008 * qrs_width, 0.12 * voltage, _unit(-0.7, 0.1, 0.7), False),
        ("R", 0.0, 0.011 * qrs_width, 1.3 * voltage, r_direction, False),
        ("S", 0.028 * qrs_width, 0.010 * qrs_width, 0.3 * voltage, _unit(-0.4, -0.4, -0.8), False),
        ("ST", 0.15, 0.05, -0.18 * low_ef, r_direction, True),
        ("T", 0.30, 0.05, 0.4 * t_amplitude, _unit(0.6, 0.6, -0.1), True),
    ]
    rotation = _rotation(rng, 15.0)
    jitter = np.exp(rng.normal(0.0, 0.08, size=len(waves)))
    return BeatWaves(
        centers=np.array([w[1] for w in waves]),
        widths=np.array([w[2] for w in waves]),
        amplitudes=np.array([w[3] for w in waves]) * jitter,
        directions=np.stack([w[4] for w in waves]) @ rotation.T,
        rate_scaled=np.array([w[5] for w in waves]),
    )


def r_peak_times(rng: np.random.Generator, heart_rate_bpm: float, start_s: float,
                 stop_s: float) -> np.ndarray:
    """R-peak times (s) covering [start_s, stop_s] with one beat of margin each side.

    RR intervals vary with breathing (about 4 %, 0.25 Hz) and beat to beat (1.5 %).
    """
    mean_rr = 60.0 / heart_rate_bpm
    breathing_phase = rng.uniform(0.0, 2.0 * np.pi)
    times = [start_s - mean_rr * rng.uniform(0.5, 1.5)]
    while times[-1] < stop_s + mean_rr:
        t = times[-1]
        rr = mean_rr * (1.0 + 0.04 * np.sin(2 * np.pi * 0.25 * t + breathing_phase)
                        + rng.normal(0.0, 0.015))
        times.append(t + rr)
    return np.asarray(times)


def heart_vector(t: np.ndarray, r_peaks: np.ndarray, waves: BeatWaves) -> np.ndarray:
    """The dipole (3, T) in mV at times ``t`` (T,) s for beats at ``r_peaks`` (B,) s."""
    rr = np.diff(r_peaks, append=r_peaks[-1] + (r_peaks[-1] - r_peaks[-2]))
    delay_scale = np.where(waves.rate_scaled[None, :], np.sqrt(rr)[:, None], 1.0)  # (B, K)
    centers = r_peaks[:, None] + waves.centers[None, :] * delay_scale               # (B, K)
    gaussians = np.exp(-0.5 * ((t[None, None, :] - centers[:, :, None])
                               / waves.widths[None, :, None]) ** 2)                 # (B, K, T)
    weights = waves.amplitudes[:, None] * waves.directions                           # (K, 3)
    return np.einsum("bkt,kd->dt", gaussians, weights)


def project_leads(vector: np.ndarray) -> np.ndarray:
    """The 12 standard leads (12, T) in ``LEADS`` order from a dipole (3, T)."""
    lead_i = _LEAD_I @ vector
    lead_ii = _LEAD_II @ vector
    limb = np.stack([lead_i, lead_ii, lead_ii - lead_i, -(lead_i + lead_ii) / 2.0,
                     lead_i - lead_ii / 2.0, lead_ii - lead_i / 2.0])
    precordial = _PRECORDIAL_GAIN * (_PRECORDIAL_DIRECTIONS @ vector)
    return np.concatenate([limb, precordial])


def device_artefacts(rng: np.random.Generator, t: np.ndarray, device: EcgDevice) -> np.ndarray:
    """Baseline wander (two slow sinusoids per lead, 0.1-0.5 Hz), mains hum and white
    noise, (12, T) mV."""
    n_leads = len(LEADS)
    freqs = rng.uniform(0.1, 0.5, size=(n_leads, 2, 1))
    phases = rng.uniform(0.0, 2 * np.pi, size=(n_leads, 2, 1))
    amplitudes = device.wander_mv * rng.uniform(0.3, 1.5, size=(n_leads, 2, 1))
    wander = (amplitudes * np.sin(2 * np.pi * freqs * t + phases)).sum(axis=1)
    hum = device.powerline_mv * np.sin(2 * np.pi * device.powerline_hz * t
                                       + rng.uniform(0.0, 2 * np.pi, size=(n_leads, 1)))
    return wander + hum + rng.normal(0.0, device.noise_mv, size=(n_leads, t.size))


def synthesize_ecg(phenotype: Phenotype, heart_rate_bpm: float, rng: np.random.Generator,
                   fs: float, duration_s: float = 10.0,
                   device: EcgDevice = EcgDevice()) -> np.ndarray:
    """A 12-lead ECG, float32 (12, round(fs * duration_s)) in mV, leads in ``LEADS`` order."""
    t = np.arange(int(round(fs * duration_s))) / fs
    waves = beat_waves(phenotype, rng)
    r_peaks = r_peak_times(rng, heart_rate_bpm, 0.0, duration_s)
    heart = project_leads(heart_vector(t, r_peaks, waves))
    return (device.gain * heart + device_artefacts(rng, t, device)).astype(np.float32)


def lead_ii_trace(phenotype: Phenotype, r_peaks: np.ndarray, t: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """Lead II (T,) mV at times ``t`` for given beats: the trace an echo scanner draws."""
    return _LEAD_II @ heart_vector(t, r_peaks, beat_waves(phenotype, rng))
