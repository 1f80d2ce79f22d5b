"""shd_scaling: SHD kNN AUROC trained on growing fractions of the training set."""

import pandas as pd

from echo2ecg.downstream import shd_table
from echo2ecg.plots import plot_shd_scaling
from echo2ecg.provenance import table_provenance
from echo2ecg.runlog import log_to
from echo2ecg.tables import write_report_table

with log_to(snakemake.log[0]):
    settings = snakemake.params.settings
    table = shd_table(snakemake.input.features, pd.read_csv(snakemake.input.pairs),
                      settings["shd_fractions"], settings["shd_seeds"], settings["knn_k"],
                      settings["bootstrap_resamples"], settings["seed"])
    write_report_table(table, snakemake.output.table, "SHD data scaling: kNN AUROC, 95 % CI",
                       table_provenance(settings, snakemake.input, snakemake.params.pretrained))
    plot_shd_scaling(table, snakemake.output.plot)
