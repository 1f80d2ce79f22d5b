"""Reading 12-lead ECG exports in the XML schemas of the big vendors.

Three schemas, each read from its rhythm strip only (median or representative beats are
ignored):

- ``cardiosoft``: GE CardioSoft (the UK Biobank's format). ``CardiologyXML/StripData``
  holds ``SampleRate`` (Hz), ``Resolution`` (µV per LSB) and one ``WaveformData lead="…"``
  per lead, its samples as comma-separated integers;
- ``muse``: GE MUSE ``RestingECG``. The ``Waveform`` whose ``WaveformType`` is ``Rhythm``
  holds ``SampleBase`` (Hz, times 10^``SampleExponent``) and one ``LeadData`` per lead:
  ``LeadID``, ``LeadAmplitudeUnitsPerBit``, ``LeadAmplitudeUnits``,
  ``LeadSampleCountTotal`` and ``WaveFormData``, base64 of little-endian int16. MUSE
  usually stores only I, II and V1–V6; the other limb leads are derived;
- ``hl7aecg``: HL7 annotated ECG (``AnnotatedECG``, namespace ``urn:hl7-org:v3``, the
  FDA's exchange format). The ``series`` coded ``RHYTHM`` holds a ``sequenceSet`` whose
  time sequence (``TIME_ABSOLUTE`` or ``TIME_RELATIVE``) gives the sample ``increment``
  and whose lead sequences (``MDC_ECG_LEAD_*``) hold ``SLIST_PQ`` values:
  ``origin + scale × digits`` in the units of ``scale``.

:func:`xml_schema` tells the schema from the root element, so a ``.xml`` file needs no
format. Parsing is safe against hostile files: at most :data:`MAX_XML_BYTES` are read, and
a document type declaration, entity or external reference is refused before anything is
expanded (``defusedxml``), so an entity-expansion bomb costs its bytes and no more. Leads
are matched by name in any order; amplitudes end in millivolts. Every failure raises
:class:`~echo2ecg.data.errors.InputRejected` with a reason built from what went wrong,
never from the file's text (which holds names, IDs and dates): a channel is named by its
position in the file, never by its label.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import warnings

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeElementTree

from echo2ecg.data.errors import InputRejected

# The largest XML export read: a 12-lead MUSE or aECG file of 10 s is 0.2 to 1 MB, and
# the full-disclosure strips of CardioSoft reach a few MB.
MAX_XML_BYTES = 16 << 20
XML_SCHEMAS = ("cardiosoft", "muse", "hl7aecg")
_ROOTS = {"cardiologyxml": "cardiosoft", "restingecg": "muse", "annotatedecg": "hl7aecg"}
_HL7 = "{urn:hl7-org:v3}"
_TIME_CODES = ("TIME_ABSOLUTE", "TIME_RELATIVE")
_TO_MILLIVOLTS = {
    "uv": 1e-3,
    "µv": 1e-3,
    "μv": 1e-3,
    "microvolts": 1e-3,
    "mv": 1.0,
    "millivolts": 1.0,
    "v": 1e3,
    "volts": 1e3,
}
_TO_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}
_SAMPLE_CHARACTERS = str.maketrans("", "", "0123456789+- ")  # deleted: what may remain


def parse_xml(data: bytes):
    """The root element of an XML document of at most MAX_XML_BYTES, parsed without any
    DTD, entity or external reference (each refused with a reason)."""
    if len(data) > MAX_XML_BYTES:
        raise InputRejected(
            f"XML file too large for an ECG: {len(data) / 1e6:.0f} MB "
            f"(at most {MAX_XML_BYTES / 1e6:.0f} MB)"
        )
    try:
        return SafeElementTree.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as error:
        raise InputRejected(
            "XML file declares a document type, entities or external references "
            f"(refused: they can expand without bound) ({type(error).__name__})"
        ) from error
    except SafeElementTree.ParseError as error:
        raise InputRejected("malformed XML (not a well-formed document)") from error


def xml_schema(root) -> str | None:
    """``cardiosoft`` | ``muse`` | ``hl7aecg`` from the root element's name, or None."""
    return _ROOTS.get(_local(root.tag).lower())


