"""uncertainty_noise (demo only): each probabilistic variant's ECG uncertainty against the
noise the demo's generator planted in each recording."""

import pandas as pd

from echo2ecg.data.pseudonym import pseudonymise_all, resolve_key
from echo2ecg.evaluate.feature_files import load_features
from echo2ecg.evaluate.uncertainty_noise import noise_table
from echo2ecg.report.provenance import table_provenance
from echo2ecg.report.tables import write_report_table
from echo2ecg.runlog import log_to
from echo2ecg.train.pairs import read_id_table

with log_to(snakemake.log[0]):
    settings = snakemake.params.settings
    key = resolve_key(snakemake.config["privacy"]["pseudonym_key"], demo=True)
    cohorts = settings["lvef_cohorts"]
    noise = {}
    for cohort, path in zip(cohorts, snakemake.input.truth):
        truth = pd.read_csv(path, dtype={"ecg_id": str})
        noise[cohort] = pd.DataFrame(
            {"ecg": pseudonymise_all(truth["ecg_id"], key), "noise_mv": truth["noise_mv"]}
        )
    tests = {}
    for cohort, path in zip(cohorts, snakemake.input.pairs):
        pairs = read_id_table(path)
        tests[cohort] = pairs[pairs["split"] == "test"].drop_duplicates("ecg")[["ecg", "patient"]]
    uncertainties = {}
    for (variant, cohort), path in zip(snakemake.params.feature_keys, snakemake.input.features):
        features = load_features(path)
        values = pd.DataFrame({"ecg": features["ecg"], "uncertainty": features["ecg_uncertainty"]})
        uncertainties[(variant, cohort)] = tests[cohort].merge(values, on="ecg")
    table = noise_table(uncertainties, noise, settings["bootstrap_resamples"], settings["seed"])
    write_report_table(
        table,
        snakemake.output.table,
        "ECG uncertainty against the planted noise (Spearman), 95 % CI",
        table_provenance(settings, snakemake.input, snakemake.params.pretrained),
    )
