"""Reading ECG files: real DICOM waveform, WFDB written by wfdb, NumPy; broken inputs."""

import numpy as np
import pydicom
import pytest
from conftest import einthoven_leads, random_leads, write_wfdb
from pydicom.data import get_testdata_file

from echo2ecg.data.ecg_formats import LEADS, lead_from_code, normalise_lead_name, read_ecg
from echo2ecg.data.errors import InputRejected

SCRAMBLED = ("V4", "aVL", "I", "V1", "III", "V6", "aVF", "II", "V3", "aVR", "V5", "V2")


# --- DICOM waveform ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ecg_dicom_path():
    return get_testdata_file("waveform_ecg.dcm")


def dicom_reference(dataset):
    """{lead: mV samples} straight from pydicom, keyed by the file's own channel labels."""
    microvolts = dataset.waveform_array(0)
    labels = [
        d.ChannelSourceSequence[0].CodeMeaning
        for d in dataset.WaveformSequence[0].ChannelDefinitionSequence
    ]
    return {label: microvolts[:, i] / 1000 for i, label in enumerate(labels)}


def test_real_dicom_waveform_reads_in_lead_order(ecg_dicom_path):
    ecg = read_ecg(ecg_dicom_path)
    assert ecg.signal.shape == (12, 10000) and ecg.signal.dtype == np.float64
    assert ecg.fs == 1000.0
    reference = dicom_reference(pydicom.dcmread(ecg_dicom_path))
    label_of = {"I": "Lead I (Einthoven)", **{lead: f"Lead {lead}" for lead in LEADS[1:]}}
    for row, lead in enumerate(LEADS):
        np.testing.assert_allclose(ecg.signal[row], reference[label_of[lead]], rtol=1e-12)
    # Physiology as a second check: Einthoven's law III = II - I holds in the recording.
    np.testing.assert_allclose(ecg.signal[2], ecg.signal[1] - ecg.signal[0], atol=2e-3)


def test_dicom_leads_are_matched_by_label_not_position(ecg_dicom_path, tmp_path):
    dataset = pydicom.dcmread(ecg_dicom_path)
    definitions = dataset.WaveformSequence[0].ChannelDefinitionSequence
    first, last = definitions[0].ChannelSourceSequence[0], definitions[11].ChannelSourceSequence[0]
    first.CodeMeaning, last.CodeMeaning = "Lead V6", "LEAD I"  # channel 0 now records V6
    first.CodeValue, last.CodeValue = "5.6.3-9-8", "5.6.3-9-1"
    dataset.save_as(tmp_path / "swapped.dcm")
    original, swapped = read_ecg(ecg_dicom_path), read_ecg(tmp_path / "swapped.dcm")
    np.testing.assert_array_equal(swapped.signal[0], original.signal[11])
    np.testing.assert_array_equal(swapped.signal[11], original.signal[0])
    np.testing.assert_array_equal(swapped.signal[1:11], original.signal[1:11])


def test_dicom_lead_codes_used_when_meanings_are_unknown(ecg_dicom_path, tmp_path):
    dataset = pydicom.dcmread(ecg_dicom_path)
    for definition in dataset.WaveformSequence[0].ChannelDefinitionSequence:
        definition.ChannelSourceSequence[0].CodeMeaning = "unlabelled"
    dataset.save_as(tmp_path / "codes_only.dcm")
    np.testing.assert_array_equal(
        read_ecg(tmp_path / "codes_only.dcm").signal, read_ecg(ecg_dicom_path).signal
    )


def test_dicom_missing_leads_rejected_without_identifiers(ecg_dicom_path, tmp_path):
    dataset = pydicom.dcmread(ecg_dicom_path)
    definitions = dataset.WaveformSequence[0].ChannelDefinitionSequence
    for index in (8, 9):  # V3, V4
        source = definitions[index].ChannelSourceSequence[0]
        source.CodeMeaning, source.CodeValue = "Lead V4R", "5.6.3-9-99"
    dataset.save_as(tmp_path / "no_v3_v4.dcm")
    with pytest.raises(InputRejected, match=r"missing leads: V3, V4$") as rejected:
        read_ecg(tmp_path / "no_v3_v4.dcm")
    for identifier in (str(dataset.PatientName), dataset.PatientID, dataset.SOPInstanceUID):
        assert identifier not in rejected.value.reason


