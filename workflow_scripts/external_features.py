"""external_features: another model's ECG features (a user's Parquet file) as a feature
file of one cohort, ids pseudonymised."""

import pandas as pd

from echo2ecg.data.pseudonym import resolve_key
from echo2ecg.evaluate.external import external_feature_file
from echo2ecg.evaluate.feature_files import save_features
from echo2ecg.runlog import log_to
from echo2ecg.train.pairs import read_id_table

with log_to(snakemake.log[0]) as log:
    privacy = snakemake.config["privacy"]
    key = resolve_key(privacy["pseudonym_key"], demo=snakemake.config["demo"]["enabled"])
    features = external_feature_file(
        pd.read_parquet(snakemake.input.table),
        read_id_table(snakemake.input.pairs),
        key,
        snakemake.wildcards.name,
        snakemake.wildcards.cohort,
    )
    save_features(features, snakemake.output.features)
    log.info(
        "%s: %d ECGs of %s, %d features",
        snakemake.wildcards.name,
        len(features["ecg"]),
        snakemake.wildcards.cohort,
        features["ecg_features"].shape[1],
    )
