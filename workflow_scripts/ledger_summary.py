"""ledger_summary: count ok and rejected files per stage, cohort and reason."""

from echo2ecg.data.ledger import summarise_ledgers
from echo2ecg.data.store import write_table
from echo2ecg.report.tables import write_html, write_markdown
from echo2ecg.runlog import log_to

with log_to(snakemake.log[0]):
    paths = [*snakemake.input.echo, *snakemake.input.ecg, *snakemake.input.trace]
    summary = summarise_ledgers(
        [(stage, cohort, path) for (stage, cohort), path in zip(snakemake.params.ledgers, paths)]
    )
    write_table(summary, snakemake.output.table)
    write_markdown(summary, snakemake.output.markdown, "Data stage: files per outcome")
    write_html(summary, snakemake.output.html, "Data stage: files per outcome")
