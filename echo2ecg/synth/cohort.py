"""The demo cohort: a synthetic hospital written in real file formats, with manifests.

``generate_cohort(out_dir, spec)`` writes one cohort; ``generate_demo(out_dir, internal,
external)`` writes ``out_dir/internal`` and ``out_dir/external``; ``demo_specs(seed, scale)``
gives the two default specs. Everything is deterministic given ``CohortSpec.seed``.

Layout of a cohort folder (paths in the manifests are relative to it)::

    echo/<patient_id>/<study_id>/IM0001.dcm    echo views (DICOM US multi-frame)
    ecg/<patient_id>/<ecg_id>.hea|.dat|.dcm|.npz|.npy|.xml
    echo_views.csv  ecgs.csv  labels.csv  corrupt_files.csv

Manifests (CSV, exactly these columns, in this order):

``echo_views.csv`` (only when ``spec.write_echo``), one row per echo view file
    ``path, patient_id, study_id, view_id, acquisition_time``
``ecgs.csv``, one row per ECG file
    ``path, patient_id, ecg_id, acquisition_time, format, fs``; ``format`` is wfdb | dicom |
    numpy | cardiosoft | xml (the MUSE exports, told by their root element) | hl7aecg;
    ``fs`` (Hz) is filled only for bare ``.npy`` files; WFDB rows give the ``.hea``
``labels.csv``, the echo report table, one row per study
    ``patient_id, study_id, acquisition_time, lvef, lvedv, lvesv, lvsv, shd``; volumes in
    ml, LVEF in %, SHD 0/1
``corrupt_files.csv``, the answer key of the deliberately bad files (not a pipeline input)
    ``path, kind``; kind is truncated_echo | report_screenshot | flat_ecg

What the cohort shares between modalities is the patient's phenotype and nothing else:
the ECGs follow it (and the patient's ECG signature and each recording's setup), the echo
views show it view by view (and the patient's anatomy and each clip's nuisance); see
:mod:`~echo2ecg.synth.ecg_signals` and :mod:`~echo2ecg.synth.echo_views`. Patients whose
studies have no DICOM views (``imaged_patients`` < ``n_patients``) bring echo reports and
ECGs only.

``acquisition_time`` is ISO 8601 (seconds). Identifiers look like real ones: patient ids are
MRN-like (``MRN0123456``), study ids accession-like (``ACC12345678``), view ids are SOP
Instance UIDs, ECG ids ``ECG12345678``. The bad files are listed in the manifests like any
other file; the pipeline has to reject them with a reason.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from pydicom.uid import generate_uid

from echo2ecg import vocabulary
from echo2ecg.synth.ecg_files import (
    write_cardiosoft_xml,
    write_dicom_ecg,
    write_hl7_aecg,
    write_muse_xml,
    write_npy,
    write_npz,
    write_wfdb,
)
from echo2ecg.synth.ecg_signals import (
    EcgDevice,
    EcgModel,
    EcgTraits,
    PhenotypeEffects,
    RecordingNuisance,
    sample_recording,
    sample_traits,
    synthesize_ecg,
)
from echo2ecg.synth.echo_dicom import (
    ECHO_ENCODINGS,
    DicomIdentity,
    DicomInstance,
    write_echo,
    write_report_screenshot,
    write_truncated_echo,
)
from echo2ecg.synth.echo_views import (
    APICAL_VIEWS,
    OTHER_VIEWS,
    PARASTERNAL_VIEWS,
    Anatomy,
    render_clip,
    sample_anatomy,
)
from echo2ecg.synth.phenotypes import Phenotype, resting_heart_rate, sample_patient, sample_study
from echo2ecg.vocabulary import LEADS

# the manifests the demo writes: every column, optional ones too
ECHO_VIEW_COLUMNS = (*vocabulary.ECHO_VIEW_COLUMNS, *vocabulary.ECHO_VIEW_OPTIONAL_COLUMNS)
ECG_COLUMNS = (*vocabulary.ECG_COLUMNS, *vocabulary.ECG_OPTIONAL_COLUMNS)
CORRUPT_COLUMNS = ("path", "kind")
DEMO_MANIFESTS = (
    "internal_echo_views",
    "internal_ecgs",
    "internal_labels",
    "internal_corrupt_files",
    "internal_ecg_truth",
    "external_ecgs",
    "external_labels",
    "external_corrupt_files",
    "external_ecg_truth",
)
CORRUPT_KINDS = ("truncated_echo", "report_screenshot", "flat_ecg")
PAIRING_WINDOW = timedelta(days=7)
XML_SCHEMAS = ("cardiosoft", "muse", "hl7aecg")  # as echo2ecg.data.ecg_xml names them
_XML_WRITERS = {
    "cardiosoft": write_cardiosoft_xml,
    "muse": write_muse_xml,
    "hl7aecg": write_hl7_aecg,
}

_FIRST_NAMES = {
    "F": ("JANE", "MARY", "ANNA", "LINDA", "SARAH", "EMMA", "GRACE", "OLIVIA"),
    "M": ("JOHN", "PETER", "DAVID", "JAMES", "OMAR", "LUCAS", "HENRY", "SAMUEL"),
}
_LAST_NAMES = (
    "DOE",
    "ROE",
    "SMITH",
    "MILLER",
    "GARCIA",
    "NGUYEN",
    "MUELLER",
    "ROSSI",
    "KOWALSKI",
    "OKAFOR",
    "TANAKA",
    "LARSEN",
    "DUBOIS",
    "SILVA",
    "COHEN",
    "BROWN",
)


@dataclass(frozen=True)
class CohortSpec:
    """What to generate. Ranges are inclusive (low, high); mixes are relative weights
    (normalised), realised as exact counts so that small cohorts still contain every kind.

    The external demo cohort is the same generator with shifted knobs: another ECG device
    (``ecg_fs_mix``, ``ecg_gain``, ``ecg_noise_mv``, ``powerline_hz``), another phenotype
    mix (``ef_class_mix``, ``shd_prevalence``) and no echo files (``write_echo=False``).
    """

    n_patients: int = 64
    # Of them, patients whose echo studies come with their DICOM views (None: all, when
    # write_echo); the others have echo reports (labels) and ECGs only.
    imaged_patients: int | None = None
    studies_per_patient: tuple[int, int] = (1, 2)
    views_per_study: tuple[int, int] = (3, 4)  # beyond 5, views repeat
    frac_subcostal: float = 0.0  # studies that add a subcostal (IVC) clip to their views
    # imaged studies with one apical clip taken through a poor acoustic window
    # (echo_views.render_clip's poor_window); a study with a single apical clip keeps it good
    frac_poor_window: float = 0.0
    ecgs_per_patient: tuple[int, int] = (1, 3)
    report_only_ecgs_per_patient: tuple[int, int] = (1, 3)
    frames_per_clip: int = 40
    rows: int = 300  # echo frame height, pixels
    cols: int = 400  # echo frame width, pixels
    fps: float = 30.0  # echo frame rate, Hz
    ecg_duration_s: float = 10.0
    frac_ecg_beyond_7_days: float = 0.2  # ECGs more than 7 days from every study of the patient
    ecg_format_mix: dict[str, float] = field(
        default_factory=lambda: {"wfdb": 0.7, "dicom": 0.15, "numpy": 0.15}
    )
    frac_bare_npy: float = 0.5  # of the numpy-format ECGs; the rest are .npz
    ecg_fs_mix: dict[int, float] = field(  # sampling rate (Hz) -> weight
        default_factory=lambda: {500: 0.7, 250: 0.15, 1000: 0.15}
    )
    frac_scrambled_leads: float = 0.1  # ECGs stored in a shuffled lead order (named leads)
    # WFDB ECGs written instead as vendor XML exports, this many of each schema
    # (GE CardioSoft, GE MUSE with its 8 leads, HL7 aECG), chosen by a stream of their own
    xml_ecgs_per_schema: int = 0
    echo_encoding_mix: dict[str, float] = field(  # see echo_dicom.ECHO_ENCODINGS
        default_factory=lambda: {"jpeg_ybr": 0.7, "mono_rle": 0.2, "rgb": 0.05, "mono_raw": 0.05}
    )
    frac_without_us_regions: float = 0.15  # views without (0018,6011) Ultrasound Regions
    # of the views with regions, those that also tag the ECG strip (an ECG-trace region)
    frac_ecg_trace_region: float = 0.5
    n_corrupt: int = 3  # bad files, cycling through CORRUPT_KINDS (only flat ECGs without echo)
    write_echo: bool = True  # False: ECGs and echo reports only (external cohort)
    ef_class_mix: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)  # reduced, mildly, normal
    shd_prevalence: float = 0.35  # about this share of patients has SHD
    ecg_gain: float = 1.0  # device gain on the heart's signal
    ecg_noise_mv: float = 0.015  # white noise sigma, mV, of the device's typical recording
    # each recording's noise: ecg_noise_mv times a log-uniform factor in this range (its
    # electrodes and the patient's stillness), planted truth in the ecg_truth table
    ecg_noise_spread: tuple[float, float] = (0.5, 8.0)
    ecg_wander_mv: float = 0.8  # typical baseline wander amplitude per lead, mV
    powerline_hz: float = 50.0
    ecg_effects: PhenotypeEffects = field(default_factory=PhenotypeEffects)
    ecg_nuisance: RecordingNuisance = field(default_factory=RecordingNuisance)
    hospital: str = "St. Elsewhere General Hospital"  # burned into echo frames and headers
    patient_id_prefix: str = "MRN"
    first_study_date: str = "2019-01-01"  # first studies fall in [date, date + span)
    study_span_days: int = 1460
    seed: int = 7

    def __post_init__(self) -> None:
        problems = []
        for name in (
            "studies_per_patient",
            "views_per_study",
            "ecgs_per_patient",
            "report_only_ecgs_per_patient",
        ):
            low, high = getattr(self, name)
            if not 1 <= low <= high:
                problems.append(f"{name} must be (low, high) with 1 <= low <= high")
        for name in (
            "frac_ecg_beyond_7_days",
            "frac_bare_npy",
            "frac_scrambled_leads",
            "frac_without_us_regions",
            "frac_ecg_trace_region",
            "frac_subcostal",
            "frac_poor_window",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must lie in [0, 1]")
        if not 0.0 < self.shd_prevalence < 1.0:
            problems.append("shd_prevalence must lie in (0, 1)")
        low, high = self.ecg_noise_spread
        if not 0.0 < low <= high:
            problems.append("ecg_noise_spread must be (low, high) with 0 < low <= high")
        for name, known in (
            ("ecg_format_mix", vocabulary.ECG_FORMATS),
            ("echo_encoding_mix", ECHO_ENCODINGS),
        ):
            unknown = set(getattr(self, name)) - set(known)
            if unknown:
                problems.append(f"{name}: unknown {', '.join(sorted(unknown))}")
        mixes = {
            "ecg_format_mix": list(self.ecg_format_mix.values()),
            "echo_encoding_mix": list(self.echo_encoding_mix.values()),
            "ecg_fs_mix": list(self.ecg_fs_mix.values()),
            "ef_class_mix": list(self.ef_class_mix),
        }
        for name, weights in mixes.items():
            if not weights or min(weights) < 0 or sum(weights) <= 0:
                problems.append(f"{name} needs non-negative weights with a positive sum")
        if self.xml_ecgs_per_schema < 0:
            problems.append("xml_ecgs_per_schema must be >= 0")
        if self.n_patients < 1 or self.frames_per_clip < 2 or min(self.rows, self.cols) < 48:
            problems.append("need n_patients >= 1, frames_per_clip >= 2, rows and cols >= 48")
        if self.imaged_patients is not None and not 1 <= self.imaged_patients <= self.n_patients:
            problems.append("imaged_patients must lie in [1, n_patients]")
        if problems:
            raise ValueError("invalid CohortSpec: " + "; ".join(problems))


def demo_specs(seed: int = 7, scale: float = 1.0) -> tuple[CohortSpec, CohortSpec]:
    """The embedded demo: (internal, external) specs; ``scale`` multiplies the patient counts.

    The frozen echo encoder is the demo's fixed cost (1 to 3 s per view on 2 CPU cores), so
    views are few and spent where they teach: 96 patients with one study of both apical
    views (the LV's two planes), half of them also a parasternal view and a tenth a
    subcostal one; three studies in four have one of their two apical clips taken through
    a poor acoustic window, a plane to distrust beside one to trust. ECGs are cheap, so the
    imaged patients are inpatients with 3 to 5 ECGs within a week of their study, and 204 more
    patients bring echo reports and ECGs only: they serve the kNN evaluation (reference
    and test sets), never training or retrieval. The external hospital has another ECG
    device and phenotype mix and enough patients for several hundred test ECGs.
    """
    internal = CohortSpec(
        n_patients=max(8, round(300 * scale)),
        imaged_patients=max(4, round(96 * scale)),
        seed=seed,
        studies_per_patient=(1, 1),
        views_per_study=(2, 3),
        frac_subcostal=0.1,
        frac_poor_window=0.75,
        xml_ecgs_per_schema=3,
        ecgs_per_patient=(3, 5),
        report_only_ecgs_per_patient=(1, 3),
        frac_ecg_beyond_7_days=0.1,
        frames_per_clip=34,
        echo_encoding_mix={"jpeg_ybr": 0.8, "mono_rle": 0.15, "rgb": 0.025, "mono_raw": 0.025},
    )
    external = CohortSpec(
        n_patients=max(8, round(900 * scale)),
        seed=seed + 1,
        write_echo=False,
        n_corrupt=0,
        studies_per_patient=(1, 1),
        report_only_ecgs_per_patient=(2, 3),
        xml_ecgs_per_schema=3,
        frac_ecg_beyond_7_days=0.1,
        ecg_format_mix={"dicom": 0.5, "wfdb": 0.3, "numpy": 0.2},
        ecg_fs_mix={250: 0.6, 1000: 0.4},
        ecg_gain=1.25,
        ecg_noise_mv=0.035,
        powerline_hz=60.0,
        ef_class_mix=(0.25, 0.25, 0.5),
        shd_prevalence=0.2,
        hospital="Lakeside Regional Medical Center",
        patient_id_prefix="LRM",
    )
    return internal, external


# --------------------------------------------------------------------------- planning


@dataclass
class ViewPlan:
    """One file of an echo study: a view (``kind`` 'view') or a bad file."""

    kind: str
    view: str
    encoding: str
    with_regions: bool
    sop_uid: str
    series_uid: str
    acquired: datetime
    path: str
    poor_window: bool = False  # apical views: a rib shadow and a foreshortened LV
    with_ecg_region: bool = False  # the regions also tag the ECG strip


@dataclass
class StudyPlan:
    """One echo study: its report phenotype, heart rate (bpm) during the scan, and files."""

    study_id: str
    study_uid: str
    time: datetime
    phenotype: Phenotype
    heart_rate: float
    views: list[ViewPlan] = field(default_factory=list)


@dataclass
class EcgPlan:
    """One ECG file; ``file_type`` is wfdb | dicom | npz | npy | cardiosoft | muse |
    hl7aecg; ``lead_order`` indexes LEADS."""

    ecg_id: str
    time: datetime
    file_type: str
    fs: int
    lead_order: tuple[int, ...]
    path: str
    flat: bool = False


@dataclass
class PatientPlan:
    """One patient: identity, latent phenotype (drives both modalities), the non-phenotype
    anatomy the echo shows, the ECG signature, resting heart rate (bpm), and whether the
    echo studies come with their DICOM views (``with_images``) or as reports only."""

    index: int
    patient_id: str
    name: str
    birth_date: str
    sex: str
    phenotype: Phenotype
    heart_rate: float
    anatomy: Anatomy
    traits: EcgTraits
    with_images: bool = True
    studies: list[StudyPlan] = field(default_factory=list)
    ecgs: list[EcgPlan] = field(default_factory=list)


def _stream(spec: CohortSpec, *keys: int) -> np.random.Generator:
    """An independent random stream per purpose and item, so that each item is
    reproducible on its own."""
    return np.random.default_rng([spec.seed, *keys])


def _uid(spec: CohortSpec, *parts: object) -> str:
    """A deterministic, real-looking DICOM UID."""
    return generate_uid(entropy_srcs=[str(spec.seed), spec.hospital, *map(str, parts)])


def _allocate(rng: np.random.Generator, n: int, mix: dict) -> list:
    """``n`` labels in the proportions of ``mix`` (largest remainder), shuffled; every label
    with positive weight appears at least once when ``n`` allows."""
    keys = [k for k, w in mix.items() if w > 0]
    weights = np.array([mix[k] for k in keys], dtype=float)
    exact = n * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    if n >= len(keys):
        counts = np.maximum(counts, 1)
    while counts.sum() > n:
        counts[np.argmax(counts)] -= 1
    for i in np.argsort(-(exact - np.floor(exact)), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    labels = [k for k, c in zip(keys, counts) for _ in range(c)]
    return [labels[i] for i in rng.permutation(n)]


def _flags(rng: np.random.Generator, n: int, fraction: float) -> list[bool]:
    """Exactly round(n * fraction) True values, at random positions."""
    flags = np.zeros(n, dtype=bool)
    flags[rng.permutation(n)[: int(round(n * fraction))]] = True
    return flags.tolist()


def _unique_numbers(rng: np.random.Generator, n: int, digits: int) -> list[int]:
    """``n`` distinct random integers of exactly ``digits`` digits."""
    numbers: list[int] = []
    seen: set[int] = set()
    while len(numbers) < n:
        number = int(rng.integers(10 ** (digits - 1), 10**digits))
        if number not in seen:
            seen.add(number)
            numbers.append(number)
    return numbers


def _view_order(rng: np.random.Generator, n_views: int) -> list[str]:
    """Views of one study: the two apical views first (the LV's two planes, as a
    biplane volume needs), then a parasternal view, then the others (the subcostal view
    among them) in random order; beyond five views the list repeats (studies often hold
    several clips of a view)."""
    first = list(APICAL_VIEWS) + [str(rng.choice(PARASTERNAL_VIEWS))]
    rest = [v for v in PARASTERNAL_VIEWS + OTHER_VIEWS if v not in first]
    cycle = first + [rest[i] for i in rng.permutation(len(rest))]
    return [cycle[i % len(cycle)] for i in range(n_views)]


def _count(rng: np.random.Generator, low_high: tuple[int, int]) -> int:
    """A count drawn uniformly from an inclusive range."""
    return int(rng.integers(low_high[0], low_high[1] + 1))


def _plan_patient(
    spec: CohortSpec, index: int, patient_id: str, study_numbers: list[int], with_images: bool
) -> PatientPlan:
    rng = _stream(spec, 1, index)
    phenotype = sample_patient(rng, spec.ef_class_mix, spec.shd_prevalence)
    sex = str(rng.choice(["F", "M"]))
    name = f"{rng.choice(_LAST_NAMES)}^{rng.choice(_FIRST_NAMES[sex])}"
    first = datetime.fromisoformat(spec.first_study_date) + timedelta(
        days=int(rng.integers(0, spec.study_span_days)),
        hours=int(rng.integers(8, 17)),
        minutes=int(rng.integers(0, 60)),
        seconds=int(rng.integers(0, 60)),
    )
    birth = first - timedelta(days=int(rng.uniform(25, 90) * 365.25))
    patient = PatientPlan(
        index,
        patient_id,
        name,
        birth.strftime("%Y%m%d"),
        sex,
        phenotype,
        resting_heart_rate(rng, phenotype),
        anatomy=sample_anatomy(_stream(spec, 4, index)),
        traits=sample_traits(_stream(spec, 5, index)),
        with_images=with_images,
    )
    time = first
    for number in study_numbers:
        study_id = f"ACC{number:08d}"
        patient.studies.append(
            StudyPlan(
                study_id,
                _uid(spec, "study", study_id),
                time,
                sample_study(rng, phenotype),
                patient.heart_rate + rng.normal(0.0, 4.0),
            )
        )
        time += timedelta(days=int(rng.integers(30, 400)), minutes=int(rng.integers(-120, 120)))
    return patient


def _echo_path(patient: PatientPlan, study: StudyPlan, number: int) -> str:
    return f"echo/{patient.patient_id}/{study.study_id}/IM{number:04d}.dcm"


def _add_view(
    spec: CohortSpec,
    patient: PatientPlan,
    study: StudyPlan,
    kind: str,
    view: str,
    encoding: str,
    with_regions: bool,
) -> ViewPlan:
    number = len(study.views) + 1
    plan = ViewPlan(
        kind,
        view,
        encoding,
        with_regions,
        sop_uid=_uid(spec, "sop", study.study_id, number),
        series_uid=_uid(spec, "series", study.study_id, number),
        acquired=study.time + timedelta(minutes=2 * number, seconds=17 * number),
        path=_echo_path(patient, study, number),
    )
    study.views.append(plan)
    return plan


def _plan_views(spec: CohortSpec, patients: list[PatientPlan], rng: np.random.Generator) -> None:
    per_study = [
        (p, s, _view_order(rng, _count(rng, spec.views_per_study)))
        for p in patients
        if p.with_images
        for s in p.studies
    ]
    for (_, _, views), subcostal in zip(
        per_study, _flags(rng, len(per_study), spec.frac_subcostal)
    ):
        if subcostal and OTHER_VIEWS[0] not in views:
            views.append(OTHER_VIEWS[0])
    n_views = sum(len(views) for _, _, views in per_study)
    encodings = iter(_allocate(rng, n_views, spec.echo_encoding_mix))
    without_regions = iter(_flags(rng, n_views, spec.frac_without_us_regions))
    for patient, study, views in per_study:
        for view in views:
            _add_view(
                spec,
                patient,
                study,
                "view",
                view,
                next(encodings),
                with_regions=not next(without_regions),
            )
    # a stream of its own, so that the share of poor windows changes nothing else
    # one plane of the study, never all: the study keeps a view a reader can trust
    poor_rng = _stream(spec, 6)
    apical = [[v for v in s.views if v.view in APICAL_VIEWS] for _, s, _ in per_study]
    for planes, poor in zip(apical, _flags(poor_rng, len(apical), spec.frac_poor_window)):
        if poor and len(planes) > 1:
            planes[int(poor_rng.integers(len(planes)))].poor_window = True
    tagged = [v for _, s, _ in per_study for v in s.views if v.with_regions]
    for plan, ecg in zip(tagged, _flags(_stream(spec, 8), len(tagged), spec.frac_ecg_trace_region)):
        plan.with_ecg_region = ecg


def _ecg_time(rng: np.random.Generator, studies: list[StudyPlan], beyond_window: bool) -> datetime:
    """An ECG time near one of the patient's studies: within 6.5 days of it, or more than
    7 days away from every study."""
    anchor = studies[int(rng.integers(len(studies)))].time
    if not beyond_window:
        return anchor + timedelta(hours=float(rng.uniform(-6.5, 6.5) * 24))
    for _ in range(100):
        sign = 1 if rng.random() < 0.5 else -1
        candidate = anchor + sign * timedelta(hours=float(rng.uniform(8.0, 120.0) * 24))
        if all(abs(candidate - s.time) > PAIRING_WINDOW + timedelta(hours=12) for s in studies):
            return candidate
    return max(s.time for s in studies) + timedelta(days=30)


def _file_types(rng: np.random.Generator, formats: list[str], frac_bare_npy: float) -> list[str]:
    """wfdb | dicom | npz | npy per ECG: numpy-format ECGs split into .npz and bare .npy."""
    n_numpy = formats.count("numpy")
    bare = iter(_flags(rng, n_numpy, frac_bare_npy))
    return [("npy" if next(bare) else "npz") if f == "numpy" else f for f in formats]


def _plan_ecgs(spec: CohortSpec, patients: list[PatientPlan], rng: np.random.Generator) -> None:
    counts = [
        _count(rng, spec.ecgs_per_patient if p.with_images else spec.report_only_ecgs_per_patient)
        for p in patients
    ]
    n_ecgs = sum(counts)
    beyond = iter(_flags(rng, n_ecgs, spec.frac_ecg_beyond_7_days))
    formats = _allocate(rng, n_ecgs, spec.ecg_format_mix)
    file_types = iter(_file_types(rng, formats, spec.frac_bare_npy))
    rates = iter(_allocate(rng, n_ecgs, spec.ecg_fs_mix))
    scrambled = iter(_flags(rng, n_ecgs, spec.frac_scrambled_leads))
    numbers = iter(_unique_numbers(rng, n_ecgs + spec.n_corrupt, 8))
    for patient, count in zip(patients, counts):
        for _ in range(count):
            file_type, fs, scramble = next(file_types), int(next(rates)), next(scrambled)
            order = tuple(range(len(LEADS)))
            if scramble and file_type != "npy":  # a bare .npy has no lead names to follow
                order = tuple(int(i) for i in rng.permutation(len(LEADS)))
            ecg_id = f"ECG{next(numbers):08d}"
            time = _ecg_time(rng, patient.studies, next(beyond))
            patient.ecgs.append(
                EcgPlan(ecg_id, time, file_type, fs, order, _ecg_path(patient, ecg_id, file_type))
            )
    _plan_xml_ecgs(spec, patients)
    _plan_flat_ecgs(spec, patients, rng, numbers)


def _plan_xml_ecgs(spec: CohortSpec, patients: list[PatientPlan]) -> None:
    """Rewrite ``spec.xml_ecgs_per_schema`` WFDB plans per XML schema as that schema's
    export (a stream of its own, so that nothing else in the cohort changes)."""
    wfdb_plans = [e for p in patients for e in p.ecgs if e.file_type == "wfdb"]
    chosen = _stream(spec, 7).permutation(len(wfdb_plans))
    for k, index in enumerate(chosen[: len(XML_SCHEMAS) * spec.xml_ecgs_per_schema]):
        plan = wfdb_plans[index]
        plan.file_type = XML_SCHEMAS[k % len(XML_SCHEMAS)]
        plan.path = Path(plan.path).with_suffix(".xml").as_posix()


def _ecg_path(patient: PatientPlan, ecg_id: str, file_type: str) -> str:
    suffix = {"wfdb": ".hea", "dicom": ".dcm", "npz": ".npz", "npy": ".npy"}[file_type]
    return f"ecg/{patient.patient_id}/{ecg_id}{suffix}"


def _corrupt_kinds(spec: CohortSpec) -> list[str]:
    kinds = CORRUPT_KINDS if spec.write_echo else ("flat_ecg",)
    return [kinds[i % len(kinds)] for i in range(spec.n_corrupt)]


def _plan_flat_ecgs(
    spec: CohortSpec, patients: list[PatientPlan], rng: np.random.Generator, numbers: Iterator[int]
) -> None:
    """Flat-line WFDB records, each within the pairing window of a study, so that only
    rejecting them keeps them out of the pairs."""
    for _ in range(_corrupt_kinds(spec).count("flat_ecg")):
        patient = patients[int(rng.integers(len(patients)))]
        ecg_id = f"ECG{next(numbers):08d}"
        patient.ecgs.append(
            EcgPlan(
                ecg_id,
                _ecg_time(rng, patient.studies, False),
                "wfdb",
                500,
                tuple(range(len(LEADS))),
                _ecg_path(patient, ecg_id, "wfdb"),
                flat=True,
            )
        )


def _plan_bad_echo_files(
    spec: CohortSpec, patients: list[PatientPlan], rng: np.random.Generator
) -> None:
    """Truncated clips and report screenshots, added to random studies as extra files."""
    for kind in _corrupt_kinds(spec):
        if kind == "flat_ecg":
            continue
        imaged = [p for p in patients if p.with_images]
        patient = imaged[int(rng.integers(len(imaged)))]
        study = patient.studies[int(rng.integers(len(patient.studies)))]
        view = str(rng.choice(APICAL_VIEWS))
        _add_view(spec, patient, study, kind, view, "rgb", with_regions=False)


def plan_cohort(spec: CohortSpec) -> list[PatientPlan]:
    """Everything about the cohort except pixels and samples: patients, phenotypes,
    studies, views, ECGs, identifiers, times, encodings and file paths."""
    rng = _stream(spec, 0)
    patient_numbers = _unique_numbers(rng, spec.n_patients, 7)
    n_studies = [_count(rng, spec.studies_per_patient) for _ in range(spec.n_patients)]
    study_numbers = iter(_unique_numbers(rng, sum(n_studies), 8))
    imaged = (
        0
        if not spec.write_echo
        else (spec.n_patients if spec.imaged_patients is None else spec.imaged_patients)
    )
    patients = [
        _plan_patient(
            spec,
            i,
            f"{spec.patient_id_prefix}{number:07d}",
            [next(study_numbers) for _ in range(n)],
            with_images=i < imaged,
        )
        for i, (number, n) in enumerate(zip(patient_numbers, n_studies))
    ]
    if spec.write_echo:
        _plan_views(spec, patients, rng)
        _plan_bad_echo_files(spec, patients, rng)
    _plan_ecgs(spec, patients, rng)
    return patients


# --------------------------------------------------------------------------- writing


def _identity(
    spec: CohortSpec, patient: PatientPlan, study_uid: str, accession: str, time: datetime
) -> DicomIdentity:
    return DicomIdentity(
        patient.name,
        patient.patient_id,
        patient.birth_date,
        patient.sex,
        study_uid,
        accession,
        time,
        spec.hospital,
    )


def _write_study(spec: CohortSpec, root: Path, patient: PatientPlan, study_index: int) -> None:
    study = patient.studies[study_index]
    identity = _identity(spec, patient, study.study_uid, study.study_id, study.time)
    for number, plan in enumerate(study.views, start=1):
        instance = DicomInstance(plan.series_uid, plan.sop_uid, plan.acquired, number, 1)
        path = root / plan.path
        if plan.kind == "report_screenshot":
            write_report_screenshot(path, spec.rows, spec.cols, identity, instance)
            continue
        clip = view_clip(spec, patient, study_index, number)
        if plan.kind == "truncated_echo":
            write_truncated_echo(path, clip.frames, spec.fps, identity, instance)
        else:
            write_echo(
                path,
                clip.frames,
                plan.encoding,
                spec.fps,
                identity,
                instance,
                clip.sector if plan.with_regions else None,
                clip.strip if plan.with_ecg_region else None,
            )


def ecg_noise_mv(spec: CohortSpec, patient: PatientPlan, ecg_index: int) -> float:
    """The white-noise sigma (mV) of one planned ECG: the device's ``ecg_noise_mv`` times a
    log-uniform factor in ``ecg_noise_spread``, drawn from the recording's own stream (so
    that nothing else in the world depends on it)."""
    low, high = spec.ecg_noise_spread
    rng = _stream(spec, 11, patient.index, ecg_index)
    return spec.ecg_noise_mv * float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _ecg_model(spec: CohortSpec, noise_mv: float) -> EcgModel:
    device = EcgDevice(
        gain=spec.ecg_gain,
        noise_mv=noise_mv,
        powerline_hz=spec.powerline_hz,
        wander_mv=spec.ecg_wander_mv,
    )
    return EcgModel(effects=spec.ecg_effects, nuisance=spec.ecg_nuisance, device=device)


def ecg_signal(spec: CohortSpec, patient: PatientPlan, ecg_index: int) -> np.ndarray:
    """The samples of one planned ECG, float32 (12, T) mV in ``LEADS`` order at its rate
    (zeros for a flat-line file): a new recording setup of the patient's heart."""
    plan = patient.ecgs[ecg_index]
    rng = _stream(spec, 3, patient.index, ecg_index)
    n_samples = int(round(plan.fs * spec.ecg_duration_s))
    if plan.flat:
        return np.zeros((len(LEADS), n_samples), dtype=np.float32)
    model = _ecg_model(spec, ecg_noise_mv(spec, patient, ecg_index))
    recording = sample_recording(rng, patient.heart_rate, model.nuisance)
    return synthesize_ecg(
        patient.phenotype, patient.traits, recording, rng, plan.fs, spec.ecg_duration_s, model
    )


