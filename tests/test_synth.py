import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import torch
import wfdb
from conftest import shipped_config
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    SecondaryCaptureImageStorage,
    UltrasoundMultiFrameImageStorage,
)
from scipy.signal import find_peaks

from echo2ecg.data.ecg_formats import read_ecg as read_ecg_file
from echo2ecg.data.manifest import load_ecgs, load_echo_views, load_labels
from echo2ecg.synth.cohort import (
    ECG_COLUMNS,
    ECHO_VIEW_COLUMNS,
    CohortSpec,
    demo_specs,
    ecg_noise_mv,
    ecg_signal,
    generate_cohort,
    generate_demo,
    plan_cohort,
)
from echo2ecg.synth.ecg_signals import (
    EcgDevice,
    EcgModel,
    PhenotypeEffects,
    sample_recording,
    sample_traits,
    standard_recording,
    synthesize_ecg,
    typical_traits,
)
from echo2ecg.synth.echo_views import (
    APICAL_VIEWS,
    PARASTERNAL_VIEWS,
    VIEW_SHOWS,
    VIEWS,
    lv_plane_axes,
    plane_shortening,
    render_clip,
    rib_shadow,
    sample_anatomy,
    scan_sector,
)
from echo2ecg.synth.phenotypes import phenotype_from_volumes, sample_patient
from echo2ecg.vocabulary import LABEL_COLUMNS, LEADS, lvef_class_of

TINY = CohortSpec(
    n_patients=4,
    studies_per_patient=(1, 2),
    views_per_study=(3, 4),
    ecgs_per_patient=(2, 3),
    frames_per_clip=6,
    rows=96,
    cols=128,
    frac_ecg_beyond_7_days=0.3,
    ecg_format_mix={"wfdb": 1, "dicom": 1, "numpy": 2},
    frac_scrambled_leads=0.3,
    seed=11,
)
EXPECTED_PIXELS = {  # encoding -> (transfer syntax, photometric interpretation)
    "rgb": (ExplicitVRLittleEndian, "RGB"),
    "jpeg_ybr": (JPEGBaseline8Bit, "YBR_FULL_422"),
    "mono_rle": (RLELossless, "MONOCHROME2"),
    "mono_raw": (ExplicitVRLittleEndian, "MONOCHROME2"),
}


