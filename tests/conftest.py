"""Builders shared by the test modules: DICOM clips, ECG signals and files, the shipped
config, and a tiny cached cohort (the stores a variant's pretraining and features read).

Plain functions, imported as ``from conftest import write_clip`` (pytest puts ``tests/``
on ``sys.path``); nothing here is autouse.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import wfdb
import yaml
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from scipy import sparse
from scipy.sparse.linalg import spsolve

from echo2ecg.data.store import ShardWriter, write_table

# --------------------------------------------------------------------------- the repository

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "rules/schemas/config.schema.yaml"
_SHIPPED = yaml.safe_load((ROOT / "config.yaml").read_text())


def shipped_config() -> dict:
    """The shipped ``config.yaml``, a fresh copy each call (tests edit it)."""
    return copy.deepcopy(_SHIPPED)


# --------------------------------------------------------------------------- DICOM clips

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
PATIENT = {"PatientName": "Doe^Jane", "PatientID": "MRN99887766", "StudyDate": "20240229"}


def write_clip(
    path,
    frames: np.ndarray,
    photometric: str = "RGB",
    bits_stored: int | None = None,
    syntax: str | None = None,
    **elements,
) -> str:
    """A small Ultrasound Multi-frame file from (F, H, W[, 3]) frames, native or compressed
    (``syntax``), carrying PATIENT and any further ``elements``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = elements.pop("SOPClassUID", US_MULTIFRAME)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.Modality = "US"
    for key, value in {**PATIENT, **elements}.items():
        setattr(ds, key, value)
    ds.set_pixel_data(frames, photometric, bits_stored or frames.dtype.itemsize * 8)
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if syntax is not None:
        ds.compress(syntax)
    ds.save_as(path, enforce_file_format=True)
    return str(path)


# A synthetic echo: H × W frames, a scan sector (a fan opening downwards) and, with
# overlays, burned-in text, an icon and an ECG trace sweeping along ECHO_ECG_ROWS.
H, W = 240, 300
APEX, RADIUS, HALF_ANGLE = (150, 30), 140, 40
ECHO_ECG_ROWS = slice(192, 212)


def sector_mask() -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    cv2.ellipse(mask, APEX, (RADIUS, RADIUS), 90, -HALF_ANGLE, HALF_ANGLE, 1, cv2.FILLED)
    return mask


def synthetic_echo(n_frames: int = 40, overlays: bool = True, seed: int = 0) -> np.ndarray:
    """(F, H, W, 3) uint8: gray speckle moving inside the sector; with ``overlays``, static
    white text (top left, right), a static gray icon block (top right) and a thin green ECG
    trace sweeping along the bottom."""
    rng = np.random.default_rng(seed)
    inside = sector_mask().astype(bool)
    frames = np.zeros((n_frames, H, W, 3), np.uint8)
    for t, frame in enumerate(frames):
        speckle = rng.integers(40, 256, (H, W), dtype=np.uint8)
        frame[inside] = speckle[inside, None]
        if overlays:
            cv2.putText(
                frame, "PLA 72bpm", (60, 45), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1
            )
            cv2.putText(
                frame, "MI 0.9", (210, 80), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1
            )
            cv2.rectangle(frame, (200, 20), (250, 45), (200, 200, 200), cv2.FILLED)  # an icon
            sweep = 20 + (t * 37) % (W - 40)
            xs = np.arange(10, sweep)
            ys = 202 + (6 * np.sin(xs / 6.0 + t)).astype(int)
            cv2.polylines(frame, [np.stack([xs, ys], 1).astype(np.int32)], False, (0, 220, 0), 1)
    return frames


# --------------------------------------------------------------------------- ECG signals


def synthetic_beats(fs=500.0, seconds=10.0, heart_rate_hz=1.2, scale=1.0):
    """One ECG-like lead in mV: Gaussian P, Q, R, S and T waves; shape (fs·seconds,)."""
    t = np.arange(round(fs * seconds)) / fs
    waves = (
        (-0.16, 0.025, 0.15),
        (-0.02, 0.01, -0.1),
        (0.0, 0.012, 1.2),
        (0.03, 0.01, -0.25),
        (0.25, 0.05, 0.3),
    )  # (offset s, width s, amplitude mV)
    lead = np.zeros_like(t)
    for r_peak in np.arange(0.3, seconds, 1 / heart_rate_hz):
        for offset, width, amplitude in waves:
            lead += amplitude * np.exp(-0.5 * ((t - r_peak - offset) / width) ** 2)
    return scale * lead


