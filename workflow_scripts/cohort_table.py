"""cohort_table: the per-cohort split counts as one table (the paper's Table 1)."""

import pandas as pd

from echo2ecg.data.store import write_table
from echo2ecg.report.tables import write_html, write_markdown
from echo2ecg.runlog import log_to

with log_to(snakemake.log[0]):
    table = pd.concat([pd.read_csv(path) for path in snakemake.input.splits], ignore_index=True)
    write_table(table, snakemake.output.table)
    write_markdown(
        table, snakemake.output.markdown, "Cohorts: pairs, patients, ECGs, studies, views per split"
    )
    write_html(
        table, snakemake.output.html, "Cohorts: pairs, patients, ECGs, studies, views per split"
    )
