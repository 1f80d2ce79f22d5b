"""Vendor XML exports (GE CardioSoft, GE MUSE, HL7 aECG): files built here in each
schema, read back against the arrays they encode; malformed and hostile XML refused with
a reason that quotes nothing from the file."""

import base64
import dataclasses
import re
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from conftest import PEAK_RSS_MB, assert_plain, einthoven_leads, random_leads, read_in_child

from echo2ecg.data.ecg_formats import LEADS, read_ecg
from echo2ecg.data.ecg_xml import MAX_XML_BYTES, parse_xml, xml_schema
from echo2ecg.data.errors import InputRejected
from echo2ecg.synth.cohort import demo_specs, ecg_signal, generate_cohort, plan_cohort
from echo2ecg.synth.ecg_files import (
    AECG_SCALE_UV,
    CARDIOSOFT_UV_PER_LSB,
    MUSE_STORED_LEADS,
    MUSE_UV_PER_BIT,
    write_cardiosoft_xml,
    write_hl7_aecg,
    write_muse_xml,
)
from echo2ecg.synth.echo_dicom import DicomIdentity

IDENTITY = DicomIdentity(
    "DOE^JANE",
    "MRN0123456",
    "19500101",
    "F",
    "1.2.826.0.1.3680043.8.498.1",
    "ACC00000001",
    datetime(2021, 3, 4, 10, 11, 12),
    "St. Elsewhere General Hospital",
)
ACQUIRED = datetime(2021, 3, 4, 10, 30, 0)
WRITERS = {
    "cardiosoft": (write_cardiosoft_xml, CARDIOSOFT_UV_PER_LSB),
    "muse": (write_muse_xml, MUSE_UV_PER_BIT),
    "hl7aecg": (write_hl7_aecg, AECG_SCALE_UV),
}
IDENTIFIERS = ("DOE", "JANE", "MRN0123456", "19500101", "ACC00000001", "1.2.826")


def shuffled(signal, seed=0):
    order = np.random.default_rng(seed).permutation(len(LEADS))
    return signal[order], [LEADS[i] for i in order]


@pytest.mark.parametrize("schema", sorted(WRITERS))
@pytest.mark.parametrize("fs", [500, 250])
def test_each_schema_reads_back_its_leads_in_any_order_in_millivolts(tmp_path, schema, fs):
    write, resolution_uv = WRITERS[schema]
    signal = einthoven_leads(n_samples=10 * fs, seed=fs)  # (12, T) mV
    stored, names = shuffled(signal, seed=len(schema))
    path = tmp_path / "ecg.xml"
    write(path, stored, fs, names, IDENTITY, ACQUIRED)
    for fmt in (None, "xml", schema):
        ecg = read_ecg(path, fmt=fmt)
        assert ecg.fs == fs and ecg.signal.shape == (12, 10 * fs)
        tolerance = resolution_uv / 1000.0 / 2 + 1e-9  # half a quantisation step, in mV
        if schema == "muse":  # 8 leads stored; III, aVR, aVL, aVF derived from I and II
            tolerance *= 3
        np.testing.assert_allclose(ecg.signal, signal, atol=tolerance)


def test_muse_stores_eight_leads_and_the_limb_leads_are_derived(tmp_path):
    signal = random_leads(seed=3)
    path = tmp_path / "muse.xml"
    write_muse_xml(path, signal, 500, LEADS, IDENTITY, ACQUIRED)
    text = path.read_text()
    assert re.findall(r"<LeadID>(\w+)</LeadID>", text)[:8] == list(MUSE_STORED_LEADS)
    assert "<WaveformType>Median</WaveformType>" in text  # present, and not what is read
    ecg = read_ecg(path)
    lead = {name: ecg.signal[i] for i, name in enumerate(LEADS)}
    np.testing.assert_allclose(lead["III"], lead["II"] - lead["I"], atol=1e-12)
    np.testing.assert_allclose(lead["aVF"], lead["II"] - lead["I"] / 2, atol=1e-12)


