"""findings: each of the paper's claims on this cohort, with the paired difference, its
patient-level CI and whether the claim holds."""

from echo2ecg.evaluate.findings import findings_table
from echo2ecg.report.provenance import table_provenance
from echo2ecg.report.tables import write_report_table
from echo2ecg.runlog import log_to
from echo2ecg.train.pairs import read_id_table

with log_to(snakemake.log[0]):
    settings = snakemake.params.settings
    table = findings_table(
        read_id_table(snakemake.input.lvef),
        read_id_table(snakemake.input.retrieval),
        read_id_table(snakemake.input.shd),
        settings["variants"],
        settings["lvef_cohorts"],
        settings["retrieval_cohort"],
        settings["shd_cohort"],
        settings["ablation_shd_fraction"],
        settings["knn_k"],
        settings["bootstrap_resamples"],
        settings["seed"],
        settings["external_features"],
    )
    write_report_table(
        table,
        snakemake.output.table,
        "Findings: the paper's claims on this cohort",
        table_provenance(settings, snakemake.input, snakemake.params.pretrained),
    )
