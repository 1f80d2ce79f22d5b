"""features: one variant's ECG features and joint-space vectors for one cohort."""

import pandas as pd

from echo2ecg.devices import choose_device
from echo2ecg.features import cohort_features, load_variant, save_features
from echo2ecg.ledger import read_shard_ledgers
from echo2ecg.pretrain import stores_by_shard
from echo2ecg.runlog import log_to

with log_to(snakemake.log[0]) as log:
    pairs = pd.read_csv(snakemake.input.pairs, dtype={"ecg_shard": str})
    echo_ledgers = snakemake.input.echo_ledgers
    with choose_device() as lease:
        model, checkpoint = load_variant(snakemake.input.checkpoint, lease.device)
        features = cohort_features(
            model, checkpoint["settings"]["n_samples"], pairs,
            stores_by_shard(snakemake.input.ecg_stores),
            read_shard_ledgers(echo_ledgers) if echo_ledgers else None,
            stores_by_shard(snakemake.input.embeddings), snakemake.params.max_views, lease.device)
    save_features(features, snakemake.output.features)
    log.info("%d ECGs, %d studies", len(features["ecg"]), len(features["study"]))
