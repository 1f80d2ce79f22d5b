"""ECG file writers: WFDB records, DICOM 12-lead ECG Waveform Storage, NumPy arrays, and
the XML exports of GE CardioSoft, GE MUSE and HL7 aECG.

Every writer takes a signal (C, T) in mV with one lead name per row, so a caller can store
the leads in any order (the names travel with them, except in a bare ``.npy``, which is
always in the standard order).

- WFDB: ``<name>.hea`` + ``<name>.dat``, format 16, 200 ADC units per mV, units mV;
- DICOM: 12-lead ECG Waveform Storage, one RHYTHM multiplex group, 16-bit signed samples,
  channel sensitivity 0.0025 mV per unit, channels labelled "Lead I" ... "Lead V6";
- ``.npz``: keys ``signal`` (C, T) float32 mV, ``fs`` (Hz), ``leads`` (C,) str;
- ``.npy``: the (12, T) float32 array only; its rate goes into the manifest.

Files are byte-for-byte reproducible: nothing depends on the clock.
"""

from __future__ import annotations

import base64
import functools
import zipfile
from collections.abc import Sequence as Seq
from datetime import datetime
from pathlib import Path
from xml.etree import ElementTree  # writing only: the pipeline reads with defusedxml

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, TwelveLeadECGWaveformStorage

from echo2ecg.synth.echo_dicom import DicomIdentity, DicomInstance, base_dataset

WFDB_ADC_GAIN = 200.0  # ADC units per mV (5 uV resolution)
DICOM_SENSITIVITY_MV = 0.0025  # mV per stored unit
_INT16_LIMIT = 32767

# SCP-ECG lead codes (DICOM CID 3001).
_SCPECG_CODES = {
    "I": "5.6.3-9-1",
    "II": "5.6.3-9-2",
    "III": "5.6.3-9-61",
    "aVR": "5.6.3-9-62",
    "aVL": "5.6.3-9-63",
    "aVF": "5.6.3-9-64",
    "V1": "5.6.3-9-3",
    "V2": "5.6.3-9-4",
    "V3": "5.6.3-9-5",
    "V4": "5.6.3-9-6",
    "V5": "5.6.3-9-7",
    "V6": "5.6.3-9-8",
}


def _quantise(signal_mv: np.ndarray, units_per_mv: float) -> np.ndarray:
    """int16 samples of a signal in mV, saturating at +-32767 (-32768 means 'missing' in WFDB)."""
    return np.clip(np.round(signal_mv * units_per_mv), -_INT16_LIMIT, _INT16_LIMIT).astype(np.int16)


def write_wfdb(
    header_path: Path, signal_mv: np.ndarray, fs: float, leads: Seq[str], acquired: datetime
) -> None:
    """A WFDB record; ``header_path`` is the ``.hea`` file, the ``.dat`` goes beside it.

    Format 16 (little-endian int16, samples interleaved), WFDB_ADC_GAIN units per mV,
    baseline 0, one signal line per lead with its first value and 16-bit checksum; byte
    for byte what ``wfdb.wrsamp`` writes for the same record, without its per-field cost.
    """
    header_path.parent.mkdir(parents=True, exist_ok=True)
    name = header_path.stem
    digital = _quantise(signal_mv, WFDB_ADC_GAIN)  # (leads, samples)
    header_path.with_suffix(".dat").write_bytes(digital.T.astype("<i2").tobytes())
    checksums = digital.astype(np.int64).sum(axis=1) % 65536
    lines = [
        f"{name} {len(leads)} {fs:g} {digital.shape[1]} "
        f"{acquired.strftime('%H:%M:%S.%f')} {acquired.strftime('%d/%m/%Y')}"
    ]
    lines += [
        f"{name}.dat 16 {WFDB_ADC_GAIN:.1f}(0)/mV 16 0 {int(lead[0])} {int(check)} 0 {label}"
        for lead, check, label in zip(digital, checksums, leads)
    ]
    header_path.write_text("\n".join(lines) + "\n")


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _channel_definition(lead: str) -> Dataset:
    channel = Dataset()
    channel.ChannelSourceSequence = Sequence([_code(_SCPECG_CODES[lead], "SCPECG", f"Lead {lead}")])
    channel.ChannelSensitivity = f"{DICOM_SENSITIVITY_MV}"
    channel.ChannelSensitivityUnitsSequence = Sequence([_code("mV", "UCUM", "millivolt")])
    channel.ChannelSensitivityCorrectionFactor = "1"
    channel.ChannelBaseline = "0"
    channel.ChannelSampleSkew = "0"
    channel.WaveformBitsStored = 16
    channel.FilterLowFrequency = "0.05"
    channel.FilterHighFrequency = "150"
    return channel


