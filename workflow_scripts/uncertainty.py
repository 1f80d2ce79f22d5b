"""uncertainty: LVEF kNN in the low- and high-uncertainty halves of each cohort's test ECGs,
for every probabilistic variant."""

import pandas as pd

from echo2ecg.evaluate.feature_files import load_features
from echo2ecg.evaluate.uncertainty import uncertainty_table
from echo2ecg.report.provenance import table_provenance
from echo2ecg.report.tables import write_report_table
from echo2ecg.runlog import log_to
from echo2ecg.train.pairs import read_id_table

with log_to(snakemake.log[0]):
    settings = snakemake.params.settings
    uncertainties = {}
    for (variant, cohort), path in zip(snakemake.params.feature_keys, snakemake.input.features):
        features = load_features(path)
        uncertainties[(variant, cohort)] = pd.DataFrame(
            {"ecg": features["ecg"], "uncertainty": features["ecg_uncertainty"]}
        )
    table = uncertainty_table(
        read_id_table(snakemake.input.lvef),
        uncertainties,
        settings["bootstrap_resamples"],
        settings["seed"],
    )
    write_report_table(
        table,
        snakemake.output.table,
        "LVEF kNN by ECG uncertainty (median split), 95 % CI",
        table_provenance(settings, snakemake.input, snakemake.params.pretrained),
    )
