"""Reading 12-lead ECG files (WFDB, DICOM waveform, NumPy, vendor XML) into one shape.

Every reader returns a :class:`RawEcg`: a float64 array of shape (12, T) in the order of
:data:`LEADS`, in millivolts wherever the file states its units, and the sampling rate in
Hz. Channels are matched to leads by *name*, so files may store leads in any order and
carry extra channels (they are ignored).

Files that store only the 8 independent leads (I, II, V1–V6) get the four other limb leads
derived from Einthoven's and Goldberger's relations::

    III = II − I        aVR = −(I + II) / 2        aVL = I − II / 2        aVF = II − I / 2

Anything wrong with a file raises :class:`~echo2ecg.data.errors.InputRejected` with a reason a
person understands. Reasons never quote values from the file other than sizes, rates and
lead names, so no patient identifier (name, ID, date, UID) can reach a ledger or a log.

Hostile files are bounded before they cost anything: every file is opened only if it is a
regular file (:func:`echo2ecg.data.files.open_regular`; a FIFO would block forever), declared
sizes are checked before any signal data is read, nothing is read or inflated beyond the
largest ECG those checks accept (:data:`MAX_SIGNAL_BYTES`), WFDB checksums are verified,
and samples must be finite with amplitudes an ECG can have (:data:`MAX_PEAK_TO_PEAK_MV`).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import struct
import warnings
import zipfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from echo2ecg.data.ecg_xml import MAX_XML_BYTES, XML_SCHEMAS, read_xml_ecg
from echo2ecg.data.errors import InputRejected
from echo2ecg.data.files import open_regular
from echo2ecg.vocabulary import ECG_FORMATS, LEADS

DERIVABLE_LEADS = ("III", "aVR", "aVL", "aVF")

# Plausibility limits, checked on declared sizes before reading data.
MIN_FS_HZ = 100.0  # below this the QRS complex is not resolved
MAX_FS_HZ = 10_000.0
MIN_DURATION_S = 1.0  # shorter than one heartbeat
MAX_DURATION_S = 600.0
MAX_CHANNELS = 64
# Bytes of samples in the largest ECG the limits above accept: MAX_CHANNELS at MAX_FS_HZ for
# MAX_DURATION_S, 8 bytes a sample (float64, the widest type any format stores). No reader
# reads, inflates or allocates more signal data than this (3.07 GB).
MAX_SIGNAL_BYTES = int(MAX_CHANNELS * MAX_FS_HZ * MAX_DURATION_S * 8)
# Diagnostic ECG amplifiers span about ±5 mV and the largest QRS complexes reach 5-10 mV; a
# lead spanning more than this is a unit or gain error, not a heart (pacing spikes included).
MAX_PEAK_TO_PEAK_MV = 50.0
# Files in unknown units (NumPy, DICOM or WFDB without a voltage unit) may hold microvolts,
# the finest unit ECGs are stored in, so their bound is MAX_PEAK_TO_PEAK_MV in microvolts.
_UNKNOWN_UNIT_PER_MV = 1000.0

# Sizes of the parts around the samples, far above what any real file needs.
MAX_HEADER_BYTES = 1 << 20  # a WFDB header: one line per signal, plus comments
MAX_DICOM_ATTRIBUTE_BYTES = 16 << 20  # DICOM attributes besides the waveform samples
MAX_NPZ_SMALL_MEMBER_BYTES = 1 << 20  # the 'fs' and 'leads' arrays of an .npz
MAX_NPZ_MEMBERS = 64
MAX_ZIP_DIRECTORY_BYTES = 1 << 16  # zipfile holds every entry in memory, ~6x its bytes
_NPY_HEADER_BYTES = 1 << 16  # numpy itself refuses array headers above 10 kB

_WFDB_DEFAULT_FS_HZ = 250.0  # the WFDB standard's rate for a header that states none
# Bits per sample of the WFDB signal formats, for sizing a signal file before reading it;
# FLAC-compressed formats have no fixed size (reads stop at the header's sample count).
_WFDB_BITS = {
    "8": 8,
    "16": 16,
    "24": 24,
    "32": 32,
    "61": 16,
    "80": 8,
    "160": 16,
    "212": 12,
    "310": Fraction(32, 3),
    "311": Fraction(32, 3),
}
_WFDB_COMPRESSED = ("508", "516", "524")

_SUFFIX_FORMATS = {
    ".hea": "wfdb",
    ".dat": "wfdb",
    ".dcm": "dicom",
    ".npy": "numpy",
    ".npz": "numpy",
    ".xml": "xml",  # the schema is told from the root element (echo2ecg.data.ecg_xml)
}

# Factors from a stated voltage unit to millivolts (WFDB units, DICOM UCUM codes).
_TO_MILLIVOLTS = {"v": 1e3, "mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "nv": 1e-6}

# ISO/IEEE 11073 (MDC) term codes of the 12 leads, partition 2; DICOM writes them as
# "2:<term>" (scheme MDC), SCP-ECG as "5.6.3-9-<term>", and the context-free numeric code
# is 131072 + term.
_MDC_TERM_LEADS = {
    1: "I",
    2: "II",
    3: "V1",
    4: "V2",
    5: "V3",
    6: "V4",
    7: "V5",
    8: "V6",
    61: "III",
    62: "aVR",
    63: "aVL",
    64: "aVF",
}
_LEADS_BY_KEY = {lead.lower(): lead for lead in LEADS}


@dataclass
class RawEcg:
    """A 12-lead ECG as read from a file.

    signal: (12, T) float64 in :data:`LEADS` order, millivolts where the format says.
    fs: sampling rate in Hz.
    notes: what a ledger should know about how the file was read (e.g. that the WFDB default
        sampling rate was used because the header states none); never file content.
    """

    signal: np.ndarray
    fs: float
    notes: tuple[str, ...] = ()

    def __post_init__(self):
        if self.signal.ndim != 2 or self.signal.shape[0] != len(LEADS):
            raise ValueError(f"RawEcg.signal must be (12, T), got {self.signal.shape}")


def read_ecg(path: str | Path, fmt: str | None = None, fs: float | None = None) -> RawEcg:
    """Read one 12-lead ECG file.

    path: a WFDB record given by its ``.hea`` (or ``.dat``) file or, with fmt="wfdb", by its
        record name; a DICOM waveform file; a NumPy ``.npz`` / ``.npy`` file; an XML export
        (GE CardioSoft, GE MUSE, HL7 aECG).
    fmt: one of :data:`~echo2ecg.vocabulary.ECG_FORMATS`; inferred from the suffix when
        None. "xml" reads any of the three XML schemas, told from the root element;
        "cardiosoft", "muse" and "hl7aecg" refuse a file of another schema.
    fs: sampling rate in Hz for files that do not store one (bare ``.npy``, ``.npz`` without
        ``fs``); a rate stored in the file takes precedence.
    Raises InputRejected for anything wrong with the file.
    """
    path = Path(path)
    fmt = (fmt or _format_from_suffix(path)).lower()
    if fmt not in ECG_FORMATS:
        raise InputRejected(f"unsupported ECG format {fmt!r} (supported: {', '.join(ECG_FORMATS)})")
    if fmt == "wfdb":
        return _read_wfdb(path)
    if fmt == "xml" or fmt in XML_SCHEMAS:
        return _read_xml(path, None if fmt == "xml" else fmt)
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
    rows = lead_rows(names)
    leads = {lead: np.asarray(channels[row], dtype=np.float64) for lead, row in rows.items()}
    leads = _derive_limb_leads(leads)
    return np.stack([leads[lead] for lead in LEADS])


def lead_rows(names: list[str | None]) -> dict[str, int]:
    """The row of each lead in ``names`` (None = not a lead); rejects duplicate leads and
    missing leads that cannot be derived, so a reader can check names before reading data."""
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
    return rows


def _derive_limb_leads(leads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Add whichever of III, aVR, aVL, aVF are absent, from I and II (Einthoven, Goldberger)."""
    lead_i, lead_ii = leads["I"], leads["II"]
    derived = {
        "III": lead_ii - lead_i,
        "aVR": -(lead_i + lead_ii) / 2,
        "aVL": lead_i - lead_ii / 2,
        "aVF": lead_ii - lead_i / 2,
    }
    return {**derived, **leads}  # stored leads win over derived ones