def synthetic_ecg(fs=500.0, seconds=10.0, seed=0):
    """(12, fs·seconds) ECG-like leads with different scales, plus a little noise."""
    rng = np.random.default_rng(seed)
    leads = [synthetic_beats(fs, seconds, scale=s) for s in np.linspace(-1.0, 1.5, 12)]
    return np.array(leads) + rng.normal(0, 0.01, (12, round(fs * seconds)))


def random_leads(n_samples=5000, seed=0):
    """(12, n) smooth-ish random signals in mV, one distinct row per lead."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(0, 0.02, (12, n_samples)), axis=1)


def spsolve_asls(y, lam, p, n_solves):
    """Reference: Eilers' ALS as a plain scipy loop, n_solves weighted solves."""
    n = len(y)
    second_difference = sparse.diags([1.0, -2.0, 1.0], [0, 1, 2], shape=(n - 2, n))
    penalty = lam * (second_difference.T @ second_difference)
    weights = np.ones(n)
    for _ in range(n_solves):
        baseline = spsolve(sparse.csc_matrix(sparse.diags(weights) + penalty), weights * y)
        weights = np.where(y > baseline, p, 1 - p)
    return baseline


def einthoven_leads(n_samples=5000, seed=0):
    """:func:`random_leads` with III, aVR, aVL, aVF made from I and II (Einthoven and
    Goldberger), as a heart's are, so that limb leads derived from I and II are the
    leads themselves."""
    signal = random_leads(n_samples=n_samples, seed=seed)
    lead_i, lead_ii = signal[0], signal[1]
    signal[2:6] = [
        lead_ii - lead_i,
        -(lead_i + lead_ii) / 2,
        lead_i - lead_ii / 2,
        lead_ii - lead_i / 2,
    ]
    return signal


def write_wfdb(folder, leads, signal_mv, fs=500, units=None, name="rec"):
    """Write (n_leads, T) mV signals as a WFDB record, 200 ADC units per mV."""
    units = units or ["mV"] * len(leads)
    scale = np.array([1000.0 if unit == "uV" else 1.0 for unit in units])
    gains = [200.0 / s for s in scale]
    wfdb.wrsamp(
        name,
        fs=fs,
        units=list(units),
        sig_name=list(leads),
        p_signal=(signal_mv * scale[:, None]).T,
        fmt=["16"] * len(leads),
        adc_gain=gains,
        baseline=[0] * len(leads),
        write_dir=str(folder),
    )
    return folder / f"{name}.hea"


# --------------------------------------------------------------------------- a tiny cohort


def tiny_encoder_config(**overrides) -> dict:
    """The shipped ``ecg_encoder`` section shrunk to a model that trains in a second:
    16-d, one block, 48-sample tokens, 240-sample input (5 tokens per lead)."""
    encoder = shipped_config()["ecg_encoder"]
    encoder.update(
        {
            "weights": None,
            "embed_dim": 16,
            "depth": 1,
            "num_heads": 2,
            "patch_size": 48,
            "n_samples": 240,
            "drop_path": 0.0,
            **overrides,
        }
    )
    return encoder


def tiny_train_config(**overrides) -> dict:
    """The shipped ``train`` section cut to two epochs of batches of 4."""
    train = shipped_config()["train"]
    train.update({"epochs": 2, "batch_size": 4, "warmup_epochs": 1, **overrides})
    return train


def by_shard(paths) -> dict[str, str]:
    """Shard label → path, as the rules pass them (labels "0000", "0001", … in order)."""
    return {f"{i:04d}": str(path) for i, path in enumerate(paths)}


TINY_ECG_SAMPLES = 480  # stored ECG length: twice the tiny model's input
VIEW_DIM = 512  # the echo encoder's embedding size, fixed by build_model


