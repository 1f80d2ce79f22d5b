"""pretrain: contrastive training of one model variant on the cached embeddings."""

import pandas as pd
import torch

from echo2ecg.data.ledger import read_shard_ledgers
from echo2ecg.embed.devices import choose_device
from echo2ecg.runlog import log_to
from echo2ecg.train.loop import TrainOutputs
from echo2ecg.train.pairs import read_id_table
from echo2ecg.train.pretrain import load_pair_data, pretrain_variant

torch.set_num_threads(snakemake.threads)  # as many as the rule declares

with log_to(snakemake.log[0]) as log:
    # pairing.ecg_source: the ECG files' pairs, the traces' or both
    pairs = pd.concat([read_id_table(path) for path in snakemake.input.pairs], ignore_index=True)
    ecg_stores = dict(zip(snakemake.params.ecg_shards, snakemake.input.ecg_stores))
    trace_stores = dict(zip(snakemake.params.trace_shards, snakemake.input.trace_stores))
    embedding_stores = dict(zip(snakemake.params.echo_shards, snakemake.input.embeddings))
    echo_ledger = read_shard_ledgers(
        dict(zip(snakemake.params.echo_shards, snakemake.input.echo_ledgers))
    )
    max_views = snakemake.params.train["max_views"]
    data = {
        split: load_pair_data(
            pairs, split, ecg_stores, echo_ledger, embedding_stores, max_views, trace_stores
        )
        for split in ("train", "val")
    }
    out = snakemake.output
    outputs = TrainOutputs(best=out.best, last=out.last, history=out.history)
    with choose_device() as lease:
        log.info(
            "variant %s on %s: %d train pairs, %d val pairs",
            snakemake.wildcards.variant,
            lease.device,
            len(data["train"].pairs),
            len(data["val"].pairs),
        )
        pretrain_variant(
            snakemake.wildcards.variant,
            snakemake.params.variant,
            snakemake.params.encoder,
            snakemake.params.train,
            data["train"],
            data["val"],
            outputs,
            out.plot,
            device=lease.device,
            extra={"ecg_recipe": snakemake.params.ecg_recipe},
            aggregator=snakemake.params.aggregator,
        )
