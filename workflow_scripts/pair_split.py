"""pair_split: ECG-echo pairs within the window, split by patient, with Table 1 counts."""

from echo2ecg.data.ledger import read_shard_ledgers, usable_views_per_study
from echo2ecg.data.manifest import check_time_zones_agree, load_ecgs, load_labels
from echo2ecg.data.pseudonym import resolve_key
from echo2ecg.data.store import write_table
from echo2ecg.runlog import log_to
from echo2ecg.train.pairs import build_pairs, split_counts

with log_to(snakemake.log[0]) as log:
    cohort = snakemake.wildcards.cohort
    echo_ledgers = snakemake.input.echo_ledgers
    echo_ledger = read_shard_ledgers(dict(zip(snakemake.params.echo_shards, echo_ledgers)))
    views = usable_views_per_study(echo_ledger) if echo_ledgers else None
    ecgs, labels = load_ecgs(snakemake.input.ecgs), load_labels(snakemake.input.labels)
    check_time_zones_agree({snakemake.input.ecgs: ecgs, snakemake.input.labels: labels})
    pairs = build_pairs(
        ecgs,
        labels,
        read_shard_ledgers(dict(zip(snakemake.params.ecg_shards, snakemake.input.ecg_ledgers))),
        views,
        resolve_key(
            snakemake.config["privacy"]["pseudonym_key"], demo=snakemake.config["demo"]["enabled"]
        ),
        snakemake.params.window_days,
        snakemake.params.fractions,
        snakemake.params.seed,
    )
    write_table(pairs, snakemake.output.pairs)
    counts = split_counts(pairs, cohort)
    write_table(counts, snakemake.output.splits)
    log.info("%s: %d pairs\n%s", cohort, len(pairs), counts.to_string(index=False))
