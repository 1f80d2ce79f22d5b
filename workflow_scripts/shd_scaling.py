"""shd_scaling: SHD kNN AUROC trained on growing fractions of the training set, with the
per-ECG scores of every subset."""

from echo2ecg.data.store import write_table
from echo2ecg.evaluate.downstream import shd_table
from echo2ecg.evaluate.feature_files import load_features
from echo2ecg.report.plots import plot_shd_scaling
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
    table, scores = shd_table(
        features,
        read_id_table(snakemake.input.pairs),
        settings["shd_fractions"],
        settings["shd_seeds"],
        settings["knn_k"],
        settings["bootstrap_resamples"],
        settings["seed"],
    )
    write_table(scores, snakemake.output.evidence)
    write_report_table(
        table,
        snakemake.output.table,
        "SHD data scaling: kNN AUROC, 95 % CI",
        table_provenance(settings, snakemake.input, snakemake.params.pretrained),
    )
    plot_shd_scaling(table, snakemake.output.plot)
