"""pair_traces: each clip's burned-in ECG paired with its own study, split by patient."""

from echo2ecg.data.ledger import read_shard_ledgers, usable_views_per_study
from echo2ecg.data.manifest import load_labels
from echo2ecg.data.pseudonym import resolve_key
from echo2ecg.data.store import write_table
from echo2ecg.runlog import log_to
from echo2ecg.train.pairs import build_trace_pairs, split_counts

with log_to(snakemake.log[0]) as log:
    cohort = snakemake.wildcards.cohort
    echo_ledger = read_shard_ledgers(
        dict(zip(snakemake.params.echo_shards, snakemake.input.echo_ledgers))
    )
    pairs = build_trace_pairs(
        load_labels(snakemake.input.labels),
        read_shard_ledgers(dict(zip(snakemake.params.trace_shards, snakemake.input.trace_ledgers))),
        usable_views_per_study(echo_ledger),
        resolve_key(
            snakemake.config["privacy"]["pseudonym_key"], demo=snakemake.config["demo"]["enabled"]
        ),
        snakemake.params.fractions,
        snakemake.params.seed,
    )
    write_table(pairs, snakemake.output.pairs)
    counts = split_counts(pairs, cohort, source="echo_trace")
    write_table(counts, snakemake.output.splits)
    log.info("%s: %d trace pairs\n%s", cohort, len(pairs), counts.to_string(index=False))