def view_clip(spec: CohortSpec, patient: PatientPlan, study_index: int, number: int):
    """The rendered frames of view ``number`` (1-based) of a planned study (a RenderedClip)."""
    study = patient.studies[study_index]
    rng = _stream(spec, 2, patient.index, study_index, number)
    return render_clip(
        study.phenotype,
        patient.anatomy,
        patient.traits,
        study.views[number - 1].view,
        rng,
        n_frames=spec.frames_per_clip,
        rows=spec.rows,
        cols=spec.cols,
        fps=spec.fps,
        heart_rate_bpm=study.heart_rate,
        hospital=spec.hospital,
        poor_window=study.views[number - 1].poor_window,
    )


def _write_ecg(spec: CohortSpec, root: Path, patient: PatientPlan, ecg_index: int) -> None:
    plan = patient.ecgs[ecg_index]
    signal = ecg_signal(spec, patient, ecg_index)
    order = list(plan.lead_order)
    signal, leads = signal[order], [LEADS[i] for i in order]
    path = root / plan.path
    if plan.file_type == "wfdb":
        write_wfdb(path, signal, plan.fs, leads, plan.time)
    elif plan.file_type == "dicom":
        identity = _identity(
            spec, patient, _uid(spec, "ecg-study", plan.ecg_id), plan.ecg_id, plan.time
        )
        instance = DicomInstance(
            _uid(spec, "ecg-series", plan.ecg_id),
            _uid(spec, "ecg-sop", plan.ecg_id),
            plan.time,
            1,
            1,
        )
        write_dicom_ecg(path, signal, plan.fs, leads, identity, instance)
    elif plan.file_type in XML_SCHEMAS:
        identity = _identity(
            spec, patient, _uid(spec, "ecg-study", plan.ecg_id), plan.ecg_id, plan.time
        )
        _XML_WRITERS[plan.file_type](path, signal, plan.fs, leads, identity, plan.time)
    elif plan.file_type == "npz":
        write_npz(path, signal, plan.fs, leads)
    else:
        write_npy(path, signal)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _manifests(spec: CohortSpec, patients: list[PatientPlan]) -> dict[str, pd.DataFrame]:
    views = [
        (v.path, p.patient_id, s.study_id, _iso(v.acquired), v.sop_uid)
        for p in patients
        for s in p.studies
        for v in s.views
    ]
    # XML exports listed by vendor name and as plain "xml" (the reader tells the schema)
    format_of = {
        "wfdb": "wfdb",
        "dicom": "dicom",
        "npz": "numpy",
        "npy": "numpy",
        "cardiosoft": "cardiosoft",
        "muse": "xml",
        "hl7aecg": "hl7aecg",
    }
    ecgs = [
        (
            e.path,
            p.patient_id,
            e.ecg_id,
            _iso(e.time),
            format_of[e.file_type],
            str(e.fs) if e.file_type == "npy" else "",
        )
        for p in patients
        for e in p.ecgs
    ]
    labels = [
        (
            p.patient_id,
            s.study_id,
            _iso(s.time),
            s.phenotype.lvef,
            s.phenotype.lvedv,
            s.phenotype.lvesv,
            s.phenotype.lvsv,
            s.phenotype.shd,
        )
        for p in patients
        for s in p.studies
    ]
    corrupt = [
        (v.path, v.kind) for p in patients for s in p.studies for v in s.views if v.kind != "view"
    ]
    corrupt += [(e.path, "flat_ecg") for p in patients for e in p.ecgs if e.flat]
    # what only the generator knows: each recording's planted noise (not an input manifest)
    truth = [
        (e.ecg_id, ecg_noise_mv(spec, p, j))
        for p in patients
        for j, e in enumerate(p.ecgs)
        if not e.flat
    ]
    tables = {}
    if spec.write_echo:
        tables["echo_views"] = pd.DataFrame(views, columns=list(ECHO_VIEW_COLUMNS))
    tables["ecgs"] = pd.DataFrame(ecgs, columns=list(ECG_COLUMNS))
    tables["labels"] = pd.DataFrame(labels, columns=list(vocabulary.LABEL_COLUMNS))
    tables["corrupt_files"] = pd.DataFrame(corrupt, columns=list(CORRUPT_COLUMNS))
    tables["ecg_truth"] = pd.DataFrame(truth, columns=["ecg_id", "noise_mv"])
    return tables


