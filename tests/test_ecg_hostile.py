"""Hostile ECG files: special files, absurd rates and amplitudes, corrupt checksums, bombs.

Files that could hang the reader (a FIFO) or exhaust memory (a decompression bomb, a huge
declared or implied size) are read in a child process under an address-space limit and a
timeout (:func:`read_in_child`), so a regression fails the test instead of taking the
machine down; the child reports its own peak resident memory, which must stay under
PEAK_RSS_MB.
"""

import io
import os
import struct
import zipfile
import zlib

import numpy as np
import pydicom
import pytest
from conftest import (
    PEAK_RSS_MB,
    assert_plain,
    random_leads,
    read_in_child,
    synthetic_ecg,
    write_wfdb,
)
from pydicom.data import get_testdata_file

from echo2ecg.data.ecg import prepare_ecg
from echo2ecg.data.ecg_formats import LEADS, RawEcg, read_ecg
from echo2ecg.data.errors import InputRejected
from echo2ecg.data.shard_run import ShardInput, prep_ecg_shard
from echo2ecg.data.store import read_ledger

V3 = LEADS.index("V3")


def wfdb_record(folder, name="rec", signal=None, fs=500):
    """A 12-lead WFDB record in LEADS order (format 16, 200 ADC units per mV); its header."""
    return write_wfdb(folder, LEADS, random_leads() if signal is None else signal, fs=fs, name=name)


def edit_header(header, record_line=None, signal_line=None):
    """Rewrite a header: a new record line, and/or signal_line(index, fields) -> fields."""
    first, *lines = header.read_text().splitlines()
    if signal_line is not None:
        lines = [" ".join(signal_line(i, line.split())) for i, line in enumerate(lines)]
    header.write_text("\n".join([record_line or first, *lines]) + "\n")


# --- 1. special files --------------------------------------------------------------------


def test_fifos_and_directories_are_refused_without_blocking(tmp_path):
    fifo_dat = wfdb_record(tmp_path, "fifodat")
    (tmp_path / "fifodat.dat").unlink()
    os.mkfifo(tmp_path / "fifodat.dat")  # opening it for reading would block forever
    dir_dat = wfdb_record(tmp_path, "dirdat")
    (tmp_path / "dirdat.dat").unlink()
    (tmp_path / "dirdat.dat").mkdir()
    wfdb_record(tmp_path, "fifohea")
    (tmp_path / "fifohea.hea").unlink()
    os.mkfifo(tmp_path / "fifohea.hea")
    others = [tmp_path / name for name in ("ecg.npy", "ecg.npz", "ecg.dcm")]
    for path in others:
        os.mkfifo(path)
    (tmp_path / "folder.npz").mkdir()
    outcomes, _ = read_in_child(
        fifo_dat, dir_dat, tmp_path / "fifohea.hea", *others, tmp_path / "folder.npz", fs=500.0
    )
    reasons = [outcome["reason"] for outcome in outcomes]
    assert reasons == [
        "WFDB signal file (.dat): not a regular file: a FIFO (named pipe)",
        "WFDB signal file (.dat): not a regular file: a directory",
        "WFDB header file (.hea): not a regular file: a FIFO (named pipe)",
        *["ECG file: not a regular file: a FIFO (named pipe)"] * 3,
        "ECG file: not a regular file: a directory",
    ]


def test_every_signal_file_a_header_names_is_checked(tmp_path):
    """Leads split over two signal files: the second one, a FIFO, is refused too."""
    header = wfdb_record(tmp_path)
    data = np.fromfile(tmp_path / "rec.dat", dtype="<i2").reshape(-1, 12)
    data[:, :6].tofile(tmp_path / "rec.dat")
    os.mkfifo(tmp_path / "chest.dat")
    edit_header(header, signal_line=lambda i, f: [f[0] if i < 6 else "chest.dat", *f[1:]])
    (outcome,), _ = read_in_child(header)
    assert outcome["reason"] == "WFDB signal file (.dat): not a regular file: a FIFO (named pipe)"


# --- 2. sampling rate --------------------------------------------------------------------


