"""features: one variant's ECG features and joint-space vectors for one cohort."""

import torch

from echo2ecg.data.ledger import read_shard_ledgers
from echo2ecg.embed.devices import choose_device
from echo2ecg.evaluate.feature_files import save_features
from echo2ecg.evaluate.features import cohort_features, load_variant
from echo2ecg.runlog import log_to
from echo2ecg.train.pairs import read_id_table

torch.set_num_threads(snakemake.threads)  # as many as the rule declares

with log_to(snakemake.log[0]) as log:
    pairs = read_id_table(snakemake.input.pairs)
    echo_ledgers = snakemake.input.echo_ledgers
    ecg_shards, echo_shards = snakemake.params.ecg_shards, snakemake.params.echo_shards
    with choose_device() as lease:
        model, _ = load_variant(snakemake.input.checkpoint, lease.device)
        features = cohort_features(
            model,
            snakemake.params.n_samples,
            pairs,
            dict(zip(ecg_shards, snakemake.input.ecg_stores)),
            read_shard_ledgers(dict(zip(echo_shards, echo_ledgers))) if echo_ledgers else None,
            dict(zip(echo_shards, snakemake.input.embeddings)),
            snakemake.params.max_views,
            lease.device,
            kind=snakemake.params.kind,
        )
    save_features(features, snakemake.output.features)
    log.info("%d ECGs, %d studies", len(features["ecg"]), len(features["study"]))
