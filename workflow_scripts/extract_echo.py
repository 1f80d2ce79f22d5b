"""extract_echo: one shard of DICOM echo views -> clips.zarr + ledger.csv."""

from pathlib import Path

from echo2ecg.data_stage import ShardInput, extract_echo_shard
from echo2ecg.runlog import log_to

with log_to(snakemake.log[0]):
    inputs = [ShardInput(**item) for item in snakemake.params.inputs]
    extract_echo_shard(inputs, Path(snakemake.output.ledger).parent, snakemake.params.recipe)
