"""extract_echo: one shard of DICOM echo views -> clips.zarr + ledger.csv."""

from pathlib import Path

from echo2ecg.data.shard_run import ShardInput, extract_echo_shard
from echo2ecg.data.manifest import load_echo_views
from echo2ecg.data.pseudonym import resolve_key
from echo2ecg.runlog import log_to
from echo2ecg.data.shard_plan import checked_shard_inputs, plan_echo_shards

with log_to(snakemake.log[0]):
    plan, shard, config = snakemake.params.plan, snakemake.wildcards.shard, snakemake.config
    key = resolve_key(config["privacy"]["pseudonym_key"], demo=config["demo"]["enabled"])
    planned = plan_echo_shards(load_echo_views(plan["manifest"]), plan["n_shards"], key,
                               plan["hash_paths"], only=shard)
    rows = checked_shard_inputs(planned, shard, snakemake.params.rows)
    inputs = [ShardInput(**item) for item in rows]
    extract_echo_shard(inputs, Path(snakemake.output.ledger).parent, snakemake.params.recipe,
                       time_limit_s=snakemake.params.time_limit_s)
