"""Synthetic 12-lead ECGs from a moving cardiac dipole.

Each beat is a sum of Gaussian waves (P, a second P hump, Q, R, S, ST, T) of a 3-D heart
vector; the 12 leads are projections of that vector on lead vectors. The limb leads follow
Einthoven and Goldberger exactly (III = II − I, aVR = −(I + II)/2, ...) whatever the
electrode placement. Coordinates: x to the patient's left, y to the feet, z to the front of
the chest. Amplitudes are in mV, times in seconds.

What an ECG carries, and where it comes from:

- **the phenotype** (shared with the echo; :class:`PhenotypeEffects` sets the strengths):
  low LVEF widens the QRS, lowers the R wave, depresses the ST segment and flattens then
  inverts the T wave; QRS voltage grows with LVEDV; SHD widens and splits the P wave and
  adds a negative terminal P in V1 (left atrial load);
- **the patient** (:class:`EcgTraits`, the same in all of a patient's recordings): the
  anatomical heart axis, individual wave amplitudes and the PR and QT intervals;
- **the recording** (:class:`RecordingSetup`, new for every ECG): the electrical axis moves
  with posture and breathing, the electrodes sit a little elsewhere (lead gains and
  directions), the heart rate changes;
- **the device** (:class:`EcgDevice`): gain, white noise, mains hum and baseline wander.

The recording-level nuisance is larger than both the patient's own signature and the
phenotype's effect, so that raw-signal similarity says more about how an ECG was recorded
than about the heart, and two ECGs of one patient differ about as much as ECGs of two
patients with the same phenotype.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from echo2ecg.synth.phenotypes import Phenotype
from echo2ecg.vocabulary import LEADS

WAVES = ("P", "P2", "Q", "R", "S", "ST", "T")


def _unit(*xyz: float) -> np.ndarray:
    vector = np.asarray(xyz, dtype=float)
    return vector / np.linalg.norm(vector)


# Precordial electrodes in the horizontal plane, from right-anterior (V1) to left (V6).
_PRECORDIAL_ANGLES_DEG = np.array([115.0, 95.0, 75.0, 55.0, 30.0, 5.0])
_PRECORDIAL_GAIN = 1.4  # chest electrodes sit closer to the heart than limb electrodes
_LEAD_I_ANGLE_DEG = 0.0  # frontal-plane lead angles (Einthoven triangle)
_LEAD_II_ANGLE_DEG = 60.0


@dataclass(frozen=True)
class PhenotypeEffects:
    """How strongly the phenotype shapes the ECG (the only link to the echo).

    ``qrs_widening``: relative QRS widening at severe LV dysfunction (LVEF 15 %);
    ``r_loss``: relative loss of R amplitude there; ``st_depression_mv``: ST depression
    there; ``t_inversion``: T amplitude falls from +1 (LVEF ≥ 50 %) to 1 − t_inversion
    (LVEF 15 %), relative to its normal height; ``voltage_exponent``: QRS voltage ∝
    (LVEDV / 120 ml) ^ exponent; ``shd_p_widening`` / ``shd_terminal_p_mv``: the P wave
    with structural heart disease.
    """

    qrs_widening: float = 0.55
    r_loss: float = 0.25
    st_depression_mv: float = 0.06
    t_inversion: float = 1.3
    voltage_exponent: float = 0.5
    shd_p_widening: float = 0.5
    shd_terminal_p_mv: float = 0.12


@dataclass(frozen=True)
class EcgTraits:
    """A patient's own ECG signature, the same in all of their recordings.

    ``rotation`` (3, 3): the anatomical heart axis; ``wave_gain`` (len(WAVES),) individual
    wave amplitudes; ``pr_scale`` / ``qt_scale``: the patient's PR and QT intervals
    relative to the typical ones.
    """

    rotation: np.ndarray
    wave_gain: np.ndarray
    pr_scale: float
    qt_scale: float


@dataclass(frozen=True)
class RecordingSetup:
    """What changes from one recording to the next: ``rotation`` (3, 3) of the electrical
    axis (posture, breathing), the limb and chest lead vectors (electrode placement) and
    the heart rate (beats per minute)."""

    rotation: np.ndarray
    limb_vectors: np.ndarray  # (2, 3): leads I and II
    precordial_vectors: np.ndarray  # (6, 3): V1..V6, gain included
    heart_rate_bpm: float


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


@dataclass(frozen=True)
class RecordingNuisance:
    """The spread of recording-level nuisance: electrical-axis turns (degrees, uniform
    ±, frontal plane and the other two axes), lead gain (log-normal sigma), electrode
    direction shifts (degrees) and heart-rate change (beats per minute, sigma)."""

    frontal_axis_deg: float = 30.0
    other_axes_deg: float = 15.0
    lead_gain_sigma: float = 0.22
    limb_direction_deg: float = 6.0
    precordial_shift_deg: float = 12.0
    precordial_jitter_deg: float = 6.0
    heart_rate_sd: float = 8.0


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


def _rotation(angles_deg: np.ndarray) -> np.ndarray:
    """Rotation (3, 3) by angles (degrees) about x, y and z, applied in that order."""
    cx, cy, cz = np.cos(np.radians(angles_deg))
    sx, sy, sz = np.sin(np.radians(angles_deg))
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def sample_traits(rng: np.random.Generator) -> EcgTraits:
    """A patient's ECG signature: heart axis within ±15°, wave amplitudes ±10 %, PR and QT
    within a few percent of typical."""
    return EcgTraits(
        rotation=_rotation(rng.uniform(-15.0, 15.0, size=3)),
        wave_gain=np.exp(rng.normal(0.0, 0.10, size=len(WAVES))),
        pr_scale=float(np.exp(rng.normal(0.0, 0.08))),
        qt_scale=float(np.exp(rng.normal(0.0, 0.05))),
    )


def sample_recording(
    rng: np.random.Generator,
    heart_rate_bpm: float,
    nuisance: RecordingNuisance = RecordingNuisance(),
) -> RecordingSetup:
    """One recording's setup around a patient's resting heart rate (bpm)."""
    frontal = rng.uniform(-nuisance.frontal_axis_deg, nuisance.frontal_axis_deg)
    others = rng.uniform(-nuisance.other_axes_deg, nuisance.other_axes_deg, size=2)
    rotation = _rotation(np.array([others[0], others[1], frontal]))
    limb_angles = np.radians(
        np.array([_LEAD_I_ANGLE_DEG, _LEAD_II_ANGLE_DEG])
        + rng.normal(0.0, nuisance.limb_direction_deg, size=2)
    )
    limb_gain = np.exp(rng.normal(0.0, nuisance.lead_gain_sigma, size=2))
    limb = (
        np.stack([np.cos(limb_angles), np.sin(limb_angles), np.zeros(2)], axis=1)
        * limb_gain[:, None]
    )
    chest_angles = np.radians(
        _PRECORDIAL_ANGLES_DEG
        + rng.normal(0.0, nuisance.precordial_shift_deg)
        + rng.normal(0.0, nuisance.precordial_jitter_deg, size=6)
    )
    chest = np.stack([np.cos(chest_angles), np.full(6, 0.15), np.sin(chest_angles)], axis=1)
    chest /= np.linalg.norm(chest, axis=1, keepdims=True)
    chest_gain = _PRECORDIAL_GAIN * np.exp(rng.normal(0.0, nuisance.lead_gain_sigma, size=6))
    rate = float(np.clip(heart_rate_bpm + rng.normal(0.0, nuisance.heart_rate_sd), 45.0, 130.0))
    return RecordingSetup(rotation, limb, chest * chest_gain[:, None], rate)


def standard_recording(heart_rate_bpm: float = 60.0) -> RecordingSetup:
    """A recording with textbook electrode placement and no axis change."""
    limb_angles = np.radians([_LEAD_I_ANGLE_DEG, _LEAD_II_ANGLE_DEG])
    limb = np.stack([np.cos(limb_angles), np.sin(limb_angles), np.zeros(2)], axis=1)
    chest_angles = np.radians(_PRECORDIAL_ANGLES_DEG)
    chest = np.stack([np.cos(chest_angles), np.full(6, 0.15), np.sin(chest_angles)], axis=1)
    chest = _PRECORDIAL_GAIN * chest / np.linalg.norm(chest, axis=1, keepdims=True)
    return RecordingSetup(np.eye(3), limb, chest, heart_rate_bpm)


def typical_traits() -> EcgTraits:
    """A patient without an individual signature."""
    return EcgTraits(np.eye(3), np.ones(len(WAVES)), 1.0, 1.0)


def beat_waves(
    phenotype: Phenotype, traits: EcgTraits, effects: PhenotypeEffects = PhenotypeEffects()
) -> BeatWaves:
    """The wave model of one patient's beats, shaped by the phenotype and the patient's
    signature (see the module docstring); the recording's axis is applied later."""
    voltage = (phenotype.lvedv / 120.0) ** effects.voltage_exponent
    low_ef = float(np.clip((50.0 - phenotype.lvef) / 35.0, 0.0, 1.0))  # 0 normal .. 1 severe
    qrs_width = 1.0 + effects.qrs_widening * low_ef
    r_height = 1.0 - effects.r_loss * low_ef
    t_height = 1.0 - effects.t_inversion * low_ef
    p_width = 1.0 + effects.shd_p_widening * phenotype.shd
    terminal_p = effects.shd_terminal_p_mv * phenotype.shd
    pr, qt = traits.pr_scale, traits.qt_scale
    r_direction = _unit(0.7, 0.6, -0.2)
    waves = [  # center s, width s, amplitude mV, direction, rate-scaled (in WAVES order)
        (-0.165 * pr, 0.024 * p_width, 0.15, _unit(0.6, 0.7, 0.2), False),
        (-0.165 * pr + 0.05 * p_width, 0.022, terminal_p, _unit(0.45, 0.3, -0.85), False),
        (-0.026 * qrs_width, 0.008 * qrs_width, 0.12 * voltage, _unit(-0.7, 0.1, 0.7), False),
        (0.0, 0.011 * qrs_width, 1.3 * voltage * r_height, r_direction, False),
        (0.028 * qrs_width, 0.010 * qrs_width, 0.3 * voltage, _unit(-0.4, -0.4, -0.8), False),
        (0.15 * qt, 0.05, -effects.st_depression_mv * low_ef, r_direction, True),
        (0.30 * qt, 0.05, 0.4 * t_height, _unit(0.6, 0.6, -0.1), True),
    ]
    return BeatWaves(
        centers=np.array([w[0] for w in waves]),
        widths=np.array([w[1] for w in waves]),
        amplitudes=np.array([w[2] for w in waves]) * traits.wave_gain,
        directions=np.stack([w[3] for w in waves]) @ traits.rotation.T,
        rate_scaled=np.array([w[4] for w in waves]),
    )