def test_non_dicom_file_rejected(tmp_path):
    path = tmp_path / "ecg.dcm"
    path.write_bytes(b"not a dicom file at all")
    with pytest.raises(InputRejected, match="unreadable DICOM file"):
        read_ecg(path)


# --- WFDB --------------------------------------------------------------------------------


def test_wfdb_scrambled_leads_come_back_in_lead_order(tmp_path):
    truth = random_leads()
    order = [LEADS.index(lead) for lead in SCRAMBLED]
    units = ["uV" if lead == "V2" else "mV" for lead in SCRAMBLED]  # one lead in microvolts
    extra = np.zeros((1, truth.shape[1]))
    header = write_wfdb(
        tmp_path,
        [*SCRAMBLED, "RESP"],
        np.vstack([truth[order], extra]),
        fs=250,
        units=[*units, "mV"],
    )
    ecg = read_ecg(header)
    assert ecg.fs == 250.0 and ecg.signal.shape == truth.shape
    np.testing.assert_allclose(ecg.signal, truth, atol=0.5 / 200 + 1e-9)  # half an ADC step


def test_wfdb_record_readable_by_dat_path_or_record_name(tmp_path):
    truth = random_leads()
    write_wfdb(tmp_path, LEADS, truth)
    np.testing.assert_allclose(read_ecg(tmp_path / "rec.dat").signal, truth, atol=0.0026)
    np.testing.assert_allclose(read_ecg(tmp_path / "rec", fmt="wfdb").signal, truth, atol=0.0026)


def test_wfdb_garbage_header_rejected(tmp_path):
    (tmp_path / "rec.hea").write_text("this is not\na wfdb header \x01\n")
    with pytest.raises(InputRejected, match="unreadable WFDB record"):
        read_ecg(tmp_path / "rec.hea")


def test_wfdb_missing_signal_file_rejected(tmp_path):
    header = write_wfdb(tmp_path, LEADS, random_leads())
    (tmp_path / "rec.dat").unlink()
    with pytest.raises(InputRejected, match="unreadable WFDB record: .*missing"):
        read_ecg(header)


@pytest.mark.parametrize(
    "record_line, reason",
    [
        ("rec 12 500 1000000000", "implausible duration: 2e\\+06 s"),
        ("rec 12 500 200", "implausible duration: 0.4 s"),
        ("rec 12 20000 200000", "unsupported sampling rate: 20000 Hz"),
    ],
)
def test_wfdb_absurd_declared_size_rejected_before_reading(tmp_path, record_line, reason):
    signal_lines = [f"rec.dat 16 200/mV 16 0 0 0 0 {lead}" for lead in LEADS]
    (tmp_path / "rec.hea").write_text("\n".join([record_line, *signal_lines]) + "\n")
    # No rec.dat exists: a reader that got past the size check would fail differently.
    with pytest.raises(InputRejected, match=reason):
        read_ecg(tmp_path / "rec.hea")


def test_wfdb_missing_leads_named(tmp_path):
    leads = [lead for lead in LEADS if lead not in ("V3", "V4")]
    header = write_wfdb(tmp_path, leads, random_leads()[: len(leads)])
    with pytest.raises(InputRejected, match=r"^missing leads: V3, V4$"):
        read_ecg(header)


# --- NumPy and the 8-lead derivation -----------------------------------------------------


