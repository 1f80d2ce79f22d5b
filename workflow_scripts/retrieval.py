"""retrieval: ECG -> echo-study retrieval in the joint space (P@1, mean rank) with
patient-level CIs, against random and the baseline, and the per-query rows."""

from echo2ecg.data.store import write_table
from echo2ecg.evaluate.downstream import retrieval_table
from echo2ecg.evaluate.feature_files import load_features
from echo2ecg.report.provenance import table_provenance
from echo2ecg.report.tables import write_report_table
from echo2ecg.runlog import log_to
from echo2ecg.train.pairs import read_id_table

with log_to(snakemake.log[0]):
    settings = snakemake.params.settings
    features = {
        variant: load_features(path)
        for variant, path in zip(snakemake.params.variants, snakemake.input.features)
    }
    table, queries = retrieval_table(
        features,
        read_id_table(snakemake.input.pairs),
        settings["retrieval_tolerance_sd"],
        settings["bootstrap_resamples"],
        settings["seed"],
        settings["baseline"],
    )
    write_table(queries, snakemake.output.evidence)
    write_report_table(
        table,
        snakemake.output.table,
        "ECG to echo retrieval (test split)",
        table_provenance(settings, snakemake.input, snakemake.params.pretrained),
    )