def r_peak_times(
    rng: np.random.Generator, heart_rate_bpm: float, start_s: float, stop_s: float
) -> np.ndarray:
    """R-peak times (s) covering [start_s, stop_s] with one beat of margin each side.

    RR intervals vary with breathing (about 4 %, 0.25 Hz) and beat to beat (1.5 %).
    """
    mean_rr = 60.0 / heart_rate_bpm
    breathing_phase = rng.uniform(0.0, 2.0 * np.pi)
    times = [start_s - mean_rr * rng.uniform(0.5, 1.5)]
    while times[-1] < stop_s + mean_rr:
        t = times[-1]
        rr = mean_rr * (
            1.0 + 0.04 * np.sin(2 * np.pi * 0.25 * t + breathing_phase) + rng.normal(0.0, 0.015)
        )
        times.append(t + rr)
    return np.asarray(times)


def heart_vector(t: np.ndarray, r_peaks: np.ndarray, waves: BeatWaves) -> np.ndarray:
    """The dipole (3, T) in mV at times ``t`` (T,) s for beats at ``r_peaks`` (B,) s."""
    rr = np.diff(r_peaks, append=r_peaks[-1] + (r_peaks[-1] - r_peaks[-2]))
    delay_scale = np.where(waves.rate_scaled[None, :], np.sqrt(rr)[:, None], 1.0)  # (B, K)
    centers = r_peaks[:, None] + waves.centers[None, :] * delay_scale  # (B, K)
    gaussians = np.exp(
        -0.5 * ((t[None, None, :] - centers[:, :, None]) / waves.widths[None, :, None]) ** 2
    )  # (B, K, T)
    weights = waves.amplitudes[:, None] * waves.directions  # (K, 3)
    return np.einsum("bkt,kd->dt", gaussians, weights)


