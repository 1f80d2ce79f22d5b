"""Latent cardiac phenotypes of the synthetic patients.

A patient's phenotype drives both modalities: the echo renderer draws chambers and valves
from it, the ECG synthesiser shapes waves from it. Volumes are in ml, LVEF in percent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from echo2ecg.vocabulary import lvef_class_of

# Sampling bands of the LVEF classes (echo2ecg.vocabulary.LVEF_CLASSES), clear of the class
# borders so that rounding never moves a patient into the neighbouring class.
EF_CLASS_BANDS = ((18.0, 39.5), (41.5, 48.5), (51.0, 70.0))


@dataclass(frozen=True)
class Phenotype:
    """One heart: LV volumes (ml), LVEF (%) and structural heart disease (0/1).

    ``lvsv = lvedv - lvesv`` and ``lvef = 100 * lvsv / lvedv`` hold exactly up to the
    rounding of the stored values (volumes to 0.1 ml, EF to 0.01 %).
    """

    lvedv: float
    lvesv: float
    lvsv: float
    lvef: float
    shd: int


def phenotype_from_volumes(lvedv: float, lvef_target: float, shd: int) -> Phenotype:
    """A consistent phenotype from an end-diastolic volume (ml) and a target LVEF (%).

    ESV is derived from the target and rounded first; SV and EF are then recomputed from
    the rounded volumes, so the stored table is self-consistent.
    """
    edv = round(float(lvedv), 1)
    esv = round(edv * (1.0 - lvef_target / 100.0), 1)
    sv = round(edv - esv, 1)
    return Phenotype(lvedv=edv, lvesv=esv, lvsv=sv, lvef=round(100.0 * sv / edv, 2), shd=int(shd))


def sample_patient(
    rng: np.random.Generator, ef_class_mix: tuple[float, float, float], shd_prevalence: float
) -> Phenotype:
    """A patient's latent phenotype.

    The EF class is drawn from ``ef_class_mix`` and EF uniformly inside its band. Hearts
    with low EF are dilated (EDV rises as EF falls), and SHD is more likely with low EF
    but not determined by it (a logistic link around ``shd_prevalence``).
    """
    mix = np.asarray(ef_class_mix, dtype=float)
    low, high = EF_CLASS_BANDS[int(rng.choice(3, p=mix / mix.sum()))]
    lvef = rng.uniform(low, high)
    dilation = 2.2 * max(0.0, 52.0 - lvef)  # ml of remodelling per EF point below normal
    lvedv = float(np.clip((105.0 + dilation) * np.exp(rng.normal(0.0, 0.16)), 55.0, 320.0))
    shd_logit = np.log(shd_prevalence / (1.0 - shd_prevalence)) + 0.06 * (45.0 - lvef)
    shd = int(rng.random() < 1.0 / (1.0 + np.exp(-shd_logit)))
    return phenotype_from_volumes(lvedv, lvef, shd)


def sample_study(rng: np.random.Generator, patient: Phenotype) -> Phenotype:
    """The phenotype an echo study measures: the patient's, with a few percent of
    measurement variation; the EF class stays the patient's."""
    low, high = EF_CLASS_BANDS[lvef_class_of(patient.lvef)]
    lvef = float(np.clip(patient.lvef + rng.normal(0.0, 1.0), low, high))
    lvedv = patient.lvedv * np.exp(rng.normal(0.0, 0.03))
    return phenotype_from_volumes(lvedv, lvef, patient.shd)


def resting_heart_rate(rng: np.random.Generator, phenotype: Phenotype) -> float:
    """Resting heart rate (beats per minute); failing hearts beat a little faster."""
    rate = rng.normal(70.0, 8.0) + 0.25 * max(0.0, 50.0 - phenotype.lvef)
    return float(np.clip(rate, 52.0, 112.0))