@pytest.mark.parametrize(
    "rate, shown", [("-500", "-500"), ("0", "0"), ("nan", "nan"), ("abc", None)]
)
def test_wfdb_rate_that_is_not_a_positive_number_is_rejected(tmp_path, rate, shown):
    header = wfdb_record(tmp_path)
    edit_header(header, record_line=f"rec 12 {rate} 5000")
    reason = (
        f"^sampling rate {shown} Hz is not a positive number$"
        if shown
        else r"^sampling rate is not a positive number \(not numeric\)$"
    )
    with pytest.raises(InputRejected, match=reason):
        read_ecg(header)


def test_wfdb_without_rate_gets_the_standard_default_and_a_note(tmp_path):
    truth = random_leads()
    header = wfdb_record(tmp_path, signal=truth)
    edit_header(header, record_line="rec 12")  # no rate and no sample count
    ecg = read_ecg(header)
    assert ecg.fs == 250.0 and ecg.signal.shape == (12, 5000)  # count from the .dat size
    assert ecg.notes == ("sampling rate not stated: WFDB default 250 Hz used",)
    np.testing.assert_allclose(ecg.signal, truth, atol=0.5 / 200 + 1e-9)
    assert read_ecg(wfdb_record(tmp_path, "stated")).notes == ()


def test_the_ledger_notes_a_default_the_reader_assumed(tmp_path):
    header = wfdb_record(tmp_path, signal=random_leads())
    edit_header(header, record_line="rec 12")
    stated = wfdb_record(tmp_path, "stated")
    ledger = prep_ecg_shard(
        [
            ShardInput(path=str(header), source="default-rate"),
            ShardInput(path=str(stated), source="stated-rate"),
        ],
        tmp_path / "out/ecg.zarr",
        tmp_path / "out/ledger.csv",
    )
    assert list(ledger["status"]) == ["ok", "ok"]
    assert list(ledger["note"]) == ["sampling rate not stated: WFDB default 250 Hz used", ""]
    assert list(read_ledger(tmp_path / "out/ledger.csv")["note"].fillna("")) == list(ledger["note"])


@pytest.mark.parametrize(
    "fs, shown", [(-500.0, "-500"), (0.0, "0"), (np.nan, "nan"), (np.inf, "inf")]
)
def test_numpy_and_caller_rates_that_are_not_positive_are_rejected(tmp_path, fs, shown):
    reason = f"^sampling rate {shown} Hz is not a positive number$"
    np.savez(tmp_path / "ecg.npz", signal=random_leads(), fs=fs)
    with pytest.raises(InputRejected, match=reason):
        read_ecg(tmp_path / "ecg.npz")
    np.save(tmp_path / "ecg.npy", random_leads())
    with pytest.raises(InputRejected, match=reason):
        read_ecg(tmp_path / "ecg.npy", fs=fs)
    np.savez(tmp_path / "no_fs.npz", signal=random_leads())
    with pytest.raises(InputRejected, match=reason):
        read_ecg(tmp_path / "no_fs.npz", fs=fs)
    with pytest.raises(InputRejected, match=reason):
        prepare_ecg(RawEcg(synthetic_ecg(), fs))


# --- 3. amplitudes -----------------------------------------------------------------------


def test_wfdb_absurd_gain_gives_an_amplitude_rejection_not_a_flat_ok(tmp_path):
    header = wfdb_record(tmp_path)
    edit_header(
        header, signal_line=lambda i, f: [f[0], f[1], f[2].replace("200.0", "1e-300"), *f[3:]]
    )
    with pytest.raises(
        InputRejected,
        match=r"^implausible amplitude in leads I, II, .*V6: "
        r"peak-to-peak up to .* mV, above the 50 mV",
    ):
        read_ecg(header)


@pytest.mark.parametrize("gain", ["0", "1e999"])
def test_wfdb_zero_or_infinite_gain_rejected(tmp_path, gain):
    header = wfdb_record(tmp_path)
    edit_header(
        header,
        signal_line=lambda i, f: [
            f[0],
            f[1],
            f[2].replace("200.0", gain) if i == V3 else f[2],
            *f[3:],
        ],
    )
    with pytest.raises(InputRejected, match="^ADC gain of leads V3 is zero or not finite"):
        read_ecg(header)


def test_npy_with_absurd_values_rejected(tmp_path):
    np.save(tmp_path / "ecg.npy", random_leads() * 1e160)
    with pytest.raises(
        InputRejected,
        match=r"^implausible amplitude in leads I, .*: "
        r"peak-to-peak up to .* mV even if stored in "
        r"microvolts, above the 50 mV of any ECG$",
    ):
        read_ecg(tmp_path / "ecg.npy", fs=500.0)


