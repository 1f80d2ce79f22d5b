"""extract_trace: one echo shard's clips -> the ECG each burns in, a store + its ledger."""

from echo2ecg.data.pseudonym import resolve_key
from echo2ecg.data.shard_plan import replan_shard
from echo2ecg.data.shard_run import ShardInput
from echo2ecg.data.trace_shard import extract_trace_shard
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
    extract_trace_shard(
        [ShardInput(**row) for row in rows],
        snakemake.output.store,
        snakemake.output.ledger,
        snakemake.params.recipe,
        snakemake.params.ecg_recipe,
        time_limit_s=snakemake.params.time_limit_s,
    )
