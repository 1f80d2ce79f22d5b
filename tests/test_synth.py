import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import wfdb
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    SecondaryCaptureImageStorage,
    UltrasoundMultiFrameImageStorage,
)
from scipy.signal import find_peaks

from echo2ecg.manifest import load_ecgs, load_echo_views, load_labels
from echo2ecg.synth.cohort import (
    ECG_COLUMNS,
    ECHO_VIEW_COLUMNS,
    LABEL_COLUMNS,
    CohortSpec,
    demo_specs,
    generate_cohort,
    generate_demo,
    plan_cohort,
)
from echo2ecg.synth.echo_views import render_clip
from echo2ecg.synth.ecg_signals import LEADS, EcgDevice, synthesize_ecg
from echo2ecg.synth.phenotypes import ef_class, phenotype_from_volumes, sample_patient

TINY = CohortSpec(n_patients=4, studies_per_patient=(1, 2), views_per_study=(3, 4),
                  ecgs_per_patient=(2, 3), frames_per_clip=6, rows=96, cols=128,
                  frac_ecg_beyond_7_days=0.3, ecg_format_mix={"wfdb": 1, "dicom": 1, "numpy": 2},
                  frac_scrambled_leads=0.3, seed=11)
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
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


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
    jpeg = [p for p in paths if pydicom.dcmread(p, stop_before_pixels=True)
            .PhotometricInterpretation == "YBR_FULL_422"]
    assert jpeg
    frames = pydicom.dcmread(jpeg[0]).pixel_array.astype(int)  # converted to RGB
    red, green, blue = frames[..., 0], frames[..., 1], frames[..., 2]
    scan = frames[:, : TINY.rows * 3 // 4, TINY.cols // 4: TINY.cols // 2]
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
        names = [channel.ChannelSourceSequence[0].CodeMeaning.removeprefix("Lead ")
                 for channel in group.ChannelDefinitionSequence]
        return ds.waveform_array(0).T, float(group.SamplingFrequency), names
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
    classes = np.bincount([ef_class(p.phenotype.lvef) for p in plan_cohort(internal)], minlength=3)
    assert (classes >= 0.2 * internal.n_patients).all(), classes


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


def render(phenotype, view, seed, n_frames):
    return render_clip(phenotype, view, np.random.default_rng(seed), n_frames=n_frames, rows=120,
                       cols=160, fps=30.0, heart_rate_bpm=75.0, hospital="Test Hospital")


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


def test_ecg_morphology_follows_the_phenotype():
    quiet = EcgDevice(noise_mv=0.0, powerline_mv=0.0, wander_mv=0.0)
    fs = 500.0

    def ecg(edv, ef):
        phenotype = phenotype_from_volumes(edv, ef, 0)
        return synthesize_ecg(phenotype, 60.0, np.random.default_rng(1), fs, device=quiet)

    def mean_t_wave(signal):
        """Lead II about 300 ms after each R peak, mV."""
        lead_ii = signal[LEADS.index("II")]
        r_peaks, _ = find_peaks(lead_ii, height=0.5, distance=int(0.4 * fs))
        return np.mean([lead_ii[r + 140: r + 160].mean() for r in r_peaks[:-1]])

    v6 = LEADS.index("V6")
    assert np.ptp(ecg(200, 60)[v6]) > 1.3 * np.ptp(ecg(100, 60)[v6])  # voltage grows with EDV
    assert mean_t_wave(ecg(120, 60)) > 0.1 and mean_t_wave(ecg(120, 25)) < -0.05  # T inversion


def test_external_cohort_is_shifted_and_has_no_echo_files(tmp_path):
    small_internal = dataclasses.replace(TINY, n_patients=2, n_corrupt=0)
    _, external = demo_specs(seed=3, scale=0.05)
    manifests = generate_demo(tmp_path, small_internal, external)
    assert "internal_echo_views" in manifests and "external_echo_views" not in manifests
    assert not (tmp_path / "external" / "echo").exists()
    ecgs = read_manifest(manifests["external_ecgs"])
    assert {read_ecg(tmp_path / "external", row)[1] for row in ecgs.itertuples()} <= {250.0, 1000.0}
    assert read_manifest(manifests["external_labels"])["patient_id"].str.startswith("LRM").all()


def test_invalid_spec_is_refused():
    with pytest.raises(ValueError, match="frac_ecg_beyond_7_days"):
        CohortSpec(frac_ecg_beyond_7_days=1.5)
    with pytest.raises(ValueError, match="ecg_format_mix"):
        CohortSpec(ecg_format_mix={"edf": 1.0})
