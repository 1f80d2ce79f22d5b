"""prep_ecg: one shard of ECG files -> a signal store + its ledger."""

from echo2ecg.data.pseudonym import resolve_key
from echo2ecg.data.shard_plan import replan_shard
from echo2ecg.data.shard_run import ShardInput, prep_ecg_shard
from echo2ecg.runlog import log_to

with log_to(snakemake.log[0]):
    privacy, demo = snakemake.config["privacy"], snakemake.config["demo"]["enabled"]
    key = resolve_key(privacy["pseudonym_key"], demo=demo)
    rows = replan_shard(
        **snakemake.params.plan,
        key=key,
        shard=snakemake.wildcards.shard,
        digest=snakemake.params.rows,
    )
    prep_ecg_shard(
        [ShardInput(**row) for row in rows],
        snakemake.output.signals,
        snakemake.output.ledger,
        snakemake.params.recipe,
        time_limit_s=snakemake.params.time_limit_s,
    )