def read_xml_ecg(data: bytes, schema: str | None = None) -> tuple[np.ndarray, list[str], float]:
    """An XML ECG export's rhythm strip → (channels (C, T) float64 in mV, lead label of
    each row, sampling rate in Hz).

    schema: one of XML_SCHEMAS, or None to tell it from the root element; a file of
    another schema than the one given is refused.
    """
    root = parse_xml(data)
    found = xml_schema(root)
    if found is None:
        raise InputRejected(
            "XML file is not an ECG export this pipeline reads "
            f"(root element is none of {', '.join(sorted(_ROOTS))})"
        )
    if schema is not None and schema != found:
        raise InputRejected(f"XML file is a {found} export, not {schema}")
    reader = {"cardiosoft": _cardiosoft, "muse": _muse, "hl7aecg": _hl7aecg}[found]
    return reader(root)


# --- helpers ------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _number(text: str | None, what: str) -> float:
    try:
        value = float(str(text).strip())
    except (TypeError, ValueError):
        raise InputRejected(f"{what} is not a number") from None
    if not math.isfinite(value):
        raise InputRejected(f"{what} is not a finite number")
    return value


def _millivolts_per_unit(unit: str | None, what: str) -> float:
    factor = _TO_MILLIVOLTS.get(str(unit or "").strip().lower())
    if factor is None:
        raise InputRejected(f"{what} is not a voltage unit this pipeline knows")
    return factor


def _integers(text: str, separator: str, what: str) -> np.ndarray:
    """Integers in ``text`` split at ``separator`` (whitespace around it ignored; " ":
    any whitespace) → float64."""
    if separator == " ":
        cleaned = re.sub(r"\s+", " ", text or "").strip()
    else:  # an empty entry between two separators is a missing sample, not no entry
        cleaned = re.sub(r"\s+", "", text or "").replace(separator, " ").strip()
    if not cleaned:
        raise InputRejected(f"{what} holds no samples")
    # Parsed in C: a list of millions of Python strings (or a regular expression's
    # backtracking stack) would cost many times the file. np.fromstring stops at the first
    # token that is not a number, which the count below catches.
    if cleaned.translate(_SAMPLE_CHARACTERS):
        raise InputRejected(f"{what} holds samples that are not integers")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # numpy's "not read to its end"
        try:
            samples = np.fromstring(cleaned, dtype=np.float64, sep=" ")
        except (DeprecationWarning, ValueError):
            raise InputRejected(f"{what} holds samples that are not integers") from None
    if len(samples) != cleaned.count(" ") + 1:
        raise InputRejected(f"{what} holds samples that are not integers")
    return samples


def _same_length(channels: list[np.ndarray], labels: list[str]) -> np.ndarray:
    if not channels:
        raise InputRejected("XML file holds no lead waveforms in its rhythm strip")
    lengths = {len(c) for c in channels}
    if len(lengths) != 1:
        raise InputRejected(
            f"leads of the rhythm strip differ in length ({min(lengths)} to {max(lengths)} samples)"
        )
    return np.stack(channels).astype(np.float64)


# --- GE CardioSoft ------------------------------------------------------------------------


def _cardiosoft(root) -> tuple[np.ndarray, list[str], float]:
    strip = root.find("StripData")
    if strip is None:
        raise InputRejected("CardioSoft XML has no StripData (rhythm strip)")
    fs = _number(strip.findtext("SampleRate"), "CardioSoft SampleRate")
    resolution = strip.find("Resolution")
    if resolution is None:
        raise InputRejected("CardioSoft XML has no Resolution (µV per LSB)")
    per_lsb = _number(resolution.text, "CardioSoft Resolution")
    unit = (resolution.get("units") or "uVperLsb").lower().replace("perlsb", "")
    factor = per_lsb * _millivolts_per_unit(unit, "CardioSoft Resolution unit")
    channels, labels = [], []
    for number, waveform in enumerate(strip.findall("WaveformData"), start=1):
        label = waveform.get("lead")
        if label is None:
            raise InputRejected(f"CardioSoft WaveformData {number} has no lead name")
        channels.append(_integers(waveform.text, ",", f"CardioSoft WaveformData {number}") * factor)
        labels.append(label)
    return _same_length(channels, labels), labels, fs


# --- GE MUSE ------------------------------------------------------------------------------


