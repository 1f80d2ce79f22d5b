"""retrieval: ECG -> echo-study retrieval in the joint space, P@1 and mean rank."""

import pandas as pd

from echo2ecg.downstream import retrieval_table
from echo2ecg.provenance import table_provenance
from echo2ecg.runlog import log_to
from echo2ecg.tables import write_report_table

with log_to(snakemake.log[0]):
    settings = snakemake.params.settings
    table = retrieval_table(snakemake.input.features, pd.read_csv(snakemake.input.pairs),
                            settings["retrieval_tolerance_sd"])
    write_report_table(table, snakemake.output.table, "ECG to echo retrieval (test split)",
                       table_provenance(settings, snakemake.input, snakemake.params.pretrained))