def test_numpy_microvolts_and_missing_samples_are_still_accepted(tmp_path):
    signal = random_leads() * 1000.0  # units are not stated: microvolts must pass
    signal[V3, 100:200] = np.nan  # a gap of missing samples, zeroed by preprocessing
    np.save(tmp_path / "ecg.npy", signal)
    ecg = read_ecg(tmp_path / "ecg.npy", fs=500.0)
    assert np.isnan(ecg.signal[V3, 150])
    assert prepare_ecg(ecg).shape == (12, 5000)


def test_infinite_sample_rejected_by_the_reader(tmp_path):
    signal = random_leads()
    signal[V3, 10] = -np.inf
    np.savez(tmp_path / "ecg.npz", signal=signal, fs=500)
    with pytest.raises(InputRejected, match=r"^non-finite samples \(infinite\) in leads: V3$"):
        read_ecg(tmp_path / "ecg.npz")


def test_dicom_absurd_sensitivity_rejected(tmp_path):
    dataset = pydicom.dcmread(get_testdata_file("waveform_ecg.dcm"))
    dataset.WaveformSequence[0].ChannelDefinitionSequence[8].ChannelSensitivity = "1e12"
    dataset.save_as(tmp_path / "ecg.dcm")
    with pytest.raises(
        InputRejected,
        match=r"^implausible amplitude in leads V3: "
        r"peak-to-peak up to .* mV, above the 50 mV",
    ):
        read_ecg(tmp_path / "ecg.dcm")


@pytest.mark.parametrize(
    "make, stage",
    [
        (lambda x: x * 1e160, "after preprocessing"),  # overflows σ: z-scores come out zero
        (lambda x: x + 1e10, "after drift removal"),  # clipped at ±4σ to one constant
        (
            lambda x: np.tile(np.sin(np.linspace(0, np.pi, x.shape[1])), (12, 1)),
            "after drift removal",
        ),  # nothing but drift
    ],
)
def test_prepare_ecg_rejects_signals_flat_after_preprocessing(make, stage):
    with pytest.raises(InputRejected, match=f"^flat signal {stage}: all leads constant$"):
        prepare_ecg(RawEcg(make(synthetic_ecg()), 500.0))


# --- 4. WFDB checksums -------------------------------------------------------------------


def test_wrong_header_checksum_rejected(tmp_path):
    header = wfdb_record(tmp_path)
    edit_header(
        header, signal_line=lambda i, f: [*f[:6], str(int(f[6]) + 1) if i == V3 else f[6], *f[7:]]
    )
    with pytest.raises(
        InputRejected, match="^checksum mismatch in lead V3: the signal file is corrupted$"
    ):
        read_ecg(header)


def test_corrupted_signal_bytes_rejected(tmp_path):
    header = wfdb_record(tmp_path)
    data = bytearray((tmp_path / "rec.dat").read_bytes())
    sample = (1000 * 12 + V3) * 2  # format 16, samples interleaved lead by lead
    data[sample] ^= 0x10
    (tmp_path / "rec.dat").write_bytes(bytes(data))
    with pytest.raises(
        InputRejected, match="^checksum mismatch in lead V3: the signal file is corrupted$"
    ):
        read_ecg(header)


def test_checksums_stated_signed_or_not_stated_are_accepted(tmp_path):
    truth = random_leads()
    signed = wfdb_record(tmp_path, "signed", signal=truth)  # WFDB's C library writes signed
    edit_header(
        signed, signal_line=lambda i, f: [*f[:6], str((int(f[6]) + 32768) % 65536 - 32768), *f[7:]]
    )
    absent = wfdb_record(tmp_path, "absent", signal=truth)
    edit_header(absent, signal_line=lambda i, f: [*f[:5], f[-1]])  # no init value, checksum
    for header in (signed, absent):
        np.testing.assert_allclose(read_ecg(header).signal, truth, atol=0.5 / 200 + 1e-9)


# --- 5. bounded reads --------------------------------------------------------------------


