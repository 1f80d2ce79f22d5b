# Pairs and splits, then contrastive training of each model variant on cached embeddings.


rule pair_split:
    input:
        ecgs=cohort_manifest("ecgs"),
        labels=cohort_manifest("labels"),
        ecg_ledgers=cohort_ecg_ledgers,
        echo_ledgers=cohort_echo_ledgers,
    output:
        pairs="results/pairs/{cohort}/pairs.csv",
        splits="results/pairs/{cohort}/splits.csv",
    params:
        ecg_shards=cohort_shard_labels("ecg"),
        echo_shards=cohort_shard_labels("echo"),
        window_days=config["pairing"]["window_days"],
        fractions=cohort_splits,
        seed=config["pairing"]["seed"],
        code=script_code("pair_split"),
    log:
        "logs/pair_split/{cohort}.log",
    benchmark:
        "benchmarks/pair_split/{cohort}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/pair_split.py"


rule pair_traces:
    input:
        labels=cohort_manifest("labels"),
        trace_ledgers=cohort_trace_ledgers,
        echo_ledgers=cohort_echo_ledgers,
    output:
        pairs="results/pairs/{cohort}/trace_pairs.csv",
        splits="results/pairs/{cohort}/trace_splits.csv",
    params:
        trace_shards=cohort_shard_labels("trace"),
        echo_shards=cohort_shard_labels("echo"),
        fractions=cohort_splits,
        seed=config["pairing"]["seed"],
        code=script_code("pair_traces"),
    log:
        "logs/pair_traces/{cohort}.log",
    benchmark:
        "benchmarks/pair_traces/{cohort}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/pair_traces.py"


rule cohort_table:
    input:
        splits=expand("results/pairs/{cohort}/splits.csv", cohort=COHORTS)
        + expand("results/pairs/{cohort}/trace_splits.csv", cohort=TRACE_COHORTS),
    output:
        table="results/tables/cohort_splits.csv",
        markdown="results/tables/cohort_splits.md",
        html=report(
            "results/tables/cohort_splits.html",
            caption="report/cohort_splits.rst",
            category=DATA,
            labels={"result": "cohorts and splits", "kind": "table"},
        ),
    params:
        code=script_code("cohort_table"),
    log:
        "logs/cohort_table/cohort_table.log",
    benchmark:
        "benchmarks/cohort_table/cohort_table.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/cohort_table.py"


rule pretrain:
    input:
        pairs=training_pairs(),
        ecg_stores=train_ecg_stores(),
        trace_stores=train_trace_stores(),
        echo_ledgers=train_echo_ledgers(),
        embeddings=train_embedding_stores(),
        ecg_weights=ecg_encoder_weights(),
    output:
        best="results/models/{variant}/best.pt",
        last="results/models/{variant}/last.pt",
        history="results/models/{variant}/history.csv",
        plot=report(
            "results/models/{variant}/loss.png",
            caption="report/loss.rst",
            category=TRAINING,
            labels={"variant": "{variant}", "figure": "loss"},
        ),
    params:
        ecg_shards=shard_labels(TRAIN_COHORT, "ecg"),
        trace_shards=train_trace_shards(),
        echo_shards=shard_labels(TRAIN_COHORT, "echo"),
        variant=lambda w: config["variants"][w.variant],
        encoder=config["ecg_encoder"],
        aggregator=config["aggregator"],
        train=config["train"],
        ecg_recipe=config["ecg"],
        code=script_code("pretrain"),
    log:
        "logs/pretrain/{variant}.log",
    benchmark:
        "benchmarks/pretrain/{variant}.tsv"
    priority: pretrain_priority
    threads: 1
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=600,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/pretrain.py"