def _in_lead_order(leads) -> list[str]:
    return [lead for lead in LEADS if lead in set(leads)]


def _format_from_suffix(path: Path) -> str:
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputRejected(
            f"unknown ECG file type {path.suffix.lower() or '(no suffix)'!r}; "
            f"give the format ({', '.join(ECG_FORMATS)})"
        )
    return fmt


def check_sampling_rate(fs) -> float:
    """``fs`` in Hz as a float, if it is a positive finite number from MIN_FS_HZ to
    MAX_FS_HZ. Reasons quote the number, never text that is not one."""
    try:
        value = float(fs)
    except (TypeError, ValueError, OverflowError):
        raise InputRejected("sampling rate is not a positive number (not numeric)") from None
    if not (math.isfinite(value) and value > 0):
        raise InputRejected(f"sampling rate {value:g} Hz is not a positive number")
    if not MIN_FS_HZ <= value <= MAX_FS_HZ:
        raise InputRejected(
            f"unsupported sampling rate: {value:g} Hz "
            f"(supported: {MIN_FS_HZ:g} to {MAX_FS_HZ:g} Hz)"
        )
    return value


def check_declared_size(n_samples: int, fs: float, n_channels: int) -> None:
    """Reject implausible sampling rates, durations and channel counts (before reading data)."""
    fs = check_sampling_rate(fs)
    duration_s = n_samples / fs
    if not MIN_DURATION_S <= duration_s <= MAX_DURATION_S:
        raise InputRejected(
            f"implausible duration: {duration_s:.3g} s "
            f"(accepted: {MIN_DURATION_S:g} to {MAX_DURATION_S:g} s)"
        )
    if not 1 <= n_channels <= MAX_CHANNELS:
        raise InputRejected(f"implausible channel count: {n_channels} (at most {MAX_CHANNELS})")