def test_wfdb_without_sample_count_is_sized_from_the_file_before_reading(tmp_path):
    """An hour at 1 kHz (86 MB, sparse) behind a header with no count: refused from its size,
    not read (an old reader loaded all of it, several times over)."""
    header = wfdb_record(tmp_path, fs=1000)
    edit_header(header, record_line="rec 12 1000")
    os.truncate(tmp_path / "rec.dat", 12 * 2 * 1000 * 3600)
    (outcome,), peak_mb = read_in_child(header)
    assert outcome["reason"] == "implausible duration: 3.6e+03 s (accepted: 1 to 600 s)"
    assert peak_mb < PEAK_RSS_MB


def test_wfdb_signal_file_shorter_than_its_header_rejected(tmp_path):
    header = wfdb_record(tmp_path)
    os.truncate(tmp_path / "rec.dat", 12 * 2 * 4000)
    with pytest.raises(
        InputRejected,
        match="^unreadable WFDB record: a signal file holds "
        "96000 bytes, fewer than the 120000 its header",
    ):
        read_ecg(header)


def deflated_npz(path, member, header: dict, n_zero_bytes: int):
    """An .npz whose ``member`` is an array header followed by ``n_zero_bytes`` deflated
    zeros (about 1000:1), plus a valid 12-lead signal and rate unless it is one of them."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open(f"{member}.npy", "w", force_zip64=True) as entry:
            np.lib.format.write_array_header_1_0(entry, header)
            zeros = bytes(2**24)
            for _ in range(n_zero_bytes // len(zeros)):
                entry.write(zeros)
        if member != "signal":
            with zf.open("signal.npy", "w") as entry:
                np.lib.format.write_array(entry, random_leads())
        if member != "fs":
            with zf.open("fs.npy", "w") as entry:
                np.lib.format.write_array(entry, np.array(500.0))
    return path


def test_npz_bombs_are_refused_from_the_zip_directory(tmp_path):
    """Members inflating to 512 MiB each: a rate, a lead list, and a signal whose data runs
    on past its array header. None is inflated; an old reader loaded the first two whole."""
    size = 2**29
    bombs = [
        deflated_npz(
            tmp_path / "fs.npz",
            "fs",
            {"descr": "<f8", "fortran_order": False, "shape": (size // 8,)},
            size,
        ),
        deflated_npz(
            tmp_path / "leads.npz",
            "leads",
            {"descr": "<U4", "fortran_order": False, "shape": (size // 16,)},
            size,
        ),
        deflated_npz(
            tmp_path / "signal.npz",
            "signal",
            {"descr": "<f8", "fortran_order": False, "shape": (12, 5000)},
            size,
        ),
    ]
    outcomes, peak_mb = read_in_child(*bombs)
    assert [outcome["reason"] for outcome in outcomes] == [
        ".npz array 'fs' declares 536871040 bytes, more than the 1048576 any ECG needs",
        ".npz array 'leads' declares 536871040 bytes, more than the 1048576 any ECG needs",
        ".npz array 'signal' holds 536871040 bytes, not the 480128 its header states",
    ]
    assert peak_mb < PEAK_RSS_MB


def test_npz_with_oversized_directory_or_unbounded_compression_refused(tmp_path):
    many = tmp_path / "many.npz"
    np.savez(many, signal=random_leads(), fs=500)
    with zipfile.ZipFile(many, "a") as archive:
        for i in range(20_000):  # zipfile would keep an object for every entry
            archive.writestr(f"{i}.npy", b"")
    bzip2 = tmp_path / "bzip2.npz"  # zipfile inflates bzip2 and LZMA without a bound
    with zipfile.ZipFile(bzip2, "w") as archive:
        for name, array, method in (
            ("fs", np.array(500.0), zipfile.ZIP_STORED),
            ("signal", random_leads(), zipfile.ZIP_BZIP2),
        ):
            buffer = io.BytesIO()
            np.save(buffer, array)
            archive.writestr(f"{name}.npy", buffer.getvalue(), compress_type=method)
    liar = tmp_path / "liar.npz"  # the directory declares a 4 GiB signal
    np.savez(liar, signal=random_leads(), fs=500)
    data = bytearray(liar.read_bytes())
    entry = data.find(b"PK\x01\x02")  # central directory entry of signal.npy
    data[entry + 24 : entry + 28] = struct.pack("<I", 0xFFFFFFFF)  # uncompressed size
    liar.write_bytes(bytes(data))
    outcomes, peak_mb = read_in_child(many, bzip2, liar)
    reasons = [outcome["reason"] for outcome in outcomes]
    assert reasons[0].startswith("implausible .npz file: its zip directory lists 20002 entries")
    assert reasons[1] == (
        ".npz array 'signal' uses an unsupported compression method "
        "(only stored and deflated are read)"
    )
    assert reasons[2] == (
        ".npz array 'signal' declares 4294967295 bytes, more than the 3072065536 any ECG needs"
    )
    assert peak_mb < PEAK_RSS_MB


def dicom_meta_end(data: bytes) -> int:
    """Offset of the dataset after a DICOM file's meta group (from its group length)."""
    assert data[128:132] == b"DICM" and data[132:136] == b"\x02\x00\x00\x00"
    return 144 + struct.unpack_from("<I", data, 140)[0]