@dataclass
class TinyCohort:
    """A cached cohort as the pipeline leaves it for pretraining, and the truth behind it.

    Files (under ``root``): pairs.csv; ecg/shard_XXXX/ecg.zarr (array ``signals``);
    echo/shard_XXXX/ledger.csv; embeddings/shard_XXXX/embeddings.zarr (``embeddings``).
    ``signals`` maps an ECG pseudonym to its stored (12, T) row; ``views`` a study
    pseudonym to its ok view embeddings, (V, 512), in ledger order.
    """

    root: Path
    pairs_path: Path
    ecg_stores: list[str]
    echo_ledgers: list[str]
    embedding_stores: list[str]
    pairs: pd.DataFrame
    signals: dict[str, np.ndarray]
    views: dict[str, np.ndarray]


def write_tiny_cohort(root, n_patients: int = 12, seed: int = 0) -> TinyCohort:
    """n_patients patients over two ECG shards and two echo shards.

    Patient i has ECGs e{i}a and e{i}b (one in each ECG shard, rows interleaved with other
    patients'), one study s{i} with 1-3 views in echo shard i mod 2, each followed in its
    ledger by a rejected view (no store row), and every ECG paired
    with the study. Splits: patients 0-7 train, 8-9 val, 10-11 test. Patient 0 also has a
    report-only study s0r (no views: n_views 0), paired with its first ECG.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    split_of = {i: "train" if i < 8 else "val" if i < 10 else "test" for i in range(n_patients)}

    # ECG shards: shard 0 holds the "a" ECGs in reverse patient order, shard 1 the "b" ones.
    signals, ecg_place = {}, {}
    ecg_stores = []
    for shard, (suffix, order) in enumerate(
        (("a", range(n_patients - 1, -1, -1)), ("b", range(n_patients)))
    ):
        path = root / f"ecg/shard_{shard:04d}/ecg.zarr"
        writer = ShardWriter(
            path,
            "signals",
            (12, TINY_ECG_SAMPLES),
            np.float32,
            capacity=n_patients,
            rows_per_chunk=4,
        )
        for patient in order:
            ecg = f"e{patient}{suffix}"
            signals[ecg] = rng.normal(size=(12, TINY_ECG_SAMPLES)).astype(np.float32)
            ecg_place[ecg] = (f"{shard:04d}", writer.append(signals[ecg]))
        writer.commit()
        ecg_stores.append(str(path))

    # Echo shards: study s{i}'s views all in shard i mod 2 (the plan keeps a study's views
    # together), each shard's ledger listing a rejected view after every ok one.
    views: dict[str, list[np.ndarray]] = {f"s{i}": [] for i in range(n_patients)}
    ledgers = {0: [], 1: []}
    writers = {
        shard: ShardWriter(
            root / f"embeddings/shard_{shard:04d}/embeddings.zarr",
            "embeddings",
            (VIEW_DIM,),
            np.float32,
            capacity=3 * n_patients,
        )
        for shard in (0, 1)
    }
    for patient in range(n_patients):
        study = f"s{patient}"
        for view in range(1 + patient % 3):
            shard = patient % 2
            embedding = rng.normal(size=VIEW_DIM).astype(np.float32)
            row = writers[shard].append(embedding)
            views[study].append(embedding)
            for status, store_row in (("ok", row), ("rejected", None)):
                ledgers[shard].append(
                    {
                        "source": f"{study}-v{view}-{status}",
                        "status": status,
                        "reason": "" if status == "ok" else "blank clip",
                        "note": "",
                        "row": store_row,
                        "manifest_row": len(ledgers[shard]),
                        "patient": f"p{patient}",
                        "study": study,
                        "view": f"{study}.{view}",
                    }
                )
    echo_ledgers, embedding_stores = [], []
    for shard in (0, 1):
        embedding_stores.append(str(writers[shard].commit()))
        ledger = pd.DataFrame(ledgers[shard])
        ledger["row"] = ledger["row"].astype("Int64")
        echo_ledgers.append(str(write_table(ledger, root / f"echo/shard_{shard:04d}/ledger.csv")))

    rows = []
    for patient in range(n_patients):
        for suffix in "ab":
            ecg = f"e{patient}{suffix}"
            shard, row = ecg_place[ecg]
            studies = [f"s{patient}"] + ([f"s{patient}r"] if patient == 0 and suffix == "a" else [])
            for study in studies:
                rows.append(
                    {
                        "patient": f"p{patient}",
                        "ecg": ecg,
                        "study": study,
                        "days_apart": 1.0,
                        "split": split_of[patient],
                        "ecg_shard": shard,
                        "ecg_row": row,
                        "n_views": 0 if study.endswith("r") else len(views[study]),
                        "lvef": 60.0 - patient,
                        "lvedv": 120.0,
                        "lvesv": 50.0,
                        "lvsv": 70.0,
                        "shd": patient % 2,
                    }
                )
    pairs = pd.DataFrame(rows)
    pairs_path = root / "pairs.csv"
    write_table(pairs, pairs_path)
    return TinyCohort(
        root,
        pairs_path,
        ecg_stores,
        echo_ledgers,
        [str(p) for p in embedding_stores],
        pairs,
        signals,
        {study: np.stack(v) for study, v in views.items()},
    )


def train_outputs(folder):
    """TrainOutputs with the pipeline's file names in ``folder``."""
    from echo2ecg.train.loop import TrainOutputs

    folder = Path(folder)
    return TrainOutputs(folder / "best.pt", folder / "last.pt", folder / "history.csv")