def millivolt_factor(unit: str | None) -> float:
    """Factor from a stated voltage unit to mV; 1 for absent or non-voltage units (kept as
    stored)."""
    return _TO_MILLIVOLTS.get(str(unit or "").strip().lower(), 1.0)


def is_voltage_unit(unit: str | None) -> bool:
    """Whether :func:`millivolt_factor` knows ``unit``, so that converted samples are in mV."""
    return str(unit or "").strip().lower() in _TO_MILLIVOLTS


def check_amplitudes(channels: np.ndarray, names: list[str | None], in_millivolts) -> None:
    """Reject lead channels with infinite samples or an amplitude no ECG has.

    channels: (C, T), one row per channel; names: the lead of each row (None = not a lead,
    not judged); in_millivolts: per row, whether it was converted to mV (its unit is known).
    A row in mV may span at most MAX_PEAK_TO_PEAK_MV; a row in unknown units may span that
    many microvolts. NaN marks a missing sample (WFDB's invalid-sample value reads as NaN;
    preprocessing zeroes it) and is skipped here.
    """
    infinite, too_wide, widest, unknown_units = [], [], 0.0, False
    for row, lead in enumerate(names):
        if lead is None:
            continue
        samples = channels[row]
        if np.isinf(samples).any():
            infinite.append(lead)
            continue
        # float() first: an int64 difference could wrap around; all-NaN gives NaN (passes).
        span = float(np.fmax.reduce(samples)) - float(np.fmin.reduce(samples))
        limit = MAX_PEAK_TO_PEAK_MV * (1.0 if in_millivolts[row] else _UNKNOWN_UNIT_PER_MV)
        if span > limit:
            too_wide.append(lead)
            widest = max(widest, span / (limit / MAX_PEAK_TO_PEAK_MV))
            unknown_units |= not in_millivolts[row]
    if infinite:
        raise InputRejected(
            f"non-finite samples (infinite) in leads: {', '.join(_in_lead_order(infinite))}"
        )
    if too_wide:
        units = " even if stored in microvolts" if unknown_units else ""
        raise InputRejected(
            f"implausible amplitude in leads "
            f"{', '.join(_in_lead_order(too_wide))}: peak-to-peak up to "
            f"{widest:.3g} mV{units}, above the {MAX_PEAK_TO_PEAK_MV:g} mV "
            "of any ECG"
        )


def _open_existing(path: Path, what: str, missing: str):
    """:func:`~echo2ecg.data.files.open_regular`, with ``missing`` as the reason when nothing
    exists at ``path`` (a dangling link still reaches open_regular's own reason)."""
    if not os.path.lexists(path):
        raise InputRejected(missing)
    return open_regular(path, what)


def _file_size(handle) -> int:
    return os.fstat(handle.fileno()).st_size