def project_leads(vector: np.ndarray, recording: RecordingSetup) -> np.ndarray:
    """The 12 standard leads (12, T) in ``LEADS`` order from a dipole (3, T)."""
    turned = recording.rotation @ vector
    lead_i, lead_ii = recording.limb_vectors @ turned
    limb = np.stack(
        [
            lead_i,
            lead_ii,
            lead_ii - lead_i,
            -(lead_i + lead_ii) / 2.0,
            lead_i - lead_ii / 2.0,
            lead_ii - lead_i / 2.0,
        ]
    )
    return np.concatenate([limb, recording.precordial_vectors @ turned])


def device_artefacts(rng: np.random.Generator, t: np.ndarray, device: EcgDevice) -> np.ndarray:
    """Baseline wander (two slow sinusoids per lead, 0.1-0.5 Hz), mains hum and white
    noise, (12, T) mV."""
    n_leads = len(LEADS)
    freqs = rng.uniform(0.1, 0.5, size=(n_leads, 2, 1))
    phases = rng.uniform(0.0, 2 * np.pi, size=(n_leads, 2, 1))
    amplitudes = device.wander_mv * rng.uniform(0.3, 1.5, size=(n_leads, 2, 1))
    wander = (amplitudes * np.sin(2 * np.pi * freqs * t + phases)).sum(axis=1)
    hum = device.powerline_mv * np.sin(
        2 * np.pi * device.powerline_hz * t + rng.uniform(0.0, 2 * np.pi, size=(n_leads, 1))
    )
    return wander + hum + rng.normal(0.0, device.noise_mv, size=(n_leads, t.size))