def _muse(root) -> tuple[np.ndarray, list[str], float]:
    rhythm = [
        w
        for w in root.findall("Waveform")
        if (w.findtext("WaveformType") or "").strip() == "Rhythm"
    ]
    if not rhythm:
        raise InputRejected("MUSE XML has no Rhythm waveform (only median beats or none)")
    waveform = rhythm[0]
    base = _number(waveform.findtext("SampleBase"), "MUSE SampleBase")
    exponent = waveform.findtext("SampleExponent")
    fs = base * 10.0 ** (_number(exponent, "MUSE SampleExponent") if exponent else 0.0)
    channels, labels = [], []
    for number, lead in enumerate(waveform.findall("LeadData"), start=1):
        what = f"MUSE LeadData {number}"
        label = (lead.findtext("LeadID") or "").strip()
        if not label:
            raise InputRejected(f"{what} has no LeadID")
        text = "".join((lead.findtext("WaveFormData") or "").split())
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InputRejected(f"{what}: WaveFormData is not base64") from None
        if len(raw) % 2:
            raise InputRejected(f"{what}: WaveFormData holds an odd number of bytes")
        samples = np.frombuffer(raw, dtype="<i2").astype(np.float64)
        declared = lead.findtext("LeadSampleCountTotal")
        if declared is not None:
            count = int(_number(declared, f"{what} sample count"))
            if count != len(samples):
                raise InputRejected(
                    f"{what}: {len(samples)} samples where LeadSampleCountTotal says {count}"
                )
        per_bit = _number(lead.findtext("LeadAmplitudeUnitsPerBit") or "1", f"{what} units per bit")
        unit = lead.findtext("LeadAmplitudeUnits") or "MICROVOLTS"
        channels.append(samples * per_bit * _millivolts_per_unit(unit, f"{what} unit"))
        labels.append(label)
    return _same_length(channels, labels), labels, fs


# --- HL7 aECG -----------------------------------------------------------------------------


def _code(element) -> str:
    code = element.find(f"{_HL7}code")
    return (code.get("code") or "") if code is not None else ""


def _hl7aecg(root) -> tuple[np.ndarray, list[str], float]:
    # rhythm series are component/series; representative beats live in derivedSeries
    series = [s for s in root.iter(f"{_HL7}series") if _code(s).upper() == "RHYTHM"]
    if not series:
        raise InputRejected("HL7 aECG has no RHYTHM series (only derived beats or none)")
    # the series' own sequence sets, not those of its derived series
    sequences = [
        sequence
        for sequence_set in series[0].findall(f"{_HL7}component/{_HL7}sequenceSet")
        for sequence in sequence_set.findall(f"{_HL7}component/{_HL7}sequence")
    ]
    fs = None
    channels, labels = [], []
    for number, sequence in enumerate(sequences, start=1):
        code, value = _code(sequence), sequence.find(f"{_HL7}value")
        if value is None:
            continue
        if code in _TIME_CODES:
            increment = value.find(f"{_HL7}increment")
            if increment is None:
                raise InputRejected("HL7 aECG time sequence has no increment")
            unit = (increment.get("unit") or "s").strip()
            if unit not in _TO_SECONDS:
                raise InputRejected("HL7 aECG time increment is not in a unit of time")
            step = _number(increment.get("value"), "HL7 aECG time increment") * _TO_SECONDS[unit]
            if step <= 0:
                raise InputRejected("HL7 aECG time increment is not positive")
            fs = 1.0 / step
            continue
        if not code.upper().startswith("MDC_ECG_LEAD_"):
            continue
        what = f"HL7 aECG sequence {number}"
        scale, origin = value.find(f"{_HL7}scale"), value.find(f"{_HL7}origin")
        if scale is None:
            raise InputRejected(f"{what} has no scale")
        factor = _number(scale.get("value"), f"{what} scale") * _millivolts_per_unit(
            scale.get("unit"), f"{what} scale unit"
        )
        offset = 0.0
        if origin is not None:
            offset = _number(origin.get("value"), f"{what} origin") * _millivolts_per_unit(
                origin.get("unit") or scale.get("unit"), f"{what} origin unit"
            )
        digits = _integers(value.findtext(f"{_HL7}digits") or "", " ", what)
        channels.append(digits * factor + offset)
        labels.append(code)
    if fs is None:
        raise InputRejected("HL7 aECG rhythm series has no time sequence (sampling rate)")
    return _same_length(channels, labels), labels, fs