def _refuse_larger_than(handle, limit: int, kind: str) -> None:
    """Reject an open file of more than ``limit`` bytes before any of it is read."""
    size = _file_size(handle)
    if size > limit:
        raise InputRejected(
            f"{kind} file too large for an ECG: {size / 1e6:.0f} MB (at most {limit / 1e6:.0f} MB)"
        )


# --- XML ----------------------------------------------------------------------------------


def _read_xml(path: Path, schema: str | None) -> RawEcg:
    """An XML export's rhythm strip (:mod:`echo2ecg.data.ecg_xml`), checked like any ECG:
    a plausible rate and length, every lead present or derivable, amplitudes in mV."""
    with _open_existing(path, "ECG file", "ECG file not found (xml)") as handle:
        _refuse_larger_than(handle, MAX_XML_BYTES, "XML")
        data = handle.read(MAX_XML_BYTES + 1)
    channels, labels, fs = read_xml_ecg(data, schema)
    check_declared_size(channels.shape[1], fs, len(labels))
    names = [normalise_lead_name(label) for label in labels]
    lead_rows(names)
    check_amplitudes(channels, names, [True] * len(names))
    return RawEcg(to_leads_order(channels, names), check_sampling_rate(fs))


# --- WFDB ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_wfdb():
    """wfdb 4.3 calls pandas' deprecated ``inplace=`` keywords on every read; the warnings
    concern wfdb's own code, so they are kept out of the pipeline's logs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _read_wfdb(path: Path) -> RawEcg:
    """A WFDB record (header + signal files) in physical units, converted to mV.

    Before any sample is read: the header and every signal file it names must be regular
    files, the sampling rate a positive number (a header without one gets the standard's
    250 Hz, noted in RawEcg.notes), the gains of the leads non-zero and finite, and the
    sample count (stated, or what the first signal file holds) a plausible duration that
    every signal file holds. After reading, each lead's checksum must match its header.
    """
    with _quiet_wfdb():
        import wfdb  # here, not at module level: it pulls in pandas, needed only for this format

    record_name = str(path.with_suffix("") if path.suffix.lower() in (".hea", ".dat") else path)
    header_path = Path(record_name + ".hea")
    lines = _wfdb_header_lines(header_path)
    header = _wfdb_call(wfdb.rdheader, record_name)
    fields = lines[0].split() or [""]
    if isinstance(header, wfdb.MultiRecord) or "/" in fields[0]:
        raise InputRejected("multi-segment WFDB records are not supported")
    fs, notes = _wfdb_sampling_rate(fields)
    if not header.n_sig or not header.file_name:
        raise InputRejected("unreadable WFDB record: header lists no signals")
    sig_names = header.sig_name or [None] * header.n_sig
    names = [normalise_lead_name(name) if name is not None else None for name in sig_names]
    wanted = sorted(lead_rows(names).values())  # missing leads are rejected before reading
    leads = [names[channel] for channel in wanted]
    # wfdb reads a stated gain of 0 (WFDB's "uncalibrated") as 200, so zeros come from the text
    zero = _wfdb_zero_gains(lines[1:])
    uncalibrated = [
        names[channel]
        for channel in wanted
        if channel in zero or not math.isfinite(float(header.adc_gain[channel]))
    ]
    if uncalibrated:
        raise InputRejected(
            f"ADC gain of leads {', '.join(_in_lead_order(uncalibrated))} is zero "
            "or not finite: the samples cannot be converted to millivolts"
        )
    if header.sig_len is not None:  # a stated count is judged before signal files are opened
        check_declared_size(int(header.sig_len), fs, int(header.n_sig))
    check_declared_size(_wfdb_signal_length(header, header_path.parent), fs, int(header.n_sig))

    record = _wfdb_call(
        wfdb.rdrecord, record_name, channels=wanted, physical=False, smooth_frames=False
    )  # every stored sample, as the checksums count them
    if record.e_d_signal is None:
        raise InputRejected("unreadable WFDB record: no signal data")
    _check_wfdb_checksums(record.checksum, record.calc_checksum(expanded=True), leads)
    record.dac(expanded=True, inplace=True)
    channels = record.smooth_frames("physical").T  # (leads read, T); frames averaged
    check_declared_size(channels.shape[1], fs, int(header.n_sig))
    units = record.units or [None] * len(wanted)
    channels = channels * np.array([millivolt_factor(unit) for unit in units])[:, None]
    check_amplitudes(channels, leads, [is_voltage_unit(unit) for unit in units])
    return RawEcg(to_leads_order(channels, leads), fs, notes)


def _wfdb_header_lines(header_path: Path) -> list[str]:
    """The lines of a WFDB header that are not blank or comments, stripped, as wfdb splits
    them (the record line, then one per signal), from a regular file of at most
    MAX_HEADER_BYTES."""
    with _open_existing(
        header_path,
        "WFDB header file (.hea)",
        "unreadable WFDB record: header file (.hea) not found",
    ) as handle:
        content = handle.read(MAX_HEADER_BYTES + 1)
    if len(content) > MAX_HEADER_BYTES:
        raise InputRejected(
            f"unreadable WFDB record: header file larger than {MAX_HEADER_BYTES >> 20} MiB"
        )
    lines = (line.strip() for line in content.decode("ascii", "ignore").splitlines())
    return [line for line in lines if line and not line.startswith("#")] or [""]


def _wfdb_zero_gains(signal_lines: list[str]) -> set[int]:
    """Channels whose signal line states an ADC gain of zero, parsed as wfdb parses it."""
    from wfdb.io.header import rx_signal

    zero = set()
    for channel, line in enumerate(signal_lines):
        match = rx_signal.match(line)
        gain = match.group("adc_gain") if match else ""
        with contextlib.suppress(ValueError):
            if gain and float(gain) == 0:
                zero.add(channel)
    return zero


def _wfdb_sampling_rate(fields: list[str]) -> tuple[float, tuple[str, ...]]:
    """The rate of a record line split into fields, and the notes on how it was found.

    The rate is the third field, before any "/counter frequency"; wfdb would read a
    negative or unparsable one as a counter frequency or nothing and use 250 Hz, so it is
    taken from the text here. Only an absent field means the standard's default.
    """
    if len(fields) < 3:
        return _WFDB_DEFAULT_FS_HZ, (
            f"sampling rate not stated: WFDB default {_WFDB_DEFAULT_FS_HZ:g} Hz used",
        )
    return check_sampling_rate(fields[2].split("/")[0]), ()


def _wfdb_signal_length(header, folder: Path) -> int:
    """Samples per signal: the header's count or, when it states none, what the first signal
    file holds (as WFDB infers it). Every signal file the header names must be a regular file
    holding that many samples; nothing is read but their sizes."""
    files: dict[str, list] = {}  # signal file -> [format, byte offset, samples per frame]
    for name, fmt, per_frame, offset in zip(
        header.file_name, header.fmt, header.samps_per_frame, header.byte_offset
    ):
        files.setdefault(name, [fmt, offset or 0, 0])[2] += per_frame or 1
    n_samples = header.sig_len
    for name, (fmt, offset, per_frame) in files.items():
        with _open_existing(
            folder / name,
            "WFDB signal file (.dat)",
            "unreadable WFDB record: a signal file it names is missing",
        ) as handle:
            size = _file_size(handle)
        if fmt in _WFDB_COMPRESSED:  # FLAC: the size says nothing; reads stop at the count
            if n_samples is None:
                raise InputRejected(
                    "unreadable WFDB record: the header states no sample "
                    "count, which compressed (FLAC) signal files need"
                )
            continue
        if fmt not in _WFDB_BITS:
            raise InputRejected(f"unreadable WFDB record: unknown signal format {fmt}")
        frame_bytes = Fraction(_WFDB_BITS[fmt]) * per_frame / 8
        if n_samples is None:
            n_samples = math.floor(max(size - offset, 0) / frame_bytes)
        needed = offset + math.ceil(n_samples * frame_bytes)
        if size < needed:
            raise InputRejected(
                f"unreadable WFDB record: a signal file holds {size} bytes, "
                f"fewer than the {needed} its header states"
            )
    return int(n_samples)


def _check_wfdb_checksums(
    stated: list[int | None] | None, computed: list[int], leads: list[str]
) -> None:
    """Reject leads whose 16-bit sum of stored samples differs from the header's checksum.

    stated: the header's checksum of each lead read (None where the header states none, which
    is accepted); computed: the sums of the samples read (any integer; compared modulo 2^16,
    as headers write them signed or unsigned).
    """
    stated = stated or [None] * len(leads)
    corrupted = [
        lead
        for lead, expected, actual in zip(leads, stated, computed)
        if expected is not None and (int(actual) - int(expected)) % 65536
    ]
    if corrupted:
        plural = "s" if len(corrupted) > 1 else ""
        raise InputRejected(
            f"checksum mismatch in lead{plural} "
            f"{', '.join(_in_lead_order(corrupted))}: "
            "the signal file is corrupted"
        )


def _wfdb_call(function, *args, **kwargs):
    """Call a wfdb reader, turning its failures on a broken record into InputRejected.

    wfdb raises many types on malformed files; their messages may quote file content, so
    only the kind of failure is reported. MemoryError is not the file's fault and propagates.
    """
    try:
        with _quiet_wfdb():
            return function(*args, **kwargs)
    except FileNotFoundError as error:
        raise InputRejected("unreadable WFDB record: a signal file it names is missing") from error
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - any parser failure means a malformed file
        raise InputRejected(
            f"unreadable WFDB record: malformed header or signal file ({type(error).__name__})"
        ) from error


# --- DICOM waveform -----------------------------------------------------------------------


def _read_dicom(path: Path) -> RawEcg:
    """A DICOM ECG waveform: the first multiplex group with at least 8 channels, in mV.

    pydicom reads the whole file into memory, so the file must be a regular file of at most
    MAX_SIGNAL_BYTES + MAX_DICOM_ATTRIBUTE_BYTES. The deflated transfer syntax is refused
    from the file meta group: pydicom inflates the rest in one call with no bound, and
    1 MB of it can inflate to gigabytes.
    """
    import pydicom  # here, like wfdb: only this format needs it

    limit = MAX_SIGNAL_BYTES + MAX_DICOM_ATTRIBUTE_BYTES
    with _open_existing(path, "ECG file", "ECG file not found (dicom)") as handle:
        _refuse_larger_than(handle, limit, "DICOM")
        try:
            if _dicom_transfer_syntax(handle) == pydicom.uid.DeflatedExplicitVRLittleEndian:
                raise InputRejected(
                    "deflate-compressed DICOM files (Deflated Explicit VR "
                    "Little Endian) are not supported: their size is unknown "
                    "until inflated"
                )
            handle.seek(0)
            dataset = pydicom.dcmread(handle)
        except (InputRejected, MemoryError):
            raise
        except Exception as error:  # noqa: BLE001 - any parser failure means a malformed file
            raise InputRejected(f"unreadable DICOM file ({type(error).__name__})") from error
    try:
        return _dicom_ecg(dataset)
    except (InputRejected, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - malformed waveform data or attributes
        raise InputRejected(f"unreadable DICOM waveform data ({type(error).__name__})") from error


def _dicom_transfer_syntax(handle) -> str | None:
    """The transfer syntax UID in the file meta group, read without touching the dataset
    after it (the part a deflated file compresses). ``handle`` is left past the group."""
    from pydicom.filereader import read_dataset, read_preamble

    read_preamble(handle, False)
    meta = read_dataset(
        handle,
        is_implicit_VR=False,
        is_little_endian=True,
        stop_when=lambda tag, vr, length: tag >> 16 != 2,
    )
    return meta.get("TransferSyntaxUID")


def _dicom_ecg(dataset) -> RawEcg:
    groups = dataset.get("WaveformSequence")
    if not groups:
        raise InputRejected("DICOM file holds no waveform (not an ECG waveform object)")
    index = next(
        (
            i
            for i, group in enumerate(groups)
            if int(_required(group, "NumberOfWaveformChannels")) >= 8
        ),
        None,
    )
    if index is None:
        raise InputRejected("DICOM waveform has no group with 8 or more channels")
    group = groups[index]
    definitions = _required(group, "ChannelDefinitionSequence")
    fs = check_sampling_rate(_required(group, "SamplingFrequency"))
    check_declared_size(int(_required(group, "NumberOfWaveformSamples")), fs, len(definitions))
    channels = dataset.waveform_array(index).T
    if channels.shape[0] != len(definitions):
        raise InputRejected(
            f"DICOM waveform has {channels.shape[0]} channels but "
            f"{len(definitions)} channel definitions"
        )
    units = [_dicom_channel_unit(d) for d in definitions]
    channels = channels * np.array([millivolt_factor(unit) for unit in units])[:, None]
    names = [_dicom_channel_lead(d) for d in definitions]
    check_amplitudes(channels, names, [is_voltage_unit(unit) for unit in units])
    return RawEcg(to_leads_order(channels, names), fs)


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
    return normalise_lead_name(source.get("CodeMeaning", "")) or lead_from_code(
        source.get("CodeValue", "")
    )


def _dicom_channel_unit(definition) -> str | None:
    units = definition.get("ChannelSensitivityUnitsSequence")
    return units[0].get("CodeValue") if units else None


# --- NumPy --------------------------------------------------------------------------------


def _read_numpy(path: Path, fs: float | None) -> RawEcg:
    """``.npz`` with ``signal`` ((12, T) or (T, 12)), ``fs``, optional ``leads``; or a bare
    ``.npy`` (12, T) in LEADS order with ``fs`` from the caller. Units are kept as stored
    (so amplitudes are judged as if they might be microvolts)."""
    with _open_existing(path, "ECG file", "ECG file not found (numpy)") as handle:
        magic = handle.read(6)
        handle.seek(0)
        if magic.startswith(b"PK"):
            return _read_npz(handle, fs)
        if magic == b"\x93NUMPY":
            return _read_npy(handle, fs)
    raise InputRejected("unreadable NumPy file: neither .npy nor .npz content")


def _read_npy(handle, fs: float | None) -> RawEcg:
    """A bare .npy from an open regular file; its header is checked before its data is read."""
    if fs is None:
        raise InputRejected("bare .npy ECG has no sampling rate: give fs")
    fs = _sampling_rate(fs)
    try:
        shape, dtype = _npy_header(handle)
        _check_signal_layout(shape, dtype, len(LEADS), fs)
        if _file_size(handle) < handle.tell() + _nbytes(shape, dtype):
            raise InputRejected(
                "truncated .npy file: it holds fewer samples than its header states"
            )
        handle.seek(0)
        signal = np.lib.format.read_array(handle, allow_pickle=False)
    except (InputRejected, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - malformed header or content
        raise InputRejected(f"unreadable .npy file ({type(error).__name__})") from error
    return _numpy_ecg(signal, fs, list(LEADS))


def _read_npz(handle, fs: float | None) -> RawEcg:
    """An .npz from an open regular file. The zip directory, each member's declared size and
    compression method and each array header are checked before a member is inflated, so no
    member inflates beyond its bound (MAX_SIGNAL_BYTES for ``signal``)."""
    _check_zip_directory(handle)
    try:
        with zipfile.ZipFile(handle) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            if "signal" not in members:
                raise InputRejected(".npz ECG has no 'signal' array")
            if "fs" in members:
                fs = _npz_array(archive, members["fs"], "fs", MAX_NPZ_SMALL_MEMBER_BYTES)
            elif fs is None:
                raise InputRejected(".npz ECG has no sampling rate ('fs'): give fs")
            fs = _sampling_rate(fs)
            leads = list(LEADS)
            if "leads" in members:
                names = _npz_array(archive, members["leads"], "leads", MAX_NPZ_SMALL_MEMBER_BYTES)
                if names.ndim != 1:
                    raise InputRejected(".npz 'leads' is not a list of names")
                leads = [_text(name) for name in names]
            signal = _npz_array(
                archive,
                members["signal"],
                "signal",
                MAX_SIGNAL_BYTES + _NPY_HEADER_BYTES,
                check=lambda shape, dtype: _check_signal_layout(shape, dtype, len(leads), fs),
            )
    except (InputRejected, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - malformed archive or member
        raise InputRejected(f"unreadable .npz file ({type(error).__name__})") from error
    return _numpy_ecg(signal, fs, leads)


_ZIP_END = struct.Struct("<4s4H2LH")  # end of central directory record
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")  # zip64 end record, just before its 20-byte locator


def _check_zip_directory(handle) -> None:
    """Refuse a zip whose central directory is larger than an ECG's few arrays need, before
    zipfile reads it: zipfile keeps an object for every entry (a 24 MiB directory of empty
    entries costs 160 MB). Sizes are taken where zipfile takes them, zip64 record included."""
    size = _file_size(handle)
    tail_size = min(size, _ZIP_END.size + 0xFFFF)  # the record ends within a maximal comment
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _ZIP_END.size > len(tail):
        raise InputRejected("unreadable .npz file: no zip directory")
    entries, directory_bytes = _ZIP_END.unpack_from(tail, at)[4:6]
    zip64_at = at - 20 - _ZIP64_END.size
    if (
        zip64_at >= 0
        and tail[at - 20 : at - 16] == b"PK\x06\x07"
        and tail[zip64_at : zip64_at + 4] == b"PK\x06\x06"
    ):
        entries, directory_bytes = _ZIP64_END.unpack_from(tail, zip64_at)[7:9]
    handle.seek(0)
    if entries > MAX_NPZ_MEMBERS or directory_bytes > MAX_ZIP_DIRECTORY_BYTES:
        raise InputRejected(
            f"implausible .npz file: its zip directory lists {entries} entries "
            f"in {directory_bytes} bytes (an ECG needs at most 3 arrays)"
        )


def _npz_array(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, max_bytes: int, check=None
) -> np.ndarray:
    """The array in one .npz member, refused unless it is stored or deflated (zipfile bounds
    only deflate's output), declares at most ``max_bytes`` in the zip directory, and holds
    exactly the data its array header declares; ``check(shape, dtype)`` judges the header
    first. Only the header is inflated before these checks."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise InputRejected(
            f".npz array '{key}' uses an unsupported compression method "
            "(only stored and deflated are read)"
        )
    if info.file_size > max_bytes:
        raise InputRejected(
            f".npz array '{key}' declares {info.file_size} bytes, more than the "
            f"{max_bytes} any ECG needs"
        )
    with archive.open(info) as stream:
        shape, dtype = _npy_header(stream)
        header_bytes = stream.tell()
    if check is not None:
        check(shape, dtype)
    expected = header_bytes + _nbytes(shape, dtype)
    if info.file_size != expected:  # short, or data running on that nothing would read
        raise InputRejected(
            f".npz array '{key}' holds {info.file_size} bytes, not the {expected} its header states"
        )
    with archive.open(info) as stream:
        return np.lib.format.read_array(stream, allow_pickle=False)


