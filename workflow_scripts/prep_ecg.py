"""prep_ecg: one shard of ECG files -> ecg.zarr + ledger.csv."""

from pathlib import Path

from echo2ecg.data_stage import ShardInput, prep_ecg_shard
from echo2ecg.runlog import log_to

with log_to(snakemake.log[0]):
    inputs = [ShardInput(**item) for item in snakemake.params.inputs]
    prep_ecg_shard(inputs, Path(snakemake.output.ledger).parent, snakemake.params.recipe)
