"""ablation: single-view against multi-view pooling, on LVEF and SHD at one fraction."""

import pandas as pd

from echo2ecg.evaluate.downstream import ablation_table
from echo2ecg.report.provenance import table_provenance
from echo2ecg.report.tables import write_report_table
from echo2ecg.runlog import log_to

with log_to(snakemake.log[0]):
    settings = snakemake.params.settings
    table = ablation_table(
        pd.read_csv(snakemake.input.lvef),
        pd.read_csv(snakemake.input.shd),
        settings["variants"],
        settings["internal_cohort"],
        settings["shd_fraction"],
    )
    write_report_table(
        table,
        snakemake.output.table,
        "Ablation: views and pooling",
        table_provenance(settings, snakemake.input, snakemake.params.pretrained),
    )
