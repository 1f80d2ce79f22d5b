"""Reading 12-lead ECG files (WFDB, DICOM waveform, NumPy) into one shape.

Every reader returns a :class:`RawEcg`: a float64 array of shape (12, T) in the order of
:data:`LEADS`, in millivolts wherever the file states its units, and the sampling rate in
Hz. Channels are matched to leads by *name*, so files may store leads in any order and
carry extra channels (they are ignored).

Files that store only the 8 independent leads (I, II, V1–V6) get the four other limb leads
derived from Einthoven's and Goldberger's relations::

    III = II − I        aVR = −(I + II) / 2        aVL = I − II / 2        aVF = II − I / 2

Anything wrong with a file raises :class:`~echo2ecg.errors.InputRejected` with a reason a
person understands. Reasons never quote values from the file other than sizes, rates and
lead names, so no patient identifier (name, ID, date, UID) can reach a ledger or a log.
Declared sizes are checked before any signal data is read.
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from echo2ecg.errors import InputRejected

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
DERIVABLE_LEADS = ("III", "aVR", "aVL", "aVF")
FORMATS = ("wfdb", "dicom", "numpy")

# Plausibility limits, checked on declared sizes before reading data.
MIN_FS_HZ = 100.0  # below this the QRS complex is not resolved
MAX_FS_HZ = 10_000.0
MIN_DURATION_S = 1.0  # shorter than one heartbeat
MAX_DURATION_S = 600.0
MAX_CHANNELS = 64

_SUFFIX_FORMATS = {".hea": "wfdb", ".dat": "wfdb", ".dcm": "dicom", ".npy": "numpy",
                   ".npz": "numpy"}

# Factors from a stated voltage unit to millivolts (WFDB units, DICOM UCUM codes).
_TO_MILLIVOLTS = {"v": 1e3, "mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "nv": 1e-6}

# ISO/IEEE 11073 (MDC) term codes of the 12 leads, partition 2; DICOM writes them as
# "2:<term>" (scheme MDC), SCP-ECG as "5.6.3-9-<term>", and the context-free numeric code
# is 131072 + term.
_MDC_TERM_LEADS = {1: "I", 2: "II", 3: "V1", 4: "V2", 5: "V3", 6: "V4", 7: "V5", 8: "V6",
                   61: "III", 62: "aVR", 63: "aVL", 64: "aVF"}
_LEADS_BY_KEY = {lead.lower(): lead for lead in LEADS}


@dataclass
class RawEcg:
    """A 12-lead ECG as read from a file.

    signal: (12, T) float64 in :data:`LEADS` order, millivolts where the format says.
    fs: sampling rate in Hz.
    """

    signal: np.ndarray
    fs: float

    def __post_init__(self):
        if self.signal.ndim != 2 or self.signal.shape[0] != len(LEADS):
            raise ValueError(f"RawEcg.signal must be (12, T), got {self.signal.shape}")


def read_ecg(path: str | Path, fmt: str | None = None, fs: float | None = None) -> RawEcg:
    """Read one 12-lead ECG file.

    path: a WFDB record given by its ``.hea`` (or ``.dat``) file or, with fmt="wfdb", by its
        record name; a DICOM waveform file; a NumPy ``.npz`` / ``.npy`` file.
    fmt: "wfdb", "dicom" or "numpy"; inferred from the suffix when None.
    fs: sampling rate in Hz for files that do not store one (bare ``.npy``, ``.npz`` without
        ``fs``); a rate stored in the file takes precedence.
    Raises InputRejected for anything wrong with the file.
    """
    path = Path(path)
    fmt = (fmt or _format_from_suffix(path)).lower()
    if fmt not in FORMATS:
        raise InputRejected(f"unsupported ECG format {fmt!r} (supported: {', '.join(FORMATS)})")
    if fmt == "wfdb":
        return _read_wfdb(path)
    if not path.is_file():
        raise InputRejected(f"ECG file not found ({fmt})")
    return _read_dicom(path) if fmt == "dicom" else _read_numpy(path, fs)


def normalise_lead_name(name: str) -> str | None:
    """The lead in :data:`LEADS` that a channel label names, or None.

    Accepts case and spacing variants, a "Lead " prefix, parenthesised notes
    ("Lead I (Einthoven)"), "AVR" for "aVR" and MDC names ("MDC_ECG_LEAD_AVR").
    A negated lead such as "-aVR" is not the lead and gives None.
    """
    key = re.sub(r"\(.*?\)", "", str(name))
    key = re.sub(r"[\s_]", "", key).lower()
    for prefix in ("mdcecglead", "lead"):
        key = key.removeprefix(prefix)
    return _LEADS_BY_KEY.get(key)


def lead_from_code(code_value: str) -> str | None:
    """The lead that an MDC or SCP-ECG code names ("2:61", "131133", "5.6.3-9-61"), or None."""
    code_value = str(code_value).strip()
    if code_value.startswith(("5.6.3-9-", "2:")):
        term = code_value.rsplit("-" if code_value.startswith("5") else ":", 1)[1]
    elif code_value.isdigit():
        term = str(int(code_value) - 131072)
    else:
        return None
    return _MDC_TERM_LEADS.get(int(term)) if term.isdigit() else None


def to_leads_order(channels: np.ndarray, names: list[str | None]) -> np.ndarray:
    """Arrange named channels into (12, T) float64 in :data:`LEADS` order.

    channels: (C, T), one row per channel; names: the lead of each row (None = not a lead,
    ignored). Missing III, aVR, aVL, aVF are derived when I and II are present.
    """
    rows: dict[str, int] = {}
    duplicates = []
    for row, lead in enumerate(names):
        if lead is None:
            continue
        if lead in rows:
            duplicates.append(lead)
        rows[lead] = row
    if duplicates:
        raise InputRejected(f"duplicate leads: {', '.join(_in_lead_order(duplicates))}")
    absent = [lead for lead in LEADS if lead not in rows]
    limb_derivable = "I" in rows and "II" in rows
    not_derivable = [lead for lead in absent if not (limb_derivable and lead in DERIVABLE_LEADS)]
    if not_derivable:
        raise InputRejected(f"missing leads: {', '.join(not_derivable)}")
    leads = {lead: np.asarray(channels[row], dtype=np.float64) for lead, row in rows.items()}
    leads = _derive_limb_leads(leads)
    return np.stack([leads[lead] for lead in LEADS])


def _derive_limb_leads(leads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Add whichever of III, aVR, aVL, aVF are absent, from I and II (Einthoven, Goldberger)."""
    lead_i, lead_ii = leads["I"], leads["II"]
    derived = {"III": lead_ii - lead_i, "aVR": -(lead_i + lead_ii) / 2,
               "aVL": lead_i - lead_ii / 2, "aVF": lead_ii - lead_i / 2}
    return {**derived, **leads}  # stored leads win over derived ones