def write_dicom_ecg(
    path: Path,
    signal_mv: np.ndarray,
    fs: float,
    leads: Seq[str],
    identity: DicomIdentity,
    instance: DicomInstance,
) -> None:
    """A DICOM 12-lead ECG Waveform Storage file; ``ds.waveform_array(0)`` gives (T, C) mV."""
    ds = base_dataset(
        TwelveLeadECGWaveformStorage, ExplicitVRLittleEndian, "ECG", identity, instance
    )
    group = Dataset()
    group.MultiplexGroupTimeOffset = "0"
    group.WaveformOriginality = "ORIGINAL"
    group.NumberOfWaveformChannels = len(leads)
    group.NumberOfWaveformSamples = signal_mv.shape[1]
    group.SamplingFrequency = f"{fs:g}"
    group.MultiplexGroupLabel = "RHYTHM"
    group.ChannelDefinitionSequence = Sequence([_channel_definition(lead) for lead in leads])
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    # Samples are interleaved: all channels of sample 1, then of sample 2, ...
    samples = _quantise(signal_mv, 1.0 / DICOM_SENSITIVITY_MV)
    group.WaveformData = np.ascontiguousarray(samples.T).tobytes()
    group["WaveformData"].VR = "OW"
    ds.WaveformSequence = Sequence([group])
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def write_npz(path: Path, signal_mv: np.ndarray, fs: float, leads: Seq[str]) -> None:
    """An ``.npz`` with ``signal``, ``fs`` and ``leads``; zip entries carry a fixed date so
    the bytes do not depend on when the file was written."""
    arrays = {
        "signal": np.asarray(signal_mv, dtype=np.float32),
        "fs": np.float64(fs),
        "leads": np.asarray(list(leads)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, array in arrays.items():
            entry_info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(entry_info, "w") as entry:
                np.lib.format.write_array(entry, np.asanyarray(array), allow_pickle=False)


def write_npy(path: Path, signal_mv: np.ndarray) -> None:
    """A bare ``.npy`` (12, T) float32 mV in the standard lead order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(signal_mv, dtype=np.float32), allow_pickle=False)


# --- vendor XML exports (read by echo2ecg.data.ecg_xml) -------------------------------------

CARDIOSOFT_UV_PER_LSB = 5.0  # CardioSoft's Resolution (UK Biobank exports: 5 µV per LSB)
MUSE_UV_PER_BIT = 4.88  # MUSE's LeadAmplitudeUnitsPerBit
AECG_SCALE_UV = 5.0  # the aECG sequences' scale
MUSE_STORED_LEADS = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")  # the others are derived
_HL7_NS = "urn:hl7-org:v3"


def _xml_document(root) -> bytes:
    ElementTree.indent(root)
    return ElementTree.tostring(root, encoding="UTF-8", xml_declaration=True)


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _sub(parent, tag: str, text: str | None = None, **attributes):
    element = ElementTree.SubElement(parent, tag, {k: str(v) for k, v in attributes.items()})
    if text is not None:
        element.text = str(text)
    return element


def write_cardiosoft_xml(
    path: Path,
    signal_mv: np.ndarray,
    fs: float,
    leads: Seq[str],
    identity: DicomIdentity,
    acquired: datetime,
) -> None:
    """A GE CardioSoft ``CardiologyXML`` export: patient data, a median-beat block (which
    readers must ignore), and ``StripData`` with the rhythm strip of each lead as
    comma-separated integers at ``CARDIOSOFT_UV_PER_LSB`` µV per LSB."""
    root = ElementTree.Element("CardiologyXML")
    _sub(root, "ObservationType", "RestECG")
    patient = _sub(root, "PatientInfo")
    _sub(patient, "PID", identity.patient_id)
    name = _sub(patient, "Name")
    last, _, first = identity.patient_name.partition("^")
    _sub(name, "FamilyName", last)
    _sub(name, "GivenName", first)
    _sub(patient, "BirthDateTime", identity.birth_date)
    _sub(root, "ObservationDateTime", acquired.isoformat())
    samples = np.round(signal_mv * 1000.0 / CARDIOSOFT_UV_PER_LSB).astype(np.int64)
    median = _sub(root, "RestingECGMeasurements")
    medians = _sub(median, "MedianSamples")
    _sub(medians, "SampleRate", f"{fs:g}", units="Hz")
    for lead, row in zip(leads, samples):
        _sub(medians, "WaveformData", ",".join(map(str, row[: int(fs)])), lead=lead)
    strip = _sub(root, "StripData")
    _sub(strip, "NumberOfLeads", len(leads))
    _sub(strip, "SampleRate", f"{fs:g}", units="Hz")
    _sub(strip, "ChannelSampleCountTotal", samples.shape[1])
    _sub(strip, "Resolution", f"{CARDIOSOFT_UV_PER_LSB:g}", units="uVperLsb")
    for lead, row in zip(leads, samples):
        # CardioSoft breaks the sample list into lines
        lines = [",".join(map(str, row[i : i + 20])) for i in range(0, len(row), 20)]
        _sub(strip, "WaveformData", ",\n".join(lines), lead=lead)
    _write_bytes(path, _xml_document(root))


def write_muse_xml(
    path: Path,
    signal_mv: np.ndarray,
    fs: float,
    leads: Seq[str],
    identity: DicomIdentity,
    acquired: datetime,
    stored_leads: Seq[str] = MUSE_STORED_LEADS,
) -> None:
    """A GE MUSE ``RestingECG`` export: patient demographics, a ``Median`` waveform
    (ignored by readers) and a ``Rhythm`` waveform whose ``LeadData`` hold the leads of
    ``stored_leads`` (in the order of ``leads``) as base64 little-endian int16 at
    ``MUSE_UV_PER_BIT`` µV per bit."""
    root = ElementTree.Element("RestingECG")
    _sub(root, "MuseInfo").append(ElementTree.Element("MuseVersion"))
    patient = _sub(root, "PatientDemographics")
    _sub(patient, "PatientID", identity.patient_id)
    last, _, first = identity.patient_name.partition("^")
    _sub(patient, "PatientLastName", last)
    _sub(patient, "PatientFirstName", first)
    _sub(patient, "DateofBirth", identity.birth_date)
    test = _sub(root, "TestDemographics")
    _sub(test, "AcquisitionDate", acquired.strftime("%m-%d-%Y"))
    _sub(test, "AcquisitionTime", acquired.strftime("%H:%M:%S"))
    _sub(test, "Site", identity.institution)
    samples = _quantise(signal_mv, 1000.0 / MUSE_UV_PER_BIT)
    for kind, length in (("Median", min(600, samples.shape[1])), ("Rhythm", samples.shape[1])):
        waveform = _sub(root, "Waveform")
        _sub(waveform, "WaveformType", kind)
        _sub(waveform, "WaveformStartTime", 0)
        _sub(waveform, "NumberofLeads", len(stored_leads))
        _sub(waveform, "SampleType", "CONTINUOUS_SAMPLES" if kind == "Rhythm" else "MEDIAN")
        _sub(waveform, "SampleBase", f"{fs:g}")
        _sub(waveform, "SampleExponent", 0)
        for lead, row in zip(leads, samples):
            if lead not in stored_leads:
                continue
            data = _sub(waveform, "LeadData")
            _sub(data, "LeadByteCountTotal", 2 * length)
            _sub(data, "LeadTimeOffset", 0)
            _sub(data, "LeadSampleCountTotal", length)
            _sub(data, "LeadAmplitudeUnitsPerBit", f"{MUSE_UV_PER_BIT:g}")
            _sub(data, "LeadAmplitudeUnits", "MICROVOLTS")
            _sub(data, "LeadID", lead)
            encoded = base64.b64encode(row[:length].astype("<i2").tobytes()).decode("ascii")
            _sub(
                data,
                "WaveFormData",
                "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)),
            )
    _write_bytes(path, _xml_document(root))


def write_hl7_aecg(
    path: Path,
    signal_mv: np.ndarray,
    fs: float,
    leads: Seq[str],
    identity: DicomIdentity,
    acquired: datetime,
) -> None:
    """An HL7 v3 ``AnnotatedECG``: a ``RHYTHM`` series whose sequence set holds the time
    sequence (GLIST_TS, increment 1/fs s) and one SLIST_PQ sequence per lead
    (``MDC_ECG_LEAD_*``, origin 0 µV, scale ``AECG_SCALE_UV`` µV), and a derived
    ``REPRESENTATIVE_BEAT`` series (ignored by readers)."""
    ElementTree.register_namespace("", _HL7_NS)
    ElementTree.register_namespace("xsi", "http://www.w3.org/2001/XMLSchema-instance")
    q = functools.partial(_qualified, _HL7_NS)
    xsi_type = "{http://www.w3.org/2001/XMLSchema-instance}type"
    root = ElementTree.Element(q("AnnotatedECG"))
    _sub(root, q("id"), root=identity.study_uid)
    _sub(root, q("effectiveTime")).append(
        ElementTree.Element(q("low"), value=acquired.strftime("%Y%m%d%H%M%S"))
    )
    subject = _sub(_sub(_sub(root, q("componentOf")), q("timepointEvent")), q("componentOf"))
    demographic = _sub(_sub(_sub(subject, q("subjectAssignment")), q("subject")), q("trialSubject"))
    _sub(demographic, q("id"), extension=identity.patient_id)
    person = _sub(demographic, q("subjectDemographicPerson"))
    _sub(person, q("name"), identity.patient_name.replace("^", " "))
    _sub(person, q("birthTime"), value=identity.birth_date)
    samples = np.round(signal_mv * 1000.0 / AECG_SCALE_UV).astype(np.int64)
    series = _sub(_sub(root, q("component")), q("series"))
    _sub(series, q("code"), code="RHYTHM", codeSystem="2.16.840.1.113883.5.4")

    def sequence_set(parent, rows):
        sequences = _sub(_sub(parent, q("component")), q("sequenceSet"))
        time = _sub(_sub(sequences, q("component")), q("sequence"))
        _sub(time, q("code"), code="TIME_ABSOLUTE", codeSystem="2.16.840.1.113883.5.4")
        value = _sub(time, q("value"), **{xsi_type: "GLIST_TS"})
        _sub(value, q("head"), value=acquired.strftime("%Y%m%d%H%M%S.000"))
        _sub(value, q("increment"), value=f"{1.0 / fs:.6g}", unit="s")
        for lead, row in zip(leads, rows):
            sequence = _sub(_sub(sequences, q("component")), q("sequence"))
            _sub(
                sequence,
                q("code"),
                code=f"MDC_ECG_LEAD_{lead.upper()}",
                codeSystem="2.16.840.1.113883.6.24",
            )
            value = _sub(sequence, q("value"), **{xsi_type: "SLIST_PQ"})
            _sub(value, q("origin"), value=0, unit="uV")
            _sub(value, q("scale"), value=f"{AECG_SCALE_UV:g}", unit="uV")
            _sub(value, q("digits"), " ".join(map(str, row)))

    sequence_set(series, samples)
    derived = _sub(_sub(series, q("derivation")), q("derivedSeries"))
    _sub(derived, q("code"), code="REPRESENTATIVE_BEAT", codeSystem="2.16.840.1.113883.5.4")
    sequence_set(derived, samples[:, : int(fs)])
    _write_bytes(path, _xml_document(root))


def _qualified(namespace: str, tag: str) -> str:
    return f"{{{namespace}}}{tag}"
