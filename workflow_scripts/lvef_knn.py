"""lvef_knn: 3-class LVEF kNN AUROC with bootstrap CI, per variant and cohort."""

import pandas as pd

from echo2ecg.downstream import lvef_table
from echo2ecg.provenance import table_provenance
from echo2ecg.runlog import log_to
from echo2ecg.tables import write_report_table

with log_to(snakemake.log[0]):
    settings = snakemake.params.settings
    pairs = {path.split("/")[-2]: pd.read_csv(path) for path in snakemake.input.pairs}
    table = lvef_table(snakemake.input.features, pairs, settings["knn_k"],
                       settings["balance_lvef_train"], settings["bootstrap_resamples"],
                       settings["seed"])
    write_report_table(table, snakemake.output.table, "LVEF (3 classes): kNN AUROC, 95 % CI",
                       table_provenance(settings, snakemake.input, snakemake.params.pretrained))
