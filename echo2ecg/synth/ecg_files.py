"""ECG file writers: WFDB records, DICOM 12-lead ECG Waveform Storage, NumPy arrays.

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

import zipfile
from collections.abc import Sequence as Seq
from datetime import datetime
from pathlib import Path

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