def _write_patients(spec: CohortSpec, root: Path, patients: list[PatientPlan]) -> None:
    """Every file of the given patients: their echo views and their ECGs."""
    for patient in patients:
        if patient.with_images:
            for study_index in range(len(patient.studies)):
                _write_study(spec, root, patient, study_index)
        for ecg_index in range(len(patient.ecgs)):
            _write_ecg(spec, root, patient, ecg_index)


def _write_files(jobs: list[tuple[CohortSpec, Path, list[PatientPlan]]], workers: int) -> None:
    """Write the files of each (spec, folder, patients) job, in ``workers`` processes.
    Every file depends only on its own patient's plan, so the order does not matter."""
    chunks = [
        (spec, root, patients[i : i + 8])
        for spec, root, patients in jobs
        for i in range(0, len(patients), 8)
    ]
    if workers <= 1:
        for chunk in chunks:
            _write_patients(*chunk)
        return
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        for done in pool.map(_write_patients, *zip(*chunks)):
            del done


def _write_manifests(
    spec: CohortSpec,
    root: Path,
    patients: list[PatientPlan],
    paths: Mapping[str, str | Path] | None = None,
) -> dict[str, Path]:
    """Each manifest at ``paths[name]`` (default ``root/<name>.csv``), its file paths
    relative to the manifest's own folder, as manifests are read."""
    written = {}
    for name, table in _manifests(spec, patients).items():
        path = Path((paths or {}).get(name, root / f"{name}.csv"))
        path.parent.mkdir(parents=True, exist_ok=True)
        if "path" in table and path.parent.resolve() != root.resolve():
            table["path"] = [os.path.relpath(root / p, path.parent) for p in table["path"]]
        table.to_csv(path, index=False)
        written[name] = path
    return written