def read_manifest(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    manifests = generate_cohort(root, TINY)
    return root, manifests, {name: read_manifest(path) for name, path in manifests.items()}


def good_rows(tables, name):
    bad = set(tables["corrupt_files"]["path"])
    return tables[name][~tables[name]["path"].isin(bad)]


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_files_and_another_seed_does_not(cohort, tmp_path):
    root, _, tables = cohort
    generate_cohort(tmp_path / "again", TINY)
    assert tree_digest(tmp_path / "again") == tree_digest(root)
    other = plan_cohort(dataclasses.replace(TINY, seed=12))
    assert [p.patient_id for p in other] != list(tables["labels"]["patient_id"].unique())


def test_manifests_have_exactly_the_documented_columns_and_paths_exist(cohort):
    root, manifests, tables = cohort
    assert tuple(tables["echo_views"].columns) == ECHO_VIEW_COLUMNS
    assert tuple(tables["ecgs"].columns) == ECG_COLUMNS
    assert tuple(tables["labels"].columns) == LABEL_COLUMNS
    for name in ("echo_views", "ecgs"):
        for path in tables[name]["path"]:
            assert not Path(path).is_absolute() and (root / path).is_file(), path
    # The pipeline's own manifest readers accept them.
    assert len(load_echo_views(manifests["echo_views"])) == len(tables["echo_views"])
    assert len(load_ecgs(manifests["ecgs"])) == len(tables["ecgs"])
    assert len(load_labels(manifests["labels"])) == len(tables["labels"])
    assert set(tables["echo_views"]["study_id"]) == set(tables["labels"]["study_id"])
    assert tables["labels"]["patient_id"].str.fullmatch(r"MRN\d{7}").all()
    assert tables["labels"]["study_id"].str.fullmatch(r"ACC\d{8}").all()


def test_every_echo_file_is_a_us_multiframe_in_its_declared_encoding(cohort):
    root, _, tables = cohort
    declared = {v.path: v.encoding for p in plan_cohort(TINY) for s in p.studies for v in s.views}
    seen = set()
    for row in good_rows(tables, "echo_views").itertuples():
        ds = pydicom.dcmread(root / row.path)
        assert ds.SOPClassUID == UltrasoundMultiFrameImageStorage and ds.Modality == "US"
        assert ds.PatientID == row.patient_id and ds.AccessionNumber == row.study_id
        assert ds.SOPInstanceUID == row.view_id
        encoding = declared[row.path]
        pixels = (ds.file_meta.TransferSyntaxUID, ds.PhotometricInterpretation)
        assert pixels == EXPECTED_PIXELS[encoding]
        channels = (3,) if ds.SamplesPerPixel == 3 else ()
        assert ds.pixel_array.shape == (TINY.frames_per_clip, TINY.rows, TINY.cols) + channels
        seen.add(encoding)
    assert seen == set(EXPECTED_PIXELS)


def test_ybr_jpeg_views_decode_to_grey_ultrasound_and_a_green_ecg_trace(cohort):
    root, _, tables = cohort
    paths = [root / p for p in good_rows(tables, "echo_views")["path"]]
    jpeg = [
        p
        for p in paths
        if pydicom.dcmread(p, stop_before_pixels=True).PhotometricInterpretation == "YBR_FULL_422"
    ]
    assert jpeg
    frames = pydicom.dcmread(jpeg[0]).pixel_array.astype(int)  # converted to RGB
    red, green, blue = frames[..., 0], frames[..., 1], frames[..., 2]
    scan = frames[:, : TINY.rows * 3 // 4, TINY.cols // 4 : TINY.cols // 2]
    assert np.abs(scan[..., 0] - scan[..., 1]).mean() < 4  # grey stays grey
    assert ((green - red > 80) & (green - blue > 40)).any()  # the ECG trace stays green


def test_some_views_carry_ultrasound_regions_and_some_do_not(cohort):
    root, _, tables = cohort
    has_regions = []
    for path in good_rows(tables, "echo_views")["path"]:
        ds = pydicom.dcmread(root / path, stop_before_pixels=True)
        has_regions.append("SequenceOfUltrasoundRegions" in ds)
        if has_regions[-1]:
            region = ds.SequenceOfUltrasoundRegions[0]
            assert 0 <= region.RegionLocationMinX0 < region.RegionLocationMaxX1 < TINY.cols
            assert 0 <= region.RegionLocationMinY0 < region.RegionLocationMaxY1 < TINY.rows
    assert any(has_regions) and not all(has_regions)


def read_ecg(root: Path, row) -> tuple[np.ndarray, float, list[str]]:
    """(12, T) mV, fs, lead names as stored."""
    path = root / row.path
    if row.format == "wfdb":
        record = wfdb.rdrecord(str(path.with_suffix("")))
        return record.p_signal.T, record.fs, record.sig_name
    if row.format == "dicom":
        ds = pydicom.dcmread(path)
        group = ds.WaveformSequence[0]
        names = [
            channel.ChannelSourceSequence[0].CodeMeaning.removeprefix("Lead ")
            for channel in group.ChannelDefinitionSequence
        ]
        return ds.waveform_array(0).T, float(group.SamplingFrequency), names
    if path.suffix == ".xml":  # vendor exports: the pipeline's reader (tests/test_ecg_xml.py)
        ecg = read_ecg_file(path, fmt=row.format)
        return ecg.signal, ecg.fs, list(LEADS)
    if path.suffix == ".npz":
        arrays = np.load(path)
        return arrays["signal"], float(arrays["fs"]), list(arrays["leads"])
    return np.load(path), float(row.fs), list(LEADS)


def test_ecg_files_read_back_with_their_shape_rate_and_leads(cohort):
    root, _, tables = cohort
    rates, scrambled, suffixes = set(), 0, set()
    for row in tables["ecgs"].itertuples():
        signal, fs, names = read_ecg(root, row)
        assert signal.shape == (12, round(fs * TINY.ecg_duration_s)), row.path
        assert sorted(names) == sorted(LEADS)
        assert (row.fs != "") == row.path.endswith(".npy")
        rates.add(fs)
        scrambled += names != list(LEADS)
        suffixes.add(Path(row.path).suffix)
    assert rates == {250.0, 500.0, 1000.0}
    assert scrambled > 0
    assert suffixes == {".hea", ".dcm", ".npz", ".npy"}


def test_phenotypes_are_consistent(cohort):
    labels = cohort[2]["labels"].astype({c: float for c in ("lvef", "lvedv", "lvesv", "lvsv")})
    np.testing.assert_allclose(labels["lvsv"], labels["lvedv"] - labels["lvesv"], atol=0.051)
    np.testing.assert_allclose(labels["lvef"], 100 * labels["lvsv"] / labels["lvedv"], atol=0.01)
    assert set(labels["shd"]) <= {"0", "1"}


def test_demo_default_represents_all_three_ef_classes():
    internal, _ = demo_specs()
    patients = plan_cohort(internal)
    classes = np.bincount([lvef_class_of(p.phenotype.lvef) for p in patients], minlength=3)
    assert (classes >= 0.2 * internal.n_patients).all(), classes
    imaged = np.bincount(
        [lvef_class_of(p.phenotype.lvef) for p in patients if p.with_images], minlength=3
    )
    assert (imaged >= 0.2 * internal.imaged_patients).all(), imaged


def test_some_ecgs_fall_within_seven_days_of_a_study_and_some_do_not(cohort):
    tables = cohort[2]
    ecgs = tables["ecgs"].assign(time=pd.to_datetime(tables["ecgs"]["acquisition_time"]))
    studies = tables["labels"].assign(time=pd.to_datetime(tables["labels"]["acquisition_time"]))
    gaps = []
    for ecg in ecgs.itertuples():
        own_studies = studies[studies.patient_id == ecg.patient_id]
        gaps.append(min(abs(ecg.time - study.time) for study in own_studies.itertuples()))
    within = sum(gap <= pd.Timedelta(days=7) for gap in gaps)
    assert 0 < within < len(gaps)


def test_deliberately_bad_files_are_listed_and_broken(cohort):
    root, _, tables = cohort
    corrupt = tables["corrupt_files"].set_index("kind")["path"]
    assert set(corrupt.index) == {"truncated_echo", "report_screenshot", "flat_ecg"}
    views = set(tables["echo_views"]["path"])
    assert corrupt["truncated_echo"] in views and corrupt["report_screenshot"] in views
    assert corrupt["flat_ecg"] in set(tables["ecgs"]["path"])
    with pytest.raises(ValueError):
        _ = pydicom.dcmread(root / corrupt["truncated_echo"]).pixel_array
    screenshot = pydicom.dcmread(root / corrupt["report_screenshot"])
    assert screenshot.SOPClassUID == SecondaryCaptureImageStorage
    assert "NumberOfFrames" not in screenshot
    flat = wfdb.rdrecord(str((root / corrupt["flat_ecg"]).with_suffix("")))
    assert np.ptp(flat.p_signal) == 0


ANATOMY = sample_anatomy(np.random.default_rng(4))
TRAITS = sample_traits(np.random.default_rng(5))


def render(phenotype, view, seed, n_frames, anatomy=ANATOMY, traits=TRAITS, poor_window=False):
    return render_clip(
        phenotype,
        anatomy,
        traits,
        view,
        np.random.default_rng(seed),
        n_frames=n_frames,
        rows=120,
        cols=160,
        fps=30.0,
        heart_rate_bpm=75.0,
        hospital="Test Hospital",
        poor_window=poor_window,
    )


def test_end_systolic_volume_is_visible_without_motion():
    rng = np.random.default_rng(0)
    phenotypes = [sample_patient(rng, (1 / 3, 1 / 3, 1 / 3), 0.3) for _ in range(10)]
    dark = []
    for seed, phenotype in enumerate(phenotypes):
        clip = render(phenotype, "A4C", seed, n_frames=12)
        mean_frame = clip.frames[..., 0].mean(axis=0)  # averaging over frames removes the motion
        dark.append(((mean_frame < 25) & clip.sector.mask(120, 160)).sum())
    assert np.corrcoef(dark, [p.lvesv for p in phenotypes])[0, 1] > 0.8


def test_valve_disease_shows_as_bright_leaflets_in_parasternal_views_only():
    def brightest(shd, view):
        clip = render(phenotype_from_volumes(120.0, 55.0, shd), view, seed=3, n_frames=8)
        mean_frame = clip.frames[..., 0].mean(axis=0)
        return np.percentile(mean_frame[clip.sector.mask(120, 160)], 99.5)

    assert brightest(1, "PLAX") > brightest(0, "PLAX") + 20
    assert brightest(1, "PSAX") > brightest(0, "PSAX") + 20
    assert brightest(1, "A4C") == brightest(0, "A4C")


def sector_pixels(phenotype, view, seed=3, **kwargs):
    """The scan sector of a clip (everything the pipeline keeps; the ECG strip and the
    burned-in text lie outside it)."""
    clip = render(phenotype, view, seed, n_frames=6, **kwargs)
    return clip.frames[:, clip.sector.mask(120, 160)]


@pytest.mark.parametrize("view", VIEWS)
def test_each_view_shows_only_its_phenotypes(view):
    """Change one phenotype at a time (same clip nuisance): a view changes exactly when it
    shows that phenotype (VIEW_SHOWS)."""
    base = phenotype_from_volumes(130.0, 45.0, 0)
    changes = {
        "lvef": phenotype_from_volumes(130.0, 62.0, 0),  # volumes and EF
        "shd": phenotype_from_volumes(130.0, 45.0, 1),
    }
    reference = sector_pixels(base, view)
    for changed, phenotype in changes.items():
        shown = changed in VIEW_SHOWS[view]
        differs = not np.array_equal(sector_pixels(phenotype, view), reference)
        assert differs == shown, (view, changed)


def test_the_patients_anatomy_shows_in_every_view_and_the_ecg_signature_in_none():
    phenotype = phenotype_from_volumes(130.0, 45.0, 1)
    other_anatomy = sample_anatomy(np.random.default_rng(40))
    other_traits = sample_traits(np.random.default_rng(50))
    for view in VIEWS:
        reference = sector_pixels(phenotype, view)
        assert not np.array_equal(sector_pixels(phenotype, view, anatomy=other_anatomy), reference)
        # the ECG signature reaches only the burned-in strip, outside the sector
        assert np.array_equal(sector_pixels(phenotype, view, traits=other_traits), reference)


def poor_window_pixels(phenotype, view, seed=3):
    return sector_pixels(phenotype, view, seed, poor_window=True)


@pytest.mark.parametrize("view", APICAL_VIEWS)
def test_a_poor_window_shows_nothing_of_the_hearts_lv_and_looks_it(view):
    """Through a poor window the sector no longer depends on the heart's phenotype (the
    foreshortened LV is another's), and the rib's shadow makes the clip look different
    from a good one of the same heart."""
    small, large = phenotype_from_volumes(90.0, 65.0, 0), phenotype_from_volumes(220.0, 25.0, 0)
    assert np.array_equal(poor_window_pixels(small, view), poor_window_pixels(large, view))
    assert not np.array_equal(sector_pixels(small, view), sector_pixels(large, view))
    assert poor_window_pixels(small, view).mean() < 0.9 * sector_pixels(small, view).mean()
    with pytest.raises(ValueError, match="apical"):
        poor_window_pixels(small, "PLAX")
    # the clip says which heart it drew: the patient's, or another's through the poor window
    assert render(small, view, 3, n_frames=6).shown == small
    shown = render(small, view, 3, n_frames=6, poor_window=True).shown
    assert shown != small and shown == render(large, view, 3, n_frames=6, poor_window=True).shown


def test_the_rib_shadow_darkens_a_wedge_of_the_left_of_the_fan_only():
    sector = scan_sector(300, 400, np.random.default_rng(0))
    shadow = rib_shadow(300, 400, sector, np.random.default_rng(1))
    inside = sector.mask(300, 400)
    left = inside.copy()
    left[:, int(sector.apex_x) :] = False
    assert shadow.min() == pytest.approx(0.2, abs=1e-6) and shadow.max() == 1.0
    assert np.all(shadow[inside & ~left] == 1.0)  # the LV lies right of the fan's centre
    assert 0.15 < np.mean(shadow[left] < 0.5) < 0.6


def test_a_share_of_studies_have_one_poor_apical_plane_and_no_other_view_a_poor_window():
    spec = dataclasses.replace(TINY, n_patients=40, frac_poor_window=0.25)
    studies = [s for p in plan_cohort(spec) for s in p.studies]
    views = [v for s in studies for v in s.views if v.kind == "view"]
    poor_per_study = [sum(v.poor_window for v in s.views) for s in studies]
    assert set(poor_per_study) == {0, 1}  # never both planes: a study keeps one to trust
    assert sum(poor_per_study) == round(0.25 * len(studies))
    assert all(v.view in APICAL_VIEWS for v in views if v.poor_window)
    # the share draws from a stream of its own: everything else is planned as without it
    plain = [v for p in plan_cohort(TINY) for s in p.studies for v in s.views]
    assert [(v.view, v.path) for v in plain] == [
        (v.view, v.path)
        for p in plan_cohort(dataclasses.replace(TINY, frac_poor_window=0.5))
        for s in p.studies
        for v in s.views
    ]


def test_one_apical_plane_shows_the_volumes_roughly_and_both_exactly():
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(200):
        phenotype, anatomy = sample_patient(rng, (1 / 3, 1 / 3, 1 / 3), 0.3), sample_anatomy(rng)
        areas = [
            np.prod(lv_plane_axes(phenotype, anatomy, np.zeros(1), plane))
            for plane in (True, False)
        ]
        shortening = [plane_shortening(phenotype, anatomy, plane) for plane in (True, False)]
        rows.append((phenotype.lvedv, phenotype.lvef, *areas, *shortening))
    edv, ef, a4c, a2c, s4c, s2c = np.log(np.array(rows)).T
    # biplane: the two areas' product is a power of the volume, exactly
    assert np.corrcoef(a4c + a2c, edv)[0, 1] > 0.9999
    assert np.corrcoef(a4c, edv)[0, 1] < 0.95 and np.corrcoef(a2c, edv)[0, 1] < 0.95
    # (1 - EF) = (length ratio)(diameter ratios): both planes' shortening give it exactly
    residual = np.log(1 - np.exp(ef) / 100)
    both = np.log(1 - np.exp(s4c)) + np.log(1 - np.exp(s2c))
    assert np.corrcoef(both, residual)[0, 1] > 0.9999
    assert abs(np.corrcoef(np.log(1 - np.exp(s4c)), residual)[0, 1]) < 0.9


def quiet_model(**effects):
    return EcgModel(
        effects=PhenotypeEffects(**effects),
        device=EcgDevice(noise_mv=0.0, powerline_mv=0.0, wander_mv=0.0),
    )


def quiet_ecg(phenotype, recording=None, traits=None, seed=1, model=None):
    return synthesize_ecg(
        phenotype,
        traits or typical_traits(),
        recording or standard_recording(60.0),
        np.random.default_rng(seed),
        500.0,
        model=model or quiet_model(),
    )


def test_ecg_morphology_follows_the_phenotype():
    fs = 500.0

    def ecg(edv, ef, shd=0):
        return quiet_ecg(phenotype_from_volumes(edv, ef, shd))

    def mean_t_wave(signal):
        """Lead II about 300 ms after each R peak, mV."""
        lead_ii = signal[LEADS.index("II")]
        r_peaks, _ = find_peaks(lead_ii, height=0.5, distance=int(0.4 * fs))
        return np.mean([lead_ii[r + 140 : r + 160].mean() for r in r_peaks[:-1]])

    v6 = LEADS.index("V6")
    assert np.ptp(ecg(200, 60)[v6]) > 1.2 * np.ptp(ecg(100, 60)[v6])  # voltage grows with EDV
    assert mean_t_wave(ecg(120, 60)) > 0.1 and mean_t_wave(ecg(120, 20)) < 0.0  # T inversion
    assert not np.allclose(ecg(120, 60, shd=1), ecg(120, 60))  # SHD changes the P wave
    assert np.allclose(
        quiet_ecg(
            phenotype_from_volumes(120, 60, 0),
            model=quiet_model(qrs_widening=0, r_loss=0, st_depression_mv=0, t_inversion=0),
        ),
        quiet_ecg(
            phenotype_from_volumes(120, 25, 0),
            model=quiet_model(qrs_widening=0, r_loss=0, st_depression_mv=0, t_inversion=0),
        ),
    )  # effects switch off


def test_limb_leads_obey_einthoven_whatever_the_recording():
    recording = sample_recording(np.random.default_rng(3), 70.0)
    signal = quiet_ecg(phenotype_from_volumes(120, 45, 0), recording=recording)
    lead = {name: signal[i] for i, name in enumerate(LEADS)}
    np.testing.assert_allclose(lead["III"], lead["II"] - lead["I"], atol=1e-5)
    np.testing.assert_allclose(lead["aVR"], -(lead["I"] + lead["II"]) / 2, atol=1e-5)
    np.testing.assert_allclose(lead["aVF"], lead["II"] - lead["I"] / 2, atol=1e-5)


def test_recording_nuisance_outweighs_the_patients_signature():
    """Two recordings of one patient differ more than two patients with the same
    phenotype recorded the same way: the phenotype is what all of a patient's ECGs share."""
    phenotype = phenotype_from_volumes(130, 45, 0)
    rng = np.random.default_rng(9)
    traits = [sample_traits(rng) for _ in range(20)]
    recordings = [sample_recording(rng, 60.0) for _ in range(20)]
    same_patient = [
        np.abs(
            quiet_ecg(phenotype, recordings[i], traits[0])
            - quiet_ecg(phenotype, recordings[i + 1], traits[0])
        ).mean()
        for i in range(0, 20, 2)
    ]
    same_recording = [
        np.abs(
            quiet_ecg(phenotype, recordings[0], traits[i])
            - quiet_ecg(phenotype, recordings[0], traits[i + 1])
        ).mean()
        for i in range(0, 20, 2)
    ]
    assert np.mean(same_patient) > 1.3 * np.mean(same_recording)


def test_random_ecg_features_carry_some_but_not_much_lvef():
    """The demo's ECGs through the demo-scale encoder at random init: LVEF kNN AUROC is
    modest, so that alignment has room to help (the issue's aim: 0.65-0.78)."""
    from echo2ecg.data.ecg import prepare_ecg
    from echo2ecg.data.ecg_formats import RawEcg
    from echo2ecg.evaluate.metrics import balanced_subset, knn_scores, lvef_class, macro_auroc
    from echo2ecg.models import ECGEncoder

    internal, _ = demo_specs()
    spec = dataclasses.replace(
        internal,
        n_patients=360,
        imaged_patients=1,
        n_corrupt=0,
        report_only_ecgs_per_patient=(2, 2),
        frac_scrambled_leads=0.0,
    )
    patients = plan_cohort(spec)[1:]
    signals = np.stack(
        [
            prepare_ecg(RawEcg(ecg_signal(spec, p, j), p.ecgs[j].fs))
            for p in patients
            for j in range(len(p.ecgs))
        ]
    )
    labels = lvef_class([p.phenotype.lvef for p in patients for _ in p.ecgs])
    patient = np.repeat(np.arange(len(patients)), [len(p.ecgs) for p in patients])
    torch.manual_seed(0)
    encoder = ECGEncoder(embed_dim=64, depth=2, num_heads=2, patch_size=48).eval()
    with torch.no_grad():
        features = encoder(torch.from_numpy(signals[:, :, :1008])).numpy()
    train, test = patient < 240, patient >= 240
    keep = np.flatnonzero(train)[balanced_subset(labels[train], 0)]
    auroc = macro_auroc(
        knn_scores(features[keep], labels[keep], features[test], 5, 3), labels[test]
    )[0]
    print(f"\nrandom-init ECG features: LVEF kNN AUROC {auroc:.3f}")
    assert 0.6 < auroc < 0.85


def test_demo_cohorts_are_big_enough_to_test_on():
    config = shipped_config()
    internal, external = demo_specs()
    test_share = {name: config["cohorts"][name]["splits"]["test"] for name in config["cohorts"]}
    assert internal.n_patients * test_share["internal"] >= 50  # the issue asks for 40
    n_external_ecgs = sum(len(p.ecgs) for p in plan_cohort(external))
    assert n_external_ecgs * test_share["external"] >= 400  # at least 300 test ECGs
    imaged = [p for p in plan_cohort(internal) if p.with_images]
    assert len(imaged) == internal.imaged_patients
    assert len(imaged) * test_share["internal"] >= 20  # the retrieval gallery
    views = [{v.view for v in p.studies[0].views if v.kind == "view"} for p in imaged]
    assert all(set(APICAL_VIEWS) <= v for v in views)  # both planes of the LV
    assert 0.3 < np.mean([bool(v & set(PARASTERNAL_VIEWS)) for v in views]) < 0.7
    assert any("IVC" in v for v in views)
    assert all(3 <= len(p.ecgs) <= 5 + 1 for p in imaged)  # inpatients (+ a flat-line file)


def test_external_cohort_is_shifted_and_has_no_echo_files(tmp_path):
    small_internal = dataclasses.replace(TINY, n_patients=2, n_corrupt=0)
    _, external = demo_specs(seed=3, scale=0.05)
    manifests = generate_demo(tmp_path, small_internal, external)
    assert "internal_echo_views" in manifests and "external_echo_views" not in manifests
    assert not (tmp_path / "external" / "echo").exists()
    ecgs = read_manifest(manifests["external_ecgs"])
    assert {read_ecg(tmp_path / "external", row)[1] for row in ecgs.itertuples()} <= {250.0, 1000.0}
    assert read_manifest(manifests["external_labels"])["patient_id"].str.startswith("LRM").all()


def test_demo_manifests_go_where_the_caller_says_and_still_resolve(tmp_path):
    small_internal = dataclasses.replace(TINY, n_patients=2, n_corrupt=0)
    _, external = demo_specs(seed=3, scale=0.02)
    wanted = {
        "internal_echo_views": tmp_path / "tables/views.csv",
        "external_ecgs": tmp_path / "tables/deeper/external.csv",
    }
    manifests = generate_demo(tmp_path / "files", small_internal, external, manifests=wanted)
    assert {k: manifests[k] for k in wanted} == wanted
    assert manifests["internal_ecgs"] == tmp_path / "files/internal/ecgs.csv"  # the default
    views = load_echo_views(wanted["internal_echo_views"])
    ecgs = load_ecgs(wanted["external_ecgs"])
    for paths, folder in ((views["path"], "files/internal/"), (ecgs["path"], "files/external/")):
        assert all(os.path.normpath(p).startswith(str(tmp_path / folder)) for p in paths)
    assert all(os.path.isfile(path) for path in [*views["path"], *ecgs["path"]])
    with pytest.raises(ValueError, match="not a demo manifest: external_echo_views"):
        generate_demo(
            tmp_path / "x",
            small_internal,
            external,
            manifests={"external_echo_views": tmp_path / "v.csv"},
        )


def test_invalid_spec_is_refused():
    with pytest.raises(ValueError, match="frac_ecg_beyond_7_days"):
        CohortSpec(frac_ecg_beyond_7_days=1.5)
    with pytest.raises(ValueError, match="ecg_format_mix"):
        CohortSpec(ecg_format_mix={"edf": 1.0})


def test_wfdb_writer_matches_wfdb_byte_for_byte(tmp_path):
    from datetime import datetime

    from echo2ecg.synth.ecg_files import WFDB_ADC_GAIN, _quantise, write_wfdb

    signal = np.random.default_rng(0).normal(size=(12, 2500)).astype(np.float32)
    moment = datetime(2019, 12, 1, 22, 43, 25, 900747)
    write_wfdb(tmp_path / "ours" / "r.hea", signal, 250, LEADS, moment)
    (tmp_path / "wfdb").mkdir()
    wfdb.wrsamp(
        "r",
        fs=250,
        units=["mV"] * 12,
        sig_name=list(LEADS),
        d_signal=_quantise(signal, WFDB_ADC_GAIN).T.astype(np.int64),
        fmt=["16"] * 12,
        adc_gain=[WFDB_ADC_GAIN] * 12,
        baseline=[0] * 12,
        base_datetime=moment,
        write_dir=str(tmp_path / "wfdb"),
    )
    for suffix in (".hea", ".dat"):
        assert (tmp_path / "ours" / f"r{suffix}").read_bytes() == (
            tmp_path / "wfdb" / f"r{suffix}"
        ).read_bytes()


def test_each_recording_has_its_own_planted_noise_and_only_the_truth_table_says_it(cohort):
    _, _, tables = cohort
    truth = tables["ecg_truth"].assign(noise_mv=lambda t: t["noise_mv"].astype(float))
    flat = set(tables["corrupt_files"].loc[lambda t: t["kind"] == "flat_ecg", "path"])
    files = tables["ecgs"][~tables["ecgs"]["path"].isin(flat)]
    assert sorted(truth["ecg_id"]) == sorted(files["ecg_id"])  # every signal, no flat line
    low, high = (TINY.ecg_noise_mv * factor for factor in TINY.ecg_noise_spread)
    assert truth["noise_mv"].between(low, high).all()
    assert truth["noise_mv"].max() / truth["noise_mv"].min() > 3  # spread, not one level
    assert "noise_mv" not in tables["ecgs"]  # the pipeline's inputs do not carry it
    # the signal carries it: white noise adds its variance to the first difference
    patients = plan_cohort(TINY)
    rows = [(p, j) for p in patients for j, e in enumerate(p.ecgs) if not e.flat][:12]
    planted = [ecg_noise_mv(TINY, p, j) for p, j in rows]
    quiet = [dataclasses.replace(TINY, ecg_noise_spread=(1e-6, 1e-6))]
    excess = [
        np.diff(ecg_signal(TINY, p, j)).var() - np.diff(ecg_signal(quiet[0], p, j)).var()
        for p, j in rows
    ]
    assert np.corrcoef(np.square(planted), excess)[0, 1] > 0.95