def test_median_beats_are_ignored_and_only_the_rhythm_strip_is_read(tmp_path):
    signal = random_leads(seed=4)
    for schema, (write, _) in WRITERS.items():
        path = tmp_path / f"{schema}.xml"
        write(path, signal, 500, LEADS, IDENTITY, ACQUIRED)
        assert read_ecg(path).signal.shape == (12, 5000), schema  # not the 1 s median block


def test_the_root_element_tells_the_schema_and_a_wrong_one_is_refused(tmp_path):
    path = tmp_path / "ecg.xml"
    write_muse_xml(path, random_leads(), 500, LEADS, IDENTITY, ACQUIRED)
    assert xml_schema(parse_xml(path.read_bytes())) == "muse"
    with pytest.raises(InputRejected, match="is a muse export, not cardiosoft"):
        read_ecg(path, fmt="cardiosoft")
    other = tmp_path / "other.xml"
    other.write_text("<?xml version='1.0'?><Report><Item>1</Item></Report>")
    with pytest.raises(InputRejected, match="not an ECG export"):
        read_ecg(other)


def hostile_files(folder):
    """{name: path} of XML files every reader must refuse, each with identifiers inside."""
    files = {}
    good = folder / "good.xml"
    write_muse_xml(good, random_leads(), 500, LEADS, IDENTITY, ACQUIRED)
    text = good.read_text()
    files["truncated"] = folder / "truncated.xml"
    files["truncated"].write_text(text[: len(text) // 2])
    lol = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    bomb = f'<?xml version="1.0"?><!DOCTYPE RestingECG [<!ENTITY lol0 "lol">{lol}]>'
    files["entity_bomb"] = folder / "bomb.xml"
    files["entity_bomb"].write_text(bomb + "<RestingECG><PatientID>&lol9;</PatientID></RestingECG>")
    files["external_entity"] = folder / "external.xml"
    files["external_entity"].write_text(
        '<?xml version="1.0"?><!DOCTYPE RestingECG [<!ENTITY id SYSTEM "file:///etc/passwd">]>'
        "<RestingECG><PatientID>&id;</PatientID></RestingECG>"
    )
    files["not_base64"] = folder / "not_base64.xml"
    files["not_base64"].write_text(
        re.sub(r"<WaveFormData>[^<]*", "<WaveFormData>DOE JANE MRN0123456 !!", text, count=9)
    )
    files["count_mismatch"] = folder / "count.xml"
    files["count_mismatch"].write_text(
        text.replace("<LeadSampleCountTotal>5000<", "<LeadSampleCountTotal>4000<")
    )
    files["no_rhythm"] = folder / "no_rhythm.xml"
    files["no_rhythm"].write_text(text.replace("<WaveformType>Rhythm<", "<WaveformType>Other<"))
    files["missing_lead"] = folder / "missing.xml"
    files["missing_lead"].write_text(
        text.replace("<LeadID>V4</LeadID>", "<LeadID>MRN0123456</LeadID>")
    )
    cardiosoft = folder / "cardiosoft.xml"
    write_cardiosoft_xml(cardiosoft, random_leads(), 500, LEADS, IDENTITY, ACQUIRED)
    files["bad_resolution_unit"] = folder / "resolution.xml"
    files["bad_resolution_unit"].write_text(
        cardiosoft.read_text().replace('units="uVperLsb"', 'units="DOEperLsb"')
    )
    files["empty_sample"] = folder / "empty_sample.xml"
    head, strip = cardiosoft.read_text().split("<StripData>")
    files["empty_sample"].write_text(head + "<StripData>" + strip.replace(",", ",,", 1))
    aecg = folder / "aecg.xml"
    write_hl7_aecg(aecg, random_leads(), 500, LEADS, IDENTITY, ACQUIRED)
    files["no_time_sequence"] = folder / "no_time.xml"
    files["no_time_sequence"].write_text(aecg.read_text().replace("TIME_ABSOLUTE", "TIME_OTHER"))
    files["huge_amplitude"] = folder / "huge.xml"
    files["huge_amplitude"].write_text(
        aecg.read_text().replace('<scale value="5" unit="uV"', '<scale value="5" unit="V"', 1)
    )
    return files


def test_malformed_and_hostile_xml_is_refused_with_a_plain_reason(tmp_path):
    files = hostile_files(tmp_path)
    outcomes, peak_mb = read_in_child(*files.values())
    reasons = dict(zip(files, (o.get("reason") for o in outcomes)))
    expected = {
        "truncated": "malformed XML",
        "entity_bomb": "declares a document type",
        "external_entity": "declares a document type",
        "not_base64": "is not base64",
        "count_mismatch": "where LeadSampleCountTotal says 4000",
        "no_rhythm": "no Rhythm waveform",
        "missing_lead": "missing leads: V4",
        "bad_resolution_unit": "not a voltage unit",
        "empty_sample": "not integers",
        "no_time_sequence": "no time sequence",
        "huge_amplitude": "implausible amplitude",
    }
    for name, fragment in expected.items():
        assert reasons[name] is not None and fragment in reasons[name], (name, reasons[name])
        assert_plain(reasons[name], tmp_path)
        assert not any(marker in reasons[name] for marker in IDENTIFIERS), reasons[name]
    assert peak_mb < PEAK_RSS_MB


def test_an_xml_file_above_the_size_limit_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "big.xml"
    with open(path, "wb") as handle:
        handle.write(b"<RestingECG>")
        handle.seek(MAX_XML_BYTES + 10)
        handle.write(b"</RestingECG>")
    with pytest.raises(InputRejected, match="XML file too large"):
        read_ecg(path)


def test_muse_waveform_data_is_little_endian_int16_at_its_units_per_bit(tmp_path):
    """The encoding itself, checked on the bytes: a reader that got the byte order or the
    scale wrong would still read a plausible ECG."""
    signal = random_leads(seed=5)
    path = tmp_path / "muse.xml"
    write_muse_xml(path, signal, 500, LEADS, IDENTITY, ACQUIRED)
    text = path.read_text()
    rhythm = text[text.index("<WaveformType>Rhythm") :]
    first = re.search(r"<WaveFormData>([^<]*)</WaveFormData>", rhythm).group(1)
    raw = np.frombuffer(base64.b64decode("".join(first.split())), "<i2")
    np.testing.assert_allclose(raw * MUSE_UV_PER_BIT / 1000.0, signal[0], atol=0.0025)


def test_the_demo_writes_ecgs_in_each_xml_schema_that_read_back_as_their_signal(tmp_path):
    spec = dataclasses.replace(demo_specs(seed=3, scale=0.05)[1], xml_ecgs_per_schema=1)
    generate_cohort(tmp_path, spec)
    manifest = pd.read_csv(tmp_path / "ecgs.csv", dtype=str, keep_default_na=False)
    xml = manifest[manifest["path"].str.endswith(".xml")]
    assert sorted(xml["format"]) == ["cardiosoft", "hl7aecg", "xml"]  # MUSE listed as xml
    plans = {e.ecg_id: (p, i) for p in plan_cohort(spec) for i, e in enumerate(p.ecgs)}
    for row in xml.itertuples():
        patient, index = plans[row.ecg_id]
        truth = ecg_signal(spec, patient, index)
        ecg = read_ecg(tmp_path / row.path, fmt=row.format)
        assert ecg.fs == patient.ecgs[index].fs
        # MUSE keeps 8 leads: the other four are derived, not the recorded ones (noise)
        kept = [LEADS.index(lead) for lead in MUSE_STORED_LEADS] if row.format == "xml" else ...
        np.testing.assert_allclose(ecg.signal[kept], truth[kept], atol=0.01)  # ~5 uV steps
