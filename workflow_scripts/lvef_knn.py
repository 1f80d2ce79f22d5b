"""lvef_knn: 3-class LVEF kNN AUROC per variant and cohort, patient-level CIs, paired
differences from the baseline, and the per-ECG scores they come from."""

from echo2ecg.data.store import write_table
from echo2ecg.evaluate.downstream import lvef_table
from echo2ecg.evaluate.feature_files import load_features
from echo2ecg.report.provenance import table_provenance
from echo2ecg.report.tables import write_report_table
from echo2ecg.runlog import log_to
from echo2ecg.train.pairs import read_id_table

with log_to(snakemake.log[0]):
    settings = snakemake.params.settings
    features = {
        tuple(key): load_features(path)
        for key, path in zip(snakemake.params.feature_keys, snakemake.input.features)
    }
    pairs = {
        cohort: read_id_table(path)
        for cohort, path in zip(snakemake.params.cohorts, snakemake.input.pairs)
    }
    table, scores = lvef_table(
        features,
        pairs,
        settings["knn_k"],
        settings["balance_lvef_train"],
        settings["bootstrap_resamples"],
        settings["seed"],
        settings["baseline"],
    )
    write_table(scores, snakemake.output.evidence)
    write_report_table(
        table,
        snakemake.output.table,
        "LVEF (3 classes): kNN AUROC, 95 % CI",
        table_provenance(settings, snakemake.input, snakemake.params.pretrained),
    )