def _in_lead_order(leads) -> list[str]:
    return [lead for lead in LEADS if lead in set(leads)]


def _format_from_suffix(path: Path) -> str:
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputRejected(f"unknown ECG file type {path.suffix.lower() or '(no suffix)'!r}; "
                            f"give the format ({', '.join(FORMATS)})")
    return fmt


def check_declared_size(n_samples: int, fs: float, n_channels: int) -> None:
    """Reject implausible sampling rates, durations and channel counts (before reading data)."""
    if not (math.isfinite(fs) and MIN_FS_HZ <= fs <= MAX_FS_HZ):
        raise InputRejected(f"unsupported sampling rate: {fs:g} Hz "
                            f"(supported: {MIN_FS_HZ:g} to {MAX_FS_HZ:g} Hz)")
    duration_s = n_samples / fs
    if not MIN_DURATION_S <= duration_s <= MAX_DURATION_S:
        raise InputRejected(f"implausible duration: {duration_s:.3g} s "
                            f"(accepted: {MIN_DURATION_S:g} to {MAX_DURATION_S:g} s)")
    if not 1 <= n_channels <= MAX_CHANNELS:
        raise InputRejected(f"implausible channel count: {n_channels} (at most {MAX_CHANNELS})")


def millivolt_factor(unit: str | None) -> float:
    """Factor from a stated voltage unit to mV; 1 for absent or non-voltage units (kept as stored)."""
    return _TO_MILLIVOLTS.get(str(unit or "").strip().lower(), 1.0)


