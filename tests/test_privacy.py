"""What the pipeline writes about a file never holds its path, its bytes or its content."""

import errno
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from echo2ecg.data.errors import InputRejected
from echo2ecg.data.files import open_regular, os_error_reason
from echo2ecg.data.pseudonym import DEMO_KEY, KEY_ENV, MIN_KEY_BYTES, pseudonymise, resolve_key
from echo2ecg.data.shard_plan import checked_shard_inputs, plan_echo_shards, shard_digest
from echo2ecg.data.shard_run import printable_path, rejection_reason

CANARY = "MRN4242CANARY"


@pytest.fixture(autouse=True)
def no_key_in_environment(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)


def test_public_demo_key_only_for_the_demo(monkeypatch):
    assert resolve_key(DEMO_KEY, demo=True) == DEMO_KEY.encode()
    with pytest.raises(ValueError, match="public demo key"):
        resolve_key(DEMO_KEY)
    with pytest.raises(ValueError, match=f"at least {MIN_KEY_BYTES}"):
        resolve_key("short-but-secret")
    assert resolve_key("x" * MIN_KEY_BYTES) == b"x" * MIN_KEY_BYTES
    monkeypatch.setenv(KEY_ENV, DEMO_KEY)  # the environment is checked as well, and named
    with pytest.raises(ValueError, match=KEY_ENV):
        resolve_key("x" * MIN_KEY_BYTES)


def _raised(call):
    try:
        call()
    except Exception as error:  # noqa: BLE001 - the reason of any error is under test
        return error
    raise AssertionError("no error raised")


def test_reasons_never_quote_the_error_text(tmp_path):
    folder = tmp_path / f"{CANARY}_dir.dcm"
    folder.mkdir()
    loop = tmp_path / f"{CANARY}_loop.dcm"
    loop.symlink_to(loop)
    errors = [
        _raised(lambda: open(folder, "rb")),
        _raised(lambda: open(loop, "rb")),
        _raised(lambda: open(tmp_path / (CANARY + "x" * 300), "rb")),
        _raised(lambda: float(f"{CANARY}abc")),
        _raised(lambda: b"\xfa\x00".decode("ascii")),
        _raised(lambda: np.frombuffer(CANARY.encode(), np.float64)),
        ValueError(f"<_io.BytesIO object at 0x7f00deadbeef> {CANARY}"),
    ]
    reasons = [rejection_reason(error) for error in errors]
    assert reasons[:3] == [
        "not a regular file: a directory",
        "symbolic link loop",
        "file name too long",
    ]
    assert reasons[3].startswith("unexpected error (ValueError in ")
    assert reasons[3].endswith("test_privacy.<lambda>)")
    for reason in reasons:
        assert CANARY not in reason and "\\x" not in reason and "0x" not in reason, reason
        assert str(tmp_path) not in reason


def test_reason_of_a_decoder_error_names_the_code_not_the_data():
    error = _raised(lambda: np.reshape(np.zeros(3), (len(CANARY),)))  # raised inside numpy
    assert rejection_reason(error).startswith("unexpected error (ValueError in numpy.")
    assert rejection_reason(InputRejected("flat signal")) == "flat signal"


def test_os_errors_without_a_known_errno_name_the_errno_only():
    error = OSError(errno.EXDEV, f"Invalid cross-device link: '/data/{CANARY}'")
    assert os_error_reason(error) == "cannot read the file (operating-system error EXDEV)"


def test_special_files_are_refused_before_reading(tmp_path):
    fifo = tmp_path / "clip.dcm"
    os.mkfifo(fifo)
    with pytest.raises(InputRejected, match="not a regular file: a FIFO"):
        open_regular(fifo)  # would block forever with a plain open()
    with pytest.raises(InputRejected, match="signal file: not a regular file: a character"):
        open_regular("/dev/null", "signal file")


def test_names_in_old_encodings_hash_and_print():
    name = os.fsdecode(b"/data/clip_\xff\xfe.dcm")
    assert printable_path(name) == "/data/clip_\\xff\\xfe.dcm"
    assert len(pseudonymise(name, b"k" * 32)) == 16


def test_cli_batch_with_a_non_utf8_name_writes_its_ledger(tmp_path):
    odd = os.fsdecode(os.fsencode(str(tmp_path)) + b"/clip_\xff\xfe.dcm")
    with open(odd, "wb") as file:
        file.write(b"not dicom")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "echo2ecg.cli", "extract-echo", "--out", str(out), odd],
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    ledger = pd.read_csv(out / "ledger.csv")
    assert list(ledger["status"]) == ["rejected"]
    assert ledger["source"].iloc[0].endswith("clip_\\xff\\xfe.dcm")


def views(tmp_path, names=("a.dcm", "b.dcm")):
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    return pd.DataFrame(
        {
            "path": [str(tmp_path / n) for n in names],
            "listed_path": [f"{CANARY}/{n}" for n in names],
            "patient_id": [CANARY] * len(names),
            "study_id": ["S1"] * len(names),
            "view_id": [f"1.2.{i}" for i in range(len(names))],
            "manifest_row": list(range(len(names))),
        }
    )


@pytest.mark.parametrize("hash_paths", [True, False])
def test_shard_digest_carries_no_path_and_follows_the_files(tmp_path, hash_paths):
    plan = plan_echo_shards(views(tmp_path), 1, b"k" * 32, hash_paths)
    digest = shard_digest(plan["0000"])
    assert len(digest) == 64 and CANARY not in digest
    assert checked_shard_inputs(plan, "0000", digest) == plan["0000"]
    os.utime(tmp_path / "b.dcm", ns=(1, 1))  # a changed file changes the digest
    assert shard_digest(plan["0000"]) != digest
    with pytest.raises(RuntimeError, match="run snakemake again"):
        checked_shard_inputs(plan, "0000", digest)


def test_planning_one_shard_gives_that_shard_of_the_full_plan(tmp_path):
    table = views(tmp_path, [f"{i}.dcm" for i in range(12)]).assign(
        study_id=[f"S{i}" for i in range(12)]
    )
    full = plan_echo_shards(table, 4, b"k" * 32)
    for shard, items in full.items():
        assert plan_echo_shards(table, 4, b"k" * 32, only=shard)[shard] == items
