"""extract_echo and prep_ecg: one shard of a manifest's files -> a store + its ledger."""

from echo2ecg.data.pseudonym import resolve_key
from echo2ecg.data.shard_plan import replan_shard
from echo2ecg.data.shard_run import ShardInput, extract_echo_shard, prep_ecg_shard
from echo2ecg.runlog import log_to

RUN_SHARD = {"echo_views": extract_echo_shard, "ecgs": prep_ecg_shard}  # by manifest table

with log_to(snakemake.log[0]):
    plan = snakemake.params.plan
    privacy, demo = snakemake.config["privacy"], snakemake.config["demo"]["enabled"]
    key = resolve_key(privacy["pseudonym_key"], demo=demo)
    rows = replan_shard(
        **plan, key=key, shard=snakemake.wildcards.shard, digest=snakemake.params.rows
    )
    RUN_SHARD[plan["table"]](
        [ShardInput(**row) for row in rows],
        snakemake.output.store,
        snakemake.output.ledger,
        snakemake.params.recipe,
        time_limit_s=snakemake.params.time_limit_s,
    )