# --- WFDB ---------------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet_wfdb():
    """wfdb 4.3 calls pandas' deprecated ``inplace=`` keywords on every read; the warnings
    concern wfdb's own code, so they are kept out of the pipeline's logs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _read_wfdb(path: Path) -> RawEcg:
    """A WFDB record (header + signal files) in physical units, converted to mV."""
    with _quiet_wfdb():
        import wfdb  # here, not at module level: it pulls in pandas, needed only for this format

    record_name = str(path.with_suffix("") if path.suffix.lower() in (".hea", ".dat") else path)
    if not Path(record_name + ".hea").is_file():
        raise InputRejected("unreadable WFDB record: header file (.hea) not found")
    header = _wfdb_call(wfdb.rdheader, record_name)
    if header.fs is None or header.n_sig is None:
        raise InputRejected("unreadable WFDB record: header lacks sampling rate or signal count")
    if header.sig_len:  # optional in the format; checked again after reading when absent
        check_declared_size(int(header.sig_len), float(header.fs), int(header.n_sig))
    record = _wfdb_call(wfdb.rdrecord, record_name, physical=True)
    if record.p_signal is None or record.sig_name is None:
        raise InputRejected("unreadable WFDB record: no signal data")
    channels = record.p_signal.T
    check_declared_size(channels.shape[1], float(record.fs), channels.shape[0])
    units = record.units or [None] * channels.shape[0]
    channels = channels * np.array([millivolt_factor(unit) for unit in units])[:, None]
    names = [normalise_lead_name(name) for name in record.sig_name]
    return RawEcg(to_leads_order(channels, names), float(record.fs))


def _wfdb_call(function, *args, **kwargs):
    """Call a wfdb reader, turning its failures on a broken record into InputRejected.

    wfdb raises many types on malformed files; their messages may quote file content, so
    only the kind of failure is reported.
    """
    try:
        with _quiet_wfdb():
            return function(*args, **kwargs)
    except FileNotFoundError as error:
        raise InputRejected("unreadable WFDB record: a signal file it names is missing") \
            from error
    except Exception as error:  # noqa: BLE001 - any parser failure means a malformed file
        raise InputRejected(f"unreadable WFDB record: malformed header or signal file "
                            f"({type(error).__name__})") from error


# --- DICOM waveform -----------------------------------------------------------------------

def _read_dicom(path: Path) -> RawEcg:
    """A DICOM ECG waveform: the first multiplex group with at least 8 channels, in mV."""
    import pydicom  # here, like wfdb: only this format needs it

    try:
        dataset = pydicom.dcmread(path)
    except Exception as error:  # noqa: BLE001 - any parser failure means a malformed file
        raise InputRejected(f"unreadable DICOM file ({type(error).__name__})") from error
    groups = dataset.get("WaveformSequence")
    if not groups:
        raise InputRejected("DICOM file holds no waveform (not an ECG waveform object)")
    index = next((i for i, group in enumerate(groups)
                  if int(_required(group, "NumberOfWaveformChannels")) >= 8), None)
    if index is None:
        raise InputRejected("DICOM waveform has no group with 8 or more channels")
    group = groups[index]
    definitions = _required(group, "ChannelDefinitionSequence")
    fs = float(_required(group, "SamplingFrequency"))
    check_declared_size(int(_required(group, "NumberOfWaveformSamples")), fs, len(definitions))
    try:
        channels = dataset.waveform_array(index).T
    except Exception as error:  # noqa: BLE001 - malformed waveform data or attributes
        raise InputRejected(f"unreadable DICOM waveform data ({type(error).__name__})") \
            from error
    factors = np.array([millivolt_factor(_dicom_channel_unit(d)) for d in definitions])
    names = [_dicom_channel_lead(d) for d in definitions]
    return RawEcg(to_leads_order(channels * factors[:, None], names), fs)


def _required(item, keyword: str):
    value = item.get(keyword)
    if value is None:
        raise InputRejected(f"DICOM waveform lacks {keyword}")
    return value


def _dicom_channel_lead(definition) -> str | None:
    """The lead a channel records: from its source's CodeMeaning, else its MDC/SCP code."""
    sources = definition.get("ChannelSourceSequence")
    if not sources:
        return None
    source = sources[0]
    return (normalise_lead_name(source.get("CodeMeaning", ""))
            or lead_from_code(source.get("CodeValue", "")))