@dataclass(frozen=True)
class EcgModel:
    """Everything that shapes a synthetic ECG besides the heart: the phenotype's effect
    strengths, the spread of recording nuisance and the device."""

    effects: PhenotypeEffects = field(default_factory=PhenotypeEffects)
    nuisance: RecordingNuisance = field(default_factory=RecordingNuisance)
    device: EcgDevice = field(default_factory=EcgDevice)


def synthesize_ecg(
    phenotype: Phenotype,
    traits: EcgTraits,
    recording: RecordingSetup,
    rng: np.random.Generator,
    fs: float,
    duration_s: float = 10.0,
    model: EcgModel = EcgModel(),
) -> np.ndarray:
    """A 12-lead ECG, float32 (12, round(fs * duration_s)) in mV, leads in ``LEADS`` order."""
    t = np.arange(int(round(fs * duration_s))) / fs
    waves = beat_waves(phenotype, traits, model.effects)
    r_peaks = r_peak_times(rng, recording.heart_rate_bpm, 0.0, duration_s)
    heart = project_leads(heart_vector(t, r_peaks, waves), recording)
    device = model.device
    return (device.gain * heart + device_artefacts(rng, t, device)).astype(np.float32)


def lead_ii_trace(
    phenotype: Phenotype, traits: EcgTraits, r_peaks: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """Lead II (T,) mV at times ``t`` for given beats: the trace an echo scanner draws."""
    lead_ii = standard_recording().limb_vectors[1]
    return lead_ii @ heart_vector(t, r_peaks, beat_waves(phenotype, traits))