def _npy_header(stream) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an .npy stream, from its header alone (numpy bounds its size)."""
    version = np.lib.format.read_magic(stream)
    read_header = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, _fortran_order, dtype = read_header(stream)
    return shape, dtype


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize


def _text(name) -> str:
    return name.decode("ascii", "replace") if isinstance(name, bytes) else str(name)


def _sampling_rate(fs) -> float:
    values = np.asarray(fs).reshape(-1)
    if values.size != 1 or not np.issubdtype(values.dtype, np.number):
        raise InputRejected("sampling rate ('fs') is not a single number")
    return check_sampling_rate(values[0])


def _lead_axis(shape: tuple[int, ...], n_leads: int) -> int:
    """Which axis of a (leads, T) or (T, leads) array holds the leads; (leads, T) if both fit."""
    if len(shape) != 2:
        raise InputRejected(f"ECG array must be 2-D (leads x samples), got shape {shape}")
    if shape[0] == n_leads:
        return 0
    if shape[1] == n_leads:
        return 1
    raise InputRejected(f"ECG array of shape {shape} does not have {n_leads} leads")


def _check_signal_layout(shape: tuple[int, ...], dtype: np.dtype, n_leads: int, fs: float) -> None:
    """Reject an array header that is not a plausible ECG, before its data is read."""
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise InputRejected(f"ECG array has non-numeric dtype {dtype}")
    axis = _lead_axis(shape, n_leads)
    check_declared_size(shape[1 - axis], fs, n_leads)
    if _nbytes(shape, dtype) > MAX_SIGNAL_BYTES:  # e.g. 16-byte long doubles at the limits
        raise InputRejected(
            f"ECG array of {_nbytes(shape, dtype)} bytes is larger than {MAX_SIGNAL_BYTES} bytes"
        )


def _numpy_ecg(signal: np.ndarray, fs: float, leads: list[str]) -> RawEcg:
    """(leads, T) or (T, leads) array with one name per lead, to a RawEcg."""
    _check_signal_layout(signal.shape, signal.dtype, len(leads), fs)
    channels = signal if _lead_axis(signal.shape, len(leads)) == 0 else signal.T
    names = [normalise_lead_name(name) for name in leads]
    check_amplitudes(channels, names, [False] * len(names))  # units unknown
    return RawEcg(to_leads_order(channels, names), fs)