def _dicom_channel_unit(definition) -> str | None:
    units = definition.get("ChannelSensitivityUnitsSequence")
    return units[0].get("CodeValue") if units else None


# --- NumPy --------------------------------------------------------------------------------

def _read_numpy(path: Path, fs: float | None) -> RawEcg:
    """``.npz`` with ``signal`` ((12, T) or (T, 12)), ``fs``, optional ``leads``; or a bare
    ``.npy`` (12, T) in LEADS order with ``fs`` from the caller. Units are kept as stored."""
    with path.open("rb") as stream:
        magic = stream.read(6)
    if magic.startswith(b"PK"):
        return _read_npz(path, fs)
    if magic == b"\x93NUMPY":
        return _read_npy(path, fs)
    raise InputRejected("unreadable NumPy file: neither .npy nor .npz content")


def _read_npy(path: Path, fs: float | None) -> RawEcg:
    if fs is None:
        raise InputRejected("bare .npy ECG has no sampling rate: give fs")
    try:
        signal = np.load(path, mmap_mode="r", allow_pickle=False)  # reads the header only
    except Exception as error:  # noqa: BLE001 - malformed header or content
        raise InputRejected(f"unreadable .npy file ({type(error).__name__})") from error
    return _numpy_ecg(signal, _sampling_rate(fs), list(LEADS))


def _read_npz(path: Path, fs: float | None) -> RawEcg:
    try:
        with np.load(path, allow_pickle=False) as arrays:  # members load lazily
            if "signal" not in arrays:
                raise InputRejected(".npz ECG has no 'signal' array")
            if "fs" in arrays:
                fs = arrays["fs"]
            elif fs is None:
                raise InputRejected(".npz ECG has no sampling rate ('fs'): give fs")
            leads = [_text(name) for name in arrays["leads"]] if "leads" in arrays \
                else list(LEADS)
            header_shape, header_dtype = _npy_header(arrays.zip, "signal.npy")
            _check_signal_layout(header_shape, header_dtype, len(leads), _sampling_rate(fs))
            signal = arrays["signal"]
    except InputRejected:
        raise
    except Exception as error:  # noqa: BLE001 - malformed archive or member
        raise InputRejected(f"unreadable .npz file ({type(error).__name__})") from error
    return _numpy_ecg(signal, _sampling_rate(fs), leads)


def _npy_header(archive: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an array inside an .npz, from its header alone."""
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _fortran_order, dtype = read_header(stream)
    return shape, dtype


def _text(name) -> str:
    return name.decode("ascii", "replace") if isinstance(name, bytes) else str(name)


def _sampling_rate(fs) -> float:
    values = np.asarray(fs).reshape(-1)
    if values.size != 1 or not np.issubdtype(values.dtype, np.number):
        raise InputRejected("sampling rate ('fs') is not a single number")
    return float(values[0])


def _lead_axis(shape: tuple[int, ...], n_leads: int) -> int:
    """Which axis of a (leads, T) or (T, leads) array holds the leads; (leads, T) if both fit."""
    if len(shape) != 2:
        raise InputRejected(f"ECG array must be 2-D (leads x samples), got shape {shape}")
    if shape[0] == n_leads:
        return 0
    if shape[1] == n_leads:
        return 1
    raise InputRejected(f"ECG array of shape {shape} does not have {n_leads} leads")


def _check_signal_layout(shape: tuple[int, ...], dtype: np.dtype, n_leads: int,
                         fs: float) -> None:
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise InputRejected(f"ECG array has non-numeric dtype {dtype}")
    axis = _lead_axis(shape, n_leads)
    check_declared_size(shape[1 - axis], fs, n_leads)


def _numpy_ecg(signal: np.ndarray, fs: float, leads: list[str]) -> RawEcg:
    """(leads, T) or (T, leads) array with one name per lead, to a RawEcg."""
    _check_signal_layout(signal.shape, signal.dtype, len(leads), fs)
    channels = signal if _lead_axis(signal.shape, len(leads)) == 0 else signal.T
    names = [normalise_lead_name(name) for name in leads]
    return RawEcg(to_leads_order(channels, names), fs)