def test_deflated_dicom_bomb_refused_before_inflating(tmp_path):
    """A real ECG deflated, and the same with 2.4 GB of trailing padding (2.5 MB on disk),
    which an old reader inflated whole."""
    source = get_testdata_file("waveform_ecg.dcm")  # Explicit VR Little Endian
    dataset = pydicom.dcmread(source)
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    dataset.save_as(tmp_path / "deflated.dcm", enforce_file_format=True)
    deflated = (tmp_path / "deflated.dcm").read_bytes()
    with open(source, "rb") as plain:
        body = plain.read()
    body = body[dicom_meta_end(body) :]
    n_chunks = 2300  # of 1 MiB
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    padding = struct.pack("<HH2sHI", 0xFFFC, 0xFFFC, b"OB", 0, n_chunks << 20)
    start = squeeze.compress(body + padding) + squeeze.flush(zlib.Z_FULL_FLUSH)
    # After a full flush the compressor starts afresh, so every 1 MiB of zeros deflates to
    # the same bytes: the file is written without compressing 2.3 GiB.
    chunk = squeeze.compress(bytes(1 << 20)) + squeeze.flush(zlib.Z_FULL_FLUSH)
    with open(tmp_path / "bomb.dcm", "wb") as out:
        out.write(deflated[: dicom_meta_end(deflated)] + start)
        for _ in range(n_chunks):
            out.write(chunk)
        out.write(squeeze.flush())
    outcomes, peak_mb = read_in_child(tmp_path / "deflated.dcm", tmp_path / "bomb.dcm")
    reason = (
        "deflate-compressed DICOM files (Deflated Explicit VR Little Endian) are not "
        "supported: their size is unknown until inflated"
    )
    assert [outcome["reason"] for outcome in outcomes] == [reason, reason]
    assert peak_mb < PEAK_RSS_MB


def test_honest_files_read_in_the_child_stay_small(tmp_path):
    """The child runner itself: intact files of each format are read, well under the bound."""
    header = wfdb_record(tmp_path)
    np.savez_compressed(tmp_path / "ecg.npz", signal=random_leads(), fs=500)
    outcomes, peak_mb = read_in_child(
        header, tmp_path / "ecg.npz", get_testdata_file("waveform_ecg.dcm")
    )
    assert [outcome.get("shape") for outcome in outcomes] == [[12, 5000], [12, 5000], [12, 10000]]
    assert peak_mb < PEAK_RSS_MB


# --- 6. reasons --------------------------------------------------------------------------


def test_reasons_hold_no_path_or_file_content(tmp_path):
    """Broken files whose library errors quote paths or bytes: reasons name kinds only."""
    folder = tmp_path / "PATIENT_CANARY_4242"
    folder.mkdir()
    (folder / "garbage.hea").write_bytes(b"\xff\xfe CANARY 12 500\n\x00\x01")
    (folder / "truncated.npy").write_bytes(b"\x93NUMPY\x01\x00\x76\x00{'descr': CANARY")
    (folder / "truncated.npz").write_bytes(b"PK\x03\x04CANARY")
    (folder / "truncated.dcm").write_bytes(b"\x00" * 128 + b"DICM\x02\x00CANARY")
    short = wfdb_record(folder, "short")
    (folder / "short.dat").write_bytes(b"CANARY")
    files = [
        folder / name for name in ("garbage.hea", "truncated.npy", "truncated.npz", "truncated.dcm")
    ] + [short]
    outcomes, _ = read_in_child(*files, fs=500.0)
    for outcome in outcomes:
        assert_plain(outcome["reason"], folder)
        assert "CANARY" not in outcome["reason"]
