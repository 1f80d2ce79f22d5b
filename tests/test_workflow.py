"""The data stage end to end through Snakemake, on a tiny demo cohort."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pydicom.data
import pytest
import torch
import yaml
import zarr

from echo2ecg.data.store import read_ledger
from echo2ecg.report.provenance import file_checksum

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def snakemake(
    workdir: Path,
    *args: str,
    config: str = "config.yaml",
    cores: int = 2,
    env: dict | None = None,
    timeout: int = 900,
) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / config),
        "--cores",
        str(cores),
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def planned_jobs(run: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from a dry run's job-stats table."""
    jobs = {}
    for line in run.stdout.splitlines():
        match = re.fullmatch(r"\s*([a-z_]+)\s+(\d+)\s*", line)
        if match and match.group(1) != "total":
            jobs[match.group(1)] = int(match.group(2))
    return jobs


def tiny_config(**demo) -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    # every variant, the seed systems' too (config.paper.yaml lists them all)
    config["variants"] = yaml.safe_load((ROOT / "config.paper.yaml").read_text())["variants"]
    config["demo"].update({"scale": 0.12, **demo})
    if not config["demo"]["enabled"]:  # the public demo key is refused on other cohorts
        config["privacy"]["pseudonym_key"] = "test-only-key-" + "0" * 32
    config["cohorts"]["internal"].update({"echo_shards": 3, "ecg_shards": 2})
    config["cohorts"]["external"].update({"ecg_shards": 1})
    config["train"].update({"epochs": 2, "warmup_epochs": 1, "batch_size": 4})
    config["evaluation"]["bootstrap_resamples"] = 50
    return config


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo_run")
    (workdir / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    run = snakemake(workdir)
    assert run.returncode == 0, run.stderr[-5000:]
    return workdir


def manifest(workdir, cohort, table):
    return pd.read_csv(workdir / "demo_data" / cohort / f"{table}.csv", dtype=str)


def ledgers(workdir, cohort, stage):
    paths = sorted((workdir / "results/data" / cohort / stage).glob("shard_*/ledger.csv"))
    return paths, pd.concat([read_ledger(p) for p in paths], ignore_index=True)


def test_every_echo_file_is_accounted_for(demo_run):
    views = manifest(demo_run, "internal", "echo_views")
    paths, ledger = ledgers(demo_run, "internal", "echo")
    assert len(paths) == 3
    assert sorted(ledger["manifest_row"]) == list(range(len(views)))
    assert (ledger["status"] == "ok").sum() >= len(views) - 3
    rejected = ledger[ledger["status"] == "rejected"]
    assert len(rejected) >= 1 and rejected["reason"].str.len().gt(5).all()
    for path in paths:
        shard = read_ledger(path)
        clips = zarr.open_group(path.parent / "clips.zarr", mode="r")["clips"]
        ok = shard[shard["status"] == "ok"]
        assert clips.shape == (len(ok), 16, 224, 224, 3) and clips.dtype == np.uint8
        assert sorted(ok["row"]) == list(range(len(ok)))
        if len(ok):
            clip = clips[int(ok["row"].iloc[0])]
            assert clip[0].max() > 50  # the scan sector is there
            assert clip[:, :8, :8].max() == 0  # the corners outside the sector are masked


def test_every_ecg_file_is_accounted_for(demo_run):
    for cohort in ("internal", "external"):
        ecgs = manifest(demo_run, cohort, "ecgs")
        paths, ledger = ledgers(demo_run, cohort, "ecg")
        assert sorted(ledger["manifest_row"]) == list(range(len(ecgs)))
        n_ok = 0
        for path in paths:
            signals = zarr.open_group(path.parent / "ecg.zarr", mode="r")["signals"]
            shard = read_ledger(path)
            assert signals.shape == ((shard["status"] == "ok").sum(), 12, 5000)
            n_ok += signals.shape[0]
            if signals.shape[0]:
                x = signals[0]
                assert np.isfinite(x).all() and abs(float(x[6:].mean())) < 1e-3
        assert n_ok >= len(ecgs) - 1
    summary = pd.read_csv(demo_run / "results/tables/ledger_summary.csv")
    total = summary.groupby(["stage", "cohort"])["files"].sum()
    assert total[("ecg", "external")] == len(manifest(demo_run, "external", "ecgs"))
    assert total[("echo", "internal")] == len(manifest(demo_run, "internal", "echo_views"))
    # every ECG source is counted apart: the manifest's formats, the vendor XML ones too
    formats = summary[summary["stage"] == "ecg"].groupby(["cohort", "format"])["files"].sum()
    for cohort in ("internal", "external"):
        listed = manifest(demo_run, cohort, "ecgs")["format"].value_counts()
        assert formats[cohort].to_dict() == listed.to_dict()
        assert {"cardiosoft", "xml", "hl7aecg"} <= set(listed.index)


def test_finished_run_has_nothing_to_do(demo_run):
    run = snakemake(demo_run, "-n")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Nothing to be done" in run.stdout + run.stderr


def cohort_identifiers(workdir: Path) -> set[str]:
    """Patient, study, view and ECG ids of the cohort, its file paths (which hold patient
    ids) and the identifiers in the first DICOM headers: none may appear in an output."""
    views = manifest(workdir, "internal", "echo_views")
    secrets = set(views["patient_id"]) | set(views["study_id"]) | set(views["path"])
    for cohort in ("internal", "external"):
        ecgs = manifest(workdir, cohort, "ecgs")
        secrets |= set(ecgs["patient_id"]) | set(ecgs["ecg_id"]) | set(ecgs["path"])
    for path in views["path"][:6]:
        header = pydicom.dcmread(
            workdir / "demo_data/internal" / path, stop_before_pixels=True, force=True
        )
        secrets |= {
            str(header.PatientName),
            str(header.PatientID),
            str(header.SOPInstanceUID),
            str(header.StudyInstanceUID),
            str(getattr(header, "PatientBirthDate", "")),
        }
        secrets.add(Path(path).name)
    return {s for s in secrets if len(s) >= 6}


def identifier_leaks(root: Path, secrets: set[str]) -> tuple[dict[str, list[str]], int]:
    """Files under ``root`` (every byte of every file) holding any of ``secrets``."""
    needles = [s.encode() for s in secrets]
    leaks, scanned = {}, 0
    for file in sorted(root.rglob("*")):
        if file.is_file():
            data = file.read_bytes()
            scanned += 1
            if hit := [n.decode() for n in needles if n in data]:
                leaks[str(file.relative_to(root))] = hit[:3]
    return leaks, scanned


def test_no_identifiers_anywhere_the_pipeline_writes(demo_run, tmp_path):
    secrets = cohort_identifiers(demo_run)
    assert len(secrets) > 20
    report = tmp_path / "report.zip"
    run = snakemake(demo_run, "--report", str(report))
    assert run.returncode == 0, run.stderr[-3000:]
    shutil.unpack_archive(report, tmp_path / "report")
    for folder in ("results", "logs", "benchmarks", ".snakemake", tmp_path / "report"):
        leaks, scanned = identifier_leaks(demo_run / folder, secrets)
        assert not leaks, f"{folder}: {leaks}"
        assert scanned >= 5, folder


def test_embeddings_align_with_clips(demo_run):
    for ledger_path in sorted((demo_run / "results/data/internal/echo").glob("shard_*/ledger.csv")):
        shard = ledger_path.parent.name
        clips = zarr.open_group(ledger_path.parent / "clips.zarr", mode="r")["clips"]
        store = zarr.open_group(
            demo_run / "results/embeddings/internal" / shard / "embeddings.zarr", mode="r"
        )
        embeddings = store["embeddings"]
        assert embeddings.shape == (clips.shape[0], 512) and embeddings.dtype == np.float32
        assert store.attrs["encoder_pretrained"] is False  # no weights given: said so, not hidden
        assert np.isfinite(embeddings[:]).all()


def test_embeddings_do_not_depend_on_cores(demo_run, tmp_path):
    """Embedding computes with `echo_encoder.cpu_threads` whatever --cores grants, so a
    run with --cores 1 gives the same bits (float sums depend on the thread split). One
    shard is re-embedded: each job computes alone, so one shows it, at a third of the time."""
    copy = tmp_path / "copy"
    shutil.copytree(demo_run, copy, symlinks=True)
    stores = sorted((copy / "results/embeddings/internal").glob("shard_*/embeddings.zarr"))
    sizes = {s: zarr.open_group(s, mode="r")["embeddings"].shape[0] for s in stores}
    store = min((s for s in stores if sizes[s] > 5), key=sizes.get)
    before = zarr.open_group(store, mode="r")["embeddings"][:]
    written = (store / "zarr.json").stat().st_mtime_ns
    run = snakemake(copy, str(store.relative_to(copy)), "--forcerun", "embed_echo", cores=1)
    assert run.returncode == 0, run.stderr[-3000:]
    assert re.search(r"^embed_echo\s+1$", run.stdout + run.stderr, re.MULTILINE)
    assert (store / "zarr.json").stat().st_mtime_ns != written  # written anew, not kept
    np.testing.assert_array_equal(zarr.open_group(store, mode="r")["embeddings"][:], before)


def test_pairs_split_and_every_variant_trained(demo_run):
    pairs = pd.read_csv(demo_run / "results/pairs/internal/pairs.csv")
    assert len(pairs) > 0 and (pairs["days_apart"].abs() <= 7).all()
    assert pairs.groupby("patient")["split"].nunique().max() == 1  # no patient in two splits
    table = pd.read_csv(demo_run / "results/tables/cohort_splits.csv")
    assert set(table["cohort"]) == {"internal", "external"}
    files = table[table["ecg_source"] == "ecg_files"]
    assert files.loc[files["cohort"] == "internal", "pairs"].sum() == len(pairs)
    trained = pairs[(pairs["split"] == "train") & (pairs["n_views"] > 0)]
    assert 0 < len(trained) < (pairs["split"] == "train").sum()  # report-only studies too
    for variant in ("echo2ecg", "mean_pool", "cls_pool", "single_view", "no_align"):
        folder = demo_run / "results/models" / variant
        checkpoint = torch.load(folder / "last.pt", map_location="cpu", weights_only=False)
        assert checkpoint["extra"]["variant"] == variant and "model" in checkpoint
        assert checkpoint["epoch"] == (0 if variant == "no_align" else 2)  # the last epoch
        if variant != "no_align":  # the demo standardises the cached views
            assert checkpoint["model"]["view_mean"].abs().sum() > 0
        history = pd.read_csv(folder / "history.csv")
        assert len(history) == (0 if variant == "no_align" else 2)
        assert (folder / "loss.png").stat().st_size > 1000


def test_every_clip_gives_its_trace_and_the_traces_can_train(demo_run, tmp_path):
    """echo_trace in ecg_sources: a ledger row per view, trace pairs with their own study
    counted apart; pairing.ecg_source echo_trace retrains on them and nothing earlier."""
    views = manifest(demo_run, "internal", "echo_views")
    paths, ledger = ledgers(demo_run, "internal", "echo_trace")
    assert len(paths) == 3 and sorted(ledger["manifest_row"]) == list(range(len(views)))
    ok = ledger[ledger["status"] == "ok"]
    assert set(ok["note"]) == {
        "strip from the ECG-trace region, time scale from the region",
        "strip from the bottom band, time scale from the sweep",
    }
    assert "no ECG trace colour: a monochrome clip" in set(ledger["reason"])
    for path in paths:
        store = zarr.open_group(path.parent / "ecg.zarr", mode="r")
        assert store.attrs["leads"] == ["II"]
        assert store["signals"].shape == ((read_ledger(path)["status"] == "ok").sum(), 12, 1100)
    traces = pd.read_csv(demo_run / "results/pairs/internal/trace_pairs.csv")
    assert (traces["ecg_source"] == "echo_trace").all() and (traces["days_apart"] == 0).all()
    assert len(traces) == len(ok) and traces["ecg"].is_unique
    files = pd.read_csv(demo_run / "results/pairs/internal/pairs.csv")
    split_of = dict(zip(files["patient"], files["split"]))
    assert all(split_of.get(p, s) == s for p, s in zip(traces["patient"], traces["split"]))
    table = pd.read_csv(demo_run / "results/tables/cohort_splits.csv")
    counted = table[(table["cohort"] == "internal") & (table["ecg_source"] == "echo_trace")]
    assert counted["pairs"].sum() == len(traces)
    summary = pd.read_csv(demo_run / "results/tables/ledger_summary.csv")
    assert summary.loc[summary["stage"] == "echo_trace", "files"].sum() == len(views)

    copy = tmp_path / "copy"
    shutil.copytree(demo_run, copy, symlinks=True)
    config = tiny_config()
    config["pairing"]["ecg_source"] = "echo_trace"
    (copy / "trace.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(copy, "-n", config="trace.yaml"))
    assert jobs.get("pretrain") == 7, jobs
    assert not {"extract_echo", "prep_ecg", "extract_trace", "embed_echo", "pair_split"} & set(
        jobs
    ), jobs
    run = snakemake(
        copy,
        "results/models/echo2ecg/last.pt",
        "results/models/hierarchical/last.pt",
        config="trace.yaml",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    trained = traces[(traces["split"] == "train") & (traces["n_views"] > 0)]
    log = (copy / "logs/pretrain/echo2ecg.log").read_text()
    assert f": {len(trained)} train pairs," in log
    # the hierarchical objective's shifted-pair term runs on the traces, all synchronised
    log = (copy / "logs/pretrain/hierarchical.log").read_text()
    assert f"shifted-pair term on {len(trained)} of {len(trained)} training pairs" in log


def test_every_table_has_markdown_and_provenance(demo_run):
    tables = demo_run / "results/tables"
    columns = {
        "lvef_knn": ["model", "cohort", "auroc", "ci_low", "ci_high", "n_train", "n_test"],
        "shd_scaling": ["model", "fraction", "n_train", "auroc", "ci_low", "ci_high"],
        "retrieval": [
            "model",
            "phenotype",
            "p_at_1",
            "p_at_1_ci_low",
            "p_at_1_ci_high",
            "mean_rank",
            "mean_rank_ci_low",
            "mean_rank_ci_high",
            "n_queries",
        ],
        "ablation": ["model"],
        "uncertainty": ["model", "cohort", "half", "n_test", "n_patients"],
        "uncertainty_noise": ["model", "cohort", "n_test", "n_patients", "spearman"],
        "findings": [
            "claim",
            "cohort",
            "holds",
            "metric",
            "model",
            "versus",
            "model_value",
            "versus_value",
            "difference",
            "ci_low",
            "ci_high",
        ],
    }
    for name, expected in columns.items():
        table = pd.read_csv(tables / f"{name}.csv")
        assert list(table.columns[: len(expected)]) == expected
        assert (tables / f"{name}.md").read_text().startswith("# ")
        assert "<table>" in (tables / f"{name}.html").read_text()
        record = json.loads((tables / f"{name}.provenance.json").read_text())
        assert record["encoders_pretrained"] == {"echo_encoder": False, "ecg_encoder": False}
        for path, checksum in record["inputs_sha256"].items():
            assert checksum == file_checksum(demo_run / path), path
    retrieval = pd.read_csv(tables / "retrieval.csv")
    assert set(retrieval.loc[retrieval["model"] == "random", "phenotype"]) == {
        "lvedv",
        "lvesv",
        "lvsv",
        "lvef",
    }
    assert (tables / "shd_scaling.png").stat().st_size > 1000
    findings = pd.read_csv(tables / "findings.csv")
    # 21 claims of the paper, and the two other objectives against it: LVEF in each
    # cohort and retrieval of each phenotype
    assert set(findings["holds"]) <= {"yes", "no", "undetermined"} and len(findings) == 33
    assert set(findings["versus"]) >= {"probabilistic", "hierarchical"}
    uncertainty = pd.read_csv(tables / "uncertainty.csv")
    assert sorted(zip(uncertainty["cohort"], uncertainty["half"])) == [
        ("external", "high"),
        ("external", "low"),
        ("internal", "high"),
        ("internal", "low"),
    ]
    assert (uncertainty["model"] == "probabilistic").all()
    features = np.load(demo_run / "results/features/probabilistic/internal.npz")
    assert features["ecg_uncertainty"].shape == features["ecg"].shape
    assert (features["ecg_uncertainty"] > 0).all()
    assert "ecg_uncertainty" not in np.load(demo_run / "results/features/echo2ecg/internal.npz")
    # the evidence behind every CI: one row per test ECG (and query), patients named
    lvef = pd.read_csv(demo_run / "results/evidence/lvef_knn_scores.csv", dtype={"patient": str})
    knn = pd.read_csv(tables / "lvef_knn.csv")
    assert len(lvef) == knn["n_test"].sum()
    assert (
        lvef.groupby(["model", "cohort"])["patient"].nunique().to_dict()
        == knn.set_index(["model", "cohort"])["n_test_patients"].to_dict()
    )


def test_report_holds_tables_and_plots(demo_run):
    run = snakemake(demo_run, "--report", "results/report.html")
    assert run.returncode == 0, run.stderr[-3000:]
    html = (demo_run / "results/report.html").read_text(errors="replace")
    # tables as HTML, which the report shows inline (it offers a CSV only as a download)
    for name in (
        "findings.html",
        "lvef_knn.html",
        "shd_scaling.html",
        "retrieval.html",
        "ablation.html",
        "uncertainty.html",
        "cohort_splits.html",
        "ledger_summary.html",
        "shd_scaling.png",
        "loss.png",
    ):
        assert name in html, name
    assert "text/csv" not in html
    # the landing page leads with the findings and says the encoders were random-init
    assert "Random initialisation:" in html and "Start with" in html
    for caption in (
        "paper&#x27;s claims, checked on this cohort",
        "LVEF kNN AUROC",
        "ECG to echo-study retrieval",
        "SHD data scaling",
        "Contrastive loss",
    ):
        assert caption in html or caption.replace("&#x27;", "'") in html, caption


def test_another_models_features_are_evaluated_like_a_variant(demo_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(demo_run, copy, symlinks=True)
    ids = pd.concat([manifest(copy, c, "ecgs")["ecg_id"] for c in ("internal", "external")])
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(len(ids), 6)), columns=[f"f{i}" for i in range(6)])
    table.insert(0, "ecg_id", ids.to_numpy())
    table.to_parquet(copy / "noise.parquet")
    config = tiny_config()
    config["evaluation"]["external_features"] = {"noise": "noise.parquet"}
    (copy / "external.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(copy, "-n", config="external.yaml"))
    assert jobs.get("external_features") == 2, jobs  # internal and external cohorts
    assert not {"pretrain", "features", "retrieval"} & set(jobs), jobs
    run = snakemake(copy, "results/tables/findings.csv", config="external.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    lvef = pd.read_csv(copy / "results/tables/lvef_knn.csv")
    noise = lvef[lvef["model"] == "noise"].set_index("cohort")
    ours = lvef[lvef["model"] == "echo2ecg"].set_index("cohort")
    assert (noise["n_test"] == ours["n_test"]).all()  # the same test ECGs
    shd = pd.read_csv(copy / "results/tables/shd_scaling.csv")
    assert "noise" in set(shd["model"])
    findings = pd.read_csv(copy / "results/tables/findings.csv")
    rows = findings[findings["versus"] == "noise"]
    assert rows["claim"].tolist() == ["the aligned ECG encoder beats noise's features"] * 2
    # the pseudonymised ids only: no manifest id reaches a feature file
    stored = np.load(copy / "results/features/external/noise/internal.npz")
    assert not set(stored["ecg"]) & set(ids)


def test_probabilistic_features_carry_each_ecgs_uncertainty(demo_run, tmp_path):
    out = tmp_path / "features.parquet"
    checkpoint = demo_run / "results/models/probabilistic/last.pt"
    real = pydicom.data.get_testdata_file("waveform_ecg.dcm")
    command = [sys.executable, "-m", "echo2ecg.cli", "embed-ecg", "--checkpoint"]
    run = subprocess.run(
        [*command, str(checkpoint), "--out", str(out), real], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    table = pd.read_parquet(out)
    assert table["status"].tolist() == ["ok"]
    assert np.isfinite(table["uncertainty"]).all() and (table["uncertainty"] > 0).all()


def test_feature_extractor_on_a_real_dicom_ecg(demo_run, tmp_path):
    checkpoint = demo_run / "results/models/echo2ecg/last.pt"
    real = pydicom.data.get_testdata_file("waveform_ecg.dcm")
    broken = tmp_path / "broken.hea"
    broken.write_text("not a header\n")
    out = tmp_path / "features.parquet"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "echo2ecg.cli",
            "embed-ecg",
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(out),
            real,
            str(broken),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    table = pd.read_parquet(out)
    assert table["status"].tolist() == ["ok", "rejected"]
    features = table.filter(like="feature_").to_numpy()
    assert (
        features.shape[1]
        == yaml.safe_load((ROOT / "config.yaml").read_text())["ecg_encoder"]["embed_dim"]
    )
    assert np.isfinite(features[0]).all() and np.isnan(features[1]).all()
    gallery = demo_run / "results/features/echo2ecg/internal.npz"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "echo2ecg.cli",
            "retrieve",
            "--checkpoint",
            str(checkpoint),
            "--ecg",
            real,
            "--gallery",
            str(gallery),
            "-k",
            "3",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[0].split() == ["rank", "study", "similarity"] and len(lines) == 4


def test_training_parameter_reruns_only_training(demo_run):
    config = tiny_config()
    config["variants"]["mean_pool"]["pooling"] = "cls"
    (demo_run / "variant.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(demo_run, "-n", config="variant.yaml"))
    assert jobs.get("pretrain") == 1 and jobs.get("features") == 2  # mean_pool x 2 cohorts
    assert not {"extract_echo", "prep_ecg", "embed_echo", "pair_split"} & set(jobs), jobs
    config["train"]["epochs"] = 3
    (demo_run / "epochs.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(demo_run, "-n", config="epochs.yaml"))
    assert jobs.get("pretrain") == 7
    assert not {"extract_echo", "prep_ecg", "embed_echo", "pair_split"} & set(jobs), jobs


def test_evaluation_parameter_reruns_only_evaluation(demo_run):
    config = tiny_config()
    config["evaluation"]["knn_k"] = 3
    (demo_run / "knn.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(demo_run, "-n", config="knn.yaml"))
    assert set(jobs) == {
        "lvef_knn",
        "shd_scaling",
        "ablation",
        "findings",
        "uncertainty",  # reads the LVEF evidence
        "all",
    }, jobs
    config = tiny_config()
    config["evaluation"]["checkpoint"] = "best"
    (demo_run / "best.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(demo_run, "-n", config="best.yaml"))
    assert jobs.get("features") == 14 and "pretrain" not in jobs, jobs


def test_later_stage_parameter_does_not_rerun_extraction(demo_run):
    config = tiny_config()
    config["ecg"]["asls_lam"] = 1.0e6
    (demo_run / "changed.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(demo_run, "-n", config="changed.yaml"))
    assert jobs.get("prep_ecg") == 3  # 2 internal + 1 external ECG shards
    assert not {"extract_echo", "embed_echo", "demo_cohort"} & set(jobs)


def test_random_init_seed_reruns_embedding_not_extraction(demo_run):
    config = tiny_config()
    config["echo_encoder"]["init_seed"] = 1
    (demo_run / "seed.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(demo_run, "-n", config="seed.yaml"))
    assert jobs.get("embed_echo") == 3 and jobs.get("pretrain") == 7
    assert not {"extract_echo", "prep_ecg", "demo_cohort"} & set(jobs), jobs


def rerun_for_params(run: subprocess.CompletedProcess) -> set[str]:
    """Rules of a dry run with a job rerun because its params changed."""
    rules, rule = set(), None
    for line in run.stdout.splitlines():
        match = re.fullmatch(r"(?:localrule|rule|checkpoint) (\w+):", line.strip())
        if match:
            rule = match.group(1)
        elif line.strip().startswith("reason:") and "Params have changed" in line:
            rules.add(rule)
    return rules


@pytest.fixture
def editable_workflow(demo_run, tmp_path):
    """A copy of the finished demo run and of the workflow with its package: a test edits the
    copy's code and dry-runs it; ``dry_run()`` → the completed process."""
    workdir, src = tmp_path / "run", tmp_path / "src"
    shutil.copytree(demo_run, workdir, symlinks=True)
    src.mkdir()
    shutil.copy(ROOT / "Snakefile", src)
    for name in ("rules", "workflow_scripts", "echo2ecg", "envs", "profiles"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))

    def dry_run() -> subprocess.CompletedProcess:
        command = [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(src / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(workdir / "config.yaml"),
            "--cores",
            "2",
            "-n",
        ]
        # cwd and PYTHONPATH: `python -m` puts cwd first, so the copy's package is imported
        env = {**os.environ, "PYTHONPATH": str(src)}
        run = subprocess.run(command, cwd=src, env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        return run

    return src, dry_run


TABLES = {
    "ledger_summary",
    "cohort_table",
    "lvef_knn",
    "shd_scaling",
    "retrieval",
    "ablation",
    "findings",
    "uncertainty",
    "uncertainty_noise",
}
AFTER_DATA = {"embed_echo", "pair_split", "pretrain", "features"} | TABLES


@pytest.mark.parametrize(
    "module, importing, planned",
    [
        # a table's verdicts: only the findings
        ("evaluate/findings.py", {"findings"}, {"findings"}),
        # ECG preprocessing: the shard runners import it (one runner module serves the clip
        # and ECG shards, the trace shards preprocess their lead), and everything after the
        # data stage follows from their new outputs
        (
            "data/ecg.py",
            {"extract_echo", "prep_ecg", "extract_trace"},
            {"extract_echo", "prep_ecg", "extract_trace", "pair_traces"} | AFTER_DATA,
        ),
        # every table is written through it
        ("report/tables.py", TABLES, TABLES),
    ],
)
def test_a_changed_module_reruns_exactly_the_rules_that_import_it(
    editable_workflow, module, importing, planned
):
    src, dry_run = editable_workflow
    unchanged = dry_run()
    assert "Nothing to be done" in unchanged.stdout + unchanged.stderr, unchanged.stdout[-3000:]
    with open(src / "echo2ecg" / module, "a") as source:
        source.write("\n_CHANGED_FOR_A_TEST = True\n")
    run = dry_run()
    # a job already due for new inputs is not checked for params: the importers are the
    # jobs that rerun for params, and the plan is them and what follows from them
    assert rerun_for_params(run) <= importing and rerun_for_params(run)
    assert set(planned_jobs(run)) - {"all"} == planned


DATA_STAGE = "results/tables/ledger_summary.csv"  # the data stage's final target


@pytest.fixture(scope="module")
def manifest_run(tmp_path_factory):
    """A real-cohort style run of the data stage: manifests written beforehand, demo off."""
    from echo2ecg.synth.cohort import demo_specs, generate_demo

    workdir = tmp_path_factory.mktemp("manifest_run")
    generate_demo(workdir / "demo_data", *demo_specs(seed=3, scale=0.08))
    (workdir / "config.yaml").write_text(yaml.safe_dump(tiny_config(enabled=False)))
    run = snakemake(workdir, DATA_STAGE)
    assert run.returncode == 0, run.stderr[-5000:]
    return workdir


def test_no_identifiers_in_a_real_cohort_run(manifest_run):
    """Demo off, manifests written beforehand: raw paths reach Snakemake's own records
    unless shard jobs plan their rows themselves."""
    secrets = cohort_identifiers(manifest_run)
    for folder in ("results", "logs", "benchmarks", ".snakemake"):
        leaks, scanned = identifier_leaks(manifest_run / folder, secrets)
        assert not leaks and scanned >= 3, f"{folder}: {leaks}"


def test_adding_one_study_reruns_one_shard(manifest_run):
    views_csv = manifest_run / "demo_data/internal/echo_views.csv"
    views = pd.read_csv(views_csv, dtype=str)
    first = views.iloc[0]
    new_file = Path(first["path"]).with_name("added_study_view.dcm")
    shutil.copy(
        manifest_run / "demo_data/internal" / first["path"],
        manifest_run / "demo_data/internal" / new_file,
    )
    added = first.copy()
    added["path"], added["study_id"], added["view_id"] = (
        str(new_file),
        "ADDED-STUDY-1",
        "ADDED-VIEW-1",
    )
    pd.concat([views, added.to_frame().T]).to_csv(views_csv, index=False)

    jobs = planned_jobs(snakemake(manifest_run, "-n", DATA_STAGE))
    assert jobs.get("extract_echo") == 1, jobs
    assert "prep_ecg" not in jobs
    run = snakemake(manifest_run, DATA_STAGE)
    assert run.returncode == 0, run.stderr[-3000:]
    _, ledger = ledgers(manifest_run, "internal", "echo")
    assert len(ledger) == len(views) + 1
    assert "Nothing to be done" in snakemake(manifest_run, "-n", DATA_STAGE).stdout


def test_changed_file_reruns_its_shard_and_missing_file_is_ledgered(manifest_run):
    ecgs_csv = manifest_run / "demo_data/internal/ecgs.csv"
    ecgs = pd.read_csv(ecgs_csv, dtype=str)
    gone = ecgs.iloc[0].copy()
    gone["path"], gone["ecg_id"], gone["format"] = "ecg/never_written.hea", "ECG-MISSING-1", "wfdb"
    pd.concat([ecgs, gone.to_frame().T]).to_csv(ecgs_csv, index=False)
    jobs = planned_jobs(snakemake(manifest_run, "-n", DATA_STAGE))
    assert jobs.get("prep_ecg") == 1 and "extract_echo" not in jobs, jobs
    assert snakemake(manifest_run, DATA_STAGE).returncode == 0
    _, ledger = ledgers(manifest_run, "internal", "ecg")
    missing = ledger[ledger["manifest_row"] == len(ecgs)]
    assert missing["status"].tolist() == ["rejected"]
    assert "not found" in missing["reason"].iloc[0]
