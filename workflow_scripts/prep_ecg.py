"""prep_ecg: one shard of ECG files -> ecg.zarr + ledger.csv."""

from pathlib import Path

from echo2ecg.data.shard_run import ShardInput, prep_ecg_shard
from echo2ecg.data.manifest import load_ecgs
from echo2ecg.data.pseudonym import resolve_key
from echo2ecg.runlog import log_to
from echo2ecg.data.shard_plan import checked_shard_inputs, plan_ecg_shards

with log_to(snakemake.log[0]):
    plan, shard, config = snakemake.params.plan, snakemake.wildcards.shard, snakemake.config
    key = resolve_key(config["privacy"]["pseudonym_key"], demo=config["demo"]["enabled"])
    planned = plan_ecg_shards(load_ecgs(plan["manifest"]), plan["n_shards"], key,
                              plan["hash_paths"], only=shard)
    rows = checked_shard_inputs(planned, shard, snakemake.params.rows)
    inputs = [ShardInput(**item) for item in rows]
    prep_ecg_shard(inputs, Path(snakemake.output.ledger).parent, snakemake.params.recipe,
                   time_limit_s=snakemake.params.time_limit_s)