def test_npz_with_transposed_signal_and_lead_names(tmp_path):
    truth = random_leads()
    order = [LEADS.index(lead) for lead in SCRAMBLED]
    names = [f"lead {lead.upper()}" for lead in SCRAMBLED]  # case and prefix variants
    np.savez(tmp_path / "ecg.npz", signal=truth[order].T, fs=np.float64(500), leads=names)
    ecg = read_ecg(tmp_path / "ecg.npz")
    assert ecg.fs == 500.0
    np.testing.assert_array_equal(ecg.signal, truth)


def test_npz_without_lead_names_is_in_lead_order(tmp_path):
    truth = random_leads()
    np.savez(tmp_path / "ecg.npz", signal=truth.astype(np.float32), fs=1000)
    ecg = read_ecg(tmp_path / "ecg.npz", fs=250)  # the file's own rate wins
    assert ecg.fs == 1000.0
    np.testing.assert_allclose(ecg.signal, truth, rtol=1e-6)


def test_eight_lead_storage_derives_limb_leads(tmp_path):
    truth = einthoven_leads()
    stored = ["V6", "II", "V1", "V2", "I", "V3", "V4", "V5"]
    np.savez(
        tmp_path / "ecg.npz",
        signal=truth[[LEADS.index(lead) for lead in stored]],
        fs=500,
        leads=stored,
    )
    np.testing.assert_allclose(read_ecg(tmp_path / "ecg.npz").signal, truth, atol=1e-12)


def test_bare_npy_needs_fs(tmp_path):
    truth = random_leads()
    np.save(tmp_path / "ecg.npy", truth)
    ecg = read_ecg(tmp_path / "ecg.npy", fs=500)
    assert ecg.fs == 500.0
    np.testing.assert_array_equal(ecg.signal, truth)
    with pytest.raises(InputRejected, match="no sampling rate"):
        read_ecg(tmp_path / "ecg.npy")


@pytest.mark.parametrize(
    "arrays, reason",
    [
        (
            {"signal": np.zeros((12, 5000)), "fs": 500, "leads": list(LEADS[:11]) + ["II"]},
            "duplicate leads: II",
        ),
        ({"signal": np.zeros((3, 5000)), "fs": 500}, "does not have 12 leads"),
        ({"signal": np.zeros((12, 5000)), "fs": 5}, "unsupported sampling rate: 5 Hz"),
        ({"signal": np.zeros((12, 5000), dtype=complex), "fs": 500}, "non-numeric dtype"),
        ({"fs": 500}, "no 'signal' array"),
    ],
)
def test_broken_npz_rejected(tmp_path, arrays, reason):
    np.savez(tmp_path / "ecg.npz", **arrays)
    with pytest.raises(InputRejected, match=reason):
        read_ecg(tmp_path / "ecg.npz")


def test_unknown_suffix_and_missing_file_rejected(tmp_path):
    (tmp_path / "ecg.edf").write_bytes(b"0       ")
    with pytest.raises(InputRejected, match="unknown ECG file type '.edf'"):
        read_ecg(tmp_path / "ecg.edf")
    with pytest.raises(InputRejected, match="not found"):
        read_ecg(tmp_path / "absent.npz")


# --- names and codes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "label, lead",
    [
        ("I", "I"),
        ("Lead I (Einthoven)", "I"),
        ("lead ii", "II"),
        ("AVR", "aVR"),
        (" aVf ", "aVF"),
        ("MDC_ECG_LEAD_AVL", "aVL"),
        ("v5", "V5"),
        ("Lead V1", "V1"),
        ("-aVR", None),
        ("V4R", None),
        ("RESP", None),
    ],
)
def test_lead_names_normalised(label, lead):
    assert normalise_lead_name(label) == lead


@pytest.mark.parametrize(
    "code, lead",
    [
        ("2:1", "I"),
        ("2:61", "III"),
        ("2:62", "aVR"),
        ("5.6.3-9-64", "aVF"),
        ("131075", "V1"),
        ("131133", "III"),
        ("2:9", None),
        ("abc", None),
    ],
)
def test_lead_codes(code, lead):
    assert lead_from_code(code) == lead