def variant_outputs(folder):
    """(TrainOutputs, loss plot) of ``pretrain_variant`` with the pipeline's names."""
    return train_outputs(folder), Path(folder) / "loss.png"


def tiny_checkpoint(
    out_dir, pooling: str = "attention", ecg_recipe: dict | None = None, **encoder_overrides
) -> Path:
    """A tiny variant saved as the pipeline saves the untrained baseline (``train: false``:
    best.pt and last.pt at the seeded initialisation); the path of its last.pt."""
    from echo2ecg.train.pair_data import PairData
    from echo2ecg.train.pretrain import pretrain_variant

    no_pairs = PairData(np.zeros((0, 12, TINY_ECG_SAMPLES), np.float32), [], np.zeros((0, 2)))
    extra = {} if ecg_recipe is None else {"ecg_recipe": ecg_recipe}
    pretrain_variant(
        "tiny",
        {"pooling": pooling, "train": False},
        tiny_encoder_config(**encoder_overrides),
        tiny_train_config(),
        no_pairs,
        no_pairs,
        *variant_outputs(out_dir),
        device="cpu",
        extra=extra,
    )
    return Path(out_dir) / "last.pt"


# --- hostile ECG files: read in a child process under an address-space limit -------------

ADDRESS_SPACE = 3 * 2**30  # bytes: the imports take ~1.4 GiB of address space, a bomb more
PEAK_RSS_MB = 400  # an interpreter with numpy, pandas (via wfdb) and pydicom is ~120 MB
CHILD_TIMEOUT_S = 120

RUNNER = textwrap.dedent("""
    import json, sys
    from echo2ecg.data.ecg_formats import read_ecg
    from echo2ecg.data.errors import InputRejected
    outcomes = []
    for path, options in json.loads(sys.argv[1]):
        try:
            ecg = read_ecg(path, **options)
            outcomes.append({"shape": list(ecg.signal.shape), "notes": list(ecg.notes)})
        except InputRejected as error:
            outcomes.append({"reason": error.reason})
    # VmHWM is the peak of this program alone; ru_maxrss (self or, in the parent, children)
    # also counts the test process's pages the child held until exec (Linux keeps the max).
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    peak_mb = int(status["VmHWM"].split()[0]) / 1024
    print(json.dumps({"outcomes": outcomes, "peak_rss_mb": peak_mb}))
""")


def read_in_child(*files, **options) -> tuple[list[dict], float]:
    """Read each path with read_ecg(path, **options) in one child process under
    ADDRESS_SPACE and CHILD_TIMEOUT_S; (outcome of each file, the child's peak RSS in MB)."""
    spec = json.dumps([[str(path), options] for path in files])
    command = ["prlimit", f"--as={ADDRESS_SPACE}", sys.executable, "-c", RUNNER, spec]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["outcomes"], report["peak_rss_mb"]


def assert_plain(reason: str, folder) -> None:
    """A reason names no path and holds no bytes, address, errno text or traceback."""
    for marker in (str(folder), "Traceback", "b'", 'b"', "\\x", "0x", "Errno", "object at"):
        assert marker not in reason, reason