def generate_cohort(out_dir: str | Path, spec: CohortSpec, workers: int = 1) -> dict[str, Path]:
    """Write one cohort into ``out_dir`` (files in ``workers`` processes) and return its
    manifests by name (``echo_views`` when ``spec.write_echo``, ``ecgs``, ``labels``,
    ``corrupt_files``)."""
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    patients = plan_cohort(spec)
    _write_files([(spec, root, patients)], workers)
    return _write_manifests(spec, root, patients)


def generate_demo(
    out_dir: str | Path,
    internal: CohortSpec,
    external: CohortSpec,
    workers: int = 1,
    manifests: Mapping[str, str | Path] | None = None,
) -> dict[str, Path]:
    """Write ``out_dir/internal`` and ``out_dir/external`` (files in ``workers``
    processes) and their manifests, keyed ``<cohort>_<name>`` (``internal_echo_views``,
    ``external_labels``, ...): at the paths ``manifests`` gives for a key, else
    ``out_dir/<cohort>/<name>.csv``. Returns every manifest's path by key."""
    manifests = dict(manifests or {})
    unknown = set(manifests) - set(DEMO_MANIFESTS)
    if unknown:
        raise ValueError(f"not a demo manifest: {', '.join(sorted(unknown))}")
    cohorts = [
        (name, spec, Path(out_dir) / name, plan_cohort(spec))
        for name, spec in (("internal", internal), ("external", external))
    ]
    for _, _, root, _ in cohorts:
        root.mkdir(parents=True, exist_ok=True)
    _write_files([(spec, root, patients) for _, spec, root, patients in cohorts], workers)
    written = {}
    for name, spec, root, patients in cohorts:
        paths = {
            table: path
            for key, path in manifests.items()
            for table in [key.removeprefix(f"{name}_")]
            if key != table
        }
        for table, path in _write_manifests(spec, root, patients, paths).items():
            written[f"{name}_{table}"] = path
    return written
